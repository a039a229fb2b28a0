/**
 * `vtepd demo`: two hosts, two tenants with the same overlay addresses, vtepd on both
 * hosts; ping and iperf3 through the overlay (a line per interval as iperf3 reports it),
 * and a check that the tenants do not see each other. Prints what it measured and removes
 * everything it made, or with `keep` leaves it up for `status`, `fdb` and `trace`
 * (lab/demo-keep.ts; `vtepd demo --clean ID` removes it).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { iperfGbps, type Lab, parsePing } from './netns.js';
import { addKernelVxlan, twoHostsVtepd, type TenantPlan } from './topology.js';
import { untilListening } from './wait.js';
import { keepDemo } from './demo-keep.js';

export interface DemoOptions {
  seconds: number;
  kernel: boolean;
  /** Leave the namespaces and daemons up, and say how to use and remove them. */
  keep?: boolean;
}

const TENANTS: TenantPlan[] = [
  { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: ['02:00:00:00:01:01', '02:00:00:00:01:02'] },
  { name: 'red', vni: 5002, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: ['02:00:00:00:02:01', '02:00:00:00:02:02'] },
];

/** The programs the demo runs, and the Debian package of each (said when one is missing). */
export const DEMO_TOOLS: Record<string, string> = { ip: 'iproute2', ping: 'iputils-ping', iperf3: 'iperf3' };

