/**
 * iproute2 (`ip`) for what the addon does not do itself: reading a link's kind and an
 * interface's addresses, and removing addresses. Synchronous: used at start, on a reload
 * and when a port is attached, never per packet.
 */
import { execFileSync } from 'node:child_process';

const inNetns = (netns: string | null, args: string[]) => [...(netns ? ['-n', netns] : []), ...args];

/** `ip -j ...` parsed; null when the device does not exist; undefined when ip could not answer. */
export function ipJson(netns: string | null, args: string[]): unknown {
  try {
    const out = execFileSync('ip', inNetns(netns, args), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
    return JSON.parse(out || '[]');
  } catch (e) {
    return /does not exist/.test(String((e as { stderr?: string }).stderr)) ? null : undefined;
  }
}

/** An address of an interface: family inet (IPv4) or inet6. */
export interface IfAddress {
  family: 'inet' | 'inet6';
  address: string;
  prefix: number;
}

/** The addresses of interface `name` (in `netns`); null: there is no such interface; undefined: cannot tell. */
export function addressesOf(name: string, netns: string | null): IfAddress[] | null | undefined {
  const out = ipJson(netns, ['-j', 'addr', 'show', 'dev', name]);
  if (out === null || out === undefined) return out;
  const info = (out as { addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[])[0]?.addr_info ?? [];
  return info.flatMap((a) =>
    (a.family === 'inet' || a.family === 'inet6') && a.local ? [{ family: a.family, address: a.local, prefix: a.prefixlen ?? 0 }] : [],
  );
}

/** Remove every IPv4 address of interface `name` (in `netns`); throws with ip's message. */
export function flushIpv4(name: string, netns: string | null): void {
  execFileSync('ip', inNetns(netns, ['-4', 'addr', 'flush', 'dev', name]), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
}
