/* Test helpers (the test addon only): a SOCK_SEQPACKET pair stands in for a TAP (one frame
 * per message); idle records from a real FDB. */
#ifndef VTEPD_TESTUTIL_H
#define VTEPD_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest message test_read returns whole. */
#define TEST_READ_MAX 65536

/* Both ends non-blocking and close-on-exec. 0 or errno. */
int test_socketpair(int fds[2]);
/* Wait up to timeout_ms for one message. 0 (with *n), ETIMEDOUT, or errno. */
int test_read(int fd, int timeout_ms, uint8_t *buf, size_t cap, size_t *n);
/* Write one message whole. 0 or errno (EAGAIN when the peer's queue is full). */
int test_write(int fd, const uint8_t *buf, size_t len);

/* One FDB entry for test_idle_records. */
struct test_idle {
  uint32_t tenant_id;
  uint8_t mac[6];
  uint32_t idle_ms;
};
#define TEST_IDLE_RECORD 16 /* FDB_IDLE_RECORD */
/* The idle records (fdb_idle_dump) of an FDB holding these n entries, each last seen
 * idle_ms before the dump: n * TEST_IDLE_RECORD bytes at out, *len. 0 or errno. */
int test_idle_records(const struct test_idle *in, unsigned n, uint8_t *out, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
