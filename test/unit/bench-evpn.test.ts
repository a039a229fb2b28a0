/**
 * The EVPN bench's pieces (bench/evpn.ts): reading `bridge -timestamp monitor fdb`, the
 * quantiles, the table (vtepd ÷ FRR per row) and its options from BENCH_EVPN_*.
 */
import { describe, expect, it } from 'vitest';
import { evpnOptions, evpnSteps, evpnTable, fdbEvents, quantile, type Bulk, type DaemonCpu } from '../../bench/evpn.js';

describe('bench evpn', () => {
  it("reads the monitor's adds (extern_learn only) and deletes of one device, each stamped by the Timestamp line before it", () => {
    const stamp = { at: 0 };
    const at = Date.parse('Mon Dec  7 10:09:17 2026');
    const events = fdbEvents(
      [
        'Timestamp: Mon Dec  7 10:09:17 2026 250000 usec',
        '02:a1:00:00:00:01 dev vx100 dst 10.0.0.3 self extern_learn ',
        '02:a1:00:00:00:02 dev vx100 master br100 ',
        '02:00:00:00:00:99 dev brmon self permanent',
        '02:a1:00:00:00:03 dev vx100 dst 10.0.0.2 self ',
        'Timestamp: Mon Dec  7 10:09:18 2026 1000 usec',
        'Deleted 02:a1:00:00:00:01 dev vx100 dst 10.0.0.3 self extern_learn ',
      ],
      'vx100',
      stamp,
    );
    expect(events).toEqual([
      { at: at + 250, mac: '02:a1:00:00:00:01', dst: '10.0.0.3', deleted: false },
      { at: at + 1001, mac: '02:a1:00:00:00:01', dst: '10.0.0.3', deleted: true },
    ]);
    // The stamp carries over to the next chunk of lines.
    expect(fdbEvents(['02:a1:00:00:00:04 dev vx100 dst 10.0.0.3 self extern_learn'], 'vx100', stamp)[0]!.at).toBe(at + 1001);
  });

  it('takes quantiles by nearest rank', () => {
    const xs = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect([quantile(xs, 0.5), quantile(xs, 0.9), quantile([7], 0.9)]).toEqual([5, 9, 7]);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('prints FRR and vtepd side by side with vtepd ÷ FRR, and says which side missed the deadline', () => {
    const cpu = (x: number): DaemonCpu => ({ vtepd: x, gobgpd: x, 'bgpd a': x, 'zebra a': x, 'bgpd b': x, 'zebra b': x });
    const bulk = (up: number, down: number, originated = 1000): Bulk => ({
      macs: 1000,
      originateSeconds: up,
      originated,
      withdrawSeconds: down,
      withdrawn: 1000,
      cpu: { originate: cpu(1), withdraw: cpu(0.5) },
      monitorLost: { originate: 0, withdraw: 0 },
    });
    const text = evpnTable(
      { latency: { FRR: [60, 70, 62], vtepd: [30, 45, 40] }, bulk: { FRR: bulk(0.5, 0.25), vtepd: bulk(4, 2, 900) } },
      { macs: 3, bulk: 1000 },
    );
    const lines = text.split('\n');
    expect(lines[0]).toContain('vtepd: 900 originated, 1000 withdrawn before the deadline');
    const rows = lines.slice(3).map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
    expect(rows.slice(0, 6)).toEqual([
      ['new MAC: first frame → FDB entry, median', 'ms', '62.0', '40.0', '0.65×'],
      ['new MAC: first frame → FDB entry, p90', 'ms', '70.0', '45.0', '0.64×'],
      ['1,000 MACs: first frame → all in the FDB', 's', '0.50', '4.00', '8.00×'],
      ['1,000 MACs originated', 'routes/s', '2000', '225', '0.11×'],
      ['1,000 MACs: port removed → none in the FDB', 's', '0.25', '2.00', '8.00×'],
      ['1,000 MACs withdrawn', 'routes/s', '4000', '500', '0.13×'],
    ]);
    expect(rows[6]).toEqual(["originate: originating host's daemons' CPU", 's/1,000 routes', '2.00', '2.22', '1.11×']);
  });

  it('takes its sizes from BENCH_EVPN_*, with 20 samples and 10,000 MACs by default', () => {
    expect(evpnOptions({})).toEqual({ macs: 20, bulk: 10_000, deadline: 300 });
    const o = evpnOptions({ BENCH_EVPN_MACS: '3', BENCH_EVPN_BULK: '500', BENCH_EVPN_DEADLINE: '60' });
    expect(o).toEqual({ macs: 3, bulk: 500, deadline: 60 });
    expect(evpnSteps(o)).toBe(10);
  });
});
