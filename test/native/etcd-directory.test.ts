/**
 * The etcd directory backend (src/directory/etcd-directory.ts) against a private etcd on
 * 127.0.0.1 (lab/etcd.ts): two "hosts" in one process, each an EtcdDirectory. Members seen
 * by both, a leave, the last-known members kept through an etcd outage and a leave made
 * during it written on reconnect, and a lease etcd dropped re-granted with everything
 * published again. No addon, no namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdMember, startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/wait.js';
import { EtcdClient } from '../../src/directory/etcd.js';
import { EtcdDirectory } from '../../src/directory/etcd-directory.js';

describe('EtcdDirectory', () => {
  let etcd: EtcdMember;
  const dirs: EtcdDirectory[] = [];
  const prefix = `/vtepd-test/dir-${process.pid}`;
  const host = (address: string) => {
    const d = new EtcdDirectory({ endpoints: [etcd.url], prefix, leaseTtl: 3, retryMs: 200 });
    d.publish({ address, port: 4789, role: 'mesh' });
    dirs.push(d);
    return d;
  };
  const addrs = (d: EtcdDirectory, vni: number) => d.members(vni).map((m) => m.address);
  const untilMembers = (d: EtcdDirectory, vni: number, want: string[]) =>
    until(
      `members of ${vni} to be [${want.join(', ')}]`,
      async () => addrs(d, vni),
      (a) => JSON.stringify(a) === JSON.stringify(want),
      20_000,
      50,
    );

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);
  afterAll(async () => {
    for (const d of dirs) await d.stop();
    await etcd?.destroy();
  });

  it('join, subscribe, leave; an outage keeps the last-known members and a leave made meanwhile is written on reconnect', async () => {
    const a = host('10.0.0.1');
    const b = host('10.0.0.2');
    const seen: string[] = [];
    a.subscribe((vni, ms) => seen.push(`${vni}: ${ms.map((m) => m.address).join(' ')}`));
    await a.start();
    await b.start();
    a.join(5001);
    b.join(5001);
    b.join(5002);
    await untilMembers(a, 5001, ['10.0.0.1', '10.0.0.2']);
    await untilMembers(a, 5002, ['10.0.0.2']);
    expect(a.members(5002)).toEqual([{ address: '10.0.0.2', port: 4789 }]);
    b.leave(5002);
    await untilMembers(a, 5002, []);
    expect(seen.at(-1)).toBe('5002: ');

    // The vteps/ record is there, under the lease.
    const c = new EtcdClient({ endpoints: [etcd.url] });
    try {
      const kv = await c.get(`${prefix}/vteps/10.0.0.2`);
      expect(JSON.parse(kv!.value)).toEqual({ address: '10.0.0.2', port: 4789, role: 'mesh' });
      expect(kv!.lease).not.toBe('0');
    } finally {
      c.close();
    }

    await etcd.stop();
    await until(
      'a to notice the outage',
      async () => a.status().connected,
      (x) => !x,
      20_000,
      50,
    );
    expect(addrs(a, 5001)).toEqual(['10.0.0.1', '10.0.0.2']); // kept: forwarding goes on
    b.leave(5001); // queued
    await etcd.start();
    await untilMembers(a, 5001, ['10.0.0.1']);
    await until('a to reconnect', async () => a.status().connected, Boolean, 20_000, 50);
    expect(a.status().errors).toBeGreaterThan(0);
  }, 90_000);

  it('a lease etcd dropped is re-granted and everything published again', async () => {
    const a = dirs[0]!;
    const b = dirs[1]!;
    const seen: string[] = [];
    const unsubscribe = a.subscribe((vni, ms) => vni === 5003 && seen.push(ms.map((m) => m.address).join(' ')));
    b.join(5003);
    await untilMembers(a, 5003, ['10.0.0.2']);
    const c = new EtcdClient({ endpoints: [etcd.url] });
    try {
      const kv = await c.get(`${prefix}/members/5003/10.0.0.2`);
      await c.revoke(kv!.lease); // as if etcd had expired it
      // Gone with the lease (a watch event, however short the gap), then back under the new one.
      await until(
        'b to leave and come back',
        async () => seen.slice(),
        (x) => x.includes('') && x.at(-1) === '10.0.0.2',
        20_000,
        50,
      );
      unsubscribe();
      expect(b.status().regrants).toBe(1);
      expect((await c.get(`${prefix}/vteps/10.0.0.2`))?.lease).not.toBe(kv!.lease);
    } finally {
      c.close();
    }
  }, 60_000);
});
