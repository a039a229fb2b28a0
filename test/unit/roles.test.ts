/**
 * Hub, spoke and mesh roles over the in-memory data path (src/overlay/roles.ts): liveness, hub
 * selection and failover, spokes learned from probes (behind NAT by address and port),
 * relay with no way back to the ingress spoke, path MTU discovery, ICMP too-big, MSS.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/util/log.js';
import { Switch } from '../../src/core/switch.js';
import { traceFrame } from '../../src/core/trace.js';
import { fdbRows, whereText } from '../../src/core/fdb.js';
import { HUB_LIMITS } from '../../src/overlay/hub.js';
import { RoleAgent, type RoleOptions } from '../../src/overlay/roles.js';
import { PmtuSearch } from '../../src/overlay/pmtu.js';
import { PROBE, REPLY, decodeLiveness, encodeLiveness, type LivenessMessage } from '../../src/overlay/liveness.js';
import { parseConfig } from '../../src/config/load.js';
import { describeChange, plan } from '../../src/config/reconcile.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { tenantSpec } from '../support/harness.js';
import { BCAST, frame, mac, payloadOf } from '../support/frames.js';

const HUB1 = '10.0.0.10';
const HUB2 = '10.0.0.11';
const NAT = '198.51.100.7';
const M_LOCAL = mac(0x101);
const M_A = mac(0x201);
const M_B = mac(0x202);

/** The role options every test starts from: a mesh node, 15 s keepalive, 3 s dead interval. */
const MESH: RoleOptions = {
  role: 'mesh',
  hubs: [],
  nat: false,
  keepaliveMs: 15_000,
  deadIntervalMs: 3000,
  pmtuDiscovery: false,
  underlayMtu: 1500,
  family: 4,
};

function rig(opts: Partial<RoleOptions>) {
  const dp = new FakeDatapath();
  const sw = new Switch(dp, { vxlanPort: 4789, maxMacsTotal: 10000, defaultVtepMtu: 1500, onControl: (payload, from) => agent.onControl(payload, from) });
  sw.start();
  let now = 1_000_000;
  const agent: RoleAgent = new RoleAgent({ sw, vteps: sw.vteps, dp }, { ...MESH, ...opts }, () => now);
  const at = (t: number) => {
    now = t;
  };
  return { dp, sw, agent, at, now: () => now };
}

function msg(over: Partial<LivenessMessage> & { padTo?: number }): Buffer {
  return encodeLiveness({ type: PROBE, seq: 1, sender: 42, timestamp: 5, probedSize: 0, role: 'spoke', nat: false, vnis: [5001], ...over });
}

describe('PmtuSearch', () => {
  it('converges within 8 bytes below the real path MTU in a few rounds, from either end', () => {
    for (const limit of [576, 1000, 1280, 1400, 1442, 1499, 1500]) {
      const s = new PmtuSearch(576, 1500);
      let rounds = 0;
      for (;;) {
        const sizes = s.next();
        if (s.done) break;
        rounds++;
        for (const size of sizes) if (size <= limit) s.confirm(size);
      }
      expect(s.value, `limit ${limit}`).toBeLessThanOrEqual(limit);
      expect(s.value, `limit ${limit}`).toBeGreaterThan(limit - 9);
      expect(rounds).toBeLessThanOrEqual(4);
    }
  });

  it('searches again when the confirmed size stops arriving twice', () => {
    const s = new PmtuSearch(576, 1500);
    while (!s.done) for (const size of s.next()) s.confirm(size);
    expect(s.value).toBeGreaterThan(1490);
    s.verify();
    s.next(); // lost once
    s.verify();
    expect(s.next().length).toBeGreaterThan(0); // lost twice: a new search
    expect(s.done).toBe(false);
  });
});

describe('mesh and hub: every node answers probes from where they came', () => {
  it('replies with the same seq and timestamp, its role and VNIs, the probed size, to the outer address and port', () => {
    const { dp, sw, agent } = rig({ role: 'mesh' });
    sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    agent.start();
    agent.stop();
    dp.fromControl(NAT, 40001, msg({ seq: 77, timestamp: 1234, padTo: 1200 }));
    expect(dp.control).toHaveLength(1);
    const c = dp.control[0]!;
    expect([c.address, c.port, c.opts.fromRxSocket]).toEqual([NAT, 40001, true]);
    expect(decodeLiveness(c.payload)).toMatchObject({ type: REPLY, seq: 77, timestamp: 1234, probedSize: 1200, role: 'mesh', vnis: [5001] });
    dp.fromControl(NAT, 40001, Buffer.from('\0VTP nonsense'));
    expect(agent.counters.invalidMessages).toBe(1);
  });
});

