/**
 * vtepd against the Linux kernel's own VXLAN device: h1 runs vtepd (tenant blue, VNI 5001,
 * TAP in endpoint namespace blue1); h2 runs the kernel's VXLAN device on a Linux bridge
 * with a veth to endpoint namespace kvm2. ARP, ping, DF ping at the full TAP MTU and
 * iperf3 TCP in both directions; tshark on h2's underlay judges the wire format.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, parsePing } from '../../lab/netns.js';
import { UNDERLAY, addKernelBridgePeer, meshConfig, startDaemon } from '../../lab/topology.js';

describe('vtepd <-> kernel VXLAN on a bridge', () => {
  const lab = new Lab('vk');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-k-'));

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.addHost('blue1', { ipv6: false });
    await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
    // h2: kernel VXLAN VNI 5001 on br0, flooding to vtepd's VTEP, learning on.
    await addKernelBridgePeer(lab, {
      host: 'h2',
      endpoint: 'kvm2',
      vni: 5001,
      local: UNDERLAY.h2,
      remote: UNDERLAY.h1,
      address: '10.1.0.2/24',
      mtu: 1450,
      finishChecksums: 'endpoint',
    });
    await startDaemon(lab, 'h1', meshConfig(lab, 0, [UNDERLAY.h1, UNDERLAY.h2], [{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }]), dir);
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the TAP gets the default MTU 1450 (1500 underlay - 50 VXLAN/IPv4 overhead)', async () => {
    const mtu = (await lab.exec('blue1', 'cat', ['/sys/class/net/blue0/mtu'])).stdout.trim();
    expect(mtu).toBe('1450');
  });

  it('resolves ARP and pings from vtepd to the kernel side and back', async () => {
    const a = parsePing((await lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(a.received).toBe(3);
    const b = parsePing((await lab.exec('kvm2', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.1'])).stdout);
    expect(b.received).toBe(3);
    const neigh = (await lab.exec('blue1', 'ip', ['neigh', 'show', '10.1.0.2'])).stdout;
    const kmac = (await lab.exec('kvm2', 'cat', ['/sys/class/net/eth0/address'])).stdout.trim();
    expect(neigh).toContain(kmac);
  });

  it('carries a DF ping at the full TAP MTU (1422 + 28 = 1450) both ways, and refuses 1 byte more locally', async () => {
    const a = parsePing((await lab.exec('blue1', 'ping', ['-M', 'do', '-s', '1422', '-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(a.received).toBe(3);
    const b = parsePing((await lab.exec('kvm2', 'ping', ['-M', 'do', '-s', '1422', '-c', '3', '-i', '0.2', '-W', '2', '10.1.0.1'])).stdout);
    expect(b.received).toBe(3);
    await expect(lab.exec('blue1', 'ping', ['-M', 'do', '-s', '1423', '-c', '1', '-W', '1', '10.1.0.2'])).rejects.toThrow(/message too long|mtu/i);
  });

  it('puts RFC 7348 VXLAN on the wire: I flag, VNI 5001, reserved bits zero, UDP checksum 0, dport 4789', async () => {
    const cap = await lab.capture('h2', 'ul0', `udp dst port 4789 and src host ${UNDERLAY.h1}`, [
      'vxlan.flags',
      'vxlan.vni',
      'vxlan.flags_reserved',
      'vxlan.reserved8',
      'udp.checksum',
      'udp.srcport',
      'udp.dstport',
      'ip.flags.df',
    ]);
    await lab.exec('blue1', 'ping', ['-c', '5', '-i', '0.2', '10.1.0.2']);
    const rows = await cap.stop();
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const [flags, vni, flagsRes, res8, csum, sport, dport, df] of rows) {
      expect(flags).toBe('0x0800');
      expect(vni).toBe('5001');
      expect(Number(flagsRes)).toBe(0);
      expect(Number(res8)).toBe(0);
      expect(csum).toBe('0x0000');
      expect(Number(sport)).toBeGreaterThanOrEqual(49152);
      expect(dport).toBe('4789');
      expect(['1', 'True', 'true', 'Set']).toContain(df);
    }
  });

  it('moves TCP with iperf3 both ways (vtepd -> kernel and kernel -> vtepd)', async () => {
    const { up, down } = await lab.iperfBothWays('blue1', 'kvm2', '10.1.0.2');
    expect(up).toBeGreaterThan(0.01);
    expect(down).toBeGreaterThan(0.01);
  });
});
