/**
 * `vtepd capture`: a tenant's frames as pcap (tcpdump and tshark read it).
 *
 * Design: the daemon runs tcpdump where the traffic is and streams pcap to the client.
 *  - a port (`--port TAP`): tcpdump on the TAP inside the TAP's namespace; every frame the
 *    VM sends or gets, as is;
 *  - a peer (`--peer VTEP`): tcpdump on the underlay interface (the one holding
 *    underlay.local) for `udp dst port <port> and host <VTEP>`; each packet is
 *    decapsulated here and kept only if its VNI is the tenant's: the inner frames
 *    exchanged with that VTEP. With `--outer` the encapsulated packets themselves (still
 *    only the tenant's VNI);
 *  - the tenant alone: every port of it and its underlay traffic (all VTEPs), merged; a
 *    frame appears once per place it crosses, as on a mirror of every port.
 * The output is classic pcap (microsecond timestamps), link type Ethernet for inner
 * frames, the underlay interface's for `--outer`. The count (-c) is of frames written.
 * Nothing is captured in the fast path: it costs no cycle when no capture runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { Daemon } from './daemon.js';
import { logger } from '../util/log.js';

const log = logger('capture');

export const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;
const SNAPLEN = 262144;

export interface CaptureRequest {
  tenant: string;
  port?: string;
  peer?: string;
  outer?: boolean;
  /** Stop after this many frames. */
  count?: number;
  /** Stop after this many seconds. */
  seconds?: number;
}

export interface CaptureSource {
  label: string;
  netns: string | null;
  iface: string;
  filter: string;
  /** none: frames as captured; decap: inner frames of the VNI; outer: encapsulated packets of the VNI. */
  mode: 'none' | 'decap' | 'outer';
}

export interface PcapRecord {
  tsSec: number;
  tsUsec: number;
  origLen: number;
  data: Buffer;
}

/** Reads a classic pcap stream in chunks: the header, then records. */
export class PcapReader {
  private buf: Buffer = Buffer.alloc(0);
  linktype: number | undefined;
  private le = true;
  private nano = false;

  push(chunk: Buffer): PcapRecord[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: PcapRecord[] = [];
    if (this.linktype === undefined) {
      if (this.buf.length < 24) return out;
      const magic = this.buf.readUInt32LE(0);
      if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.le = true;
      else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.le = false;
      else throw new Error('not a pcap stream (bad magic)');
      const m = this.le ? magic : this.buf.readUInt32BE(0);
      this.nano = m === 0xa1b23c4d;
      this.linktype = this.u32(20) & 0x0fffffff;
      this.buf = this.buf.subarray(24);
    }
    for (;;) {
      if (this.buf.length < 16) break;
      const incl = this.u32(8);
      if (this.buf.length < 16 + incl) break;
      const sub = this.u32(4);
      out.push({
        tsSec: this.u32(0),
        tsUsec: this.nano ? Math.floor(sub / 1000) : sub,
        origLen: this.u32(12),
        data: Buffer.from(this.buf.subarray(16, 16 + incl)),
      });
      this.buf = this.buf.subarray(16 + incl);
    }
    return out;
  }

  private u32(off: number): number {
    return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }
}

/** The 24-byte pcap file header (little endian, microseconds). */
export function pcapHeader(linktype: number, snaplen = SNAPLEN): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(snaplen, 16);
  b.writeUInt32LE(linktype, 20);
  return b;
}

export function pcapRecord(r: PcapRecord): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(r.tsSec, 0);
  h.writeUInt32LE(r.tsUsec, 4);
  h.writeUInt32LE(r.data.length, 8);
  h.writeUInt32LE(r.origLen, 12);
  return Buffer.concat([h, r.data]);
}

/**
 * Parse an encapsulated VXLAN packet as captured with `linktype`: its VNI and the inner
 * frame. null when it is not VXLAN to `port` (IPv4 or IPv6, Ethernet/SLL/SLL2/raw).
 */
