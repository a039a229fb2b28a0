/**
 * VLAN pools on a trunk (issue #15, test 6). vtepd on host gw has a trunk on eth1 with
 * `pool: 100-199` and tenants t1, t2, t3 given it without a VLAN; eth1 goes to a top-of-rack
 * switch (Open vSwitch, lab/tor.ts) with bare-metal servers on access ports tagged 100, 101
 * and 102. Each tenant also has a TAP VM on gw (vmN, 10.9.0.1N), so a ping from bm101 to
 * t2's VM proves that VLAN 101 on the wire is t2's.
 *
 * - The tenants get 100, 101, 102 in config order (status --json and the TRUNK table).
 * - `vtepd restart` (takeover) keeps them; a plain stop and a new `vtepd run` keeps them
 *   (the state file gw.vlans.json beside the control socket).
 * - A reload that deletes t2 frees 101; a reload that adds tenant t4 gives it 101 (lowest
 *   free), and bm101 reaches t4's VM.
 * - With the etcd directory: two gateways with a trunk on the same pool, started at the same
 *   moment, with overlapping tenant lists, never show one ID for two tenants, and a tenant
 *   on both has the same ID on both. When one gateway drops a tenant the other still carries,
 *   its ID stays taken: a new tenant gets the next free one.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryLab } from '../../lab/directory-lab.js';
import type { EtcdMember } from '../../lab/etcd.js';
import { Lab, parsePing } from '../../lab/netns.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { tor, type Tor } from '../../lab/tor.js';
import { untilPings } from '../../lab/wait.js';
import type { StatusResult } from '../../src/cli/table.js';
import { stopPids, vtepd, vtepdJson } from '../support/ops.js';

type TrunkStatus = NonNullable<StatusResult['trunks']>[number];

const lab = new Lab('vp');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-pool-'));
/** Daemons `vtepd restart` started (not children of the lab): stopped by PID. */
const successors: number[] = [];
let sw: Tor | undefined;
let etcd: EtcdMember | undefined;

