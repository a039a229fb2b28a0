/**
 * vtepd against Open vSwitch's userspace datapath (its own ovsdb-server and ovs-vswitchd,
 * started inside the lab's host h2 with a private database and run directory):
 *
 *   blue1 [blue0 TAP] -- h1 vtepd 10.0.0.1 ==veth ul0== h2 br-phy 10.0.0.2 (OVS netdev)
 *                                                       br-int: vxlan0 (key 5001) + vm0 -- ovm2 eth0
 *
 * ARP, ping and iperf3 TCP both ways over VXLAN (VNI 5001, udp/4789).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, parsePing } from '../../lab/netns.js';
import { Ovs } from '../../lab/ovs.js';
import { untilPings } from '../../lab/wait.js';
import { UNDERLAY, meshConfig, startDaemon } from '../../lab/topology.js';

describe('vtepd VXLAN <-> Open vSwitch userspace VXLAN', () => {
  const lab = new Lab('vo');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-o-'));
  let ovs: Ovs | undefined;

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.addHost('blue1', { ipv6: false });
    await lab.addHost('ovm2', { ipv6: false });
    await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
    // OVS userspace reads the underlay with AF_PACKET and drops tunnel packets whose
    // checksums the kernel left unfinished over veth (a real NIC finishes them): the
    // senders toward OVS finish their own.
    await lab.exec('h1', 'ethtool', ['-K', 'ul0', 'tx', 'off']);
    ovs = await Ovs.start(lab, 'h2');
    await ovs.underlayBridge('br-phy', 'ul0', `${UNDERLAY.h2}/24`);
    await ovs.addBridge('br-int');
    await ovs.vsctl(
      'add-port',
      'br-int',
      'vxlan0',
      '--',
      'set',
      'Interface',
      'vxlan0',
      'type=vxlan',
      `options:remote_ip=${UNDERLAY.h1}`,
      'options:key=5001',
      'options:dst_port=4789',
    );
    await lab.link('h2', 'vm0', null, 'ovm2', 'eth0', '10.1.0.2/24', 1450);
    await lab.exec('ovm2', 'ethtool', ['-K', 'eth0', 'tx', 'off']);
    await ovs.vsctl('add-port', 'br-int', 'vm0');
    await lab.exec('h2', 'ip', ['link', 'set', 'br-int', 'up']);
    await ovs.untilPorts('vxlan0', 'vm0');
    await startDaemon(lab, 'h1', meshConfig(lab, 0, [UNDERLAY.h1, UNDERLAY.h2], [{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }]), dir);
  });

  afterAll(async () => {
    await ovs?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resolves ARP and pings from vtepd to OVS and back', async () => {
    // Ready once one ping is answered each way (ARP resolved on both sides, OVS's tunnel
    // neighbour learnt); from then on every ping must be.
    await untilPings(lab, 'blue1', '10.1.0.2');
    await untilPings(lab, 'ovm2', '10.1.0.1');
    const a = parsePing((await lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(a.received, await ovs!.logTail()).toBe(3);
    const b = parsePing((await lab.exec('ovm2', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.1'])).stdout);
    expect(b.received).toBe(3);
  });

  it('carries a DF ping at the full TAP MTU (1422 + 28 = 1450) both ways', async () => {
    const a = parsePing((await lab.exec('blue1', 'ping', ['-M', 'do', '-s', '1422', '-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(a.received).toBe(3);
    const b = parsePing((await lab.exec('ovm2', 'ping', ['-M', 'do', '-s', '1422', '-c', '3', '-i', '0.2', '-W', '2', '10.1.0.1'])).stdout);
    expect(b.received).toBe(3);
  });

  it('moves TCP with iperf3 both ways, and OVS drops no tunnel packet', async () => {
    const { up, down } = await lab.iperfBothWays('blue1', 'ovm2', '10.1.0.2');
    expect(up).toBeGreaterThan(0.01);
    expect(down).toBeGreaterThan(0.01);
    const cov = await ovs!.coverage();
    expect(cov.get('datapath_drop_tunnel_pop_error') ?? 0).toBe(0);
  });
});
