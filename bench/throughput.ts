/**
 * `npm run bench`: vtepd against the kernel's VXLAN, in ONE run, on the same two hosts and
 * the same veth underlay. vtepd carries tenant blue (VNI 5001, udp/4789) between endpoint
 * namespaces blue1/blue2; the kernel carries VNI 9001 (udp/8472) between k1/k2. Each vtepd
 * figure is printed as a ratio of the kernel's. Raw results go to bench/results/*.json and
 * a chart to bench/results/latest.svg (bench/chart.ts, which also redraws it from a JSON).
 * Progress goes to stderr, a line as each measurement starts and ends (bench/progress.ts).
 *
 *   BENCH_SECONDS=5   iperf3 duration per measurement (default 5)
 *   BENCH_ROUNDS=3    rounds of every measurement, kernel and vtepd back to back; the
 *                     table shows the median of the rounds
 *   BENCH_PINGS=1000  pings per side for the RTT figures, split over the rounds
 *   BENCH_RSS_SECONDS=60  length of the TCP run during which the daemons' VmRSS is sampled
 *                     every 5 s (0 skips it)
 *   BENCH_QUEUES=1    underlay.queues of the two vtepd daemons (thread pairs, TAP queues,
 *                     receive sockets); more than 1 pays only with cores to spare
 *   BENCH_HUBSPOKE=1  the spoke-to-spoke row through a hub, vtepd vs kernel VXLAN + bridge
 *   BENCH_ENCAP=1     the encapsulation table (bench/encap.ts): GRE-TAP and NVGRE vs vtepd's
 *                     VXLAN and Open vSwitch's userspace GRE; VXLAN and GRE-TAP over IPv6 vs
 *                     the kernel's VXLAN over IPv6 (labs of their own)
 *                     (bench/hubspoke.ts; 0 skips it)
 *   BENCH_SECURE=1    the encrypted rows (bench/secure.ts): one TCP stream and spoke→hub→spoke,
 *                     each as the kernel's plaintext VXLAN, vtepd plaintext and vtepd
 *                     encrypted, rotated in one run (labs of their own; 0 skips them)
 *   BENCH_TRUNK=1     the trunk rows (bench/trunk.ts): TCP both ways between a bare-metal
 *                     server in VLAN 100 behind an OVS switch, through vtepd's trunk and VXLAN,
 *                     and a TAP VM, next to a TAP VM, an untagged attached port and OVS alone
 *                     in the same lab, BENCH_ROUNDS rounds (a lab of its own; 0 skips them)
 *   BENCH_VM=1        the VM rows (bench/vm.ts): a QEMU guest (TCG) to a container on the
 *                     other host and back, through vtepd (attached vnet0) and through the
 *                     kernel (bridge + VXLAN), BENCH_VM_ROUNDS=2 rounds (a lab of its own; 0 skips them)
 *   BENCH_LATENCY=1   the latency rows (bench/latency.ts): ping -i 0.01 and -i 0.2, TCP 1 stream
 *                     and UDP 64 B through the kernel's VXLAN, vtepd, tinc, OpenVPN and OVS VXLAN,
 *                     BENCH_LATENCY_PINGS=1000 and BENCH_LATENCY_SLOW_PINGS=100 (labs of their own; 0 skips them),
 *                     after BENCH_IDLE_SECONDS=60 with every overlay idle (their CPU-seconds); its
 *                     chart goes to bench/results/latency-latest.svg
 *   BENCH_EVPN=1      the BGP EVPN rows (bench/evpn.ts): a new MAC's first frame to an FRR host's
 *                     FDB, from vtepd and from FRR, and 10,000 MACs originated and withdrawn;
 *                     BENCH_EVPN_MACS=20, BENCH_EVPN_BULK=10000 (a lab of its own; 0 skips them)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { addKernelVxlan, twoHostsVtepd } from '../lab/topology.js';
import type { Lab } from '../lab/netns.js';
import { untilListening } from '../lab/wait.js';
import { daemonMB } from '../lab/proc.js';
import { hubSpokeThroughput } from './hubspoke.js';
import { ENCAP_STEPS, encapTable, encapThroughput } from './encap.js';
import { secureSteps, secureThroughput, type SecureFigures } from './secure.js';
import { trunkSteps, trunkTable, trunkThroughput } from './trunk.js';
import { vmSteps, vmTable, vmThroughput } from './vm.js';
import { evpnOptions, evpnSteps, evpnTable, evpnBench } from './evpn.js';
import { latencyChartSvg, latencyOptions, latencyRows, latencySteps, latencyTable, vsBestJson } from './latency.js';
import { gbps, progress, silent, type Progress } from './progress.js';
import { chartSvg } from './chart.js';
import { markdownTable } from './table.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const HUBSPOKE = process.env.BENCH_HUBSPOKE !== '0';
const ENCAP = process.env.BENCH_ENCAP !== '0';
const SECURE = process.env.BENCH_SECURE !== '0';
const TRUNK = process.env.BENCH_TRUNK !== '0';
const VM = process.env.BENCH_VM !== '0';
const LATENCY = process.env.BENCH_LATENCY !== '0';
const EVPN = process.env.BENCH_EVPN !== '0';
const VM_ROUNDS = Math.max(1, Number(process.env.BENCH_VM_ROUNDS ?? 2));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const PINGS = Math.ceil(Number(process.env.BENCH_PINGS ?? 1000) / ROUNDS);
const RSS_SECONDS = Number(process.env.BENCH_RSS_SECONDS ?? 60);
const QUEUES = Math.max(1, Number(process.env.BENCH_QUEUES ?? 1));
const RSS_EVERY = 5;
const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');

interface Side {
  label: string;
  client: string;
  server: string;
  serverAddr: string;
}

interface Figures {
  tcp1: number;
  tcp4: number;
  udp64pps: number;
  udp64loss: number;
  /** UDP 64 B datagrams per second that reached the receiving stack's UDP socket (read or dropped there). */
  udp64arrived: number;
  udp1400pps: number;
  udp1400arrived: number;
  udp1400loss: number;
  rttMean: number;
  rttP99: number;
  cpuSecPerGB: number;
}

