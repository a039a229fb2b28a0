/**
 * The metrics endpoint's contract without a network: one dpStats() call per scrape, no
 * matter how many metrics read it, the names and labels docs/metrics.md lists, the series
 * count it gives for a hub.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { PortBackend } from '../../src/ports/tap.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { counterInfo } from '../../src/native/counters.js';
import { PROBE, encodeLiveness } from '../../src/overlay/liveness.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { BCAST, frame, mac } from '../support/frames.js';

class CountingDatapath extends FakeDatapath {
  statsCalls = 0;
  /** VTEP ids reported as having received a packet (the fake counts none). */
  heard: number[] = [];
  override stats() {
    this.statsCalls++;
    const s = super.stats();
    for (const id of this.heard) s.vteps[id] = { rxPackets: 1, rxBytes: 100, txPackets: 0, txBytes: 0, drops: 0 };
    return s;
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

  it('a hub with N spokes, T tenants and P ports: peers by address, encap and NAT port; 113 + 25T + 5P + 8N vtepd series', async () => {
    const before = Date.now() / 1000;
    const { d, m } = await hub();
    const text = await m.render();
    const a = '{vtep="10.0.0.1",encap="vxlan"}';
    const b = '{vtep="198.51.100.7",encap="vxlan",udp_port="40001"}';
    expect(text).toContain(`vtepd_peer_path_mtu_bytes${a} 1500`);
    expect(text).toContain(`vtepd_peer_up${b} 1`);
    expect(text).toContain(`vtepd_peer_rx_packets_total${b} 1`);
    const seen = Number(new RegExp(`^vtepd_peer_last_seen_timestamp_seconds${b.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(seen).toBeGreaterThanOrEqual(Math.floor(before));
    expect(seen).toBeLessThanOrEqual(Date.now() / 1000);
    expect(text).toContain('vtepd_tenant_info{tenant="blue",vni="5001",encap="vxlan"} 1');
    expect(text).toContain('vtepd_tenant_info{tenant="red",vni="5002",encap="gre"} 1');
    expect(text).toContain('vtepd_fdb_max_entries{tenant="red"} 300');
    expect(text).toContain('vtepd_fdb_switch_max_entries 1000');
    // Renamed in 0.2: the old names are gone; the process's start time is prom-client's.
    for (const old of ['vtepd_peer_path_mtu{', 'vtepd_peer_last_seen_seconds', 'vtepd_start_time_seconds']) expect(text).not.toContain(old);
    expect(text).toMatch(/^process_start_time_seconds \d+/m);
    // The count docs/metrics.md gives (the fake has no fast-path queues: a real one adds 2 per queue).
    const series = text.split('\n').filter((l) => l.startsWith('vtepd_')).length;
    const [T, P, N] = [2, 3, 2];
    expect(counterInfo().length).toBe(70);
    expect(series).toBe(113 - 2 + 25 * T + 5 * P + 8 * N);
    d.close();
  });
});

/** A hub with tenants blue (VXLAN, one port) and red (GRE, two ports, maxMacs 300), and two spokes heard from, one behind NAT. */
async function hub() {
  const r = parseConfig(
    [
      'role: hub',
      'underlay: { local: 10.0.0.10 }',
      'tenants:',
      '  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ] }',
      '  - { name: red, vni: 5002, encap: gre, maxMacs: 300, ports: [ { tap: red0 }, { tap: red1 } ] }',
      '',
    ].join('\n'),
  );
  if (!r.ok) throw new Error('bad config');
  const dp = new CountingDatapath();
  const m: Metrics = new Metrics(() => d);
  const d = await Daemon.start(r.config, { dp, ports, maxMacsTotal: 1000 });
  const probe = (nat: boolean) => encodeLiveness({ type: PROBE, seq: 1, sender: 42, timestamp: 5, probedSize: 0, role: 'spoke', nat, vnis: [5001, 5002] });
  dp.fromControl('10.0.0.1', 4789, probe(false));
  dp.fromControl('198.51.100.7', 40001, probe(true)); // a spoke behind NAT: known by address and port
  dp.heard = d.sw.vteps.all().map((v) => v.id);
  return { d, m };
}
