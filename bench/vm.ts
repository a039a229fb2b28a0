/**
 * The VM rows of the throughput benchmark (#16): one QEMU guest (TCG, virtio-net with its
 * offloads on, host_mtu=1450, lab/guest.ts) and one TCP stream (iperf3) each way between it
 * and a container on the other host, through vtepd and through the kernel, in one lab and one
 * run (`node dist/bench/vm.js`, `npm run bench:vm`, runs them alone):
 *
 *   guest ─virtio─ QEMU ─vnet0─ h2 ══ veth underlay ══ h1 ─┬─TAP── c1  10.1.0.1 (vtepd, VNI 5001, udp/4789)
 *   10.1.0.2                                               └─veth─ k1  10.1.0.3 (kernel, VNI 9001, udp/8472)
 *
 *   vtepd    h2's vtepd attaches vnet0 (`port add --tenant blue --attach vnet0`), h1's vtepd has c1's TAP
 *   kernel   vnet0 on a Linux bridge with the kernel's VXLAN on h2; on h1 the same with k1's veth
 *
 * The same guest and vnet0 serve both: between the paths vnet0 is detached from vtepd (`port
 * del --attach vnet0`) and put on the bridge, or the other way. Both daemons run throughout.
 * The iperf3 client runs in the container (c1 or k1) against the guest's iperf3 -s: "to the
 * guest" without -R, "from the guest" with -R (the guest sends). Around every step the cores
 * (CPU seconds per second, /proc/PID/task/TID/stat) of QEMU's vCPU thread (TCG: the guest's
 * whole CPU, its kernel and iperf3), QEMU's main loop (its first thread: it reads and writes
 * vnet0; on the kernel path the bridge and VXLAN run there too), each vtepd and the
 * container's iperf3 end: the guest's one TCG vCPU is the limit of both paths, so each row
 * also says its Gbit/s per core that vCPU got (other load on the host moves it least).
 *
 *   BENCH_SECONDS=5    iperf3 duration per measurement
 *   BENCH_VM_ROUNDS=2  rounds; the paths swap their order each round; medians shown
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest, startGuest, type Guest } from '../lab/guest.js';
import { Lab } from '../lab/netns.js';
import { startDaemon, UNDERLAY, type Daemonised } from '../lab/topology.js';
import { until } from '../lab/wait.js';
import { request } from '../src/daemon/control.js';
import type { StatsSnapshot } from '../src/daemon/stats.js';
import { gbps, progress, silent, type Progress } from './progress.js';
import { median, rose } from './trunk.js';
import { markdownTable } from './table.js';
import { daemonCpuSeconds } from '../lab/proc.js';

export const VM_PATHS = ['vtepd', 'kernel'] as const;
export type VmPath = (typeof VM_PATHS)[number];
export const VM_DIRECTIONS = ['to the guest', 'from the guest'] as const;
export type VmDirection = (typeof VM_DIRECTIONS)[number];

const GUEST = { ip: '10.1.0.2', mac: '52:54:00:16:00:02' };
/** The container of each path, on h1. */
const CONTAINER: Record<VmPath, { host: string; addr: string }> = {
  vtepd: { host: 'c1', addr: '10.1.0.1' },
  kernel: { host: 'k1', addr: '10.1.0.3' },
};
const MTU = 1450;

/** Progress steps of vmThroughput. */
export const vmSteps = (rounds: number) => VM_PATHS.length * VM_DIRECTIONS.length * rounds;

/** The cores (CPU seconds per second of the step) of the processes on the path. */
export interface VmCpu {
  /** QEMU's other threads, the TCG vCPU all but all of it: the guest's kernel and iperf3. */
  qemuVcpu: number;
  /** QEMU's main loop (its first thread), which reads and writes vnet0 (vhost=off). */
  qemuMain: number;
  /** The guest host's vtepd (h2) and the container host's (h1). */
  vtepdGuestHost: number;
  vtepdContainerHost: number;
  /** The container's iperf3 end, as iperf3 reports it. */
  iperf: number;
}

export interface VmRow {
  path: VmPath;
  dir: VmDirection;
  /** Gbit/s, the median of the rounds. */
  gbps: number;
  rounds: number[];
  /** Gbit/s per core the guest's vCPU got (Gbit/s ÷ qemuVcpu), the median of the rounds: the figure that other load on the host moves least. */
  gbpsPerVcpu: number;
  cpu: VmCpu[];
}

