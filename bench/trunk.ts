/**
 * The trunk rows of the throughput benchmark (#15): one TCP stream (iperf3) between a
 * bare-metal server behind a top-of-rack switch and a TAP VM on the other vtepd host, next to
 * the references that isolate each part of the path, in one lab and one run (`node
 * dist/bench/trunk.js` runs them alone):
 *
 *   vm1 ─TAP─ h1 ══ veth underlay, VXLAN VNI 5001 ══ h2 (the gateway) ─TAP─ vm2
 *                                                    ├ eth1: trunk { 100: blue } ── trunk0 (VLAN 100 tagged) ┐
 *                                                    └ eth2: attach (blue)       ── acc0 (access, VLAN 300)  ┤ tor: OVS
 *                                        bm100 (VLAN 100), bmo (VLAN 100), bm300 (VLAN 300) on access ports ┘ userspace
 *
 *   TAP        vm2 ↔ vm1                   the path of a VM on the gateway host (the reference)
 *   access     bm300 ↔ OVS ↔ eth2 ↔ vm1    the same switch, its port untagged into an attached access port
 *   trunk      bm100 ↔ OVS ↔ eth1 ↔ vm1    the same switch, VLAN 100 tagged into the trunk (the row)
 *   OVS alone  bm100 ↔ OVS ↔ bmo           one crossing of the switch, as on the other two
 *
 * trunk/access is what the tag costs, trunk/TAP the whole path (#15's target: ≥ 0.7×). The
 * switch runs with offloads 'tso' (lab/tor.ts): OVS reads and writes its veths with a
 * virtio_net_hdr, so TCP super-frames cross it and reach vtepd's attached ports whole. All
 * three vtepd paths share one tenant, one VM (vm1) and the same two daemons. "to the VM" is
 * from the h2 side (vm2, bm300, bm100) to vm1, "from the VM" the other way (iperf3 -R).
 * Around each vtepd step the gateway's `vtepd stats` are read: the bytes per frame its port
 * read or wrote (super-frames or wire-size frames) and any drop that rose. Around every step,
 * the CPU the path took: the cores of both iperf3 ends (as iperf3 reports them), the switch
 * (ovs-vswitchd) and each vtepd, and their sum in CPU seconds per GB carried (the path's own
 * processes: other work on the machine does not count, the kernel's work counts where it runs
 * in their context).
 *
 *   BENCH_SECONDS=5   iperf3 duration per measurement
 *   BENCH_ROUNDS=3    rounds; the paths rotate their order each round; medians shown
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../lab/netns.js';
import { startDaemon, type Daemonised } from '../lab/topology.js';
import { tor, type Tor } from '../lab/tor.js';
import { untilListening } from '../lab/wait.js';
import { request } from '../src/daemon/control.js';
import type { StatsSnapshot } from '../src/daemon/stats.js';
import { gbps, progress, silent, type Progress } from './progress.js';
import { markdownTable } from './table.js';
import { daemonCpuSeconds } from '../lab/proc.js';

/** The measured paths, in the table's order. */
export const TRUNK_PATHS = ['TAP', 'access', 'trunk', 'OVS alone'] as const;
export type TrunkPath = (typeof TRUNK_PATHS)[number];
export type Direction = 'to the VM' | 'from the VM';

interface Leg {
  path: TrunkPath;
  dir: Direction;
  client: string;
  server: string;
  addr: string;
  /** The gateway's port that carries it, whose counters the step reports (none for OVS alone). */
  port?: string;
}

const VM1 = '10.1.0.1';
const LEGS: Leg[] = [
  { path: 'TAP', dir: 'to the VM', client: 'vm2', server: 'vm1', addr: VM1, port: 'blue0' },
  { path: 'TAP', dir: 'from the VM', client: 'vm2', server: 'vm1', addr: VM1, port: 'blue0' },
  { path: 'access', dir: 'to the VM', client: 'bm300', server: 'vm1', addr: VM1, port: 'eth2' },
  { path: 'access', dir: 'from the VM', client: 'bm300', server: 'vm1', addr: VM1, port: 'eth2' },
  { path: 'trunk', dir: 'to the VM', client: 'bm100', server: 'vm1', addr: VM1, port: 'eth1.100' },
  { path: 'trunk', dir: 'from the VM', client: 'bm100', server: 'vm1', addr: VM1, port: 'eth1.100' },
  // Both ends are veths into the same OVS: one direction says it.
  { path: 'OVS alone', dir: 'to the VM', client: 'bm100', server: 'bmo', addr: '10.1.0.5' },
];

