#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int sockaddr_from_string(const char *text, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    *len = sizeof *in4;
    return 0;
  }
  if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof *in6;
    return 0;
  }
  return EINVAL;
}

uint16_t sockaddr_port(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return 0;
}

static void sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port) {
  if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static int set_int(int fd, int level, int opt, int value) {
  return setsockopt(fd, level, opt, &value, sizeof value) < 0 ? errno : 0;
}

/* The *FORCE variants pass net.core.[rw]mem_max (root); fall back to the capped one. */
static int set_buf(int fd, int force_opt, int opt, int bytes) {
  if (set_int(fd, SOL_SOCKET, force_opt, bytes) == 0) return 0;
  return set_int(fd, SOL_SOCKET, opt, bytes);
}

static int udp_socket(int family, int *fd, const char **step) {
  int s = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (s < 0) {
    *step = "socket";
    return errno;
  }
  /* One family per socket: an IPv6 underlay never sees v4-mapped peers. */
  if (family == AF_INET6 && set_int(s, IPPROTO_IPV6, IPV6_V6ONLY, 1) != 0) {
    int err = errno;
    close(s);
    *step = "IPV6_V6ONLY";
    return err;
  }
  *fd = s;
  return 0;
}

bool udp_rx_gro_enable(int fd) { return set_int(fd, SOL_UDP, UDP_GRO, 1) == 0; }

bool udp_tx_gso_probe(int fd) { return set_int(fd, SOL_UDP, UDP_SEGMENT, 0) == 0; }

int udp_rx_open(const struct sockaddr_storage *local, socklen_t len, bool reuseport, int *out, const char **step) {
  int fd = -1, err = udp_socket(local->ss_family, &fd, step);
  if (err) return err;
  if ((err = set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, UDP_SOCKBUF_BYTES)) != 0) {
    *step = "SO_RCVBUF";
  } else if (reuseport && (err = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) != 0) {
    *step = "SO_REUSEPORT";
  } else if (bind(fd, (const struct sockaddr *)local, len) < 0) {
    err = errno;
    *step = "bind";
  }
  if (err) {
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

static int tx_socket_options(int fd, int family, const char **step) {
  int err;
  if (family == AF_INET) {
    /* DF on every outer packet: too big is EMSGSIZE, counted, never fragmented. */
    if ((err = set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)) != 0) {
      *step = "IP_MTU_DISCOVER";
      return err;
    }
    /* RFC 7348: UDP checksum SHOULD be 0 over IPv4; the inner frame has its own. */
    if ((err = set_int(fd, SOL_SOCKET, SO_NO_CHECK, 1)) != 0) {
      *step = "SO_NO_CHECK";
      return err;
    }
  } else {
    /* Over IPv6 the UDP checksum is mandatory (RFC 8200), so no SO_NO_CHECK. */
    if ((err = set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)) != 0) {
      *step = "IPV6_MTU_DISCOVER";
      return err;
    }
  }
  if ((err = set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, UDP_SOCKBUF_BYTES)) != 0) {
    *step = "SO_SNDBUF";
    return err;
  }
  return 0;
}

int udp_tx_pool_open(const struct sockaddr_storage *local, socklen_t len, unsigned n, uint16_t avoid,
                     int *fds, const char **step) {
  const uint32_t span = UDP_SRC_PORT_MAX - UDP_SRC_PORT_MIN + 1;
  uint32_t start;
  if (getrandom(&start, sizeof start, GRND_NONBLOCK) != (ssize_t)sizeof start)
    start = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
  struct sockaddr_storage sa = *local;
  unsigned opened = 0;
  int fd = -1, err = 0;

  for (uint32_t k = 0; k < span && opened < n; k++) {
    uint16_t port = (uint16_t)(UDP_SRC_PORT_MIN + (start + k) % span);
    if (port == avoid) continue;
    if (fd < 0) {
      if ((err = udp_socket(local->ss_family, &fd, step)) != 0) goto fail;
      if ((err = tx_socket_options(fd, local->ss_family, step)) != 0) goto fail;
    }
    sockaddr_set_port(&sa, port);
    if (bind(fd, (const struct sockaddr *)&sa, len) == 0) {
      fds[opened++] = fd;
      fd = -1;
    } else if (errno != EADDRINUSE) {
      err = errno;
      *step = "bind source port";
      goto fail;
    }
  }
  if (opened == n) return 0;
  err = EADDRINUSE;
  *step = "bind source port";
fail:
  if (fd >= 0) close(fd);
  while (opened > 0) close(fds[--opened]);
  return err;
}

/* Non-blocking and close-on-exec, whatever the sender of an adopted descriptor left. */
static int fd_flags(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) return errno;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return errno;
  return 0;
}

static int get_int(int fd, int level, int opt, int *v) {
  socklen_t l = sizeof *v;
  return getsockopt(fd, level, opt, v, &l) < 0 ? errno : 0;
}

/* Address bytes (no port) of an AF_INET/AF_INET6 sockaddr. */
static const void *sa_addr(const struct sockaddr_storage *ss, size_t *n) {
  if (ss->ss_family == AF_INET) {
    *n = 4;
    return &((const struct sockaddr_in *)ss)->sin_addr;
  }
  *n = 16;
  return &((const struct sockaddr_in6 *)ss)->sin6_addr;
}

int udp_adopt(const struct sockaddr_storage *local, const int *fds, unsigned n, const char **step) {
  uint16_t ports[1 + 64];
  if (n < 2 || n > 65) {
    *step = "underlayFds count";
    return EINVAL;
  }
  for (unsigned i = 0; i < n; i++) {
    int v, err;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    static __thread char what[48];
    snprintf(what, sizeof what, "underlayFds[%u] (%s socket)", i, i == 0 ? "receive" : "send");
    *step = what;
    if ((err = get_int(fds[i], SOL_SOCKET, SO_DOMAIN, &v)) != 0) return err;
    if (v != local->ss_family) return EAFNOSUPPORT;
    if ((err = get_int(fds[i], SOL_SOCKET, SO_TYPE, &v)) != 0) return err;
    if (v != SOCK_DGRAM) return EPROTOTYPE;
    if ((err = get_int(fds[i], SOL_SOCKET, SO_PROTOCOL, &v)) != 0) return err;
    if (v != IPPROTO_UDP) return EPROTONOSUPPORT;
    if (getsockname(fds[i], (struct sockaddr *)&ss, &sl) < 0) return errno;
    size_t al, bl;
    const void *a = sa_addr(&ss, &al), *b = sa_addr(local, &bl);
    if (ss.ss_family != local->ss_family || al != bl || memcmp(a, b, al) != 0) return EADDRNOTAVAIL;
    ports[i] = sockaddr_port(&ss);
    if (i == 0 ? ports[i] != sockaddr_port(local) : ports[i] == sockaddr_port(local)) return EADDRNOTAVAIL;
    for (unsigned j = 1; j < i; j++)
      if (ports[j] == ports[i]) return EEXIST;
  }
  /* All checked: configure them as if opened here. */
  for (unsigned i = 0; i < n; i++) {
    int err = fd_flags(fds[i]);
    if (err) {
      *step = "fcntl";
      return err;
    }
    if (i == 0) {
      if ((err = set_buf(fds[i], SO_RCVBUFFORCE, SO_RCVBUF, UDP_SOCKBUF_BYTES)) != 0) {
        *step = "SO_RCVBUF";
        return err;
      }
    } else if ((err = tx_socket_options(fds[i], local->ss_family, step)) != 0) {
      return err;
    }
  }
  return 0;
}
