/**
 * The latency rows' table (bench/latency.ts): each overlay's figures and wake-ups, and vtepd
 * divided by the best userspace overlay of each column (the lowest RTT, the highest
 * throughput; the kernel is not a userspace overlay).
 */
import { describe, expect, it } from 'vitest';
import { latencyOptions, latencyTable, vsBest, type LatencyFigures, type LatencyRow } from '../../bench/latency.js';

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
});

const figures: LatencyFigures = {
  pings: { fast: 1000, slow: 100 },
  seconds: 5,
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
    expect(cells[1]).toEqual(['vtepd VXLAN', 'none', '0.160', '0.320', '0.200', '0.600', '10.00', '300', '4.0 (0.0)', '4.0 (0.0)', '0']);
    expect(cells[4]).toEqual(['vtepd ÷ best userspace', '', '1.60×', '1.60×', '2.00×', '2.00×', '5.56×', '3.66×', '', '', '']);
  });

  it('takes its sizes from the environment', () => {
    expect(latencyOptions({})).toEqual({ fast: 1000, slow: 100, seconds: 5 });
    expect(latencyOptions({ BENCH_LATENCY_PINGS: '200', BENCH_LATENCY_SLOW_PINGS: '20', BENCH_SECONDS: '2' })).toEqual({ fast: 200, slow: 20, seconds: 2 });
  });
});
