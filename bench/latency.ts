/**
 * The latency rows of the benchmark (#18): vtepd's round trip and throughput against the
 * kernel's VXLAN and the userspace overlays a user would pick instead, in ONE run, each on
 * the two-host veth underlay shape (two namespaces over veth, an endpoint namespace behind
 * each side), so that every change to the fast path is measured against them in the same run
 * (`node dist/bench/latency.js`, `npm run bench:latency`, runs them alone):
 *
 *   kernel VXLAN            VNI 9001, udp/8472, the device in the endpoint (k1, k2)
 *   vtepd VXLAN             tenant blue, VNI 5001, udp/4789, TAPs in blue1, blue2
 *   vtepd VXLAN, own        a second pair of daemons with VTEPD_DP_PROCESS=1 (the data path in
 *     process               a process of its own, vtepd-dp): tenant own, VNI 5001, udp/4790,
 *                           TAPs in own1, own2
 *   tinc switch mode        tinc 1.0, tincd -D in h1/h2, TAP moved into the endpoint (lab/vpn.ts);
 *                           Cipher/Digest none, and its default crypto (blowfish CBC + SHA1)
 *   OpenVPN TAP             2.6, p2p over UDP, --cipher none --auth none, and its default
 *                           crypto: TLS with lab certificates, AES-256-GCM negotiated
 *   OVS userspace VXLAN     Open vSwitch's netdev datapath, key 5001 (lab/ovs.ts; a lab of its own)
 *
 * The first six share one lab (h1, h2, and each overlay's endpoints); OVS takes the underlay
 * veth into its bridge, so it has its own two hosts of the same shape. For each overlay:
 *
 *   ping -i 0.01   BENCH_LATENCY_PINGS pings (default 1000): mean and p99 of the RTT
 *   ping -i 0.2    BENCH_LATENCY_SLOW_PINGS pings (default 100): light traffic, every ping
 *                  wakes an idle path
 *   TCP 1 stream   iperf3 -t BENCH_SECONDS (default 5)
 *   UDP 64 B       iperf3 -u -l 64 -b 0: the datagrams per second the receiver got
 *
 * One measurement at a time: each measurement runs over all overlays before the next, the
 * order reversed every other measurement, so a load that comes and goes on the machine hits
 * them alike. The pings go in BENCH_LATENCY_PASSES passes (default 4): a pass is a share of
 * each overlay's pings, all overlays in turn (the order reversed every other pass), and an
 * overlay's figures are of all its passes together. This machine has slow spells that last
 * a minute or so (a round of 200 pings at -i 0.2 over 1 ms 4 times, the next 28 times), and
 * 100 pings at -i 0.2 take 20 s an overlay: in one run each, an overlay could get a spell
 * to itself. During each ping run, the daemons' wake-ups per round trip are counted: the
 * voluntary context switches of all their threads (/proc/PID/task/TID/sched), and of those
 * the migrations (a thread woken on another CPU than it last ran on), less their idle rate
 * measured over the second before the run (timers: an idle vtepd's main thread wakes about
 * once a second). A vtepd whose data path has its own process (VTEPD_DP_PROCESS=1) counts
 * that process's threads too. The kernel's path has no daemon (0). The table gives
 * each vtepd row ÷ the best userspace overlay for each column.
 *
 * Before the measurements, every overlay's daemons sit idle together for BENCH_IDLE_SECONDS
 * (default 60; 0 skips it): the CPU they use meanwhile (utime + stime of each daemon process,
 * all its threads, from /proc/PID/stat) is the column "idle CPU-s / 60 s", and their wake-ups
 * per second over the same window go to the JSON and the progress line.
 *
 * The run also draws bench/results/latency-latest.svg (latencyChartSvg, with bench/chart.ts):
 * the ping mean and p99 at both rates, each overlay ÷ the best userspace overlay.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { iperfGbps, type Lab, parsePing } from '../lab/netns.js';
import { twoHostsOvs } from '../lab/ovs.js';
import { addKernelVxlan, meshConfig, startDaemon, twoHostsVtepd, UNDERLAY, type Daemonised, type TenantPlan } from '../lab/topology.js';
import { addOpenVpn, addTinc, type VpnPlan } from '../lab/vpn.js';
import { untilListening, untilPings } from '../lab/wait.js';
import { gbps, progress, silent, type Progress } from './progress.js';
import { panelsSvg, time, type Panel } from './chart.js';
import { markdownTable } from './table.js';
import { daemonProcesses } from '../lab/proc.js';

/**
 * The vtepd rows: as it runs by default (the data path in the daemon's process; in the runs of
 * 2026-12-08 03:00–04:00 only, the default was a process of its own and the second row was
 * `vtepd VXLAN, in process`), and with VTEPD_DP_PROCESS=1 (in a process of its own).
 */
