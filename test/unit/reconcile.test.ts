/**
 * Reload as a diff (src/config/reconcile.ts), first as a pure plan, then applied by the Daemon
 * over the in-memory fake data path: unchanged tenants are not touched at all (their
 * learned MACs stay, the cache sees no call for them), the rest is added, removed or
 * changed in place, a change that fails is reported and retried by the next reload.
 */
import { describe, expect, it } from 'vitest';
import type { Config, PortConfig } from '../../src/config/config.js';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { PortBackend, PortHandle, RunningPort } from '../../src/ports/tap.js';
import { describeChange, plan, type Change } from '../../src/config/reconcile.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { BCAST, frame, mac } from '../support/frames.js';

function cfg(text: string): Config {
  const r = parseConfig(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.config;
}

const BASE = `
underlay: { local: 10.0.0.1 }
tenants:
  - name: blue
    vni: 5001
    ports: [ { tap: blue0 }, { tap: blue1 } ]
    flood: [ 10.0.0.2, 10.0.0.3 ]
    fdb: [ { mac: "02:00:00:00:0f:01", vtep: 10.0.0.2 } ]
  - name: red
    vni: 5002
    ports: [ { tap: red0 } ]
    flood: [ 10.0.0.2 ]
`;

const ops = (changes: Change[]) => changes.map((c) => `${c.op} ${describeChange(c)}`);

describe('plan', () => {
  it('finds nothing to do for the same config', () => {
    expect(plan(cfg(BASE), cfg(BASE))).toEqual({ changes: [], errors: [] });
  });

  it('changes the switch-wide MAC limit in place', () => {
    expect(ops(plan(cfg(BASE), cfg(`limits: { maxMacs: 1000 }\n${BASE}`)).changes)).toEqual(['limits limits: maxMacs 1000 over all tenants']);
  });

  it('adds and removes tenants, and touches nothing of an unchanged one', () => {
    const next = cfg(BASE.replace(/  - name: red[\s\S]*$/, '  - { name: green, vni: 5003, ports: [ { tap: green0 } ] }\n'));
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'tenant.remove tenant red: removed (not in the new config)',
      'tenant.add tenant green: added (VNI 5003)',
      'port.add port green0 (tenant green): added',
    ]);
  });

  it('replaces a tenant whose VNI changed, ports and all', () => {
    const next = cfg(BASE.replace('vni: 5002', 'vni: 6002'));
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'tenant.remove tenant red: removed (VNI 5002 -> 6002)',
      'tenant.add tenant red: added (VNI 6002)',
      'port.add port red0 (tenant red): added',
    ]);
  });

  it('replaces a tenant whose encapsulation changed', () => {
    const next = cfg(BASE.replace('vni: 5002', 'vni: 5002\n    encap: gre'));
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'tenant.remove tenant red: removed (encap vxlan -> gre)',
      'tenant.add tenant red: added (VNI 5002)',
      'port.add port red0 (tenant red): added',
    ]);
  });

  it('changes policy, flood list and static entries in place', () => {
    const next = cfg(
      BASE.replace('flood: [ 10.0.0.2, 10.0.0.3 ]', 'flood: [ 10.0.0.3, 10.0.0.4 ]\n    ageing: 60\n    maxMacs: 10').replace(
        'fdb: [ { mac: "02:00:00:00:0f:01", vtep: 10.0.0.2 } ]',
        'fdb: [ { mac: "02:00:00:00:0f:01", vtep: 10.0.0.4 }, { mac: "02:00:00:00:0f:02", vtep: 10.0.0.3 } ]',
      ),
    );
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'tenant.policy tenant blue: ageing 300s -> 60s, maxMacs 8192 -> 10',
      'tenant.flood tenant blue: flood list +10.0.0.4 -10.0.0.2',
      'fdb.set tenant blue: static entry 02:00:00:00:0f:01 -> vtep 10.0.0.4 (was vtep 10.0.0.2)',
      'fdb.set tenant blue: static entry 02:00:00:00:0f:02 -> vtep 10.0.0.3',
    ]);
    const back = plan(next, cfg(BASE)).changes;
    expect(ops(back)).toContain('fdb.del tenant blue: static entry 02:00:00:00:0f:02 removed');
  });

  it('moves a port between tenants by removing and adding it; changes MTU and address in place', () => {
    const next = cfg(
      BASE.replace('ports: [ { tap: blue0 }, { tap: blue1 } ]', 'ports: [ { tap: blue0, mtu: 1400, address: 10.1.0.1/24 } ]').replace(
        'ports: [ { tap: red0 } ]',
        'ports: [ { tap: red0 }, { tap: blue1 } ]',
      ),
    );
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'port.remove port blue1 (tenant blue): removed (moves to tenant red)',
      'port.add port blue1 (tenant red): added',
      'port.change port blue0 (tenant blue): changed mtu, address',
    ]);
  });

  it('attaches and detaches an attached interface as a diff, and replaces a port that changes kind (#15)', () => {
    const withEth = cfg(BASE.replace('{ tap: red0 }', '{ tap: red0 }, { attach: eth1, netns: tor }'));
    expect(ops(plan(cfg(BASE), withEth).changes)).toEqual(['port.add port eth1 (tenant red): attached']);
    expect(ops(plan(withEth, cfg(BASE)).changes)).toEqual(['port.remove port eth1 (tenant red): removed (not in the new config)']);
    const attached = cfg(BASE.replace('{ tap: red0 }', '{ attach: red0 }'));
    expect(ops(plan(cfg(BASE), attached).changes)).toEqual([
      'port.remove port red0 (tenant red): removed (becomes an attached interface)',
      'port.add port red0 (tenant red): attached',
    ]);
    expect(plan(withEth, withEth).changes).toEqual([]);
  });

  it('trunks: attached, changed VLAN by VLAN, set again when a tenant on it is replaced, removed; a tagged TAP whose VLAN changes is replaced; innerVlan in place (#15)', () => {
    const trunk = (t: string) => cfg(`${BASE}trunks:\n  - ${t}\n`);
    const a = trunk('{ attach: eth1, vlans: { 100: blue } }');
    const b = trunk('{ attach: eth1, vlans: { 100: blue, 200: red }, native: red }'.replace(', native: red', ''));
    expect(ops(plan(cfg(BASE), a).changes)).toEqual(['trunk.set trunk eth1: attached (VLAN 100 blue)']);
    expect(ops(plan(a, b).changes)).toEqual(['trunk.set trunk eth1: changed (+VLAN 200 red)']);
    expect(ops(plan(b, a).changes)).toEqual(['trunk.set trunk eth1: changed (-VLAN 200 red)']);
    expect(ops(plan(a, cfg(BASE)).changes)).toEqual(['trunk.remove trunk eth1: removed (not in the new config)']);
    expect(plan(a, a).changes).toEqual([]);
    const newVni = cfg(`${BASE.replace('vni: 5001', 'vni: 5009')}trunks:\n  - { attach: eth1, vlans: { 100: blue } }\n`);
    expect(ops(plan(a, newVni).changes).filter((c) => c.startsWith('trunk'))).toEqual(['trunk.set trunk eth1: changed (its tenants were added again)']);
    const tagged = cfg(BASE.replace('{ tap: red0 }', '{ tap: red0, vlan: 30 }'));
    expect(ops(plan(cfg(BASE), tagged).changes)).toEqual([
      'port.remove port red0 (tenant red): removed (its VLAN none -> 30)',
      'port.add port red0 (tenant red): added',
    ]);
    const allow = cfg(BASE.replace('vni: 5002', 'vni: 5002\n    innerVlan: allow'));
    expect(ops(plan(cfg(BASE), allow).changes)).toEqual(['tenant.innerVlan tenant red: innerVlan drop -> allow']);
  });

  it('recreates a port that moves to another namespace', () => {
    const next = cfg(BASE.replace('{ tap: red0 }', '{ tap: red0, netns: vmB }'));
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'port.remove port red0 (tenant red): removed (moves from namespace (host) to vmB)',
      'port.add port red0 (tenant red): added',
    ]);
  });

  it('changes log level, control socket and metrics', () => {
    const next = cfg(`log: { level: debug }\ncontrol: { socket: /tmp/x.sock }\nmetrics: { listen: "127.0.0.1:9477" }\n${BASE}`);
    expect(ops(plan(cfg(BASE), next).changes)).toEqual([
      'log.level log level debug',
      'control.socket control socket /tmp/x.sock',
      'metrics metrics on 127.0.0.1:9477',
    ]);
  });

  it('refuses an underlay change with the path of every field', () => {
    const next = cfg(BASE.replace('underlay: { local: 10.0.0.1 }', 'underlay: { local: 10.0.0.9, port: 8472, queues: 2 }'));
    const p = plan(cfg(BASE), next);
    expect(p.changes).toEqual([]);
    expect(p.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'underlay.local: is 10.0.0.1 in the running daemon; changing the underlay needs a restart (vtepd restart), not a reload',
      'underlay.port: is 4789 in the running daemon; changing the underlay needs a restart (vtepd restart), not a reload',
      'underlay.queues: is 1 in the running daemon; changing the underlay needs a restart (vtepd restart), not a reload',
    ]);
  });
});

