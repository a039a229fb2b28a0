/**
 * The directory on etcd (issue #13, step 2: membership).
 *
 * ## Data model, under the configured prefix (default /vtepd/v1)
 *
 * | key | value (JSON) | lifetime |
 * |---|---|---|
 * | `${prefix}/vteps/<address>` | `{ address, port, role, publicKey? }`: this host's VTEP record | this host's lease |
 * | `${prefix}/members/<vni>/<address>` | `{ address, port, publicKey? }`: this host has a port in VNI `<vni>` (decimal) | this host's lease |
 *
 * `<address>` is the host's first underlay address, normalized (IPv6 in RFC 5952 form). Every
 * key a host writes is bound to its one lease (`directory.etcd.leaseTtl` seconds, default 10),
 * kept alive by src/directory/etcd.ts: a host that dies leaves the others' flood lists when
 * its lease expires. A host that stops cleanly revokes its lease, and leaves at once.
 *
 * ## How it stays right
 *
 * - Read, then watch from the read's revision + 1: no event is missed between the two.
 * - A watch that lags behind a compaction re-reads `${prefix}/members/` and applies the
 *   difference (a compaction is never taken as a mass deletion).
 * - While etcd is unreachable the last-known members stay (forwarding goes on as before),
 *   joins and leaves wait, and are written once etcd answers again.
 * - A lease etcd lost is re-granted (src/directory/etcd.ts) and everything this host
 *   published is written again under the new one.
 */
import { EtcdClient, EtcdLeaseNotFound, type Lease, type Op, type WatchEvent, type Watcher } from './etcd.js';
import { logger } from '../util/log.js';
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
} from './directory.js';

const log = logger('directory');

export interface EtcdDirectoryOptions {
  endpoints: string[];
  prefix: string;
  /** Seconds. */
  leaseTtl: number;
  /** Wait between attempts while etcd is unreachable (default 1000 ms). */
  retryMs?: number;
}

export class EtcdDirectory implements Directory {
  readonly backend = 'etcd' as const;
  private readonly client: EtcdClient;
  private readonly membersPrefix: string;
  private lease: Lease | null = null;
  private watcher: Watcher | null = null;
  private self: VtepRecord | null = null;
  private readonly joined = new Set<number>();
  /** What this host wrote under the current lease: key -> value. */
  private published = new Map<string, string>();
  /** vni -> address -> member: the last-known members. */
  private readonly known = new Map<number, Map<string, Member>>();
  private readonly listeners = new Set<MembersListener>();
  private connected = false;
  private stopped = false;
  private flushing = false;
  private dirty = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private errors = 0;
  private regrants = 0;
  private resyncs = 0;
  private readonly retryMs: number;

  constructor(private readonly opts: EtcdDirectoryOptions) {
    this.client = new EtcdClient({ endpoints: opts.endpoints, timeoutMs: 3000 });
    this.membersPrefix = `${opts.prefix}/members/`;
    this.retryMs = opts.retryMs ?? 1000;
  }

  async start(): Promise<void> {
    void this.connect();
  }

