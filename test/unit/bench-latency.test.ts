/**
 * The latency rows' table (bench/latency.ts): each overlay's figures and wake-ups, and vtepd
 * divided by the best userspace overlay of each column (the lowest RTT, the highest
 * throughput; the kernel is not a userspace overlay).
 */
import { describe, expect, it } from 'vitest';
import {
  latencyChartSvg,
  latencyOptions,
  latencySteps,
  latencyTable,
  passShare,
  pingFigure,
  vsBest,
  vsBestJson,
  type LatencyFigures,
  type LatencyRow,
} from '../../bench/latency.js';

const ping = (mean: number, p99: number, wakeups = 0) => ({
  interval: 0.01,
  sent: 10,
  received: 10,
  mean,
  p99,
  min: mean / 2,
  wakeups,
  migrations: 0,
  idleWakeupsPerSecond: 0,
});
const row = (overlay: string, peer: boolean, fast: number, slow: number, tcp1: number, udp64pps: number): LatencyRow => ({
  overlay,
  peer,
  cipher: 'none',
  fast: ping(fast, fast * 2, 4),
  slow: ping(slow, slow * 3, 4),
  tcp1,
  udp64pps,
  idle: { seconds: 60, cpuSeconds: overlay === 'vtepd VXLAN' ? 0.08 : 0, wakeupsPerSecond: 1.7 },
});

const figures: LatencyFigures = {
  pings: { fast: 1000, slow: 100 },
  seconds: 5,
  idleSeconds: 60,
  rows: [
    row('kernel VXLAN', false, 0.012, 0.02, 20, 480e3),
    row('vtepd VXLAN', false, 0.16, 0.2, 10, 300e3),
    row('tinc switch, no crypto', true, 0.1, 0.25, 1.8, 80e3),
    row('OpenVPN TAP, no crypto', true, 0.13, 0.1, 1.6, 82e3),
  ],
};