/** Ports that exist only in memory; `failOpen` makes opening one TAP name fail. */
class FakePorts implements PortBackend {
  next = 100;
  readonly open_: string[] = [];
  readonly closed: string[] = [];
  readonly changed: string[] = [];
  failOpen = new Set<string>();
  async open(_tenant: string, p: PortConfig): Promise<PortHandle> {
    if (this.failOpen.has(p.tap)) throw new Error(`cannot create ${p.tap}`);
    this.open_.push(p.tap);
    return { fd: -1, ifindex: this.next++, mac: p.mac ?? '02:aa:00:00:00:01' };
  }
  close(p: RunningPort): void {
    this.closed.push(p.tap);
  }
  async change(p: RunningPort, to: PortConfig): Promise<void> {
    this.changed.push(`${p.tap} mtu ${to.mtu}`);
  }
}

/** A fake data path that records every call touching the cache or the tables. */
class RecordingDatapath extends FakeDatapath {
  readonly calls: string[] = [];
  override tenantSet(t: number, vni: number): void {
    this.calls.push(`tenantSet ${t}`);
    super.tenantSet(t, vni);
  }
  override tenantDel(t: number): void {
    this.calls.push(`tenantDel ${t}`);
    super.tenantDel(t);
  }
  override portSet(p: number, t: number): void {
    this.calls.push(`portSet ${p} ${t}`);
    super.portSet(p, t);
  }
  override portDel(p: number): void {
    this.calls.push(`portDel ${p}`);
    super.portDel(p);
  }
  override fdbSet(t: number, m: string, place: Parameters<FakeDatapath['fdbSet']>[2]): void {
    this.calls.push(`fdbSet ${t} ${m}`);
    super.fdbSet(t, m, place);
  }
  override fdbDel(t: number, m: string): void {
    this.calls.push(`fdbDel ${t} ${m}`);
    super.fdbDel(t, m);
  }
}

