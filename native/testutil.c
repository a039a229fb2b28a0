#include "testutil.h"

#include "fdb.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(TEST_IDLE_RECORD == FDB_IDLE_RECORD, "idle records are 16 bytes");

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

int test_idle_records(const struct test_idle *in, unsigned n, uint8_t *out, size_t *len) {
  struct fdb f;
  const uint32_t now = 0x80000000u; /* any clock value: idle times are differences */
  uint32_t limit = 1;
  while (limit < n) limit <<= 1; /* fdb_init takes a power of two */
  int err = fdb_init(&f, limit);
  if (err) return err;
  for (unsigned i = 0; i < n && !err; i++)
    if (fdb_set(&f, fdb_key(in[i].tenant_id, in[i].mac), FDB_KIND_PORT, 1, now - in[i].idle_ms) != 0) err = ENOSPC;
  if (!err) *len = (size_t)fdb_idle_dump(&f, now, out, n) * FDB_IDLE_RECORD;
  fdb_free(&f);
  return err;
}
