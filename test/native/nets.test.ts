/**
 * Tenant networks in etcd (src/directory/nets.ts, `vtepd net …`) against a real etcd started
 * privately on 127.0.0.1 by lab/etcd.ts: 50 concurrent creates (in-process and through the
 * CLI) get 50 distinct VNIs inside the pool; a taken or outside VNI, a duplicate name, an
 * exhausted or missing pool are refused with their codes; delete frees a VNI for reuse; list;
 * the same through the daemon's API (net.create, net.delete, net.list, net.pool) and `--socket`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdMember, startEtcd } from '../../lab/etcd.js';
import { EtcdClient } from '../../src/directory/etcd.js';
import { NetError, Nets, type Network, nthFree } from '../../src/directory/nets.js';
import { type ApiHost, apiHandlers } from '../../src/daemon/api.js';
import { ControlServer, RemoteError, request } from '../../src/daemon/control.js';

let etcd: EtcdMember;
let client: EtcdClient;
const base = `/t-nets-${process.pid}`;
const CLI = join(import.meta.dirname, '../../bin/vtepd.js');

function cli(args: string[], via: string[] = ['--etcd', etcd.url]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'net', ...args, ...via], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function refused(p: Promise<unknown>): Promise<NetError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof NetError) return e;
    throw e;
  }
  throw new Error('expected a NetError');
}

beforeAll(async () => {
  etcd = await startEtcd();
  client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 5000 });
}, 60_000);

afterAll(async () => {
  client?.close();
  await etcd?.destroy();
});

describe('nthFree', () => {
  it('skips claimed VNIs', () => {
    expect(nthFree({ first: 10, last: 20 }, [], 0)).toBe(10);
    expect(nthFree({ first: 10, last: 20 }, [10, 11, 13], 0)).toBe(12);
    expect(nthFree({ first: 10, last: 20 }, [10, 11, 13], 1)).toBe(14);
  });
});

describe('vtepd net: networks and VNIs in etcd', () => {
  it('refuses a create without a pool, and bad names', async () => {
    const nets = new Nets(client, { prefix: `${base}/nopool` });
    expect((await refused(nets.create({ tenant: 'acme', name: 'web' }))).code).toBe('pool-not-set');
    expect((await refused(nets.create({ tenant: 'a/b', name: 'web' }))).code).toBe('invalid');
    expect((await refused(nets.create({ tenant: 'acme', name: 'x'.repeat(33) }))).code).toBe('invalid');
    expect((await refused(nets.setPool(20, 10))).code).toBe('invalid');
    expect((await refused(nets.setPool(0, 10))).code).toBe('invalid');
  });

  it('50 concurrent creates (44 in-process, 6 by the CLI) get 50 distinct VNIs inside the pool; list shows them', async () => {
    const prefix = `${base}/par`;
    const set = await cli(['pool', '--prefix', prefix, '--first', '10000', '--last', '19999']);
    expect(set.stdout).toBe('pool 10000..19999 (10000 VNIs)\n');
    // Several clients, as several hosts would be.
    const clients = Array.from({ length: 4 }, () => new EtcdClient({ endpoints: [etcd.url], timeoutMs: 5000 }));
    try {
      const inproc = Array.from({ length: 44 }, (_, i) => new Nets(clients[i % 4], { prefix }).create({ tenant: `t${i % 5}`, name: `n${i}` }));
      const byCli = Array.from({ length: 6 }, (_, i) => cli(['create', '--prefix', prefix, '--tenant', 'cli', '--name', `c${i}`, '--json']));
      const a = await Promise.all(inproc);
      const b = (await Promise.all(byCli)).map((r) => {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        return JSON.parse(r.stdout) as Network;
      });
      const all = [...a, ...b];
      const vnis = all.map((n) => n.vni);
      expect(new Set(vnis).size).toBe(50);
      for (const v of vnis) expect(v >= 10000 && v <= 19999).toBe(true);
      const listed = await new Nets(client, { prefix }).list();
      expect(listed).toHaveLength(50);
      expect(new Set(listed.map((n) => n.vni))).toEqual(new Set(vnis));
      expect(await new Nets(client, { prefix }).list('cli')).toHaveLength(6);
      // Every claim names its network.
      const claims = await client.range(`${prefix}/vnis/`, { prefix: true });
      expect(claims.kvs).toHaveLength(50);
      const text = await cli(['list', '--prefix', prefix, '--tenant', 'cli']);
      expect(text.stdout.split('\n')[0]).toMatch(/^TENANT\s+NETWORK\s+VNI$/);
      expect(text.stdout.trim().split('\n')).toHaveLength(7);
    } finally {
      for (const c of clients) c.close();
    }
  }, 30_000);

  it('a taken VNI, a VNI outside the pool and a duplicate name are refused; delete frees the VNI for reuse', async () => {
    const prefix = `${base}/take`;
    const nets = new Nets(client, { prefix });
    await nets.setPool(100, 199);
    const web = await nets.create({ tenant: 'acme', name: 'web', vni: 150 });
    expect(web).toEqual({ tenant: 'acme', name: 'web', vni: 150 });
    const taken = await refused(nets.create({ tenant: 'acme', name: 'db', vni: 150 }));
    expect(taken.code).toBe('vni-taken');
    expect(taken.message).toBe('vni 150 is taken by acme/web');
    expect((await refused(nets.create({ tenant: 'acme', name: 'db', vni: 99 }))).code).toBe('vni-outside-pool');
    expect((await refused(nets.create({ tenant: 'acme', name: 'web' }))).code).toBe('exists');
    // the CLI says the same, exit 1
    const r = await cli(['create', '--prefix', prefix, '--tenant', 'acme', '--name', 'db', '--vni', '150']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('vtepd: vni 150 is taken by acme/web\n');
    const rj = await cli(['create', '--prefix', prefix, '--tenant', 'acme', '--name', 'db', '--vni', '150', '--json']);
    expect(JSON.parse(rj.stdout).error.code).toBe('vni-taken');

    const del = await cli(['delete', '--prefix', prefix, '--tenant', 'acme', '--name', 'web']);
    expect(del).toMatchObject({ code: 0, stdout: 'acme/web: deleted, vni 150 freed\n' });
    expect(await client.get(`${prefix}/vnis/150`)).toBeUndefined();
    expect((await refused(nets.delete({ tenant: 'acme', name: 'web' }))).code).toBe('not-found');
    expect(await nets.create({ tenant: 'acme', name: 'db', vni: 150 })).toEqual({ tenant: 'acme', name: 'db', vni: 150 });
    expect(await nets.list('acme')).toEqual([{ tenant: 'acme', name: 'db', vni: 150 }]);
  });

  it('an exhausted pool is refused; a freed VNI is handed out again', async () => {
    const prefix = `${base}/small`;
    const nets = new Nets(client, { prefix });
    await nets.setPool(7, 9);
    const got = await Promise.all(['a', 'b', 'c'].map((name) => nets.create({ tenant: 'x', name })));
    expect(got.map((n) => n.vni).sort()).toEqual([7, 8, 9]);
    const ex = await refused(nets.create({ tenant: 'x', name: 'd' }));
    expect(ex.code).toBe('pool-exhausted');
    expect(ex.message).toBe('the VNI pool 7..9 is exhausted (3 networks)');
    const b = got.find((n) => n.name === 'b')!;
    await nets.delete({ tenant: 'x', name: 'b' });
    expect(await nets.create({ tenant: 'x', name: 'd' })).toEqual({ tenant: 'x', name: 'd', vni: b.vni });
    const r = await cli(['create', '--prefix', prefix, '--tenant', 'x', '--name', 'e']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('vtepd: the VNI pool 7..9 is exhausted (3 networks)\n');
  });
});

describe('the daemon API: net.create, net.delete, net.list, net.pool', () => {
  it("answers on the daemon's control socket with its directory's etcd and prefix, refusals keep their code", async () => {
    const prefix = `${base}/api`;
    const dir = mkdtempSync(join(tmpdir(), 'vtepd-nets-api-'));
    const socket = join(dir, 'vtepd.sock');
    // Only what the net.* handlers read of the daemon: its running config's directory.
    const host = { daemon: { running: { directory: { etcd: { endpoints: [etcd.url], prefix, leaseTtl: 10 } } } } } as unknown as ApiHost;
    const bare = { daemon: { running: { directory: null } } } as unknown as ApiHost;
    const srv = new ControlServer(apiHandlers(host));
    const srv2 = new ControlServer(apiHandlers(bare));
    await srv.listen(socket);
    await srv2.listen(join(dir, 'bare.sock'));
    try {
      const via = ['--socket', socket];
      expect(await request(socket, 'net.pool', { first: 500, last: 501 })).toEqual({ first: 500, last: 501 });
      expect(await request(socket, 'net.create', { tenant: 'acme', name: 'web' })).toEqual({ tenant: 'acme', name: 'web', vni: 500 });
      const c = await cli(['create', '--tenant', 'acme', '--name', 'db', '--json'], via);
      expect(c.code).toBe(0);
      expect(JSON.parse(c.stdout)).toEqual({ tenant: 'acme', name: 'db', vni: 501 });
      const ex = await request(socket, 'net.create', { tenant: 'acme', name: 'api' }).catch((e: RemoteError) => e);
      expect(ex).toBeInstanceOf(RemoteError);
      expect((ex as RemoteError).code).toBe('pool-exhausted');
      const bad = await request(socket, 'net.create', { tenant: 'acme', name: 'api', vni: 0 }).catch((e: RemoteError) => e);
      expect((bad as RemoteError).message).toBe('vni: must be an integer 1..16777215, not 0');
      const taken = await cli(['create', '--tenant', 'acme', '--name', 'api', '--vni', '500', '--json'], via);
      expect(taken.code).toBe(1);
      expect(JSON.parse(taken.stdout).error).toEqual({ code: 'vni-taken', message: 'vni 500 is taken by acme/web' });
      expect((await cli(['list'], via)).stdout).toBe('TENANT  NETWORK  VNI\nacme    db       501\nacme    web      500\n');
      expect((await cli(['delete', '--tenant', 'acme', '--name', 'web'], via)).stdout).toBe('acme/web: deleted, vni 500 freed\n');
      expect(await request(socket, 'net.list', { tenant: 'acme' })).toEqual([{ tenant: 'acme', name: 'db', vni: 501 }]);
      // A daemon without a directory says so.
      const none = await cli(['list'], ['--socket', join(dir, 'bare.sock')]);
      expect(none).toMatchObject({ code: 1, stderr: 'vtepd: net: this daemon has no directory (directory: in its config)\n' });
    } finally {
      await srv.close();
      await srv2.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
