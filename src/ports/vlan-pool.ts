/**
 * VLAN pools on trunks (issue #15): a trunk with `pool: 100-199` gives each tenant it carries
 * without a fixed VLAN (`TrunkConfig.tenants`) an ID from the pool. This module decides
 * which; the daemon asks once per trunk at start, reload and takeover, and shows the answer.
 *
 * ## The rules
 *
 * - A tenant that holds an ID keeps it (across restarts, takeovers and reloads).
 * - A new tenant gets the lowest free ID of the pool; IDs fixed on the trunk (`vlans`) are
 *   never handed out. New tenants are served in the order given (config order).
 * - A tenant no longer given to the trunk frees its ID; the next new tenant may get it.
 * - A full pool refuses the tenant (VlanPoolError 'pool-full', with the tenant and the
 *   range); the others are still assigned. The caller prefixes the config path
 *   (`trunks[N].pool: …`).
 *
 * `assign(req)` takes the trunk's whole wish (every pool tenant it should carry now), so a
 * trunk removed from the config is released with `tenants: []`.
 *
 * ## Without a directory: a state file
 *
 * `FileVlanPoolStore` keeps the assignments in a JSON file next to the control socket
 * (`vlanStateFileOf`: /run/vtepd/vtepd.sock -> /run/vtepd/vtepd.vlans.json, beside the
 * dynamic ports' vtepd.ports.json), written like that one: a temporary file, flushed, renamed
 * over the old one, so a crash mid-write leaves the old file whole. One entry per trunk
 * (interface and namespace) and pool range; a trunk's entry for another range is dropped
 * when it is assigned again (a new range starts afresh).
 *
 * ```json
 * { "v": 1, "trunks": { "eth1 100-199": { "attach": "eth1", "netns": null, "first": 100, "last": 199, "vlans": { "blue": 100 } } } }
 * ```
 *
 * ## With the etcd directory
 *
 * `EtcdVlanPoolStore`: gateways that configure the same range share one pool, and never hand
 * one ID to two tenants. Under the prefix (`directory.etcd.prefix`, default /vtepd/v1), with
 * POOL = `<first>-<last>` and `<tenant>` URI-encoded:
 *
 * | key | value (JSON) |
 * |---|---|
 * | `${prefix}/vlanpools/POOL/ids/<vlan>` | `"<tenant>"`: the claim on VLAN ID `<vlan>` (decimal) |
 * | `${prefix}/vlanpools/POOL/tenants/<tenant>` | `{ "vlan": N, "holders": ["<host> <trunk>", …] }`: the tenant's ID and the trunks that carry it |
 *
 * No key has a lease: an assignment outlives any one gateway (an outage of etcd or of every
 * gateway does not renumber tenants). `<host>` is the host's first underlay address (as in
 * the directory's `vteps/` keys); `<trunk>` is `<interface>` or `<netns>/<interface>`.
 *
 * - Claim: a tenant without a record takes the lowest ID that is neither claimed nor fixed
 *   on this trunk, writing the ID's claim and the tenant's record in one txn that compares
 *   both keys' createRevision == 0. When it fails, the keys are read back: a tenant that
 *   another gateway gave an ID meanwhile takes that one, an ID taken by another tenant is
 *   skipped for the next free one.
 * - Join: a tenant with a record takes its ID; this trunk is added to `holders` (txn on the
 *   record's modRevision, retried after a re-read).
 * - Release: this trunk leaves `holders` (same txn); the last holder deletes the record and
 *   the ID's claim in one txn that compares both modRevisions, so a gateway that joins at the
 *   same moment either lands first (and the release only removes this trunk) or finds no
 *   record and claims afresh. An ID is free only when no trunk anywhere carries its tenant.
 * - A host retired for good leaves its holdings behind: remove `"<host> <trunk>"` from the
 *   records (or the records) by hand.
 * - etcd unreachable: `assign` rejects with VlanPoolError 'unavailable' after the client's
 *   deadline (no hang); nothing is assigned.
 * - A tenant whose ID in etcd is fixed to another tenant on this trunk is refused
 *   ('vlan-fixed'): keep fixed VLANs out of the pool's range.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { TrunkConfig } from '../config/config.js';
import { type Compare, EtcdClient, EtcdError, EtcdUnavailable, type KeyValue, type Op, type OpResult } from '../directory/etcd.js';

/** An inclusive range of VLAN IDs (1..4094). */
export interface VlanRange {
  first: number;
  last: number;
}

