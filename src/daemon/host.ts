/**
 * What this host has, as `vtepd check` and a start that failed see it: namespaces, links
 * (a name taken by a veth, a TAP someone holds), addresses and ports already bound, and who
 * holds them. Each probe answers only what it can see: without root, inside a namespace or
 * in another process's /proc it says "unknown" (undefined), never a guess.
 */
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { ipJson as ip } from '../util/iproute.js';

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** A link's kind as iproute2 names it: veth, bridge, vxlan, tap, tun, ... ("device" for hardware). */
export interface Link {
  kind: string;
  /** A TAP made persistent (ip tuntap add): it lives without a process holding it. */
  persist?: boolean;
}

/** The link named `name` (in `netns`); null: there is none; undefined: cannot tell (no permission, no ip). */
export function linkOf(name: string, netns: string | null): Link | null | undefined {
  const out = ip(netns, ['-d', '-j', 'link', 'show', 'dev', name]);
  if (out === null || out === undefined) return out;
  const info = (out as { linkinfo?: { info_kind?: string; info_data?: { type?: string; persist?: boolean } } }[])[0]?.linkinfo;
  if (info?.info_kind === 'tun') return { kind: info.info_data?.type ?? 'tun', persist: info.info_data?.persist === true };
  return { kind: info?.info_kind ?? 'device' };
}

/** The kernel VXLAN devices of this namespace that listen on UDP `port`. */
export function vxlanDevicesOn(port: number): string[] {
  const out = ip(null, ['-d', '-j', 'link', 'show', 'type', 'vxlan']);
  const links = (Array.isArray(out) ? out : []) as { ifname: string; linkinfo?: { info_data?: { port?: number } } }[];
  return links.filter((l) => l.linkinfo?.info_data?.port === port).map((l) => l.ifname);
}

// ---- who holds it --------------------------------------------------------------------------

/** "vtepd, pid 1234" (or the process's name): readable with root, else undefined. */
function describePid(pid: string): string {
  const cmdline = read(`/proc/${pid}/cmdline`)?.split('\0') ?? [];
  if (cmdline.some((a) => /vtepd(\.js)?$|\/dist\/src\/cli\/cli\.js$/.test(a))) return `vtepd, pid ${pid}`;
  return `${read(`/proc/${pid}/comm`)?.trim() ?? 'a process'}, pid ${pid}`;
}
/**
 * Whom to name for what a process holds: a data path process (vtepd-dp, VTEPD_DP_PROCESS=1)
 * stands for its daemon, its parent (the one to stop); any other process for itself.
 */
function ownerOf(pid: string): string {
  if (read(`/proc/${pid}/comm`)?.trim() !== 'vtepd-dp') return pid;
  return /^PPid:\s*(\d+)/m.exec(read(`/proc/${pid}/status`) ?? '')?.[1] ?? pid;
}
function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Every open fd of every process we may look at, with what it points to. */
function* openFds(): Generator<{ pid: string; fd: string; target: string }> {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        yield { pid, fd, target: readlinkSync(`/proc/${pid}/fd/${fd}`) };
      } catch {
        // closed meanwhile
      }
    }
  }
}

/** The one process (other than this one) holding TAP `name` open, if exactly one is seen (a daemon and its data path process: one). */
export function tapHolder(name: string): string | undefined {
  const pids = new Set<string>();
  for (const f of openFds()) {
    if (f.target !== '/dev/net/tun' || f.pid === String(process.pid)) continue;
    if (read(`/proc/${f.pid}/fdinfo/${f.fd}`)?.match(/^iff:\s*(\S+)/m)?.[1] === name) pids.add(ownerOf(f.pid));
  }
  pids.delete(String(process.pid)); // our own data path process's copy
  return pids.size === 1 ? describePid([...pids][0]!) : undefined;
}

/** The process (other than this one) holding a socket bound to `port` (TCP: listening), if one is seen. */
export function socketHolder(proto: 'udp' | 'tcp', port: number): string | undefined {
  const inodes = new Set<string>();
  for (const table of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    for (const line of (read(table) ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1]?.split(':')[1];
      if (local && parseInt(local, 16) === port && (proto === 'udp' || f[3] === '0A') && f[9] !== '0') inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const f of openFds()) {
    if (!inodes.has(f.target)) continue;
    const owner = ownerOf(f.pid);
    if (owner !== String(process.pid)) return describePid(owner);
  }
  return undefined;
}

// ---- can we bind it ------------------------------------------------------------------------

/** What binding `address`:`port` says: ok, EADDRINUSE, EADDRNOTAVAIL, or another errno (e.g. EACCES below 1024). */
export type BindProbe = 'ok' | 'EADDRINUSE' | 'EADDRNOTAVAIL' | string;

/** Bind a UDP socket there and close it at once. */
export function probeUdp(address: string, port: number): Promise<BindProbe> {
  return new Promise((resolve) => {
    const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.close();
      resolve(e.code ?? e.message);
    });
    s.bind({ address, port, exclusive: true }, () => s.close(() => resolve('ok')));
  });
}

/** Listen on TCP there and close at once. */
export function probeTcp(address: string, port: number): Promise<BindProbe> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.listen({ host: address, port, exclusive: true }, () => s.close(() => resolve('ok')));
  });
}
