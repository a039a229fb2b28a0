/**
 * A thin etcd v3 client over etcd's gRPC gateway (JSON over HTTP/1.1, etcd 3.4+), on
 * Node's own `http`: no package, no vtepd types. Keys and values are UTF-8 strings (base64
 * on the wire); revisions are numbers; lease IDs are decimal strings (they are 64-bit).
 *
 * API
 * - `new EtcdClient({ endpoints, timeoutMs, maxInFlight })`
 * - KV: `range(key, { prefix, end, revision, limit, countOnly, keysOnly })`, `get(key)`,
 *   `put(key, value, { lease })`, `delete(key, { prefix })`, `compact(revision)`,
 *   `txn({ compare, success, failure })` (compare a key's version / createRevision /
 *   modRevision / value / lease; ops put, delete, range), and `batch(ops, maxOps = 128)`,
 *   which writes many ops as txns of at most 128 ops each (etcd's --max-txn-ops), in order.
 * - Leases: `grant(ttl)`, `keepAliveOnce(id)` (the remaining TTL; 0 = gone), `revoke(id)`,
 *   and `lease(ttl, handlers)`: a `Lease` that keeps itself alive every TTL/3 on its own
 *   connection (never queued behind KV traffic), retrying a failed keepalive after 250 ms. When etcd says the lease is gone, it
 *   grants a new one and calls `onRegranted(newId, oldId)`, so the caller re-publishes its
 *   keys under `lease.id`; when etcd cannot be reached for a whole TTL it calls `onLost`.
 * - Watch: `watch(key, { prefix, startRevision, progressNotify, prevKv, idleTimeoutMs },
 *   handlers)` gives a `Watcher` that reports `onEvents(events, revision)` in revision
 *   order and `onProgress(revision)`, reconnects after any error from the revision after
 *   the last one it delivered (so nothing is missed or repeated), and, when the server
 *   says the start revision was compacted, calls `onCompacted(compactRevision)` and waits:
 *   the caller re-reads (`range`) and calls `watcher.resume(readRevision + 1)`. A
 *   compaction is never reported as deletions.
 * - `close()`: ends every watcher and lease loop (revoking nothing) and refuses new calls.
 *
 * Failure handling: every request has a deadline (`timeoutMs`, default 5 s); errors are
 * typed: `EtcdUnavailable` (cannot connect, connection lost), `EtcdTimeout` (a subclass:
 * the deadline passed), `EtcdCompacted` (a read at a compacted revision),
 * `EtcdLeaseNotFound`, `EtcdClosed`, and `EtcdError` (anything else etcd answered, with
 * its gRPC code). A connection refused moves on to the next endpoint. KV requests in flight
 * are bounded (`maxInFlight`): a burst waits in the client, not in etcd's apply queue,
 * where it would delay lease renewals past their TTL. Stream callbacks
 * never throw out of the client: a handler that throws is reported to `onError`.
 */
import { Agent, type ClientRequest, type IncomingMessage, request } from 'node:http';

// ---------------------------------------------------------------------------------------
// Errors

export class EtcdError extends Error {
  override name = 'EtcdError';
  /** The gRPC status code etcd answered with, when it answered. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}
/** etcd could not be reached, or the connection broke before an answer. */
export class EtcdUnavailable extends EtcdError {
  override name = 'EtcdUnavailable';
}
/** No answer within the request's deadline. */
export class EtcdTimeout extends EtcdUnavailable {
  override name = 'EtcdTimeout';
}
/** A read at a revision etcd has compacted away: re-read at the current revision. */
export class EtcdCompacted extends EtcdError {
  override name = 'EtcdCompacted';
}
export class EtcdLeaseNotFound extends EtcdError {
  override name = 'EtcdLeaseNotFound';
}
/** The client was closed. */
export class EtcdClosed extends EtcdError {
  override name = 'EtcdClosed';
}

// ---------------------------------------------------------------------------------------
// Types

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** The lease the key is attached to ('0' for none). */
  lease: string;
}

export interface RangeOptions {
  /** Every key that starts with `key`. */
  prefix?: boolean;
  /** Explicit end of the range (exclusive); overrides `prefix`. */
  end?: string;
  /** Read at this revision (0 or absent: the newest). */
  revision?: number;
  limit?: number;
  countOnly?: boolean;
  keysOnly?: boolean;
}