describe('hub', () => {
  function hub() {
    const r = rig({ role: 'hub' });
    r.sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    r.sw.addTenant(tenantSpec({ name: 'red', vni: 5002 }));
    r.sw.addPort('blue', 'h0', -1);
    r.agent.start();
    r.agent.stop();
    return r;
  }

  it('learns spokes from their probes, trusts them in the tenants they list, answers from the underlay port', () => {
    const { dp, sw } = hub();
    dp.fromControl('10.0.0.1', 4789, msg({ vnis: [5001] }));
    dp.fromControl('10.0.0.2', 4789, msg({ vnis: [5001, 5002] }));
    const blue = sw.tenant('blue')!;
    const red = sw.tenant('red')!;
    const a = sw.vteps.find('10.0.0.1')!;
    const b = sw.vteps.find('10.0.0.2')!;
    expect([...blue.trusted].sort()).toEqual([a.id, b.id].sort());
    expect([...red.trusted]).toEqual([b.id]);
    expect(blue.relay && red.relay).toBe(true);
    expect(a.fixedSourcePort).toBe(true);
    expect(a.matchPort).toBe(false);
  });

  it('bounds its spokes behind one address and in all: the excess is refused, counted, learns no VTEP and gets no answer', () => {
    const { dp, sw, agent } = hub();
    const vtepsBefore = sw.vteps.all().length;
    // 20 NAT'd "spokes" behind one address: 16 learned, 4 refused.
    for (let i = 0; i < 20; i++) dp.fromControl('192.0.2.66', 40000 + i, msg({ nat: true, vnis: [5001] }));
    expect(agent.status().spokes).toHaveLength(HUB_LIMITS.spokesPerAddress);
    expect(agent.status().spokesRefused).toEqual({ tableFull: 0, perAddress: 20 - HUB_LIMITS.spokesPerAddress });
    expect(dp.control.filter((c) => c.address === '192.0.2.66').map((c) => c.port)).toEqual(
      Array.from({ length: HUB_LIMITS.spokesPerAddress }, (_, i) => 40000 + i),
    );
    // A known spoke's next probe is still answered.
    dp.control.length = 0;
    dp.fromControl('192.0.2.66', 40000, msg({ nat: true, vnis: [5001] }));
    expect(dp.control).toHaveLength(1);
    // Distinct addresses until the table is full, then 10 more: refused, no VTEP, no answer.
    const fill = HUB_LIMITS.spokes - HUB_LIMITS.spokesPerAddress;
    for (let i = 0; i < fill + 10; i++) dp.fromControl(`198.51.${100 + (i >> 8)}.${i & 255}`, 4789, msg({ vnis: [5001] }));
    expect(agent.status().spokes).toHaveLength(HUB_LIMITS.spokes);
    expect(agent.status().spokesRefused.tableFull).toBe(10);
    expect(sw.vteps.all().length - vtepsBefore).toBe(HUB_LIMITS.spokes);
    const last = `198.51.${100 + ((fill + 9) >> 8)}.${(fill + 9) & 255}`;
    expect(dp.control.filter((c) => c.address === last)).toEqual([]);
    expect(sw.tenant('blue')!.trusted.size).toBe(HUB_LIMITS.spokes);
  });

  it('never sends a spoke learned from its probes (unauthenticated) more bytes of path MTU probes than it sent', () => {
    const r = rig({ role: 'hub', pmtuDiscovery: true });
    r.sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    r.agent.start();
    r.agent.stop();
    const sentTo = () => r.dp.control.filter((c) => c.address === '192.0.2.66').reduce((n, c) => n + c.payload.length + 28, 0);
    // One (spoofed) 36-byte probe: the hub answers it, and its path MTU search waits.
    const probe = msg({ vnis: [5001] });
    let received = probe.length + 28;
    r.dp.fromControl('192.0.2.66', 4789, probe);
    for (let tick = 0; tick < 30; tick++) r.agent.tick();
    expect(sentTo()).toBeLessThanOrEqual(received);
    // A spoke that sends its own padded probes (its path MTU search) buys the hub's search as much.
    for (let i = 0; i < 6; i++) {
      const big = encodeLiveness({ ...(decodeLiveness(probe) as LivenessMessage), padTo: 1400 });
      received += big.length + 28;
      r.dp.fromControl('192.0.2.66', 4789, big);
      for (let tick = 0; tick < 3; tick++) r.agent.tick();
    }
    expect(sentTo()).toBeLessThanOrEqual(received);
    expect(r.dp.control.filter((c) => c.address === '192.0.2.66' && c.payload.length > 1000).length).toBeGreaterThan(0);
  });

  it('recomputes the MSS clamp (auto) when a spoke with a small path MTU is forgotten', () => {
    const r = hub();
    const blue = r.sw.tenant('blue')!;
    r.agent.setTenant('blue', { mssClamp: 'auto', encap: 'vxlan' });
    expect(r.dp.mssOf.get(blue.tenantId)).toEqual([1410, 1390]);
    r.dp.fromControl('192.0.2.66', 4789, msg({ vnis: [5001] }));
    r.sw.vteps.setMtu(r.sw.vteps.find('192.0.2.66')!, 600);
    r.agent.refreshMss(blue);
    expect(r.dp.mssOf.get(blue.tenantId)).toEqual([510, 490]);
    // Silent past the spoke timeout (3 x deadInterval, at least keepalive + deadInterval): forgotten, and its MTU no longer counts.
    r.agent.tick(1_000_000 + 15_000 + 3000 + 1);
    expect(r.agent.status().spokes).toEqual([]);
    expect(r.dp.mssOf.get(blue.tenantId)).toEqual([1410, 1390]);
  });

  it('relays spoke to spoke (known unicast in the fast path, floods by the bridge), never back to the ingress spoke', async () => {
    const { dp, sw } = hub();
    dp.fromControl('10.0.0.1', 4789, msg({ vnis: [5001] }));
    dp.fromControl('10.0.0.2', 4789, msg({ vnis: [5001] }));
    dp.fromControl('10.0.0.3', 4789, msg({ vnis: [5001] }));
    dp.fromUnderlay('10.0.0.1', 5001, frame(BCAST, M_A, 'arp-a'), 50000);
    expect(dp.wire.map((w) => w.to).sort()).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(dp.wire.every((w) => w.fixed)).toBe(true);
    expect(dp.portOut.get(sw.portId('h0')!)?.map(payloadOf)).toEqual(['arp-a']);
    dp.wire.length = 0;
    dp.fromUnderlay('10.0.0.2', 5001, frame(M_A, M_B, 'reply-b'), 50001);
    expect(dp.wire.map((w) => [w.to, payloadOf(w.frame)])).toEqual([['10.0.0.1', 'reply-b']]);
    dp.wire.length = 0;
    // A (mis)directed frame for a MAC behind the spoke it came from goes nowhere.
    dp.fromUnderlay('10.0.0.1', 5001, frame(M_A, mac(0x299), 'hairpin'), 50000);
    expect(dp.wire).toEqual([]);
    expect(dp.drops.hairpin).toBe(1);
    expect(traceFrame(sw, 'blue', { vtep: '10.0.0.2' }, M_B, M_A).outputs.vteps).toEqual([{ kind: 'vtep', vtep: '10.0.0.1', encap: 'vxlan' }]);
  });

  it('tells spokes behind one NAT apart by outer port, and answers each at its port', () => {
    const { dp, sw } = hub();
    dp.fromControl(NAT, 40001, msg({ nat: true, sender: 1 }));
    dp.fromControl(NAT, 40002, msg({ nat: true, sender: 2 }));
    const one = sw.vteps.find(`${NAT}:40001`)!;
    const two = sw.vteps.find(`${NAT}:40002`)!;
    expect(one.id).not.toBe(two.id);
    expect([one.matchPort, one.port, two.port]).toEqual([true, 40001, 40002]);
    dp.fromUnderlay(NAT, 5001, frame(BCAST, M_A, 'from-1'), 40001);
    dp.fromUnderlay(NAT, 5001, frame(BCAST, M_B, 'from-2'), 40002);
    const blue = sw.tenant('blue')!;
    expect(blue.table.get(M_A)?.place).toEqual({ kind: 'vtep', vtepId: one.id });
    expect(blue.table.get(M_B)?.place).toEqual({ kind: 'vtep', vtepId: two.id });
    dp.wire.length = 0;
    dp.fromUnderlay(NAT, 5001, frame(M_B, M_A, 'one-to-two'), 40001);
    expect(dp.wire.map((w) => [w.to, w.port, w.fixed])).toEqual([[NAT, 40002, true]]);
    expect(
      fdbRows(sw, 'blue')
        .map((r) => whereText(r.where))
        .sort(),
    ).toEqual([`vtep ${NAT}:40001`, `vtep ${NAT}:40002`]);
  });

  it('forgets a spoke that stops probing, with its MACs', () => {
    const { dp, sw, agent, at, now } = hub();
    dp.fromControl('10.0.0.1', 4789, msg({}));
    dp.fromUnderlay('10.0.0.1', 5001, frame(BCAST, M_A, 'a'), 50000);
    expect(sw.tenant('blue')!.table.has(M_A)).toBe(true);
    at(now() + agent.spokeTimeoutMs + 1);
    agent.tick();
    expect(sw.tenant('blue')!.table.has(M_A)).toBe(false);
    expect(sw.vteps.find('10.0.0.1')).toBeUndefined();
  });
});

