/**
 * VLAN pools in the etcd directory (src/ports/vlan-pool.ts, EtcdVlanPoolStore) against a
 * real etcd (Debian's etcd-server, started privately by lab/etcd.ts on 127.0.0.1): two
 * gateways on one pool assigning at once never give one ID to two tenants; a tenant carried
 * by both keeps its ID when one drops it, and its ID is free again (and reused) once the
 * last one does; a restart keeps the IDs; etcd stopped or silent gives a named error within
 * the client's deadline. No addon; in the native tier because that tier installs etcd-server.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdMember, freePort, startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/wait.js';
import { EtcdClient } from '../../src/directory/etcd.js';
import { EtcdVlanPoolStore, type PoolAssignment, type PoolRequest, type VlanPoolError, type VlanRange } from '../../src/ports/vlan-pool.js';

let etcd: EtcdMember;
let raw: EtcdClient;
const stores: EtcdVlanPoolStore[] = [];
let seq = 0;

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new EtcdClient({ endpoints: [etcd.url] });
}, 60_000);

afterAll(async () => {
  for (const s of stores) s.close();
  raw?.close();
  await etcd?.destroy();
});

/** A fresh prefix per test, so the tests share one etcd and nothing else. */
const fresh = () => `/t-${process.pid}/vlanpool-${++seq}`;
function gateway(prefix: string, host: string, endpoints = [etcd.url], timeoutMs = 5000): EtcdVlanPoolStore {
  const s = new EtcdVlanPoolStore({ endpoints, prefix, host, timeoutMs });
  stores.push(s);
  return s;
}
const POOL: VlanRange = { first: 100, last: 199 };
const req = (attach: string, tenants: string[], pool = POOL, fixed: number[] = []): PoolRequest => ({
  trunk: { attach, netns: null },
  pool,
  fixed: new Set(fixed),
  tenants,
});
const names = (p: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${p}${String(from + i).padStart(2, '0')}`);
const obj = (m: Map<string, number>) => Object.fromEntries(m);

/** Every tenant's ID over several answers: a tenant has one ID everywhere, an ID one tenant. */
function checkUnique(answers: PoolAssignment[]): Map<string, number> {
  const byTenant = new Map<string, number>();
  const byId = new Map<number, string>();
  for (const a of answers)
    for (const [t, v] of a.vlans) {
      expect(byTenant.get(t) ?? v, `tenant ${t}'s ID`).toBe(v);
      expect(byId.get(v) ?? t, `VLAN ${v}'s tenant`).toBe(t);
      byTenant.set(t, v);
      byId.set(v, t);
    }
  return byTenant;
}

/** What etcd holds for a pool: ID -> tenant, and tenant -> { vlan, holders }. */
async function stored(prefix: string, pool = POOL) {
  const base = `${prefix}/vlanpools/${pool.first}-${pool.last}/`;
  const kvs = (await raw.range(base, { prefix: true })).kvs;
  const ids: Record<string, string> = {};
  const tenants: Record<string, { vlan: number; holders: string[] }> = {};
  for (const kv of kvs) {
    const rest = kv.key.slice(base.length);
    if (rest.startsWith('ids/')) ids[rest.slice(4)] = JSON.parse(kv.value);
    else tenants[decodeURIComponent(rest.slice(8))] = JSON.parse(kv.value);
  }
  return { ids, tenants };
}

