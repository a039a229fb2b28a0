#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

int test_socketpair(int fds[2]) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return errno;
  return 0;
}

int test_read(int fd, int timeout_ms, uint8_t *buf, size_t cap, size_t *n) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno;
  if (r == 0) return ETIMEDOUT;
  ssize_t got;
  do got = read(fd, buf, cap);
  while (got < 0 && errno == EINTR);
  if (got < 0) return errno == EAGAIN ? ETIMEDOUT : errno;
  *n = (size_t)got;
  return 0;
}

int test_write(int fd, const uint8_t *buf, size_t len) {
  ssize_t r;
  do r = write(fd, buf, len);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno;
  return (size_t)r == len ? 0 : EIO;
}
