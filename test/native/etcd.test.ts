/**
 * The etcd v3 client (src/directory/etcd.ts) against a real etcd (Debian's etcd-server,
 * started privately by lab/etcd.ts on 127.0.0.1): KV and compare-and-swap, txn batching,
 * leases under a burst of leased puts, watch across a server restart, compaction of a
 * watcher's revision, and an unreachable etcd. No addon needed; it lives in the native
 * tier because that tier runs after scripts/test-deps.mjs installs etcd-server.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdMember, freePort, startEtcd } from '../../lab/etcd.js';
import { tcpProxy } from '../../lab/tcp-proxy.js';
import { until } from '../../lab/wait.js';
import { EtcdClient, EtcdCompacted, EtcdTimeout, EtcdUnavailable, type Op, type WatchEvent } from '../../src/directory/etcd.js';

let etcd: EtcdMember;
let client: EtcdClient;
const extra: EtcdClient[] = [];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ns = (t: string) => `/t-${process.pid}/${t}/`;

function newClient(timeoutMs = 5000, endpoints = [etcd.url], maxInFlight?: number): EtcdClient {
  const c = new EtcdClient({ endpoints, timeoutMs, maxInFlight });
  extra.push(c);
  return c;
}

beforeAll(async () => {
  etcd = await startEtcd({ args: ['--experimental-watch-progress-notify-interval', '1s'] });
  client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 5000 });
}, 60_000);

afterAll(async () => {
  client?.close();
  for (const c of extra) c.close();
  await etcd?.destroy();
});

describe('etcd client: KV', () => {
  it('puts, ranges a prefix (also at an old revision), deletes', async () => {
    const p = ns('kv');
    const r1 = await client.put(`${p}a`, 'one');
    await client.put(`${p}b`, 'two');
    await client.put(`${p}a`, 'uno');
    await client.put(`${p.slice(0, -1)}x`, 'outside the prefix');
    const now = await client.range(p, { prefix: true });
    expect(now.kvs.map((kv) => [kv.key, kv.value, kv.version])).toEqual([
      [`${p}a`, 'uno', 2],
      [`${p}b`, 'two', 1],
    ]);
    const old = await client.range(p, { prefix: true, revision: r1.revision });
    expect(old.kvs.map((kv) => [kv.key, kv.value])).toEqual([[`${p}a`, 'one']]);
    expect((await client.range(p, { prefix: true, countOnly: true })).count).toBe(2);
    expect(await client.delete(p, { prefix: true })).toMatchObject({ deleted: 2 });
    expect(await client.get(`${p}a`)).toBeUndefined();
  });

  it('two concurrent compare-and-swaps on one key: exactly one wins', async () => {
    const key = `${ns('cas')}k`;
    await client.put(key, 'seq-0');
    const kv = await client.get(key);
    const cas = (who: string) =>
      client.txn({
        compare: [{ key, target: 'modRevision', value: kv?.modRevision ?? 0 }],
        success: [{ type: 'put', key, value: who }],
        failure: [{ type: 'range', key }],
      });
    const [a, b] = await Promise.all([cas('a'), cas('b')]);
    expect([a.succeeded, b.succeeded].filter(Boolean)).toHaveLength(1);
    const winner = a.succeeded ? 'a' : 'b';
    const loser = a.succeeded ? b : a;
    expect(loser.responses[0]).toMatchObject({ type: 'range' });
    expect((await client.get(key))?.value).toBe(winner);
    // Create-only (version == 0) and value compares.
    const create = await client.txn({ compare: [{ key, target: 'version', value: 0 }], success: [{ type: 'put', key, value: 'x' }] });
    expect(create.succeeded).toBe(false);
    const byValue = await client.txn({ compare: [{ key, target: 'value', value: winner }], success: [{ type: 'delete', key }] });
    expect(byValue.succeeded).toBe(true);
    expect(byValue.responses[0]).toEqual({ type: 'delete', deleted: 1 });
  });

  it('batches 1,000 puts into txns of at most 128 ops, all present', async () => {
    const p = ns('batch');
    const ops: Op[] = Array.from({ length: 1000 }, (_, i) => ({ type: 'put', key: `${p}${String(i).padStart(4, '0')}`, value: `v${i}` }));
    const { txns, revisions } = await client.batch(ops);
    expect(txns).toBe(8);
    const r = await client.range(p, { prefix: true });
    expect(r.kvs).toHaveLength(1000);
    expect(r.kvs.every((kv, i) => kv.value === `v${i}`)).toBe(true);
    // Each txn is one revision: count the keys written at each.
    const perRevision = new Map<number, number>();
    for (const kv of r.kvs) perRevision.set(kv.modRevision, (perRevision.get(kv.modRevision) ?? 0) + 1);
    expect([...perRevision.keys()].sort((x, y) => x - y)).toEqual(revisions);
    expect(Math.max(...perRevision.values())).toBeLessThanOrEqual(128);
    // A key written twice in one batch splits the txn (etcd refuses duplicates in a txn).
    const dup = await client.batch([
      { type: 'put', key: `${p}dup`, value: '1' },
      { type: 'put', key: `${p}dup`, value: '2' },
    ]);
    expect(dup.txns).toBe(2);
    expect((await client.get(`${p}dup`))?.value).toBe('2');
  });
});

describe('etcd client: leases', () => {
  it('a key under a lease goes after its TTL once keepalive stops; with keepalive it survives 3 x TTL', async () => {
    const p = ns('lease');
    const ttl = 2;
    const dying = await client.grant(ttl);
    await client.put(`${p}dying`, 'x', { lease: dying.id });
    const kept = await client.lease(ttl);
    await client.put(`${p}kept`, 'y', { lease: kept.id });
    const t0 = Date.now();
    await until(`${p}dying to expire`, async () => (await client.get(`${p}dying`)) === undefined, Boolean, 10_000, 100);
    const expiredAfter = Date.now() - t0;
    const left = 3 * ttl * 1000 - (Date.now() - t0);
    if (left > 0) await sleep(left); // time is the subject here
    expect((await client.get(`${p}kept`))?.value).toBe('y');
    expect(kept.keepalives).toBeGreaterThanOrEqual(5);
    expect(kept.regrants).toBe(0);
    console.log(`lease: unkept key gone after ${expiredAfter} ms (TTL ${ttl} s); kept key alive after 3 x TTL with ${kept.keepalives} keepalives`);
    await kept.revoke();
    expect(await client.get(`${p}kept`)).toBeUndefined();
  });

  it('a lease etcd lost is re-granted and reported, so the caller can re-publish', async () => {
    const p = ns('regrant');
    const events: [string, string][] = [];
    const lease = await client.lease(2, {
      onRegranted: (newId, oldId) => {
        events.push([newId, oldId]);
        void client.put(`${p}k`, 'republished', { lease: newId });
      },
    });
    const first = lease.id;
    await client.put(`${p}k`, 'v', { lease: first });
    await client.revoke(first); // as if it had expired during an outage
    expect(await client.get(`${p}k`)).toBeUndefined();
    await until(
      'the lease to be re-granted',
      async () => events.length,
      (n) => n === 1,
      5000,
      50,
    );
    expect(events[0][1]).toBe(first);
    expect(lease.id).toBe(events[0][0]);
    const kv = await until('the key to be re-published', async () => client.get(`${p}k`), Boolean, 5000, 50);
    expect(kv?.lease).toBe(lease.id);
    lease.stop();
  });

  it('keeps its lease through a burst of 10,000 concurrent leased puts (TTL 3 s)', async () => {
    const p = ns('burst');
    const ttl = 3;
    const bc = newClient(); // the default maxInFlight (32)
    const errors: Error[] = [];
    const lost: string[] = [];
    const lease = await bc.lease(ttl, { onError: (e) => errors.push(e), onLost: (id) => lost.push(id) });
    const t0 = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 10_000 }, (_, i) => bc.put(`${p}${i}`, `v${i}`, { lease: lease.id })));
    const burstMs = Date.now() - t0;
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length, `${rejected.length} puts failed; lease: ${lease.regrants} re-grants, errors ${errors.map((e) => e.message).join('; ')}`).toBe(0);
    await sleep(2 * ttl * 1000); // time is the subject: the keys must outlive 2 x TTL
    const count = (await client.range(p, { prefix: true, countOnly: true })).count;
    console.log(
      `lease burst: 10,000 leased puts in ${burstMs} ms; ${count} keys present ${2 * ttl} s later; ${lease.keepalives} keepalives (longest gap ${lease.maxGapMs} ms, ${lease.failures} failed: ${errors.map((e) => e.message).join('; ')}), ${lease.regrants} re-grants`,
    );
    expect(count).toBe(10_000);
    expect(lease.regrants).toBe(0);
    expect(lost).toEqual([]);
    await lease.revoke();
    expect((await client.range(p, { prefix: true, countOnly: true })).count).toBe(0);
  }, 120_000); // about 25 s here; more on a busy machine
});

describe('etcd client: watch', () => {
  it('sees puts and deletes in order from a revision, and resumes after a server restart without missing any', async () => {
    const p = ns('watch');
    const wc = newClient(2000);
    const start = (await wc.put(`${p}0`, 'first')).revision;
    await wc.put(`${p}1`, 'x');
    await wc.delete(`${p}0`);
    const seen: WatchEvent[] = [];
    const errors: Error[] = [];
    const states: string[] = [];
    let compacted = 0;
    const w = wc.watch(
      p,
      { prefix: true, startRevision: start, progressNotify: true },
      {
        onEvents: (evs) => seen.push(...evs),
        onCompacted: () => compacted++,
        onState: (s) => states.push(s),
        onError: (e) => errors.push(e),
      },
    );
    await until(
      'the first three events',
      async () => seen.length,
      (n) => n >= 3,
      10_000,
      20,
    );
    expect(seen.map((e) => [e.type, e.kv.key])).toEqual([
      ['put', `${p}0`],
      ['put', `${p}1`],
      ['delete', `${p}0`],
    ]);

    // Outage: stop etcd for a few seconds; writes fail by name meanwhile; then restart.
    await etcd.stop();
    await until('the watch to notice', async () => states.includes('down'), Boolean, 10_000, 20);
    await expect(wc.put(`${p}x`, 'during')).rejects.toBeInstanceOf(EtcdUnavailable);
    await sleep(3000); // the outage is the subject
    await etcd.start();
    // Write at once, before the watch is back (its backoff is at least 100 ms).
    for (let i = 0; i < 50; i++) await wc.put(`${p}after${i}`, String(i));
    await wc.delete(`${p}after0`);
    const now = await wc.range(p, { prefix: true });
    await until(
      'the watch to catch up',
      async () => w.nextRevision,
      (r) => r > now.revision,
      15_000,
      50,
    );

    // Replaying the events gives what a range reads; revisions strictly increase.
    const state = new Map<string, string>();
    let last = 0;
    for (const e of seen) {
      expect(e.kv.modRevision).toBeGreaterThan(last - (e.kv.modRevision === last ? 1 : 0));
      last = e.kv.modRevision;
      if (e.type === 'put') state.set(e.kv.key, e.kv.value);
      else state.delete(e.kv.key);
    }
    expect([...state.entries()].sort()).toEqual(now.kvs.map((kv) => [kv.key, kv.value]).sort());
    expect(seen.filter((e) => e.kv.key.includes('after'))).toHaveLength(51);
    expect(compacted).toBe(0);
    expect(errors).toEqual([]);
    expect(w.reconnects).toBeGreaterThanOrEqual(1);
    console.log(`watch: ${seen.length} events, ${w.reconnects} reconnects across a 3 s outage, none missed`);
    w.close();
  }, 60_000);

  it('reports progress', async () => {
    const p = ns('progress');
    const revs: number[] = [];
    const w = client.watch(p, { prefix: true, progressNotify: true }, { onEvents: () => {}, onCompacted: () => {}, onProgress: (r) => revs.push(r) });
    await until(
      'a progress notification',
      async () => revs.length,
      (n) => n >= 1,
      10_000,
      50,
    );
    expect(w.nextRevision).toBeGreaterThan(revs[0]);
    w.close();
  });

  it("a watch from a compacted revision says 'compacted' (no exception, no deletes); a re-read and resume work", async () => {
    const p = ns('compact');
    const from = (await client.put(`${p}a`, '1')).revision;
    await client.put(`${p}b`, '2');
    await client.put(`${p}a`, '3');
    const head = (await client.put(`${p}c`, '4')).revision;
    await client.compact(head);
    await expect(client.range(p, { prefix: true, revision: from })).rejects.toBeInstanceOf(EtcdCompacted);

    const seen: WatchEvent[] = [];
    const errors: Error[] = [];
    const compactions: number[] = [];
    const w = client.watch(
      p,
      { prefix: true, startRevision: from },
      { onEvents: (e) => seen.push(...e), onCompacted: (r) => compactions.push(r), onError: (e) => errors.push(e) },
    );
    await until(
      "the watcher's compacted signal",
      async () => compactions.length,
      (n) => n === 1,
      10_000,
      20,
    );
    expect(compactions[0]).toBe(head);
    expect(w.compactedAt).toBe(head);
    expect(seen).toEqual([]);
    expect(errors).toEqual([]);

    // The caller re-reads, diffs (here: nothing to diff), and resumes after the read.
    const reread = await client.range(p, { prefix: true });
    expect(reread.kvs.map((kv) => [kv.key, kv.value])).toEqual([
      [`${p}a`, '3'],
      [`${p}b`, '2'],
      [`${p}c`, '4'],
    ]);
    w.resume(reread.revision + 1);
    await client.delete(`${p}b`);
    await until(
      'the event after resume',
      async () => seen.length,
      (n) => n >= 1,
      10_000,
      20,
    );
    expect(seen.map((e) => [e.type, e.kv.key])).toEqual([['delete', `${p}b`]]);
    expect(compactions).toHaveLength(1);
    w.close();
  });

  it("a watcher that lags behind a compaction (its stream stalled) says 'compacted' when it reconnects; no deletes", async () => {
    const p = ns('lag');
    const proxy = await tcpProxy(etcd.clientPort);
    try {
      const wc = newClient(2000, [proxy.url]);
      const seen: WatchEvent[] = [];
      const errors: Error[] = [];
      const compactions: number[] = [];
      const states: string[] = [];
      const w = wc.watch(
        p,
        { prefix: true, progressNotify: true, idleTimeoutMs: 2500 },
        {
          onEvents: (e) => seen.push(...e),
          onCompacted: (r) => compactions.push(r),
          onState: (st) => states.push(st),
          onError: (e) => errors.push(e),
        },
      );
      await until('the watch to be up', async () => states.includes('up'), Boolean, 10_000, 20);
      await client.put(`${p}a`, '1');
      await until(
        'the first event',
        async () => seen.length,
        (n) => n === 1,
        10_000,
        20,
      );
      proxy.stall(true); // the watcher hears nothing from now on
      await client.delete(`${p}a`);
      await client.put(`${p}b`, '2');
      const head = (await client.put(`${p}c`, '3')).revision;
      await client.compact(head);
      await until('the watcher to notice the stall', async () => states.includes('down'), Boolean, 15_000, 50);
      proxy.stall(false);
      // The idle timeout (progress is every 1 s) notices the stall; the reconnect from the
      // lagging revision finds it compacted.
      await until(
        "the lagging watcher's compacted signal",
        async () => compactions.length,
        (n) => n === 1,
        15_000,
        50,
      );
      expect(compactions[0]).toBe(head);
      expect(states).toContain('down');
      expect(seen.map((e) => [e.type, e.kv.key])).toEqual([['put', `${p}a`]]); // no deletes reported for the gap
      expect(errors).toEqual([]);
      const reread = await wc.range(p, { prefix: true });
      expect(reread.kvs.map((kv) => kv.key)).toEqual([`${p}b`, `${p}c`]);
      w.resume(reread.revision + 1);
      await client.put(`${p}d`, '4');
      await until(
        'the event after resume',
        async () => seen.length,
        (n) => n === 2,
        10_000,
        20,
      );
      expect(seen[1].kv.key).toBe(`${p}d`);
      w.close();
    } finally {
      await proxy.close();
    }
  }, 30_000);
});

describe('etcd client: unreachable', () => {
  let blackhole: Server | undefined;
  const held: Socket[] = [];
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => (blackhole ? blackhole.close(() => r()) : r()));
  });

  it('fails with a named error within its timeout, and recovers when etcd returns', async () => {
    // Nothing listening: refused at once.
    const nobody = newClient(1000, [`http://127.0.0.1:${await freePort()}`]);
    await expect(nobody.get('k')).rejects.toBeInstanceOf(EtcdUnavailable);
    // Accepts and never answers: EtcdTimeout after the deadline.
    blackhole = createServer((s) => held.push(s));
    await new Promise<void>((r) => blackhole?.listen(0, '127.0.0.1', r));
    const port = (blackhole.address() as { port: number }).port;
    const silent = newClient(800, [`http://127.0.0.1:${port}`]);
    const t0 = Date.now();
    const err = await silent.put('k', 'v').catch((e: Error) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(EtcdTimeout);
    expect((err as Error).name).toBe('EtcdTimeout');
    expect(took).toBeLessThan(800 + 2000);
    // A second endpoint that works is used after a refused one.
    const failover = newClient(1000, [`http://127.0.0.1:${await freePort()}`, etcd.url]);
    expect((await failover.put(`${ns('fo')}k`, 'v')).revision).toBeGreaterThan(0);

    // The real etcd goes away and comes back: the same client recovers.
    const c = newClient(1000);
    await c.put(`${ns('down')}k`, 'before');
    await etcd.stop();
    const down = await c.get(`${ns('down')}k`).catch((e: Error) => e);
    expect(down).toBeInstanceOf(EtcdUnavailable);
    await etcd.start();
    const kv = await until('the client to read again', async () => c.get(`${ns('down')}k`), Boolean, 15_000, 100);
    expect(kv?.value).toBe('before');
    console.log(`unreachable: refused -> EtcdUnavailable; silent server -> EtcdTimeout after ${took} ms (timeout 800 ms)`);
  }, 60_000);
});
