/**
 * The live view of `vtepd capture` (no -w): one line per frame, as tcpdump -e prints it,
 * with where the frame was seen and which way it went through the switch:
 *
 *   12:00:01.123456 port blue0 rx 02:00:00:00:00:01 > 02:00:00:00:00:02, IPv4, 10.1.0.1 > 10.1.0.2: ICMP echo request, length 98
 *   12:00:01.123502 vtep 10.0.0.2 tx GRE-TAP key 5001: 02:00:00:00:00:01 > 02:00:00:00:00:02, IPv4, ...
 *
 * Decoded here, in the client, from the pcap records the daemon streams: nothing of this
 * runs in the daemon's data path.
 */
import { Address6 } from 'ip-address';
import type { Encap } from '../core/encap.js';
import { PcapReader, type FrameMeta, type PcapRecord } from '../daemon/capture.js';

const ETHERTYPES = new Map<number, string>([
  [0x0800, 'IPv4'],
  [0x0806, 'ARP'],
  [0x86dd, 'IPv6'],
  [0x8035, 'RARP'],
  [0x88cc, 'LLDP'],
]);
const IP_PROTOS: Record<number, string> = { 1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 47: 'GRE', 58: 'ICMP6', 132: 'SCTP' };
const ICMP: Record<number, string> = { 0: 'echo reply', 3: 'unreachable', 5: 'redirect', 8: 'echo request', 11: 'time exceeded' };
const ICMP6: Record<number, string> = {
  1: 'unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  128: 'echo request',
  129: 'echo reply',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
};