export const VTEPD_DEFAULT = 'vtepd VXLAN';
export const VTEPD_OWN_PROCESS = 'vtepd VXLAN, own process';

export const LATENCY_MEASURES = ['ping -i 0.01', 'ping -i 0.2', 'TCP 1 stream', 'UDP 64 B'] as const;
type Measure = (typeof LATENCY_MEASURES)[number];
export const LATENCY_OVERLAYS = [
  'kernel VXLAN',
  'vtepd VXLAN',
  'vtepd VXLAN, own process',
  'tinc switch, no crypto',
  'tinc switch, default crypto',
  'OpenVPN TAP, no crypto',
  'OpenVPN TAP, default crypto',
  'OVS userspace VXLAN',
] as const;

/** The ping measures, run in passes (LatencyOptions.passes): the interval, and the row's (and options') key. */
type PingMeasure = Extract<Measure, `ping ${string}`>;
const PINGS: Record<PingMeasure, { interval: number; key: 'fast' | 'slow' }> = {
  'ping -i 0.01': { interval: 0.01, key: 'fast' },
  'ping -i 0.2': { interval: 0.2, key: 'slow' },
};
const isPing = (m: Measure): m is PingMeasure => m in PINGS;

/** Progress steps of latencyRows (the idle phase is one; a ping measure one per pass). */
export const latencySteps = (opts: Pick<LatencyOptions, 'idleSeconds' | 'passes'> = latencyOptions()) => {
  const pings = Object.keys(PINGS).length;
  return (LATENCY_MEASURES.length - pings + pings * opts.passes) * LATENCY_OVERLAYS.length + (opts.idleSeconds > 0 ? 1 : 0);
};

export interface LatencyOptions {
  /** Pings at -i 0.01 and -i 0.2. */
  fast: number;
  slow: number;
  /** iperf3's -t. */
  seconds: number;
  /** The idle phase (0: none). */
  idleSeconds: number;
  /** The pings of each overlay in this many passes, all overlays in turn in each. */
  passes: number;
}

/** What an overlay's daemons did while idle. */
export interface IdleFigure {
  seconds: number;
  /** utime + stime of all their processes and threads over the window. */
  cpuSeconds: number;
  /** Voluntary context switches of all their threads, per second. */
  wakeupsPerSecond: number;
}

export interface PingFigure {
  interval: number;
  sent: number;
  received: number;
  /** RTT in ms. */
  mean: number;
  p99: number;
  min: number;
  /**
   * The overlay's daemons' voluntary context switches per ping and their migrations per ping,
   * less what they do idle (idleWakeupsPerSecond, measured over a second before the run).
   */
  wakeups: number;
  migrations: number;
  idleWakeupsPerSecond: number;
}

export interface LatencyRow {
  overlay: string;
  /** A userspace overlay that vtepd is compared with (not the kernel, not vtepd). */
  peer: boolean;
  /** What it encrypts with ("none" without crypto). */
  cipher: string;
  fast: PingFigure;
  slow: PingFigure;
  /** Gbit/s. */
  tcp1: number;
  /** UDP 64 B datagrams per second that reached the receiver. */
  udp64pps: number;
  /** Absent when the run had no idle phase. */
  idle?: IdleFigure;
}