export function vxlanDecap(linktype: number, pkt: Buffer, port: number): { vni: number; inner: Buffer } | null {
  let off: number;
  let proto: number;
  if (linktype === LINKTYPE_ETHERNET) {
    if (pkt.length < 14) return null;
    off = 12;
    proto = pkt.readUInt16BE(off);
    off += 2;
    while ((proto === 0x8100 || proto === 0x88a8) && pkt.length >= off + 4) {
      proto = pkt.readUInt16BE(off + 2);
      off += 4;
    }
  } else if (linktype === LINKTYPE_LINUX_SLL) {
    if (pkt.length < 16) return null;
    proto = pkt.readUInt16BE(14);
    off = 16;
  } else if (linktype === LINKTYPE_LINUX_SLL2) {
    if (pkt.length < 20) return null;
    proto = pkt.readUInt16BE(0);
    off = 20;
  } else if (linktype === LINKTYPE_RAW) {
    if (pkt.length < 1) return null;
    proto = pkt[0]! >> 4 === 6 ? 0x86dd : 0x0800;
    off = 0;
  } else return null;
  let udp: number;
  if (proto === 0x0800) {
    if (pkt.length < off + 20 || pkt[off]! >> 4 !== 4 || pkt[off + 9] !== 17) return null;
    if ((pkt.readUInt16BE(off + 6) & 0x1fff) !== 0) return null; // a later fragment
    udp = off + (pkt[off]! & 0x0f) * 4;
  } else if (proto === 0x86dd) {
    if (pkt.length < off + 40 || pkt[off + 6] !== 17) return null;
    udp = off + 40;
  } else return null;
  if (pkt.length < udp + 8 + 8 + 14) return null;
  if (pkt.readUInt16BE(udp + 2) !== port) return null;
  const vx = udp + 8;
  if ((pkt[vx]! & 0x08) === 0) return null;
  const vni = pkt.readUIntBE(vx + 4, 3);
  return { vni, inner: pkt.subarray(vx + 8) };
}

/** The interface holding `address` in this namespace ('any' if none does). */
export function interfaceOf(address: string): string {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => a.address === address)) return name;
  }
  return 'any';
}

/** Where to run tcpdump for a request, checked against what runs. */
export function planCapture(d: Daemon, req: CaptureRequest): CaptureSource[] {
  const b = d.sw.tenant(req.tenant);
  if (!b) throw new Error(`no tenant "${req.tenant}"`);
  if (req.port !== undefined && req.peer !== undefined) throw new Error('give --port or --peer, not both');
  if (req.outer && req.port !== undefined) throw new Error('--outer captures the underlay: use it with --peer VTEP or the tenant alone, not --port');
  const u = d.running.underlay;
  const sources: CaptureSource[] = [];
  const underlay = (peer?: string): CaptureSource => ({
    label: peer ? `vtep ${peer}` : 'underlay',
    netns: null,
    iface: interfaceOf(u.local),
    filter: `udp dst port ${u.port}${peer ? ` and host ${peer}` : ''}`,
    mode: req.outer ? 'outer' : 'decap',
  });
  if (req.port !== undefined) {
    const p = d.ports.find((x) => x.tap === req.port);
    if (!p || p.tenant !== req.tenant) throw new Error(`no port "${req.port}" in tenant "${req.tenant}"`);
    sources.push({ label: `port ${p.tap}`, netns: p.netns, iface: p.tap, filter: '', mode: 'none' });
  } else if (req.peer !== undefined) {
    if (!d.sw.vteps.find(req.peer)) throw new Error(`no VTEP ${req.peer} (vtepd peers lists them)`);
    sources.push(underlay(req.peer));
  } else {
    if (!req.outer)
      for (const p of d.ports.filter((x) => x.tenant === req.tenant))
        sources.push({ label: `port ${p.tap}`, netns: p.netns, iface: p.tap, filter: '', mode: 'none' });
    sources.push(underlay());
  }
  return sources;
}

/**
 * Run a capture: start every source, call `started` once all listen, `write` with pcap
 * bytes (header first), and resolve with the frame count when the count or the time is
 * reached or `signal` aborts.
 */