export interface RangeResult {
  /** The store's revision the read was served at. */
  revision: number;
  kvs: KeyValue[];
  count: number;
  more: boolean;
}

export type Op =
  | { type: 'put'; key: string; value: string; lease?: string }
  | { type: 'delete'; key: string; prefix?: boolean }
  | { type: 'range'; key: string; prefix?: boolean };

export type OpResult = { type: 'put'; revision: number } | { type: 'delete'; deleted: number } | { type: 'range'; kvs: KeyValue[] };

export interface Compare {
  key: string;
  target: 'version' | 'createRevision' | 'modRevision' | 'value' | 'lease';
  /** Default '=='. A key that does not exist has version, createRevision and modRevision 0. */
  result?: '==' | '!=' | '>' | '<';
  value: number | string;
}

export interface TxnRequest {
  compare?: Compare[];
  success?: Op[];
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  responses: OpResult[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchOptions {
  prefix?: boolean;
  end?: string;
  /** First revision to report (absent: from now). */
  startRevision?: number;
  /** Ask etcd for progress notifications (its --experimental-watch-progress-notify-interval). */
  progressNotify?: boolean;
  prevKv?: boolean;
  /** Reconnect when nothing (not even progress) arrived for this long. Off by default. */
  idleTimeoutMs?: number;
}

export interface WatchHandlers {
  /** Events of one or more revisions, in order; `revision` is the header's. */
  onEvents(events: WatchEvent[], revision: number): void;
  /** The watch is current up to `revision` (a progress notification). */
  onProgress?(revision: number): void;
  /**
   * etcd compacted the revisions the watch still needed: re-read, diff, and call
   * `watcher.resume(readRevision + 1)`. Until then the watcher is idle.
   */
  onCompacted(compactRevision: number): void;
  /** The stream connected ('up') or broke ('down', with the reason); it reconnects itself. */
  onState?(state: 'up' | 'down', error?: Error): void;
  /** A handler threw, or the server sent something unexpected. */
  onError?(error: Error): void;
}

export interface LeaseHandlers {
  /** The lease expired in etcd; `newId` was granted in its place: re-publish under it. */
  onRegranted?(newId: string, oldId: string): void;
  /** No keepalive reached etcd for a whole TTL: keys under `id` may be gone. */
  onLost?(id: string): void;
  onError?(error: Error): void;
}

export interface EtcdClientOptions {
  /** e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  /** Deadline of every unary request. Default 5000 ms. */
  timeoutMs?: number;
  /** KV requests in flight at once (more wait in a queue, their deadline not yet running). Default 32. */
  maxInFlight?: number;
}

// ---------------------------------------------------------------------------------------
// Wire helpers

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');
const num = (v: unknown): number => (v === undefined || v === null ? 0 : Number(v));

/** The end of the range of every key starting with `prefix` (etcd's "prefix + 1"). */
export function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, 'utf8');
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]++;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64'); // every key
}

function rangeFields(key: string, prefix?: boolean, end?: string): Record<string, string> {
  if (end !== undefined) return { key: b64(key), range_end: b64(end) };
  if (prefix) return { key: key === '' ? Buffer.from([0]).toString('base64') : b64(key), range_end: prefixEnd(key) };
  return { key: b64(key) };
}

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

function toKv(r: RawKv): KeyValue {
  return {
    key: unb64(r.key),
    value: unb64(r.value),
    createRevision: num(r.create_revision),
    modRevision: num(r.mod_revision),
    version: num(r.version),
    lease: r.lease ?? '0',
  };
}

function opJson(op: Op): Record<string, unknown> {
  switch (op.type) {
    case 'put':
      return { request_put: { key: b64(op.key), value: b64(op.value), ...(op.lease && op.lease !== '0' ? { lease: op.lease } : {}) } };
    case 'delete':
      return { request_delete_range: rangeFields(op.key, op.prefix) };
    case 'range':
      return { request_range: rangeFields(op.key, op.prefix) };
  }
}

