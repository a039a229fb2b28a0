/**
 * Two mesh hosts whose flood entries carry keys (`flood: [ { vtep, publicKey } ]`): the
 * encrypted tenant's frames cross only sealed (type 4/5 on the wire), the tenant with
 * `encryption: off` stays plain VXLAN beside it, and both sides show the session; and the
 * same sealed over an IPv6 underlay with two queues (thread pairs) per host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { iperfGbps, parsePing } from '../../lab/netns.js';
import { until, untilListening } from '../../lab/wait.js';
import { twoHostsVtepd, type Mesh } from '../../lab/topology.js';
import { request } from '../../src/daemon/control.js';
import type { RoleStatus } from '../../src/overlay/roles.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { tcpdump } from '../support/pcap.js';

describe('a mesh of two hosts with keys', () => {
  let m: Mesh;
  const overlay = async (i: number) => (await request<{ overlay: RoleStatus }>(m.daemons[i]!.socket, 'status', {}, { timeoutMs: 5000 })).overlay;
  beforeAll(async () => {
    m = await twoHostsVtepd(
      [
        { name: 'enc', vni: 5002, addresses: ['10.2.0.1/24', '10.2.0.2/24'], encryption: 'required' },
        { name: 'plain', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], encryption: 'off' },
      ],
      { tag: 'smesh', secure: true },
    );
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('the peers hold a session; the encrypted tenant crosses sealed, the plain one as VXLAN', async () => {
    for (const i of [0, 1])
      await until(
        `h${i + 1}'s session`,
        () => overlay(i),
        (o) => o.secure?.peers.length === 1 && o.secure.peers[0]!.up,
      );
    const wire = async (tenant: string, to: string) => {
      const cap = await tcpdump(m.lab, 'h1', 'ul0', join(m.dir, `${tenant}.pcap`), 'udp port 4789', async () => {
        await m.lab.exec(`${tenant}1`, 'ping', ['-c', '1', '-W', '1', to]).catch(() => undefined);
      });
      const out = await m.lab.exec(`${tenant}1`, 'ping', ['-c', '5', '-i', '0.1', '-p', 'deadbeef', to]);
      expect(parsePing(out.stdout).received).toBe(5);
      return (await cap.stop()).filter((d) => d.payload.length > 80);
    };
    const sealed = await wire('enc', '10.2.0.2');
    expect(sealed.length).toBeGreaterThanOrEqual(10);
    expect(sealed.every((d) => (d.payload[0] === 4 || d.payload[0] === 5) && !d.payload.includes(Buffer.from('deadbeefdeadbeef', 'hex')))).toBe(true);
    const plain = await wire('plain', '10.1.0.2');
    expect(plain.length).toBeGreaterThanOrEqual(10);
    expect(plain.every((d) => d.payload[0] === 0x08)).toBe(true);
    expect(plain.some((d) => d.payload.includes(Buffer.from('deadbeefdeadbeef', 'hex')))).toBe(true);
    const o = await overlay(0);
    expect(o.secure!.peers[0]).toMatchObject({ vtep: '10.0.0.2', up: true });
  });
});

describe('encrypted over an IPv6 underlay with two queues a host', () => {
  let m: Mesh;
  beforeAll(async () => {
    m = await twoHostsVtepd([{ name: 'enc', vni: 5002, addresses: ['10.2.0.1/24', '10.2.0.2/24'], encryption: 'required' }], {
      tag: 'smesh6',
      secure: true,
      family: 6,
      queues: 2,
    });
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('carries TCP sealed in IPv6, sealing on both encap threads, with nothing dropped for its keys', async () => {
    const stats = (i: number) => request<StatsSnapshot>(m.daemons[i]!.socket, 'stats', {}, { timeoutMs: 5000 });
    await until(
      'the session',
      () => stats(0),
      (s) => s.overlay.secure?.peers[0]?.up === true,
    );
    await until(
      'a ping across',
      async () => parsePing((await m.lab.exec('enc1', 'ping', ['-c', '1', '-W', '1', '10.2.0.2']).catch(() => ({ stdout: '' }))).stdout).received,
      (n) => n === 1,
    );
    const srv = m.lab.spawn('enc2', 'iperf3', ['-s', '-1', '-B', '10.2.0.2']);
    await untilListening(m.lab, 'enc2', 5201);
    const r = await m.lab.exec('enc1', 'iperf3', ['-c', '10.2.0.2', '-t', '3', '-P', '4', '-J'], 60_000);
    await m.lab.stop(srv);
    const gbps = iperfGbps(r.stdout);
    console.log(`encrypted, IPv6 underlay, underlay.queues 2, iperf3 -P 4: ${gbps.toFixed(2)} Gbit/s`);
    expect(gbps).toBeGreaterThan(0.05);
    for (const i of [0, 1]) {
      const s = await stats(i);
      expect(s.datapath.secure_rx_packets).toBeGreaterThan(1000);
      for (const c of ['secure_bad_tag', 'secure_replay', 'secure_unknown_index', 'secure_no_key', 'plaintext_refused'])
        expect(s.drops[c] ?? 0, `h${i + 1} ${c}`).toBe(0);
    }
    // Sealing spreads over the sender's two encap threads (the TAP's queues); opening does
    // not: a peer with a key sends from one port (one endpoint, one NAT mapping), so its
    // datagrams share one outer 4-tuple and the receive sockets' SO_REUSEPORT group hands
    // them all to one decap thread (docs/performance.md, "More cores").
    const [h1, h2] = [await stats(0), await stats(1)];
    expect(h1.queues.map((q) => q.encapFrames > 0)).toEqual([true, true]);
    expect(h2.queues.filter((q) => q.decapPackets > 1000)).toHaveLength(1);
  });
});