/** The first of `tools` not found as an executable on `path` ($PATH), or undefined. */
export function missingTool(tools: string[], path = process.env.PATH ?? ''): string | undefined {
  const found = (t: string) =>
    path
      .split(delimiter)
      .filter(Boolean)
      .some((d) => {
        try {
          accessSync(join(d, t), constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
  return tools.find((t) => !found(t));
}

/** The demo, with its last line `demo: OK (...)` or `demo: FAILED: <reason>`, whatever goes wrong. */
export async function demo(opts: DemoOptions): Promise<boolean> {
  const out = (s: string) => process.stdout.write(s + '\n');
  const missing = missingTool(Object.keys(DEMO_TOOLS));
  if (missing) {
    out(`demo: FAILED: ${missing} not found (install it: apt-get install ${DEMO_TOOLS[missing]})`);
    return false;
  }
  try {
    return await runDemo(opts, out);
  } catch (e) {
    out(`demo: FAILED: ${(e as Error).message} (namespaces removed)`);
    return false;
  }
}

async function runDemo(opts: DemoOptions, out: (s: string) => void): Promise<boolean> {
  out('vtepd demo: hosts h1 (10.0.0.1) and h2 (10.0.0.2) joined by a veth underlay;');
  out('tenants blue (VNI 5001) and red (VNI 5002), both using 10.1.0.1 <-> 10.1.0.2.');
  const t = await twoHostsVtepd(TENANTS, { tag: 'vd', detached: opts.keep });
  /** What went wrong, said on the last line. */
  const failed: string[] = [];
  let kept = false;
  // Interrupted (Ctrl-C): remove what was made, also with --keep (nothing is recorded yet).
  const onSignal = (sig: NodeJS.Signals) => {
    out(`\ndemo: ${sig}: cleaning up`);
    void t.cleanup().finally(() => {
      out('demo: FAILED: interrupted (namespaces removed)');
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const { lab } = t;
    const rows: string[][] = [];
    for (const ten of TENANTS) {
      const ping = parsePing(
        (await lab.exec(`${ten.name}1`, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', '10.1.0.2'], 30_000).catch((e: Error) => ({ stdout: e.message }))).stdout,
      );
      if (ping.received !== ping.sent || ping.sent === 0) failed.push(`ping in ${ten.name}: ${ping.received}/${ping.sent} replies`);
      rows.push([ten.name, `${ping.received}/${ping.sent}`, ping.avgMs === null ? '-' : `${ping.avgMs.toFixed(3)} ms`]);
    }
    out('');
    out('ping 10.1.0.1 -> 10.1.0.2 through the overlay');
    out(table(['tenant', 'replies', 'rtt avg'], rows));

    // Isolation: while only red talks (same addresses as blue), blue's TAP on h2 receives nothing.
    const rxBlue = async () => Number((await lab.exec('blue2', 'cat', ['/sys/class/net/blue0/statistics/rx_packets'])).stdout);
    const before = await rxBlue();
    await lab.exec('red1', 'ping', ['-c', '20', '-i', '0.05', '-W', '2', '10.1.0.2']);
    const leaked = (await rxBlue()) - before;
    if (leaked !== 0) failed.push(`isolation: ${leaked} frame(s) of red reached blue`);
    out(`isolation: 20 pings in red delivered ${leaked} frame(s) to blue's TAP on h2 ${leaked === 0 ? '(none: isolated)' : '(LEAK)'}`);

    out('');
    const gbps = await iperf(lab, 'blue1', 'blue2', '10.1.0.2', opts.seconds, 'vtepd VXLAN (blue)', out);
    const perf = [['vtepd VXLAN (blue)', gbps.toFixed(2)]];
    if (opts.kernel) {
      await addKernelVxlan(lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'] });
      const k = await iperf(lab, 'k1', 'k2', '10.9.0.2', opts.seconds, 'kernel VXLAN (same veth)', out);
      perf.push(['kernel VXLAN (same veth)', k.toFixed(2)]);
      perf.push(['ratio vtepd / kernel', (gbps / k).toFixed(2)]);
    }
    out('');
    out(`iperf3 TCP, 1 stream, ${opts.seconds} s, h1 -> h2`);
    out(table(['path', 'Gbit/s'], perf));
    if (!(gbps > 0)) failed.push('iperf3 through vtepd: 0 Gbit/s');
    if (opts.keep) {
      out('');
      await keepDemo(t, TENANTS, out);
      kept = true;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!kept) await t.cleanup();
  }
  out('');
  const where = kept ? 'left up: see above' : 'namespaces removed';
  out(failed.length === 0 ? `demo: OK (${where})` : `demo: FAILED: ${failed.join('; ')} (${where})`);
  return failed.length === 0;
}

/**
 * iperf3 TCP, one stream, `client` -> `server`: a line as it starts, one per interval as
 * the receiving server reports it, and one at the end; returns Gbit/s received.
 */
async function iperf(lab: Lab, client: string, server: string, addr: string, seconds: number, what: string, out: (s: string) => void): Promise<number> {
  const every = Math.max(1, Math.ceil(seconds / 10));
  out(`${what}: iperf3 TCP, 1 stream, ${seconds} s, ${client} -> ${server} ...`);
  const srv = lab.spawn(server, 'iperf3', ['-s', '-1', '-B', addr, '-i', String(every), '--forceflush']);
  let buf = '';
  srv.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      const iv = iperfInterval(l);
      if (iv && iv.to - iv.from >= every / 2) out(`  ${iv.from.toFixed(1)}-${iv.to.toFixed(1)} s  ${iv.gbps.toFixed(2)} Gbit/s`);
    }
  });
  try {
    await untilListening(lab, server, 5201);
    const res = await lab.exec(client, 'iperf3', ['-c', addr, '-t', String(seconds), '-J'], (seconds + 30) * 1000);
    const g = iperfGbps(res.stdout);
    out(`${what}: ${g.toFixed(2)} Gbit/s over ${seconds} s`);
    return g;
  } finally {
    await lab.stop(srv);
  }
}

/** One interval line of iperf3's text report ("[  5]   1.00-2.00   sec  1.09 GBytes  9.36 Gbits/sec"), not the summary. */
export function iperfInterval(line: string): { from: number; to: number; gbps: number } | null {
  const m = /^\[\s*\d+\]\s+([\d.]+)-([\d.]+)\s+sec\s+[\d.]+\s+\S*Bytes\s+([\d.]+)\s+([KMG]?)bits\/sec(.*)$/.exec(line);
  if (!m || /sender|receiver/.test(m[5]!)) return null;
  const scale = { '': 1e-9, K: 1e-6, M: 1e-3, G: 1 }[m[4] as '' | 'K' | 'M' | 'G'];
  return { from: Number(m[1]), to: Number(m[2]), gbps: Number(m[3]) * scale };
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
