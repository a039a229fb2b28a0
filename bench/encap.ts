/**
 * Encapsulation rows of the benchmark (bench/throughput.ts prints them; `node
 * dist/bench/encap.js` runs them alone). TCP through each tunnel between two hosts on one
 * veth, in labs of their own, each figure next to its reference measured in the same run:
 *
 *   GRE-TAP and NVGRE over IPv4  vs vtepd's own VXLAN (same daemons, same veth) and vs
 *                                Open vSwitch's userspace GRE (this kernel has no GRE
 *                                module: OVS is the only other GRE-TAP here)
 *   VXLAN and GRE-TAP over IPv6  vs the kernel's VXLAN over the same IPv6 veth
 *
 *   BENCH_SECONDS=5   iperf3 duration per measurement
 */
import { type Lab, iperfGbps } from '../lab/netns.js';
import { twoHostsOvs } from '../lab/ovs.js';
import { addKernelVxlan, twoHostsVtepd } from '../lab/topology.js';
import { untilListening } from '../lab/wait.js';
import { gbps, progress, silent, type Progress } from './progress.js';
import { markdownTable } from './table.js';

/** Progress steps of encapThroughput: TCP 1 and 4 streams through each of its 7 tunnels. */
export const ENCAP_STEPS = 14;

export interface EncapFigure {
  /** "vtepd GRE-TAP", "OVS userspace GRE", ... */
  name: string;
  underlay: 'IPv4' | 'IPv6';
  tcp1: number;
  tcp4: number;
  /** The row it is compared with, by name + underlay, and the ratio of tcp1. */
  vs?: { name: string; ratio: number }[];
}

async function tcp(lab: Lab, client: string, server: string, addr: string, seconds: number, streams: number): Promise<number> {
  const srv = lab.spawn(server, 'iperf3', ['-s', '-1', '-B', addr]);
  await untilListening(lab, server, 5201);
  try {
    const r = await lab.exec(
      client,
      'iperf3',
      ['-c', addr, '-t', String(seconds), '-J', ...(streams > 1 ? ['-P', String(streams)] : [])],
      (seconds + 60) * 1000,
    );
    return iperfGbps(r.stdout);
  } finally {
    await lab.stop(srv);
  }
}

async function both(
  lab: Lab,
  client: string,
  server: string,
  addr: string,
  seconds: number,
  report: Progress,
  what: string,
): Promise<{ tcp1: number; tcp4: number }> {
  await lab.exec(client, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', addr]); // ARP and learning
  const streams = (n: number) =>
    report.step(`${what} TCP ${n === 1 ? '1 stream' : `${n} streams`}`, () => tcp(lab, client, server, addr, seconds, n), gbps, `${seconds} s`);
  return { tcp1: await streams(1), tcp4: await streams(4) };
}

/** vtepd VXLAN, GRE-TAP and NVGRE between the same two daemons. */
async function vtepdIpv4(seconds: number, report: Progress): Promise<EncapFigure[]> {
  const m = await twoHostsVtepd(
    [
      { name: 'vx', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] },
      { name: 'gr', vni: 5002, encap: 'gre', addresses: ['10.2.0.1/24', '10.2.0.2/24'] },
      { name: 'nv', vni: 0x12345, encap: 'nvgre', addresses: ['10.3.0.1/24', '10.3.0.2/24'] },
    ],
    { tag: 've' },
  );
  try {
    const out: EncapFigure[] = [];
    for (const [t, name, net] of [
      ['vx', 'vtepd VXLAN', '10.1.0'],
      ['gr', 'vtepd GRE-TAP', '10.2.0'],
      ['nv', 'vtepd NVGRE', '10.3.0'],
    ] as const)
      out.push({ name, underlay: 'IPv4', ...(await both(m.lab, `${t}1`, `${t}2`, `${net}.2`, seconds, report, `${name} IPv4`)) });
    return out;
  } finally {
    await m.cleanup();
  }
}

