/*
 * Messages on the data path process's stream sockets (native/dp_proto.h): a header and up
 * to three payload parts, fds riding on the header's first byte. Both ends use these.
 * All return 0 or an errno; EPIPE when the other end has gone.
 */
#ifndef VTEPD_DP_WIRE_H
#define VTEPD_DP_WIRE_H

#include <stddef.h>

struct dpw_part {
  const void *p;
  size_t n;
};

/* Write hdr and parts[0..nparts-1] in full, fds (SCM_RIGHTS) with the first byte. */
int dpw_send(int sock, const void *hdr, size_t hlen, const struct dpw_part *parts, unsigned nparts, const int *fds,
             unsigned nfds);
/* Read exactly hlen bytes of header; fds that came with it go to fds (at most maxfds; more
 * are closed and the call fails with EBADMSG), their count to *nfds. Received fds are
 * close-on-exec. */
int dpw_recv(int sock, void *hdr, size_t hlen, int *fds, unsigned maxfds, unsigned *nfds);
/* Read exactly n bytes (payload). */
int dpw_read(int sock, void *buf, size_t n);

#endif