export interface LatencyFigures {
  /** passes: absent in runs before passes (one run of each overlay's pings). */
  pings: { fast: number; slow: number; passes?: number };
  seconds: number;
  /** The idle phase's length (0 or absent: none). */
  idleSeconds?: number;
  rows: LatencyRow[];
}

/** An overlay of the lab: its name, where to ping from and to, and its daemons. */
export interface Overlay {
  name: string;
  peer: boolean;
  cipher: string;
  lab: Lab;
  client: string;
  server: string;
  addr: string;
  /** The PIDs whose threads do its work (h1's first, then h2's). */
  pids: number[];
}

/** Sum of nr_voluntary_switches and se.nr_migrations over every thread of `pids`. */
function switches(pids: number[]): { wakeups: number; migrations: number } {
  let wakeups = 0;
  let migrations = 0;
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      let text = '';
      try {
        text = readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8');
      } catch {
        continue;
      }
      wakeups += Number(/^nr_voluntary_switches\s*:\s*(\d+)/m.exec(text)?.[1] ?? 0);
      migrations += Number(/^se\.nr_migrations\s*:\s*(\d+)/m.exec(text)?.[1] ?? 0);
    }
  }
  return { wakeups, migrations };
}

const IDLE_MS = 1000;
const CLK_TCK = 100; // USER_HZ: the unit of utime and stime in /proc/PID/stat

/** utime + stime of every process of `pids`, all their threads (fields 14 and 15 of /proc/PID/stat), in seconds. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    let stat = '';
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLK_TCK;
}

/**
 * Every overlay idle at once for `seconds` (they are all up): the CPU and wake-ups of each
 * one's daemons over that one window. A note every 10 s says how far it is.
 */
async function idleWindow(overlays: Overlay[], seconds: number, report: Progress): Promise<Map<string, IdleFigure>> {
  const before = overlays.map((o) => ({ cpu: cpuSeconds(o.pids), sw: switches(o.pids).wakeups }));
  const t0 = Date.now();
  for (let t = 10; t < seconds; t += 10) {
    await new Promise((r) => setTimeout(r, t0 + t * 1000 - Date.now()));
    report.note(`latency: idle ${t}/${seconds} s`);
  }
  await new Promise((r) => setTimeout(r, t0 + seconds * 1000 - Date.now()));
  const elapsed = (Date.now() - t0) / 1000;
  return new Map(
    overlays.map((o, i) => [
      o.name,
      { seconds, cpuSeconds: cpuSeconds(o.pids) - before[i]!.cpu, wakeupsPerSecond: (switches(o.pids).wakeups - before[i]!.sw) / elapsed },
    ]),
  );
}

const idleSaid = (m: Map<string, IdleFigure>) =>
  [...m].map(([name, f]) => `${name} ${f.cpuSeconds.toFixed(2)} CPU-s, ${f.wakeupsPerSecond.toFixed(1)} wake-ups/s`).join('; ');

/** One pass of pings of an overlay: its RTTs (ms), and the wake-ups beyond its idle rate. */
interface PingPass {
  sent: number;
  received: number;
  rtts: number[];
  wakeups: number;
  migrations: number;
  idleWakeupsPerSecond: number;
}

async function pingPass(o: Overlay, interval: number, count: number): Promise<PingPass> {
  const idle0 = switches(o.pids);
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const before = switches(o.pids);
  const idle = { wakeups: (before.wakeups - idle0.wakeups) / IDLE_MS, migrations: (before.migrations - idle0.migrations) / IDLE_MS };
  const t0 = Date.now();
  const r = await o.lab.exec(o.client, 'ping', ['-c', String(count), '-i', String(interval), '-W', '1', o.addr], (3 * count * interval + 60) * 1000);
  const after = switches(o.pids);
  const elapsed = Date.now() - t0;
  return {
    sent: count,
    received: parsePing(r.stdout, count).received,
    rtts: [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])),
    wakeups: Math.max(0, after.wakeups - before.wakeups - idle.wakeups * elapsed),
    migrations: Math.max(0, after.migrations - before.migrations - idle.migrations * elapsed),
    idleWakeupsPerSecond: idle.wakeups * 1000,
  };
}

