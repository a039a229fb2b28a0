/**
 * A real VM on a tenant (#16, step 1): a QEMU guest (TCG, virtio-net with its offloads on,
 * host_mtu=1450, lab/guest.ts) on h2, whose TAP vnet0 vtepd attaches (`{ attach: vnet0 }`
 * in blue; the guest is started first, so vnet0 exists), and a TAP container c1 in blue on
 * h1, across VXLAN. The guest and the container ping each other; iperf3 TCP runs both ways
 * against the guest's iperf3 -s (throughput printed, no thresholds); h2's counters show the
 * guest's GSO super-frames read from vnet0 with their virtio_net_hdr, coalesced frames written
 * to it, and no drop of any kind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuest, startGuest, type Guest } from '../../lab/guest.js';
import { Lab, iperfGbps, parsePing, run } from '../../lab/netns.js';
import { CLI, UNDERLAY, startDaemon, type Daemonised } from '../../lab/topology.js';
import { until } from '../../lab/wait.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import type { StatusResult } from '../../src/cli/table.js';

const lab = new Lab('vm');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-vm-'));
const GUEST = { ip: '10.1.0.2', mac: '52:54:00:16:00:02' };
const CONTAINER = '10.1.0.1';
let h2: Daemonised;
let guest: Guest;

function config(local: string, peer: string, port: string): string {
  return [
    `underlay: { local: ${local} }`,
    'log: { level: info }',
    'tenants:',
    '  - name: blue',
    '    vni: 5001',
    '    ports:',
    `      - ${port}`,
    `    flood: [ ${peer} ]`,
    '',
  ].join('\n');
}

async function stats(): Promise<StatsSnapshot> {
  return JSON.parse((await run(process.execPath, [CLI, 'stats', '--socket', h2.socket, '--json'])).stdout) as StatsSnapshot;
}

/** The datapath counters that moved between two snapshots. */
function moved(a: StatsSnapshot, b: StatsSnapshot): Record<string, number> {
  const ca = a.datapath as unknown as Record<string, number>;
  const cb = b.datapath as unknown as Record<string, number>;
  return Object.fromEntries(Object.keys(cb).flatMap((k) => (typeof cb[k] === 'number' && cb[k] !== ca[k] ? [[k, cb[k]! - (ca[k] ?? 0)]] : [])));
}

beforeAll(async () => {
  const image = buildGuest(); // cached: the first build takes about 15 s
  for (const h of ['h1', 'h2', 'c1']) await lab.addHost(h, { ipv6: false });
  await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
  guest = await startGuest(lab, 'h2', { tap: 'vnet0', mac: GUEST.mac, ip: `${GUEST.ip}/24`, mtu: 1450 }, image);
  console.log(`guest: ${image.package}, ready after ${guest.bootSeconds.toFixed(1)} s: ${guest.ready}`);
  // As libvirt does with <mtu size='1450'/>: the TAP takes the guest's MTU.
  await lab.exec('h2', 'ip', ['link', 'set', 'vnet0', 'mtu', '1450']);
  await startDaemon(lab, 'h1', config(UNDERLAY.h1, UNDERLAY.h2, `{ tap: blue0, netns: ${lab.ns('c1')}, address: ${CONTAINER}/24 }`), dir);
  h2 = await startDaemon(lab, 'h2', config(UNDERLAY.h2, UNDERLAY.h1, '{ attach: vnet0 }'), dir);
}, 120_000);

afterAll(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('a QEMU guest on an attached vnet0 (#16)', () => {
  it('boots with virtio-net at host_mtu 1450, its offloads on; vtepd attaches its TAP', async () => {
    expect(guest.ready).toMatch(/ip=10\.1\.0\.2\/24 mtu=1450 /);
    const s = JSON.parse((await run(process.execPath, [CLI, 'status', '--socket', h2.socket, '--json'])).stdout) as StatusResult;
    expect(s.ports.map((p) => [p.tap, p.kind])).toEqual([['vnet0', 'attach']]);
    // QEMU opened the TAP with a vnet header and the guest turned TSO on (TUNSETOFFLOAD).
    const link = (await lab.exec('h2', 'ip', ['-d', 'link', 'show', 'dev', 'vnet0'])).stdout;
    expect(link).toMatch(/vnet_hdr on/);
    const k = (await lab.exec('h2', 'ethtool', ['-k', 'vnet0'])).stdout;
    expect(k).toMatch(/tcp-segmentation-offload: on/);
  });

  it('the guest pings the container on the other host, and the container the guest', async () => {
    const g = await guest.run(`ping -c 3 -W 2 ${CONTAINER}`, 30_000);
    expect(g.code, g.output).toBe(0);
    expect(g.output).toMatch(/3 packets transmitted, 3 packets received/); // busybox ping's summary
    const c = await lab.exec('c1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', GUEST.ip]);
    expect(parsePing(c.stdout).received).toBe(3);
  });

  it('iperf3 TCP both ways; the guest super-frames read from vnet0 and sent as segments, no checksum drop', async () => {
    await until(
      "the guest's iperf3 -s to listen on 5201",
      async () => (await guest.run('netstat -ltn')).output,
      (o) => /:5201\s/.test(o),
    );
    const iperf = async (extra: string[]) => iperfGbps((await lab.exec('c1', 'iperf3', ['-c', GUEST.ip, '-t', '2', '-J', ...extra], 90_000)).stdout);
    const s0 = await stats();
    const toGuest = await iperf([]);
    const s1 = await stats();
    const fromGuest = await iperf(['-R']);
    const s2 = await stats();
    console.log(`iperf3 TCP, Gbit/s: container c1 -> VXLAN -> vtepd -> vnet0 -> guest ${toGuest.toFixed(2)}; guest -> container ${fromGuest.toFixed(2)}`);
    console.log(`h2 counters moved, container -> guest: ${JSON.stringify(moved(s0, s1))}`);
    console.log(`h2 counters moved, guest -> container: ${JSON.stringify(moved(s1, s2))}`);
    expect(toGuest).toBeGreaterThan(0);
    expect(fromGuest).toBeGreaterThan(0);
    // Toward the guest: segments coalesced into super-frames written to vnet0 with their header.
    expect(moved(s0, s1).gro_frames).toBeGreaterThan(0);
    // From the guest: its super-frames read with their virtio_net_hdr, cut into segments for the underlay.
    const up = moved(s1, s2);
    expect(up.tap_rx_gso_frames).toBeGreaterThan(0);
    expect(up.gso_segments).toBeGreaterThan(up.tap_rx_gso_frames!);
    const drops = (s: StatsSnapshot) => s.drops as Record<string, number>;
    expect(Object.entries(drops(s2)).filter(([, v]) => v > 0)).toEqual([]);
    const vnet0 = s2.ports.find((p) => p.port === 'vnet0')!;
    expect(vnet0.drops).toBe(0);
  });
});