export interface VmFigures {
  /** The guest's kernel package and the seconds to its ready line. */
  guest: { package: string; bootSeconds: number };
  rows: VmRow[];
  /** h2's datapath counters that rose over the vtepd steps (GSO super-frames read, coalesced frames written). */
  guestHostCounters: Record<string, number>;
  /** h2's drops by reason that rose over the run. */
  guestHostDrops: Record<string, number>;
}

function config(local: string, peer: string, ports: string[]): string {
  return [
    `underlay: { local: ${local} }`,
    'log: { level: warn }',
    'tenants:',
    '  - name: blue',
    '    vni: 5001',
    `    ports: [ ${ports.join(', ')} ]`,
    `    flood: [ ${peer} ]`,
    '',
  ].join('\n');
}

/** The kernel's VXLAN (VNI 9001, udp/8472, MTU 1450) on `host`, in a bridge `brk`. */
async function kernelVxlan(lab: Lab, host: string, local: string, remote: string): Promise<void> {
  await lab.exec(host, 'ip', ['link', 'add', 'vxk', 'type', 'vxlan', 'id', '9001', 'local', local, 'remote', remote, 'dstport', '8472', 'nolearning']);
  await lab.exec(host, 'ip', ['link', 'add', 'brk', 'type', 'bridge']);
  await lab.exec(host, 'ip', ['link', 'set', 'vxk', 'mtu', String(MTU), 'master', 'brk', 'up']);
  await lab.exec(host, 'ip', ['link', 'set', 'brk', 'up']);
}

interface VmLab {
  lab: Lab;
  guest: Guest;
  /** The guest's kernel package. */
  image: string;
  guestHost: Daemonised;
  /** QEMU, h2's vtepd, h1's vtepd. */
  pids: [number, number, number];
  /** The path vnet0 is on (none at first). */
  on?: VmPath;
  cleanup(): Promise<void>;
}

/** The lab of the top of this file, vnet0 on neither path yet. */
async function build(report: Progress): Promise<VmLab> {
  const lab = new Lab('vbv');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-bench-vm-'));
  const cleanup = async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const image = buildGuest((l) => report.note(l)); // cached after the first build
    for (const h of ['h1', 'h2', 'c1', 'k1']) await lab.addHost(h, { ipv6: false });
    await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
    const guest = await startGuest(lab, 'h2', { tap: 'vnet0', mac: GUEST.mac, ip: `${GUEST.ip}/24`, mtu: MTU }, image);
    report.note(`guest: ${image.package}, ready after ${guest.bootSeconds.toFixed(1)} s`);
    // As libvirt does with <mtu size='1450'/>: the TAP takes the guest's MTU.
    await lab.exec('h2', 'ip', ['link', 'set', 'vnet0', 'mtu', String(MTU), 'up']);
    await kernelVxlan(lab, 'h1', UNDERLAY.h1, UNDERLAY.h2);
    await kernelVxlan(lab, 'h2', UNDERLAY.h2, UNDERLAY.h1);
    await lab.link('h1', 'kv0', null, 'k1', 'eth0', `${CONTAINER.kernel.addr}/24`, MTU);
    await lab.exec('h1', 'ip', ['link', 'set', 'kv0', 'master', 'brk']);
    const containerHost = await startDaemon(
      lab,
      'h1',
      config(UNDERLAY.h1, UNDERLAY.h2, [`{ tap: blue0, netns: ${lab.ns('c1')}, address: ${CONTAINER.vtepd.addr}/24 }`]),
      dir,
    );
    const guestHost = await startDaemon(lab, 'h2', config(UNDERLAY.h2, UNDERLAY.h1, []), dir);
    return { lab, guest, image: image.package, guestHost, pids: [guest.child.pid!, guestHost.child.pid!, containerHost.child.pid!], cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Put vnet0 on `path` (off the other) and wait until the guest pings that path's container. */
async function plug(v: VmLab, path: VmPath): Promise<void> {
  if (v.on === 'kernel') await v.lab.exec('h2', 'ip', ['link', 'set', 'vnet0', 'nomaster']);
  if (v.on === 'vtepd') await request(v.guestHost.socket, 'port.del', { attach: 'vnet0' }, { timeoutMs: 10_000 });
  if (path === 'vtepd') await request(v.guestHost.socket, 'port.add', { tenant: 'blue', attach: 'vnet0' }, { timeoutMs: 10_000 });
  else await v.lab.exec('h2', 'ip', ['link', 'set', 'vnet0', 'master', 'brk']);
  v.on = path;
  const to = CONTAINER[path].addr;
  await until(
    `the guest to ping ${to} through ${path}`,
    async () => (await v.guest.run(`ping -c 1 -W 1 ${to}`, 10_000)).code,
    (c) => c === 0,
    30_000,
    200,
  );
}

/** CPU seconds of each thread of a process, by thread id. */
function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    out.set(tid, (Number(f[11]) + Number(f[12])) / 100);
  }
  return out;
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
/** QEMU's main loop is its first thread (tid = pid); the vCPU (TCG) is all but all of the rest. */
const mainLoop = (pid: number, m: Map<string, number>) => m.get(String(pid)) ?? 0;

interface Measured {
  gbps: number;
  cpu: VmCpu;
}

/** iperf3 -J: what is read here. */
interface IperfEnd {
  end: { sum_received: { bits_per_second: number }; cpu_utilization_percent: { host_total: number } };
}

/**
 * iperf3 -J from `host`; again while the guest's iperf3 -s still says it is busy with the
 * run before (under TCG it takes a moment to wind down).
 */
async function iperf(lab: Lab, host: string, args: string[], seconds: number): Promise<IperfEnd> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    // iperf3 -J says why it failed on stdout, with exit code 1: read it either way.
    const r = await lab.exec(host, 'sh', ['-c', 'iperf3 "$@" || true', 'iperf3', ...args], (seconds + 60) * 1000);
    const out = JSON.parse(r.stdout || '{}') as Partial<IperfEnd> & { error?: string };
    if (out.end?.sum_received) return out as IperfEnd;
    if (!/busy|refused/.test(out.error ?? '') || Date.now() > deadline) throw new Error(`iperf3 ${args.join(' ')}: ${out.error ?? r.stdout}`);
    await new Promise((ok) => setTimeout(ok, 300));
  }
}