/** Busy CPU seconds of the whole machine (user+nice+system+irq+softirq). */
function cpuBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = line;
  return (user + nice + system + irq + softirq) / 100;
}

/** The parts of iperf3's -J report the bench reads (TCP: sum_received; UDP: sum). */
interface IperfReport {
  end: {
    sum_received: { bits_per_second: number; bytes: number };
    sum: { packets: number; lost_packets: number; lost_percent: number; seconds: number };
  };
}

async function iperf(lab: Lab, s: Side, args: string[]): Promise<IperfReport> {
  const srv = lab.spawn(s.server, 'iperf3', ['-s', '-1', '-B', s.serverAddr]);
  await untilListening(lab, s.server, 5201);
  try {
    const r = await lab.exec(s.client, 'iperf3', ['-c', s.serverAddr, '-t', String(SECONDS), '-J', ...args], (SECONDS + 60) * 1000);
    return JSON.parse(r.stdout);
  } finally {
    await lab.stop(srv);
  }
}

type Test = (lab: Lab, s: Side) => Promise<Partial<Figures>>;

/** Progress on stderr, one numbered step per measurement (set in main, once the steps are counted). */
let report: Progress = silent;

const TEST_NAMES = ['TCP 1 stream', 'TCP 4 streams', 'UDP 64 B', 'UDP 1400 B'];
/** The figure of each test that its progress line compares with the other side's of the same round. */
const TEST_KEYS = ['tcp1', 'tcp4', 'udp64pps', 'udp1400pps'] as const;
const TESTS: Test[] = [
  async (lab, s) => {
    const cpu0 = cpuBusySeconds();
    const r = await iperf(lab, s, []);
    const cpu1 = cpuBusySeconds();
    return { tcp1: r.end.sum_received.bits_per_second / 1e9, cpuSecPerGB: (cpu1 - cpu0) / (r.end.sum_received.bytes / 1e9) };
  },
  async (lab, s) => ({ tcp4: (await iperf(lab, s, ['-P', '4'])).end.sum_received.bits_per_second / 1e9 }),
  async (lab, s) => {
    const u = await udp(lab, s, 64);
    return { udp64pps: u.pps, udp64loss: u.loss, udp64arrived: u.arrived };
  },
  async (lab, s) => {
    const u = await udp(lab, s, 1400);
    return { udp1400pps: u.pps, udp1400loss: u.loss, udp1400arrived: u.arrived };
  },
];

