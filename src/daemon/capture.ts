/**
 * `vtepd capture`: a tenant's frames as pcap (tcpdump and tshark read it).
 *
 * Design: the daemon runs tcpdump where the traffic is and streams pcap to the client.
 *  - a port (`--port TAP`, the tenant is the port's): tcpdump on the TAP inside the TAP's
 *    namespace; every frame the VM sends or gets, as is;
 *  - a peer (`--peer VTEP`): tcpdump on the underlay interface (the one holding
 *    underlay.local of the VTEP's family) for the tenant's encapsulations to and from
 *    that VTEP (`udp dst port <port>` for VXLAN, IP protocol 47 for GRE-TAP and NVGRE);
 *    each packet is decapsulated here and kept only if it is the tenant's, read as the
 *    data path reads it (VXLAN VNI; GRE key = VNI for GRE-TAP, key >> 8 = VSID for NVGRE):
 *    the inner frames exchanged with that VTEP. With `--outer` the encapsulated packets
 *    themselves (still only the tenant's);
 *  - the tenant alone: every port of it and its underlay traffic (all VTEPs), merged; a
 *    frame appears once per place it crosses, as on a mirror of every port.
 * The output is classic pcap (microsecond timestamps), link type Ethernet for inner
 * frames, the underlay interface's for `--outer`. The count (--count) is of frames written.
 * Each frame's event also says where it was seen and which way it went through the switch
 * (rx: into it, tx: out of it), for the CLI's live view; for that (`live`) a port runs
 * one tcpdump per direction, since pcap does not carry it.
 * Nothing is captured in the fast path: it costs no cycle when no capture runs.
 */
import { type PortConfig, portKind } from '../config/config.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { Address6 } from 'ip-address';
import type { Encap } from '../core/encap.js';
import type { FdbWhere } from '../core/fdb.js';
import type { Daemon } from './daemon.js';
import type { RunningTrunk } from '../ports/trunk.js';
import { logger } from '../util/log.js';

const log = logger('capture');

export const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;
const SNAPLEN = 262144;

export interface CaptureRequest {
  /** The tenant; optional with `port` (the port's tenant). */
  tenant?: string;
  port?: string;
  peer?: string;
  outer?: boolean;
  /** Stop after this many frames. */
  count?: number;
  /** Stop after this many seconds. */
  seconds?: number;
  /** For a live view: ports captured per direction, so each frame says which way it went. */
  live?: boolean;
}

export interface CaptureSource {
  label: string;
  netns: string | null;
  iface: string;
  filter: string;
  /** none: frames as captured; decap: inner frames of the VNI; outer: encapsulated packets of the VNI. */
  mode: 'none' | 'decap' | 'outer';
  /** tcpdump -Q: one direction of a port only. */
  direction?: 'in' | 'out';
  /** Which way the frames of this source go through the switch (rx: into it, tx: out of it). */
  dir?: 'rx' | 'tx';
}

