/**
 * Dual stack, and GRE-TAP over IPv6. h1 runs vtepd with underlay.local [10.0.0.1,
 * 2001:db8::1]; h2 is an IPv4-only vtepd (10.0.0.2), h3 an IPv6-only one (2001:db8::3); all
 * hang off one Linux bridge. Tenant blue is VXLAN, tenant red GRE-TAP; h1 floods both to h2
 * over IPv4 and to h3 over IPv6. Pings from h1's endpoints reach both peers in both
 * tenants; tshark on h3 sees VXLAN and GRE in IPv6.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, iperfGbps, parsePing } from '../../lab/netns.js';
import { startDaemon } from '../../lab/topology.js';
import { untilListening, untilPings } from '../../lab/wait.js';

describe('dual-stack vtepd: IPv4 and IPv6 peers, VXLAN and GRE-TAP', () => {
  const lab = new Lab('vd6');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-ds-'));
  const hosts = [
    { h: 'h1', locals: ['10.0.0.1', '2001:db8::1'] },
    { h: 'h2', locals: ['10.0.0.2'] },
    { h: 'h3', locals: ['2001:db8::3'] },
  ];
  const tenants = [
    { name: 'blue', vni: 5001, encap: 'vxlan', net: '10.1.0' },
    { name: 'red', vni: 5002, encap: 'gre', net: '10.2.0' },
  ];

  beforeAll(async () => {
    await lab.addHost('sw');
    await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
    for (const [i, { h, locals }] of hosts.entries()) {
      await lab.addHost(h);
      await lab.link(h, 'ul0', null, 'sw', `p${i}`, null);
      await lab.exec('sw', 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
      for (const a of locals)
        await lab.exec(h, 'ip', ['addr', 'add', a.includes(':') ? `${a}/64` : `${a}/24`, 'dev', 'ul0', ...(a.includes(':') ? ['nodad'] : [])]);
      for (const t of tenants) await lab.addHost(`${t.name}${i + 1}`, { ipv6: false });
    }
    const q = (a: string) => JSON.stringify(a);
    for (const [i, { h, locals }] of hosts.entries()) {
      const peers = i === 0 ? ['10.0.0.2', '2001:db8::3'] : ['10.0.0.1', '2001:db8::1'].filter((a) => a.includes(':') === locals[0]!.includes(':'));
      const yaml = [`underlay: { local: [ ${locals.map(q).join(', ')} ] }`, 'tenants:'];
      for (const t of tenants) {
        yaml.push(
          `  - { name: ${t.name}, vni: ${t.vni}, encap: ${t.encap}, flood: [ ${peers.map(q).join(', ')} ],`,
          `      ports: [ { tap: ${t.name}0, netns: ${lab.ns(`${t.name}${i + 1}`)}, address: ${t.net}.${i + 1}/24 } ] }`,
        );
      }
      await startDaemon(lab, h, yaml.join('\n') + '\n', dir);
    }
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sizes h1's TAPs for the worst family: VXLAN over IPv6 1430, GRE-TAP over IPv6 1438", async () => {
    expect((await lab.exec('blue1', 'cat', ['/sys/class/net/blue0/mtu'])).stdout.trim()).toBe('1430');
    expect((await lab.exec('red1', 'cat', ['/sys/class/net/red0/mtu'])).stdout.trim()).toBe('1438');
  });

  it('reaches the IPv4 peer and the IPv6 peer in both tenants, and back', async () => {
    for (const t of tenants) {
      for (const peer of [2, 3]) {
        // Ready once one ping is answered each way (neighbours resolved on both underlays).
        await untilPings(lab, `${t.name}1`, `${t.net}.${peer}`);
        await untilPings(lab, `${t.name}${peer}`, `${t.net}.1`);
        const a = parsePing((await lab.exec(`${t.name}1`, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', `${t.net}.${peer}`])).stdout);
        expect(a.received, `${t.name} -> host ${peer}`).toBe(3);
        const b = parsePing((await lab.exec(`${t.name}${peer}`, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', `${t.net}.1`])).stdout);
        expect(b.received, `${t.name} host ${peer} -> h1`).toBe(2);
      }
    }
  });

  it('puts VXLAN (UDP, checksummed) and GRE-TAP (next header 47, key 5002) in IPv6 toward the IPv6 peer', async () => {
    const cap = await lab.capture('h3', 'ul0', 'ip6 and src host 2001:db8::1', [
      'ipv6.nxt',
      'udp.dstport',
      'udp.checksum',
      'vxlan.vni',
      'gre.key',
      'gre.proto',
    ]);
    await lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.2', '10.1.0.3']);
    await lab.exec('red1', 'ping', ['-c', '3', '-i', '0.2', '10.2.0.3']);
    const rows = (await cap.stop()).filter((r) => r[0] === '17' || r[0] === '47');
    const udp = rows.filter((r) => r[0] === '17');
    const gre = rows.filter((r) => r[0] === '47');
    expect(udp.length).toBeGreaterThanOrEqual(3);
    expect(gre.length).toBeGreaterThanOrEqual(3);
    for (const [, dport, csum, vni] of udp) {
      expect([dport, vni]).toEqual(['4789', '5001']);
      expect(csum).not.toBe('0x0000');
    }
    for (const r of gre) expect([r[4], r[5]]).toEqual(['0x0000138a', '0x6558']);
  });

  it('moves TCP over GRE-TAP in IPv6', async () => {
    const srv = lab.spawn('red3', 'iperf3', ['-s', '-B', '10.2.0.3']);
    await untilListening(lab, 'red3', 5201);
    const up = iperfGbps((await lab.exec('red1', 'iperf3', ['-c', '10.2.0.3', '-t', '2', '-J'])).stdout);
    await lab.stop(srv);
    expect(up).toBeGreaterThan(0.01);
  });
});
