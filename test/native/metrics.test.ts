/**
 * The metrics endpoint's contract without a network: one dpStats() call per scrape, no
 * matter how many metrics read it, the names and labels docs/metrics.md lists, the series
 * count it gives for a hub, and that the Grafana dashboard and the alert rules in contrib/
 * use only what a daemon exports.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
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
    // In the daemon's process: the data path process's series say 0.
    expect(text).toContain('vtepd_datapath_process_resident_memory_bytes 0');
    expect(text).toContain('vtepd_datapath_process_cpu_seconds_total 0');
    d.close();
  });

  it("exports the data path process's memory and CPU when it has one (process_* are node's alone)", async () => {
    const r = parseConfig('underlay: { local: 10.0.0.1 }\ntenants:\n  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ] }\n');
    if (!r.ok) throw new Error('bad config');
    const dp = new CountingDatapath();
    // The fake plays a child whose PID is this process's: its /proc figures are real.
    dp.dpProcess = { pid: process.pid, alive: true };
    const d = await Daemon.start(r.config, { dp, ports, maxMacsTotal: 1000 });
    const m = new Metrics(() => d);
    const text = await m.render();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    const rss = value('vtepd_datapath_process_resident_memory_bytes');
    expect(rss).toBeGreaterThan(10e6);
    expect(Math.abs(rss - value('process_resident_memory_bytes'))).toBeLessThan(rss / 4);
    expect(value('vtepd_datapath_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(text).toContain('# TYPE vtepd_datapath_process_cpu_seconds_total counter');
    d.close();
  });

  it('a hub with N spokes, T tenants and P ports: peers by address, encap and NAT port; 126 + 25T + 5P + 8N vtepd series', async () => {
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
    expect(counterInfo().length).toBe(79);
    expect(series).toBe(126 - 2 + 25 * T + 5 * P + 8 * N);
    d.close();
  });

  it('the Grafana dashboard and the alert rules use only metrics and labels a daemon exports', async () => {
    const { d, m } = await hub();
    const exported = exports(await m.render(), m);
    d.close();
    const dashboard = JSON.parse(readFileSync('contrib/grafana/vtepd.json', 'utf8')) as Dashboard;
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const dashExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `dashboard: ${p.title}`, expr: t.expr })));
    expect(dashExprs.length).toBeGreaterThan(20);
    for (const want of ['vtepd_peer_up', 'vtepd_tenant_tunnel_rx_bytes_total', 'vtepd_drops_total', 'vtepd_fdb_max_entries', 'vtepd_handshakes_total'])
      expect(
        dashExprs.some((e) => e.expr.includes(want)),
        want,
      ).toBe(true);
    expect(dashExprs.some((e) => e.expr.includes('reason="storm_control"'))).toBe(true);

    const rules = parseYaml(readFileSync('contrib/prometheus/vtepd-alerts.yaml', 'utf8')) as unknown;
    const ruleExprs = ruleGroupShape(rules);
    expect(ruleExprs.map((r) => r.where)).toEqual(
      expect.arrayContaining(['alert VtepdPeerDown', 'alert VtepdDatapathDrops', 'alert VtepdFdbNearLimit', 'alert VtepdStormDrops']),
    );
    for (const { where, expr } of [...dashExprs, ...ruleExprs]) {
      const names = [...expr.matchAll(/\b(?:vtepd|process|nodejs)_[a-z0-9_]+/g)].map((x) => x[0]);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n), `${where}: ${n} is not exported`).toBe(true);
      // Label matchers on a metric: labels it has, and for reason="x" a reason it counts.
      for (const [, name, body] of expr.matchAll(/\b((?:vtepd|process)_[a-z0-9_]+)\{([^}]*)\}/g)) {
        for (const [, label, op, value] of body!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
          if (label === 'instance' || label === 'job') continue;
          expect(exported.get(name!)!.labels.has(label!), `${where}: ${name} has no label ${label}`).toBe(true);
          if (op === '=') expect(exported.get(name!)!.values.get(label!)?.has(value!), `${where}: ${name}{${label}="${value}"} never exported`).toBe(true);
        }
      }
      // by (...) labels: each exported by one of the expression's metrics.
      for (const [, list] of expr.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)) {
        for (const label of list!.split(',').map((x) => x.trim())) {
          if (label === 'instance' || label === 'job') continue;
          expect(
            names.some((n) => exported.get(n)!.labels.has(label)),
            `${where}: no metric of ${expr} has label ${label}`,
          ).toBe(true);
        }
      }
    }
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

interface Dashboard {
  panels: { title: string; targets?: { expr: string }[]; panels?: Dashboard['panels'] }[];
}

/**
 * What a daemon exports: every metric of the registry with its label names (histograms and
 * summaries with their suffixes), and the label values of one scrape's samples.
 */