/** One iperf3 TCP run between the path's container and the guest, with the cores of the path's processes. */
async function tcp(v: VmLab, path: VmPath, dir: VmDirection, seconds: number): Promise<Measured> {
  const c = CONTAINER[path];
  const reverse = dir === 'from the guest' ? ['-R'] : [];
  const [qemu, h2, h1] = v.pids;
  const t0 = Date.now();
  const q0 = threadCpuSeconds(qemu);
  // The vtepd hosts: each daemon with its data path process (lab/proc.ts).
  const d0 = [h2, h1].map((p) => daemonCpuSeconds(p));
  const { end } = await iperf(v.lab, c.host, ['-c', GUEST.ip, '-t', String(seconds), '-J', ...reverse], seconds);
  const wall = (Date.now() - t0) / 1000;
  const q1 = threadCpuSeconds(qemu);
  const [g, o] = [h2, h1].map((p, i) => (daemonCpuSeconds(p) - d0[i]!) / wall) as [number, number];
  const main = (mainLoop(qemu, q1) - mainLoop(qemu, q0)) / wall;
  const qv = (total(q1) - total(q0)) / wall - main;
  return {
    gbps: end.sum_received.bits_per_second / 1e9,
    cpu: {
      qemuVcpu: qv,
      qemuMain: main,
      vtepdGuestHost: g,
      vtepdContainerHost: o,
      iperf: end.cpu_utilization_percent.host_total / 100,
    },
  };
}

/** "1.31 Gbit/s; cores: QEMU vCPU 1.00, QEMU main loop 0.41, vtepd h2 0.30, vtepd h1 0.22, iperf3 0.10". */
function saidMeasured(m: Measured): string {
  const c = m.cpu;
  return `${gbps(m.gbps)}; cores: QEMU vCPU ${c.qemuVcpu.toFixed(2)}, QEMU main loop ${c.qemuMain.toFixed(2)}, vtepd h2 ${c.vtepdGuestHost.toFixed(2)}, vtepd h1 ${c.vtepdContainerHost.toFixed(2)}, iperf3 ${c.iperf.toFixed(2)}`;
}

const stats = (d: Daemonised) => request<StatsSnapshot>(d.socket, 'stats', {}, { timeoutMs: 10_000 });