/** Progress steps of trunkThroughput. */
export const trunkSteps = (rounds: number) => LEGS.length * rounds;

/** What the gateway's port did during one step: bytes per frame read and written, drops that rose. */
export interface PortFigures {
  rxBytesPerFrame: number;
  txBytesPerFrame: number;
  drops: Record<string, number>;
}

/** The CPU one step took: the path's processes' seconds per GB received, and the cores of each. */
export interface CpuFigures {
  secPerGB: number;
  /** Cores (CPU seconds per second) of both iperf3 ends together, ovs-vswitchd, the gateway's vtepd (h2), the VM host's (h1). */
  iperf: number;
  ovs: number;
  gateway: number;
  vmHost: number;
}

export interface TrunkRow {
  path: TrunkPath;
  dir: Direction;
  /** Gbit/s, the median of the rounds. */
  gbps: number;
  rounds: number[];
  /** CPU seconds per GB of the path's processes, the median of the rounds. */
  cpuSecPerGB: number;
  /** The CPU of each round. */
  cpu: CpuFigures[];
  /** The gateway port's figures of the last round. */
  port?: PortFigures;
}

export interface TrunkFigures {
  rows: TrunkRow[];
  /** Drops by reason that rose on the gateway over the whole run (all steps). */
  gatewayDrops: Record<string, number>;
  /** The gateway's traffic counters over the whole run (`vtepd stats` datapath: super-frames read, trains sent, GSO fallbacks). */
  gatewayCounters: Record<string, number>;
}

function gatewayConfig(lab: Lab): string {
  return [
    'underlay: { local: 10.0.0.2, port: 4789, mtu: 1500 }',
    'log: { level: warn }',
    'tenants:',
    '  - name: blue',
    '    vni: 5001',
    '    ports:',
    `      - { tap: blue0, netns: ${lab.ns('vm2')}, address: 10.1.0.2/24 }`,
    '      - { attach: eth2 }',
    '    flood: [ 10.0.0.1 ]',
    'trunks:',
    '  - { attach: eth1, vlans: { 100: blue } }',
    '',
  ].join('\n');
}

function vmHostConfig(lab: Lab): string {
  return [
    'underlay: { local: 10.0.0.1, port: 4789, mtu: 1500 }',
    'log: { level: warn }',
    'tenants:',
    '  - name: blue',
    '    vni: 5001',
    '    ports:',
    `      - { tap: blue0, netns: ${lab.ns('vm1')}, address: ${VM1}/24 }`,
    '    flood: [ 10.0.0.2 ]',
    '',
  ].join('\n');
}

interface TrunkLab {
  lab: Lab;
  gateway: Daemonised;
  /** ovs-vswitchd, the gateway's vtepd, the VM host's vtepd. */
  pids: [number, number, number];
  cleanup(): Promise<void>;
}

