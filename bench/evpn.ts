/**
 * `npm run bench:evpn` (#17): how fast a MAC reaches an FRR host's kernel FDB over BGP EVPN
 * when vtepd originates it, against FRR originating it, in one lab and one run. Also run
 * by `npm run bench` (BENCH_EVPN=0 skips it). Two FRR 8.4 hosts with the kernel's VXLAN
 * (lab/frr.ts) and one vtepd host (its own supervised gobgpd), iBGP AS 65000, A the route
 * reflector of B and V, VNI 100 everywhere, no flood list anywhere:
 *
 *   [vma]  -- vm100 br100 vx100 [a] FRR 10.0.0.1 (reflector) --+
 *   [vmb]  -- vm100 br100 vx100 [b] FRR 10.0.0.2 --------------+ br0 [sw]
 *   [bulkb]-- bk100 /                                          |
 *   [vmv]  -- TAP v0    vtepd + gobgpd [v] 10.0.0.3 ----------+
 *   [bulkv]-- TAP bulk0 /
 *
 * The judge is A's kernel FDB, read by `bridge -timestamp monitor fdb` in A (kernel
 * timestamps of every add and delete of vx100's entries, by `dst`: B or V).
 *   1. new MAC, one at a time: a frame with a new source MAC out of vmv's TAP (vtepd) or
 *      vmb's eth0 (FRR), its send time taken by the sender just before send(); the sample
 *      is the time until A's FDB adds that MAC (`extern_learn`, dst the sender's VTEP).
 *      BENCH_EVPN_MACS samples per side, alternating which side goes first.
 *   2. bulk: BENCH_EVPN_BULK (10,000) frames from as many new source MACs out of a second
 *      port on each side (bulkv's TAP, bulkb's veth), until A's FDB holds all of them; then
 *      the port goes (vtepd: the port removed from the config and `reload`; FRR: the veth
 *      set down, which flushes the bridge's entries of it) until A's FDB holds none.
 *      These go through the daemons: vtepd learns them on its port and advertises each as
 *      a MAC-only type-2 route through its gobgpd, as bgpd does for B's bridge.
 * Results: a table on stdout, progress on stderr, bench/results/evpn-<date>.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addFrrVtep, type FrrVtep, underlaySwitch } from '../lab/frr.js';
import { Lab } from '../lab/netns.js';
import { startDaemon, type Daemonised } from '../lab/topology.js';
import { until, untilPings } from '../lab/wait.js';
import { request } from '../src/daemon/control.js';
import { progress, silent, type Progress } from './progress.js';
import { markdownTable } from './table.js';
import { daemonCpuSeconds } from '../lab/proc.js';
import { cpuSeconds } from '../src/util/proc.js';

const [A, B, V] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
const ASN = 65000;
const VNI = 100;
export const EVPN_SIDES = ['FRR', 'vtepd'] as const;
export type EvpnSide = (typeof EVPN_SIDES)[number];
/** Each side's VTEP (the `dst` of its MACs in A's FDB), VM and bulk port. */
const SIDE: Record<EvpnSide, { vtep: string; vm: [string, string]; bulk: [string, string]; tag: number }> = {
  FRR: { vtep: B, vm: ['vmb', 'eth0'], bulk: ['bulkb', 'eth0'], tag: 0xb0 },
  vtepd: { vtep: V, vm: ['vmv', 'v0'], bulk: ['bulkv', 'bulk0'], tag: 0xa0 },
};

export interface EvpnOptions {
  /** New-MAC samples per side. */
  macs: number;
  /** MACs of the bulk phase, per side. */
  bulk: number;
  /** How long the bulk phase may take per direction, s. */
  deadline: number;
}

export const evpnOptions = (env = process.env): EvpnOptions => ({
  macs: Math.max(1, Number(env.BENCH_EVPN_MACS ?? 20)),
  bulk: Math.max(1, Number(env.BENCH_EVPN_BULK ?? 10_000)),
  deadline: Math.max(10, Number(env.BENCH_EVPN_DEADLINE ?? 300)),
});

/** Progress steps of evpnBench. */
export const evpnSteps = (o: EvpnOptions) => 2 * o.macs + 4;

/** CPU seconds of each daemon on the path during a bulk step. */
export type DaemonCpu = Record<'vtepd' | 'gobgpd' | 'bgpd a' | 'zebra a' | 'bgpd b' | 'zebra b', number>;