function exports(text: string, m: Metrics): Map<string, { labels: Set<string>; values: Map<string, Set<string>> }> {
  const out = new Map<string, { labels: Set<string>; values: Map<string, Set<string>> }>();
  const add = (name: string, labels: string[] = []) => {
    const e = out.get(name) ?? out.set(name, { labels: new Set(), values: new Map() }).get(name)!;
    for (const l of labels) e.labels.add(l);
    return e;
  };
  for (const metric of m.registry.getMetricsAsArray()) {
    const { name, labelNames = [] } = metric as unknown as { name: string; labelNames?: string[] };
    add(name, labelNames);
    const type = String((metric as unknown as { type: unknown }).type);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) add(name + s, [...labelNames, ...(s === '_bucket' ? ['le'] : [])]);
    if (type === 'summary') for (const s of ['_sum', '_count']) add(name + s, labelNames);
  }
  for (const [, name, body] of text.matchAll(/^(\w+)\{([^}]*)\}/gm)) {
    const e = add(name!);
    for (const [, k, v] of body!.matchAll(/(\w+)="([^"]*)"/g)) {
      e.labels.add(k!);
      if (!e.values.has(k!)) e.values.set(k!, new Set());
      e.values.get(k!)!.add(v!);
    }
  }
  return out;
}

/** The Prometheus rule-file shape (groups of named rule lists; each rule an alert or record with an expr): the exprs. */
function ruleGroupShape(doc: unknown): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  expect(doc).toMatchObject({ groups: expect.any(Array) });
  const groups = (doc as { groups: unknown[] }).groups;
  expect(groups.length).toBeGreaterThan(0);
  const names = new Set<string>();
  for (const g of groups as Record<string, unknown>[]) {
    expect(
      Object.keys(g).every((k) => ['name', 'interval', 'limit', 'rules'].includes(k)),
      JSON.stringify(Object.keys(g)),
    ).toBe(true);
    expect(typeof g.name).toBe('string');
    expect(names.has(g.name as string), `group ${g.name} twice`).toBe(false);
    names.add(g.name as string);
    expect(Array.isArray(g.rules)).toBe(true);
    for (const r of g.rules as Record<string, unknown>[]) {
      const where = r.alert !== undefined ? `alert ${r.alert}` : `record ${r.record}`;
      expect(
        Object.keys(r).every((k) => ['alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(k)),
        where,
      ).toBe(true);
      expect(typeof (r.alert ?? r.record), where).toBe('string');
      expect('alert' in r !== 'record' in r, `${where}: alert or record, not both`).toBe(true);
      expect(typeof r.expr, where).toBe('string');
      if (r.for !== undefined) expect(r.for, where).toMatch(/^(\d+(ms|s|m|h|d|w|y))+$/);
      for (const k of ['labels', 'annotations'])
        if (r[k] !== undefined)
          expect(
            Object.values(r[k] as object).every((v) => typeof v === 'string'),
            `${where}: ${k}`,
          ).toBe(true);
      out.push({ where, expr: r.expr as string });
    }
  }
  return out;
}
