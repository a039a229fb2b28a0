/**
 * A directory in memory for unit tests: one `MemStore` shared by several `MemDirectory`
 * hosts, synchronous (a claim is seen by every host before it returns). Members and MAC
 * records follow the etcd backend's rules that the daemon relies on: a claim of a MAC owned
 * elsewhere is a move with seq + 1, a withdrawal deletes only the host's own record, a host
 * that stops without withdrawing keeps its records until `expire(host)`.
 */
import {
  emptyMacStats,
  sortMembers,
  type Directory,
  type DirectoryStatus,
  type MacDirectoryStats,
  type MacListener,
  type MacRecord,
  type Member,
  type MembersListener,
  type VtepRecord,
} from '../../src/directory/directory.js';

export class MemStore {
  readonly members = new Map<number, Map<string, Member>>();
  readonly macs = new Map<string, MacRecord>();
  readonly hosts = new Set<MemDirectory>();
  /** Every write, in order ("claim 5001 mac owner seq", "withdraw …"). */
  readonly log: string[] = [];

  /** A host's lease expired: everything it owned goes. */
  expire(address: string): void {
    for (const [vni, m] of this.members) if (m.delete(address)) this.emitMembers(vni);
    for (const [k, r] of [...this.macs]) if (r.owner === address) this.setMac(k, null, 'remove');
  }

  emitMembers(vni: number): void {
    const ms = sortMembers(this.members.get(vni)?.values() ?? []);
    for (const h of this.hosts) h.fireMembers(vni, ms);
  }

  setMac(key: string, rec: MacRecord | null, why: 'add' | 'move' | 'update' | 'remove'): void {
    const old = this.macs.get(key);
    if (rec) this.macs.set(key, rec);
    else this.macs.delete(key);
    const [vni, mac] = [Number(key.split('/')[0]), key.split('/')[1]!];
    for (const h of this.hosts) h.fireMac(vni, mac, rec, why, old ?? null);
  }
}

export class MemDirectory implements Directory {
  readonly backend = 'etcd' as const;
  private self: VtepRecord | null = null;
  private readonly joined = new Set<number>();
  private readonly memberListeners = new Set<MembersListener>();
  private readonly macListeners = new Set<MacListener>();
  readonly stats: MacDirectoryStats = emptyMacStats();
  stopped = false;

  constructor(
    readonly store: MemStore,
    readonly address: string,
  ) {
    store.hosts.add(this);
  }

  async start(): Promise<void> {}
  async stop(withdraw = true): Promise<void> {
    this.stopped = true;
    this.store.hosts.delete(this);
    if (withdraw) this.store.expire(this.address);
  }
  publish(self: VtepRecord): void {
    this.self = self;
  }
  join(vni: number): void {
    this.joined.add(vni);
    let m = this.store.members.get(vni);
    if (!m) this.store.members.set(vni, (m = new Map()));
    m.set(this.address, { address: this.address, port: 4789 });
    this.store.emitMembers(vni);
  }
  leave(vni: number): void {
    this.joined.delete(vni);
    if (this.store.members.get(vni)?.delete(this.address)) this.store.emitMembers(vni);
  }
  subscribe(l: MembersListener): () => void {
    this.memberListeners.add(l);
    for (const vni of this.store.members.keys()) l(vni, this.members(vni));
    return () => this.memberListeners.delete(l);
  }
  members(vni: number): Member[] {
    return sortMembers(this.store.members.get(vni)?.values() ?? []);
  }
  status(): DirectoryStatus {
    return { backend: 'etcd', connected: true, errors: 0, joined: [...this.joined].sort((a, b) => a - b) };
  }
  claimMac(vni: number, mac: string, ips: string[] = []): void {
    const key = `${vni}/${mac}`;
    const cur = this.store.macs.get(key);
    const rec: MacRecord = { vni, mac, owner: this.address, port: this.self?.port ?? 4789, ips: [...ips].sort(), seq: 1 };
    if (!cur) {
      this.stats.claims++;
      this.store.log.push(`claim ${vni} ${mac} ${this.address} 1`);
      this.store.setMac(key, rec, 'add');
    } else if (cur.owner !== this.address) {
      rec.seq = cur.seq + 1;
      this.stats.claims++;
      this.store.log.push(`claim ${vni} ${mac} ${this.address} ${rec.seq}`);
      this.store.setMac(key, rec, 'move');
    } else if (JSON.stringify(cur.ips) !== JSON.stringify(rec.ips)) {
      rec.seq = cur.seq;
      this.store.setMac(key, rec, 'update');
    }
  }
  withdrawMac(vni: number, mac: string): void {
    const key = `${vni}/${mac}`;
    if (this.store.macs.get(key)?.owner !== this.address) return;
    this.stats.withdrawn++;
    this.store.log.push(`withdraw ${vni} ${mac} ${this.address}`);
    this.store.setMac(key, null, 'remove');
  }
  subscribeMacs(l: MacListener): () => void {
    this.macListeners.add(l);
    for (const r of this.store.macs.values()) l(r.vni, r.mac, r, 'add');
    return () => this.macListeners.delete(l);
  }
  mac(vni: number, mac: string): MacRecord | null {
    return this.store.macs.get(`${vni}/${mac}`) ?? null;
  }
  macs(vni: number): MacRecord[] {
    return [...this.store.macs.values()].filter((r) => r.vni === vni);
  }
  lookupIp(vni: number, ip: string): MacRecord | null {
    return this.macs(vni).find((r) => r.ips.includes(ip)) ?? null;
  }
  isFrozen(): boolean {
    return false;
  }
  macStats(): MacDirectoryStats {
    return { ...this.stats, macs: this.store.macs.size, owned: [...this.store.macs.values()].filter((r) => r.owner === this.address).length };
  }

  fireMembers(vni: number, ms: Member[]): void {
    for (const l of this.memberListeners) l(vni, ms);
  }
  fireMac(vni: number, mac: string, rec: MacRecord | null, why: 'add' | 'move' | 'update' | 'remove', _old: MacRecord | null): void {
    for (const l of this.macListeners) l(vni, mac, rec, why);
  }
}