describe('spoke', () => {
  function spoke(nat = false) {
    const r = rig({
      role: 'spoke',
      nat,
      hubs: [
        { address: HUB1, family: 4, port: 4789, mtu: null, publicKey: null },
        { address: HUB2, family: 4, port: 4789, mtu: 1400, publicKey: null },
      ],
    });
    r.sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    r.sw.addPort('blue', 'p0', -1);
    r.agent.start();
    r.agent.stop();
    return r;
  }
  const reply = (r: ReturnType<typeof rig>, hub: string, sender = 7) =>
    r.dp.fromControl(hub, 4789, msg({ type: REPLY, role: 'hub', sender, timestamp: r.now() }));

  it('probes every hub, trusts both, floods to the active (first) hub only, from the fixed port behind NAT', () => {
    const r = spoke(true);
    r.agent.tick();
    expect(r.dp.control.map((c) => c.address)).toEqual([HUB1, HUB2]);
    expect(r.dp.control.every((c) => decodeLiveness(c.payload) && (decodeLiveness(c.payload) as LivenessMessage).nat)).toBe(true);
    const blue = r.sw.tenant('blue')!;
    expect(blue.trusted.size).toBe(2);
    r.dp.fromPort(r.sw.portId('p0')!, frame(BCAST, M_LOCAL, 'arp'));
    expect(r.dp.wire.map((w) => [w.to, w.fixed])).toEqual([[HUB1, true]]);
    // Frames from either hub are taken.
    r.dp.fromUnderlay(HUB2, 5001, frame(M_LOCAL, M_A, 'via-hub2'), 50000);
    expect(r.dp.portOut.get(r.sw.portId('p0')!)?.map(payloadOf)).toEqual(['via-hub2']);
  });

  it('fails over after the dead interval: flushes MACs learned through the dead hub, re-announces local MACs through the new one', () => {
    const r = spoke();
    const t0 = r.now();
    r.dp.fromPort(r.sw.portId('p0')!, frame(BCAST, M_LOCAL, 'hello'));
    r.dp.fromUnderlay(HUB1, 5001, frame(M_LOCAL, M_A, 'from-a'), 50000);
    const blue = r.sw.tenant('blue')!;
    expect(blue.table.get(M_A)?.place).toEqual({ kind: 'vtep', vtepId: r.sw.vteps.find(HUB1)!.id });
    for (let t = 0; t <= 2000; t += 1000) {
      r.at(t0 + t);
      reply(r, HUB1);
      reply(r, HUB2);
      r.agent.tick();
    }
    expect(r.agent.status().hubs.map((h) => h.active)).toEqual([true, false]);
    // HUB1 goes silent; HUB2 keeps answering.
    r.dp.wire.length = 0;
    for (let t = 3000; t <= 5100; t += 1000) {
      r.at(t0 + t);
      reply(r, HUB2);
      r.agent.tick();
    }
    expect(r.agent.counters.failovers).toBe(1);
    expect(r.agent.status().hubs.map((h) => [h.address, h.active, h.alive])).toEqual([
      [HUB1, false, false],
      [HUB2, true, true],
    ]);
    expect(blue.table.has(M_A)).toBe(false);
    const announce = r.dp.wire.filter((w) => w.frame.readUInt16BE(12) === 0x8035);
    expect(announce.map((w) => [w.to, w.frame.subarray(6, 12).toString('hex')])).toEqual([[HUB2, M_LOCAL.replaceAll(':', '')]]);
    r.dp.wire.length = 0;
    r.dp.fromPort(r.sw.portId('p0')!, frame(BCAST, M_LOCAL, 'after'));
    expect(r.dp.wire.map((w) => w.to)).toEqual([HUB2]);
  });

  it('re-announces through the active hub when it restarted (its sender id changed)', () => {
    const r = spoke();
    r.dp.fromPort(r.sw.portId('p0')!, frame(BCAST, M_LOCAL, 'hello'));
    reply(r, HUB1, 1);
    r.dp.wire.length = 0;
    reply(r, HUB1, 2);
    expect(r.dp.wire.map((w) => [w.to, w.frame.readUInt16BE(12)])).toEqual([[HUB1, 0x8035]]);
  });

  it('answers a frame too big for its hub with ICMP fragmentation-needed into the port, and clamps the MSS (auto) from the path MTU', () => {
    const r = spoke();
    const blue = r.sw.tenant('blue')!;
    r.agent.setTenant('blue', { mssClamp: 'auto', encap: 'vxlan' });
    // hubs[1] has mtu 1400: auto is 1400 - 50 - 40.
    expect(r.dp.mssOf.get(blue.tenantId)).toEqual([1310, 1290]);
    r.sw.vteps.setMtu(r.sw.vteps.find(HUB1)!, 1400);
    // A DF IPv4 packet of 1400 bytes to a MAC behind hub 1.
    r.dp.fromUnderlay(HUB1, 5001, frame(M_LOCAL, M_A, 'learn-a'), 50000);
    const big = frame(M_A, M_LOCAL, Buffer.alloc(1400));
    big[14] = 0x45;
    big.writeUInt16BE(1400, 16);
    big.writeUInt16BE(0x4000, 20);
    big[23] = 6;
    big.set([10, 1, 0, 1], 26);
    big.set([10, 1, 0, 2], 30);
    r.dp.portOut.clear();
    r.dp.fromPort(r.sw.portId('p0')!, big);
    const out = r.dp.portOut.get(r.sw.portId('p0')!) ?? [];
    expect(out).toHaveLength(1);
    const icmp = out[0]!;
    expect([icmp[14 + 9], icmp[34], icmp[35], icmp.readUInt16BE(34 + 6)]).toEqual([1, 3, 4, 1350]);
    expect(r.sw.counters.icmpTooBigSent).toBe(1);
    expect(r.dp.wire.filter((w) => w.frame.length > 1000)).toEqual([]);
  });

  it('finds the path MTU toward a hub with padded DF probes and sets it on the VTEP', () => {
    const r = rig({ role: 'spoke', pmtuDiscovery: true, hubs: [{ address: HUB1, family: 4, port: 4789, mtu: null, publicKey: null }] });
    r.sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    r.agent.start();
    r.agent.stop();
    const hub1 = r.sw.vteps.find(HUB1)!;
    expect(hub1.mtu).toBe(1500); // optimistic until found
    for (let tick = 0; tick < 20; tick++) {
      // path MTU rounds run once a second: every third tick
      r.dp.control.length = 0;
      r.agent.tick();
      for (const c of r.dp.control) {
        const m = decodeLiveness(c.payload) as LivenessMessage;
        if (m.length + 28 > 1380) continue; // the path carries 1380-byte packets
        r.dp.fromControl(HUB1, 4789, encodeLiveness({ ...m, type: REPLY, role: 'hub', probedSize: m.length }));
      }
    }
    expect(hub1.mtu).toBeLessThanOrEqual(1380);
    expect(hub1.mtu).toBeGreaterThan(1371);
    expect(r.agent.status().hubs[0]!.pathMtuState).toBe('discovered');
  });
});

