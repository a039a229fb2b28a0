/*
 * Run a setup function inside a named network namespace (/run/netns/NAME) on a short-lived
 * thread of its own: setns(CLONE_NEWNET) changes only the calling thread's namespace, so
 * the calling (Node) thread never changes namespace. Used by TAP ports and attached ports.
 */
#ifndef VTEPD_NETNS_H
#define VTEPD_NETNS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * fn(arg) in namespace `netns`, or on the calling thread when netns is NULL. Returns fn's
 * result (0 or errno), or the errno of choosing the namespace with `step` set to what
 * failed ("netns name", "open /run/netns/x", "setns /run/netns/x", "pthread_create").
 */
int netns_call(const char *netns, int (*fn)(void *), void *arg, char *step, size_t step_len);

#ifdef __cplusplus
}
#endif

#endif
