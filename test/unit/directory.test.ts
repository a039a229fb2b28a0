/**
 * Membership → flood lists (#13, step 2), against a fake Directory: the pure bookkeeping in
 * src/directory/membership.ts, and the Daemon over the fake data path wired to it (join on
 * the first port, leave on the last, flood lists from the members, reload, status).
 */
import { describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon/daemon.js';
import {
  emptyMacStats,
  sortMembers,
  StaticDirectory,
  type Directory,
  type DirectoryStatus,
  type MacRecord,
  type Member,
  type MembersListener,
  type VtepRecord,
} from '../../src/directory/directory.js';
import { Membership } from '../../src/directory/membership.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { cfg, MemPorts } from '../support/fake-ports.js';

/** A directory in memory: the test sets members; joins and leaves are recorded. */
class FakeDirectory implements Directory {
  readonly backend = 'etcd' as const;
  readonly log: string[] = [];
  self: VtepRecord | null = null;
  started = false;
  stopped: boolean | null = null;
  private readonly lists = new Map<number, Member[]>();
  private readonly listeners = new Set<MembersListener>();
  private readonly joined = new Set<number>();
  async start(): Promise<void> {
    this.started = true;
  }
  async stop(withdraw = true): Promise<void> {
    this.stopped = withdraw;
  }
  publish(self: VtepRecord): void {
    this.self = self;
  }
  join(vni: number): void {
    this.joined.add(vni);
    this.log.push(`join ${vni}`);
  }
  leave(vni: number): void {
    this.joined.delete(vni);
    this.log.push(`leave ${vni}`);
  }
  subscribe(l: MembersListener): () => void {
    this.listeners.add(l);
    for (const [vni, ms] of this.lists) l(vni, ms);
    return () => this.listeners.delete(l);
  }
  members(vni: number): Member[] {
    return this.lists.get(vni) ?? [];
  }
  status(): DirectoryStatus {
    return { backend: 'etcd', connected: true, errors: 0, joined: [...this.joined].sort((a, b) => a - b) };
  }
  claimMac(): void {}
  withdrawMac(): void {}
  subscribeMacs(): () => void {
    return () => undefined;
  }
  mac(): MacRecord | null {
    return null;
  }
  macs(): MacRecord[] {
    return [];
  }
  lookupIp(): MacRecord | null {
    return null;
  }
  isFrozen(): boolean {
    return false;
  }
  macStats() {
    return emptyMacStats();
  }
  /** The test's stand-in for a watch event. */
  set(vni: number, addresses: string[]): void {
    const ms = sortMembers(addresses.map((address) => ({ address, port: 4789 })));
    this.lists.set(vni, ms);
    for (const l of this.listeners) l(vni, ms);
  }
}

function membership() {
  const dir = new FakeDirectory();
  const applied: string[] = [];
  const m = new Membership({ directory: dir, self: ['10.0.0.1'], apply: (t, flood) => applied.push(`${t}: ${flood.join(' ')}`) });
  return { dir, applied, m };
}

describe('Membership', () => {
  it('joins a VNI on the first port and leaves it with the last', () => {
    const { dir, m } = membership();
    expect(m.addTenant('blue', 5001, [])).toEqual([]);
    m.start();
    m.portAdded('blue');
    m.portAdded('blue');
    m.portRemoved('blue');
    expect(dir.log).toEqual(['join 5001']);
    m.portRemoved('blue');
    m.portRemoved('blue'); // no ports: nothing more
    expect(dir.log).toEqual(['join 5001', 'leave 5001']);
    m.portAdded('blue');
    m.removeTenant('blue');
    expect(dir.log).toEqual(['join 5001', 'leave 5001', 'join 5001', 'leave 5001']);
  });

  it('floods to the members other than this host, plus the static list, applied only on a change', () => {
    const { dir, applied, m } = membership();
    dir.set(5001, ['10.0.0.1', '10.0.0.3']);
    expect(m.addTenant('blue', 5001, ['10.0.0.9'])).toEqual(['10.0.0.9', '10.0.0.3']);
    m.addTenant('red', 5002, []);
    m.start(); // the current lists come at once: nothing changed
    expect(applied).toEqual([]);
    dir.set(5001, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.9']);
    dir.set(5001, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.9']); // the same again: no call
    dir.set(5002, ['10.0.0.1']); // only this host: nothing to flood to, unchanged
    dir.set(5001, ['10.0.0.2']);
    expect(applied).toEqual(['blue: 10.0.0.9 10.0.0.2 10.0.0.3', 'blue: 10.0.0.9 10.0.0.2']);
    expect(m.updates).toBe(2);
    expect(m.status()).toEqual({ blue: [{ address: '10.0.0.2', port: 4789 }], red: [] });
  });

  it('a reload of the static list keeps the members; members of another family are left out', () => {
    const { dir, m } = membership();
    dir.set(5001, ['10.0.0.2', '2001:db8::2']);
    m.addTenant('blue', 5001, []);
    expect(m.floodOf('blue')).toEqual(['10.0.0.2']);
    expect(m.setStatic('blue', ['10.0.0.7'])).toEqual(['10.0.0.7', '10.0.0.2']);
    expect(m.setStatic('blue', ['10.0.0.2'])).toEqual(['10.0.0.2']);
  });

  it('counts a flood list that fails to apply, and tries again on the next change', () => {
    const dir = new FakeDirectory();
    let fail = true;
    const m = new Membership({
      directory: dir,
      self: ['10.0.0.1'],
      apply: () => {
        if (fail) throw new Error('no');
      },
    });
    m.addTenant('blue', 5001, []);
    m.start();
    dir.set(5001, ['10.0.0.2']);
    expect(m.applyErrors).toBe(1);
    fail = false;
    dir.set(5001, ['10.0.0.2']);
    expect(m.updates).toBe(1);
  });

  it('two tenants on one VNI cannot exist, but leave waits for the last port of the VNI', () => {
    const { dir, m } = membership();
    m.addTenant('a', 5001, []);
    m.addTenant('b', 5001, []);
    m.portAdded('a');
    m.portAdded('b');
    m.portRemoved('a');
    expect(dir.log).toEqual(['join 5001', 'join 5001']);
    m.portRemoved('b');
    expect(dir.log).toEqual(['join 5001', 'join 5001', 'leave 5001']);
  });
});

describe('StaticDirectory', () => {
  it('reports the config flood lists as members', () => {
    const s = new StaticDirectory(4789);
    const seen: string[] = [];
    s.setFlood(5001, ['10.0.0.3', '10.0.0.2']);
    s.subscribe((vni, ms) => seen.push(`${vni}: ${ms.map((x) => x.address).join(' ')}`));
    s.setFlood(5001, ['10.0.0.2']);
    expect(seen).toEqual(['5001: 10.0.0.2 10.0.0.3', '5001: 10.0.0.2']);
    expect(s.status()).toEqual({ backend: 'static', connected: true, errors: 0, joined: [] });
  });
});

// ---- the daemon over the fake data path -----------------------------------------------------

const DIR = 'directory: { etcd: { endpoints: [ "http://127.0.0.1:1" ] } }';
const BASE = `underlay: { local: 10.0.0.1 }
${DIR}
tenants:
  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ] }
  - { name: red, vni: 5002, ports: [], flood: [ 10.0.0.9 ] }
`;
const flood = (d: Daemon, t: string) => d.status().tenants.find((x) => x.name === t)!.flood;

describe('Daemon with a directory (fake)', () => {
  it('publishes itself, joins where it has ports, floods to the members, follows reloads, shows it all in status', async () => {
    const dir = new FakeDirectory();
    const d = await Daemon.start(cfg(BASE), { dp: new FakeDatapath(), ports: new MemPorts(), maxMacsTotal: 1000, directory: dir });
    try {
      expect(dir.started).toBe(true);
      expect(dir.self).toEqual({ address: '10.0.0.1', port: 4789, role: 'mesh' });
      expect(dir.log).toEqual(['join 5001']);
      expect(flood(d, 'blue')).toEqual([]);
      expect(flood(d, 'red')).toEqual(['10.0.0.9']);

      dir.set(5001, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
      dir.set(5002, ['10.0.0.4']);
      expect(flood(d, 'blue')).toEqual(['10.0.0.2', '10.0.0.3']);
      expect(flood(d, 'red')).toEqual(['10.0.0.9', '10.0.0.4']); // static and directory together
      expect(d.status().directory).toMatchObject({
        backend: 'etcd',
        connected: true,
        joined: [5001],
        floodUpdates: 2,
        tenants: { blue: ['10.0.0.2', '10.0.0.3'], red: ['10.0.0.4'] },
      });

      // Reload: blue loses its port (leaves), red gets one (joins) and drops its static list.
      const r = await d.reload(
        cfg(BASE.replace('ports: [ { tap: blue0 } ]', 'ports: []').replace('ports: [], flood: [ 10.0.0.9 ]', 'ports: [ { tap: red0 } ]')),
      );
      expect(r.ok).toBe(true);
      expect(dir.log).toEqual(['join 5001', 'leave 5001', 'join 5002']);
      expect(flood(d, 'red')).toEqual(['10.0.0.4']);
      // A member leaving (its lease expired): gone from the flood list.
      dir.set(5001, ['10.0.0.1', '10.0.0.3']);
      expect(flood(d, 'blue')).toEqual(['10.0.0.3']);

      // A tenant removed by reload leaves its VNI (and blue, with its port back, joins again).
      await d.reload(cfg(BASE.replace(/  - \{ name: red.*\n/, '')));
      expect(dir.log.slice(3)).toEqual(['leave 5002', 'join 5001']);
      // The directory itself cannot change by reload.
      const refused = await d.reload(cfg(BASE.replace('127.0.0.1:1', '127.0.0.1:2')));
      expect(refused.errors.map((e) => e.path)).toEqual(['directory']);
    } finally {
      d.close();
    }
    expect(dir.stopped).toBe(true);
  });

  it('without a directory, status says so and flood lists are the config', async () => {
    const d = await Daemon.start(cfg(BASE.replace(`${DIR}\n`, '')), { dp: new FakeDatapath(), ports: new MemPorts(), maxMacsTotal: 1000 });
    try {
      expect(d.status().directory).toBeNull();
      expect(flood(d, 'red')).toEqual(['10.0.0.9']);
    } finally {
      d.close();
    }
  });
});