describe('reload of the role keys', () => {
  const cfg = (...lines: string[]) => {
    const r = parseConfig(['underlay: { local: 10.0.0.1 }', ...lines].join('\n'));
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.config;
  };
  const spokeCfg = (extra: string[] = [], mss = 'off') =>
    cfg('role: spoke', `hubs: [ { address: ${HUB1} }, { address: ${HUB2} } ]`, ...extra, `tenants: [ { name: blue, vni: 5001, mssClamp: ${mss} } ]`);

  it('plans a roles change and a tenant.mss change, and describes them', () => {
    const p = plan(spokeCfg(), spokeCfg(['deadInterval: 1', 'nat: true'], 'auto'));
    expect(p.changes.map((c) => c.op).sort()).toEqual(['roles', 'tenant.mss']);
    expect(p.changes.map(describeChange).sort()).toEqual(['nat false -> true, deadInterval 3s -> 1s', 'tenant blue: mssClamp off -> auto']);
    expect(plan(spokeCfg(), spokeCfg()).changes).toEqual([]);
  });

  it('a timers-only change keeps hubs and learned MACs; a hubs change re-establishes them', () => {
    const r = rig({
      role: 'spoke',
      hubs: [
        { address: HUB1, family: 4, port: 4789, mtu: null, publicKey: null },
        { address: HUB2, family: 4, port: 4789, mtu: null, publicKey: null },
      ],
    });
    r.sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    r.agent.start();
    r.agent.stop();
    const hub1 = r.sw.vteps.find(HUB1)!;
    r.dp.fromUnderlay(HUB1, 5001, frame(BCAST, M_A, 'a'), 50000);
    const blue = r.sw.tenant('blue')!;
    expect(blue.table.has(M_A)).toBe(true);
    const base: RoleOptions = {
      ...MESH,
      role: 'spoke',
      hubs: [
        { address: HUB1, family: 4, port: 4789, mtu: null, publicKey: null },
        { address: HUB2, family: 4, port: 4789, mtu: null, publicKey: null },
      ],
    };
    r.agent.reconfigure({ ...base, deadIntervalMs: 1000 });
    expect(r.agent.probeIntervalMs).toBe(100);
    expect(r.sw.vteps.find(HUB1)).toBe(hub1);
    expect(blue.table.has(M_A)).toBe(true);
    r.agent.reconfigure({ ...base, hubs: [{ address: HUB2, family: 4, port: 4789, mtu: null, publicKey: null }] });
    expect(blue.table.has(M_A)).toBe(false);
    expect(r.sw.vteps.find(HUB1)).toBeUndefined();
    expect(r.agent.status().hubs.map((h) => [h.address, h.active])).toEqual([[HUB2, true]]);
    r.agent.reconfigure({ ...base, role: 'mesh', hubs: [] });
    expect(blue.trusted.size).toBe(0);
    expect(r.sw.vteps.find(HUB2)).toBeUndefined();
  });
});