const TARGETS = { version: 'VERSION', createRevision: 'CREATE', modRevision: 'MOD', value: 'VALUE', lease: 'LEASE' } as const;
const RESULTS = { '==': 'EQUAL', '!=': 'NOT_EQUAL', '>': 'GREATER', '<': 'LESS' } as const;
const TARGET_FIELD = { version: 'version', createRevision: 'create_revision', modRevision: 'mod_revision', value: 'value', lease: 'lease' } as const;

function compareJson(c: Compare): Record<string, unknown> {
  const v = c.target === 'value' ? b64(String(c.value)) : String(c.value);
  return { key: b64(c.key), target: TARGETS[c.target], result: RESULTS[c.result ?? '=='], [TARGET_FIELD[c.target]]: v };
}

/** Turn etcd's error body ({error, message, code}) into a typed error. */
function serverError(body: { error?: unknown; message?: unknown; code?: unknown }, status: number): EtcdError {
  // A streaming call (keepalive, watch) wraps its error: { error: { grpc_code, message, … } }.
  const inner = typeof body.error === 'object' && body.error !== null ? (body.error as { message?: unknown; grpc_code?: unknown }) : null;
  const message = String(inner ? (inner.message ?? JSON.stringify(inner)) : (body.message ?? body.error ?? `HTTP ${status}`));
  const rawCode = inner ? inner.grpc_code : body.code;
  const code = typeof rawCode === 'number' ? rawCode : undefined;
  if (message.includes('required revision has been compacted')) return new EtcdCompacted(message, code);
  if (message.includes('requested lease not found')) return new EtcdLeaseNotFound(message, code);
  // 14 UNAVAILABLE (e.g. no leader yet, server stopping), 4 DEADLINE_EXCEEDED.
  if (code === 14 || code === 4) return new EtcdUnavailable(message, code);
  return new EtcdError(message, code);
}

// ---------------------------------------------------------------------------------------
// Client

export class EtcdClient {
  readonly timeoutMs: number;
  private readonly endpoints: string[];
  private current = 0;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly queue: (() => void)[] = [];
  private closed = false;
  /** KV traffic: a pool of keep-alive sockets. */
  private readonly kvAgent: Agent;
  /** Lease keepalives: their own sockets, so a burst of KV requests never delays them. */
  private readonly leaseAgent: Agent;
  private readonly watchers = new Set<Watcher>();
  private readonly leases = new Set<Lease>();