/** An overlay's passes as one figure: the RTTs of all of them, wake-ups per ping over all. */
export function pingFigure(interval: number, passes: PingPass[]): PingFigure {
  const rtts = passes.flatMap((p) => p.rtts).sort((a, b) => a - b);
  const n = Math.max(1, rtts.length);
  const sum = (f: (p: PingPass) => number) => passes.reduce((a, p) => a + f(p), 0);
  return {
    interval,
    sent: sum((p) => p.sent),
    received: sum((p) => p.received),
    mean: rtts.reduce((a, b) => a + b, 0) / n,
    p99: rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * 0.99))] ?? NaN,
    min: rtts[0] ?? NaN,
    wakeups: sum((p) => p.wakeups) / n,
    migrations: sum((p) => p.migrations) / n,
    idleWakeupsPerSecond: sum((p) => p.idleWakeupsPerSecond) / Math.max(1, passes.length),
  };
}

/** Pass k's share of `count` pings in `passes` passes (they add up to count). */
export const passShare = (count: number, passes: number, k: number) => Math.floor((count * (k + 1)) / passes) - Math.floor((count * k) / passes);

/** iperf3 -J from the overlay's client to its server with `args`. */
async function iperf(o: Overlay, seconds: number, args: string[]): Promise<string> {
  const srv = o.lab.spawn(o.server, 'iperf3', ['-s', '-1', '-B', o.addr]);
  await untilListening(o.lab, o.server, 5201);
  try {
    return (await o.lab.exec(o.client, 'iperf3', ['-c', o.addr, '-t', String(seconds), '-J', ...args], (seconds + 60) * 1000)).stdout;
  } finally {
    await o.lab.stop(srv);
  }
}

/** UDP 64 B at full speed: datagrams per second the receiver got. */
async function udp64(o: Overlay, seconds: number): Promise<number> {
  const sum = (
    JSON.parse(await iperf(o, seconds, ['-u', '-b', '0', '-l', '64'])) as { end: { sum: { packets: number; lost_packets: number; seconds: number } } }
  ).end.sum;
  return (sum.packets - sum.lost_packets) / sum.seconds;
}

const ms = (x: number) => x.toFixed(3);
const pingSaid = (p: PingFigure) =>
  `mean ${ms(p.mean)} ms, p99 ${ms(p.p99)} ms, min ${ms(p.min)} ms, ${p.received}/${p.sent} answered; ${p.wakeups.toFixed(1)} daemon wake-ups per ping (${p.migrations.toFixed(1)} migrations) beyond ${p.idleWakeupsPerSecond.toFixed(0)}/s idle`;

/**
 * A second pair of vtepd daemons in the lab's h1 and h2, with VTEPD_DP_PROCESS=1 (the data
 * path in a process of its own): tenant `own` (VNI 5001 on udp/4790, beside the first pair's
 * 4789), TAPs in own1 and own2 at 10.3.0.1 and .2, configs and sockets in `dir`. The PIDs:
 * each daemon's and its data path process's.
 */
async function ownProcessPair(lab: Lab, dir: string): Promise<{ daemons: Daemonised[]; pids: number[] }> {
  const plan: TenantPlan = { name: 'own', vni: 5001, addresses: ['10.3.0.1/24', '10.3.0.2/24'] };
  const hosts = [UNDERLAY.h1, UNDERLAY.h2];
  for (const h of [1, 2]) await lab.addHost(`own${h}`, { ipv6: false });
  const daemons: Daemonised[] = [];
  for (const [i, h] of ['h1', 'h2'].entries())
    daemons.push(await startDaemon(lab, h, meshConfig(lab, i, hosts, [plan], { port: 4790 }), dir, { env: { VTEPD_DP_PROCESS: '1' } }));
  const pids: number[] = [];
  for (const d of daemons) {
    const p = daemonProcesses(d.child.pid!);
    if (p.length < 2) throw new Error(`${d.configPath}: VTEPD_DP_PROCESS=1, yet the daemon has no data path process`);
    pids.push(...p);
  }
  return { daemons, pids };
}