export interface Bulk {
  macs: number;
  /** CPU seconds of each daemon over the originate and the withdraw step. */
  cpu: { originate: DaemonCpu; withdraw: DaemonCpu };
  /** FDB events the monitor missed (then timed by a dump of the FDB, to within a dump's time). */
  monitorLost: { originate: number; withdraw: number };
  /** First frame sent → the last of them added to A's FDB (s), and how many arrived by then (all, unless the deadline passed). */
  originateSeconds: number;
  originated: number;
  /** Port removed → the last of them deleted from A's FDB (s), and how many were deleted. */
  withdrawSeconds: number;
  withdrawn: number;
}

export interface EvpnFigures {
  /** First frame → A's FDB entry, ms, per sample. */
  latency: Record<EvpnSide, number[]>;
  bulk: Record<EvpnSide, Bulk>;
}

/** The q-quantile by nearest rank (q = 0.5: the median of an odd count). */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? s[Math.max(0, Math.ceil(q * s.length) - 1)]! : NaN;
}

/** One FDB event of `bridge -timestamp monitor fdb` on a VXLAN device: a MAC added or deleted with its `dst`. */
export interface FdbEvent {
  at: number;
  mac: string;
  dst: string;
  deleted: boolean;
}

/**
 * Parse `bridge -timestamp monitor fdb` as it comes (whole lines only; give the rest back
 * with the next chunk): each `Timestamp:` line stamps the lines after it (ms since the epoch,
 * µs kept), and each line of `dev` with a `dst` is an event ("Deleted " in front: a delete;
 * else an add, which must be `extern_learn`: FRR's, not learned).
 */
export function fdbEvents(lines: string[], dev: string, stamp: { at: number }): FdbEvent[] {
  const out: FdbEvent[] = [];
  const entry = new RegExp(`^(Deleted )?([0-9a-f:]{17}) dev ${dev} .*dst (\\S+)`);
  for (const line of lines) {
    const t = /^Timestamp: (.*\d{4}) (\d+) usec/.exec(line);
    if (t) {
      stamp.at = Date.parse(t[1]!) + Number(t[2]) / 1000;
      continue;
    }
    const m = entry.exec(line);
    if (m && (m[1] || line.includes('extern_learn'))) out.push({ at: stamp.at, mac: m[2]!, dst: m[3]!, deleted: m[1] !== undefined });
  }
  return out;
}

/** A's FDB of vx100 as its monitor says it: the first add and the first delete of each MAC, by dst. */
class FdbWatch {
  readonly added = new Map<string, number>();
  readonly deleted = new Map<string, number>();
  private rest = '';
  private head = '';
  private readonly stamp = { at: 0 };

  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      if (this.head.length < 4096) this.head += d.toString();
      const lines = (this.rest + d.toString()).split('\n');
      this.rest = lines.pop()!;
      for (const e of fdbEvents(lines, `vx${VNI}`, this.stamp)) {
        const map = e.deleted ? this.deleted : this.added;
        const k = `${e.dst} ${e.mac}`;
        if (!map.has(k)) map.set(k, e.at);
      }
    });
  }

  /** Whether the first 4 kB the monitor printed mention `text`. */
  saw(text: string): boolean {
    return this.head.includes(text);
  }

  /** The times of `macs` (behind `dst`) in `map`, those seen so far. */
  times(map: Map<string, number>, dst: string, macs: string[]): number[] {
    return macs.map((m) => map.get(`${dst} ${m}`)).filter((t): t is number => t !== undefined);
  }
}

/** Frames with source MACs 02:TAG:00:XX:XX:XX (the first `first`..`first + count - 1`) out of IFACE: the time of the first send() on stdout. */
const SEND = `
import socket, sys, time
iface, tag, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
t0 = None
for i in range(first, first + count):
    src = bytes([2, tag, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    frame = b'\\xff' * 6 + src + b'\\x88\\xb5' + b'vtepd evpn bench'.ljust(46, b'\\0')
    if t0 is None:
        t0 = time.time()
    s.send(frame)
    if (i - first) % 500 == 499:
        time.sleep(0.005)
print('%.6f' % t0)
`;
const macOf = (tag: number, i: number) => [2, tag, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':');