  constructor(opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new Error('etcd: no endpoints');
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxInFlight = opts.maxInFlight ?? 32;
    this.kvAgent = new Agent({ keepAlive: true, maxSockets: this.maxInFlight });
    this.leaseAgent = new Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** The endpoint requests go to now. */
  get endpoint(): string {
    return this.endpoints[this.current];
  }

  // --- plumbing -------------------------------------------------------------------------

  /** One POST to every endpoint in turn while connections are refused; typed errors. */
  async call<T = Record<string, unknown>>(path: string, body: unknown, opts: { timeoutMs?: number; lease?: boolean } = {}): Promise<T> {
    if (this.closed) throw new EtcdClosed('etcd: client closed');
    const lease = opts.lease === true;
    if (!lease) await this.acquire();
    try {
      if (this.closed) throw new EtcdClosed('etcd: client closed');
      let lastErr: Error | undefined;
      for (let i = 0; i < this.endpoints.length; i++) {
        const ep = this.current;
        try {
          return (await this.post(this.endpoints[ep], path, body, opts.timeoutMs ?? this.timeoutMs, lease ? this.leaseAgent : this.kvAgent)) as T;
        } catch (e) {
          lastErr = e as Error;
          if (!(e instanceof EtcdUnavailable)) throw e;
          if (this.endpoints.length > 1 && this.current === ep) this.current = (ep + 1) % this.endpoints.length;
          // Only a refused connection surely never reached etcd: try the next endpoint.
          if (!(e as EtcdUnavailable).message.includes('ECONNREFUSED')) throw e;
        }
      }
      throw lastErr ?? new EtcdUnavailable('etcd: no endpoint');
    } finally {
      if (!lease) this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.inFlight < this.maxInFlight) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.inFlight--;
  }

  private post(endpoint: string, path: string, body: unknown, timeoutMs: number, agent: Agent): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      let done = false;
      const finish = (err: Error | null, value?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value);
      };
      const req: ClientRequest = request(
        `${endpoint}${path}`,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => finish(new EtcdUnavailable(`etcd ${endpoint}${path}: ${e.message}`)));
          res.on('end', () => {
            let parsed: Record<string, unknown>;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
            } catch {
              finish(new EtcdError(`etcd ${endpoint}${path}: HTTP ${res.statusCode}, not JSON`));
              return;
            }
            if (res.statusCode !== 200 || (parsed.error !== undefined && parsed.result === undefined)) {
              finish(serverError(parsed, res.statusCode ?? 0));
              return;
            }
            finish(null, parsed);
          });
        },
      );
      const timer = setTimeout(() => {
        finish(new EtcdTimeout(`etcd ${endpoint}${path}: no answer within ${timeoutMs} ms`));
        req.destroy();
      }, timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => finish(new EtcdUnavailable(`etcd ${endpoint}${path}: ${e.code ?? ''} ${e.message}`.trim())));
      req.end(data);
    });
  }

  // --- KV -------------------------------------------------------------------------------

  async range(key: string, opts: RangeOptions = {}): Promise<RangeResult> {
    const r = await this.call<{ header?: { revision?: string }; kvs?: RawKv[]; count?: string; more?: boolean }>('/v3/kv/range', {
      ...rangeFields(key, opts.prefix, opts.end),
      ...(opts.revision ? { revision: String(opts.revision) } : {}),
      ...(opts.limit ? { limit: String(opts.limit) } : {}),
      ...(opts.countOnly ? { count_only: true } : {}),
      ...(opts.keysOnly ? { keys_only: true } : {}),
    });
    return { revision: num(r.header?.revision), kvs: (r.kvs ?? []).map(toKv), count: num(r.count), more: r.more === true };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.range(key)).kvs[0];
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<{ revision: number }> {
    const r = await this.call<{ header?: { revision?: string } }>('/v3/kv/put', {
      key: b64(key),
      value: b64(value),
      ...(opts.lease && opts.lease !== '0' ? { lease: opts.lease } : {}),
    });
    return { revision: num(r.header?.revision) };
  }

  async delete(key: string, opts: { prefix?: boolean; end?: string } = {}): Promise<{ revision: number; deleted: number }> {
    const r = await this.call<{ header?: { revision?: string }; deleted?: string }>('/v3/kv/deleterange', rangeFields(key, opts.prefix, opts.end));
    return { revision: num(r.header?.revision), deleted: num(r.deleted) };
  }

  async txn(t: TxnRequest): Promise<TxnResult> {
    const r = await this.call<{ header?: { revision?: string }; succeeded?: boolean; responses?: Record<string, Record<string, unknown>>[] }>('/v3/kv/txn', {
      compare: (t.compare ?? []).map(compareJson),
      success: (t.success ?? []).map(opJson),
      failure: (t.failure ?? []).map(opJson),
    });
    const responses: OpResult[] = (r.responses ?? []).map((x) => {
      if (x.response_put) return { type: 'put', revision: num((x.response_put.header as { revision?: string } | undefined)?.revision) };
      if (x.response_delete_range) return { type: 'delete', deleted: num(x.response_delete_range.deleted) };
      return { type: 'range', kvs: ((x.response_range?.kvs as RawKv[] | undefined) ?? []).map(toKv) };
    });
    return { succeeded: r.succeeded === true, revision: num(r.header?.revision), responses };
  }

  /**
   * Write `ops` as unconditional txns of at most `maxOps` ops each, one after another, in
   * order. A key written twice starts a new txn (etcd refuses a txn that names a key twice).
   * Not atomic as a whole: each txn is. Returns the revision of each txn.
   */
  async batch(ops: Op[], maxOps = 128): Promise<{ txns: number; revisions: number[] }> {
    const chunks: Op[][] = [];
    let chunk: Op[] = [];
    let keys = new Set<string>();
    for (const op of ops) {
      const k = `${op.type === 'delete' && op.prefix ? 'P' : 'K'}${op.key}`;
      if (chunk.length >= maxOps || (op.type !== 'range' && keys.has(k))) {
        chunks.push(chunk);
        chunk = [];
        keys = new Set();
      }
      chunk.push(op);
      if (op.type !== 'range') keys.add(k);
    }
    if (chunk.length) chunks.push(chunk);
    const revisions: number[] = [];
    for (const c of chunks) revisions.push((await this.txn({ success: c })).revision);
    return { txns: chunks.length, revisions };
  }

  /** Compact the history up to `revision` (reads and watches before it then fail or get 'compacted'). */
  async compact(revision: number, physical = false): Promise<void> {
    await this.call('/v3/kv/compaction', { revision: String(revision), ...(physical ? { physical: true } : {}) });
  }

  // --- leases ---------------------------------------------------------------------------

  async grant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call<{ ID?: string; TTL?: string; error?: string }>('/v3/lease/grant', { TTL: String(ttlSeconds) }, { lease: true });
    if (!r.ID) throw new EtcdError(`etcd: lease grant failed: ${r.error ?? 'no ID'}`);
    return { id: r.ID, ttl: num(r.TTL) };
  }

  /** One keepalive: the lease's remaining TTL in seconds, 0 when etcd no longer has it. */
  async keepAliveOnce(id: string, timeoutMs?: number): Promise<number> {
    const r = await this.call<{ result?: { TTL?: string }; error?: { message?: string; grpc_code?: number } }>(
      '/v3/lease/keepalive',
      { ID: id },
      { lease: true, timeoutMs },
    );
    if (r.error) throw serverError({ message: r.error.message, code: r.error.grpc_code }, 200);
    return num(r.result?.TTL);
  }

  /** Revoke a lease (its keys go); a lease already gone is not an error. */
  async revoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id }, { lease: true });
    } catch (e) {
      if (!(e instanceof EtcdLeaseNotFound)) throw e;
    }
  }

  /** Grant a lease and keep it alive (see `Lease`). */
  async lease(ttlSeconds: number, handlers: LeaseHandlers = {}): Promise<Lease> {
    const { id } = await this.grant(ttlSeconds);
    const l = new Lease(this, id, ttlSeconds, handlers, () => this.leases.delete(l));
    this.leases.add(l);
    l.start();
    return l;
  }

  // --- watch ----------------------------------------------------------------------------

  watch(key: string, opts: WatchOptions, handlers: WatchHandlers): Watcher {
    if (this.closed) throw new EtcdClosed('etcd: client closed');
    const w = new Watcher(this, key, opts, handlers, () => this.watchers.delete(w));
    this.watchers.add(w);
    w.start();
    return w;
  }

  /** @internal the watch stream's request (its own connection, no agent). */
  openStream(body: unknown): ClientRequest {
    const data = JSON.stringify(body);
    const req = request(`${this.endpoint}/v3/watch`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    });
    req.end(data);
    return req;
  }

  /** @internal after a failed stream, try the next endpoint. */
  nextEndpoint(): void {
    if (this.endpoints.length > 1) this.current = (this.current + 1) % this.endpoints.length;
  }

  /** Stop every watcher and lease loop and refuse new calls. Leases are not revoked (they expire). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watchers]) w.close();
    for (const l of [...this.leases]) l.stop();
    for (const resolve of this.queue.splice(0)) resolve();
    this.kvAgent.destroy();
    this.leaseAgent.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

// ---------------------------------------------------------------------------------------
// Lease keepalive loop

/**
 * A lease kept alive every TTL/3. `id` is the current lease: it changes when etcd lost the
 * old one (expired during an outage, or revoked), after `onRegranted(newId, oldId)`.
 */
