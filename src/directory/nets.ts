/**
 * Tenant networks in etcd, with VNIs from a pool (issue #13, self-service, part 1): what
 * `vtepd net create|delete|list|pool` does, on top of EtcdClient (src/directory/etcd.ts). No
 * daemon is needed: any host that reaches etcd can run it, and no two networks ever get the
 * same VNI, whoever creates them concurrently.
 *
 * ## Data model, under the prefix (default /vtepd/v1)
 *
 * | key | value (JSON) | written by |
 * |---|---|---|
 * | `${prefix}/pool` | `{ "first": N, "last": M }`: the VNIs `net create` may hand out, inclusive | the operator (`vtepd net pool --first N --last M`) |
 * | `${prefix}/nets/<tenant>/<name>` | `{ "tenant", "name", "vni" }`: a network | `net create`, removed by `net delete` |
 * | `${prefix}/vnis/<vni>` | `"<tenant>/<name>"`: the claim on VNI `<vni>` (decimal) | with the network, in the same txn |
 *
 * No key has a lease: a network lives until it is deleted. Tenant and network names are 1..32
 * of `[A-Za-z0-9_.-]` (no `/`, so a key names one network).
 *
 * ## How a VNI is claimed
 *
 * `create` reads the pool and the claims (`${prefix}/vnis/`, keys only), picks a free VNI
 * inside the pool and writes the network and its claim in one txn that compares both keys'
 * createRevision == 0 (neither exists). When the txn fails because another creator took that
 * VNI first, it reads the claims again and picks another: the lowest free VNI on the first
 * attempt, a random free one after a conflict (so N concurrent creators do not all race for
 * the same next VNI), at most `maxAttempts` (32) times. An explicit VNI (`--vni`) must be
 * inside the pool and free; it is never replaced by another. Changing the pool changes
 * nothing that exists: networks outside a narrowed pool keep their VNIs.
 *
 * `delete` reads the network and its claim and deletes both in one txn that compares their
 * modRevisions with what it read (retried when something changed meanwhile). A claim that
 * is not the network's (never written by vtepd) is left alone.
 */
import type { EtcdClient, Compare, Op } from './etcd.js';

export const VNI_MAX = 16_777_215;
const NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;

export interface VniPool {
  first: number;
  last: number;
}

export interface Network {
  tenant: string;
  name: string;
  vni: number;
}

export type NetErrorCode = 'invalid' | 'pool-not-set' | 'pool-exhausted' | 'vni-outside-pool' | 'vni-taken' | 'exists' | 'not-found' | 'conflict';

/** A refusal with a stable `code` (the CLI's --json and the tests use it). */
export class NetError extends Error {
  override name = 'NetError';
  constructor(
    readonly code: NetErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function checkName(what: 'tenant' | 'name', v: unknown): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) throw new NetError('invalid', `${what}: must be 1..32 characters of A-Z a-z 0-9 _ . -`);
  return v;
}

export function checkVni(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > VNI_MAX) throw new NetError('invalid', `${what}: must be an integer 1..${VNI_MAX}`);
  return v;
}

export interface NetsOptions {
  /** Default /vtepd/v1; a trailing "/" is dropped. */
  prefix?: string;
  /** Conflicts `create` retries before it gives up (default 32). */
  maxAttempts?: number;
}

export class Nets {
  readonly prefix: string;
  private readonly maxAttempts: number;
  /** Txn conflicts retried so far (for tests). */
  conflicts = 0;

  constructor(
    private readonly etcd: EtcdClient,
    opts: NetsOptions = {},
  ) {
    this.prefix = (opts.prefix ?? '/vtepd/v1').replace(/\/+$/, '');
    this.maxAttempts = opts.maxAttempts ?? 32;
  }

  private get poolKey(): string {
    return `${this.prefix}/pool`;
  }
  private netKey(tenant: string, name: string): string {
    return `${this.prefix}/nets/${tenant}/${name}`;
  }
  private vniKey(vni: number): string {
    return `${this.prefix}/vnis/${vni}`;
  }

  /** The pool, or undefined when no operator has set one. */
  async pool(): Promise<VniPool | undefined> {
    const kv = await this.etcd.get(this.poolKey);
    if (!kv) return undefined;
    let p: unknown;
    try {
      p = JSON.parse(kv.value);
    } catch {
      throw new NetError('invalid', `${this.poolKey}: not JSON: ${kv.value.slice(0, 100)}`);
    }
    const { first, last } = (p ?? {}) as Record<string, unknown>;
    try {
      return validPool(first, last);
    } catch (e) {
      throw new NetError('invalid', `${this.poolKey}: ${(e as Error).message}`);
    }
  }

  /** Set the pool (replaces the old one; existing networks keep their VNIs). */
  async setPool(first: number, last: number): Promise<VniPool> {
    const p = validPool(first, last);
    await this.etcd.put(this.poolKey, JSON.stringify(p));
    return p;
  }

