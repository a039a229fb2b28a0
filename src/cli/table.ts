/**
 * Readable output of the CLI verbs: aligned tables and short summaries. `--json` bypasses
 * all of this and prints the API's answer as is.
 */
import type { DirectoryStatus, MacDirectoryStats, MacRecord } from '../directory/directory.js';
import type { DirectoryForwardingCounters } from '../directory/forwarding.js';
import type { EvpnNeighborRow, EvpnRouteRow } from '../directory/evpn-directory.js';
import type { PeerInfo, StatsSnapshot } from '../daemon/stats.js';
import { whereText, type FdbRow } from '../core/fdb.js';
import type { TraceResult } from '../core/trace.js';
import type { RoleStatus } from '../overlay/roles.js';

/** A count as humanBytes writes it: right-aligned like a number. */
const HUMAN = /^\d+(\.\d)?[KMGTPE]$/;

/** Columns padded to their widest cell; numbers (and humanBytes counts) right-aligned. */
export function table(headers: string[], rows: (string | number | null)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null ? '-' : String(c))));
  const isNumber = (c: string | number | null | undefined) => typeof c === 'number' || c === null || (typeof c === 'string' && HUMAN.test(c));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => isNumber(r[i])));
  const width = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(width[i]!) : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

/**
 * A byte count in units a person reads, as `ip -s -h` does: powers of 1000, K M G T P E
 * with one decimal (1500 -> "1.5K", 2000000 -> "2.0M"); below 1000 the number itself.
 */
