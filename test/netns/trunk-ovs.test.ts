/**
 * Interop (issue #15, test 7): Open vSwitch as the *other* VTEP, against vtepd's trunk
 * gateway.
 *
 *   bm100 (VLAN 100) ─ tor: OVS ToR ─trunk─ eth1 [gw: vtepd] ul0 ~~ VXLAN ~~ ul0 [ovh: OVS VTEP] ─ obm (VLAN 100)
 *   bm200 (VLAN 200) ─┘                    blue 5001 (VLAN 100)             VLAN 100 <-> VNI 5001 (OpenFlow)
 *                                          red  5002 (VLAN 200)             nothing for 5002
 *
 * bm100 and obm ping both ways and run iperf3 both ways (printed, no thresholds); tshark on
 * gw's underlay sees VNI 5001 with no 802.1Q tag inside. vtepd floods red (VLAN 200, VNI
 * 5002) to OVS as well, which has no flow for it: OVS's table-miss drop counts it, and
 * nothing from bm200 reaches obm.
 *
 * Offloads (lab/tor.ts): OVS reads its ports without a virtio_net_hdr, so everything sent
 * into it must be finished frames. tor() finishes the servers' NICs and gw's eth1 (vtepd's
 * trunk writes GSO frames, cut in software before the veth); here gw's ul0 finishes vtepd's
 * underlay toward the OVS VTEP too (`finishOwnFrames`, 'finished'; ovsVtep has no 'tso').
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, parsePing } from '../../lab/netns.js';
import { startDaemon } from '../../lab/topology.js';
import { finishOwnFrames, ovsVtep, tor, type OvsVtep, type Tor } from '../../lab/tor.js';
import { until, untilPings } from '../../lab/wait.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { vtepdJson } from '../support/ops.js';

const lab = new Lab('vo');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-trunk-ovs-'));
/** bm200's MAC: a capture at obm filters on it. */
const BM200_MAC = '02:15:07:00:02:00';
let sw: Tor | undefined;
let vtep: OvsVtep | undefined;
let socket = '';

afterAll(async () => {
  await sw?.stop();
  await vtep?.stop();
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

beforeAll(async () => {
  await lab.addHost('gw', { ipv6: false });
  await lab.addHost('ovh', { ipv6: false });
  await lab.link('gw', 'ul0', '10.0.0.1/24', 'ovh', 'ul0', '10.0.0.2/24');
  await finishOwnFrames(lab, 'gw', 'ul0');
  vtep = await ovsVtep(lab, {
    host: 'ovh',
    underlay: { dev: 'ul0', address: '10.0.0.2/24', remote: '10.0.0.1' },
    map: { 100: 5001 },
    servers: [{ host: 'obm', vlan: 100, address: '10.1.0.3/24' }],
  });
  // The servers behind the ToR get the overlay's MTU (1500 underlay less VXLAN's 50).
  sw = await tor(lab, {
    servers: [
      { host: 'bm100', vlan: 100, address: '10.1.0.4/24' },
      { host: 'bm200', vlan: 200, address: '10.1.0.5/24', mac: BM200_MAC },
    ],
    trunk: { gateway: 'gw', dev: 'eth1' },
    mtu: 1450,
  });
  const yaml = [
    'underlay: { local: 10.0.0.1 }',
    'log: { level: info }',
    'tenants:',
    '  - { name: blue, vni: 5001, flood: [ 10.0.0.2 ] }',
    '  - { name: red, vni: 5002, flood: [ 10.0.0.2 ] }',
    'trunks:',
    '  - { attach: eth1, vlans: { 100: blue, 200: red } }',
    '',
  ].join('\n');
  socket = (await startDaemon(lab, 'gw', yaml, dir)).socket;
}, 60_000);

const ping = async (from: string, to: string) => parsePing((await lab.exec(from, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', to])).stdout).received;

describe('Open vSwitch as the other VTEP (VLAN 100 <-> VNI 5001 by OpenFlow) and vtepd trunk gateway', () => {
  it('bare metal behind the ToR and behind OVS ping both ways; VNI 5001 on the underlay, no tag inside', async () => {
    const cap = await lab.capture('gw', 'ul0', 'udp dst port 4789', ['ip.src', 'vxlan.vni', 'vlan.id']);
    await untilPings(lab, 'bm100', '10.1.0.3', ['-c', '1', '-W', '1']);
    expect(await ping('bm100', '10.1.0.3'), await vtep!.flows()).toBe(3);
    expect(await ping('obm', '10.1.0.4')).toBe(3);
    const rows = await cap.stop();
    const from = (src: string) => rows.filter((r) => r[0] === src);
    expect(from('10.0.0.1').length).toBeGreaterThanOrEqual(6);
    expect(from('10.0.0.2').length).toBeGreaterThanOrEqual(6);
    for (const [, vni, vlan] of rows) expect([vni, vlan]).toEqual(['5001', '']);
  });

  it('iperf3 runs both ways (throughput printed, no thresholds)', async () => {
    const { up, down } = await lab.iperfBothWays('bm100', 'obm', '10.1.0.3', 2);
    console.log(`iperf3 TCP, Gbit/s: bm100 -> ToR trunk -> vtepd -> VXLAN -> OVS VTEP -> obm ${up.toFixed(2)}, back ${down.toFixed(2)}`);
    expect(up).toBeGreaterThan(0);
    expect(down).toBeGreaterThan(0);
  });

  it('VLAN 200 (red, VNI 5002) reaches OVS, which has no flow for it: dropped there, nothing reaches obm', async () => {
    const drops = async () => Number(/n_packets=(\d+),.*priority=0 actions=drop/.exec(await vtep!.flows())?.[1] ?? -1);
    const red = async () => (await vtepdJson<StatsSnapshot>(lab, 'gw', ['stats', '--socket', socket])).ports.find((p) => p.port === 'eth1.200')!;
    const before = { drops: await drops(), red: await red() };
    const atObm = await lab.capture('obm', 'eth0', `ether src ${BM200_MAC}`, ['eth.src']);
    const onWire = await lab.capture('gw', 'ul0', 'udp dst port 4789 and dst host 10.0.0.2', ['vxlan.vni', 'arp.src.proto_ipv4']);
    // bm200 asks for obm's address: its broadcast enters red at eth1.200 and is flooded to OVS.
    await until(
      "bm200's ARP dropped at the OVS VTEP",
      async () => {
        await lab.exec('bm200', 'ping', ['-c', '1', '-W', '1', '10.1.0.3']).catch(() => undefined);
        return drops();
      },
      (n) => n > before.drops,
    );
    const wire = await onWire.stop();
    expect(wire.filter((r) => r[1] === '10.1.0.5').map((r) => r[0])).toContain('5002');
    expect((await red()).rxPackets).toBeGreaterThan(before.red.rxPackets);
    expect(await atObm.stop()).toEqual([]);
  });
});
