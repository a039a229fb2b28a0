/**
 * The metrics endpoint's contract without a network: one dpStats() call per scrape, no
 * matter how many metrics read it, and the names the README lists.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { PortBackend } from '../../src/ports/tap.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { BCAST, frame, mac } from '../support/frames.js';

class CountingDatapath extends FakeDatapath {
  statsCalls = 0;
  override stats() {
    this.statsCalls++;
    return super.stats();
  }
}

const ports: PortBackend = {
  open: async () => ({ fd: -1, ifindex: 1, mac: '02:aa:00:00:00:01' }),
  close: () => {},
  change: async () => {},
};

describe('metrics', () => {
  it('reads the fast path once per scrape and exports the documented names', async () => {
    const r = parseConfig('underlay: { local: 10.0.0.1 }\ntenants:\n  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ], flood: [ 10.0.0.2 ] }\n');
    if (!r.ok) throw new Error('bad config');
    const dp = new CountingDatapath();
    const m: Metrics = new Metrics(() => d);
    const d = await Daemon.start(r.config, { dp, ports, maxMacsTotal: 1000, hooks: { eventBatch: (n) => m.observeBatch(n) } });
    dp.fromPort(d.sw.portId('blue0')!, frame(BCAST, mac(1), 'x'));
    dp.statsCalls = 0;
    const text = await m.render();
    expect(dp.statsCalls).toBe(1);
    await m.render();
    expect(dp.statsCalls).toBe(2);
    for (const name of [
      'vtepd_port_rx_packets_total',
      'vtepd_peer_tx_bytes_total',
      'vtepd_drops_total',
      'vtepd_fdb_entries',
      'vtepd_tenant_learned_total',
      'vtepd_tenant_moves_total',
      'vtepd_tenant_flooded_total',
      'vtepd_events_total',
      'vtepd_event_batch_size',
      'vtepd_datapath_tap_rx_frames_total',
      'vtepd_reloads_total',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('vtepd_fdb_entries{tenant="blue",type="learned"} 1');
    expect(text).toContain('vtepd_tenant_learned_total{tenant="blue"} 1');
    expect(text).toContain('vtepd_event_batch_size_count 1');
    d.close();
  });
});
