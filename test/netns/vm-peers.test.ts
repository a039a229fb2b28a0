/**
 * A QEMU guest on vtepd against the kernel's VXLAN, and two guests with the same MAC and IP
 * in two tenants (#16). One world, two guests booted together:
 *
 *   h2 (vtepd)                                   h1 (the kernel's VXLAN, no vtepd)
 *   blue guest -- vnet0 { attach } VNI 5001 ---- vx5001 - br5001 - k1 10.1.0.1
 *   red guest  -- vnet1 { attach } VNI 5002 ---- vx5002 - br5002 - k2 10.1.0.1
 *
 * Both guests are 52:54:00:16:00:02 / 10.1.0.2 (TCG, virtio-net with its offloads on,
 * host_mtu=1450, lab/guest.ts). The blue guest pings k1 and runs iperf3 TCP both ways with it
 * (throughput printed, no thresholds; h2's counters show the guest's GSO super-frames, no
 * drop). Both guests ping their own container at once, each with its own packet size, and each
 * container sees only its own tenant's size. Then the red guest floods (broadcast ARP,
 * broadcast ping, unknown unicast, a fast ping): k2 sees it, k1 sees none of it, and the blue
 * guest receives nothing. `vtepd fdb show` lists the one MAC in both tenants, each on its own port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuest, startGuest, type Guest } from '../../lab/guest.js';
import { Lab, iperfGbps, parsePing, run } from '../../lab/netns.js';
import { CLI, UNDERLAY, addKernelBridgePeer, startDaemon, type Daemonised } from '../../lab/topology.js';
import { until } from '../../lab/wait.js';
import type { FdbRow } from '../../src/core/fdb.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';

const lab = new Lab('vmp');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-vmp-'));
/** Both guests: one MAC, one address. */
const GUEST = { ip: '10.1.0.2', mac: '52:54:00:16:00:02' };
/** Both containers (k1 in blue, k2 in red). */
const CONTAINER = '10.1.0.1';
const TENANTS = [
  { name: 'blue', vni: 5001, tap: 'vnet0', container: 'k1' },
  { name: 'red', vni: 5002, tap: 'vnet1', container: 'k2' },
] as const;
let h2: Daemonised;
let blue: Guest;
let red: Guest;

function config(): string {
  return [
    `underlay: { local: ${UNDERLAY.h2} }`,
    'log: { level: info }',
    'tenants:',
    ...TENANTS.flatMap((t) => [`  - name: ${t.name}`, `    vni: ${t.vni}`, `    ports: [ { attach: ${t.tap} } ]`, `    flood: [ ${UNDERLAY.h1} ]`]),
    '',
  ].join('\n');
}

async function cli<T>(args: string[]): Promise<T> {
  return JSON.parse((await run(process.execPath, [CLI, ...args, '--socket', h2.socket, '--json'])).stdout) as T;
}

/** The datapath counters that moved between two snapshots. */
function moved(a: StatsSnapshot, b: StatsSnapshot): Record<string, number> {
  const ca = a.datapath as unknown as Record<string, number>;
  const cb = b.datapath as unknown as Record<string, number>;
  return Object.fromEntries(Object.keys(cb).flatMap((k) => (typeof cb[k] === 'number' && cb[k] !== ca[k] ? [[k, cb[k]! - (ca[k] ?? 0)]] : [])));
}

/** A guest's busybox ping, its summary line checked by the caller. */
async function guestPing(g: Guest, args: string): Promise<string> {
  const r = await g.run(`ping ${args}`, 60_000);
  expect(r.code, r.output).toBe(0);
  return r.output;
}