describe('VLAN pool in etcd: two gateways on one pool', () => {
  it('assigning at once (two trunks each, overlapping tenants) never gives one ID to two tenants', async () => {
    for (let round = 0; round < 3; round++) {
      const prefix = fresh();
      const a1 = gateway(prefix, '10.0.0.1');
      const a2 = gateway(prefix, '10.0.0.1');
      const b1 = gateway(prefix, '10.0.0.2');
      const b2 = gateway(prefix, '10.0.0.2');
      const answers = await Promise.all([
        a1.assign(req('eth1', names('t', 0, 39))),
        b1.assign(req('eth1', names('t', 20, 59))),
        a2.assign(req('eth2', names('t', 50, 79))),
        b2.assign(req('eth2', [...names('t', 70, 89)].reverse())),
      ]);
      expect(answers.flatMap((a) => a.refused)).toEqual([]);
      const all = checkUnique(answers);
      expect(all.size).toBe(90);
      expect([...all.values()].sort((x, y) => x - y)).toEqual(Array.from({ length: 90 }, (_, i) => 100 + i));
      // etcd agrees: each ID claimed by the tenant that has it; holders are the trunks that carry it.
      const s = await stored(prefix);
      expect(Object.keys(s.ids)).toHaveLength(90);
      for (const [t, v] of all) {
        expect(s.ids[String(v)]).toBe(t);
        expect(s.tenants[t]?.vlan).toBe(v);
      }
      expect(s.tenants.t25?.holders).toEqual(['10.0.0.1 eth1', '10.0.0.2 eth1']);
      expect(s.tenants.t55?.holders).toEqual(['10.0.0.1 eth2', '10.0.0.2 eth1']);
      expect(s.tenants.t75?.holders).toEqual(['10.0.0.1 eth2', '10.0.0.2 eth2']);
      console.log(
        `round ${round}: 90 tenants over 4 trunks at once, ${[a1, a2, b1, b2].reduce((n, x) => n + x.conflicts, 0)} txns lost a race and were retried`,
      );
    }
  }, 60_000);

  it('a pool too small for both: every ID goes to one tenant, the rest are refused as pool-full', async () => {
    const prefix = fresh();
    const small = { first: 10, last: 29 };
    const answers = await Promise.all([
      gateway(prefix, '10.0.0.1').assign(req('eth1', names('a', 0, 14), small)),
      gateway(prefix, '10.0.0.2').assign(req('eth1', names('b', 0, 14), small)),
    ]);
    const all = checkUnique(answers);
    expect(all.size).toBe(20);
    const refused = answers.flatMap((a) => a.refused);
    expect(refused).toHaveLength(10);
    for (const e of refused) {
      expect(e.code).toBe('pool-full');
      expect(e.message).toBe(`no free VLAN ID for tenant ${e.tenant}: the pool 10-29 is full (20 IDs: all held by tenants)`);
    }
  }, 30_000);

  it('a tenant carried by both keeps its ID when one drops it; after the last, its ID is reused', async () => {
    const prefix = fresh();
    const a = gateway(prefix, '10.0.0.1');
    const b = gateway(prefix, '10.0.0.2');
    const first = await a.assign(req('eth1', ['blue', 'red', 'green']));
    expect(obj(first.vlans)).toEqual({ blue: 100, red: 101, green: 102 });
    // The other gateway is given red and green too (and one of its own): the same IDs.
    expect(obj((await b.assign(req('eth1', ['green', 'red', 'yellow']))).vlans)).toEqual({ green: 102, red: 101, yellow: 103 });
    // b drops red: a still carries it, so 101 stays red's, and b's next new tenant does not get it.
    expect(obj((await b.assign(req('eth1', ['green', 'yellow', 'purple']))).vlans)).toEqual({ green: 102, yellow: 103, purple: 104 });
    expect((await stored(prefix)).tenants.red).toEqual({ vlan: 101, holders: ['10.0.0.1 eth1'] });
    // a restarts (a new store, the same host and trunk): the same IDs.
    expect(obj((await gateway(prefix, '10.0.0.1').assign(req('eth1', ['blue', 'red', 'green']))).vlans)).toEqual({ blue: 100, red: 101, green: 102 });
    // a drops red, the last holder: 101 is free, and the next new tenant anywhere gets it.
    expect(obj((await a.assign(req('eth1', ['blue', 'green']))).vlans)).toEqual({ blue: 100, green: 102 });
    const s = await stored(prefix);
    expect(s.ids['101']).toBeUndefined();
    expect(s.tenants.red).toBeUndefined();
    expect(obj((await b.assign(req('eth1', ['green', 'yellow', 'purple', 'orange']))).vlans)).toEqual({ green: 102, yellow: 103, purple: 104, orange: 101 });
    // A trunk that goes away releases everything it carried.
    await b.assign(req('eth1', []));
    expect(await stored(prefix)).toEqual({
      ids: { '100': 'blue', '102': 'green' },
      tenants: { blue: { vlan: 100, holders: ['10.0.0.1 eth1'] }, green: { vlan: 102, holders: ['10.0.0.1 eth1'] } },
    });
  }, 30_000);

  it('releases and joins of the same tenants at once: each ends with one ID, held by the joiner', async () => {
    for (let round = 0; round < 3; round++) {
      const prefix = fresh();
      const a = gateway(prefix, '10.0.0.1');
      const b = gateway(prefix, '10.0.0.2');
      const moving = names('r', 0, 29);
      await a.assign(req('eth1', ['blue', ...moving]));
      const [kept, joined] = await Promise.all([a.assign(req('eth1', ['blue'])), b.assign(req('eth1', [...moving, 'green']))]);
      const s = await stored(prefix);
      checkUnique([kept, joined]);
      for (const t of [...moving, 'green']) {
        const v = joined.vlans.get(t)!;
        expect(s.tenants[t], t).toEqual({ vlan: v, holders: ['10.0.0.2 eth1'] });
        expect(s.ids[String(v)], t).toBe(t);
      }
      expect(Object.keys(s.ids)).toHaveLength(32);
    }
  }, 30_000);

  it('an ID the directory gives a tenant but the trunk has fixed to another is refused; fixed IDs are never claimed', async () => {
    const prefix = fresh();
    await gateway(prefix, '10.0.0.1').assign(req('eth1', ['blue']));
    const out = await gateway(prefix, '10.0.0.2').assign(req('eth1', ['blue', 'red'], POOL, [100, 101]));
    expect(obj(out.vlans)).toEqual({ red: 102 });
    expect(out.refused.map((e) => [e.code, e.tenant, e.message])).toEqual([
      ['vlan-fixed', 'blue', 'tenant blue holds VLAN 100 of the pool 100-199 in the directory, but the trunk has VLAN 100 fixed to another tenant'],
    ]);
  }, 30_000);
});

