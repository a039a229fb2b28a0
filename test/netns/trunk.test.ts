/**
 * The VLAN-to-VNI gateway (#15), issue tests 1–5 and 8, with an Open vSwitch top-of-rack
 * switch (lab/tor.ts, userspace TSO: super-frames cross the trunk) in front of vtepd's trunk:
 *
 *   bm100 (VLAN 100, 10.1.0.3, MAC M) ┐                               h1: vtepd
 *   bm200 (VLAN 200, 10.1.0.3, MAC M) ├ tor: OVS ═ trunk0 ══ eth1 ─ h2: vtepd ═ VXLAN ═  vm1  blue  10.1.0.1
 *   bm300 (VLAN 300, unmapped)        │          (native 10)      trunks: 100 blue,     vm1r red   10.1.0.1
 *   bm10  (VLAN 10 = native, 10.3.0.3)┘                           200 red, native green vm1g green 10.3.0.1
 *                                                                 + TAP vm2 (blue 10.1.0.2)
 *
 * 1. bm100 and the blue VM on h1 ping both ways, iperf3 both ways. 2. bm200, same IP and
 * MAC, reaches the red VM only: the FDB has M once per tenant (eth1 vlan 100 / vlan 200),
 * and a capture of the red VM sees none of bm100's pings. 3. On the trunk, frames toward
 * bm100 carry tag 100 and never 200; on the underlay, VNI 5001 with no tag inside. 4. An
 * unmapped VLAN, double tags and (with the native tenant reloaded away) untagged frames are
 * dropped with their exact counts. 5. The native VLAN reaches green. 8. The trunk going down
 * and coming back, and being deleted and made again, is counted, logged and survived; the
 * TAP on h2 never stops. Also: fdb show, trace --in eth1 --vlan, capture --port eth1 (tagged),
 * per-VLAN stats and metrics, a full-size frame (MTU).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, parsePing, run } from '../../lab/netns.js';
import { CLI, UNDERLAY, startDaemon, type Daemonised } from '../../lab/topology.js';
import { tor, type Tor } from '../../lab/tor.js';
import { until, untilPings } from '../../lab/wait.js';
import type { FdbRow } from '../../src/core/fdb.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import type { StatusResult } from '../../src/cli/table.js';
import type { TraceResult } from '../../src/core/trace.js';
import { packetSockets } from '../support/links.js';

const TRUNK_FRAMES = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'trunk-frames.py');
const VLAN_ARP = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'vlan-arp.py');
const M = '02:15:00:00:01:03'; /* bm100 and bm200 both */
const INJECTOR = '02:15:00:00:09:09';
const lab = new Lab('vk');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-trunk-'));
let h1: Daemonised;
let h2: Daemonised;
let sw: Tor;

const tenant = (name: string, vni: number, ports: string[], peer: string) => [
  `  - name: ${name}`,
  `    vni: ${vni}`,
  `    ports: [ ${ports.join(', ')} ]`,
  `    flood: [ ${peer} ]`,
];

function h1Config(): string {
  return [
    `underlay: { local: ${UNDERLAY.h1} }`,
    'tenants:',
    ...tenant('blue', 5001, [`{ tap: blue0, netns: ${lab.ns('vm1')}, address: 10.1.0.1/24 }`], UNDERLAY.h2),
    ...tenant('red', 5002, [`{ tap: red0, netns: ${lab.ns('vm1r')}, address: 10.1.0.1/24 }`], UNDERLAY.h2),
    ...tenant('green', 5003, [`{ tap: green0, netns: ${lab.ns('vm1g')}, address: 10.3.0.1/24 }`], UNDERLAY.h2),
    '',
  ].join('\n');
}

function h2Config(native: boolean, tagged = false): string {
  return [
    `underlay: { local: ${UNDERLAY.h2} }`,
    'log: { level: info }',
    'metrics: { listen: "127.0.0.1:9479" }',
    'tenants:',
    ...tenant(
      'blue',
      5001,
      [`{ tap: blue2, netns: ${lab.ns('vm2')}, address: 10.1.0.2/24 }`, ...(tagged ? [`{ tap: tag30, netns: ${lab.ns('vmt')}, vlan: 30 }`] : [])],
      UNDERLAY.h1,
    ),
    ...tenant('red', 5002, [], UNDERLAY.h1),
    ...tenant('green', 5003, [], UNDERLAY.h1),
    'trunks:',
    `  - { attach: eth1, vlans: { 100: blue, 200: red }${native ? ', native: green' : ''} }`,
    '',
  ].join('\n');
}