beforeAll(async () => {
  const image = buildGuest(); // cached: the first build takes about 15 s
  for (const h of ['h1', 'h2']) await lab.addHost(h, { ipv6: false });
  await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
  for (const t of TENANTS) {
    // The kernel finishes the inner checksums on the VXLAN device, so the container keeps TSO.
    await addKernelBridgePeer(lab, {
      host: 'h1',
      endpoint: t.container,
      vni: t.vni,
      local: UNDERLAY.h1,
      remote: UNDERLAY.h2,
      address: `${CONTAINER}/24`,
      mtu: 1450,
      finishChecksums: 'vxlan',
      devices: { vxlan: `vx${t.vni}`, bridge: `br${t.vni}`, veth: `vm${t.vni}` },
    });
  }
  const boot = (tap: string) => startGuest(lab, 'h2', { tap, mac: GUEST.mac, ip: `${GUEST.ip}/24`, mtu: 1450, bootTimeoutMs: 120_000 }, image);
  [blue, red] = await Promise.all(TENANTS.map((t) => boot(t.tap)));
  console.log(`guests: ${image.package}, ready after ${blue.bootSeconds.toFixed(1)} s and ${red.bootSeconds.toFixed(1)} s (booted together)`);
  // As the lab's namespaces: no IPv6 router solicitations or MLD reports to blur the counts below.
  await Promise.all([blue, red].map((g) => g.run('echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6')));
  // As libvirt does with <mtu size='1450'/>: the TAP takes the guest's MTU.
  for (const t of TENANTS) await lab.exec('h2', 'ip', ['link', 'set', t.tap, 'mtu', '1450']);
  h2 = await startDaemon(lab, 'h2', config(), dir);
}, 180_000);

