/**
 * What the kernel says of an interface an attached port holds (netns tests): its packet
 * sockets and its promiscuity count.
 */
import type { Lab } from '../../lab/netns.js';

/** The inodes of the packet sockets bound to interface `ifindex` in `host` (/proc/net/packet). */
export async function packetSockets(lab: Lab, host: string, ifindex: number): Promise<string[]> {
  const rows = (await lab.exec(host, 'cat', ['/proc/net/packet'])).stdout.trim().split('\n').slice(1);
  return rows
    .map((r) => r.trim().split(/\s+/))
    .filter((c) => Number(c[4]) === ifindex)
    .map((c) => c[8]!);
}

/** The interface's promiscuity count (the kernel's, which `ip -d link` shows). */
export async function promiscuity(lab: Lab, host: string, dev: string): Promise<number> {
  const j = JSON.parse((await lab.exec(host, 'ip', ['-d', '-j', 'link', 'show', 'dev', dev])).stdout) as { promiscuity: number }[];
  return j[0]!.promiscuity;
}