/** Where a frame was seen, sent with it to the client: a port, or the VTEP at the other end (as fdb show's where). */
export interface FrameMeta {
  where: FdbWhere;
  dir?: 'rx' | 'tx';
  /** The encapsulation of an underlay packet, as the tenant reads it. */
  encap?: Encap;
  /** --outer: the VXLAN VNI or the GRE key, and where the inner frame starts in the record. */
  key?: number;
  inner?: number;
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

/** Where a captured packet's IP header starts and its ethertype, by link type; null if not IP. */
function ipStart(linktype: number, pkt: Buffer): { proto: number; off: number } | null {
  if (linktype === LINKTYPE_ETHERNET) {
    if (pkt.length < 14) return null;
    let off = 12;
    let proto = pkt.readUInt16BE(off);
    off += 2;
    while ((proto === 0x8100 || proto === 0x88a8) && pkt.length >= off + 4) {
      proto = pkt.readUInt16BE(off + 2);
      off += 4;
    }
    return { proto, off };
  }
  if (linktype === LINKTYPE_LINUX_SLL) return pkt.length < 16 ? null : { proto: pkt.readUInt16BE(14), off: 16 };
  if (linktype === LINKTYPE_LINUX_SLL2) return pkt.length < 20 ? null : { proto: pkt.readUInt16BE(0), off: 20 };
  if (linktype === LINKTYPE_RAW) return pkt.length < 1 ? null : { proto: pkt[0]! >> 4 === 6 ? 0x86dd : 0x0800, off: 0 };
  return null;
}

function ipText(b: Buffer): string {
  return b.length === 4 ? [...b].join('.') : Address6.fromUnsignedByteArray([...b]).correctForm();
}

/** An encapsulated packet on the underlay: its outer addresses, the VXLAN VNI or the GRE key, the inner frame. */
export interface Outer {
  encap: 'vxlan' | 'gre';
  /** The VXLAN VNI, or the whole 32-bit GRE key (GRE-TAP: the VNI; NVGRE: VSID << 8 | FlowID). */
  key: number;
  src: string;
  dst: string;
  inner: Buffer;
}

/**
 * Parse an encapsulated packet as captured with `linktype` (Ethernet/SLL/SLL2/raw, IPv4 or
 * IPv6): VXLAN to UDP `port`, or GRE version 0 with a key carrying Ethernet (0x6558).
 * null for anything else (a later fragment, GRE without a key).
 */
export function underlayDecap(linktype: number, pkt: Buffer, port: number): Outer | null {
  const l3 = ipStart(linktype, pkt);
  if (!l3) return null;
  const { off } = l3;
  let next: number;
  let payload: number;
  let src: Buffer;
  let dst: Buffer;
  if (l3.proto === 0x0800) {
    if (pkt.length < off + 20 || pkt[off]! >> 4 !== 4) return null;
    if ((pkt.readUInt16BE(off + 6) & 0x1fff) !== 0) return null; // a later fragment
    next = pkt[off + 9]!;
    payload = off + (pkt[off]! & 0x0f) * 4;
    [src, dst] = [pkt.subarray(off + 12, off + 16), pkt.subarray(off + 16, off + 20)];
  } else if (l3.proto === 0x86dd) {
    if (pkt.length < off + 40) return null;
    next = pkt[off + 6]!;
    payload = off + 40;
    [src, dst] = [pkt.subarray(off + 8, off + 24), pkt.subarray(off + 24, off + 40)];
  } else return null;
  const tunnel = next === 17 ? vxlanPop(pkt, payload, port) : next === 47 ? grePop(pkt, payload) : null;
  return tunnel && { ...tunnel, src: ipText(src), dst: ipText(dst) };
}

/** UDP + VXLAN at `at`: the VNI and the inner frame; null if not VXLAN to `port`. */
function vxlanPop(pkt: Buffer, at: number, port: number): Pick<Outer, 'encap' | 'key' | 'inner'> | null {
  if (pkt.length < at + 8 + 8 + 14 || pkt.readUInt16BE(at + 2) !== port) return null;
  const vx = at + 8;
  if ((pkt[vx]! & 0x08) === 0) return null;
  return { encap: 'vxlan', key: pkt.readUIntBE(vx + 4, 3), inner: pkt.subarray(vx + 8) };
}

/** A GRE header at `at` (RFC 2784/2890): version 0, a key, protocol 0x6558; its key and the inner frame. */
function grePop(pkt: Buffer, at: number): Pick<Outer, 'encap' | 'key' | 'inner'> | null {
  if (pkt.length < at + 4) return null;
  const w0 = pkt.readUInt16BE(at);
  if ((w0 & 0x7) !== 0 || (w0 & 0x2000) === 0 || pkt.readUInt16BE(at + 2) !== 0x6558) return null;
  const keyAt = at + 4 + (w0 & 0x8000 ? 4 : 0);
  const hlen = keyAt + 4 + (w0 & 0x1000 ? 4 : 0);
  if (pkt.length < hlen + 14) return null;
  return { encap: 'gre', key: pkt.readUInt32BE(keyAt), inner: pkt.subarray(hlen) };
}

/** A tenant as the wire names it: its id and the encapsulations it takes. */
export interface TenantWire {
  name: string;
  vni: number;
  encaps: ReadonlySet<Encap>;
}

/**
 * The tenant an encapsulated packet belongs to, read as the data path reads it: VXLAN by
 * VNI; GRE by the whole key for a tenant taking GRE-TAP, else by key >> 8 (the VSID) for
 * one taking NVGRE. Returns the tenant and the encapsulation; null if none.
 */
export function tenantOf(tenants: readonly TenantWire[], o: Pick<Outer, 'encap' | 'key'>): { tenant: string; encap: Encap } | null {
  if (o.encap === 'vxlan') {
    const t = tenants.find((x) => x.vni === o.key);
    return t ? { tenant: t.name, encap: 'vxlan' } : null;
  }
  const gre = tenants.find((x) => x.vni === o.key && x.encaps.has('gre'));
  if (gre) return { tenant: gre.name, encap: 'gre' };
  const nvgre = tenants.find((x) => x.vni === o.key >>> 8 && x.encaps.has('nvgre'));
  return nvgre ? { tenant: nvgre.name, encap: 'nvgre' } : null;
}

/** The interface holding `address` in this namespace ('any' if none does). */
export function interfaceOf(address: string): string {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => a.address === address)) return name;
  }
  return 'any';
}