/** Both paths both ways, `rounds` times, the paths' order swapped each round (vmSteps(rounds) progress steps). */
export async function vmThroughput(seconds: number, rounds: number, report: Progress = silent): Promise<VmFigures> {
  const v = await build(report);
  try {
    const got = new Map<string, Measured[]>();
    const counters: Record<string, number> = {};
    const first = await stats(v.guestHost);
    for (let r = 0; r < rounds; r++)
      for (const path of r % 2 ? [...VM_PATHS].reverse() : VM_PATHS) {
        await plug(v, path);
        const before = await stats(v.guestHost);
        for (const dir of VM_DIRECTIONS) {
          const m = await report.step(`VM ${path} ${dir}`, () => tcp(v, path, dir, seconds), saidMeasured, `round ${r + 1}/${rounds}, ${seconds} s`);
          got.set(`${path} ${dir}`, [...(got.get(`${path} ${dir}`) ?? []), m]);
        }
        if (path === 'vtepd')
          for (const [k, x] of Object.entries(rose(before.datapath, (await stats(v.guestHost)).datapath))) counters[k] = (counters[k] ?? 0) + x;
      }
    const last = await stats(v.guestHost);
    return {
      guest: { package: v.image, bootSeconds: v.guest.bootSeconds },
      rows: VM_PATHS.flatMap((path) =>
        VM_DIRECTIONS.map((dir) => {
          const ms = got.get(`${path} ${dir}`) ?? [];
          const perVcpu = median(ms.map((m) => m.gbps / m.cpu.qemuVcpu));
          return { path, dir, gbps: median(ms.map((m) => m.gbps)), rounds: ms.map((m) => m.gbps), gbpsPerVcpu: perVcpu, cpu: ms.map((m) => m.cpu) };
        }),
      ),
      guestHostCounters: counters,
      guestHostDrops: rose(first.drops, last.drops),
    };
  } finally {
    await v.cleanup();
  }
}

/** The rows as a table: each path both ways with its median cores, and vtepd ÷ kernel. */
export function vmTable(f: VmFigures): string {
  const row = (p: VmPath, d: VmDirection) => f.rows.find((r) => r.path === p && r.dir === d)!;
  const cores = (r: VmRow, k: keyof VmCpu) => median(r.cpu.map((c) => c[k])).toFixed(2);
  const head = ['TCP 1 stream', 'Gbit/s', 'rounds', 'per vCPU core', 'QEMU vCPU', 'QEMU main loop', 'vtepd h2', 'vtepd h1', 'vtepd ÷ kernel (per vCPU core)'];
  const cells = VM_PATHS.flatMap((p) =>
    VM_DIRECTIONS.map((d) => {
      const r = row(p, d);
      return [
        `${p === 'vtepd' ? 'vtepd (attached vnet0)' : 'kernel (bridge + VXLAN)'}, ${d}`,
        r.gbps.toFixed(2),
        r.rounds.map((x) => x.toFixed(2)).join(' '),
        r.gbpsPerVcpu.toFixed(2),
        cores(r, 'qemuVcpu'),
        cores(r, 'qemuMain'),
        cores(r, 'vtepdGuestHost'),
        cores(r, 'vtepdContainerHost'),
        p === 'vtepd' ? `${(r.gbps / row('kernel', d).gbps).toFixed(2)}× (${(r.gbpsPerVcpu / row('kernel', d).gbpsPerVcpu).toFixed(2)}×)` : '',
      ];
    }),
  );
  const drops = Object.entries(f.guestHostDrops).map(([k, x]) => `${k} ${x}`);
  const c = f.guestHostCounters;
  const gso = c.tap_rx_gso_frames
    ? `, ${c.tap_rx_gso_frames} GSO super-frames read from vnet0 (${((c.gso_segments ?? 0) / c.tap_rx_gso_frames).toFixed(1)} segments each)`
    : '';
  return [
    `A QEMU guest (#16; TCG, 1 vCPU, virtio-net offloads on, MTU ${MTU}; guest kernel ${f.guest.package}; median of the rounds; cores = CPU s/s of each process during the step, per vCPU core = Gbit/s ÷ the QEMU vCPU's cores; h2's drops: ${drops.length ? drops.join(', ') : 'none'}${gso}):`,
    ...markdownTable(head, cells),
  ].join('\n');
}

// Run alone: node dist/bench/vm.js (npm run bench:vm)
if (process.argv[1] && /bench[/\\]vm\.js$/.test(process.argv[1])) {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const rounds = Math.max(1, Number(process.env.BENCH_VM_ROUNDS ?? 2));
  const t0 = Date.now();
  const load0 = loadavg()[0]!;
  vmThroughput(seconds, rounds, progress('bench:vm', vmSteps(rounds)))
    .then((f) => {
      const date = new Date().toISOString();
      console.log(
        `vtepd VM rows — ${date} — ${seconds} s per iperf3 run, ${rounds} rounds, ${((Date.now() - t0) / 1000).toFixed(0)} s in all; load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
      );
      console.log(vmTable(f));
      const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
      const file = `vm-${date.replace(/[:.]/g, '-')}.json`;
      mkdirSync(resultsDir, { recursive: true });
      writeFileSync(join(resultsDir, file), JSON.stringify({ date, seconds, rounds, loadAverage: [load0, loadavg()[0]], vm: f }, null, 2));
      console.log(`results: bench/results/${file}`);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