/** A trunk's identity: its interface and namespace (null: the daemon's own). */
export interface TrunkRef {
  attach: string;
  netns: string | null;
}

/** What a trunk's pool should give now. */
export interface PoolRequest {
  trunk: TrunkRef;
  pool: VlanRange;
  /** The IDs fixed on the trunk (`vlans`): never handed out. */
  fixed: ReadonlySet<number>;
  /** Every tenant the trunk carries from the pool, in config order (the rest are released). */
  tenants: readonly string[];
}

/** The answer: tenant -> VLAN ID for those that got one; a refusal each for the others. */
export interface PoolAssignment {
  vlans: Map<string, number>;
  refused: VlanPoolError[];
}

export type VlanPoolErrorCode = 'pool-full' | 'vlan-fixed' | 'unavailable' | 'state-file' | 'conflict';

/** A refusal (per tenant: `tenant` set) or a failure of the store (`tenant` null). */
export class VlanPoolError extends Error {
  override name = 'VlanPoolError';
  constructor(
    readonly code: VlanPoolErrorCode,
    readonly tenant: string | null,
    readonly pool: VlanRange,
    message: string,
  ) {
    super(message);
  }
}

export interface VlanPoolStore {
  /** The trunk's assignment now (claims for new tenants, releases for gone ones). */
  assign(req: PoolRequest): Promise<PoolAssignment>;
  close(): void;
}

/** `eth1`, or `ns1/eth1` in a namespace. */
export const trunkName = (t: TrunkRef): string => (t.netns ? `${t.netns}/${t.attach}` : t.attach);
export const rangeName = (p: VlanRange): string => `${p.first}-${p.last}`;

/** The pool request of a trunk, or null when it has no pool. */
export function poolRequestOf(t: TrunkConfig): PoolRequest | null {
  if (!t.pool) return null;
  return { trunk: { attach: t.attach, netns: t.netns }, pool: t.pool, fixed: new Set(t.vlans.map((v) => v.vlan)), tenants: t.tenants };
}

/** The lowest ID of `pool` that `taken` does not refuse, or null. */
export function lowestFree(pool: VlanRange, taken: (vlan: number) => boolean): number | null {
  for (let v = pool.first; v <= pool.last; v++) if (!taken(v)) return v;
  return null;
}

/** The refusal of a tenant by a full pool. */
export function poolFull(pool: VlanRange, tenant: string, byTenants: number, fixed: number): VlanPoolError {
  const size = pool.last - pool.first + 1;
  const how = fixed ? `${byTenants} held by tenants, ${fixed} fixed on the trunk` : `all held by tenants`;
  return new VlanPoolError('pool-full', tenant, pool, `no free VLAN ID for tenant ${tenant}: the pool ${rangeName(pool)} is full (${size} IDs: ${how})`);
}

const fixedIn = (pool: VlanRange, fixed: ReadonlySet<number>): number => [...fixed].filter((v) => v >= pool.first && v <= pool.last).length;

/**
 * The allocation rules, pure: `held` is what the trunk had (tenant -> ID). Tenants that hold
 * an ID inside the pool, not fixed, keep it; the rest get the lowest free ID in order.
 */
export function allocate(pool: VlanRange, fixed: ReadonlySet<number>, held: ReadonlyMap<string, number>, tenants: readonly string[]): PoolAssignment {
  const wanted = [...new Set(tenants)];
  const vlans = new Map<string, number>();
  const used = new Set<number>();
  for (const t of wanted) {
    const v = held.get(t);
    if (v !== undefined && v >= pool.first && v <= pool.last && !fixed.has(v) && !used.has(v)) {
      vlans.set(t, v);
      used.add(v);
    }
  }
  const refused: VlanPoolError[] = [];
  for (const t of wanted) {
    if (vlans.has(t)) continue;
    const v = lowestFree(pool, (x) => used.has(x) || fixed.has(x));
    if (v === null) refused.push(poolFull(pool, t, used.size, fixedIn(pool, fixed)));
    else {
      vlans.set(t, v);
      used.add(v);
    }
  }
  // Map order: config order, so `status` lists tenants as the config does.
  return { vlans: new Map(wanted.filter((t) => vlans.has(t)).map((t) => [t, vlans.get(t)!])), refused };
}

// ---- without a directory: the state file ----------------------------------------------------

