/**
 * The directory's MAC layer (#13, step 4) on a private etcd on 127.0.0.1 (lab/etcd.ts):
 * several "hosts" in one process, each an EtcdDirectory with its own underlay address. A
 * claim seen everywhere with its IPs, a move with seq + 1, two claims of one new MAC at
 * once, a batch of claims racing another host's, a MAC frozen after six moves, a pin, an
 * owner whose lease expires, a MAC claimed by another host while its owner's lease was gone,
 * a watcher that falls behind a compaction (its host cut off by lab/tcp-proxy.ts), a claim
 * made while etcd is down, and a burst of 10,000 claims under a 3 s lease. No addon, no
 * namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdMember, startEtcd } from '../../lab/etcd.js';
import { type TcpProxy, tcpProxy } from '../../lab/tcp-proxy.js';
import { until } from '../../lab/wait.js';
import type { MacChange, MacRecord } from '../../src/directory/directory.js';
import { EtcdClient } from '../../src/directory/etcd.js';
import { EtcdDirectory, type EtcdDirectoryOptions } from '../../src/directory/etcd-directory.js';
import { pinMac, unpinMac } from '../../src/directory/macs.js';

const VNI = 5001;
const mac = (n: number) => `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;

describe('EtcdDirectory: MAC records', () => {
  let etcd: EtcdMember;
  let gate: TcpProxy;
  let client: EtcdClient;
  const dirs: EtcdDirectory[] = [];
  const prefix = `/vtepd-test/macs-${process.pid}`;
  const host = (address: string, opts: Partial<EtcdDirectoryOptions> = {}) => {
    const d = new EtcdDirectory({ endpoints: [etcd.url], prefix, leaseTtl: 3, retryMs: 200, freeze: { windowMs: 120_000 }, ...opts });
    d.publish({ address, port: 4789, role: 'mesh' });
    dirs.push(d);
    return d;
  };
  /** Every change a host's listener heard, as "mac why owner/seq". */
  const heard = (d: EtcdDirectory) => {
    const log: string[] = [];
    d.subscribeMacs((vni, m, rec, why) => log.push(`${vni}/${m} ${why}${rec ? ` ${rec.owner}/${rec.seq}` : ''}`));
    return log;
  };
  const untilMac = (d: EtcdDirectory, vni: number, m: string, ok: (r: MacRecord | null) => boolean, what: string, ms = 20_000) =>
    until(`${what} (${vni}/${m})`, async () => d.mac(vni, m), ok, ms, 20);
  const owner = (want: string, seq?: number) => (r: MacRecord | null) => r?.owner === want && (seq === undefined || r.seq === seq);
  const stored = async (vni: number, m: string) => {
    const kv = await client.get(`${prefix}/macs/${vni}/${m}`);
    return kv ? { ...(JSON.parse(kv.value) as Record<string, unknown>), lease: kv.lease, version: kv.version } : null;
  };

  let a: EtcdDirectory;
  let b: EtcdDirectory;
  let c: EtcdDirectory;
  let aHeard: string[];
  let cHeard: string[];

  beforeAll(async () => {
    etcd = await startEtcd();
    gate = await tcpProxy(etcd.clientPort);
    client = new EtcdClient({ endpoints: [etcd.url] });
    a = host('10.0.0.1');
    b = host('10.0.0.2');
    c = host('10.0.0.3', { endpoints: [gate.url], leaseTtl: 10 }); // reaches etcd through a gate the test can shut
    aHeard = heard(a);
    cHeard = heard(c);
    for (const d of [a, b, c]) await d.start();
    await until('a, b and c to connect', async () => [a, b, c].every((d) => d.status().connected), Boolean, 20_000, 20);
  }, 60_000);
  afterAll(async () => {
    for (const d of dirs) await d.stop();
    client?.close();
    await gate?.close();
    await etcd?.destroy();
  });

  it('a claim is seen by every host with its owner, IPs and seq 1; lookupIp finds it', async () => {
    a.claimMac(VNI, '02:00:00:00:00:01', ['10.1.0.1', 'FD00:0::1']);
    for (const d of [a, b, c]) await untilMac(d, VNI, mac(1), owner('10.0.0.1'), 'the claim to reach every host');
    expect(b.mac(VNI, mac(1))).toEqual({ vni: VNI, mac: mac(1), owner: '10.0.0.1', port: 4789, ips: ['10.1.0.1', 'fd00::1'], seq: 1 });
    expect(c.lookupIp(VNI, 'fd00:0:0::1')?.mac).toBe(mac(1));
    expect(c.lookupIp(VNI, '10.1.0.1')?.owner).toBe('10.0.0.1');
    expect(c.lookupIp(VNI, '10.1.0.2')).toBeNull();
    expect(c.lookupIp(VNI + 1, '10.1.0.1')).toBeNull(); // a record belongs to one VNI
    expect(c.macs(VNI).map((r) => r.mac)).toEqual([mac(1)]);
    expect(cHeard).toEqual([`${VNI}/${mac(1)} add 10.0.0.1/1`]);
    expect(aHeard).toEqual([`${VNI}/${mac(1)} add 10.0.0.1/1`]); // its own records too
    expect(await stored(VNI, mac(1))).toMatchObject({ owner: '10.0.0.1', port: 4789, ips: ['10.1.0.1', 'fd00::1'], seq: 1 });
    expect(a.macStats()).toMatchObject({ macs: 1, owned: 1, claims: 1 });
    expect(a.status().macs).toMatchObject({ owned: 1 });

    // New IPs, same owner: an update, same seq.
    a.claimMac(VNI, mac(1), ['10.1.0.1', '10.1.0.11', 'fd00::1']);
    await untilMac(c, VNI, mac(1), (r) => r?.ips.length === 3, 'the new IPs to reach c');
    expect(c.mac(VNI, mac(1))?.seq).toBe(1);
    expect(cHeard.at(-1)).toBe(`${VNI}/${mac(1)} update 10.0.0.1/1`);
    expect(c.lookupIp(VNI, '10.1.0.11')?.mac).toBe(mac(1));
  });

  it('a move: seq 2, every host converges (the old owner too), and the old owner never writes it again', async () => {
    const t0 = Date.now();
    b.claimMac(VNI, mac(1), ['10.1.0.1']);
    for (const d of [a, b, c]) await untilMac(d, VNI, mac(1), owner('10.0.0.2', 2), 'every host to see the move');
    console.log(`move converged on three hosts in ${Date.now() - t0} ms`);
    expect(aHeard.at(-1)).toBe(`${VNI}/${mac(1)} move 10.0.0.2/2`);
    expect(c.lookupIp(VNI, '10.1.0.11')).toBeNull(); // that IP went with the old record
    expect(a.macStats()).toMatchObject({ owned: 0, moves: 1, withdrawn: 1 });
    expect(b.macStats()).toMatchObject({ owned: 1, claims: 1 });
    const moved = await stored(VNI, mac(1));
    expect(moved).toMatchObject({ owner: '10.0.0.2', seq: 2 });

    // a publishes something else, and then loses its lease: everything it publishes is
    // written again under a new one, but not the MAC that moved away.
    a.claimMac(VNI, mac(2), ['10.1.0.2']);
    await untilMac(b, VNI, mac(2), owner('10.0.0.1'), 'a second MAC of a');
    const lease = (await client.get(`${prefix}/macs/${VNI}/${mac(2)}`))!.lease;
    await client.revoke(lease);
    await until(
      'a to publish again under a new lease',
      async () => (await stored(VNI, mac(2)))?.lease,
      (l) => l !== undefined && l !== lease,
      20_000,
      50,
    );
    expect(a.status().regrants).toBe(1);
    expect(await stored(VNI, mac(1))).toEqual(moved); // not written since the move
    await untilMac(b, VNI, mac(2), owner('10.0.0.1', 1), 'a re-claim after a re-grant keeps seq 1');
  });

  it('two hosts claim one new MAC at the same moment: one record, and both converge to it', async () => {
    a.claimMac(VNI, mac(3), ['10.1.0.3']);
    b.claimMac(VNI, mac(3), ['10.1.0.3']);
    await until(
      'a and b to agree on the MAC',
      async () => [a.mac(VNI, mac(3)), b.mac(VNI, mac(3))],
      ([x, y]) => x !== null && y !== null && x.owner === y.owner && x.seq === y.seq,
      20_000,
      20,
    );
    const r = a.mac(VNI, mac(3))!;
    const kv = await stored(VNI, mac(3));
    expect(kv).toMatchObject({ owner: r.owner, seq: r.seq });
    const { count } = await client.range(`${prefix}/macs/${VNI}/${mac(3)}`, { prefix: true, countOnly: true });
    expect(count).toBe(1);
    console.log(`concurrent claim: ${r.owner} won with seq ${r.seq}; conflicts a ${a.macStats().claimConflicts}, b ${b.macStats().claimConflicts}`);
  });

  it('a batch that races another host on a few keys: the conflicts are found in halves, the rest is written', async () => {
    const vni = 6000;
    const before = a.macStats().claimConflicts + b.macStats().claimConflicts;
    for (let i = 1; i <= 300; i++) b.claimMac(vni, mac(i));
    for (let i = 150; i <= 160; i++) a.claimMac(vni, mac(i)); // the same moment: one of them gets there first
    const agree = async () => [a.macs(vni), b.macs(vni)].map((rs) => JSON.stringify(rs));
    await until('a and b to agree on 300 records', agree, ([x, y]) => x === y && b.macs(vni).length === 300, 20_000, 20);
    const { count } = await client.range(`${prefix}/macs/${vni}/`, { prefix: true, countOnly: true });
    expect(count).toBe(300);
    expect(b.macs(vni).every((r) => r.seq === 1)).toBe(true); // nobody moved anything
    const fromA = b.macs(vni).filter((r) => r.owner === '10.0.0.1').length;
    expect([0, 11]).toContain(fromA);
    expect(a.macStats().claimConflicts + b.macStats().claimConflicts - before).toBe(11);
    console.log(`batch race: ${fromA ? 'a' : 'b'} got the 11 contested MACs first; the other found 11 conflicts`);
  });

  it('six moves inside the window freeze the MAC on every host; a seventh claim is refused and counted', async () => {
    const m = mac(4);
    const frozen: Record<string, MacChange[]> = { a: [], b: [], c: [] };
    const unsubs = Object.entries({ a, b, c }).map(([n, d]) =>
      d.subscribeMacs((vni, x, _r, why) => vni === VNI && x === m && why === 'frozen' && frozen[n]!.push(why)),
    );
    a.claimMac(VNI, m);
    for (const d of [a, b, c]) await untilMac(d, VNI, m, owner('10.0.0.1', 1), 'the first claim');
    for (let i = 1; i <= 6; i++) {
      const [by, addr] = i % 2 ? [b, '10.0.0.2'] : [a, '10.0.0.1'];
      by.claimMac(VNI, m);
      for (const d of [a, b, c]) await untilMac(d, VNI, m, owner(addr, 1 + i), `move ${i}`);
    }
    for (const d of [a, b, c]) expect(d.isFrozen(VNI, m)).toBe(true);
    expect(frozen).toEqual({ a: ['frozen'], b: ['frozen'], c: ['frozen'] });
    const refusedBefore = b.macStats().claimsRefusedFrozen;
    b.claimMac(VNI, m); // the seventh
    expect(b.macStats().claimsRefusedFrozen).toBe(refusedBefore + 1);
    expect(b.macStats().frozen).toBe(1);
    // Nothing written: still a's, seq 7, in etcd and everywhere.
    expect(await stored(VNI, m)).toMatchObject({ owner: '10.0.0.1', seq: 7 });
    expect(c.mac(VNI, m)).toMatchObject({ owner: '10.0.0.1', seq: 7 });
    for (const u of unsubs) u();
  });

  it('a pin wins over a claim: mac() answers the pin, claims are refused, unpinning brings the record back', async () => {
    await pinMac(client, prefix, VNI, '02:00:00:00:00:05', { owner: '10.0.0.99', port: 4789, ips: ['10.1.0.5'] });
    await untilMac(a, VNI, mac(5), (r) => r?.pinned === true, 'a to see the pin');
    const before = a.macStats().claimsRefusedPinned;
    a.claimMac(VNI, mac(5), ['10.1.0.5']);
    expect(a.macStats().claimsRefusedPinned).toBe(before + 1);
    expect(await stored(VNI, mac(5))).toBeNull();
    expect(a.lookupIp(VNI, '10.1.0.5')).toMatchObject({ owner: '10.0.0.99', pinned: true });

    // A pin over a record: the pin is what everyone sees; without it, the record again.
    b.claimMac(VNI, mac(6), ['10.1.0.6']);
    await untilMac(c, VNI, mac(6), owner('10.0.0.2'), 'b claims a MAC');
    await pinMac(client, prefix, VNI, mac(6), { owner: '10.0.0.98', port: 4789, ips: ['10.1.0.6'] });
    await untilMac(c, VNI, mac(6), owner('10.0.0.98'), 'the pin to win');
    expect(c.lookupIp(VNI, '10.1.0.6')?.owner).toBe('10.0.0.98');
    expect(await unpinMac(client, prefix, VNI, mac(6))).toBe(true);
    await untilMac(c, VNI, mac(6), owner('10.0.0.2', 1), 'the record to come back');
    expect(cHeard.filter((l) => l.startsWith(`${VNI}/${mac(6)}`))).toEqual([
      `${VNI}/${mac(6)} add 10.0.0.2/1`,
      `${VNI}/${mac(6)} move 10.0.0.98/0`,
      `${VNI}/${mac(6)} move 10.0.0.2/1`,
    ]);
  });

  it("an owner that dies (its lease expires) leaves every host's records", async () => {
    const x = host('10.0.0.4');
    await x.start();
    x.claimMac(VNI, mac(7), ['10.1.0.7']);
    await untilMac(b, VNI, mac(7), owner('10.0.0.4'), 'x claims a MAC');
    const removed: number[] = [];
    const unsub = b.subscribeMacs((_v, m, rec, why) => m === mac(7) && why === 'remove' && rec === null && removed.push(Date.now()));
    const t0 = Date.now();
    await x.stop(false); // as if killed: no withdraw, the lease expires
    await until(
      'b to see the record go',
      async () => removed.length,
      (n) => n === 1,
      20_000,
      20,
    );
    console.log(`owner died: its MAC left the other hosts ${removed[0]! - t0} ms after its last keepalive could run (lease TTL 3 s)`);
    expect(b.mac(VNI, mac(7))).toBeNull();
    await untilMac(c, VNI, mac(7), (r) => r === null, 'c to see the record go');
    unsub();
  });

  it('a MAC another host claimed while the owner lost its lease stays theirs after the re-grant', async () => {
    const y = host('10.0.0.5', { leaseTtl: 9 }); // a keepalive every 3 s: b claims first
    await y.start();
    y.claimMac(VNI, mac(11), ['10.1.0.11']);
    y.claimMac(VNI, mac(12), ['10.1.0.12']);
    await untilMac(b, VNI, mac(11), owner('10.0.0.5', 1), 'y claims a MAC');
    await untilMac(b, VNI, mac(12), owner('10.0.0.5', 1), 'y claims another');
    const lease = (await client.get(`${prefix}/macs/${VNI}/${mac(11)}`))!.lease;
    await client.revoke(lease);
    await untilMac(b, VNI, mac(11), (r) => r === null, 'the MAC to go with the lease');
    b.claimMac(VNI, mac(11), ['10.1.0.11']);
    await untilMac(b, VNI, mac(11), owner('10.0.0.2', 2), 'b to claim it (seq + 1: another host held it last)');
    const regranted = async () => y.status().regrants;
    await until('y to re-grant its lease', regranted, (n) => n === 1, 20_000, 20);
    // y writes its other MAC again under the new lease (same seq), and leaves b's alone.
    const lease12 = async () => (await stored(VNI, mac(12)))?.lease;
    await until('y to publish again', lease12, (l) => l !== undefined && l !== lease, 20_000, 20);
    expect(await stored(VNI, mac(12))).toMatchObject({ owner: '10.0.0.5', seq: 1 });
    expect(await stored(VNI, mac(11))).toMatchObject({ owner: '10.0.0.2', seq: 2, version: 1 });
    expect(y.mac(VNI, mac(11))).toMatchObject({ owner: '10.0.0.2', seq: 2 });
    expect(y.macStats().owned).toBe(1);
  });

  it('a watcher behind a compaction re-reads: no spurious removal, the records right after', async () => {
    a.claimMac(VNI, mac(8), ['10.1.0.8']);
    await untilMac(c, VNI, mac(8), owner('10.0.0.1'), 'c to see a MAC before the cut');
    const resyncs = c.status().resyncs!;
    const heardBefore = cHeard.length;
    gate.shut();
    await until(
      'c to notice',
      async () => c.status().connected,
      (x) => !x,
      20_000,
      20,
    );
    a.withdrawMac(VNI, mac(8));
    a.claimMac(VNI, mac(9), ['10.1.0.9']);
    b.claimMac(VNI, mac(2), ['10.1.0.2']); // a move
    await untilMac(b, VNI, mac(8), (r) => r === null, 'the withdrawal');
    await untilMac(b, VNI, mac(9), owner('10.0.0.1'), 'the new claim');
    await untilMac(a, VNI, mac(2), owner('10.0.0.2', 2), 'the move');
    const { revision } = await client.range(`${prefix}/`, { prefix: true, countOnly: true });
    await client.compact(revision, true);
    gate.open();
    await until(
      'c to re-read',
      async () => c.status().resyncs!,
      (n) => n > resyncs,
      20_000,
      20,
    );
    const view = (d: EtcdDirectory) => JSON.stringify(d.macs(VNI));
    await until(
      'c to agree with b',
      async () => [view(c), view(b)],
      ([x, y]) => x === y,
      20_000,
      20,
    );
    expect(c.mac(VNI, mac(1))).toMatchObject({ owner: '10.0.0.2', seq: 2 }); // untouched, still there
    expect(cHeard.slice(heardBefore).sort()).toEqual([`${VNI}/${mac(2)} move 10.0.0.2/2`, `${VNI}/${mac(8)} remove`, `${VNI}/${mac(9)} add 10.0.0.1/1`]);
    expect(c.status().errors).toBeGreaterThan(0);
  });

  it('a claim made while etcd is down is written when it returns', async () => {
    await etcd.stop();
    await until(
      'a to notice the outage',
      async () => a.status().connected,
      (x) => !x,
      20_000,
      20,
    );
    a.claimMac(VNI, mac(10), ['10.1.0.10']);
    a.withdrawMac(VNI, mac(9));
    expect(b.mac(VNI, mac(9))).not.toBeNull(); // last-known records stay
    await etcd.start();
    for (const d of [a, b, c]) await untilMac(d, VNI, mac(10), owner('10.0.0.1', 1), 'the claim made during the outage');
    for (const d of [a, b, c]) await untilMac(d, VNI, mac(9), (r) => r === null, 'the withdrawal made during the outage');
  }, 60_000);

  it('a burst of 10,000 claims from one host (lease TTL 3 s): all written, in few txns, no lease lost', async () => {
    const z = host('10.0.0.9');
    await z.start();
    await until('z to connect', async () => z.status().connected, Boolean, 20_000, 20);
    const n = 10_000;
    const t0 = Date.now();
    for (let i = 0; i < n; i++) z.claimMac(7000, mac(i + 1), [`10.7.${i >> 8}.${i & 0xff}`]);
    await until(
      'z to write every claim',
      async () => z.macStats().owned,
      (k) => k === n,
      120_000,
      50,
    );
    const written = Date.now() - t0;
    await until(
      'b to see every claim',
      async () => b.macs(7000).length,
      (k) => k === n,
      120_000,
      50,
    );
    const seen = Date.now() - t0;
    const { count } = await client.range(`${prefix}/macs/7000/`, { prefix: true, countOnly: true });
    const txns = z.macStats().txns!;
    console.log(`burst: ${n} claims written in ${written} ms (${txns} txns), seen by another host after ${seen} ms; regrants ${z.status().regrants}`);
    expect(count).toBe(n);
    expect(z.status().regrants).toBe(0);
    expect(txns).toBeLessThanOrEqual(Math.ceil(n / 128) + 8);
    expect(b.lookupIp(7000, '10.7.39.15')?.mac).toBe(mac(39 * 256 + 15 + 1));
  }, 180_000);
});