/**
 * iperf3 UDP at full speed. Besides what iperf3 received, how many datagrams reached the
 * receiving namespace's UDP layer: read by iperf3, or dropped because its socket was full
 * (Udp InDatagrams + RcvbufErrors in /proc/net/snmp): what the path delivered.
 */
async function udp(lab: Lab, s: Side, len: number): Promise<{ pps: number; loss: number; arrived: number }> {
  const before = await udpInput(lab, s.server);
  const r = await iperf(lab, s, ['-u', '-b', '0', '-l', String(len)]);
  const after = await udpInput(lab, s.server);
  const sum = r.end.sum;
  return { pps: (sum.packets - sum.lost_packets) / sum.seconds, loss: sum.lost_percent, arrived: (after - before) / sum.seconds };
}

/** Udp InDatagrams + RcvbufErrors of a namespace. */
async function udpInput(lab: Lab, host: string): Promise<number> {
  const lines = (await lab.exec(host, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp: '));
  const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
  const get = (k: string) => Number(values![names!.indexOf(k)]);
  return get('InDatagrams') + get('RcvbufErrors');
}

async function pings(lab: Lab, s: Side): Promise<Partial<Figures>> {
  const ping = await lab.exec(s.client, 'ping', ['-c', String(PINGS), '-i', '0.005', '-W', '1', s.serverAddr], 120_000);
  const rtts = [...ping.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return {
    rttMean: rtts.reduce((a, b) => a + b, 0) / Math.max(1, rtts.length),
    rttP99: rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * 0.99))] ?? NaN,
  };
}

/** What one step measured, in the table's units. */
function said(f: Partial<Figures>): string {
  const parts: string[] = [];
  if (f.tcp1 !== undefined) parts.push(`${gbps(f.tcp1)}, ${f.cpuSecPerGB?.toFixed(2)} CPU s/GB`);
  if (f.tcp4 !== undefined) parts.push(gbps(f.tcp4));
  for (const [pps, loss, arrived] of [
    [f.udp64pps, f.udp64loss, f.udp64arrived],
    [f.udp1400pps, f.udp1400loss, f.udp1400arrived],
  ])
    if (pps !== undefined)
      parts.push(`${(pps / 1e3).toFixed(0)} kpps received (${loss?.toFixed(1)}% lost), ${((arrived ?? NaN) / 1e3).toFixed(0)} kpps to the receiver`);
  if (f.rttMean !== undefined) parts.push(`mean ${f.rttMean.toFixed(3)} ms, p99 ${f.rttP99?.toFixed(3)} ms`);
  return parts.join('; ');
}

/** " (0.80× kernel)" once both sides of a round have the figure, else "". */
function versus(key: keyof Figures, vtepd: Partial<Figures>, kernel: Partial<Figures>): string {
  const a = vtepd[key];
  const b = kernel[key];
  return a === undefined || b === undefined ? '' : ` (vtepd ${(a / b).toFixed(2)}× kernel)`;
}