describe('VLAN pool in etcd: etcd away', () => {
  let blackhole: Server | undefined;
  const held: Socket[] = [];
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => (blackhole ? blackhole.close(() => r()) : r()));
  });

  it('etcd stopped: a named error; started again: the same IDs', async () => {
    const prefix = fresh();
    const a = gateway(prefix, '10.0.0.1', [etcd.url], 1000);
    expect(obj((await a.assign(req('eth1', ['blue', 'red']))).vlans)).toEqual({ blue: 100, red: 101 });
    await etcd.stop();
    try {
      const err = (await a.assign(req('eth1', ['blue', 'red', 'green'])).catch((e: Error) => e)) as VlanPoolError;
      expect(err.name).toBe('VlanPoolError');
      expect(err.code).toBe('unavailable');
      expect(err.message).toContain(`the VLAN pool 100-199 lives in the directory, and etcd (${etcd.url}) did not answer: `);
    } finally {
      await etcd.start();
    }
    const again = await until('the pool to answer again', async () => a.assign(req('eth1', ['blue', 'red', 'green'])).catch(() => null), Boolean, 15_000);
    expect(obj(again!.vlans)).toEqual({ blue: 100, red: 101, green: 102 });
  }, 60_000);

  it('nothing listening, or a server that never answers: rejected after the deadline, not hung', async () => {
    const nobody = gateway(fresh(), '10.0.0.1', [`http://127.0.0.1:${await freePort()}`], 1000);
    await expect(nobody.assign(req('eth1', ['blue']))).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('ECONNREFUSED') });
    blackhole = createServer((s) => held.push(s));
    await new Promise<void>((r) => blackhole?.listen(0, '127.0.0.1', r));
    const port = (blackhole.address() as { port: number }).port;
    const silent = gateway(fresh(), '10.0.0.1', [`http://127.0.0.1:${port}`], 800);
    const t0 = Date.now();
    const err = (await silent.assign(req('eth1', ['blue'])).catch((e: Error) => e)) as VlanPoolError;
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/^the VLAN pool 100-199 lives in the directory, and etcd \(http:\/\/127\.0\.0\.1:\d+\) did not answer: /);
    console.log(`silent etcd: VlanPoolError after ${Date.now() - t0} ms (deadline 800 ms): ${err.message}`);
  }, 30_000);
});