  async stop(withdraw = true): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.watcher?.close();
    this.listeners.clear();
    const lease = this.lease;
    this.lease = null;
    if (lease && !withdraw) lease.stop();
    else if (lease) {
      // Leave at once rather than after the TTL; do not hold a shutdown up for long.
      await Promise.race([lease.revoke().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    this.client.close();
  }

  publish(self: VtepRecord): void {
    this.self = self;
    this.kick();
  }

  join(vni: number): void {
    if (this.joined.has(vni)) return;
    this.joined.add(vni);
    log.info({ vni }, 'joining VNI');
    this.kick();
  }

  leave(vni: number): void {
    if (!this.joined.delete(vni)) return;
    log.info({ vni }, 'leaving VNI');
    this.kick();
  }

  subscribe(listener: MembersListener): () => void {
    this.listeners.add(listener);
    for (const vni of this.known.keys()) listener(vni, this.members(vni));
    return () => this.listeners.delete(listener);
  }

  members(vni: number): Member[] {
    return sortMembers(this.known.get(vni)?.values() ?? []);
  }

  status(): DirectoryStatus {
    return {
      backend: 'etcd',
      connected: this.connected,
      errors: this.errors,
      endpoints: this.opts.endpoints,
      prefix: this.opts.prefix,
      joined: [...this.joined].sort((a, b) => a - b),
      regrants: this.regrants,
      resyncs: this.resyncs,
    };
  }

  // ---- MACs (not yet: issue #13 step 4) ------------------------------------------------------
  claimMac(_vni: number, _mac: string, _ips?: string[]): void {}
  withdrawMac(_vni: number, _mac: string): void {}
  subscribeMacs(_listener: MacListener): () => void {
    return () => undefined;
  }
  mac(_vni: number, _mac: string): MacRecord | null {
    return null;
  }
  macs(_vni: number): MacRecord[] {
    return [];
  }
  lookupIp(_vni: number, _ip: string): MacRecord | null {
    return null;
  }
  isFrozen(_vni: number, _mac: string): boolean {
    return false;
  }
  macStats(): MacDirectoryStats {
    return emptyMacStats();
  }

  // ---- connection --------------------------------------------------------------------------

  /** Grant the lease, read the members, start the watch; retried until it works. */
  private async connect(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.lease) {
          const lease = await this.client.lease(this.opts.leaseTtl, {
            onRegranted: (id, old) => {
              this.regrants++;
              log.warn({ lease: id, old }, 'etcd lease re-granted: publishing again');
              this.published.clear();
              this.kick();
            },
            onLost: (id) => {
              this.errors++;
              log.warn({ lease: id }, 'etcd lease: no keepalive for a whole TTL');
            },
            onError: () => {
              this.errors++;
            },
          });
          if (this.stopped) {
            await lease.revoke().catch(() => undefined);
            return;
          }
          this.lease = lease;
          this.published.clear();
        }
        await this.resync();
        this.connected = true;
        log.info({ endpoints: this.opts.endpoints, prefix: this.opts.prefix }, 'directory connected');
        this.kick();
        return;
      } catch (e) {
        this.errors++;
        this.connected = false;
        log.warn({ err: (e as Error).message }, 'etcd unreachable; retrying');
        await new Promise((r) => setTimeout(r, this.retryMs));
      }
    }
  }

  /** Read every member, apply the difference, and (re)start the watch from the read's revision + 1. */
  private async resync(): Promise<void> {
    const r = await this.client.range(this.membersPrefix, { prefix: true });
    if (this.stopped) return;
    this.resyncs++;
    const next = new Map<number, Map<string, Member>>();
    for (const kv of r.kvs) {
      const parsed = this.parse(kv.key, kv.value);
      if (!parsed) continue;
      let m = next.get(parsed.vni);
      if (!m) next.set(parsed.vni, (m = new Map()));
      m.set(parsed.member.address, parsed.member);
    }
    const changed = new Set<number>();
    for (const [vni, old] of this.known) {
      const now = next.get(vni);
      if (!now || now.size !== old.size || [...old].some(([a, m]) => JSON.stringify(now.get(a)) !== JSON.stringify(m))) changed.add(vni);
    }
    for (const vni of next.keys()) if (!this.known.has(vni)) changed.add(vni);
    this.known.clear();
    for (const [vni, m] of next) this.known.set(vni, m);
    this.emit(changed);
    const from = r.revision + 1;
    if (this.watcher) this.watcher.resume(from);
    else
      this.watcher = this.client.watch(
        this.membersPrefix,
        { prefix: true, startRevision: from },
        {
          onEvents: (events) => this.onEvents(events),
          onCompacted: (rev) => {
            log.warn({ compactRevision: rev }, 'directory watch behind a compaction: reading again');
            this.resyncLater();
          },
          onState: (state, err) => {
            if (state === 'up') {
              if (!this.connected) log.info('directory reconnected');
              this.connected = true;
              this.kick();
            } else {
              if (this.connected) log.warn({ err: err?.message }, 'directory disconnected: keeping the last-known members');
              this.connected = false;
              this.errors++;
            }
          },
          onError: () => {
            this.errors++;
          },
        },
      );
  }

  private resyncLater(): void {
    if (this.stopped) return;
    this.resync().catch((e: Error) => {
      this.errors++;
      log.warn({ err: e.message }, 're-reading the directory failed; retrying');
      this.retryTimer = setTimeout(() => this.resyncLater(), this.retryMs);
    });
  }

  private onEvents(events: WatchEvent[]): void {
    const changed = new Set<number>();
    for (const ev of events) {
      if (ev.type === 'put') {
        const p = this.parse(ev.kv.key, ev.kv.value);
        if (!p) continue;
        let m = this.known.get(p.vni);
        if (!m) this.known.set(p.vni, (m = new Map()));
        m.set(p.member.address, p.member);
        changed.add(p.vni);
      } else {
        const k = this.keyParts(ev.kv.key);
        if (!k) continue;
        const m = this.known.get(k.vni);
        if (m?.delete(k.address)) changed.add(k.vni);
        if (m && m.size === 0) this.known.delete(k.vni);
      }
    }
    this.emit(changed);
  }

  private emit(vnis: Set<number>): void {
    for (const vni of vnis) {
      const ms = this.members(vni);
      for (const l of this.listeners) {
        try {
          l(vni, ms);
        } catch (e) {
          this.errors++;
          log.warn({ vni, err: (e as Error).message }, 'a directory listener failed');
        }
      }
    }
  }

  private keyParts(key: string): { vni: number; address: string } | null {
    if (!key.startsWith(this.membersPrefix)) return null;
    const [vni, address, ...rest] = key.slice(this.membersPrefix.length).split('/');
    const n = Number(vni);
    if (rest.length || !address || !Number.isInteger(n) || n < 1 || n > 16777215) return null;
    return { vni: n, address };
  }

  private parse(key: string, value: string): { vni: number; member: Member } | null {
    const k = this.keyParts(key);
    if (!k) return null;
    try {
      const v = JSON.parse(value) as Partial<Member>;
      const port = Number.isInteger(v.port) ? (v.port as number) : 4789;
      return { vni: k.vni, member: { address: k.address, port, ...(typeof v.publicKey === 'string' ? { publicKey: v.publicKey } : {}) } };
    } catch {
      this.errors++;
      return null;
    }
  }

  // ---- publishing ------------------------------------------------------------------------------

  /** What this host should have in etcd: its VTEP record and one member key per joined VNI. */
  private desired(): Map<string, string> {
    const want = new Map<string, string>();
    const self = this.self;
    if (!self) return want;
    want.set(`${this.opts.prefix}/vteps/${self.address}`, JSON.stringify(self));
    const member = JSON.stringify({ address: self.address, port: self.port, ...(self.publicKey ? { publicKey: self.publicKey } : {}) });
    for (const vni of [...this.joined].sort((a, b) => a - b)) want.set(`${this.membersPrefix}${vni}/${self.address}`, member);
    return want;
  }

  /** Write the difference between what should be and what was written; serialized, retried. */
  private kick(): void {
    if (this.stopped) return;
    if (this.flushing) {
      this.dirty = true;
      return;
    }
    this.flushing = true;
    void this.flush().finally(() => {
      this.flushing = false;
    });
  }

  private async flush(): Promise<void> {
    do {
      this.dirty = false;
      const lease = this.lease;
      if (!lease || this.stopped) return;
      const want = this.desired();
      const ops: Op[] = [];
      for (const [k, v] of want) if (this.published.get(k) !== v) ops.push({ type: 'put', key: k, value: v, lease: lease.id });
      for (const k of this.published.keys()) if (!want.has(k)) ops.push({ type: 'delete', key: k });
      if (!ops.length) continue;
      const leaseId = lease.id;
      try {
        await this.client.batch(ops);
        if (lease.id === leaseId && this.lease === lease) this.published = want;
        else this.dirty = true;
      } catch (e) {
        this.errors++;
        if (e instanceof EtcdLeaseNotFound) this.published.clear();
        log.warn({ err: (e as Error).message, ops: ops.length }, 'publishing to the directory failed; retrying');
        if (this.flushTimer) clearTimeout(this.flushTimer);
        this.flushTimer = setTimeout(() => this.kick(), this.retryMs);
        return;
      }
    } while (this.dirty && !this.stopped);
  }
}