/**
 * The lab of the kernel, vtepd (as it runs by default and, unless `ownProcess: false`, with
 * its data path in a process of its own), tinc and OpenVPN rows; and its cleanup. `crypto: false`
 * leaves out tinc's and OpenVPN's crypto variants (bench/latency-profile.ts).
 */
export async function mainLab(dir: string, opts: { crypto?: boolean; ownProcess?: boolean } = {}): Promise<{ overlays: Overlay[]; cleanup(): Promise<void> }> {
  const t = await twoHostsVtepd([{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }], { tag: 'vl' });
  try {
    const lab = t.lab;
    await addKernelVxlan(lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'] });
    const plan = (name: string, net: number, port: number, crypto: boolean): VpnPlan => ({
      name,
      hosts: ['h1', 'h2'],
      underlay: [UNDERLAY.h1, UNDERLAY.h2],
      endpoints: [`${name}1`, `${name}2`],
      addresses: [`10.${net}.0.1/24`, `10.${net}.0.2/24`],
      port,
      crypto,
      dir,
    });
    const overlay = (name: string, peer: boolean, cipher: string, ep: string, net: number, pids: number[]): Overlay => ({
      name,
      peer,
      cipher,
      lab,
      client: `${ep}1`,
      server: `${ep}2`,
      addr: `10.${net}.0.2`,
      pids,
    });
    const pidsOf = (cs: { pid?: number }[]) => cs.map((c) => c.pid!);
    const overlays: Overlay[] = [
      overlay('kernel VXLAN', false, 'none', 'k', 9, []),
      overlay(
        VTEPD_DEFAULT,
        false,
        'none',
        'blue',
        1,
        t.daemons.flatMap((d) => daemonProcesses(d.child.pid!)),
      ),
    ];
    if (opts.ownProcess !== false) {
      const ownDir = join(dir, 'own-process');
      mkdirSync(ownDir, { recursive: true });
      overlays.push(overlay(VTEPD_OWN_PROCESS, false, 'none', 'own', 3, (await ownProcessPair(lab, ownDir)).pids));
    }
    for (const [name, label, net, port, crypto, add] of [
      ['tp', 'tinc switch, no crypto', 21, 655, false, addTinc],
      ['tc', 'tinc switch, default crypto', 22, 656, true, addTinc],
      ['op', 'OpenVPN TAP, no crypto', 23, 1194, false, addOpenVpn],
      ['oc', 'OpenVPN TAP, default crypto', 24, 1195, true, addOpenVpn],
    ] as const) {
      if (crypto && opts.crypto === false) continue;
      const v = await add(lab, plan(name, net, port, crypto));
      overlays.push(overlay(label, true, v.cipher, name, net, pidsOf(v.children)));
    }
    return { overlays, cleanup: t.cleanup };
  } catch (e) {
    await t.cleanup();
    throw e;
  }
}

/**
 * Every overlay, measured as the header says. `fast`, `slow`: pings at -i 0.01 and -i 0.2;
 * `seconds`: iperf3's -t.
 */
export async function latencyRows(opts: LatencyOptions, report: Progress = silent): Promise<LatencyFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-lat-'));
  const cleanups: (() => Promise<void>)[] = [];
  try {
    report.note('latency: kernel VXLAN, vtepd (in process, the default, and own process), tinc and OpenVPN on one two-host lab, OVS VXLAN on another');
    const main = await mainLab(dir);
    cleanups.push(main.cleanup);
    const o = await twoHostsOvs('vlo', 'vxlan');
    cleanups.push(o.cleanup);
    const overlays = [
      ...main.overlays,
      {
        name: 'OVS userspace VXLAN',
        peer: true,
        cipher: 'none',
        lab: o.lab,
        client: 'e1',
        server: 'e2',
        addr: '10.1.0.2',
        pids: o.ovs.map((x) => x.vswitchdPid!),
      },
    ];
    // Neighbours resolved, MACs learnt, tunnels up (tinc's UDP path found): a few pings each.
    for (const x of overlays) {
      await untilPings(x.lab, x.client, x.addr);
      await x.lab.exec(x.client, 'ping', ['-c', '5', '-i', '0.2', '-W', '1', x.addr]);
    }
    const got = new Map<string, Partial<LatencyRow>>(overlays.map((x) => [x.name, { overlay: x.name, peer: x.peer, cipher: x.cipher }]));
    if (opts.idleSeconds > 0) {
      const idle = await report.step('every overlay idle', () => idleWindow(overlays, opts.idleSeconds, report), idleSaid, `${opts.idleSeconds} s`);
      for (const [name, f] of idle) got.get(name)!.idle = f;
    }
    const run: Record<Exclude<Measure, PingMeasure>, (x: Overlay) => Promise<Partial<LatencyRow>>> = {
      'TCP 1 stream': async (x) => ({ tcp1: iperfGbps(await iperf(x, opts.seconds, [])) }),
      'UDP 64 B': async (x) => ({ udp64pps: await udp64(x, opts.seconds) }),
    };
    for (const [i, m] of LATENCY_MEASURES.entries()) {
      if (isPing(m)) {
        const p = PINGS[m];
        const done = new Map<string, PingPass[]>(overlays.map((x) => [x.name, []]));
        for (let k = 0; k < opts.passes; k++) {
          const share = passShare(opts[p.key], opts.passes, k);
          for (const x of (i + k) % 2 ? [...overlays].reverse() : overlays) {
            const pass = await report.step(
              `${x.name} ${m} (pass ${k + 1}/${opts.passes})`,
              () => (share > 0 ? pingPass(x, p.interval, share) : Promise.resolve(null)),
              (r) => (r ? pingSaid(pingFigure(p.interval, [r])) : 'no pings in this pass'),
              `${share} pings`,
            );
            if (pass) done.get(x.name)!.push(pass);
          }
        }
        for (const x of overlays) got.get(x.name)![p.key] = pingFigure(p.interval, done.get(x.name)!);
        continue;
      }
      for (const x of i % 2 ? [...overlays].reverse() : overlays)
        Object.assign(
          got.get(x.name)!,
          await report.step(
            `${x.name} ${m}`,
            () => run[m](x),
            (r) => (r.tcp1 !== undefined ? gbps(r.tcp1) : `${((r.udp64pps ?? NaN) / 1e3).toFixed(0)} kpps received`),
            `${opts.seconds} s`,
          ),
        );
    }
    return {
      pings: { fast: opts.fast, slow: opts.slow, passes: opts.passes },
      seconds: opts.seconds,
      idleSeconds: opts.idleSeconds,
      rows: overlays.map((x) => got.get(x.name) as LatencyRow),
    };
  } finally {
    for (const c of cleanups.reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The columns of the table: a figure of a row, whether higher is better, and how it is printed. */
const COLUMNS: { head: string; get: (r: LatencyRow) => number; higher: boolean; fmt: (x: number) => string }[] = [
  { head: '-i 0.01 mean ms', get: (r) => r.fast.mean, higher: false, fmt: ms },
  { head: '-i 0.01 p99 ms', get: (r) => r.fast.p99, higher: false, fmt: ms },
  { head: '-i 0.2 mean ms', get: (r) => r.slow.mean, higher: false, fmt: ms },
  { head: '-i 0.2 p99 ms', get: (r) => r.slow.p99, higher: false, fmt: ms },
  { head: 'TCP 1 Gbit/s', get: (r) => r.tcp1, higher: true, fmt: (x) => x.toFixed(2) },
  { head: 'UDP 64 B kpps', get: (r) => r.udp64pps, higher: true, fmt: (x) => (x / 1e3).toFixed(0) },
];

/**
 * A vtepd row (default: vtepd as it runs by default) ÷ the best userspace overlay of each
 * column (lower RTT, higher throughput), and that overlay.
 */
export function vsBest(f: LatencyFigures, overlay: string = VTEPD_DEFAULT): { head: string; ratio: number; best: string }[] {
  const vtepd = f.rows.find((r) => r.overlay === overlay);
  if (!vtepd) throw new Error(`vsBest: no row "${overlay}"`);
  const peers = f.rows.filter((r) => r.peer);
  return COLUMNS.map((c) => {
    const best = peers.reduce((a, b) => ((c.higher ? c.get(b) > c.get(a) : c.get(b) < c.get(a)) ? b : a));
    return { head: c.head, ratio: c.get(vtepd) / c.get(best), best: best.overlay };
  });
}

/** The vtepd rows the run has, the default first. */
const vtepdRows = (f: LatencyFigures): string[] => [VTEPD_DEFAULT, VTEPD_OWN_PROCESS].filter((o) => f.rows.some((r) => r.overlay === o));

/** The ratios for the results' JSON: vsBest (the default) and vsBestOwnProcess (when the run has that row). */
export function vsBestJson(f: LatencyFigures): { vsBest: ReturnType<typeof vsBest>; vsBestOwnProcess?: ReturnType<typeof vsBest> } {
  return { vsBest: vsBest(f), ...(vtepdRows(f).includes(VTEPD_OWN_PROCESS) ? { vsBestOwnProcess: vsBest(f, VTEPD_OWN_PROCESS) } : {}) };
}

/** The name of a vtepd row's ratio line: "vtepd ÷ best userspace", "vtepd, own process ÷ best userspace". */
const ratioLabel = (overlay: string) => `${overlay.replace(' VXLAN', '')} ÷ best userspace`;

/** The rows as a table: each overlay's figures and wake-ups per ping, then each vtepd row ÷ the best userspace overlay. */
export function latencyTable(f: LatencyFigures): string {
  const head = [
    'overlay',
    'cipher',
    ...COLUMNS.map((c) => c.head),
    'wake-ups/ping -i 0.01 (migrated)',
    '-i 0.2',
    'idle wake-ups/s',
    `idle CPU-s / ${f.idleSeconds || 60} s`,
  ];
  const wakes = (p: PingFigure) => `${p.wakeups.toFixed(1)} (${p.migrations.toFixed(1)})`;
  const cells = f.rows.map((r) => [
    r.overlay,
    r.cipher,
    ...COLUMNS.map((c) => c.fmt(c.get(r))),
    wakes(r.fast),
    wakes(r.slow),
    r.slow.idleWakeupsPerSecond.toFixed(0),
    r.idle ? r.idle.cpuSeconds.toFixed(2) : '-',
  ]);
  const vs = vsBest(f);
  for (const o of vtepdRows(f)) cells.push([ratioLabel(o), '', ...vsBest(f, o).map((v) => `${v.ratio.toFixed(2)}×`), '', '', '', '']);
  return [
    `Latency against userspace peers (#18; ping: ${f.pings.fast} at -i 0.01, ${f.pings.slow} at -i 0.2${f.pings.passes ? `, in ${f.pings.passes} passes` : ''}; iperf3 ${f.seconds} s; one run, each measurement over all overlays in turn):`,
    ...markdownTable(head, cells),
    `best userspace overlay per column: ${vs.map((v) => `${v.head}: ${v.best}`).join('; ')}`,
  ].join('\n');
}

/** The run's sizes from the environment (BENCH_LATENCY_PINGS, BENCH_LATENCY_SLOW_PINGS, BENCH_SECONDS, BENCH_IDLE_SECONDS, BENCH_LATENCY_PASSES). */
export function latencyOptions(env: NodeJS.ProcessEnv = process.env): LatencyOptions {
  return {
    fast: Math.max(1, Number(env.BENCH_LATENCY_PINGS ?? 1000)),
    slow: Math.max(1, Number(env.BENCH_LATENCY_SLOW_PINGS ?? 100)),
    seconds: Number(env.BENCH_SECONDS ?? 5),
    idleSeconds: Math.max(0, Number(env.BENCH_IDLE_SECONDS ?? 60)),
    passes: Math.max(1, Math.floor(Number(env.BENCH_LATENCY_PASSES ?? 4))),
  };
}

/** An overlay's name short enough for the chart's name column ("tinc, default crypto", "vtepd, own process"). */
const short = (overlay: string) => overlay.replace(' switch,', ',').replace(' TAP,', ',').replace('vtepd VXLAN,', 'vtepd,');

/** The ping figures the chart draws: a panel each, lower is better. */
const CHART_PANELS: { title: string; get: (r: LatencyRow) => number }[] = [
  { title: 'ping -i 0.01 mean', get: (r) => r.fast.mean },
  { title: 'ping -i 0.01 p99', get: (r) => r.fast.p99 },
  { title: 'ping -i 0.2 mean', get: (r) => r.slow.mean },
  { title: 'ping -i 0.2 p99', get: (r) => r.slow.p99 },
];

/**
 * The chart of the latency rows (bench/chart.ts's panels): the ping mean and p99 at both
 * rates, a panel each; a bar per overlay, its RTT ÷ the best userspace overlay's (the dashed
 * line at 1×, #18's target for vtepd), with both figures beside it.
 */
export function latencyChartSvg(f: LatencyFigures, date?: string): string {
  const peers = f.rows.filter((r) => r.peer);
  const panels: Panel[] = CHART_PANELS.map((c) => {
    const best = peers.reduce((a, b) => (c.get(b) < c.get(a) ? b : a));
    return {
      title: `${c.title} — lower is better; best userspace: ${short(best.overlay)}`,
      higherIsBetter: false,
      refLabel: 'best userspace',
      figuresHead: 'overlay/best · RTT vs best',
      bars: f.rows.map((r) => ({ name: short(r.overlay), ref: c.get(best), value: c.get(r), unit: (v: number, b: number) => `${time(v)} vs ${time(b)}` })),
    };
  });
  return panelsSvg(
    [
      'Round trip through vtepd and the userspace overlays (#18)',
      [date?.slice(0, 10), `${f.pings.fast} pings at -i 0.01, ${f.pings.slow} at -i 0.2, one run`].filter(Boolean).join(', '),
      "bar: the overlay's RTT / the best userspace overlay's; green: as good or better, orange: worse",
    ],
    panels,
  );
}

// Run alone: node dist/bench/latency.js (npm run bench:latency)
if (process.argv[1] && /bench[/\\]latency\.js$/.test(process.argv[1])) {
  const opts = latencyOptions();
  const t0 = Date.now();
  const load0 = loadavg()[0]!;
  latencyRows(opts, progress('bench:latency', latencySteps()))
    .then((f) => {
      const date = new Date().toISOString();
      console.log(
        `vtepd latency rows — ${date} — ${((Date.now() - t0) / 1000).toFixed(0)} s in all; load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
      );
      console.log(latencyTable(f));
      const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
      const file = `latency-${date.replace(/[:.]/g, '-')}.json`;
      mkdirSync(resultsDir, { recursive: true });
      writeFileSync(join(resultsDir, file), JSON.stringify({ date, ...opts, loadAverage: [load0, loadavg()[0]], latency: f, ...vsBestJson(f) }, null, 2));
      writeFileSync(join(resultsDir, 'latency-latest.svg'), latencyChartSvg(f, date));
      console.log(`results: bench/results/${file}, chart: bench/results/latency-latest.svg`);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
