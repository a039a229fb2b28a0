/**
 * The node flags `vtepd run` is started with (#18): lab/topology.ts's daemonArgv passes
 * them, contrib/vtepd.service sets them in NODE_OPTIONS.
 *
 * `--use-largepages=silent`: node copies its own code (about 36 MB) to 2 MB pages at
 * start-up, where transparent huge pages are on (`always` or `madvise`); `silent` says
 * nothing where they are not. On the VM kind vtepd is measured on, a thread that wakes after
 * some time asleep can pay for its whole process's page tables in 4 KB pages, and the fast
 * path's threads live in node's process: with node's code in 2 MB pages the daemon's memory
 * in 4 KB pages goes from about 90 to 53 MB, and the pings at `-i 0.2` that take over 1 ms
 * from 10–22 of 60 to 0–11 (docs/performance.md, "What the long runs at -i 0.2 are"). It
 * costs about 80 ms at start-up and 22 MB of memory, so the CLI's other commands do not
 * use it.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--use-largepages=silent'];