function mac(b: Buffer, at: number): string {
  return [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ip4(b: Buffer, at: number): string {
  return [...b.subarray(at, at + 4)].join('.');
}

function ip6(b: Buffer, at: number): string {
  return Address6.fromUnsignedByteArray([...b.subarray(at, at + 16)]).correctForm();
}

/** TCP flags as tcpdump writes them: [S], [S.], [P.], [F.], [R]. */
function tcpFlags(f: number): string {
  const s = ['F', 'S', 'R', 'P', 'U'].filter((_, i) => f & (1 << i)).join('');
  return `[${s}${f & 0x10 ? '.' : ''}]`;
}

/** The transport part after the addresses: "a.p > b.q: TCP [S]" or "a > b: ICMP echo request". */
function transport(b: Buffer, at: number, proto: number, src: string, dst: string): string {
  const name = IP_PROTOS[proto] ?? `ip-proto-${proto}`;
  if ((proto === 6 || proto === 17) && b.length >= at + 4) {
    const ports = `${src}.${b.readUInt16BE(at)} > ${dst}.${b.readUInt16BE(at + 2)}`;
    return proto === 6 && b.length >= at + 14 ? `${ports}: TCP ${tcpFlags(b[at + 13]!)}` : `${ports}: ${name}`;
  }
  const types = proto === 1 ? ICMP : proto === 58 ? ICMP6 : undefined;
  if (types && b.length > at) return `${src} > ${dst}: ${name} ${types[b[at]!] ?? `type ${b[at]}`}`;
  return `${src} > ${dst}: ${name}`;
}

function arp(b: Buffer, at: number): string {
  if (b.length < at + 28) return 'truncated';
  const op = b.readUInt16BE(at + 6);
  const [sha, spa, tpa] = [mac(b, at + 8), ip4(b, at + 14), ip4(b, at + 24)];
  if (op === 1) return `Request who-has ${tpa} tell ${spa}`;
  if (op === 2) return `Reply ${spa} is-at ${sha}`;
  return `op ${op}`;
}

/** What follows the ethertype: the IP addresses and protocol, or ARP's question. */
function payload(b: Buffer, at: number, type: number): string {
  if (type === 0x0800 && b.length >= at + 20) {
    const first = (b.readUInt16BE(at + 6) & 0x1fff) === 0;
    const src = ip4(b, at + 12);
    const dst = ip4(b, at + 16);
    return first ? transport(b, at + (b[at]! & 0x0f) * 4, b[at + 9]!, src, dst) : `${src} > ${dst}: fragment`;
  }
  if (type === 0x86dd && b.length >= at + 40) return transport(b, at + 40, b[at + 6]!, ip6(b, at + 8), ip6(b, at + 24));
  if (type === 0x0806 || type === 0x8035) return arp(b, at);
  return '';
}

/** An Ethernet frame in one line: "src > dst, [vlan N, ]IPv4, a > b: ICMP echo request". */
export function describeEthernet(b: Buffer): string {
  if (b.length < 14) return `truncated frame (${b.length} bytes)`;
  let at = 12;
  let type = b.readUInt16BE(at);
  const parts = [`${mac(b, 6)} > ${mac(b, 0)}`];
  while ((type === 0x8100 || type === 0x88a8) && b.length >= at + 6) {
    parts.push(`vlan ${b.readUInt16BE(at + 2) & 0x0fff}`);
    at += 4;
    type = b.readUInt16BE(at);
  }
  at += 2;
  if (type < 0x0600) return [...parts, `802.3, length ${type}`].join(', ');
  parts.push(ETHERTYPES.get(type) ?? `ethertype 0x${type.toString(16).padStart(4, '0')}`);
  const rest = payload(b, at, type);
  return (rest ? [...parts, rest] : parts).join(', ');
}

/** An encapsulation's id as its RFC names it. */
function tunnelId(encap: Encap, key: number): string {
  if (encap === 'vxlan') return `VXLAN vni ${key}`;
  if (encap === 'gre') return `GRE-TAP key ${key}`;
  return `NVGRE vsid ${key >>> 8} flowid ${key & 0xff}`;
}

/** The record's time as tcpdump prints it: local HH:MM:SS.uuuuuu. */
function clock(r: PcapRecord): string {
  const t = new Date(r.tsSec * 1000);
  const hms = [t.getHours(), t.getMinutes(), t.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
  return `${hms}.${String(r.tsUsec).padStart(6, '0')}`;
}

/**
 * One line for one record: time, where (port or VTEP) and which way, then the frame (of
 * an --outer packet: its tunnel id, then the inner frame), and its length on the wire.
 */
export function frameLine(r: PcapRecord, meta: FrameMeta): string {
  const w = meta.where;
  const where = `${w.kind === 'port' ? `port ${w.port}` : `vtep ${w.vtep}`}${meta.dir ? ` ${meta.dir}` : ''}`;
  const outer = meta.inner !== undefined && meta.key !== undefined && meta.encap !== undefined;
  const what = outer ? `${tunnelId(meta.encap!, meta.key!)}: ${describeEthernet(r.data.subarray(meta.inner))}` : describeEthernet(r.data);
  return `${clock(r)} ${where} ${what}, length ${r.origLen}`;
}

/** A frame as one JSON object (the live view with --json): what the line says, in fields; `where` as fdb show's. */
export function frameJson(r: PcapRecord, meta: FrameMeta): Record<string, unknown> {
  const time = new Date(r.tsSec * 1000).toISOString().replace(/\.\d+Z$/, `.${String(r.tsUsec).padStart(6, '0')}Z`);
  const frame = meta.inner !== undefined ? r.data.subarray(meta.inner) : r.data;
  return {
    time,
    where: meta.where,
    dir: meta.dir ?? null,
    ...(meta.key !== undefined ? { key: meta.key } : {}),
    frame: describeEthernet(frame),
    length: r.origLen,
  };
}

/**
 * The live view: takes the daemon's pcap stream (the header, then one record per event
 * with where it was seen) and prints each frame in time order. A frame is held `holdMs`
 * so that one seen by another tcpdump a little earlier (a port's other direction, the
 * underlay) is printed before it.
 */
export class LiveView {
  private readonly reader = new PcapReader();
  private held: { r: PcapRecord; meta: FrameMeta }[] = [];

  constructor(
    private readonly print: (r: PcapRecord, meta: FrameMeta) => void,
    private readonly holdMs = 100,
  ) {}

  push(bytes: Buffer, meta?: FrameMeta): void {
    for (const r of this.reader.push(bytes)) if (meta) this.held.push({ r, meta });
  }

  /** Print what is older than the hold time (everything with `all`), oldest first. */
  flush(all = false, nowMs = Date.now()): void {
    const us = (r: PcapRecord) => r.tsSec * 1e6 + r.tsUsec;
    this.held.sort((a, b) => us(a.r) - us(b.r));
    const upTo = all ? Infinity : (nowMs - this.holdMs) * 1000;
    let n = 0;
    while (n < this.held.length && us(this.held[n]!.r) <= upTo) n++;
    for (const f of this.held.splice(0, n)) this.print(f.r, f.meta);
  }
}
