/**
 * The #15 test world, proved without vtepd (lab/tor.ts):
 *
 * A top-of-rack switch (Open vSwitch userspace in host tor) with access ports for bm100
 * (VLAN 100) and bm200 (VLAN 200, the same IP and MAC), bm300 (VLAN 300) and bm10 (VLAN
 * 10, the trunk's native VLAN), and a trunk veth toward host gw (eth1, where vtepd's trunk
 * will attach). tshark on gw's eth1 reads the tags of what each server sends; scapy on eth1
 * sends frames into the trunk and tshark on every server says which got them.
 *
 * TCP through the switch (both offload modes) and OVS as the other VTEP are proved with vtepd
 * in place, not here: test/netns/trunk.test.ts (offloads 'tso', iperf3 through the trunk) and
 * test/netns/trunk-ovs.test.ts (ovsVtep(), offloads 'finished'). This file stays short: it
 * checks only what the switch itself does with tags, what those tests take for granted.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { tor, type Tor } from '../../lab/tor.js';
import { until } from '../../lab/wait.js';

const TRUNK_FRAMES = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'trunk-frames.py');
const MAC = '02:15:00:00:01:03';
/** The source MAC of the frames scapy sends into the trunk (a capture filter that holds under any tag). */
const INJECTOR = '02:15:00:00:09:09';
const lab = new Lab('vr');
const switches: Tor[] = [];

afterAll(async () => {
  for (const s of switches) await s.stop();
  await lab.cleanup();
});

/** Fire `host`'s ARP for `target` (a ping nobody answers), without waiting for the reply that never comes. */
async function arpFor(host: string, target: string): Promise<void> {
  await lab.exec(host, 'ping', ['-c', '1', '-W', '1', target]).catch(() => undefined);
}

describe('a top-of-rack switch (OVS) with a trunk toward the gateway host', () => {
  let sw: Tor;

  beforeAll(async () => {
    await lab.addHost('gw', { ipv6: false });
    sw = await tor(lab, {
      servers: [
        { host: 'bm100', vlan: 100, address: '10.1.0.3/24', mac: MAC },
        { host: 'bm200', vlan: 200, address: '10.1.0.3/24', mac: MAC },
        { host: 'bm300', vlan: 300, address: '10.3.0.3/24' },
        { host: 'bm10', vlan: 10, address: '10.9.0.3/24' },
      ],
      trunk: { gateway: 'gw', dev: 'eth1', native: 10, address: '10.9.0.1/24' },
    });
    switches.push(sw);
  });

  it('what a server sends reaches the trunk tagged with its VLAN only, a full-size frame too; the native VLAN untagged', async () => {
    // A capture filter sees a received frame without its tag (the kernel keeps the tag beside
    // the frame; libpcap puts it back for tshark), so "greater 1400" and "arp" match tagged frames.
    const cap = await lab.capture('gw', 'eth1', 'arp or greater 1400', ['vlan.id', 'arp.dst.proto_ipv4', 'frame.len']);
    const want: [string, string, string][] = [
      ['bm100', '10.1.0.100', '100'],
      ['bm200', '10.1.0.200', '200'],
      ['bm300', '10.3.0.99', '300'],
      ['bm10', '10.9.0.99', ''],
    ];
    // bm100 also pings its VLAN's broadcast address with a 1500-byte DF packet: 1518 bytes tagged.
    const big = ['-b', '-c', '1', '-W', '1', '-M', 'do', '-s', '1472', '10.1.0.255'];
    await until(
      "each server's ARP request and bm100's full-size ping on the trunk",
      async () => {
        await Promise.all([...want.map(([h, target]) => arpFor(h, target)), lab.exec('bm100', 'ping', big).catch(() => undefined)]);
        return cap.rows();
      },
      (rows) => want.every(([, target]) => rows.some((r) => r[1] === target)) && rows.some((r) => r[1] === ''),
    );
    const rows = await cap.stop();
    for (const [host, target, vlan] of want) {
      const tags = new Set(rows.filter((r) => r[1] === target).map((r) => r[0]));
      expect([...tags], `tags of ${host}'s ARP for ${target}`).toEqual([vlan]);
    }
    expect(new Set(rows.filter((r) => r[1] === '').map((r) => `${r[0]} ${r[2]}`))).toEqual(new Set(['100 1518']));
  });

  it('a frame sent into the trunk reaches the servers of its VLAN only, untagged, a full-size frame too', async () => {
    const servers = ['bm100', 'bm200', 'bm300', 'bm10'];
    const caps = await Promise.all(servers.map((h) => lab.capture(h, 'eth0', `ether src ${INJECTOR}`, ['vlan.id', 'icmp.ident', 'frame.len'])));
    // TAGS:COUNT[:IP SIZE]: a frame that leaked into another VLAN changes an exact count.
    const r = await lab.exec('gw', '/usr/bin/python3', [TRUNK_FRAMES, 'eth1', INJECTOR, '100:3', '100:1:1500', '200:4', '300:5', 'none:6']);
    expect(r.stdout).toContain('sent 19');
    const counts = [4, 4, 5, 6];
    await until(
      'the frames at the servers',
      async () => caps.map((c) => c.rows().length),
      (n) => n.every((c, i) => c >= counts[i]!),
    );
    const got = await Promise.all(caps.map((c) => c.stop()));
    expect(got.map((rows) => rows.length)).toEqual(counts);
    for (const rows of got) for (const [vlan, ident] of rows) expect([vlan, ident]).toEqual(['', String(0x7615)]);
    expect(got[0]!.map((row) => row[2])).toEqual(['66', '66', '66', '1514']);
  });

  it('a frame injected on the switch end of the trunk reaches the gateway as sent (double tag kept)', async () => {
    const cap = await lab.capture('gw', 'eth1', `ether src ${INJECTOR}`, ['vlan.id', 'icmp.ident'], ['-E', 'occurrence=a']);
    const r = await lab.exec(sw.host, '/usr/bin/python3', [TRUNK_FRAMES, sw.trunkPort, INJECTOR, '100.200:2']);
    expect(r.stdout).toContain('sent 2');
    await until(
      'the injected frames on eth1',
      async () => cap.rows(),
      (rows) => rows.length >= 2,
    );
    expect(await cap.stop()).toEqual([
      ['100,200', String(0x7615)],
      ['100,200', String(0x7615)],
    ]);
  });
});