/** The tcpdump filter for a tenant's encapsulated packets (and one VTEP's). */
export function underlayFilter(encaps: ReadonlySet<Encap>, port: number, peer?: string): string {
  const parts: string[] = [];
  if (encaps.has('vxlan')) parts.push(`udp dst port ${port}`);
  if (encaps.has('gre') || encaps.has('nvgre')) parts.push('ip proto 47', 'ip6 proto 47');
  const what = parts.length > 1 ? `(${parts.join(' or ')})` : parts[0]!;
  return peer ? `${what} and host ${peer}` : what;
}

/** Every tenant of the daemon as the wire names it. */
function wireTenants(d: Daemon): TenantWire[] {
  return d.running.tenants.map((t) => ({ name: t.name, vni: t.vni, encaps: new Set<Encap>([t.encap, ...Object.values(t.vtepEncap)]) }));
}

/**
 * A trunk's VLAN a request names: --port eth1 (the whole trunk, or with --tenant that tenant's
 * VLAN on it), or --port eth1.100 / eth1.native (one VLAN). undefined: not a trunk.
 */
function trunkOf(d: Daemon, req: CaptureRequest): { trunk: RunningTrunk; vlan: number | null; tenant: string } | undefined {
  if (req.port === undefined) return undefined;
  const dot = req.port.lastIndexOf('.');
  const whole = d.trunks.get(req.port);
  const trunk = whole ?? (dot > 0 ? d.trunks.get(req.port.slice(0, dot)) : undefined);
  if (!trunk) return undefined;
  let vlan: number | null = null;
  if (!whole) {
    const v = req.port.slice(dot + 1);
    vlan = v === 'native' ? 0 : Number(v);
    if (!trunk.vlans.has(vlan)) throw new Error(`no VLAN ${v} on trunk ${trunk.config.attach} (its VLANs: ${vlanList(trunk)})`);
  } else if (req.tenant !== undefined) {
    const mine = [...trunk.vlans].find(([, t]) => t === req.tenant);
    if (!mine) throw new Error(`tenant "${req.tenant}" has no VLAN on trunk ${trunk.config.attach} (its VLANs: ${vlanList(trunk)})`);
    vlan = mine[0];
  }
  const tenant = vlan === null ? (req.tenant ?? '') : trunk.vlans.get(vlan)!;
  if (req.tenant !== undefined && tenant !== req.tenant) throw new Error(`no port "${req.port}" in tenant "${req.tenant}"`);
  return { trunk, vlan, tenant };
}

const vlanList = (t: RunningTrunk) => [...t.vlans].map(([v, tenant]) => `${v || 'native'} ${tenant}`).join(', ') || 'none';

/** tcpdump's filter for one VLAN of a trunk (the tag is what the wire carries: tcpdump shows it), or all of it. */
const vlanFilter = (vlan: number | null) => (vlan === null ? '' : vlan ? `vlan ${vlan}` : 'not vlan');

/** The tenant a request names: --tenant, or the tenant of --port. */
function requestedTenant(d: Daemon, req: CaptureRequest): string {
  const t = trunkOf(d, req);
  if (t) return t.tenant;
  if (req.port === undefined) {
    if (req.tenant === undefined) throw new Error('give --tenant NAME or --port TAP');
    return req.tenant;
  }
  const p = d.ports.find((x) => x.tap === req.port);
  if (req.tenant !== undefined && (!p || p.tenant !== req.tenant)) throw new Error(`no port "${req.port}" in tenant "${req.tenant}"`);
  const names = [...d.ports.map((x) => x.tap), ...d.trunks.list().map((x) => x.config.attach)];
  if (!p) throw new Error(`no port "${req.port}" on this daemon (its ports: ${names.join(', ') || 'none'})`);
  return p.tenant;
}

