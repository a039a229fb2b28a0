#include "rawip.h"

#include "packet.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <string.h>
#include <unistd.h>

static int set_int(int fd, int level, int opt, int value) {
  return setsockopt(fd, level, opt, &value, sizeof value) < 0 ? errno : 0;
}

/* The *FORCE variants pass net.core.[rw]mem_max (root); fall back to the capped one. */
static int set_buf(int fd, int force_opt, int opt, int bytes) {
  if (set_int(fd, SOL_SOCKET, force_opt, bytes) == 0) return 0;
  return set_int(fd, SOL_SOCKET, opt, bytes);
}

int rawip_open(const struct sockaddr_storage *local, socklen_t len, int proto, int *out, const char **step) {
  int family = local->ss_family;
  if (family != AF_INET && family != AF_INET6) {
    *step = "address family";
    return EAFNOSUPPORT;
  }
  int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    *step = "socket";
    return errno;
  }
  int err = 0;
  struct sockaddr_storage sa = *local;
  if (family == AF_INET) {
    ((struct sockaddr_in *)&sa)->sin_port = 0;
    if ((err = set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)) != 0) *step = "IP_MTU_DISCOVER";
  } else {
    /* sin6_port of a raw socket must be 0 or the protocol; 0 is always accepted. */
    ((struct sockaddr_in6 *)&sa)->sin6_port = 0;
    /* No IPV6_V6ONLY: raw IPv6 sockets refuse it (EINVAL) and never see IPv4 anyway. */
    if ((err = set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)) != 0) *step = "IPV6_MTU_DISCOVER";
  }
  if (!err && (err = set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, RAWIP_SOCKBUF_BYTES)) != 0) *step = "SO_RCVBUF";
  if (!err && (err = set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, RAWIP_SOCKBUF_BYTES)) != 0) *step = "SO_SNDBUF";
  if (!err && bind(fd, (const struct sockaddr *)&sa, len) < 0) {
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

int rawip_payload(int family, const uint8_t *pkt, size_t len, size_t *off, size_t *plen) {
  if (family == AF_INET6) {
    *off = 0;
    *plen = len;
    return 0;
  }
  if (len < 20 || (pkt[0] >> 4) != 4) return EBADMSG;
  size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
  size_t total = pkt_get16(pkt + 2);
  if (ihl < 20 || ihl > len || total < ihl || total > len) return EBADMSG;
  *off = ihl;
  *plen = total - ihl;
  return 0;
}