afterAll(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('QEMU guests on vtepd against the kernel VXLAN (#16)', () => {
  it('the blue guest pings and runs iperf3 TCP both ways with a container behind the kernel VXLAN; GSO counters moved, no drop', async () => {
    expect(await guestPing(blue, `-c 3 -i 0.2 -W 2 ${CONTAINER}`)).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
    const back = (await lab.exec('k1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', GUEST.ip])).stdout;
    expect(back).toMatch(/ 0% packet loss/);
    expect(parsePing(back).received).toBe(3);

    await until(
      "the blue guest's iperf3 -s to listen on 5201",
      async () => (await blue.run('netstat -ltn')).output,
      (o) => /:5201\s/.test(o),
    );
    const iperf = async (extra: string[]) => iperfGbps((await lab.exec('k1', 'iperf3', ['-c', GUEST.ip, '-t', '2', '-J', ...extra], 90_000)).stdout);
    const s0 = await cli<StatsSnapshot>(['stats']);
    const toGuest = await iperf([]);
    const s1 = await cli<StatsSnapshot>(['stats']);
    const fromGuest = await iperf(['-R']);
    const s2 = await cli<StatsSnapshot>(['stats']);
    console.log(
      `iperf3 TCP, Gbit/s: kernel VXLAN k1 -> vtepd -> vnet0 -> guest ${toGuest.toFixed(2)}; guest -> vtepd -> kernel VXLAN k1 ${fromGuest.toFixed(2)}`,
    );
    console.log(`h2 counters moved, k1 -> guest: ${JSON.stringify(moved(s0, s1))}`);
    console.log(`h2 counters moved, guest -> k1: ${JSON.stringify(moved(s1, s2))}`);
    expect(toGuest).toBeGreaterThan(0);
    expect(fromGuest).toBeGreaterThan(0);
    // The guest's super-frames read from vnet0 with their virtio_net_hdr, cut into segments for the kernel's VXLAN.
    const up = moved(s1, s2);
    expect(up.tap_rx_gso_frames).toBeGreaterThan(0);
    expect(up.gso_segments).toBeGreaterThan(up.tap_rx_gso_frames!);
    expect(Object.entries(s2.drops as Record<string, number>).filter(([, v]) => v > 0)).toEqual([]);
    expect(s2.ports.find((p) => p.port === 'vnet0')!.drops).toBe(0);
  });

  it('two guests with one MAC and IP in blue and red each reach their own container, at the same time', async () => {
    // Each tenant pings with its own size: a container that saw the other's size would prove a leak.
    const size = { blue: 100, red: 200 };
    const caps = await Promise.all(TENANTS.map((t) => lab.capture(t.container, 'eth0', 'icmp', ['ip.len'])));
    const [b, r] = await Promise.all([
      guestPing(blue, `-c 5 -i 0.2 -W 2 -s ${size.blue} ${CONTAINER}`),
      guestPing(red, `-c 5 -i 0.2 -W 2 -s ${size.red} ${CONTAINER}`),
    ]);
    expect(b).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
    expect(r).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
    const back = (await lab.exec('k2', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '-s', String(size.red), GUEST.ip])).stdout;
    expect(back).toMatch(/ 0% packet loss/);
    // Each capture: its own tenant's pings (5 requests and 5 replies, and k2's 3 and 3), nothing else.
    const want = { k1: 10, k2: 16 };
    for (const [i, t] of TENANTS.entries())
      await until(
        `${t.container} to capture its pings`,
        async () => caps[i]!.rows().length,
        (n) => n >= want[t.container],
      );
    const lens = await Promise.all(caps.map(async (c) => [...new Set((await c.stop()).map((row) => Number(row[0])))]));
    expect(lens).toEqual([[size.blue + 28], [size.red + 28]]);

    const rows = (await cli<FdbRow[]>(['fdb', 'show', '--mac', GUEST.mac])).map((row) => [row.tenant, row.vni, row.where]);
    expect(rows).toEqual([
      ['blue', 5001, { kind: 'port', port: 'vnet0' }],
      ['red', 5002, { kind: 'port', port: 'vnet1' }],
    ]);
  });

  it('the red guest floods its tenant: k2 sees every frame it sent, k1 and the blue guest none', async () => {
    const counts = async (g: Guest) =>
      (await g.run('cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets')).output.trim().split(/\s+/).map(Number);
    // Blue stays silent meanwhile: its guest and k1 know each other for good, so neither sends an
    // ARP probe of its own, and any frame k1 sees from the guests' MAC would be red's.
    const k1Mac = (await lab.exec('k1', 'cat', ['/sys/class/net/eth0/address'])).stdout.trim();
    expect((await blue.run(`arp -s ${CONTAINER} ${k1Mac}`)).code).toBe(0);
    await lab.exec('k1', 'ip', ['neigh', 'replace', GUEST.ip, 'lladdr', GUEST.mac, 'dev', 'eth0', 'nud', 'permanent']);
    const [k1, k2] = await Promise.all(TENANTS.map((t) => lab.capture(t.container, 'eth0', `ether src ${GUEST.mac}`, ['eth.dst', '_ws.col.Protocol'])));
    const [blueRx0] = await counts(blue);
    const [, redTx0] = await counts(red);
    const flood = [
      // At once: broadcast ARP requests (arping sends one a second), broadcast pings, and unknown
      // unicast (a neighbour entry for a MAC nobody has), which a switch floods.
      'arp -s 10.1.0.99 02:de:ad:00:00:01 && arping -b -c 2 -w 3 10.1.0.1 > /tmp/arping & ping -q -c 20 -i 0.05 -W 1 -I eth0 255.255.255.255 > /tmp/bcast & ping -q -c 20 -i 0.05 -W 1 10.1.0.99; wait; cat /tmp/arping /tmp/bcast',
      `ping -q -c 100 -i 0.01 -W 2 ${CONTAINER}`,
    ];
    for (const c of flood) console.log(`red guest: ${c}: ${(await red.run(c, 60_000)).output.trim().replaceAll('\n', ' / ')}`);
    const [, redTx1] = await counts(red);
    const sent = redTx1! - redTx0!;
    await until(
      'k2 to capture every frame the red guest sent',
      async () => k2.rows().length,
      (n) => n >= sent,
    );
    const seen = await k2.stop();
    const leaked = await k1.stop();
    const kinds = new Map<string, number>();
    for (const [dst, proto] of seen) kinds.set(`${proto} to ${dst}`, (kinds.get(`${proto} to ${dst}`) ?? 0) + 1);
    console.log(`the red guest sent ${sent} frames; k2 saw ${seen.length}: ${JSON.stringify(Object.fromEntries(kinds))}; k1 saw ${leaked.length}`);
    expect(kinds.get('ARP to ff:ff:ff:ff:ff:ff')).toBeGreaterThan(0);
    expect(kinds.get('ICMP to ff:ff:ff:ff:ff:ff')).toBe(20);
    expect(kinds.get('ICMP to 02:de:ad:00:00:01')).toBe(20);
    expect(seen.length).toBeGreaterThanOrEqual(sent); // and whatever red's guest sent after it was counted
    expect(leaked).toEqual([]);
    const [blueRx1] = await counts(blue);
    expect(blueRx1).toBe(blueRx0); // blue is silent meanwhile: its guest receives nothing
  });
});