  /** Every network (of one tenant), sorted by tenant, then name. */
  async list(tenant?: string): Promise<Network[]> {
    const key = tenant === undefined ? `${this.prefix}/nets/` : `${this.prefix}/nets/${checkName('tenant', tenant)}/`;
    const r = await this.etcd.range(key, { prefix: true });
    const out: Network[] = [];
    for (const kv of r.kvs) {
      const n = parseNetwork(kv.value);
      if (n) out.push(n);
    }
    return out.sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** One network, or undefined. */
  async get(tenant: string, name: string): Promise<Network | undefined> {
    const kv = await this.etcd.get(this.netKey(checkName('tenant', tenant), checkName('name', name)));
    return kv ? parseNetwork(kv.value) : undefined;
  }

  /** Create a network with a VNI from the pool (or `vni`, which must be in the pool and free). */
  async create(req: { tenant: string; name: string; vni?: number }): Promise<Network> {
    const tenant = checkName('tenant', req.tenant);
    const name = checkName('name', req.name);
    const want = req.vni === undefined ? undefined : checkVni('vni', req.vni);
    const pool = await this.pool();
    if (!pool) throw new NetError('pool-not-set', `no VNI pool: set one with vtepd net pool --first N --last M (key ${this.poolKey})`);
    if (want !== undefined && (want < pool.first || want > pool.last))
      throw new NetError('vni-outside-pool', `vni ${want} is outside the pool ${pool.first}..${pool.last}`);
    const netKey = this.netKey(tenant, name);
    const owner = `${tenant}/${name}`;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      let vni: number;
      if (want !== undefined) vni = want;
      else {
        const claimed = await this.claimedIn(pool);
        const free = pool.last - pool.first + 1 - claimed.length;
        if (free <= 0) throw new NetError('pool-exhausted', `the VNI pool ${pool.first}..${pool.last} is exhausted (${claimed.length} networks)`);
        vni = nthFree(pool, claimed, attempt === 0 ? 0 : Math.floor(Math.random() * free));
      }
      const vniKey = this.vniKey(vni);
      const network: Network = { tenant, name, vni };
      const r = await this.etcd.txn({
        compare: [
          { key: netKey, target: 'createRevision', value: 0 },
          { key: vniKey, target: 'createRevision', value: 0 },
        ],
        success: [
          { type: 'put', key: netKey, value: JSON.stringify(network) },
          { type: 'put', key: vniKey, value: JSON.stringify(owner) },
        ],
        failure: [
          { type: 'range', key: netKey },
          { type: 'range', key: vniKey },
        ],
      });
      if (r.succeeded) return network;
      const [netR, vniR] = r.responses;
      const existing = netR?.type === 'range' ? netR.kvs[0] : undefined;
      if (existing) {
        const n = parseNetwork(existing.value);
        throw new NetError('exists', `network ${owner} already exists${n ? ` (vni ${n.vni})` : ''}`);
      }
      if (want !== undefined) {
        const by = vniR?.type === 'range' ? vniR.kvs[0]?.value : undefined;
        throw new NetError('vni-taken', `vni ${want} is taken${by ? ` by ${parseOwner(by)}` : ''}`);
      }
      this.conflicts++;
    }
    throw new NetError('conflict', `no free VNI claimed after ${this.maxAttempts} attempts (too many concurrent creators); try again`);
  }

  /** Delete a network and free its VNI, in one txn. Returns what was deleted. */
  async delete(req: { tenant: string; name: string }): Promise<Network> {
    const tenant = checkName('tenant', req.tenant);
    const name = checkName('name', req.name);
    const netKey = this.netKey(tenant, name);
    const owner = `${tenant}/${name}`;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const kv = await this.etcd.get(netKey);
      if (!kv) throw new NetError('not-found', `network ${owner} not found`);
      const n = parseNetwork(kv.value);
      const compare: Compare[] = [{ key: netKey, target: 'modRevision', value: kv.modRevision }];
      const success: Op[] = [{ type: 'delete', key: netKey }];
      if (n) {
        const vniKey = this.vniKey(n.vni);
        const claim = await this.etcd.get(vniKey);
        compare.push({ key: vniKey, target: 'modRevision', value: claim?.modRevision ?? 0 });
        if (claim && parseOwner(claim.value) === owner) success.push({ type: 'delete', key: vniKey });
      }
      const r = await this.etcd.txn({ compare, success });
      if (r.succeeded) return n ?? { tenant, name, vni: 0 };
      this.conflicts++;
    }
    throw new NetError('conflict', `network ${owner} kept changing during ${this.maxAttempts} attempts to delete it; try again`);
  }

  /** The claimed VNIs inside `pool`, ascending. */
  private async claimedIn(pool: VniPool): Promise<number[]> {
    const base = `${this.prefix}/vnis/`;
    const r = await this.etcd.range(base, { prefix: true, keysOnly: true });
    const out: number[] = [];
    for (const kv of r.kvs) {
      const v = Number(kv.key.slice(base.length));
      if (Number.isInteger(v) && v >= pool.first && v <= pool.last) out.push(v);
    }
    return out.sort((a, b) => a - b);
  }
}

function validPool(first: unknown, last: unknown): VniPool {
  const f = checkVni('first', first);
  const l = checkVni('last', last);
  if (f > l) throw new NetError('invalid', `first (${f}) must not be greater than last (${l})`);
  return { first: f, last: l };
}

/** The `n`-th (0-based) VNI of `pool` not in `claimed` (ascending, all inside the pool). */
export function nthFree(pool: VniPool, claimed: number[], n: number): number {
  let v = pool.first + n;
  for (const c of claimed) {
    if (c <= v) v++;
    else break;
  }
  return v;
}

function parseNetwork(value: string): Network | undefined {
  try {
    const n = JSON.parse(value) as Partial<Network>;
    if (typeof n.tenant === 'string' && typeof n.name === 'string' && typeof n.vni === 'number') return { tenant: n.tenant, name: n.name, vni: n.vni };
  } catch {
    // a record vtepd did not write: left out
  }
  return undefined;
}

function parseOwner(value: string): string {
  try {
    const v = JSON.parse(value);
    return typeof v === 'string' ? v : value;
  } catch {
    return value;
  }
}
