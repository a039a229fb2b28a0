/*
 * File-descriptor handover over a Unix socket (SCM_RIGHTS) and the systemd notify
 * datagram. Protocol and contract in scm.h.
 */
#include "scm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int unix_address(const char *path, struct sockaddr_un *sa, socklen_t *len) {
  size_t n = strlen(path);
  if (n == 0) return EINVAL;
  if (n >= sizeof sa->sun_path) return ENAMETOOLONG;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, n);
  if (path[0] == '@') sa->sun_path[0] = 0; /* abstract namespace (systemd's notation) */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
  return 0;
}

static int set_timeouts(int fd, int timeout_ms) {
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) return errno;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) return errno;
  return 0;
}

/* EAGAIN from a socket timeout reads better as ETIMEDOUT. */
static int io_errno(void) { return errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno; }

static int send_all(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_errno();
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int recv_all(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = recv(fd, p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_errno();
    }
    if (n == 0) return ECONNRESET;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int scm_listen(const char *path, int *out) {
  struct sockaddr_un sa;
  socklen_t len;
  int err = unix_address(path, &sa, &len);
  if (err) return err;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  if (path[0] != '@') {
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
  }
  mode_t old = umask(0177); /* the socket file is 0600: only root (or the owner) hands over */
  int r = bind(fd, (struct sockaddr *)&sa, len);
  umask(old);
  if (r < 0 || listen(fd, 4) < 0) {
    err = errno;
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

int scm_accept(int lfd, int timeout_ms, int io_timeout_ms, int **fds_out, size_t *nfds_out, uint8_t **payload_out,
               size_t *len_out) {
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno;
  if (r == 0) return ETIMEDOUT;
  int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (cfd < 0) return errno == EAGAIN ? ETIMEDOUT : errno;

  int err = 0, *fds = NULL;
  size_t nfds = 0, want = 0;
  uint8_t *payload = NULL;
  uint64_t plen = 0;
  uint8_t hdr[16];

  /* Only the same user (or root) may hand us descriptors. */
  struct ucred cred;
  socklen_t clen = sizeof cred;
  if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) { err = errno; goto out; }
  if (cred.uid != 0 && cred.uid != getuid()) { err = EPERM; goto out; }

  if ((err = set_timeouts(cfd, io_timeout_ms)) || (err = recv_all(cfd, hdr, sizeof hdr))) goto out;
  if (get32(hdr) != SCM_MAGIC) { err = EPROTO; goto out; }
  want = get32(hdr + 4);
  plen = (uint64_t)get32(hdr + 8) | (uint64_t)get32(hdr + 12) << 32;
  if (want > SCM_MAX_FDS || plen > SCM_MAX_PAYLOAD) { err = EMSGSIZE; goto out; }
  fds = malloc((want ? want : 1) * sizeof *fds);
  payload = malloc(plen ? plen : 1);
  if (!fds || !payload) { err = ENOMEM; goto out; }

  while (nfds < want) {
    uint8_t cnt[4];
    union {
      struct cmsghdr h;
      char buf[CMSG_SPACE(sizeof(int) * SCM_CHUNK)];
    } ctl;
    struct iovec iov = {.iov_base = cnt, .iov_len = sizeof cnt};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do n = recvmsg(cfd, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) { err = io_errno(); goto out; }
    if (n == 0) { err = ECONNRESET; goto out; }
    size_t got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (nfds < want) fds[nfds++] = fd;
        else close(fd);
        got++;
      }
    }
    if ((m.msg_flags & MSG_CTRUNC) || got == 0) { err = EPROTO; goto out; }
    if (n < (ssize_t)sizeof cnt && (err = recv_all(cfd, cnt + n, sizeof cnt - (size_t)n))) goto out;
    if (get32(cnt) != got) { err = EPROTO; goto out; }
  }
  if ((err = recv_all(cfd, payload, plen))) goto out;
  err = send_all(cfd, "K", 1);

out:
  close(cfd);
  if (err) {
    for (size_t i = 0; i < nfds; i++) close(fds[i]);
    free(fds);
    free(payload);
    return err;
  }
  *fds_out = fds;
  *nfds_out = nfds;
  *payload_out = payload;
  *len_out = plen;
  return 0;
}

int scm_send(const char *path, const int *fds, size_t nfds, const uint8_t *payload, size_t len, int timeout_ms) {
  struct sockaddr_un sa;
  socklen_t salen;
  int err = unix_address(path, &sa, &salen);
  if (err) return err;
  if (nfds > SCM_MAX_FDS || len > SCM_MAX_PAYLOAD) return EMSGSIZE;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  if ((err = set_timeouts(fd, timeout_ms))) goto out;
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0) { err = io_errno(); goto out; }

  uint8_t hdr[16];
  put32(hdr, SCM_MAGIC);
  put32(hdr + 4, (uint32_t)nfds);
  put32(hdr + 8, (uint32_t)len);
  put32(hdr + 12, (uint32_t)((uint64_t)len >> 32));
  if ((err = send_all(fd, hdr, sizeof hdr))) goto out;

  for (size_t off = 0; off < nfds;) {
    size_t k = nfds - off < SCM_CHUNK ? nfds - off : SCM_CHUNK;
    uint8_t cnt[4];
    put32(cnt, (uint32_t)k);
    union {
      struct cmsghdr h;
      char buf[CMSG_SPACE(sizeof(int) * SCM_CHUNK)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = cnt, .iov_len = sizeof cnt};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * k)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * k);
    memcpy(CMSG_DATA(c), fds + off, sizeof(int) * k);
    ssize_t n;
    do n = sendmsg(fd, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) { err = io_errno(); goto out; }
    /* The fds travel with the first byte; finish the count if the send was short. */
    if (n < (ssize_t)sizeof cnt && (err = send_all(fd, cnt + n, sizeof cnt - (size_t)n))) goto out;
    off += k;
  }
  if ((err = send_all(fd, payload, len))) goto out;
  uint8_t ack = 0;
  if ((err = recv_all(fd, &ack, 1))) goto out;
  if (ack != 'K') err = EPROTO;
out:
  close(fd);
  return err;
}

int scm_sd_notify(const char *state, int *sent) {
  *sent = 0;
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  struct sockaddr_un sa;
  socklen_t len;
  int err = unix_address(path, &sa, &len);
  if (err) return err;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
  err = n < 0 ? errno : 0;
  close(fd);
  if (!err) *sent = 1;
  return err;
}