export class Lease {
  /** Successful keepalives and re-grants, for tests and metrics. */
  keepalives = 0;
  regrants = 0;
  /** Keepalives that failed (each retried after 250 ms). */
  failures = 0;
  /** The longest time between two successful keepalives (or grants), in ms. */
  maxGapMs = 0;
  private lastOk = Date.now();
  private lostReported = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly client: EtcdClient,
    public id: string,
    readonly ttl: number,
    private readonly handlers: LeaseHandlers,
    private readonly onStop: () => void,
  ) {}

  /** @internal */
  start(): void {
    this.schedule();
  }

  /** Next keepalive after TTL/3; after a failed one, 250 ms (the lease has only TTL left). */
  private schedule(failed = false): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), failed ? 250 : Math.max(100, (this.ttl * 1000) / 3));
  }

  private report(f: () => void): void {
    guarded(f, this.handlers.onError);
  }

  private async tick(): Promise<void> {
    let failed = false;
    try {
      // A slow answer is still an answer: the leader applies every entry it committed
      // before it renews (etcd commit fef4a79), so a write backlog delays renewals; wait
      // up to TTL/2 for one.
      const ttl = await this.client.keepAliveOnce(this.id, Math.max(1000, (this.ttl * 1000) / 2));
      if (this.stopped) return;
      if (ttl > 0) {
        this.keepalives++;
        this.maxGapMs = Math.max(this.maxGapMs, Date.now() - this.lastOk);
        this.lastOk = Date.now();
        this.lostReported = false;
      } else {
        await this.regrant();
      }
    } catch (e) {
      if (this.stopped) return;
      failed = true;
      this.failures++;
      if (e instanceof EtcdLeaseNotFound) {
        await this.regrant().catch((err: Error) => this.report(() => this.handlers.onError?.(err)));
      } else {
        this.report(() => this.handlers.onError?.(e as Error));
        if (!this.lostReported && Date.now() - this.lastOk > this.ttl * 1000) {
          this.lostReported = true;
          this.report(() => this.handlers.onLost?.(this.id));
        }
      }
    } finally {
      this.schedule(failed);
    }
  }

  private async regrant(): Promise<void> {
    const old = this.id;
    const { id } = await this.client.grant(this.ttl);
    if (this.stopped) return;
    this.id = id;
    this.regrants++;
    this.lastOk = Date.now();
    this.lostReported = false;
    this.report(() => this.handlers.onRegranted?.(id, old));
  }

  /** Stop keeping the lease alive (it expires after its TTL). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.onStop();
  }

  /** Stop and revoke it now: its keys go at once. */
  async revoke(): Promise<void> {
    this.stop();
    await this.client.revoke(this.id);
  }
}

