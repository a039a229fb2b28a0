/**
 * Hub and spoke across network namespaces (lab/topology.ts hubAndSpoke): spoke-to-spoke
 * through a vtepd hub (ping and iperf3 both ways), a spoke behind NAT (nftables
 * masquerade) that the hub knows only by what it sees, and a kernel VXLAN host as a spoke
 * of a vtepd hub. Failover: test/netns/hubfailover.test.ts; MTU: test/netns/hubmtu.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parsePing } from '../../lab/netns.js';
import { whereText } from '../../src/core/fdb.js';
import { fdb, iperf, ping, stats, status } from '../support/hubspoke.js';
import { sample, scrape } from '../support/ops.js';
import { hubAndSpoke, type HubSpoke } from '../../lab/topology.js';

describe('hub C with spokes A and B', () => {
  let hs: HubSpoke;
  beforeAll(async () => {
    hs = await hubAndSpoke({ tag: 'hsa' });
  });
  afterAll(async () => {
    await hs?.cleanup();
  });

  it('spoke to spoke through the hub: ping both ways, the hub learns both spokes and both MACs', async () => {
    expect(await ping(hs, 'blue', 'a', 'b')).toBe(3);
    expect(await ping(hs, 'blue', 'b', 'a')).toBe(3);
    const hub = await status(hs, 'hub1');
    expect(hub.overlay.spokes.map((s) => s.vtep).sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    const rows = await fdb(hs, 'hub1');
    expect(rows.map((r) => whereText(r.where)).sort()).toEqual(['vtep 10.0.0.1', 'vtep 10.0.0.2']);
    // The spokes know each other's MAC behind the hub, and nothing else.
    expect((await fdb(hs, 'a')).filter((r) => r.where.kind === 'vtep').map((r) => whereText(r.where))).toEqual(['vtep 10.0.0.10']);
    const a = await status(hs, 'a');
    expect(a.overlay.hubs).toMatchObject([{ address: '10.0.0.10', active: true, alive: true, pathMtu: 1500 }]);
  });

  it('iperf3 TCP through the hub both ways', async () => {
    const ab = await iperf(hs, 'blue', 'a', 'b');
    const ba = await iperf(hs, 'blue', 'a', 'b', true);
    console.log(`spoke-to-spoke through a vtepd hub: a->b ${ab.toFixed(2)} Gbit/s, b->a ${ba.toFixed(2)} Gbit/s`);
    expect(ab).toBeGreaterThan(0.05);
    expect(ba).toBeGreaterThan(0.05);
    // Relayed in C: the hub punted little.
    const s = await stats(hs, 'hub1');
    expect(s.drops.split_horizon ?? 0).toBe(0);
    // ... and a GRO buffer of one flow goes back out as UDP_SEGMENT trains (one send for
    // many segments), every train taken by the kernel.
    expect(s.datapath.relayed_frames).toBeGreaterThan(10_000);
    expect(s.datapath.underlay_gso_sends).toBeGreaterThan(0);
    expect(s.datapath.relayed_frames / s.datapath.underlay_gso_sends).toBeGreaterThan(4);
    expect(s.datapath.underlay_gso_fallback ?? 0).toBe(0);
  });
});

describe('spoke B behind NAT', () => {
  let hs: HubSpoke;
  beforeAll(async () => {
    hs = await hubAndSpoke({ tag: 'hsn', natSpokes: ['b'], hubExtra: ['metrics: { listen: "127.0.0.1:9477" }'] });
  });
  afterAll(async () => {
    await hs?.cleanup();
  });

  it('B reaches A and A reaches B through the hub, which knows B only as the NAT address and port it sees', async () => {
    expect(await ping(hs, 'blue', 'b', 'a')).toBe(3);
    expect(await ping(hs, 'blue', 'a', 'b')).toBe(3);
    const hub = await status(hs, 'hub1');
    const b = hub.overlay.spokes.find((s) => s.nat)!;
    expect(b.vtep).toMatch(/^10\.0\.0\.101:4\d{4}$/);
    expect(Number(b.vtep.split(':')[1])).toBeGreaterThanOrEqual(40000);
    // Nothing in the hub's config names B's real address or port.
    expect(readFileSync(hs.daemons.get('hub1')!.configPath, 'utf8')).not.toMatch(/192\.168|10\.0\.0\.101/);
    const rows = await fdb(hs, 'hub1');
    expect(rows.map((r) => whereText(r.where)).sort()).toEqual(['vtep 10.0.0.1', `vtep ${b.vtep}`]);
    const ab = await iperf(hs, 'blue', 'a', 'b');
    console.log(`spoke-to-spoke through a vtepd hub, B behind NAT: a->b ${ab.toFixed(2)} Gbit/s`);
    expect(ab).toBeGreaterThan(0.05);
  });

  it("the hub's metrics: each spoke by address, encap and (behind NAT) UDP port; 126 + 25T + 5P + 8N series (docs/metrics.md)", async () => {
    const b = (await status(hs, 'hub1')).overlay.spokes.find((s) => s.nat)!;
    const [addr, port] = b.vtep.split(':');
    const text = await scrape(hs.lab, 'hub1', '127.0.0.1:9477');
    expect(sample(text, 'vtepd_peer_up', { vtep: '10.0.0.1', encap: 'vxlan' })).toBe(1);
    expect(sample(text, 'vtepd_peer_up', { vtep: addr!, encap: 'vxlan', udp_port: port! })).toBe(1);
    expect(sample(text, 'vtepd_peer_path_mtu_bytes', { vtep: '10.0.0.1', encap: 'vxlan' })).toBeGreaterThan(1000);
    expect(Date.now() / 1000 - sample(text, 'vtepd_peer_last_seen_timestamp_seconds', { vtep: '10.0.0.1', encap: 'vxlan' })).toBeLessThan(10);
    expect(sample(text, 'vtepd_tenant_info', { tenant: 'blue', vni: '5001', encap: 'vxlan' })).toBe(1);
    const lines = text.split('\n');
    const vtepd = lines.filter((l) => l.startsWith('vtepd_')).length;
    const processSeries = lines.filter((l) => /^(process|nodejs)_/.test(l)).length;
    console.log(`hub with 2 spokes, 1 tenant, no ports: ${vtepd} vtepd_ series, ${processSeries} process_/nodejs_ series`);
    expect(vtepd).toBe(126 + 25 * 1 + 5 * 0 + 8 * 2);
  });
});

describe('a kernel VXLAN host as a spoke of a vtepd hub', () => {
  let hs: HubSpoke;
  beforeAll(async () => {
    hs = await hubAndSpoke({ tag: 'hsk', spokes: ['a'], kernelSpoke: true });
  });
  afterAll(async () => {
    await hs?.cleanup();
  });

  it('talks to a vtepd spoke through the hub, both ways', async () => {
    const k = await hs.lab.exec(hs.endpoint('blue', 'k'), 'ping', ['-c', '3', '-i', '0.2', '-W', '2', hs.overlay('blue', 'a')]);
    expect(parsePing(k.stdout).received).toBe(3);
    expect(await ping(hs, 'blue', 'a', 'k')).toBe(3);
    const rows = await fdb(hs, 'hub1');
    expect(rows.map((r) => whereText(r.where)).sort()).toEqual(['vtep 10.0.0.1', 'vtep 10.0.0.9']);
  });
});