export interface CapturePlan {
  tenant: string;
  sources: CaptureSource[];
  /** This host's underlay addresses: a packet from one of them is sent (tx), else received (rx). */
  locals: string[];
  tenants: TenantWire[];
}

/** Where to run tcpdump for a request, checked against what runs. */
export function planCapture(d: Daemon, req: CaptureRequest): CapturePlan {
  if (req.port !== undefined && req.peer !== undefined) throw new Error('give --port or --peer, not both');
  if (req.outer && req.port !== undefined) throw new Error('--outer captures the underlay: use it with --peer VTEP or the tenant alone, not --port');
  const tenant = requestedTenant(d, req);
  const onTrunk = trunkOf(d, req);
  if (!d.sw.tenant(tenant) && !(onTrunk && tenant === '')) throw d.sw.noTenant(tenant);
  const u = d.running.underlay;
  const tenants = wireTenants(d);
  const encaps = tenants.find((t) => t.name === tenant)?.encaps ?? new Set<Encap>(['vxlan']);
  const mode = req.outer ? 'outer' : 'decap';
  const portSources = (p: { tap: string; netns: string | null; config: PortConfig }): CaptureSource[] => {
    // tcpdump's "out" on a TAP is what its side sends into the switch (rx), "in" what the switch writes (tx);
    // on an attached interface it is the other way round ("in": from the wire into the switch).
    const [rx, tx] = portKind(p.config) === 'attach' ? (['in', 'out'] as const) : (['out', 'in'] as const);
    return req.live
      ? [
          { label: `port ${p.tap}`, netns: p.netns, iface: p.tap, filter: '', mode: 'none', direction: rx, dir: 'rx' },
          { label: `port ${p.tap}`, netns: p.netns, iface: p.tap, filter: '', mode: 'none', direction: tx, dir: 'tx' },
        ]
      : [{ label: `port ${p.tap}`, netns: p.netns, iface: p.tap, filter: '', mode: 'none' }];
  };
  // A trunk: tcpdump on its interface sees each frame with its tag (libpcap puts back the one the kernel took off).
  const trunkSources = (t: RunningTrunk, vlan: number | null): CaptureSource[] => {
    const label = `port ${t.config.attach}${vlan === null ? '' : vlan ? ` vlan ${vlan}` : ' untagged'}`;
    const at = { label, netns: t.config.netns, iface: t.config.attach, filter: vlanFilter(vlan), mode: 'none' as const };
    return req.live
      ? [
          { ...at, direction: 'in', dir: 'rx' },
          { ...at, direction: 'out', dir: 'tx' },
        ]
      : [at];
  };
  const sources: CaptureSource[] = [];
  if (onTrunk) {
    sources.push(...trunkSources(onTrunk.trunk, onTrunk.vlan));
  } else if (req.port !== undefined) {
    sources.push(...portSources(d.ports.find((x) => x.tap === req.port)!));
  } else if (req.peer !== undefined) {
    if (!d.sw.vteps.all().some((v) => v.address === req.peer)) throw new Error(`no VTEP ${req.peer} (vtepd peers lists them)`);
    const family = req.peer.includes(':') ? 6 : 4;
    const local = u.locals.find((l) => l.family === family)?.address ?? u.local;
    sources.push({ label: `vtep ${req.peer}`, netns: null, iface: interfaceOf(local), filter: underlayFilter(encaps, u.port, req.peer), mode });
  } else {
    if (!req.outer) for (const p of d.ports.filter((x) => x.tenant === tenant)) sources.push(...portSources(p));
    if (!req.outer) for (const t of d.trunks.list()) for (const [vlan, who] of t.vlans) if (who === tenant) sources.push(...trunkSources(t, vlan));
    const ifaces = [...new Set(u.locals.map((l) => interfaceOf(l.address)))];
    sources.push({ label: 'underlay', netns: null, iface: ifaces.length === 1 ? ifaces[0]! : 'any', filter: underlayFilter(encaps, u.port), mode });
  }
  return { tenant, sources, locals: u.locals.map((l) => l.address), tenants };
}