describe('Daemon.reload over the fake data path', () => {
  async function setup() {
    const dp = new RecordingDatapath();
    const ports = new FakePorts();
    const d = await Daemon.start(cfg(BASE), { dp, ports, maxMacsTotal: 100000 });
    // blue learns two local MACs and one behind a VTEP.
    dp.fromPort(d.sw.portId('blue0')!, frame(BCAST, mac(0x101), 'a'));
    dp.fromPort(d.sw.portId('blue1')!, frame(BCAST, mac(0x102), 'b'));
    dp.fromUnderlay('10.0.0.3', 5001, frame(BCAST, mac(0x201), 'c'));
    dp.fromPort(d.sw.portId('red0')!, frame(BCAST, mac(0x301), 'r'));
    return { d, dp, ports };
  }

  it('adds one tenant and removes another without a single call for the unchanged one', async () => {
    const { d, dp, ports } = await setup();
    const blue = d.sw.tenant('blue')!;
    const before = JSON.stringify([...blue.table.values()]);
    const blueId = blue.tenantId;
    expect(blue.table.size).toBe(4); // 3 learned + 1 static
    dp.calls.length = 0;
    const next = cfg(BASE.replace(/  - name: red[\s\S]*$/, '  - { name: green, vni: 5003, ports: [ { tap: green0 } ], flood: [ 10.0.0.2 ] }\n'));
    const r = await d.reload(next);
    expect(r).toEqual({
      ok: true,
      errors: [],
      failed: [],
      changes: ['tenant red: removed (not in the new config)', 'tenant green: added (VNI 5003)', 'port green0 (tenant green): added'],
      runtimePorts: { kept: [], dropped: [] },
    });
    expect(JSON.stringify([...d.sw.tenant('blue')!.table.values()])).toBe(before);
    expect(dp.calls.filter((c) => new RegExp(`^(tenant|fdb)\\w+ ${blueId}\\b`).test(c))).toEqual([]);
    expect(ports.closed).toEqual(['red0']);
    expect(d.sw.tenant('red')).toBeUndefined();
    expect(d.running.tenants.map((t) => t.name)).toEqual(['blue', 'green']);
    // The shared VTEP 10.0.0.2 survives red's removal: blue still floods to it.
    dp.wire.length = 0;
    dp.fromPort(d.sw.portId('blue0')!, frame(BCAST, mac(0x101), 'x'));
    expect(dp.wire.map((w) => w.to).sort()).toEqual(['10.0.0.2', '10.0.0.3']);
    d.close();
  });

  it('changes static entries, flood list and policy of a kept tenant and keeps its learned MACs', async () => {
    const { d, dp } = await setup();
    const next = cfg(BASE.replace('flood: [ 10.0.0.2, 10.0.0.3 ]', 'flood: [ 10.0.0.3 ]\n    maxMacs: 50').replace('vtep: 10.0.0.2 } ]', 'vtep: 10.0.0.3 } ]'));
    const r = await d.reload(next);
    expect(r.ok).toBe(true);
    const blue = d.sw.tenant('blue')!;
    expect(blue.maxMacs).toBe(50);
    expect(blue.table.get(mac(0x101))?.place).toEqual({ kind: 'port', portId: d.sw.portId('blue0') });
    expect(blue.table.get('02:00:00:00:0f:01')?.place).toEqual({ kind: 'vtep', vtepId: d.sw.vteps.find('10.0.0.3')!.id });
    dp.wire.length = 0;
    dp.fromPort(d.sw.portId('blue0')!, frame(BCAST, mac(0x101), 'x'));
    expect(dp.wire.map((w) => w.to)).toEqual(['10.0.0.3']);
    d.close();
  });

  it('reports a change that fails, keeps it out of the running config, and retries it next time', async () => {
    const { d, ports } = await setup();
    ports.failOpen.add('green0');
    const next = cfg(`${BASE}  - { name: green, vni: 5003, ports: [ { tap: green0 } ] }\n`);
    const r = await d.reload(next);
    expect(r.ok).toBe(false);
    expect(r.failed).toEqual(['port green0 (tenant green): added: tenants[2].ports[0]: cannot create green0']);
    expect(d.running.tenants.find((t) => t.name === 'green')?.ports).toEqual([]);
    ports.failOpen.clear();
    const again = await d.reload(next);
    expect(again).toMatchObject({ ok: true, changes: ['port green0 (tenant green): added'] });
    d.close();
  });

  it('changes a port in place and refuses an underlay change without touching anything', async () => {
    const { d, ports } = await setup();
    expect((await d.reload(cfg(BASE.replace('{ tap: red0 }', '{ tap: red0, mtu: 1400 }')))).changes).toEqual(['port red0 (tenant red): changed mtu']);
    expect(ports.changed).toEqual(['red0 mtu 1400']);
    const r = await d.reload(cfg(BASE.replace('local: 10.0.0.1', 'local: 10.0.0.7')));
    expect(r.ok).toBe(false);
    expect(r.errors[0]?.path).toBe('underlay.local');
    expect(d.running.underlay.local).toBe('10.0.0.1');
    d.close();
  });
});