/** Open vSwitch userspace GRE (key 5001) between two hosts, each with its own OVS. */
async function ovsGre(seconds: number, report: Progress): Promise<EncapFigure> {
  const o = await twoHostsOvs('vog', 'gre');
  try {
    return { name: 'OVS userspace GRE', underlay: 'IPv4', ...(await both(o.lab, 'e1', 'e2', '10.1.0.2', seconds, report, 'OVS userspace GRE IPv4')) };
  } finally {
    await o.cleanup();
  }
}

/** vtepd VXLAN and GRE-TAP, and the kernel's VXLAN, over one IPv6 veth. */
async function ipv6(seconds: number, report: Progress): Promise<EncapFigure[]> {
  const m = await twoHostsVtepd(
    [
      { name: 'vx', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] },
      { name: 'gr', vni: 5002, encap: 'gre', addresses: ['10.2.0.1/24', '10.2.0.2/24'] },
    ],
    { tag: 've6', family: 6 },
  );
  try {
    await addKernelVxlan(m.lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'], mtu: 1430, family: 6 });
    const out: EncapFigure[] = [];
    out.push({ name: 'kernel VXLAN', underlay: 'IPv6', ...(await both(m.lab, 'k1', 'k2', '10.9.0.2', seconds, report, 'kernel VXLAN IPv6')) });
    out.push({ name: 'vtepd VXLAN', underlay: 'IPv6', ...(await both(m.lab, 'vx1', 'vx2', '10.1.0.2', seconds, report, 'vtepd VXLAN IPv6')) });
    out.push({ name: 'vtepd GRE-TAP', underlay: 'IPv6', ...(await both(m.lab, 'gr1', 'gr2', '10.2.0.2', seconds, report, 'vtepd GRE-TAP IPv6')) });
    return out;
  } finally {
    await m.cleanup();
  }
}

/** Every row, with the ratios the README quotes. */
export async function encapThroughput(seconds: number, report: Progress = silent): Promise<EncapFigure[]> {
  const rows = [...(await vtepdIpv4(seconds, report)), await ovsGre(seconds, report), ...(await ipv6(seconds, report))];
  const get = (name: string, underlay: string) => rows.find((r) => r.name === name && r.underlay === underlay)!;
  const vs = (row: EncapFigure, ...refs: [string, string][]) => {
    row.vs = refs.map(([n, u]) => ({ name: `${n} ${u}`, ratio: row.tcp1 / get(n, u).tcp1 }));
  };
  vs(get('vtepd GRE-TAP', 'IPv4'), ['vtepd VXLAN', 'IPv4'], ['OVS userspace GRE', 'IPv4']);
  vs(get('vtepd NVGRE', 'IPv4'), ['vtepd VXLAN', 'IPv4']);
  vs(get('vtepd VXLAN', 'IPv6'), ['kernel VXLAN', 'IPv6'], ['vtepd VXLAN', 'IPv4']);
  vs(get('vtepd GRE-TAP', 'IPv6'), ['kernel VXLAN', 'IPv6'], ['vtepd GRE-TAP', 'IPv4']);
  return rows;
}

/** The rows as a table a person can read. */
export function encapTable(rows: EncapFigure[]): string {
  const head = ['tunnel', 'underlay', 'TCP 1 stream Gbit/s', 'TCP 4 streams Gbit/s', 'TCP 1 stream vs'];
  const cells = rows.map((r) => [
    r.name,
    r.underlay,
    r.tcp1.toFixed(2),
    r.tcp4.toFixed(2),
    (r.vs ?? []).map((v) => `${v.ratio.toFixed(2)}× ${v.name}`).join(', '),
  ]);
  return markdownTable(head, cells).join('\n');
}

// Run alone: node dist/bench/encap.js
if (process.argv[1] && /bench[/\\]encap\.js$/.test(process.argv[1])) {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  encapThroughput(seconds, progress('bench:encap', ENCAP_STEPS))
    .then((rows) => {
      console.log(`vtepd encapsulations — ${new Date().toISOString()} — ${seconds} s per iperf3 run`);
      console.log(encapTable(rows));
      console.log(JSON.stringify(rows));
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