async function cli<T>(d: Daemonised, args: string[]): Promise<T> {
  const r = await run(process.execPath, [CLI, ...args, '--socket', d.socket, '--json']);
  return JSON.parse(r.stdout) as T;
}
const text = async (d: Daemonised, args: string[]) => (await run(process.execPath, [CLI, ...args, '--socket', d.socket])).stdout;
const drops = async () => (await cli<StatsSnapshot>(h2, ['stats'])).drops;
const port = async (name: string) => (await cli<StatsSnapshot>(h2, ['stats'])).ports.find((p) => p.port === name)!;

async function ping(from: string, to: string, args: string[] = []): Promise<number> {
  return parsePing((await lab.exec(from, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', ...args, to]).catch((e: Error) => ({ stdout: e.message }))).stdout)
    .received;
}

beforeAll(async () => {
  for (const h of ['h1', 'h2', 'vm1', 'vm1r', 'vm1g', 'vm2', 'vmt']) await lab.addHost(h, { ipv6: false });
  await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
  sw = await tor(lab, {
    servers: [
      { host: 'bm100', vlan: 100, address: '10.1.0.3/24', mac: M },
      { host: 'bm200', vlan: 200, address: '10.1.0.3/24', mac: M },
      { host: 'bm300', vlan: 300, address: '10.1.0.4/24' },
      { host: 'bm10', vlan: 10, address: '10.3.0.3/24' },
    ],
    trunk: { gateway: 'h2', dev: 'eth1', native: 10 },
    mtu: 1450,
    offloads: 'tso',
  });
  h1 = await startDaemon(lab, 'h1', h1Config(), dir);
  h2 = await startDaemon(lab, 'h2', h2Config(true), dir);
}, 180_000);

/** The daemon `vtepd restart` started (not a child of the lab): stopped by PID. */
let successor = 0;

afterAll(async () => {
  if (successor) {
    try {
      process.kill(successor, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await sw?.stop();
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('a trunk toward a top-of-rack switch (#15)', () => {
  it('status shows the trunk with its VLANs; stats a row per VLAN port and one for the trunk', async () => {
    const st = await cli<StatusResult>(h2, ['status']);
    expect(st.trunks).toEqual([
      {
        attach: 'eth1',
        netns: null,
        ifindex: expect.any(Number),
        mac: expect.any(String),
        mtu: 1450,
        up: true,
        native: 'green',
        vlans: [
          { vlan: 100, tenant: 'blue', port: 'eth1.100', pool: false },
          { vlan: 200, tenant: 'red', port: 'eth1.200', pool: false },
        ],
        pool: null,
      },
    ]);
    expect(await text(h2, ['status'])).toMatch(/TRUNK\s+NETNS\s+VLAN\s+TENANT\s+FROM\s+STATE\n.*eth1\s+-\s+100\s+blue\s+config\s+up, MTU 1450/);
    const kinds = (await cli<StatsSnapshot>(h2, ['stats'])).ports.map((p) => [p.port, p.kind, p.tenant]);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['eth1', 'trunk', '-'],
        ['eth1.100', 'vlan', 'blue'],
        ['eth1.200', 'vlan', 'red'],
        ['eth1.native', 'vlan', 'green'],
      ]),
    );
  });

  it('1. bare metal in VLAN 100 and the VM on the other host ping both ways, and iperf3 runs both ways', async () => {
    await untilPings(lab, 'bm100', '10.1.0.1');
    expect(await ping('vm1', '10.1.0.3')).toBe(3);
    expect(await ping('bm100', '10.1.0.1')).toBe(3);
    const { up, down } = await lab.iperfBothWays('bm100', 'vm1', '10.1.0.1', 2);
    console.log(`trunk: bm100 -> vm1 ${up.toFixed(2)} Gbit/s, vm1 -> bm100 ${down.toFixed(2)} Gbit/s`);
    expect(up).toBeGreaterThan(0);
    expect(down).toBeGreaterThan(0);
    // A full-size frame: 1450 bytes of IP (the tenant's MTU) with DF, tagged on the trunk.
    expect(await ping('bm100', '10.1.0.1', ['-s', '1422', '-M', 'do'])).toBe(3);
  }, 60_000);

  it('2. the same IP and MAC in VLAN 200 reaches the red VM only: one FDB entry per tenant, nothing crosses', async () => {
    await untilPings(lab, 'bm200', '10.1.0.1');
    const fdb = await cli<FdbRow[]>(h2, ['fdb', 'show', '--mac', M]);
    expect(fdb.map((r) => [r.tenant, r.where])).toEqual(
      expect.arrayContaining([
        ['blue', { kind: 'port', port: 'eth1', vlan: 100 }],
        ['red', { kind: 'port', port: 'eth1', vlan: 200 }],
      ]),
    );
    expect(fdb).toHaveLength(2);
    expect(await text(h2, ['fdb', 'show', 'red', '--mac', M])).toMatch(/port eth1 vlan 200/);
    expect((await cli<FdbRow[]>(h2, ['fdb', 'show', '--port', 'eth1', '--vlan', '100'])).map((r) => r.tenant)).toEqual(['blue']);
    // bm100 pings blue's VM with a pattern; the red VM (same IP) sees none of it, the blue one all.
    const red = await lab.capture('vm1r', 'red0', 'icmp', ['icmp.seq']);
    const blue = await lab.capture('vm1', 'blue0', 'icmp', ['icmp.seq']);
    expect(await ping('bm100', '10.1.0.1', ['-p', 'b100'])).toBe(3);
    await until(
      'the blue VM to see the pings',
      async () => blue.rows(),
      (r) => r.length >= 6,
    );
    expect(await red.stop()).toEqual([]);
    await blue.stop();
  }, 60_000);

  it('3. on the trunk, frames toward VLAN 100 carry tag 100 (never 200); on the underlay VNI 5001, no tag inside', async () => {
    const trunk = await lab.capture('h2', 'eth1', `outbound and ether dst ${M}`, ['vlan.id']);
    const underlay = await lab.capture('h2', 'ul0', `udp dst port 4789 and src host ${UNDERLAY.h2}`, ['vxlan.vni', 'vlan.id']);
    // Ping until the capture has seen replies (tshark may start a moment after it says so).
    const tags = await until(
      'the replies on the trunk',
      async () => {
        await ping('bm100', '10.1.0.1', ['-c', '1']);
        return trunk.rows();
      },
      (r) => r.length >= 3,
    );
    await trunk.stop();
    expect(new Set(tags.map((r) => r[0]))).toEqual(new Set(['100']));
    const wire = await underlay.stop();
    expect(wire.length).toBeGreaterThanOrEqual(3);
    expect(wire.filter((r) => r[0] === '5001').length).toBeGreaterThanOrEqual(3);
    expect(wire.filter((r) => r[1])).toEqual([]); /* no 802.1Q tag inside any VXLAN packet */
  }, 60_000);

  it('4. an unmapped VLAN, double tags and untagged frames without a native tenant are dropped with exact counts', async () => {
    const before = await drops();
    const trunkBefore = (await port('eth1')).drops;
    await lab.exec(sw.host, '/usr/bin/python3', [TRUNK_FRAMES, sw.trunkPort, INJECTOR, '300:5', '100.200:3', 'ad100.200:2']);
    const after = await until('10 drops on the trunk', drops, (d) => d.vlan_unmapped! - before.vlan_unmapped! + d.vlan_double! - before.vlan_double! >= 10);
    expect(after.vlan_unmapped! - before.vlan_unmapped!).toBe(5);
    expect(after.vlan_double! - before.vlan_double!).toBe(5);
    expect((await port('eth1')).drops - trunkBefore).toBe(10);
    // Without a native tenant, untagged frames are dropped by name; with it back, they reach green.
    writeFileSync(h2.configPath, `control: { socket: ${h2.socket} }\n${h2Config(false)}`);
    expect((await cli<{ changes: string[] }>(h2, ['reload'])).changes).toEqual(['trunk eth1: changed (native green -> none)']);
    const n0 = (await drops()).untagged_no_native!;
    await lab.exec(sw.host, '/usr/bin/python3', [TRUNK_FRAMES, sw.trunkPort, INJECTOR, 'none:4']);
    await until('4 untagged drops', drops, (d) => d.untagged_no_native! - n0 >= 4);
    expect((await drops()).untagged_no_native! - n0).toBe(4);
    writeFileSync(h2.configPath, `control: { socket: ${h2.socket} }\n${h2Config(true)}`);
    expect((await cli<{ changes: string[] }>(h2, ['reload'])).changes).toEqual(['trunk eth1: changed (native none -> green)']);
    // Nothing of the injected frames left over the tunnel: blue and red saw no frame from INJECTOR.
    expect(await cli<FdbRow[]>(h1, ['fdb', 'show', '--mac', INJECTOR])).toEqual([]);
  }, 60_000);

  it('5. the native VLAN (untagged on the trunk) is the native tenant green', async () => {
    await untilPings(lab, 'bm10', '10.3.0.1');
    expect(await ping('vm1g', '10.3.0.3')).toBe(3);
    const rows = await cli<FdbRow[]>(h2, ['fdb', 'show', 'green']);
    expect(rows.some((r) => r.where.kind === 'port' && r.where.port === 'eth1' && r.where.vlan === 0)).toBe(true);
    expect(await text(h2, ['fdb', 'show', 'green'])).toMatch(/port eth1 untagged/);
  }, 60_000);

  it('trace --in eth1 --vlan 100 follows the VLAN port; an unmapped VLAN and a wrong tenant are said so', async () => {
    const vm1 = (await lab.exec('vm1', 'cat', ['/sys/class/net/blue0/address'])).stdout.trim();
    await untilPings(lab, 'bm100', '10.1.0.1');
    const t = await cli<TraceResult>(h2, ['trace', '-t', 'blue', '--in', 'eth1', '--vlan', '100', '--src', M, '--dst', vm1]);
    expect(t.ingress).toEqual({ kind: 'port', port: 'eth1', vlan: 100 });
    expect(t.action).toBe('forward');
    expect(t.outputs.vteps.map((v) => (v.kind === 'vtep' ? v.vtep : ''))).toEqual([UNDERLAY.h1]);
    const refused = (t: string, vlan: string) =>
      run(process.execPath, [CLI, 'trace', '-t', t, '--in', 'eth1', '--vlan', vlan, '--src', M, '--dst', vm1, '--socket', h2.socket]).then(
        () => 'accepted',
        (e: Error) => e.message,
      );
    expect(await refused('blue', '300')).toContain('eth1 carries no VLAN 300: a frame tagged 300 is dropped there (vlan_unmapped)');
    expect(await refused('red', '100')).toContain("VLAN 100 on eth1 is tenant blue's, not red's");
  });

  it('capture --port eth1 writes the frames with their tags; --port eth1.200 only VLAN 200', async () => {
    const pcapAll = join(dir, 'trunk.pcap');
    const pcap200 = join(dir, 'vlan200.pcap');
    let done = false;
    const both = Promise.all([
      run(process.execPath, [CLI, 'capture', '--port', 'eth1', '--count', '6', '-w', pcapAll, '--socket', h2.socket]),
      run(process.execPath, [CLI, 'capture', '--port', 'eth1.200', '--count', '4', '-w', pcap200, '--socket', h2.socket]),
    ]).finally(() => {
      done = true;
    });
    // Feed both VLANs until both captures have their count (they start when the daemon runs tcpdump).
    const deadline = Date.now() + 30_000;
    while (!done && Date.now() < deadline) {
      await ping('bm100', '10.1.0.1', ['-c', '1']);
      await ping('bm200', '10.1.0.1', ['-c', '1']);
    }
    await both;
    const tags = (f: string) => run('tshark', ['-r', f, '-T', 'fields', '-e', 'vlan.id']).then((r) => new Set(r.stdout.trim().split('\n').filter(Boolean)));
    expect(await tags(pcapAll)).toEqual(new Set(['100', '200']));
    expect(await tags(pcap200)).toEqual(new Set(['200']));
  }, 60_000);

  it('metrics have a series per VLAN port', async () => {
    // Metrics listen inside h2's namespace: read them there.
    const body = (await lab.exec('h2', 'curl', ['-s', 'http://127.0.0.1:9479/metrics'])).stdout;
    expect(body).toMatch(/vtepd_port_rx_packets_total\{tenant="blue",port="eth1\.100"\} [1-9]/);
    expect(body).toMatch(/vtepd_port_rx_packets_total\{tenant="-",port="eth1"\} [1-9]/);
    expect(body).toMatch(/vtepd_drops_total\{reason="vlan_unmapped"\} [1-9]/);
  });

  it('a tagged TAP (vlan: 30): the VM tags its frames; the tag comes off into blue and goes back on toward the VM', async () => {
    writeFileSync(h2.configPath, `control: { socket: ${h2.socket} }\n${h2Config(true, true)}`);
    expect((await cli<{ changes: string[] }>(h2, ['reload'])).changes).toEqual(['port tag30 (tenant blue): added']);
    const vm1 = (await lab.exec('vm1', 'cat', ['/sys/class/net/blue0/address'])).stdout.trim();
    const ask = async (vlan: number) =>
      (await lab.exec('vmt', '/usr/bin/python3', [VLAN_ARP, 'tag30', String(vlan), '02:15:00:00:03:30', '10.1.0.30', '10.1.0.1'])).stdout.trim();
    await lab.exec('vmt', 'ip', ['link', 'set', 'tag30', 'up']);
    expect(
      await until(
        'a reply tagged 30 from the VM on h1',
        () => ask(30),
        (r) => r !== 'none',
      ),
    ).toBe(`reply 30 ${vm1}`);
    const before = (await drops()).vlan_unmapped!;
    expect(await ask(31)).toBe('none'); /* another VLAN is no tenant's on this TAP */
    expect((await drops()).vlan_unmapped! - before).toBe(1);
    const fdb = await cli<FdbRow[]>(h2, ['fdb', 'show', 'blue', '--mac', '02:15:00:00:03:30']);
    expect(fdb.map((r) => r.where)).toEqual([{ kind: 'port', port: 'tag30', vlan: 30 }]);
    writeFileSync(h2.configPath, `control: { socket: ${h2.socket} }\n${h2Config(true)}`);
    expect((await cli<{ changes: string[] }>(h2, ['reload'])).changes).toEqual(['port tag30 (tenant blue): removed (not in the new config)']);
  }, 60_000);

  it('8. the trunk going down and up, then deleted and made again: counted, logged, back; the TAP never stops', async () => {
    await lab.exec('h2', 'ip', ['link', 'set', 'eth1', 'down']);
    expect(await ping('vm2', '10.1.0.1')).toBe(3);
    await lab.exec('h2', 'ip', ['link', 'set', 'eth1', 'up']);
    await until(
      'bm100 to reach the VM after eth1 went down and up',
      () => ping('bm100', '10.1.0.1'),
      (n) => n > 0,
    );
    const before = (await cli<StatusResult>(h2, ['status'])).trunks![0]!.ifindex;
    await lab.exec('h2', 'ip', ['link', 'del', 'eth1']); // takes trunk0 in the switch with it
    await until(
      'the trunk seen gone',
      async () => (await cli<StatusResult>(h2, ['status'])).trunks![0]!.up,
      (up) => !up,
    );
    expect(h2.stderr()).toContain('trunk interface gone (deleted under the daemon); re-attaching it when it is back');
    expect(await ping('vm2', '10.1.0.1')).toBe(3);
    await lab.link(sw.host, sw.trunkPort, null, 'h2', 'eth1', null, 1450);
    await sw.ovs.vsctl('--if-exists', 'del-port', sw.bridge, sw.trunkPort);
    await sw.ovs.vsctl('add-port', sw.bridge, sw.trunkPort, '--', 'set', 'Port', sw.trunkPort, 'vlan_mode=native-untagged', 'tag=10');
    const st = await until(
      'eth1 attached again',
      async () => (await cli<StatusResult>(h2, ['status'])).trunks![0]!,
      (t) => t.up && t.ifindex !== before,
    );
    expect(st.vlans.map((v) => v.port)).toEqual(['eth1.100', 'eth1.200']);
    expect(h2.stderr()).toContain('trunk interface back: attached again');
    await until(
      'bm100 to reach the VM through the new eth1',
      () => ping('bm100', '10.1.0.1'),
      (n) => n > 0,
    );
    await until(
      'bm10 to reach green through the new eth1',
      () => ping('bm10', '10.3.0.1'),
      (n) => n > 0,
    );
  }, 90_000);

  it('vtepd restart hands the trunk socket over (the same socket, no re-attach) and keeps forwarding', async () => {
    const before = (await cli<StatusResult>(h2, ['status'])).trunks![0]!;
    const sockets = await packetSockets(lab, 'h2', before.ifindex);
    expect(sockets).toHaveLength(1);
    const r = await run('ip', ['netns', 'exec', lab.ns('h2'), process.execPath, CLI, 'restart', '--socket', h2.socket, '--json']);
    successor = (JSON.parse(r.stdout) as { newPid: number }).newPid;
    const st = await cli<StatusResult>(h2, ['status']);
    expect(st.pid).toBe(successor);
    expect(st.trunks![0]).toMatchObject({ attach: 'eth1', ifindex: before.ifindex, up: true });
    await until(
      'the old daemon to let its copy go',
      () => packetSockets(lab, 'h2', before.ifindex),
      (s) => s.length === 1,
    );
    expect(await packetSockets(lab, 'h2', before.ifindex)).toEqual(sockets);
    await until(
      'bm100 to reach the VM through the successor',
      () => ping('bm100', '10.1.0.1'),
      (n) => n === 3,
    );
    await until(
      'bm10 to reach green through the successor',
      () => ping('bm10', '10.3.0.1'),
      (n) => n === 3,
    );
  }, 60_000);
});
