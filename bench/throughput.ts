/**
 * `npm run bench`: vtepd against the kernel's VXLAN, in ONE run, on the same two hosts and
 * the same veth underlay. vtepd carries tenant blue (VNI 5001, udp/4789) between endpoint
 * namespaces blue1/blue2; the kernel carries VNI 9001 (udp/8472) between k1/k2. Each vtepd
 * figure is printed as a ratio of the kernel's. Raw results go to bench/results/*.json and
 * a chart to bench/results/latest.svg.
 *
 *   BENCH_SECONDS=5   iperf3 duration per measurement (default 5)
 *   BENCH_PINGS=1000  pings for the RTT figures (default 1000)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { addKernelVxlan, twoHostsVtepd } from '../src/topology.js';
import type { Lab } from '../src/netns.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PINGS = Number(process.env.BENCH_PINGS ?? 1000);
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
  udp1400pps: number;
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

async function iperf(lab: Lab, s: Side, args: string[]): Promise<Record<string, any>> {
  const srv = lab.spawn(s.server, 'iperf3', ['-s', '-1', '-B', s.serverAddr]);
  await new Promise((r) => setTimeout(r, 400));
  try {
    const r = await lab.exec(s.client, 'iperf3', ['-c', s.serverAddr, '-t', String(SECONDS), '-J', ...args], (SECONDS + 60) * 1000);
    return JSON.parse(r.stdout);
  } finally {
    await lab.stop(srv);
  }
}

async function measure(lab: Lab, s: Side): Promise<Figures> {
  const cpu0 = cpuBusySeconds();
  const t1 = await iperf(lab, s, []);
  const cpu1 = cpuBusySeconds();
  const bytes = t1.end.sum_received.bytes as number;
  const t4 = await iperf(lab, s, ['-P', '4']);
  const udp = async (len: number) => {
    const r = await iperf(lab, s, ['-u', '-b', '0', '-l', String(len)]);
    const sum = r.end.sum;
    const received = sum.packets - sum.lost_packets;
    return { pps: received / sum.seconds, loss: sum.lost_percent as number };
  };
  const u64 = await udp(64);
  const u1400 = await udp(1400);
  const ping = await lab.exec(s.client, 'ping', ['-c', String(PINGS), '-i', '0.005', '-W', '1', s.serverAddr], 120_000);
  const rtts = [...ping.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return {
    tcp1: t1.end.sum_received.bits_per_second / 1e9,
    tcp4: t4.end.sum_received.bits_per_second / 1e9,
    udp64pps: u64.pps, udp64loss: u64.loss,
    udp1400pps: u1400.pps, udp1400loss: u1400.loss,
    rttMean: rtts.reduce((a, b) => a + b, 0) / Math.max(1, rtts.length),
    rttP99: rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * 0.99))] ?? NaN,
    cpuSecPerGB: (cpu1 - cpu0) / (bytes / 1e9),
  };
}

function peakRssMB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function svg(rows: { name: string; ratio: number }[]): string {
  const w = 640, bar = 26, left = 230, scale = 300;
  const h = 50 + rows.length * (bar + 8);
  const items = rows.map((r, i) => {
    const y = 40 + i * (bar + 8);
    const len = Math.max(1, Math.min(2, r.ratio) * scale / 2);
    return `<text x="${left - 8}" y="${y + 18}" text-anchor="end">${r.name}</text>` +
      `<rect x="${left}" y="${y}" width="${len.toFixed(1)}" height="${bar}" fill="${r.ratio >= 1 ? '#2a7' : '#d84'}"/>` +
      `<text x="${left + len + 6}" y="${y + 18}">${r.ratio.toFixed(2)}×</text>`;
  }).join('\n');
  const one = left + scale / 2;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="13">
<text x="10" y="22" font-weight="bold">vtepd / kernel VXLAN, same run, same veth (1.0 = kernel)</text>
<line x1="${one}" y1="32" x2="${one}" y2="${h - 6}" stroke="#555" stroke-dasharray="4 3"/>
${items}
</svg>
`;
}

async function main(): Promise<void> {
  const t = await twoHostsVtepd([{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }], { tag: 'vb' });
  try {
    await addKernelVxlan(t.lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'] });
    const kernel: Side = { label: 'kernel', client: 'k1', server: 'k2', serverAddr: '10.9.0.2' };
    const vtepd: Side = { label: 'vtepd', client: 'blue1', server: 'blue2', serverAddr: '10.1.0.2' };
    // Warm up ARP and learning on both paths.
    for (const s of [kernel, vtepd]) await t.lab.exec(s.client, 'ping', ['-c', '2', '-i', '0.2', s.serverAddr]);
    const k = await measure(t.lab, kernel);
    const v = await measure(t.lab, vtepd);
    const rss = t.daemons.map((d) => peakRssMB(d.child.pid!));
    const rows: [string, string, string, string, number][] = [
      ['TCP 1 stream', 'Gbit/s', k.tcp1.toFixed(2), v.tcp1.toFixed(2), v.tcp1 / k.tcp1],
      ['TCP 4 streams', 'Gbit/s', k.tcp4.toFixed(2), v.tcp4.toFixed(2), v.tcp4 / k.tcp4],
      ['UDP 64 B received', 'kpps', (k.udp64pps / 1e3).toFixed(0), (v.udp64pps / 1e3).toFixed(0), v.udp64pps / k.udp64pps],
      ['UDP 64 B loss', '%', k.udp64loss.toFixed(1), v.udp64loss.toFixed(1), NaN],
      ['UDP 1400 B received', 'kpps', (k.udp1400pps / 1e3).toFixed(0), (v.udp1400pps / 1e3).toFixed(0), v.udp1400pps / k.udp1400pps],
      ['UDP 1400 B loss', '%', k.udp1400loss.toFixed(1), v.udp1400loss.toFixed(1), NaN],
      ['ping RTT mean', 'ms', k.rttMean.toFixed(3), v.rttMean.toFixed(3), v.rttMean / k.rttMean],
      ['ping RTT p99', 'ms', k.rttP99.toFixed(3), v.rttP99.toFixed(3), v.rttP99 / k.rttP99],
      ['CPU per GB (TCP 1)', 's/GB', k.cpuSecPerGB.toFixed(2), v.cpuSecPerGB.toFixed(2), v.cpuSecPerGB / k.cpuSecPerGB],
      ['daemon peak RSS', 'MB', '-', Math.max(...rss).toFixed(1), NaN],
    ];
    const head = ['measure', 'unit', 'kernel', 'vtepd', 'vtepd/kernel'];
    const cells = rows.map((r) => [r[0], r[1], r[2], r[3], Number.isNaN(r[4]) ? '' : `${r[4].toFixed(2)}×`]);
    const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
    const fmt = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
    console.log(`vtepd benchmark — ${new Date().toISOString()} — ${cpus().length} CPUs, ${SECONDS} s per iperf3 run, ${PINGS} pings`);
    console.log([fmt(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...cells.map(fmt)].join('\n'));
    mkdirSync(resultsDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    writeFileSync(join(resultsDir, `throughput-${stamp}.json`), JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, pings: PINGS, kernel: k, vtepd: v, vtepdPeakRssMB: rss }, null, 2));
    writeFileSync(join(resultsDir, 'latest.svg'), svg(rows.filter((r) => !Number.isNaN(r[4])).map((r) => ({ name: r[0], ratio: r[4] }))));
    console.log(`results: bench/results/throughput-${stamp}.json, chart: bench/results/latest.svg`);
  } finally {
    await t.cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
