/* Messages on the data path process's stream sockets: see dp_wire.h. */
#include "dp_wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dp_proto.h"

int dpw_send(int sock, const void *hdr, size_t hlen, const struct dpw_part *parts, unsigned nparts, const int *fds,
             unsigned nfds) {
  struct iovec iov[5];
  unsigned niov = 0;
  iov[niov++] = (struct iovec){(void *)hdr, hlen};
  for (unsigned i = 0; i < nparts && niov < 5; i++)
    if (parts[i].n) iov[niov++] = (struct iovec){(void *)parts[i].p, parts[i].n};
  union {
    char buf[CMSG_SPACE(sizeof(int) * DPP_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = niov};
  if (nfds) {
    if (nfds > DPP_MAX_FDS) return EINVAL;
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  struct iovec *v = iov;
  while (niov) {
    m.msg_iov = v;
    m.msg_iovlen = niov;
    ssize_t w = sendmsg(sock, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno == ECONNRESET ? EPIPE : errno;
    }
    m.msg_control = NULL; /* the fds went with the first byte */
    m.msg_controllen = 0;
    size_t left = (size_t)w;
    while (niov && left >= v->iov_len) {
      left -= v->iov_len;
      v++;
      niov--;
    }
    if (niov) {
      v->iov_base = (char *)v->iov_base + left;
      v->iov_len -= left;
    }
  }
  return 0;
}

int dpw_recv(int sock, void *hdr, size_t hlen, int *fds, unsigned maxfds, unsigned *nfds) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * DPP_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {hdr, hlen};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t r;
  *nfds = 0;
  do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == ECONNRESET ? EPIPE : errno;
  if (r == 0) return EPIPE;
  int err = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    unsigned n = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int got[DPP_MAX_FDS];
    memcpy(got, CMSG_DATA(c), sizeof(int) * (n < DPP_MAX_FDS ? n : DPP_MAX_FDS));
    for (unsigned i = 0; i < n && i < DPP_MAX_FDS; i++) {
      if (*nfds < maxfds) fds[(*nfds)++] = got[i];
      else {
        close(got[i]);
        err = EBADMSG;
      }
    }
  }
  if (m.msg_flags & MSG_CTRUNC) err = EBADMSG;
  if ((size_t)r < hlen) {
    int e = dpw_read(sock, (char *)hdr + r, hlen - (size_t)r);
    if (e) err = e;
  }
  if (err) {
    for (unsigned i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
  }
  return err;
}

int dpw_read(int sock, void *buf, size_t n) {
  char *p = buf;
  while (n) {
    ssize_t r = read(sock, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno == ECONNRESET ? EPIPE : errno;
    }
    if (r == 0) return EPIPE;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}