// ---------------------------------------------------------------------------------------
// Watch stream

interface RawWatchResponse {
  header?: { revision?: string };
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: { type?: string; kv?: RawKv; prev_kv?: RawKv }[];
}

/**
 * One watch, kept alive across broken connections. `nextRevision` is the first revision
 * not yet delivered; a reconnect starts there.
 */
export class Watcher {
  /** The first revision not yet delivered (0: not yet known, i.e. "from now"). */
  nextRevision: number;
  /** Reconnects so far. */
  reconnects = 0;
  /** Set while the watcher waits for resume() after a compaction. */
  compactedAt = 0;
  private req: ClientRequest | null = null;
  private closed = false;
  private backoff = 100;
  private idleTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private generation = 0;

  constructor(
    private readonly client: EtcdClient,
    private readonly key: string,
    private readonly opts: WatchOptions,
    private readonly handlers: WatchHandlers,
    private readonly onClose: () => void,
  ) {
    this.nextRevision = opts.startRevision ?? 0;
  }

  /** @internal */
  start(): void {
    this.connect();
  }

  /** After onCompacted: continue from `fromRevision` (the revision of the re-read + 1). */
  resume(fromRevision: number): void {
    if (this.closed) return;
    this.compactedAt = 0;
    this.nextRevision = fromRevision;
    this.teardown();
    this.connect();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown();
    this.onClose();
  }

  private teardown(): void {
    this.generation++;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.idleTimer = this.retryTimer = null;
    const req = this.req;
    this.req = null;
    req?.destroy();
  }

  private safe(f: () => void): void {
    guarded(f, this.handlers.onError);
  }