describe('the role timer', () => {
  afterEach(() => vi.useRealTimers());

  it('logs a tick that throws (the data path gone) and ticks on, instead of ending the daemon', () => {
    vi.useFakeTimers();
    const dp = new FakeDatapath();
    const sw = new Switch(dp, { vxlanPort: 4789, maxMacsTotal: 10000, defaultVtepMtu: 1500 });
    const warnings: string[] = [];
    const log = { warn: (o: { err: string }, m: string) => warnings.push(`${m}: ${o.err}`), debug: () => {}, info: () => {} } as unknown as Logger;
    const agent = new RoleAgent(
      { sw, vteps: sw.vteps, dp },
      { ...MESH, role: 'spoke', hubs: [{ address: HUB1, family: 4, port: 4789, mtu: null, publicKey: null }] },
      Date.now,
      log,
    );
    let ticks = 0;
    agent.tick = () => {
      ticks++;
      throw Object.assign(new Error('dpFdbDel: the data path process (pid 1) is gone'), { code: 'EPIPE' });
    };
    agent.start();
    expect(() => vi.advanceTimersByTime(5000)).not.toThrow();
    expect(ticks).toBeGreaterThan(1);
    expect(warnings[0]).toBe('role tick failed: dpFdbDel: the data path process (pid 1) is gone');
    agent.stop();
  });
});
