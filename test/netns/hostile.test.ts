/**
 * A barrage of malformed and hostile underlay packets at a running vtepd (from an attacker
 * namespace on the same underlay switch, crafted with scapy) while a tenant's ping runs:
 * the daemon stays up, every kind lands in its named drop counter, the kinds the kernel
 * stops never reach it, and the tenant's traffic continues without loss. Tenant blue takes
 * frames from any VTEP (acceptFrom: any) so that every inner check is reached; tenant red
 * keeps the default (known VTEPs only): a frame for red from a VTEP red does not know is
 * dropped and never reaches red's port.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, parsePing, waitForLine } from '../../lab/netns.js';
import { CLI } from '../../lab/topology.js';
import { request } from '../../src/daemon/control.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';

const HOSTILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'hostile.py');
const N = 25;

describe('hostile underlay input', () => {
  const lab = new Lab('vx');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-hostile-'));
  const sock = join(dir, 'h1.sock');
  let daemonPid = 0;

  const config = (i: number, peer: string, socket: string) => `underlay: { local: 10.0.0.${i}, port: 4789 }
control: { socket: ${socket} }
tenants:
  - { name: blue, vni: 5001, acceptFrom: any, flood: [ ${peer} ], ports: [ { tap: blue0, netns: ${lab.ns(`blue${i}`)}, address: 10.1.0.${i}/24 } ] }
  - { name: red, vni: 5002, flood: [ ${peer} ], ports: [ { tap: red0, netns: ${lab.ns(`red${i}`)}, address: 10.2.0.${i}/24 } ] }
`;

  beforeAll(async () => {
    for (const h of ['sw', 'h1', 'h2', 'evil']) await lab.addHost(h);
    for (const h of ['blue1', 'blue2', 'red1', 'red2']) await lab.addHost(h, { ipv6: false });
    await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
    const hosts: [string, string][] = [
      ['h1', '10.0.0.1/24'],
      ['h2', '10.0.0.2/24'],
      ['evil', '10.0.0.66/24'],
    ];
    for (const [i, [h, addr]] of hosts.entries()) {
      await lab.link(h, 'ul0', addr, 'sw', `p${i}`, null);
      await lab.exec('sw', 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
    }
    for (const [i, peer] of [
      [1, '10.0.0.2'],
      [2, '10.0.0.1'],
    ] as const) {
      const f = join(dir, `h${i}.yaml`);
      writeFileSync(f, config(i, peer, join(dir, `h${i}.sock`)));
      const child = lab.spawn(`h${i}`, process.execPath, [CLI, 'run', '--config', f]);
      await waitForLine(child, /^vtepd: running/);
      if (i === 1) daemonPid = child.pid!;
    }
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const drops = async () => (await request<StatsSnapshot>(sock, 'stats')).drops;

  it("stays up, counts every kind by name, and keeps forwarding a tenant's traffic", async () => {
    const warm = parsePing((await lab.exec('blue1', 'ping', ['-c', '2', '-i', '0.2', '10.1.0.2'])).stdout);
    expect(warm.received).toBe(2);
    const before = await drops();
    const dstMac = (await lab.exec('h1', 'cat', ['/sys/class/net/ul0/address'])).stdout.trim();
    const ping = lab.exec('blue1', 'ping', ['-c', '400', '-i', '0.01', '-W', '2', '10.1.0.2'], 60_000);
    const reached = ['short', 'noflag', 'reserved', 'unknownvni', 'runt', 'vlan', 'mcastsrc', 'zerosrc', 'giant'];
    const stoppedByKernel = ['badcsum', 'badihl', 'lonefrag'];
    const sent = await lab.exec(
      'evil',
      'env',
      [`DST_MAC=${dstMac}`, '/usr/bin/python3', HOSTILE, 'ul0', '10.0.0.1', '4789', '5001', String(N), ...reached, ...stoppedByKernel],
      120_000,
    );
    expect(sent.stdout.trim().split('\n')).toHaveLength(reached.length + stoppedByKernel.length);
    const p = parsePing((await ping).stdout, 400);
    const after = await drops();
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    expect({
      vxlan_truncated: delta('vxlan_truncated'),
      vxlan_bad_flags: delta('vxlan_bad_flags'),
      vxlan_unknown_vni: delta('vxlan_unknown_vni'),
      inner_runt: delta('inner_runt'),
      inner_vlan: delta('inner_vlan'),
      bad_src_mac: delta('bad_src_mac'),
      frame_too_big: delta('frame_too_big'),
    }).toEqual({
      vxlan_truncated: N,
      vxlan_bad_flags: 2 * N,
      vxlan_unknown_vni: N,
      inner_runt: N,
      inner_vlan: N,
      bad_src_mac: 2 * N,
      frame_too_big: N,
    });
    expect(p.received).toBe(p.sent);
    process.kill(daemonPid, 0); // still running (throws if not)
  });

  it("drops a frame for red from a VTEP red does not know; red's port never sees it", async () => {
    const before = await drops();
    const cap = await lab.capture('red1', 'red0', 'ether src 02:00:00:00:ee:02', ['frame.number']);
    const dstMac = (await lab.exec('h1', 'cat', ['/sys/class/net/ul0/address'])).stdout.trim();
    await lab.exec('evil', 'env', [`DST_MAC=${dstMac}`, '/usr/bin/python3', HOSTILE, 'ul0', '10.0.0.1', '4789', '5002', String(N), 'spoof']);
    expect(await cap.stop()).toEqual([]);
    const after = await drops();
    expect((after.vtep_not_accepted ?? 0) - (before.vtep_not_accepted ?? 0)).toBe(N);
    const red = parsePing((await lab.exec('red1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.2.0.2'])).stdout);
    expect(red.received).toBe(3);
  });
});
