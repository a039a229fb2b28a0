/**
 * VXLAN over an IPv6 underlay. h1 runs vtepd (underlay.local 2001:db8::1, tenant blue VNI
 * 5001); h2 runs the kernel's VXLAN device (local 2001:db8::2) on a Linux bridge with a
 * veth to endpoint kvm2. The kernel's defaults over IPv6 are the RFC's: it sends UDP
 * checksums and DROPS zero-checksum VXLAN (no udp6zerocsumrx), so every packet it accepts
 * from vtepd proves vtepd sent a checksum. tshark on h2 checks the outer header: IPv6,
 * next header UDP, dport 4789, a good non-zero UDP checksum, VNI 5001. Then vtepd <-> vtepd
 * over IPv6.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, parsePing } from '../../lab/netns.js';
import { UNDERLAY6, addKernelBridgePeer, meshConfig, startDaemon, twoHostsVtepd, type Mesh } from '../../lab/topology.js';

describe('vtepd <-> kernel VXLAN over an IPv6 underlay', () => {
  const lab = new Lab('v6');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-6-'));

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.addHost('blue1', { ipv6: false });
    await lab.link('h1', 'ul0', `${UNDERLAY6.h1}/64`, 'h2', 'ul0', `${UNDERLAY6.h2}/64`);
    // vtepd's UDP checksums over IPv6 are finished by the kernel; over veth it would leave
    // them partial (a NIC finishes them). Off, so tshark on h2 sees the final value.
    await lab.exec('h1', 'ethtool', ['-K', 'ul0', 'tx', 'off']);
    await addKernelBridgePeer(lab, {
      host: 'h2',
      endpoint: 'kvm2',
      vni: 5001,
      local: UNDERLAY6.h2,
      remote: UNDERLAY6.h1,
      address: '10.1.0.2/24',
      mtu: 1430,
      finishChecksums: 'endpoint',
    });
    await startDaemon(
      lab,
      'h1',
      meshConfig(lab, 0, [UNDERLAY6.h1, UNDERLAY6.h2], [{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }]),
      dir,
    );
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the TAP gets the default MTU 1430 (1500 underlay - 70 VXLAN/IPv6 overhead)', async () => {
    const mtu = (await lab.exec('blue1', 'cat', ['/sys/class/net/blue0/mtu'])).stdout.trim();
    expect(mtu).toBe('1430');
  });

  it('pings both ways, and a DF ping at the full TAP MTU (1402 + 28 = 1430)', async () => {
    const a = parsePing((await lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(a.received).toBe(3);
    const b = parsePing((await lab.exec('kvm2', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.1'])).stdout);
    expect(b.received).toBe(3);
    const c = parsePing((await lab.exec('blue1', 'ping', ['-M', 'do', '-s', '1402', '-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(c.received).toBe(3);
    const d = parsePing((await lab.exec('kvm2', 'ping', ['-M', 'do', '-s', '1402', '-c', '3', '-i', '0.2', '-W', '2', '10.1.0.1'])).stdout);
    expect(d.received).toBe(3);
  });

  it('puts VXLAN in IPv6 on the wire with a good, non-zero UDP checksum', async () => {
    const cap = await lab.capture(
      'h2',
      'ul0',
      `ip6 and udp dst port 4789 and src host ${UNDERLAY6.h1}`,
      ['ipv6.src', 'ipv6.dst', 'ipv6.nxt', 'udp.dstport', 'udp.checksum', 'udp.checksum.status', 'vxlan.flags', 'vxlan.vni', 'eth.type'],
      ['-o', 'udp.check_checksum:TRUE'],
    );
    await lab.exec('blue1', 'ping', ['-c', '5', '-i', '0.2', '10.1.0.2']);
    const rows = await cap.stop();
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const [src, dst, nxt, dport, csum, status, flags, vni, etype] of rows) {
      expect(src).toBe(UNDERLAY6.h1);
      expect(dst).toBe(UNDERLAY6.h2);
      expect(nxt).toBe('17');
      expect(dport).toBe('4789');
      expect(csum).not.toBe('0x0000');
      expect(status).toBe('1'); // PROTO_CHECKSUM_E_GOOD
      expect(flags).toBe('0x0800');
      expect(vni).toBe('5001');
      expect(etype).toBe('0x86dd'); // the outer Ethernet carries IPv6
    }
  });

  it('moves TCP with iperf3 both ways', async () => {
    const { up, down } = await lab.iperfBothWays('blue1', 'kvm2', '10.1.0.2');
    expect(up).toBeGreaterThan(0.01);
    expect(down).toBeGreaterThan(0.01);
  });
});

describe('vtepd <-> vtepd over an IPv6 underlay', () => {
  let m: Mesh;
  beforeAll(async () => {
    m = await twoHostsVtepd([{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }], { tag: 'v6m', family: 6 });
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('pings across (the flood list and learned VTEP are IPv6)', async () => {
    const p = parsePing((await m.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(p.received).toBe(3);
  });
});