interface EvpnLab {
  lab: Lab;
  a: FrrVtep;
  b: FrrVtep;
  v: Daemonised;
  watch: FdbWatch;
  /** vtepd's config with or without its bulk port. */
  config(bulk: boolean): string;
  cleanup(): Promise<void>;
}

/** The lab of the top of this file, sessions up, flood entries in, VMs pinging A's VM. */
async function build(report: Progress): Promise<EvpnLab> {
  const lab = new Lab('be');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-bench-evpn-'));
  const frrs: FrrVtep[] = [];
  const cleanup = async () => {
    for (const f of frrs.reverse()) await f.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await underlaySwitch(lab, [
      ['a', A],
      ['b', B],
      ['v', V],
    ]);
    const vm = (ns: string, n: number) => ({ vni: VNI, vm: { ns, ip: `10.100.0.${n}/24` } });
    const a = await addFrrVtep(lab, 'a', { asn: ASN, routerId: A, underlayIp: A, neighbors: [B, V], rrClients: [B, V], vnis: [vm('vma', 1)] });
    frrs.push(a);
    const b = await addFrrVtep(lab, 'b', { asn: ASN, routerId: B, underlayIp: B, neighbors: [A], vnis: [vm('vmb', 2)] });
    frrs.push(b);
    // B's bulk port: a second veth in its bridge.
    await lab.addHost('bulkb', { ipv6: false });
    await lab.link('b', `bk${VNI}`, null, 'bulkb', 'eth0', null, 1450);
    await lab.exec('b', 'ip', ['link', 'set', `bk${VNI}`, 'master', `br${VNI}`]);
    for (const h of ['vmv', 'bulkv']) await lab.addHost(h, { ipv6: false });
    const config = (bulk: boolean) =>
      [
        `control: { socket: ${join(dir, 'v.sock')} }`,
        `underlay: { local: ${V}, port: 4789 }`,
        'log: { level: warn }',
        `directory: { evpn: { asn: ${ASN}, neighbors: [ { address: ${A} } ] } }`,
        'tenants:',
        '  - name: blue',
        `    vni: ${VNI}`,
        '    maxMacs: 100000',
        `    ports: [ { tap: v0, netns: ${lab.ns('vmv')}, address: 10.100.0.3/24 }${bulk ? `, { tap: bulk0, netns: ${lab.ns('bulkv')} }` : ''} ]`,
        '',
      ].join('\n');
    const v = await startDaemon(lab, 'v', config(true), dir);
    report.note('lab up; waiting for the BGP sessions (GoBGP connects every 5 s)');
    await a.frr.untilEstablished(B, V);
    for (const vtep of [B, V]) await a.untilFlood(`vx${VNI}`, vtep);
    await b.untilFlood(`vx${VNI}`, V);
    const watch = new FdbWatch(lab.spawn('a', 'bridge', ['-timestamp', 'monitor', 'fdb']));
    await monitorLive(lab, watch);
    for (const ns of ['vmv', 'vmb']) await untilPings(lab, ns, '10.100.0.1');
    return { lab, a, b, v, watch, config, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** The monitor is live once it reports an entry added after it started (on a bridge of its own, which FRR does not serve). */
async function monitorLive(lab: Lab, watch: FdbWatch): Promise<void> {
  await lab.exec('a', 'ip', ['link', 'add', 'brmon', 'type', 'bridge']);
  await lab.exec('a', 'bridge', ['fdb', 'add', '02:00:00:00:00:99', 'dev', 'brmon', 'self', 'permanent']);
  await until('the FDB monitor in a to report an entry', async () => watch.saw('02:00:00:00:00:99'), Boolean, 10_000, 50);
  await lab.exec('a', 'ip', ['link', 'del', 'brmon']);
}

/** Send `count` frames from new MACs out of `side`'s VM (or bulk port); the time (ms since the epoch) of the first send(). */
async function send(lab: Lab, side: EvpnSide, port: 'vm' | 'bulk', tag: number, first: number, count: number): Promise<number> {
  const [ns, iface] = SIDE[side][port];
  const r = await lab.exec(ns, 'python3', ['-c', SEND, iface, String(tag), String(first), String(count)]);
  return Number(r.stdout.trim()) * 1000;
}

/** One new MAC from `side`'s VM: ms from its first frame to A's FDB entry. */
async function newMac(e: EvpnLab, side: EvpnSide, i: number): Promise<number> {
  const { vtep, tag } = SIDE[side];
  const mac = macOf(tag + 1, i);
  const sent = await send(e.lab, side, 'vm', tag + 1, i, 1);
  const [t] = await until(
    `${mac} (from ${side}) in a's FDB`,
    async () => e.watch.times(e.watch.added, vtep, [mac]),
    (ts) => ts.length === 1,
    30_000,
    5,
  );
  return t! - sent;
}

/** How many of `macs` A's FDB of vx100 holds behind `vtep` (a dump: what the monitor may have missed). */
async function inFdb(lab: Lab, vtep: string, macs: Set<string>): Promise<number> {
  const out = (await lab.exec('a', 'bridge', ['fdb', 'show', 'dev', `vx${VNI}`])).stdout;
  let n = 0;
  for (const line of out.split('\n')) if (line.includes(` dst ${vtep} `) && macs.has(line.slice(0, 17))) n++;
  return n;
}

export interface Reached {
  /** From t0 to the last MAC's event (s); to the dump that found them all when the monitor missed some. */
  seconds: number;
  count: number;
  /** Events the monitor missed (its netlink socket overflows when it gets no CPU for a while). */
  lost: number;
}

/**
 * Wait until all `macs` are added to (or deleted from) A's FDB behind `vtep`, or the
 * deadline, saying how far it got every 2 s. Timed by the monitor's events; when their count
 * stops rising short of all, A's FDB is dumped as fast as it answers instead.
 */
async function untilAll(
  e: EvpnLab,
  report: Progress,
  what: string,
  deleted: boolean,
  vtep: string,
  macs: string[],
  t0: number,
  deadline: number,
  also: () => Promise<string>,
): Promise<Reached> {
  const map = deleted ? e.watch.deleted : e.watch.added;
  const set = new Set(macs);
  let said = Date.now();
  let last = -1;
  for (;;) {
    const ts = e.watch.times(map, vtep, macs);
    if (ts.length === macs.length) return { seconds: (Math.max(...ts) - t0) / 1000, count: ts.length, lost: 0 };
    if (ts.length === last) {
      const held = await inFdb(e.lab, vtep, set);
      const done = deleted ? macs.length - held : held;
      if (done === macs.length) return { seconds: (Date.now() - t0) / 1000, count: done, lost: macs.length - ts.length };
    }
    last = ts.length;
    if (Date.now() - t0 > deadline * 1000) {
      report.note(`${what}: deadline (${deadline} s) passed with ${ts.length} of ${macs.length}`);
      return { seconds: ts.length ? (Math.max(...ts) - t0) / 1000 : NaN, count: ts.length, lost: 0 };
    }
    if (Date.now() - said >= 2000) {
      said = Date.now();
      report.note(
        `${what}: ${ts.length.toLocaleString('en')} of ${macs.length.toLocaleString('en')} after ${((said - t0) / 1000).toFixed(1)} s${await also()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** utime + stime of a daemon, s: vtepd's with its data path process's (lab/proc.ts). */
const cpuOf = (k: keyof DaemonCpu, pid: number) => (k === 'vtepd' ? daemonCpuSeconds(pid) : cpuSeconds(pid));

/** vtepd's `status`, the part of it this bench reads. */
const evpnStatus = (e: EvpnLab) =>
  request<{ directory: { evpn: { gobgpd: { pid: number } | null; routes: { out: number } } } }>(e.v.socket, 'status', {}, { timeoutMs: 10_000 });

/** The daemons' PIDs: vtepd's, its gobgpd's (from its status), FRR's (their pidfiles). */
async function daemonPids(e: EvpnLab): Promise<Record<keyof DaemonCpu, number>> {
  const st = await evpnStatus(e);
  const frr = (f: FrrVtep, name: string) => Number(readFileSync(join(f.frr.dir, `${name}.pid`), 'utf8').trim());
  return {
    vtepd: e.v.child.pid!,
    gobgpd: st.directory.evpn.gobgpd!.pid,
    'bgpd a': frr(e.a, 'bgpd'),
    'zebra a': frr(e.a, 'zebra'),
    'bgpd b': frr(e.b, 'bgpd'),
    'zebra b': frr(e.b, 'zebra'),
  };
}

/** Run `f`, and the CPU seconds each daemon used meanwhile. */
async function withCpu<T>(pids: Record<keyof DaemonCpu, number>, f: () => Promise<T>): Promise<[T, DaemonCpu]> {
  const keys = Object.keys(pids) as (keyof DaemonCpu)[];
  const before = keys.map((k) => cpuOf(k, pids[k]));
  const r = await f();
  return [r, Object.fromEntries(keys.map((k, i) => [k, cpuOf(k, pids[k]) - before[i]!])) as DaemonCpu];
}

/** The bulk phase of one side: originate, then withdraw by taking the port away (2 steps). */
async function bulk(e: EvpnLab, report: Progress, side: EvpnSide, o: EvpnOptions): Promise<Bulk> {
  const { vtep, tag } = SIDE[side];
  const macs = Array.from({ length: o.bulk }, (_, i) => macOf(tag + 2, i));
  const n = o.bulk.toLocaleString('en');
  const rate = (count: number, s: number) => `${Math.round(count / s).toLocaleString('en')} routes/s`;
  const pids = await daemonPids(e);
  // vtepd's own count of the routes it advertises (it counts a route when it queues the call to gobgpd).
  const also = async () => (side === 'vtepd' ? `; vtepd's routes out: ${(await evpnStatus(e)).directory.evpn.routes.out}` : '');
  const said = ([r, cpu]: [Reached, DaemonCpu]) =>
    `${r.count} in ${r.seconds.toFixed(2)} s, ${rate(r.count, r.seconds)}${r.lost ? ` (the monitor missed ${r.lost}: timed by a dump of the FDB)` : ''}; CPU s: ${Object.entries(
      cpu,
    )
      .map(([k, x]) => `${k} ${x.toFixed(2)}`)
      .join(', ')}`;
  const [up, cpuUp] = await report.step(
    `${side}: ${n} new MACs into a's FDB`,
    () =>
      withCpu(pids, async () => {
        const t0 = await send(e.lab, side, 'bulk', tag + 2, 0, o.bulk);
        return untilAll(e, report, `${side} originate`, false, vtep, macs, t0, o.deadline, also);
      }),
    said,
  );
  const [down, cpuDown] = await report.step(
    `${side}: the bulk port removed, its ${n} MACs out of a's FDB`,
    () =>
      withCpu(pids, async () => {
        const t0 = Date.now();
        if (side === 'vtepd') {
          writeFileSync(e.v.configPath, e.config(false));
          await request(e.v.socket, 'reload', {}, { timeoutMs: 60_000 });
        } else await e.lab.exec('b', 'ip', ['link', 'set', `bk${VNI}`, 'down']);
        return untilAll(e, report, `${side} withdraw`, true, vtep, macs, t0, o.deadline, also);
      }),
    said,
  );
  return {
    macs: o.bulk,
    originateSeconds: up.seconds,
    originated: up.count,
    withdrawSeconds: down.seconds,
    withdrawn: down.count,
    cpu: { originate: cpuUp, withdraw: cpuDown },
    monitorLost: { originate: up.lost, withdraw: down.lost },
  };
}

/** The whole bench (evpnSteps(o) progress steps). */
export async function evpnBench(o: EvpnOptions, report: Progress = silent): Promise<EvpnFigures> {
  const e = await build(report);
  try {
    const latency: Record<EvpnSide, number[]> = { FRR: [], vtepd: [] };
    for (let i = 0; i < o.macs; i++)
      for (const side of i % 2 ? [...EVPN_SIDES].reverse() : EVPN_SIDES) {
        const ms = await report.step(
          `${side}: new MAC ${i + 1}/${o.macs}, first frame → a's FDB`,
          () => newMac(e, side, i),
          (x) => `${x.toFixed(1)} ms`,
        );
        latency[side].push(ms);
      }
    const figures: EvpnFigures = { latency, bulk: {} as Record<EvpnSide, Bulk> };
    for (const side of ['vtepd', 'FRR'] as const) figures.bulk[side] = await bulk(e, report, side, o);
    return figures;
  } finally {
    await e.lab.stop(e.watch.child).catch(() => undefined);
    await e.cleanup();
  }
}

/** The daemons of the host that originates each side's routes. */
const ORIGIN: Record<EvpnSide, (keyof DaemonCpu)[]> = { FRR: ['bgpd b', 'zebra b'], vtepd: ['vtepd', 'gobgpd'] };

/** CPU seconds of `daemons` per 1,000 routes over a bulk step. */
const perThousand = (b: Bulk, k: 'originate' | 'withdraw', daemons: (keyof DaemonCpu)[]) =>
  (daemons.reduce((sum, d) => sum + b.cpu[k][d], 0) * 1000) / (k === 'originate' ? b.originated : b.withdrawn);

/** The table: FRR (the reference) and vtepd side by side, vtepd ÷ FRR. */
export function evpnTable(f: EvpnFigures, o: Pick<EvpnOptions, 'macs' | 'bulk'>): string {
  const n = o.bulk.toLocaleString('en');
  const lat = (q: number) => EVPN_SIDES.map((s) => quantile(f.latency[s], q));
  const orig = EVPN_SIDES.map((s) => f.bulk[s].originateSeconds);
  const wd = EVPN_SIDES.map((s) => f.bulk[s].withdrawSeconds);
  const perS = (secs: number[], counts: number[]) => secs.map((s, i) => counts[i]! / s);
  const counts = (k: 'originated' | 'withdrawn') => EVPN_SIDES.map((s) => f.bulk[s][k]);
  const rows: [string, string, number[], number][] = [
    ['new MAC: first frame → FDB entry, median', 'ms', lat(0.5), 1],
    ['new MAC: first frame → FDB entry, p90', 'ms', lat(0.9), 1],
    [`${n} MACs: first frame → all in the FDB`, 's', orig, 2],
    [`${n} MACs originated`, 'routes/s', perS(orig, counts('originated')), 0],
    [`${n} MACs: port removed → none in the FDB`, 's', wd, 2],
    [`${n} MACs withdrawn`, 'routes/s', perS(wd, counts('withdrawn')), 0],
    ...(['originate', 'withdraw'] as const).flatMap((k): [string, string, number[], number][] => [
      [`${k}: originating host's daemons' CPU`, 's/1,000 routes', EVPN_SIDES.map((s) => perThousand(f.bulk[s], k, ORIGIN[s])), 2],
      [`${k}: A's bgpd + zebra CPU`, 's/1,000 routes', EVPN_SIDES.map((s) => perThousand(f.bulk[s], k, ['bgpd a', 'zebra a'])), 2],
    ]),
  ];
  const head = ['measure (at the FRR host A)', 'unit', 'FRR → FRR (reference)', 'vtepd → FRR', 'vtepd ÷ FRR'];
  const cells = rows.map(([name, unit, [frr, vtepd], digits]) => [
    name,
    unit,
    frr!.toFixed(digits),
    vtepd!.toFixed(digits),
    frr! > 0 ? `${(vtepd! / frr!).toFixed(2)}×` : '-',
  ]);
  const short = EVPN_SIDES.filter((s) => f.bulk[s].originated < o.bulk || f.bulk[s].withdrawn < o.bulk).map(
    (s) => `${s}: ${f.bulk[s].originated} originated, ${f.bulk[s].withdrawn} withdrawn before the deadline`,
  );
  return [
    `BGP EVPN (#17; ${o.macs} new MACs per side, one at a time, and ${n} at once; judged by A's kernel FDB of vx${VNI}, bridge monitor timestamps; originating host's daemons: FRR B's bgpd + zebra, vtepd + its gobgpd${short.length ? `; ${short.join('; ')}` : ''}):`,
    ...markdownTable(head, cells),
  ].join('\n');
}

// Run alone: node dist/bench/evpn.js (npm run bench:evpn)
if (process.argv[1] && /bench[/\\]evpn\.js$/.test(process.argv[1])) {
  const o = evpnOptions();
  const t0 = Date.now();
  const load0 = loadavg()[0]!;
  evpnBench(o, progress('bench:evpn', evpnSteps(o)))
    .then((f) => {
      const date = new Date().toISOString();
      console.log(
        `vtepd EVPN rows — ${date} — ${cpus().length} CPUs, ${((Date.now() - t0) / 1000).toFixed(0)} s in all; load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
      );
      console.log(evpnTable(f, o));
      const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
      const file = `evpn-${date.replace(/[:.]/g, '-')}.json`;
      mkdirSync(resultsDir, { recursive: true });
      writeFileSync(join(resultsDir, file), JSON.stringify({ date, options: o, loadAverage: [load0, loadavg()[0]], evpn: f }, null, 2));
      console.log(`results: bench/results/${file}`);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