export function humanBytes(n: number): string | number {
  if (n < 1000) return n;
  const units = 'KMGTPE';
  let i = 0;
  let v = n / 1000;
  while (v >= 999.95 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(1)}${units[i]}`;
}

export function duration(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', `${s % 60}s`].filter(Boolean);
  return parts.slice(0, 3).join(' ');
}

export interface StatusResult {
  pid: number;
  version: string;
  uptimeSeconds: number;
  underlay: { local: string; port: number; mtu: number; queues: number };
  /** process: the PID of the data path's own process (VTEPD_DP_PROCESS=1), null: in the daemon's. Absent from older daemons. */
  datapath?: { process: number | null };
  control: string;
  metrics: string | null;
  config: string;
  takeover: { fromPid: number; gapMs: number } | null;
  reloads: { ok: number; failed: number };
  tenants: { name: string; vni: number; learning: boolean; ports: string[]; flood: string[]; macs: number }[];
  /** net: the network of a port attached at runtime (vtepd port add); null or absent: from the config. */
  ports: {
    tenant: string;
    tap: string;
    kind?: string;
    netns: string | null;
    ifindex: number;
    mac: string;
    mtu: number;
    net?: string | null;
    waiting?: boolean;
  }[];
  peers: { vtep: string; dynamic: boolean; pathMtu?: number }[];
  /** VLAN trunks (#15); absent from a daemon older than trunks. */
  trunks?: {
    attach: string;
    netns: string | null;
    ifindex: number;
    mac: string;
    mtu: number;
    up: boolean;
    native: string | null;
    vlans: { vlan: number; tenant: string; port: string; pool: boolean }[];
    pool: { first: number; last: number } | null;
  }[];
  overlay?: RoleStatus;
  /** null or absent: no directory (static flood lists). */
  directory?:
    | (DirectoryStatus & {
        floodUpdates: number;
        applyErrors: number;
        tenants: Record<string, string[]>;
        macs?: MacDirectoryStats;
        forwarding?: DirectoryForwardingCounters | null;
      })
    | null;
}

/** A port's KIND column: tap or attach, and `(waiting for it)` while its interface does not exist. */
export const kindText = (kind: string | undefined, waiting = false): string => `${kind ?? 'tap'}${waiting ? ' (waiting for it)' : ''}`;

export function formatStatus(s: StatusResult): string {
  const head = [
    `vtepd ${s.version}, pid ${s.pid}, up ${duration(s.uptimeSeconds)}, underlay ${s.underlay.local} udp/${s.underlay.port} (MTU ${s.underlay.mtu}${s.underlay.queues > 1 ? `, ${s.underlay.queues} queues` : ''})`,
    `config ${s.config}, control ${s.control}, metrics ${s.metrics ?? 'off'}, reloads ${s.reloads.ok} ok / ${s.reloads.failed} failed` +
      (s.takeover ? `, took over from pid ${s.takeover.fromPid} (forwarding paused ${s.takeover.gapMs} ms)` : ''),
    ...(s.datapath ? [`data path: ${s.datapath.process === null ? 'in process' : `process ${s.datapath.process}`}`] : []),
    '',
  ].join('\n');
  const tenants = table(
    ['TENANT', 'VNI', 'PORTS', 'FLOOD', 'MACS', 'LEARNING'],
    s.tenants.map((t) => [t.name, t.vni, t.ports.join(',') || '-', t.flood.join(',') || '-', t.macs, t.learning ? 'on' : 'off']),
  );
  const ports = table(
    ['PORT', 'TENANT', 'NETNS', 'IFINDEX', 'MAC', 'MTU', 'FROM', 'KIND'],
    s.ports.map((p) =>
      p.waiting
        ? [p.tap, p.tenant, p.netns ?? '-', '-', '-', '-', p.net ? `port add ${p.net}` : 'config', kindText(p.kind, true)]
        : [p.tap, p.tenant, p.netns ?? '-', p.ifindex, p.mac, p.mtu, p.net ? `port add ${p.net}` : 'config', kindText(p.kind)],
    ),
  );
  const peers = table(
    ['PEER', 'TYPE', 'PATH MTU'],
    s.peers.map((p) => [p.vtep, p.dynamic ? 'learned' : 'configured', p.pathMtu || '-']),
  );
  return `${head}\n${tenants}\n${ports}\n${formatTrunks(s.trunks ?? [])}${peers}${s.overlay ? formatOverlay(s.overlay) : ''}${s.directory ? formatDirectory(s.directory) : ''}`;
}

/** Trunks: one row per VLAN (and the native one), where each VLAN ID came from (vlans, or the pool). */
function formatTrunks(trunks: NonNullable<StatusResult['trunks']>): string {
  if (!trunks.length) return '';
  const rows = trunks.flatMap((t) => {
    const where = [t.attach, t.netns ?? '-'];
    const state = t.up ? `up, MTU ${t.mtu}` : 'GONE (re-attached when back)';
    const vlans = t.vlans.map((v) => [...where, v.vlan, v.tenant, v.pool ? `pool ${t.pool ? `${t.pool.first}-${t.pool.last}` : ''}` : 'config', state]);
    const native = t.native ? [[...where, 'untagged', t.native, 'native', state]] : [];
    return [...vlans, ...native];
  });
  return `${table(['TRUNK', 'NETNS', 'VLAN', 'TENANT', 'FROM', 'STATE'], rows)}\n`;
}

/** With a directory: its backend and state, and each tenant's members (other than this host). */
function formatDirectory(d: NonNullable<StatusResult['directory']>): string {
  const bgp = d.evpn
    ? ` AS ${d.evpn.asn} router-id ${d.evpn.routerId}, neighbors ${d.evpn.neighbors.map((n) => `${n.address} ${n.state}`).join(', ')}, ` +
      `routes in ${d.evpn.routes.in} out ${d.evpn.routes.out}`
    : '';
  const where = d.endpoints ? ` ${d.endpoints.join(',')} prefix ${d.prefix}` : bgp;
  return (
    `\n\ndirectory ${d.backend}${where}: ${d.connected ? 'connected' : 'UNREACHABLE (last-known members kept)'}, errors ${d.errors}, ` +
    `flood lists updated ${d.floodUpdates}, joined VNIs ${d.joined.join(',') || '-'}\n${table(
      ['TENANT', 'MEMBERS'],
      Object.entries(d.tenants).map(([t, ms]) => [t, ms.join(',') || '-']),
    )}` +
    (d.macs
      ? `MACs in the directory ${d.macs.macs} (this host ${d.macs.owned}), claims ${d.macs.claims}, conflicts ${d.macs.claimConflicts}, ` +
        `moves ${d.macs.moves}, frozen ${d.macs.frozen}, withdrawn ${d.macs.withdrawn}` +
        (d.forwarding ? `; programmed here ${d.forwarding.programmed}, moved here ${d.forwarding.movedHere}, moved away ${d.forwarding.movedAway}` : '') +
        '\n'
      : '')
  );
}

/** The role's part of `vtepd status`: a spoke's hubs, a hub's spokes, and the node's keyed peers. */
function formatOverlay(o: RoleStatus): string {
  return formatRole(o) + formatSecure(o);
}

const ago = (n: number | null) => (n === null ? 'never' : `${n}s ago`);

/** With an identity: this node's public key, each peer's session, what was dropped unanswered. */
function formatSecure(o: RoleStatus): string {
  const s = o.secure;
  if (!s) return '';
  const dropped = Object.entries(s.dropped)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return (
    `\n\nidentity ${s.publicKey}, ${s.cipher}, rekey every ${s.rekeyInterval} s, handshakes ${s.handshakes}, cookies sent ${s.cookiesSent}, ` +
    `unauthenticated liveness ${o.unauthenticated}${dropped ? `\ndropped unanswered: ${dropped}` : ''}\n${table(
      ['PEER', 'KEY', 'VTEP', 'SESSION', 'AGE', 'HANDSHAKES', 'LAST HEARD'],
      s.peers.map((p) => [
        p.name,
        `${p.publicKey.slice(0, 10)}…`,
        p.vtep ?? '-',
        p.up ? 'up' : 'DOWN',
        p.sessionAgeSeconds === null ? '-' : `${p.sessionAgeSeconds}s`,
        p.handshakes,
        ago(p.lastHeardSecondsAgo),
      ]),
    )}`
  );
}

function formatRole(o: RoleStatus): string {
  const head = `\nrole ${o.role}${o.nat ? ' (behind NAT)' : ''}, sender ${o.senderId}, deadInterval ${o.deadInterval} s, failovers ${o.failovers}`;
  if (o.role === 'spoke') {
    return `${head}\n${table(
      ['HUB', 'ACTIVE', 'ALIVE', 'LAST REPLY', 'RTT', 'PATH MTU'],
      o.hubs.map((h) => [
        `${h.address}:${h.port}`,
        h.active ? 'yes' : '',
        h.alive ? 'up' : 'DOWN',
        ago(h.lastReplySecondsAgo),
        h.rttMs === null ? '-' : `${h.rttMs} ms`,
        `${h.pathMtu} (${h.pathMtuState})`,
      ]),
    )}`;
  }
  if (o.role === 'hub') {
    return `${head}\n${table(
      ['SPOKE', 'NAT', 'VNIS', 'LAST PROBE', 'PATH MTU'],
      o.spokes.map((x) => [x.vtep, x.nat ? 'yes' : '', x.vnis.join(','), ago(x.lastHeardSecondsAgo), `${x.pathMtu} (${x.pathMtuState})`]),
    )}`;
  }
  return head;
}

export function formatFdb(rows: FdbRow[]): string {
  return table(
    ['TENANT', 'VNI', 'MAC', 'WHERE', 'TYPE', 'AGE'],
    rows.map((r) => [r.tenant, r.vni, r.mac, whereText(r.where), r.type, r.ageSeconds === null ? '-' : `${r.ageSeconds}s`]),
  );
}

/** The directory's MAC records of one tenant (`vtepd fdb directory`). */
export function formatMacRecords(rows: (MacRecord & { frozen: boolean })[]): string {
  return table(
    ['MAC', 'OWNER', 'IPS', 'SEQ', 'FLAGS'],
    rows.map((r) => [r.mac, r.owner, r.ips.join(',') || '-', r.seq, [r.pinned ? 'pinned' : '', r.frozen ? 'frozen' : ''].filter(Boolean).join(',') || '-']),
  );
}

/** `vtepd evpn routes`: gobgpd's EVPN routes, type 2 (MAC, MAC+IP) and type 3 (the VTEP's membership of a VNI). */
export function formatEvpnRoutes(rows: EvpnRouteRow[]): string {
  if (rows.length === 0) return 'no EVPN routes\n';
  return table(
    ['VNI', 'TYPE', 'MAC', 'IP', 'VTEP', 'SEQ', 'STICKY', 'FROM', 'RD'],
    rows.map((r) => [
      r.vni,
      r.type === 2 ? '2 mac' : '3 vtep',
      r.mac ?? '-',
      r.type === 2 ? (r.ip ?? '-') : '-',
      r.nexthop,
      r.seq ?? '-',
      r.sticky ? 'yes' : 'no',
      r.from,
      r.rd,
    ]),
  );
}

/** `vtepd evpn neighbors`: each BGP session, how long it has been in its state, its changes and route counts. */
export function formatEvpnNeighbors(rows: EvpnNeighborRow[], now = Date.now()): string {
  const since = (r: EvpnNeighborRow) => {
    const t = r.state === 'established' ? r.uptime : r.downtime;
    return t === null ? '-' : duration(Math.max(0, Math.round((now - Date.parse(t)) / 1000)));
  };
  return table(
    ['NEIGHBOR', 'STATE', 'FOR', 'ROUTER ID', 'UP/DOWNS', 'RECEIVED', 'ACCEPTED', 'ADVERTISED'],
    rows.map((r) => [r.address, r.state, since(r), r.routerId, r.changes, r.received, r.accepted, r.advertised]),
  );
}

/** Byte counts as they are, or (`human`) in K/M/G. */
const bytesIn = (human: boolean) => (n: number) => (human ? humanBytes(n) : n);

export function formatPeers(peers: PeerInfo[], human = false): string {
  const b = bytesIn(human);
  return table(
    ['VTEP', 'STATE', 'LAST SEEN', 'TYPE', 'IN FLOOD LIST OF', 'MACS', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'DROPS'],
    peers.map((p) => [
      p.vtep,
      p.state,
      p.lastSeenSeconds === null ? 'never' : `${p.lastSeenSeconds}s ago`,
      p.dynamic ? 'learned' : 'configured',
      p.floodOf.join(',') || '-',
      p.macs,
      p.rxPackets,
      b(p.rxBytes),
      p.txPackets,
      b(p.txBytes),
      p.drops,
    ]),
  );
}

export function formatStats(s: StatsSnapshot, all = false, human = false): string {
  const b = bytesIn(human);
  const tenants = table(
    [
      'TENANT',
      'VNI',
      'PORTS',
      'LEARNED MACS',
      'STATIC MACS',
      'LEARN EVENTS',
      'MOVES',
      'AGED OUT',
      'REFUSED (MAXMACS)',
      'FLOODED',
      'HAIRPIN DROPS',
      'SPLIT-HORIZON DROPS',
    ],
    s.tenants.map((t) => [
      t.tenant,
      t.vni,
      t.ports,
      t.fdbLearned,
      t.fdbStatic,
      t.learned,
      t.moves,
      t.aged,
      t.limitRefused,
      t.flooded,
      t.hairpinDrops,
      t.splitHorizonDrops,
    ]),
  );
  // A tenant's traffic through tunnels (all VTEPs together), inner frames.
  const tunnels = table(
    ['TENANT', 'TUNNEL RX PKTS', 'TUNNEL RX BYTES', 'TUNNEL TX PKTS', 'TUNNEL TX BYTES', 'TUNNEL DROPS'],
    s.tenants.map((t) => [
      t.tenant,
      t.tunnel?.rxPackets ?? 0,
      b(t.tunnel?.rxBytes ?? 0),
      t.tunnel?.txPackets ?? 0,
      b(t.tunnel?.txBytes ?? 0),
      t.tunnel?.drops ?? 0,
    ]),
  );
  const ports = table(
    ['PORT', 'TENANT', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'DROPS', 'KIND'],
    s.ports.map((p) => [p.port, p.tenant, p.rxPackets, b(p.rxBytes), p.txPackets, b(p.txBytes), p.drops, p.kind ?? 'tap']),
  );
  const peers = table(
    ['PEER', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'DROPS'],
    s.peers.map((p) => [p.vtep, p.rxPackets, b(p.rxBytes), p.txPackets, b(p.txBytes), p.drops]),
  );
  const dp = table(
    ['FAST PATH', 'COUNT'],
    Object.entries(s.datapath)
      .filter(([, v]) => all || v > 0)
      .map(([k, v]) => [k, v]),
  );
  const drops = Object.entries(s.drops).filter(([, v]) => all || v > 0);
  const dropText = drops.length
    ? table(
        ['DROP REASON', 'COUNT'],
        drops.map(([k, v]) => [k, v]),
      )
    : 'no drops\n';
  // Only with underlay.queues > 1: how the kernel spread the flows over the thread pairs.
  const queues =
    (s.queues ?? []).length > 1
      ? `${table(
          ['QUEUE', 'FRAMES FROM PORTS', 'PACKETS FROM UNDERLAY'],
          s.queues.map((q) => [q.queue, q.encapFrames, q.decapPackets]),
        )}\n`
      : '';
  // Only with a directory (or --all): remote MACs it put in the tables, neighbour requests answered here or flooded.
  const dirRows = s.tenants.filter((t) => all || t.fdbDirectory || t.arpSuppressed || t.arpFlooded || t.ndSuppressed || t.ndFlooded);
  const directory = dirRows.length
    ? `${table(
        ['TENANT', 'DIRECTORY MACS', 'ARP SUPPRESSED', 'ARP FLOODED', 'ND SUPPRESSED', 'ND FLOODED'],
        dirRows.map((t) => [t.tenant, t.fdbDirectory ?? 0, t.arpSuppressed ?? 0, t.arpFlooded ?? 0, t.ndSuppressed ?? 0, t.ndFlooded ?? 0]),
      )}\n`
    : '';
  return `${tenants}\n${directory}${tunnels}\n${ports}\n${peers}\n${queues}${dp}\n${dropText}`;
}

export function formatTrace(t: TraceResult): string {
  const to = [...t.outputs.ports.map((p) => `port ${p}`), ...t.outputs.vteps.map((v) => whereText(v))];
  const result =
    t.action === 'drop'
      ? `drop (${t.reason})`
      : t.action === 'forward'
        ? `forward to ${to.join(', ')} (${t.reason})`
        : `flood (${t.reason}) to ${to.length ? to.join(', ') : 'nowhere'}`;
  return [
    `trace tenant ${t.tenant} (VNI ${t.vni}): ${t.src} -> ${t.dst}, in ${whereText(t.ingress)}${t.ingress.known === false ? ' (not known)' : ''}`,
    ...t.steps.map((s) => `  ${s}`),
    `result: ${result}`,
    '',
  ].join('\n');
}
