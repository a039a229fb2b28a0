/* An ifreq for interface `name` (truncated to IFNAMSIZ - 1), the rest zero: TAP and attached ports' ioctls. */
#ifndef VTEPD_IFREQ_H
#define VTEPD_IFREQ_H

#include <net/if.h>
#include <string.h>

static inline void ifr_init(struct ifreq *ifr, const char *name) {
  memset(ifr, 0, sizeof *ifr);
  memcpy(ifr->ifr_name, name, strnlen(name, IFNAMSIZ - 1));
}

#endif