/** Next to the control socket: /run/vtepd/vtepd.sock -> /run/vtepd/vtepd.vlans.json. */
export function vlanStateFileOf(controlSocket: string): string {
  return join(dirname(controlSocket), `${basename(controlSocket).replace(/\.sock$/, '')}.vlans.json`);
}

interface FileEntry {
  attach: string;
  netns: string | null;
  first: number;
  last: number;
  vlans: Record<string, number>;
}
interface FileState {
  v: 1;
  trunks: Record<string, FileEntry>;
}

const entryKey = (t: TrunkRef, p: VlanRange): string => `${trunkName(t)} ${rangeName(p)}`;

/** Write `text` to `file` atomically: a temporary file, flushed to disk, renamed over it. */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export class FileVlanPoolStore implements VlanPoolStore {
  constructor(readonly file: string) {}

  private fail(pool: VlanRange, why: string): VlanPoolError {
    return new VlanPoolError('state-file', null, pool, `VLAN pool state ${this.file}: ${why}`);
  }

  /** The file's state; empty when there is none. A file that is not ours throws. */
  private read(pool: VlanRange): FileState {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { v: 1, trunks: {} };
      throw this.fail(pool, (e as Error).message);
    }
    let data: Partial<FileState>;
    try {
      data = JSON.parse(text) as Partial<FileState>;
    } catch (e) {
      throw this.fail(pool, `not JSON (${(e as Error).message})`);
    }
    if (data?.v !== 1 || typeof data.trunks !== 'object' || data.trunks === null) throw this.fail(pool, 'not a vtepd VLAN pool file (v 1)');
    return data as FileState;
  }

  /** Every trunk's assignments as the file has them (for `status` and tests). */
  entries(): FileEntry[] {
    return Object.values(this.read({ first: 1, last: 4094 }).trunks);
  }

  async assign(req: PoolRequest): Promise<PoolAssignment> {
    const state = this.read(req.pool);
    const key = entryKey(req.trunk, req.pool);
    const held = new Map(Object.entries(state.trunks[key]?.vlans ?? {}).filter(([, v]) => Number.isInteger(v)));
    const out = allocate(req.pool, req.fixed, held, req.tenants);
    const next: FileState = { v: 1, trunks: {} };
    for (const [k, e] of Object.entries(state.trunks)) if (!(e.attach === req.trunk.attach && e.netns === req.trunk.netns)) next.trunks[k] = e;
    if (out.vlans.size) {
      const { attach, netns } = req.trunk;
      next.trunks[key] = { attach, netns, first: req.pool.first, last: req.pool.last, vlans: Object.fromEntries(out.vlans) };
    }
    const text = `${JSON.stringify(next, null, 2)}\n`;
    if (JSON.stringify(next) !== JSON.stringify(state)) {
      try {
        writeAtomic(this.file, text);
      } catch (e) {
        throw this.fail(req.pool, (e as Error).message);
      }
    }
    return out;
  }

  close(): void {}
}

// ---- with the etcd directory -----------------------------------------------------------------

export interface EtcdVlanPoolOptions {
  endpoints: string[];
  /** `directory.etcd.prefix` (default /vtepd/v1); a trailing '/' is dropped. */
  prefix?: string;
  /** This host: its first underlay address, normalized (as in the directory's `vteps/` keys). */
  host: string;
  /** Deadline of each etcd request (default 5000 ms). */
  timeoutMs?: number;
}

/** A tenant's record as read, with its key's modRevision. */
interface TenantRec {
  vlan: number;
  holders: string[];
  mod: number;
}
/** An ID's claim as read: the tenant it names and the key's modRevision. */
interface IdClaim {
  tenant: string;
  mod: number;
}
/** A pool as read: ID -> claim, tenant -> record. */
interface Snapshot {
  ids: Map<number, IdClaim>;
  tenants: Map<string, TenantRec>;
}

function parseTenantRec(kv: KeyValue): TenantRec | null {
  try {
    const r = JSON.parse(kv.value) as { vlan?: unknown; holders?: unknown };
    if (typeof r.vlan === 'number' && Number.isInteger(r.vlan) && Array.isArray(r.holders))
      return { vlan: r.vlan, holders: r.holders.filter((h): h is string => typeof h === 'string'), mod: kv.modRevision };
  } catch {
    // not a record vtepd wrote: left out (its key still blocks a claim of that tenant)
  }
  return null;
}