/** tcpdump for one source, writing pcap to its stdout. */
function spawnTcpdump(s: CaptureSource): ChildProcess {
  const args = [
    '-i',
    s.iface,
    '-U',
    '-w',
    '-',
    '-s',
    '0',
    '-n',
    '--immediate-mode',
    ...(s.direction ? ['-Q', s.direction] : []),
    ...(s.filter ? [s.filter] : []),
  ];
  return s.netns
    ? spawn('ip', ['netns', 'exec', s.netns, 'tcpdump', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('tcpdump', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves once tcpdump says it listens; rejects with what it said if it fails first. */
function listening(s: CaptureSource, child: ChildProcess): Promise<void> {
  let err = '';
  return new Promise<void>((resolve, reject) => {
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
  });
}

/** What a source's record becomes: the frame to write, its link type and where it was seen; null: not the tenant's. */
function keep(plan: CapturePlan, s: CaptureSource, lt: number, r: PcapRecord, port: number): { r: PcapRecord; lt: number; meta: FrameMeta } | null {
  // A source that takes frames as captured is a port's TAP.
  if (s.mode === 'none') return { r, lt, meta: { where: { kind: 'port', port: s.iface }, dir: s.dir } };
  const o = underlayDecap(lt, r.data, port);
  const owner = o && tenantOf(plan.tenants, o);
  if (!o || owner?.tenant !== plan.tenant) return null;
  const tx = plan.locals.includes(o.src);
  const meta: FrameMeta = { where: { kind: 'vtep', vtep: tx ? o.dst : o.src, encap: owner.encap }, dir: tx ? 'tx' : 'rx', encap: owner.encap };
  if (s.mode === 'outer') return { r, lt, meta: { ...meta, key: o.key, inner: o.inner.byteOffset - r.data.byteOffset } };
  const inner = { tsSec: r.tsSec, tsUsec: r.tsUsec, origLen: o.inner.length + (r.origLen - r.data.length), data: Buffer.from(o.inner) };
  return { r: inner, lt: LINKTYPE_ETHERNET, meta };
}

function describe(s: CaptureSource): string {
  return `${s.label}${s.dir ? ` ${s.dir}` : ''} (${s.netns ? `${s.netns}:` : ''}${s.iface}${s.filter ? `, ${s.filter}` : ''})`;
}

/**
 * Run a capture: start every source, call `started` once all listen, `write` with pcap
 * bytes (header first, then each record with where it was seen), and resolve with the
 * frame count when the count or the time is reached or `signal` aborts.
 */
export async function runCapture(
  d: Daemon,
  req: CaptureRequest,
  write: (bytes: Buffer, meta?: FrameMeta) => void,
  started: (info: { sources: string[]; tenant: string }) => void,
  signal: AbortSignal,
): Promise<{ packets: number; linktype: number | null }> {
  const plan = planCapture(d, req);
  const { sources } = plan;
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
  const emit = (k: { r: PcapRecord; lt: number; meta: FrameMeta }) => {
    if (req.count !== undefined && packets >= req.count) return;
    if (linktype === null) {
      linktype = k.lt;
      write(pcapHeader(k.lt));
    }
    write(pcapRecord(k.r), k.meta);
    packets++;
    if (req.count !== undefined && packets >= req.count) stopAll();
  };
  const ready: Promise<void>[] = [];
  for (const s of sources) {
    const child = spawnTcpdump(s);
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
        const k = keep(plan, s, lt, r, port);
        if (k) emit(k);
      }
    });
    ready.push(listening(s, child));
    child.once('exit', () => {
      if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) finish();
    });
  }
  try {
    await Promise.all(ready);
  } catch (e) {
    stopAll();
    throw e;
  }
  if (linktype === null && req.outer !== true) {
    // Inner frames are always Ethernet: the header goes out even if nothing is captured.
    linktype = LINKTYPE_ETHERNET;
    write(pcapHeader(LINKTYPE_ETHERNET));
  }
  started({ sources: sources.map(describe), tenant: plan.tenant });
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