export async function runCapture(
  d: Daemon,
  req: CaptureRequest,
  write: (bytes: Buffer) => void,
  started: (info: { sources: string[] }) => void,
  signal: AbortSignal,
): Promise<{ packets: number; linktype: number | null }> {
  const sources = planCapture(d, req);
  const vni = d.sw.tenant(req.tenant)!.vni;
  const port = d.running.underlay.port;
  const children: ChildProcess[] = [];
  let packets = 0;
  let linktype: number | null = null;
  let seenLinktype: number | undefined;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  const stopAll = () => {
    for (const c of children)
      if (c.exitCode === null && c.signalCode === null && c.pid) {
        try {
          process.kill(c.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    finish();
  };
  const emit = (r: PcapRecord, lt: number) => {
    if (req.count !== undefined && packets >= req.count) return;
    if (linktype === null) {
      linktype = lt;
      write(pcapHeader(lt));
    }
    write(pcapRecord(r));
    packets++;
    if (req.count !== undefined && packets >= req.count) stopAll();
  };
  const listening: Promise<void>[] = [];
  for (const s of sources) {
    const args = ['-i', s.iface, '-U', '-w', '-', '-s', '0', '-n', '--immediate-mode', ...(s.filter ? [s.filter] : [])];
    const child = s.netns
      ? spawn('ip', ['netns', 'exec', s.netns, 'tcpdump', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('tcpdump', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const reader = new PcapReader();
    child.stdout!.on('data', (chunk: Buffer) => {
      let recs: PcapRecord[];
      try {
        recs = reader.push(chunk);
      } catch (e) {
        log.warn({ source: s.label, err: (e as Error).message }, 'capture stream');
        return;
      }
      const lt = reader.linktype!;
      seenLinktype ??= lt;
      for (const r of recs) {
        if (s.mode === 'none') emit(r, lt);
        else {
          const v = vxlanDecap(lt, r.data, port);
          if (!v || v.vni !== vni) continue;
          if (s.mode === 'outer') emit(r, lt);
          else emit({ tsSec: r.tsSec, tsUsec: r.tsUsec, origLen: v.inner.length + (r.origLen - r.data.length), data: Buffer.from(v.inner) }, LINKTYPE_ETHERNET);
        }
      }
    });
    let err = '';
    listening.push(
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${s.label}: tcpdump did not start: ${err.trim()}`)), 10_000);
        child.stderr!.on('data', (c: Buffer) => {
          err += c.toString();
          if (/listening on/.test(err)) {
            clearTimeout(t);
            resolve();
          }
        });
        child.once('error', (e) => {
          clearTimeout(t);
          reject(new Error(`${s.label}: cannot run tcpdump: ${e.message}`));
        });
        child.once('exit', (code) => {
          clearTimeout(t);
          reject(new Error(`${s.label}: tcpdump exited (${code}): ${err.trim()}`));
        });
      }),
    );
    child.once('exit', () => {
      if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) finish();
    });
  }
  try {
    await Promise.all(listening);
  } catch (e) {
    stopAll();
    throw e;
  }
  if (linktype === null && req.outer !== true) {
    // Inner frames are always Ethernet: the header goes out even if nothing is captured.
    linktype = LINKTYPE_ETHERNET;
    write(pcapHeader(LINKTYPE_ETHERNET));
  }
  started({ sources: sources.map((s) => `${s.label} (${s.netns ? `${s.netns}:` : ''}${s.iface}${s.filter ? `, ${s.filter}` : ''})`) });
  const timer = req.seconds !== undefined ? setTimeout(stopAll, req.seconds * 1000) : undefined;
  const onAbort = () => stopAll();
  signal.addEventListener('abort', onAbort);
  if (signal.aborted) stopAll();
  await finished;
  if (timer) clearTimeout(timer);
  signal.removeEventListener('abort', onAbort);
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  if (linktype === null) {
    // Nothing captured on the underlay: still a valid (empty) file, in the link type tcpdump used.
    linktype = seenLinktype ?? (sources[0]!.iface === 'any' ? LINKTYPE_LINUX_SLL : LINKTYPE_ETHERNET);
    write(pcapHeader(linktype));
  }
  return { packets, linktype };
}