afterAll(async () => {
  await stopPids(successors);
  await sw?.stop();
  await lab.cleanup();
  await etcd?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A tenant with a TAP VM on gw: t1 -> vm1 with 10.9.0.11. Its MAC is fixed, as a VM's is,
 * so the servers' ARP entries hold across a stop and a new run (which makes new TAPs).
 */
const tenant = (n: number) =>
  `  - { name: t${n}, vni: ${5000 + n}, ports: [ { tap: t${n}vm, netns: ${lab.ns(`vm${n}`)}, address: 10.9.0.1${n}/24, mac: "02:15:06:00:00:0${n}" } ] }`;

function gwConfig(tenants: number[]): string {
  return [
    'underlay: { local: 10.0.0.1 }',
    'log: { level: info }',
    'tenants:',
    ...tenants.map(tenant),
    'trunks:',
    `  - { attach: eth1, pool: 100-199, tenants: [ ${tenants.map((n) => `t${n}`).join(', ')} ] }`,
    '',
  ].join('\n');
}

/** tenant -> VLAN ID of the trunk eth1, as `vtepd status --json` shows it; every one from the pool. */
async function vlansOf(host: string, socket: string): Promise<Record<string, number>> {
  const s = await vtepdJson<StatusResult>(lab, host, ['status', '--socket', socket]);
  const t = s.trunks?.find((x) => x.attach === 'eth1') as TrunkStatus;
  expect(t.pool).toEqual({ first: 100, last: 199 });
  for (const v of t.vlans) expect(v).toMatchObject({ port: `eth1.${v.vlan}`, pool: true });
  return Object.fromEntries(t.vlans.map((v) => [v.tenant, v.vlan]));
}

async function pings(from: string, to: string): Promise<number> {
  return parsePing((await lab.exec(from, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', to]).catch((e: Error) => ({ stdout: e.message }))).stdout).received;
}

describe('a trunk with a VLAN pool (state file)', () => {
  let gw: Daemonised;
  /** The daemon running now (its PID). */
  let pid = 0;
  const gwVlans = () => vlansOf('gw', gw.socket);

  beforeAll(async () => {
    await lab.addHost('gw', { ipv6: false });
    await lab.exec('gw', 'ip', ['addr', 'add', '10.0.0.1/32', 'dev', 'lo']);
    for (const n of [1, 2, 3, 4]) await lab.addHost(`vm${n}`, { ipv6: false });
    sw = await tor(lab, {
      servers: [100, 101, 102].map((vlan) => ({ host: `bm${vlan}`, vlan, address: `10.9.0.${vlan}/24` })),
      trunk: { gateway: 'gw', dev: 'eth1' },
    });
    gw = await startDaemon(lab, 'gw', gwConfig([1, 2, 3]), dir);
    pid = gw.child.pid!;
  }, 60_000);

  it('three tenants get 100, 101 and 102, shown in status; VLAN 101 on the wire is t2', async () => {
    expect(await gwVlans()).toEqual({ t1: 100, t2: 101, t3: 102 });
    const table = (await vtepd(lab, 'gw', ['status', '--socket', gw.socket])).stdout;
    for (const [vlan, t] of [
      [100, 't1'],
      [101, 't2'],
      [102, 't3'],
    ])
      expect(table).toMatch(new RegExp(`^eth1\\s+-\\s+${vlan}\\s+${t}\\s+pool 100-199\\s+up, MTU 1500$`, 'm'));
    expect(existsSync(join(dir, 'gw.vlans.json'))).toBe(true);
    for (const n of [1, 2, 3]) await untilPings(lab, `bm${99 + n}`, `10.9.0.1${n}`, ['-c', '1', '-W', '1']);
    expect(await pings('bm101', '10.9.0.11')).toBe(0); // t1's VM is not in VLAN 101
  });

  it('vtepd restart (takeover) keeps the IDs', async () => {
    const r = await vtepd(lab, 'gw', ['restart', '--socket', gw.socket, '--json']);
    expect(r.code, r.stderr).toBe(0);
    pid = (JSON.parse(r.stdout) as { newPid: number }).newPid;
    successors.push(pid);
    expect((await vtepdJson<StatusResult>(lab, 'gw', ['status', '--socket', gw.socket])).pid).toBe(pid);
    expect(await gwVlans()).toEqual({ t1: 100, t2: 101, t3: 102 });
    await untilPings(lab, 'bm101', '10.9.0.12', ['-c', '1', '-W', '1']);
  });

  it('a stop and a new vtepd run keep them', async () => {
    await lab.stop(gw.child);
    await stopPids([pid]);
    gw = await startDaemon(lab, 'gw', gwConfig([1, 2, 3]), dir);
    pid = gw.child.pid!;
    expect(await gwVlans()).toEqual({ t1: 100, t2: 101, t3: 102 });
    await untilPings(lab, 'bm101', '10.9.0.12', ['-c', '1', '-W', '1']);
  });

  it('a reload that deletes the middle tenant frees 101; one that adds a tenant gives it 101 (lowest free)', async () => {
    const reload = async (tenants: number[]) => {
      writeFileSync(gw.configPath, `control: { socket: ${gw.socket} }\n${gwConfig(tenants)}`);
      const r = await vtepd(lab, 'gw', ['reload', '--socket', gw.socket]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    expect(await reload([1, 3])).toContain('tenant t2: removed');
    expect(await gwVlans()).toEqual({ t1: 100, t3: 102 });
    const file = JSON.parse(readFileSync(join(dir, 'gw.vlans.json'), 'utf8')) as { trunks: Record<string, { vlans: Record<string, number> }> };
    expect(Object.values(file.trunks).map((t) => t.vlans)).toEqual([{ t1: 100, t3: 102 }]);
    expect(await pings('bm101', '10.9.0.12')).toBe(0);
    expect(await reload([1, 3, 4])).toContain('tenant t4: added');
    expect(await gwVlans()).toEqual({ t1: 100, t3: 102, t4: 101 });
    await untilPings(lab, 'bm101', '10.9.0.14', ['-c', '1', '-W', '1']);
    await untilPings(lab, 'bm100', '10.9.0.11', ['-c', '1', '-W', '1']);
    await untilPings(lab, 'bm102', '10.9.0.13', ['-c', '1', '-W', '1']);
  });
});

describe('a pool shared by two gateways in the etcd directory', () => {
  const HOSTS = ['10.0.1.1', '10.0.1.2'];
  const prefix = `/vtepd-test/${lab.prefix}`;
  /** Overlapping lists, in different orders: b and c on both. */
  const lists = [
    ['a', 'b', 'c'],
    ['c', 'd', 'b'],
  ];
  const daemons: Daemonised[] = [];
  const config = (i: number) =>
    [
      `underlay: { local: ${HOSTS[i]} }`,
      'log: { level: info }',
      `directory: { etcd: { endpoints: [ "http://10.0.1.9:2379" ], prefix: ${prefix} } }`,
      'tenants:',
      ...['a', 'b', 'c', 'd', 'e'].map((t, j) => `  - { name: ${t}, vni: ${6001 + j} }`),
      'trunks:',
      `  - { attach: eth1, pool: 100-199, tenants: [ ${lists[i]!.join(', ')} ] }`,
      '',
    ].join('\n');
  const both = () => Promise.all([0, 1].map((i) => vlansOf(`h${i + 1}`, daemons[i]!.socket)));

  /** No VLAN ID for two tenants, on either gateway or across them; returns ID -> tenant. */
  function distinct(...maps: Record<string, number>[]): Map<number, string> {
    const byId = new Map<number, string>();
    for (const [t, v] of maps.flatMap((m) => Object.entries(m))) {
      expect(byId.get(v) ?? t, `VLAN ${v}`).toBe(t);
      byId.set(v, t);
    }
    return byId;
  }

  beforeAll(async () => {
    etcd = await directoryLab(lab, HOSTS, '10.0.1.9');
    // Each gateway's trunk: eth1, a veth toward a host of its own (nothing needs to cross it here).
    for (const i of [1, 2]) {
      await lab.addHost(`wire${i}`, { ipv6: false });
      await lab.link(`h${i}`, 'eth1', null, `wire${i}`, 'eth0', null);
    }
    // Both at once: their claims race in etcd.
    daemons.push(...(await Promise.all([0, 1].map((i) => startDaemon(lab, `h${i + 1}`, config(i), dir)))));
  }, 60_000);

  it('never one ID for two tenants; a tenant on both has the same ID on both', async () => {
    const [one, two] = await both();
    expect(Object.keys(one!).sort()).toEqual(['a', 'b', 'c']);
    expect(Object.keys(two!).sort()).toEqual(['b', 'c', 'd']);
    for (const t of ['b', 'c']) expect(two![t], `tenant ${t}`).toBe(one![t]);
    expect([...distinct(one!, two!).keys()].sort()).toEqual([100, 101, 102, 103]);
    console.log(`etcd pool: h1 ${JSON.stringify(one)}, h2 ${JSON.stringify(two)}`);
  });

  it('a tenant one gateway drops keeps its ID while the other carries it: a new tenant gets the next free one', async () => {
    const [, before] = await both();
    lists[0] = ['a', 'c', 'e'];
    writeFileSync(daemons[0]!.configPath, `control: { socket: ${daemons[0]!.socket} }\n${config(0)}`);
    const r = await vtepd(lab, 'h1', ['reload', '--socket', daemons[0]!.socket]);
    expect(r.code, r.stderr).toBe(0);
    const [one, two] = await both();
    expect(Object.keys(one!).sort()).toEqual(['a', 'c', 'e']);
    expect(two).toEqual(before); // b keeps its ID on h2, which still carries it
    expect(distinct(one!, two!).size).toBe(5);
    expect(one!.e).toBe(104);
    console.log(`etcd pool after h1 dropped b and took e: h1 ${JSON.stringify(one)}, h2 ${JSON.stringify(two)}`);
  });
});