describe('bench latency table', () => {
  it('divides vtepd by the best userspace overlay of each column, lower RTT and higher throughput being best', () => {
    expect(vsBest(figures).map((v) => [v.head, v.ratio.toFixed(2), v.best])).toEqual([
      ['-i 0.01 mean ms', '1.60', 'tinc switch, no crypto'],
      ['-i 0.01 p99 ms', '1.60', 'tinc switch, no crypto'],
      ['-i 0.2 mean ms', '2.00', 'OpenVPN TAP, no crypto'],
      ['-i 0.2 p99 ms', '2.00', 'OpenVPN TAP, no crypto'],
      ['TCP 1 Gbit/s', '5.56', 'tinc switch, no crypto'],
      ['UDP 64 B kpps', '3.66', 'OpenVPN TAP, no crypto'],
    ]);
  });

  it('prints a row per overlay and the ratios last', () => {
    const cells = latencyTable(figures)
      .split('\n')
      .slice(3, -1)
      .map((l) =>
        l
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim()),
      );
    expect(cells[1]).toEqual(['vtepd VXLAN', 'none', '0.160', '0.320', '0.200', '0.600', '10.00', '300', '4.0 (0.0)', '4.0 (0.0)', '0', '0.08']);
    expect(cells[4]).toEqual(['vtepd ÷ best userspace', '', '1.60×', '1.60×', '2.00×', '2.00×', '5.56×', '3.66×', '', '', '', '']);
    expect(latencyTable(figures).split('\n')[1]).toContain('| idle CPU-s / 60 s |');
  });

  it('gives the vtepd row with its data path in a process of its own (VTEPD_DP_PROCESS=1) a ratio line of its own', () => {
    const both: LatencyFigures = {
      ...figures,
      rows: [...figures.rows.slice(0, 2), row('vtepd VXLAN, own process', false, 0.12, 0.1, 8, 240e3), ...figures.rows.slice(2)],
    };
    const lines = latencyTable(both).split('\n');
    const cells = (l: string) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
    expect(cells(lines[5]!).slice(0, 3)).toEqual(['vtepd VXLAN, own process', 'none', '0.120']);
    expect(cells(lines.at(-3)!)).toEqual(['vtepd ÷ best userspace', '', '1.60×', '1.60×', '2.00×', '2.00×', '5.56×', '3.66×', '', '', '', '']);
    expect(cells(lines.at(-2)!)).toEqual(['vtepd, own process ÷ best userspace', '', '1.20×', '1.20×', '1.00×', '1.00×', '4.44×', '2.93×', '', '', '', '']);
    // The peers stay the same: the vtepd rows are not userspace peers of each other.
    expect(lines.at(-1)).toContain('-i 0.2 mean ms: OpenVPN TAP, no crypto');
    const json = vsBestJson(both);
    expect(json.vsBest).toEqual(vsBest(both));
    expect(json.vsBestOwnProcess?.map((v) => v.ratio.toFixed(2))).toEqual(['1.20', '1.20', '1.00', '1.00', '4.44', '2.93']);
    expect(vsBestJson(figures).vsBestOwnProcess).toBeUndefined();
  });

  it('prints - for the idle CPU of a run without an idle phase', () => {
    const none: LatencyFigures = { ...figures, idleSeconds: 0, rows: figures.rows.map(({ idle: _, ...r }) => r) };
    const vtepd = latencyTable(none).split('\n')[4]!.split('|').slice(1, -1);
    expect(vtepd.at(-1)!.trim()).toBe('-');
  });

  it('takes its sizes from the environment', () => {
    expect(latencyOptions({})).toEqual({ fast: 1000, slow: 100, seconds: 5, idleSeconds: 60, passes: 4 });
    expect(
      latencyOptions({ BENCH_LATENCY_PINGS: '200', BENCH_LATENCY_SLOW_PINGS: '20', BENCH_SECONDS: '2', BENCH_IDLE_SECONDS: '0', BENCH_LATENCY_PASSES: '2' }),
    ).toEqual({ fast: 200, slow: 20, seconds: 2, idleSeconds: 0, passes: 2 });
    // The idle phase is one progress step more; each pass of the two ping measures one per overlay.
    expect(latencySteps({ idleSeconds: 60, passes: 4 }) - latencySteps({ idleSeconds: 0, passes: 4 })).toBe(1);
    expect(latencySteps({ idleSeconds: 0, passes: 3 }) - latencySteps({ idleSeconds: 0, passes: 1 })).toBe(2 * 2 * 8);
  });

  it('splits the pings into passes that add up, and joins an overlay’s passes into one figure', () => {
    expect([0, 1, 2, 3].map((k) => passShare(100, 4, k))).toEqual([25, 25, 25, 25]);
    expect([0, 1, 2].map((k) => passShare(10, 3, k)).reduce((a, b) => a + b)).toBe(10);
    const pass = (rtts: number[], wakeups: number) => ({ sent: rtts.length, received: rtts.length, rtts, wakeups, migrations: 0, idleWakeupsPerSecond: 1 });
    const f = pingFigure(0.2, [pass([0.3, 0.4], 8), pass([0.2, 5.0], 12)]);
    expect(f).toMatchObject({ interval: 0.2, sent: 4, received: 4, min: 0.2, p99: 5.0, wakeups: 5, idleWakeupsPerSecond: 1 });
    expect(f.mean).toBeCloseTo(1.475, 6);
  });

  it('charts the ping mean and p99 at both rates, a bar per overlay, each ÷ the best userspace overlay', () => {
    const svg = latencyChartSvg(figures, '2026-12-07T08:00:00Z');
    const panels = svg.split('<g class="panel">').slice(1);
    expect(panels.map((p) => />([^<]*— lower is better[^<]*)</.exec(p)?.[1])).toEqual([
      'ping -i 0.01 mean — lower is better; best userspace: tinc, no crypto',
      'ping -i 0.01 p99 — lower is better; best userspace: tinc, no crypto',
      'ping -i 0.2 mean — lower is better; best userspace: OpenVPN, no crypto',
      'ping -i 0.2 p99 — lower is better; best userspace: OpenVPN, no crypto',
    ]);
    for (const p of panels) for (const name of ['kernel VXLAN', 'vtepd VXLAN', 'tinc, no crypto', 'OpenVPN, no crypto']) expect(p).toContain(`>${name}</text>`);
    const words = (p: string) =>
      [...p.matchAll(/<text\b[^>]*>(.*?)<\/text>/g)].map((m) =>
        m[1]!
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .trim(),
      );
    // vtepd's -i 0.01 mean 160 µs against tinc's 100 µs, the best userspace overlay there.
    expect(words(panels[0]!)).toContain('1.60× 160 µs vs 100 µs');
    expect(words(panels[0]!)).toContain('best userspace = 1×');
    expect(words(panels[2]!)).toContain('overlay/best · RTT vs best');
  });

  it('keeps the longest overlay names and figures inside the chart', () => {
    const all: LatencyFigures = {
      ...figures,
      rows: ['tinc switch, default crypto', 'OpenVPN TAP, default crypto', 'OVS userspace VXLAN', 'vtepd VXLAN, own process']
        .map((o) => row(o, true, 1.234, 12.345, 1, 1))
        .concat(figures.rows),
    };
    const svg = latencyChartSvg(all);
    const W = Number(/viewBox="0 0 (\d+)/.exec(svg)![1]);
    for (const m of svg.matchAll(/<text\b([^>]*)>(.*?)<\/text>/g)) {
      const words = m[2]!
        .replace(/<[^>]+>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim();
      const x = Number(/ x="([\d.]+)"/.exec(m[1]!)![1]);
      const width = words.length * 0.62 * (m[1]!.includes('font-weight') ? 15 : 13);
      const [from, to] = m[1]!.includes('"end"') ? [x - width, x] : m[1]!.includes('"middle"') ? [x - width / 2, x + width / 2] : [x, x + width];
      expect(from, words).toBeGreaterThanOrEqual(0);
      expect(to, words).toBeLessThanOrEqual(W);
    }
  });
});
