/**
 * `vtepd port add|del` on running daemons (#13, self-service 2), against a real etcd:
 *
 *   [et] etcd 10.0.0.9 ─┐
 *   [h1] 10.0.0.1 ──────┼── br0 in [sw]
 *   [h2] 10.0.0.2 ──────┘
 *
 * Both configs name only the directory (no tenant, no flood list). `net create acme/web`
 * through h1's daemon, then `port add` on each running daemon with a TAP in an endpoint
 * namespace (web1, web2): the TAP is there with its address and MAC, status marks the port,
 * etcd has each host under members/<vni>/, and web1 and web2 ping each other (flooding from
 * membership only). Refusals through the CLI with their --json codes. The port survives a
 * reload, a takeover (`vtepd restart`) and a plain stop and start (the state file); `port del`
 * removes the TAP and the host leaves the VNI (its etcd key goes). Waits poll with deadlines.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import type { EtcdMember } from '../../lab/etcd.js';
import { directoryLab } from '../../lab/directory-lab.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import type { StatusResult } from '../../src/cli/table.js';
import { stopPids, vtepd, vtepdJson } from '../support/ops.js';

const HOSTS = ['10.0.0.1', '10.0.0.2'];
const ETCD = '10.0.0.9';
const MACS = ['02:00:00:00:05:01', '02:00:00:00:05:02'];

interface Added {
  net: string;
  vni: number;
  tenant: string;
  created: boolean;
  tap: string;
  netns: string;
  address: string;
  mac: string;
  mtu: number;
  ifindex: number;
}

describe('vtepd port add / del on running daemons, with a directory in etcd', () => {
  const lab = new Lab('pa');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-ports-'));
  let etcd: EtcdMember;
  const daemons: Daemonised[] = [];
  const successors: number[] = [];
  const prefix = `/vtepd-test/${lab.prefix}`;
  let vni = 0;

  const config = (i: number) =>
    [
      `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
      'log: { level: info }',
      `directory: { etcd: { endpoints: [ "http://${ETCD}:2379" ], prefix: ${prefix}, leaseTtl: 3 } }`,
      'tenants: []',
      '',
    ].join('\n');
  const sock = (i: number) => daemons[i]!.socket;
  const cli = (i: number, args: string[]) => vtepd(lab, `h${i + 1}`, [...args, '--socket', sock(i)]);
  const json = <T>(i: number, args: string[]) => vtepdJson<T>(lab, `h${i + 1}`, [...args, '--socket', sock(i)]);
  const status = (i: number) => json<StatusResult>(i, ['status']);
  /** The hosts etcd lists as members of the VNI (keys under members/<vni>/). */
  const members = async () => {
    const r = await lab.exec('et', 'etcdctl', ['--endpoints', `http://${ETCD}:2379`, 'get', '--prefix', '--keys-only', `${prefix}/members/${vni}/`]);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((k) => k.slice(`${prefix}/members/${vni}/`.length))
      .sort();
  };
  const untilMembers = (want: string[]) =>
    until(`members of VNI ${vni} in etcd to be [${want.join(', ')}]`, members, (m) => JSON.stringify(m) === JSON.stringify(want), 30_000);
  /** The TAP web0 in endpoint namespace web<n>: its ifindex, MAC and IPv4 addresses, or null. */
  const tap = async (n: number) => {
    const r = await lab.exec(`web${n}`, 'ip', ['-j', 'addr', 'show']);
    const links = JSON.parse(r.stdout || '[]') as {
      ifindex: number;
      ifname: string;
      address: string;
      addr_info: { family: string; local: string; prefixlen: number }[];
    }[];
    const l = links.find((x) => x.ifname === 'web0');
    return l
      ? {
          ifindex: l.ifindex,
          mac: l.address,
          addresses: l.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
        }
      : null;
  };
  const add = (i: number, extra: string[] = []) =>
    json<Added>(i, [
      'port',
      'add',
      '--net',
      'acme/web',
      '--tap',
      'web0',
      '--netns',
      lab.ns(`web${i + 1}`),
      '--address',
      `10.2.0.${i + 1}/24`,
      '--mac',
      MACS[i]!,
      ...extra,
    ]);

  beforeAll(async () => {
    etcd = await directoryLab(lab, HOSTS, ETCD);
    for (let i = 1; i <= 2; i++) await lab.addHost(`web${i}`, { ipv6: false });
    for (let i = 0; i < 2; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, config(i), dir));
  }, 120_000);

  afterAll(async () => {
    await stopPids(successors);
    await lab.cleanup();
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('net create, then port add on each running daemon: the TAP with its address, status, membership in etcd, ping', async () => {
    expect(await json(0, ['net', 'pool', '--first', '5000', '--last', '5099'])).toEqual({ first: 5000, last: 5099 });
    const net = await json<{ vni: number }>(0, ['net', 'create', '--tenant', 'acme', '--name', 'web']);
    vni = net.vni;
    expect(vni).toBe(5000);

    const a = await add(0);
    expect(a).toMatchObject({ net: 'acme/web', vni, tenant: 'acme/web', created: true, tap: 'web0', address: '10.2.0.1/24', mac: MACS[0], mtu: 1450 });
    expect(await tap(1)).toEqual({ ifindex: a.ifindex, mac: MACS[0], addresses: ['10.2.0.1/24'] });
    const s = await status(0);
    expect(s.tenants).toEqual([expect.objectContaining({ name: 'acme/web', vni, ports: ['web0'] })]);
    expect(s.ports).toEqual([expect.objectContaining({ tap: 'web0', tenant: 'acme/web', net: 'acme/web', netns: lab.ns('web1') })]);
    expect((await cli(0, ['status'])).stdout).toMatch(/web0\s+acme\/web\s+.*port add acme\/web/);
    await untilMembers([HOSTS[0]!]);

    // h2: the text answer.
    const t = await cli(1, ['port', 'add', '--net', 'acme/web', '--tap', 'web0', '--netns', lab.ns('web2'), '--address', '10.2.0.2/24', '--mac', MACS[1]!]);
    expect(t).toMatchObject({ code: 0, stdout: `port web0 in acme/web (VNI ${vni})\n` });
    await untilMembers(HOSTS);
    expect((await json<{ tap: string; net: string; tenant: string }[]>(1, ['port', 'list'])).map((p) => [p.tap, p.net, p.tenant])).toEqual([
      ['web0', 'acme/web', 'acme/web'],
    ]);
    const t0 = Date.now();
    await untilPings(lab, 'web1', '10.2.0.2', ['-c', '1', '-W', '1']);
    await untilPings(lab, 'web2', '10.2.0.1', ['-c', '1', '-W', '1']);
    console.log(`port add: web1 and web2 ping each other ${Date.now() - t0} ms after the second port add (flood lists from membership)`);
    expect((await status(0)).tenants[0]!.flood).toEqual([HOSTS[1]]);
  }, 90_000);

  it('refuses, with a stable code in --json and a message naming the field', async () => {
    const refused = async (args: string[]) => {
      const r = await cli(0, ['port', ...args, '--json']);
      expect(r.code).toBe(1);
      return JSON.parse(r.stdout).error as { code: string; message: string };
    };
    const base = ['add', '--net', 'acme/web', '--tap', 'web1'];
    expect(await refused(['add', '--net', 'acme/nope', '--tap', 'web1'])).toEqual({
      code: 'not-found',
      message: 'net: no network acme/nope in the directory (vtepd net create)',
    });
    expect(await refused(['add', '--net', 'acme/web', '--tap', 'web0'])).toEqual({ code: 'exists', message: 'tap: web0 is already a port (tenant acme/web)' });
    expect(await refused([...base, '--netns', `${lab.prefix}-nonexistent`])).toEqual({
      code: 'no-netns',
      message: `netns: no network namespace ${lab.prefix}-nonexistent (/run/netns/${lab.prefix}-nonexistent)`,
    });
    expect(await refused([...base, '--address', '10.2.0.9'])).toEqual({
      code: 'invalid',
      message: 'address: must be an IPv4 or IPv6 address with a prefix length, like 10.1.0.1/24',
    });
    expect(await refused([...base, '--mac', '01:00:5e:00:00:01'])).toEqual({
      code: 'invalid',
      message: 'mac: must be a unicast MAC like 02:00:00:00:01:01; 01:00:5e:00:00:01 is multicast',
    });
    expect(await refused([...base, '--tap', 'way-too-long-name0'])).toMatchObject({
      code: 'invalid',
      message: expect.stringMatching(/^tap: must be a Linux interface name/),
    });
    expect(await refused([...base, '--mtu', 'big'])).toEqual({ code: 'invalid', message: 'mtu: must be an integer 68..65535, not big' });
    expect(await refused([...base, '--mtu', '20'])).toEqual({ code: 'invalid', message: 'mtu: must be an integer 68..65535' });
    expect(await refused(['del', '--tap', 'web9'])).toEqual({ code: 'not-found', message: 'tap: no port web9 was attached by port add' });
    expect(await refused(['del', '--tap', 'web0', '--net', 'acme/db'])).toEqual({ code: 'invalid', message: 'net: port web0 is in acme/web, not acme/db' });
    // Text: the message on stderr, exit 1; nothing was attached.
    const r = await cli(0, ['port', 'add', '--net', 'acme/web', '--tap', 'web1', '--mtu', '15x']);
    expect(r).toMatchObject({ code: 1, stderr: 'vtepd: mtu: must be an integer 68..65535, not 15x\n' });
    expect((await status(0)).ports.map((p) => p.tap)).toEqual(['web0']);
  }, 60_000);

  it('a reload from the file (which has no tenant) keeps the port: same TAP, still a member, still pings', async () => {
    const before = await tap(1);
    const r = await json<{ changes: string[] }>(0, ['reload']);
    expect(r.changes).toEqual([]);
    expect(await tap(1)).toEqual(before);
    expect((await status(0)).ports.map((p) => [p.tap, p.net])).toEqual([['web0', 'acme/web']]);
    expect(await members()).toEqual(HOSTS);
    await untilPings(lab, 'web1', '10.2.0.2', ['-c', '1', '-W', '1']);
  }, 60_000);

  it('a takeover (vtepd restart) keeps the port: the successor adopts the TAP and keeps it across its reload', async () => {
    const before = await tap(1);
    const r = await json<{ oldPid: number; newPid: number }>(0, ['restart']);
    successors.push(r.newPid);
    const s = await until(
      'the successor to answer',
      () => status(0).catch(() => null),
      (x) => x?.pid === r.newPid,
      30_000,
    );
    expect(s!.ports.map((p) => [p.tap, p.net])).toEqual([['web0', 'acme/web']]);
    expect(await tap(1)).toEqual(before); // the same TAP, never deleted
    expect((await json<{ tap: string }[]>(0, ['port', 'list'])).map((p) => p.tap)).toEqual(['web0']);
    // The successor's own reload keeps it too.
    expect((await json<{ changes: string[] }>(0, ['reload'])).changes).toEqual([]);
    await untilMembers(HOSTS);
    await untilPings(lab, 'web1', '10.2.0.2', ['-c', '1', '-W', '1']);
  }, 90_000);

  it('a plain stop and start keeps the port (the state file next to the control socket): the TAP is made again', async () => {
    await lab.stop(daemons[1]!.child, 'SIGTERM');
    await until(
      'h2 TAP gone',
      () => tap(2),
      (x) => x === null,
      10_000,
    );
    await untilMembers([HOSTS[0]!]); // a stopped daemon withdraws its records
    daemons[1] = await startDaemon(lab, 'h2', config(1), dir);
    const s = await status(1);
    expect(s.ports).toEqual([expect.objectContaining({ tap: 'web0', net: 'acme/web', netns: lab.ns('web2') })]);
    expect(await tap(2)).toMatchObject({ mac: MACS[1], addresses: ['10.2.0.2/24'] });
    await untilMembers(HOSTS);
    await untilPings(lab, 'web2', '10.2.0.1', ['-c', '1', '-W', '1']);
  }, 90_000);

  it('port del removes the TAP and the tenant made for it; the host leaves the VNI (its etcd key goes)', async () => {
    const r = await json<{ tap: string; tenantRemoved: boolean }>(0, ['port', 'del', '--tap', 'web0', '--net', 'acme/web']);
    expect(r).toMatchObject({ tap: 'web0', tenantRemoved: true });
    await untilMembers([HOSTS[1]!]);
    expect(await tap(1)).toBeNull();
    const s = await status(0);
    expect(s.ports).toEqual([]);
    expect(s.tenants).toEqual([]);
    expect((await cli(0, ['port', 'list'])).stdout).toBe('no ports attached by port add\n');
    const t = await cli(1, ['port', 'del', '--tap', 'web0']);
    expect(t).toMatchObject({ code: 0, stdout: `port web0 removed from acme/web (VNI ${vni}), tenant acme/web removed\n` });
    await untilMembers([]);
    expect(await tap(2)).toBeNull();
  }, 60_000);
});