  private connect(): void {
    if (this.closed || this.client.isClosed) return;
    const gen = ++this.generation;
    const live = () => gen === this.generation && !this.closed;
    const create: Record<string, unknown> = { ...rangeFields(this.key, this.opts.prefix, this.opts.end) };
    if (this.nextRevision > 0) create.start_revision = String(this.nextRevision);
    if (this.opts.progressNotify) create.progress_notify = true;
    if (this.opts.prevKv) create.prev_kv = true;
    let req: ClientRequest;
    try {
      req = this.client.openStream({ create_request: create });
    } catch (e) {
      this.broken(gen, e as Error);
      return;
    }
    this.req = req;
    this.armIdle(gen);
    req.on('error', (e) => {
      if (live()) this.broken(gen, new EtcdUnavailable(`etcd watch: ${e.message}`));
    });
    req.on('response', (res: IncomingMessage) => {
      if (!live()) {
        res.destroy();
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        this.broken(gen, new EtcdError(`etcd watch: HTTP ${res.statusCode}`));
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (!live()) return;
        this.armIdle(gen);
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl >= 0 && live(); nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.line(gen, line);
        }
      });
      res.on('error', (e) => {
        if (live()) this.broken(gen, new EtcdUnavailable(`etcd watch: ${e.message}`));
      });
      res.on('end', () => {
        if (live()) this.broken(gen, new EtcdUnavailable('etcd watch: stream ended'));
      });
    });
  }

  private armIdle(gen: number): void {
    const ms = this.opts.idleTimeoutMs;
    if (!ms) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (gen === this.generation && !this.closed) this.broken(gen, new EtcdTimeout(`etcd watch: nothing for ${ms} ms`));
    }, ms);
  }

  private line(gen: number, line: string): void {
    let msg: { result?: RawWatchResponse; error?: { message?: string; grpc_code?: number } };
    try {
      msg = JSON.parse(line);
    } catch {
      this.safe(() => this.handlers.onError?.(new EtcdError(`etcd watch: not JSON: ${line.slice(0, 200)}`)));
      return;
    }
    if (msg.error || !msg.result) {
      this.broken(gen, new EtcdUnavailable(`etcd watch: ${msg.error?.message ?? 'no result'}`, msg.error?.grpc_code));
      return;
    }
    const r = msg.result;
    const rev = num(r.header?.revision);
    if (r.canceled) {
      const compact = num(r.compact_revision);
      if (compact > 0) {
        // The revisions we need are gone: stop and let the caller re-read. Never deletions.
        this.teardown();
        this.compactedAt = compact;
        this.safe(() => this.handlers.onCompacted(compact));
      } else {
        this.broken(gen, new EtcdError(`etcd watch canceled: ${r.cancel_reason ?? 'no reason'}`));
      }
      return;
    }
    if (r.created) {
      this.backoff = 100;
      if (this.nextRevision === 0) this.nextRevision = rev + 1;
      this.safe(() => this.handlers.onState?.('up'));
      return;
    }
    const events = r.events ?? [];
    if (events.length === 0) {
      // A progress notification: every event up to `rev` was delivered.
      if (rev + 1 > this.nextRevision) this.nextRevision = rev + 1;
      this.safe(() => this.handlers.onProgress?.(rev));
      return;
    }
    const out: WatchEvent[] = [];
    for (const e of events) {
      if (!e.kv) continue;
      const kv = toKv(e.kv);
      // Never deliver a revision twice (a reconnect starts at nextRevision; this is a guard).
      if (kv.modRevision < this.nextRevision) continue;
      out.push({ type: e.type === 'DELETE' ? 'delete' : 'put', kv, ...(e.prev_kv ? { prevKv: toKv(e.prev_kv) } : {}) });
    }
    if (out.length === 0) return;
    this.nextRevision = out[out.length - 1].kv.modRevision + 1;
    this.safe(() => this.handlers.onEvents(out, rev));
  }

  private broken(gen: number, err: Error): void {
    if (gen !== this.generation || this.closed) return;
    this.teardown();
    this.reconnects++;
    this.safe(() => this.handlers.onState?.('down', err));
    this.client.nextEndpoint();
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 2000);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

/** Run a caller's handler; what it throws goes to onError, and what onError throws is ignored: nothing escapes a timer or a stream callback. */
function guarded(f: () => void, onError: ((e: Error) => void) | undefined): void {
  try {
    f();
  } catch (e) {
    try {
      onError?.(e as Error);
    } catch {
      // ignored
    }
  }
}