function parseClaim(kv: KeyValue): IdClaim {
  try {
    const t = JSON.parse(kv.value);
    if (typeof t === 'string') return { tenant: t, mod: kv.modRevision };
  } catch {
    // taken by something vtepd did not write: still taken
  }
  return { tenant: '', mod: kv.modRevision };
}

export class EtcdVlanPoolStore implements VlanPoolStore {
  readonly prefix: string;
  private readonly client: EtcdClient;
  /** Txns that lost a race and were retried (for tests). */
  conflicts = 0;

  constructor(private readonly opts: EtcdVlanPoolOptions) {
    this.prefix = (opts.prefix ?? '/vtepd/v1').replace(/\/+$/, '');
    this.client = new EtcdClient({ endpoints: opts.endpoints, timeoutMs: opts.timeoutMs ?? 5000 });
  }

  private base(pool: VlanRange): string {
    return `${this.prefix}/vlanpools/${rangeName(pool)}/`;
  }
  private idKey(pool: VlanRange, vlan: number): string {
    return `${this.base(pool)}ids/${vlan}`;
  }
  private tenantKey(pool: VlanRange, tenant: string): string {
    return `${this.base(pool)}tenants/${encodeURIComponent(tenant)}`;
  }

  async assign(req: PoolRequest): Promise<PoolAssignment> {
    try {
      return await this.assignOnce(req);
    } catch (e) {
      if (!(e instanceof EtcdError)) throw e;
      const how = e instanceof EtcdUnavailable ? 'did not answer' : 'refused';
      const where = `etcd (${this.opts.endpoints.join(', ')}) ${how}`;
      throw new VlanPoolError('unavailable', null, req.pool, `the VLAN pool ${rangeName(req.pool)} lives in the directory, and ${where}: ${e.message}`);
    }
  }

  private async assignOnce(req: PoolRequest): Promise<PoolAssignment> {
    const holder = `${this.opts.host} ${trunkName(req.trunk)}`;
    const snap = await this.read(req.pool);
    const wanted = [...new Set(req.tenants)];
    const keep = new Set(wanted);
    for (const [t, rec] of [...snap.tenants]) if (!keep.has(t) && rec.holders.includes(holder)) await this.release(req.pool, snap, t, holder);
    const vlans = new Map<string, number>();
    const refused: VlanPoolError[] = [];
    for (const t of wanted) {
      const r = await this.take(req, snap, t, holder);
      if (r instanceof VlanPoolError) refused.push(r);
      else vlans.set(t, r);
    }
    return { vlans, refused };
  }

  /** Every claim and record of the pool. */
  private async read(pool: VlanRange): Promise<Snapshot> {
    const base = this.base(pool);
    const r = await this.client.range(base, { prefix: true });
    const snap: Snapshot = { ids: new Map(), tenants: new Map() };
    for (const kv of r.kvs) this.learn(pool, snap, kv.key, kv);
    return snap;
  }

  /** Put what etcd has for `key` (undefined: no such key) into `snap`. */
  private learn(pool: VlanRange, snap: Snapshot, key: string, kv: KeyValue | undefined): void {
    const rest = key.slice(this.base(pool).length);
    if (rest.startsWith('ids/')) {
      const v = Number(rest.slice(4));
      if (!Number.isInteger(v)) return;
      if (kv) snap.ids.set(v, parseClaim(kv));
      else snap.ids.delete(v);
    } else if (rest.startsWith('tenants/')) {
      const t = decodeURIComponent(rest.slice(8));
      const rec = kv ? parseTenantRec(kv) : null;
      if (rec) snap.tenants.set(t, rec);
      else snap.tenants.delete(t);
    }
  }

  /** Apply a failed txn's reads (one range op per key, in `keys` order) to `snap`. */
  private learnFailure(pool: VlanRange, snap: Snapshot, keys: string[], responses: OpResult[]): void {
    keys.forEach((key, i) => {
      const r = responses[i];
      if (r?.type === 'range') this.learn(pool, snap, key, r.kvs[0]);
    });
  }

  /** The txn's revision (the new modRevision of what it wrote), or null when a compare failed (the keys are read back into `snap`). */
  private async txn(pool: VlanRange, snap: Snapshot, compare: Compare[], success: Op[]): Promise<number | null> {
    const keys = [...new Set(compare.map((c) => c.key))];
    const r = await this.client.txn({ compare, success, failure: keys.map((key) => ({ type: 'range', key })) });
    if (r.succeeded) return r.revision;
    this.conflicts++;
    this.learnFailure(pool, snap, keys, r.responses);
    return null;
  }