/** The lab of the top of this file: two vtepd hosts, the switch, its servers, both attached ports. */
async function build(): Promise<TrunkLab> {
  const lab = new Lab('vbt');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-bench-trunk-'));
  let sw: Tor | undefined;
  const cleanup = async () => {
    await sw?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const h of ['h1', 'h2']) await lab.addHost(h);
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    for (const h of ['vm1', 'vm2']) await lab.addHost(h, { ipv6: false });
    // 1450: the servers' frames travel inside VXLAN over a 1500 underlay.
    sw = await tor(lab, {
      servers: [
        { host: 'bm100', vlan: 100, address: '10.1.0.3/24' },
        { host: 'bm300', vlan: 300, address: '10.1.0.4/24' },
        { host: 'bmo', vlan: 100, address: '10.1.0.5/24' },
      ],
      trunk: { gateway: 'h2', dev: 'eth1', vlans: [100] },
      mtu: 1450,
      offloads: 'tso',
    });
    // The access reference: one more switch port, untagged in VLAN 300, toward h2's eth2.
    await lab.link(sw.host, 'acc0', null, 'h2', 'eth2', null, 1450);
    await sw.ovs.vsctl('add-port', sw.bridge, 'acc0', '--', 'set', 'Port', 'acc0', 'tag=300');
    await sw.ovs.untilPorts('acc0');
    const vmHost = await startDaemon(lab, 'h1', vmHostConfig(lab), dir);
    const gateway = await startDaemon(lab, 'h2', gatewayConfig(lab), dir);
    const ovsPid = Number(readFileSync(join(sw.ovs.dir, 'ovs-vswitchd.pid'), 'utf8').trim());
    return { lab, gateway, pids: [ovsPid, gateway.child.pid!, vmHost.child.pid!], cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function stats(d: Daemonised): Promise<StatsSnapshot> {
  return request<StatsSnapshot>(d.socket, 'stats', {}, { timeoutMs: 10_000 });
}

/** The counters of `b` that rose since `a`, by how much. */
export function rose(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (typeof v === 'number' && v > (a[k] ?? 0)) out[k] = v - (a[k] ?? 0);
  return out;
}

/** Drops by reason that rose from `a` to `b`. */
const dropsBetween = (a: StatsSnapshot, b: StatsSnapshot) => rose(a.drops, b.drops);

function portFigures(a: StatsSnapshot, b: StatsSnapshot, port: string): PortFigures {
  const find = (s: StatsSnapshot) => s.ports.find((p) => p.port === port);
  const p0 = find(a);
  const p1 = find(b);
  const per = (bytes: 'rxBytes' | 'txBytes', packets: 'rxPackets' | 'txPackets') =>
    p0 && p1 ? (p1[bytes] - p0[bytes]) / Math.max(1, p1[packets] - p0[packets]) : NaN;
  return { rxBytesPerFrame: per('rxBytes', 'rxPackets'), txBytesPerFrame: per('txBytes', 'txPackets'), drops: dropsBetween(a, b) };
}

/** The parts of iperf3's -J report read here (cpu_utilization_percent: of one core, each end's process). */
interface IperfEnd {
  end: {
    sum_received: { bits_per_second: number; bytes: number; seconds: number };
    cpu_utilization_percent: { host_total: number; remote_total: number };
  };
}

interface Measured {
  gbps: number;
  cpu: CpuFigures;
}

/** One iperf3 TCP run of `leg`, with the CPU it took. */
async function tcp(lab: Lab, leg: Leg, seconds: number, pids: number[]): Promise<Measured> {
  const srv = lab.spawn(leg.server, 'iperf3', ['-s', '-1', '-B', leg.addr]);
  await untilListening(lab, leg.server, 5201);
  try {
    const reverse = leg.dir === 'from the VM' ? ['-R'] : [];
    const t0 = Date.now();
    const p0 = pids.map(daemonCpuSeconds);
    const r = await lab.exec(leg.client, 'iperf3', ['-c', leg.addr, '-t', String(seconds), '-J', ...reverse], (seconds + 60) * 1000);
    const wall = (Date.now() - t0) / 1000;
    const [ovs, gateway, vmHost] = pids.map((p, i) => (daemonCpuSeconds(p) - p0[i]!) / wall) as [number, number, number];
    const { end } = JSON.parse(r.stdout) as IperfEnd;
    const iperf = (end.cpu_utilization_percent.host_total + end.cpu_utilization_percent.remote_total) / 100;
    const got = end.sum_received;
    const cpuSeconds = iperf * got.seconds + (ovs + gateway + vmHost) * wall;
    return { gbps: got.bits_per_second / 1e9, cpu: { secPerGB: cpuSeconds / (got.bytes / 1e9), iperf, ovs, gateway, vmHost } };
  } finally {
    await lab.stop(srv);
  }
}

/** "5.12 Gbit/s, 1.31 CPU s/GB; cores: iperf3 1.10, OVS 0.85, gateway vtepd 0.60, VM host vtepd 0.45". */
function saidMeasured(m: Measured): string {
  const c = m.cpu;
  const cores = `iperf3 ${c.iperf.toFixed(2)}, OVS ${c.ovs.toFixed(2)}, gateway vtepd ${c.gateway.toFixed(2)}, VM host vtepd ${c.vmHost.toFixed(2)}`;
  return `${gbps(m.gbps)}, ${c.secPerGB.toFixed(2)} CPU s/GB; cores: ${cores}`;
}

const legName = (l: Leg) => (l.path === 'OVS alone' ? 'OVS alone bm100 → bmo' : `${l.path} ${l.dir}`);
const kb = (n: number) => `${(n / 1000).toFixed(1)} kB`;

/** "; eth1.100 read 41.2 kB/frame, wrote 0.1 kB/frame, drops: none". */
function saidPort(port: string, f: PortFigures): string {
  const drops = Object.entries(f.drops).map(([k, v]) => `${k} ${v}`);
  return `; ${port} read ${kb(f.rxBytesPerFrame)}/frame, wrote ${kb(f.txBytesPerFrame)}/frame, drops: ${drops.length ? drops.join(', ') : 'none'}`;
}

export const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

/** Every leg `rounds` times, the order rotated each round; the median of each (trunkSteps(rounds) progress steps). */
export async function trunkThroughput(seconds: number, rounds: number, report: Progress = silent): Promise<TrunkFigures> {
  const t = await build();
  try {
    for (const c of ['vm2', 'bm300', 'bm100']) await t.lab.exec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', VM1]); // ARP and learning
    await t.lab.exec('bm100', 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '10.1.0.5']);
    const got = LEGS.map(() => [] as Measured[]);
    const ports: (PortFigures | undefined)[] = LEGS.map(() => undefined);
    const first = await stats(t.gateway);
    for (let r = 0; r < rounds; r++)
      for (let k = 0; k < LEGS.length; k++) {
        const i = (k + r * 2) % LEGS.length;
        const leg = LEGS[i]!;
        const before = await stats(t.gateway);
        got[i]!.push(await report.step(legName(leg), () => tcp(t.lab, leg, seconds, t.pids), saidMeasured, `round ${r + 1}/${rounds}, ${seconds} s`));
        if (leg.port) {
          ports[i] = portFigures(before, await stats(t.gateway), leg.port);
          report.note(`  gateway during ${legName(leg)}${saidPort(leg.port, ports[i]!)}`);
        }
      }
    const last = await stats(t.gateway);
    return {
      rows: LEGS.map((l, i) => ({
        path: l.path,
        dir: l.dir,
        gbps: median(got[i]!.map((m) => m.gbps)),
        rounds: got[i]!.map((m) => m.gbps),
        cpuSecPerGB: median(got[i]!.map((m) => m.cpu.secPerGB)),
        cpu: got[i]!.map((m) => m.cpu),
        port: ports[i],
      })),
      gatewayDrops: dropsBetween(first, last),
      gatewayCounters: rose(first.datapath, last.datapath),
    };
  } finally {
    await t.cleanup();
  }
}

const ROW_NAMES: Record<TrunkPath, string> = {
  TAP: 'TAP VM on the gateway host (reference)',
  access: 'bare metal, OVS access port, attached port',
  trunk: 'bare metal, OVS VLAN 100, trunk',
  'OVS alone': 'OVS alone, bare metal to bare metal',
};

/** The rows as a table a person can read: each path both ways, its CPU, and trunk ÷ it. */
export function trunkTable(f: TrunkFigures): string {
  const row = (p: TrunkPath, d: Direction) => f.rows.find((r) => r.path === p && r.dir === d);
  const both = (p: TrunkPath, cell: (r: TrunkRow) => string) => (['to the VM', 'from the VM'] as const).map((d) => row(p, d)).map((r) => (r ? cell(r) : '-'));
  const head = ['TCP 1 stream', 'to the VM, Gbit/s', 'from the VM, Gbit/s', 'CPU s/GB to / from', 'trunk ÷ this, to / from'];
  const cells = TRUNK_PATHS.map((p) => [
    ROW_NAMES[p],
    ...both(p, (r) => r.gbps.toFixed(2)),
    both(p, (r) => r.cpuSecPerGB.toFixed(2)).join(' / '),
    p === 'trunk'
      ? ''
      : (['to the VM', 'from the VM'] as const)
          .map((d) => {
            const t = row('trunk', d);
            const r = row(p, d);
            return t && r ? `${(t.gbps / r.gbps).toFixed(2)}×` : '-';
          })
          .join(' / '),
  ]);
  const drops = Object.entries(f.gatewayDrops).map(([k, v]) => `${k} ${v}`);
  return [
    `Trunk gateway (#15; median of the rounds; target: trunk ≥ 0.7× the TAP VM; the gateway's drops over the run: ${drops.length ? drops.join(', ') : 'none'}):`,
    ...markdownTable(head, cells),
  ].join('\n');
}

// Run alone: node dist/bench/trunk.js
if (process.argv[1] && /bench[/\\]trunk\.js$/.test(process.argv[1])) {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
  trunkThroughput(seconds, rounds, progress('bench:trunk', trunkSteps(rounds)))
    .then((f) => {
      console.log(`vtepd trunk gateway — ${new Date().toISOString()} — ${seconds} s per iperf3 run, ${rounds} rounds`);
      console.log(trunkTable(f));
      console.log(JSON.stringify(f));
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
