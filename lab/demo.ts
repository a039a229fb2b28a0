/**
 * `vtepd demo`: two hosts, two tenants with the same overlay addresses, vtepd on both
 * hosts; ping and iperf3 through the overlay, and a check that the tenants do not see
 * each other. Prints what it measured and removes everything it made.
 */
import { iperfGbps, parsePing } from './netns.js';
import { addKernelVxlan, twoHostsVtepd, type TenantPlan } from './topology.js';
import { untilListening } from './wait.js';

export interface DemoOptions {
  seconds: number;
  kernel: boolean;
}

const TENANTS: TenantPlan[] = [
  { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] },
  { name: 'red', vni: 5002, addresses: ['10.1.0.1/24', '10.1.0.2/24'] },
];

export async function demo(opts: DemoOptions): Promise<boolean> {
  const out = (s: string) => process.stdout.write(s + '\n');
  out('vtepd demo: hosts h1 (10.0.0.1) and h2 (10.0.0.2) joined by a veth underlay;');
  out('tenants blue (VNI 5001) and red (VNI 5002), both using 10.1.0.1 <-> 10.1.0.2.');
  const t = await twoHostsVtepd(TENANTS, { tag: 'vd' });
  let ok = true;
  try {
    const { lab } = t;
    const rows: string[][] = [];
    for (const ten of TENANTS) {
      const ping = parsePing(
        (await lab.exec(`${ten.name}1`, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', '10.1.0.2'], 30_000).catch((e: Error) => ({ stdout: e.message }))).stdout,
      );
      ok &&= ping.received === ping.sent && ping.sent > 0;
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
    ok &&= leaked === 0;
    out(`isolation: 20 pings in red delivered ${leaked} frame(s) to blue's TAP on h2 ${leaked === 0 ? '(none: isolated)' : '(LEAK)'}`);

    const srv = lab.spawn('blue2', 'iperf3', ['-s', '-1', '-B', '10.1.0.2']);
    await untilListening(lab, 'blue2', 5201);
    const res = await lab.exec('blue1', 'iperf3', ['-c', '10.1.0.2', '-t', String(opts.seconds), '-J'], (opts.seconds + 30) * 1000);
    await lab.stop(srv);
    const gbps = iperfGbps(res.stdout);
    const perf = [['vtepd VXLAN (blue)', gbps.toFixed(2)]];
    if (opts.kernel) {
      await addKernelVxlan(lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'] });
      const ks = lab.spawn('k2', 'iperf3', ['-s', '-1', '-B', '10.9.0.2']);
      await untilListening(lab, 'k2', 5201);
      const kr = await lab.exec('k1', 'iperf3', ['-c', '10.9.0.2', '-t', String(opts.seconds), '-J'], (opts.seconds + 30) * 1000);
      await lab.stop(ks);
      const k = iperfGbps(kr.stdout);
      perf.push(['kernel VXLAN (same veth)', k.toFixed(2)]);
      perf.push(['ratio vtepd / kernel', (gbps / k).toFixed(2)]);
    }
    out('');
    out(`iperf3 TCP, 1 stream, ${opts.seconds} s, h1 -> h2`);
    out(table(['path', 'Gbit/s'], perf));
    ok &&= gbps > 0;
  } finally {
    await t.cleanup();
  }
  out('');
  out(ok ? 'demo: OK (namespaces removed)' : 'demo: FAILED (namespaces removed)');
  return ok;
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