  /** The tenant's ID: its record's (joining its holders) or the lowest free one, claimed. */
  private async take(req: PoolRequest, snap: Snapshot, t: string, holder: string): Promise<number | VlanPoolError> {
    const { pool, fixed } = req;
    const tKey = this.tenantKey(pool, t);
    const attempts = pool.last - pool.first + 16;
    for (let i = 0; i < attempts; i++) {
      const rec = snap.tenants.get(t);
      if (rec) {
        if (fixed.has(rec.vlan))
          return new VlanPoolError(
            'vlan-fixed',
            t,
            pool,
            `tenant ${t} holds VLAN ${rec.vlan} of the pool ${rangeName(pool)} in the directory, but the trunk has VLAN ${rec.vlan} fixed to another tenant`,
          );
        if (rec.holders.includes(holder)) return rec.vlan;
        const holders = [...rec.holders, holder].sort();
        const put: Op = { type: 'put', key: tKey, value: JSON.stringify({ vlan: rec.vlan, holders }) };
        const rev = await this.txn(pool, snap, [{ key: tKey, target: 'modRevision', value: rec.mod }], [put]);
        if (rev === null) continue;
        snap.tenants.set(t, { vlan: rec.vlan, holders, mod: rev });
        return rec.vlan;
      }
      const v = lowestFree(pool, (x) => snap.ids.has(x) || fixed.has(x));
      if (v === null) return poolFull(pool, t, [...snap.ids.keys()].filter((x) => !fixed.has(x)).length, fixedIn(pool, fixed));
      const iKey = this.idKey(pool, v);
      const rev = await this.txn(
        pool,
        snap,
        [
          { key: tKey, target: 'createRevision', value: 0 },
          { key: iKey, target: 'createRevision', value: 0 },
        ],
        [
          { type: 'put', key: iKey, value: JSON.stringify(t) },
          { type: 'put', key: tKey, value: JSON.stringify({ vlan: v, holders: [holder] }) },
        ],
      );
      if (rev !== null) {
        snap.ids.set(v, { tenant: t, mod: rev });
        snap.tenants.set(t, { vlan: v, holders: [holder], mod: rev });
        return v;
      }
      // A key that exists but is not a record (never written by vtepd) keeps failing the compare.
      if (!snap.tenants.has(t) && !snap.ids.has(v)) break;
    }
    return new VlanPoolError('conflict', t, pool, `no VLAN ID claimed for tenant ${t} in the pool ${rangeName(pool)}: ${tKey} kept changing or is not vtepd's`);
  }

  /** This trunk stops carrying `t`: leave its holders; the last holder frees the ID. */
  private async release(pool: VlanRange, snap: Snapshot, t: string, holder: string): Promise<void> {
    const tKey = this.tenantKey(pool, t);
    for (let i = 0; i < 64; i++) {
      const rec = snap.tenants.get(t);
      if (!rec?.holders.includes(holder)) return;
      const rest = rec.holders.filter((h) => h !== holder);
      const compare: Compare[] = [{ key: tKey, target: 'modRevision', value: rec.mod }];
      const success: Op[] = [];
      if (rest.length) success.push({ type: 'put', key: tKey, value: JSON.stringify({ vlan: rec.vlan, holders: rest }) });
      else {
        success.push({ type: 'delete', key: tKey });
        const iKey = this.idKey(pool, rec.vlan);
        const claim = snap.ids.get(rec.vlan);
        // The ID's claim goes with its tenant's record; a claim naming another tenant stays.
        if (claim?.tenant === t) {
          compare.push({ key: iKey, target: 'modRevision', value: claim.mod });
          success.push({ type: 'delete', key: iKey });
        }
      }
      const rev = await this.txn(pool, snap, compare, success);
      if (rev !== null) {
        if (rest.length) snap.tenants.set(t, { vlan: rec.vlan, holders: rest, mod: rev });
        else {
          snap.tenants.delete(t);
          if (snap.ids.get(rec.vlan)?.tenant === t) snap.ids.delete(rec.vlan);
        }
        return;
      }
    }
    throw new VlanPoolError('conflict', t, pool, `tenant ${t}'s record ${tKey} kept changing while this trunk released it`);
  }

  close(): void {
    this.client.close();
  }
}