function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  return v.length % 2 ? v[(v.length - 1) >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/**
 * Every test ROUNDS times, kernel and vtepd back to back (the order flips each round), so
 * a load that comes and goes on the machine hits both sides alike; each figure is the
 * median of its rounds. Pings: PINGS per side, split over the rounds the same way.
 */
async function measureBoth(lab: Lab, k: Side, v: Side): Promise<{ k: Figures; v: Figures; rounds: { kernel: Partial<Figures>[]; vtepd: Partial<Figures>[] } }> {
  const rounds = { kernel: [] as Partial<Figures>[], vtepd: [] as Partial<Figures>[] };
  for (let r = 0; r < ROUNDS; r++) {
    const rk: Partial<Figures> = {};
    const rv: Partial<Figures> = {};
    for (const [i, test] of TESTS.entries()) {
      for (const side of r % 2 ? [v, k] : [k, v]) {
        const [mine, other] = side === k ? [rk, rv] : [rv, rk];
        const got = await report.step(
          `${side.label} ${TEST_NAMES[i]}`,
          () => test(lab, side),
          (f) => said(f) + versus(TEST_KEYS[i]!, side === k ? other : f, side === k ? f : other),
          `round ${r + 1}/${ROUNDS}, ${SECONDS} s`,
        );
        Object.assign(mine, got);
      }
    }
    rounds.kernel.push(rk);
    rounds.vtepd.push(rv);
  }
  const pk: Partial<Figures>[] = [];
  const pv: Partial<Figures>[] = [];
  for (let r = 0; r < ROUNDS; r++)
    for (const side of r % 2 ? [v, k] : [k, v]) {
      const other = (side === k ? pv : pk)[r] ?? {};
      const got = await report.step(
        `${side.label} ping RTT`,
        () => pings(lab, side),
        (f) => said(f) + versus('rttMean', side === k ? other : f, side === k ? f : other),
        `round ${r + 1}/${ROUNDS}, ${PINGS} pings`,
      );
      (side === k ? pk : pv).push(got);
    }
  const fold = (rs: Partial<Figures>[], ps: Partial<Figures>[]): Figures => {
    const all = [...rs, ...ps];
    const f = {} as Figures;
    for (const key of [
      'tcp1',
      'tcp4',
      'udp64pps',
      'udp64loss',
      'udp64arrived',
      'udp1400pps',
      'udp1400arrived',
      'udp1400loss',
      'rttMean',
      'rttP99',
      'cpuSecPerGB',
    ] as const) {
      f[key] = median(all.map((x) => x[key]).filter((x): x is number => x !== undefined));
    }
    return f;
  };
  return { k: fold(rounds.kernel, pk), v: fold(rounds.vtepd, pv), rounds };
}

/** VmRSS of each daemon (with its data path process: lab/proc.ts) every RSS_EVERY seconds during one long TCP run through vtepd. */
async function rssOverRun(lab: Lab, s: Side, pids: number[]): Promise<{ t: number; mb: number[] }[]> {
  const samples: { t: number; mb: number[] }[] = [];
  const srv = lab.spawn(s.server, 'iperf3', ['-s', '-1', '-B', s.serverAddr]);
  await untilListening(lab, s.server, 5201);
  try {
    const client = lab.exec(s.client, 'iperf3', ['-c', s.serverAddr, '-t', String(RSS_SECONDS), '-J'], (RSS_SECONDS + 60) * 1000);
    const t0 = Date.now();
    const timer = setInterval(() => samples.push({ t: (Date.now() - t0) / 1000, mb: pids.map((p) => daemonMB(p, 'VmRSS')) }), RSS_EVERY * 1000);
    try {
      await client;
    } finally {
      clearInterval(timer);
    }
  } finally {
    await lab.stop(srv);
  }
  return samples;
}

async function main(): Promise<void> {
  const steps =
    10 * ROUNDS +
    (RSS_SECONDS > 0 ? 1 : 0) +
    (HUBSPOKE ? 2 : 0) +
    (ENCAP ? ENCAP_STEPS : 0) +
    (SECURE ? secureSteps(ROUNDS) : 0) +
    (TRUNK ? trunkSteps(ROUNDS) : 0) +
    (VM ? vmSteps(VM_ROUNDS) : 0) +
    (LATENCY ? latencySteps() : 0) +
    (EVPN ? evpnSteps(evpnOptions()) : 0);
  report = progress('bench', steps);
  report.note(`${steps} measurements, ${SECONDS} s each (BENCH_SECONDS), ${ROUNDS} rounds (BENCH_ROUNDS); building the lab`);
  const t = await twoHostsVtepd([{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }], { tag: 'vb', queues: QUEUES });
  try {
    await addKernelVxlan(t.lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'] });
    const kernel: Side = { label: 'kernel', client: 'k1', server: 'k2', serverAddr: '10.9.0.2' };
    const vtepd: Side = { label: 'vtepd', client: 'blue1', server: 'blue2', serverAddr: '10.1.0.2' };
    // Warm up ARP and learning on both paths.
    for (const s of [kernel, vtepd]) await t.lab.exec(s.client, 'ping', ['-c', '2', '-i', '0.2', s.serverAddr]);
    const load0 = loadavg()[0]!;
    const { k, v, rounds } = await measureBoth(t.lab, kernel, vtepd);
    const pids = t.daemons.map((d) => d.child.pid!);
    const rssSamples =
      RSS_SECONDS > 0
        ? await report.step(
            'vtepd daemon RSS under TCP',
            () => rssOverRun(t.lab, vtepd, pids),
            (xs) =>
              `${xs.length} samples, ${xs.length ? `${Math.min(...xs.flatMap((x) => x.mb)).toFixed(1)}–${Math.max(...xs.flatMap((x) => x.mb)).toFixed(1)} MB` : 'none'}`,
            `${RSS_SECONDS} s, sampled every ${RSS_EVERY} s`,
          )
        : [];
    // Peak: each process's VmHWM, the daemon's and its data path process's, added.
    const rss = pids.map((p) => daemonMB(p, 'VmHWM'));
    // Flat: the busiest daemon's RSS at the end of the run against its first sample.
    const series = pids.map((_, i) => rssSamples.map((x) => x.mb[i]!));
    const growth = series.map((xs) => (xs.length ? xs[xs.length - 1]! - xs[0]! : NaN));
    const worst = growth.reduce((a, g, i) => (Math.abs(g) > Math.abs(growth[a]!) ? i : a), 0);
    // Spoke to spoke through a hub: vtepd spokes and hub against kernel VXLAN spokes and a
    // kernel VXLAN + bridge hub (bench/hubspoke.ts), in a lab of its own.
    if (HUBSPOKE) report.note('spoke to spoke through a hub (a lab of its own)');
    const hub = HUBSPOKE ? await hubSpokeThroughput(SECONDS, report) : null;
    if (ENCAP) report.note('encapsulations: GRE-TAP, NVGRE, Open vSwitch GRE, IPv6 (labs of their own)');
    const encaps = ENCAP ? await encapThroughput(SECONDS, report) : null;
    if (SECURE) report.note('encrypted tunnels, host to host and through a hub (labs of their own)');
    const secure = SECURE ? await secureThroughput(SECONDS, ROUNDS, report) : null;
    if (TRUNK) report.note('trunk gateway: bare metal behind an OVS switch, VLAN 100 into the trunk (a lab of its own)');
    const trunk = TRUNK ? await trunkThroughput(SECONDS, ROUNDS, report) : null;
    if (VM) report.note('a QEMU guest to a container on the other host, through vtepd and the kernel (a lab of its own)');
    const vm = VM ? await vmThroughput(SECONDS, VM_ROUNDS, report) : null;
    const latency = LATENCY ? await latencyRows(latencyOptions(), report) : null;
    if (EVPN) report.note('BGP EVPN: two FRR hosts and a vtepd host (a lab of its own)');
    const evpn = EVPN ? await evpnBench(evpnOptions(), report) : null;
    const rows: [string, string, string, string, number][] = [
      ['TCP 1 stream', 'Gbit/s', k.tcp1.toFixed(2), v.tcp1.toFixed(2), v.tcp1 / k.tcp1],
      ['TCP 4 streams', 'Gbit/s', k.tcp4.toFixed(2), v.tcp4.toFixed(2), v.tcp4 / k.tcp4],
      ['UDP 64 B received', 'kpps', (k.udp64pps / 1e3).toFixed(0), (v.udp64pps / 1e3).toFixed(0), v.udp64pps / k.udp64pps],
      ['UDP 64 B loss', '%', k.udp64loss.toFixed(1), v.udp64loss.toFixed(1), NaN],
      ['UDP 64 B to receiver', 'kpps', (k.udp64arrived / 1e3).toFixed(0), (v.udp64arrived / 1e3).toFixed(0), v.udp64arrived / k.udp64arrived],
      ['UDP 1400 B received', 'kpps', (k.udp1400pps / 1e3).toFixed(0), (v.udp1400pps / 1e3).toFixed(0), v.udp1400pps / k.udp1400pps],
      ['UDP 1400 B loss', '%', k.udp1400loss.toFixed(1), v.udp1400loss.toFixed(1), NaN],
      ['UDP 1400 B to receiver', 'kpps', (k.udp1400arrived / 1e3).toFixed(0), (v.udp1400arrived / 1e3).toFixed(0), v.udp1400arrived / k.udp1400arrived],
      ['ping RTT mean', 'ms', k.rttMean.toFixed(3), v.rttMean.toFixed(3), v.rttMean / k.rttMean],
      ['ping RTT p99', 'ms', k.rttP99.toFixed(3), v.rttP99.toFixed(3), v.rttP99 / k.rttP99],
      ['CPU per GB (TCP 1)', 's/GB', k.cpuSecPerGB.toFixed(2), v.cpuSecPerGB.toFixed(2), v.cpuSecPerGB / k.cpuSecPerGB],
      ...(hub
        ? [['TCP spoke→hub→spoke', 'Gbit/s', hub.kernel.toFixed(2), hub.vtepd.toFixed(2), hub.vtepd / hub.kernel] as [string, string, string, string, number]]
        : []),
      ['daemon peak RSS', 'MB', '-', Math.max(...rss).toFixed(1), NaN],
      ...(rssSamples.length
        ? [
            [
              `daemon RSS over ${RSS_SECONDS} s TCP`,
              'MB',
              '-',
              `${series[worst]![0]!.toFixed(1)} → ${series[worst]![series[worst]!.length - 1]!.toFixed(1)} (${growth[worst]! >= 0 ? '+' : ''}${growth[worst]!.toFixed(1)})`,
              NaN,
            ] as [string, string, string, string, number],
          ]
        : []),
    ];
    const head = ['measure', 'unit', 'kernel', 'vtepd', 'vtepd/kernel'];
    const cells = rows.map((r) => [r[0], r[1], r[2], r[3], Number.isNaN(r[4]) ? '' : `${r[4].toFixed(2)}×`]);
    console.log(
      `vtepd benchmark — ${new Date().toISOString()} — ${cpus().length} CPUs, ${SECONDS} s per iperf3 run, median of ${ROUNDS} rounds, ${PINGS * ROUNDS} pings, underlay.queues ${QUEUES}` +
        (RSS_SECONDS > 0 ? `, RSS sampled every ${RSS_EVERY} s over a ${RSS_SECONDS} s run` : '') +
        `; load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (other work on the machine skews the ratios)`,
    );
    console.log(markdownTable(head, cells).join('\n'));
    if (encaps) console.log(`\nEncapsulations (TCP through each tunnel, ${SECONDS} s per run, references measured in the same run):\n${encapTable(encaps)}`);
    if (secure) console.log(`\n${secureTable(secure)}`);
    if (trunk) console.log(`\n${trunkTable(trunk)}`);
    if (vm) console.log(`\n${vmTable(vm)}`);
    if (latency) console.log(`\n${latencyTable(latency)}`);
    if (evpn) console.log(`\n${evpnTable(evpn, evpnOptions())}`);
    mkdirSync(resultsDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const results = {
      date: new Date().toISOString(),
      seconds: SECONDS,
      pings: PINGS,
      queues: QUEUES,
      rounds: ROUNDS,
      loadAverage: [load0, loadavg()[0]],
      kernel: k,
      vtepd: v,
      perRound: rounds,
      hubSpoke: hub,
      encapsulations: encaps,
      encrypted: secure,
      trunk,
      vm,
      latency: latency && { ...latency, ...vsBestJson(latency) },
      evpn,
      vtepdPeakRssMB: rss,
      vtepdRssSamples: rssSamples,
      rssEverySeconds: RSS_EVERY,
    };
    writeFileSync(join(resultsDir, `throughput-${stamp}.json`), JSON.stringify(results, null, 2));
    writeFileSync(join(resultsDir, 'latest.svg'), chartSvg(results));
    if (latency) writeFileSync(join(resultsDir, 'latency-latest.svg'), latencyChartSvg(latency, results.date));
    console.log(
      `results: bench/results/throughput-${stamp}.json, chart: bench/results/latest.svg${latency ? ', latency chart: bench/results/latency-latest.svg' : ''}`,
    );
  } finally {
    await t.cleanup();
  }
}

/** The encrypted rows: kernel plaintext, vtepd plaintext, vtepd encrypted, and the ratio encrypted / vtepd plaintext. */
function secureTable(f: SecureFigures): string {
  const head = ['TCP 1 stream, Gbit/s', 'kernel VXLAN', 'vtepd plaintext', `vtepd encrypted (${f.cipher})`, 'encrypted/plaintext'];
  const row = (name: string, r: SecureFigures['direct']) => [
    name,
    r.kernel.toFixed(2),
    r.plain.toFixed(2),
    r.encrypted.toFixed(2),
    `${(r.encrypted / r.plain).toFixed(2)}×`,
  ];
  const cells = [row('host to host', f.direct), row('spoke→hub→spoke', f.relay)];
  return [
    `Encrypted tunnels (median of ${ROUNDS} rounds, the three rotated in one run; targets: encrypted ≥ 0.6× plaintext host to host, ≥ 0.5× through a hub):`,
    ...markdownTable(head, cells),
  ].join('\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
