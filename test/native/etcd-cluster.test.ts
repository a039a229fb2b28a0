/**
 * The three-member etcd cluster of docs/directory.md, on 127.0.0.1 (lab/etcd.ts's
 * startCluster: the walk-through's flags, free ports): `etcdctl endpoint health` reports all
 * three healthy, and an EtcdClient given all three endpoints (what vtepd's
 * `directory.etcd.endpoints` lists) keeps working when the member it talks to is killed
 * with SIGKILL: writes and reads go on, its watch resumes on another member without a gap,
 * and its lease stays alive past its TTL. No addon needed; it lives in the native tier
 * because that tier runs after scripts/test-deps.mjs installs etcd-server and etcd-client.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdMember, startCluster } from '../../lab/etcd.js';
import { until } from '../../lab/wait.js';
import { EtcdClient, type WatchEvent } from '../../src/directory/etcd.js';

let members: EtcdMember[] = [];
const clients: EtcdClient[] = [];
const p = `/t-${process.pid}/cluster/`;

function etcdctl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

beforeAll(async () => {
  members = await startCluster(3);
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(members.map((m) => m.destroy()));
});

describe('etcd: a three-member cluster', () => {
  it('etcdctl reports every endpoint healthy and three started members', async () => {
    const endpoints = members.map((m) => m.url).join(',');
    const health = await etcdctl(['--endpoints', endpoints, 'endpoint', 'health']);
    expect(health.code, health.out).toBe(0);
    for (const m of members) expect(health.out).toContain(`${m.url} is healthy`);
    const list = await etcdctl(['--endpoints', members[0]!.url, 'member', 'list']);
    expect(list.code, list.out).toBe(0);
    expect(
      list.out
        .trim()
        .split('\n')
        .filter((l) => l.includes('started')),
    ).toHaveLength(3);
  });

  it('a client with all three endpoints keeps writing, watching and its lease when its member is killed', async () => {
    const client = new EtcdClient({ endpoints: members.map((m) => m.url), timeoutMs: 3000 });
    clients.push(client);
    const seen: WatchEvent[] = [];
    const watcher = client.watch(p, { prefix: true }, { onEvents: (evs) => seen.push(...evs), onCompacted: () => {} });
    const lease = await client.lease(3);
    await until(
      'the watch to start',
      async () => watcher.nextRevision,
      (r) => r > 0,
    );
    await client.put(`${p}before`, '1', { lease: lease.id });
    await until(
      'the watch to see the first put',
      async () => seen.length,
      (n) => n >= 1,
    );

    // Kill the member the client talks to (its requests and its watch stream go there).
    const victim = members.find((m) => m.url === client.endpoint)!;
    expect(victim).toBeDefined();
    await victim.stop(0, 'SIGKILL');

    // Writes go on through another member: the first may fail while the connection breaks
    // or a new leader is elected; a user's retry succeeds within the deadline.
    await until(
      'a put through the surviving members',
      async () => (await client.put(`${p}after`, '2', { lease: lease.id })).revision,
      (r) => r > 0,
    );
    expect(client.endpoint).not.toBe(victim.url);
    expect((await client.get(`${p}after`))?.value).toBe('2');

    // The watch resumed on another member from where it stopped: both puts, in order, once.
    await until(
      'the watch to see the put made after the kill',
      async () => seen.map((e) => e.kv.key),
      (k) => k.includes(`${p}after`),
    );
    expect(seen.map((e) => e.kv.key)).toEqual([`${p}before`, `${p}after`]);

    // The lease outlives its 3 s TTL on the survivors: keepalives moved with the client.
    const k0 = lease.keepalives;
    await until(
      'two more keepalives after the kill',
      async () => lease.keepalives,
      (k) => k >= k0 + 2,
      20_000,
    );
    expect(lease.regrants).toBe(0);
    const other = new EtcdClient({ endpoints: members.filter((m) => m !== victim).map((m) => m.url) });
    clients.push(other);
    const kv = await other.get(`${p}before`);
    expect(kv?.value).toBe('1');
    expect(kv?.lease).toBe(lease.id);
  });
});
