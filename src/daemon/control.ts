/**
 * The control API: newline-delimited JSON over a Unix stream socket.
 *
 *   request   {"id": 1, "method": "fdb.show", "params": {"tenant": "blue"}}
 *   response  {"id": 1, "ok": true, "result": [...]}
 *             {"id": 1, "ok": false, "error": {"message": "no tenant \"x\"", "code": "EINVAL",
 *                                              "errors": [{"path": "tenants[0].vni", "message": "..."}]}}
 *   event     {"id": 1, "event": "data", "data": "<base64>"}   (streaming methods: capture)
 *
 * One JSON object per line, UTF-8. A connection may carry many requests; responses carry
 * the request's id. Streaming methods send events with the request's id before their one
 * response. Methods: status, fdb.show, fdb.add, fdb.del, fdb.flush, peers, stats, reload,
 * restart, trace, capture, evpn.routes, evpn.neighbors, net.create, net.delete, net.list, net.pool, port.add, port.del,
 * port.list, log.level, and handover (the takeover of a successor daemon). The server
 * side lives in src/daemon/runtime.ts; this module is the protocol, the socket and the client.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { logger } from '../util/log.js';
import type { ConfigError } from '../config/config.js';

const log = logger('control');

export interface ApiRequest {
  id: number | string;
  method: string;
  params?: Record<string, unknown>;
}

export interface ApiErrorBody {
  message: string;
  code: string;
  errors?: ConfigError[];
}

/** An error a handler throws to answer with a code and (config) errors. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code = 'EINVAL',
    readonly errors?: ConfigError[],
  ) {
    super(message);
  }
}

/** What a handler gets besides its params: a way to stream events and to hear the client leave. */
export interface CallContext {
  event(name: string, body: Record<string, unknown>): void;
  /** Resolves when the client closes the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
}

export type Handler = (params: Record<string, unknown>, ctx: CallContext) => Promise<unknown> | unknown;

/** A control socket serving `handlers`. */
export class ControlServer {
  private server: Server | undefined;
  private readonly conns = new Set<Socket>();

  constructor(private readonly handlers: Record<string, Handler>) {}

  /**
   * Listen on `path`: its directory is made if missing; a stale socket file (nobody
   * answers) is replaced; a live one is an error (another vtepd runs there).
   */
  async listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    if (existsSync(path)) {
      if (await answers(path)) throw new ApiError(`another vtepd answers on ${path} (stop it, or start with --takeover)`, 'EADDRINUSE');
      unlinkSync(path);
    }
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o660);
    this.server = server;
    this.path = path;
    log.info({ socket: path }, 'control socket listening');
  }

  path: string | undefined;

  /**
   * Stop accepting connections; the socket file is removed at once (libuv unlinks it when
   * the listening handle closes). Open connections stay: a handover answers on one.
   */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.close();
  }

  /** Close every open connection too. */
  destroyAll(): void {
    for (const c of this.conns) c.destroy();
  }

  private serve(sock: Socket): void {
    this.conns.add(sock);
    let buf = '';
    let closed = false;
    let onClose: () => void = () => {};
    const closedP = new Promise<void>((r) => {
      onClose = r;
    });
    sock.on('close', () => {
      closed = true;
      this.conns.delete(sock);
      onClose();
    });
    sock.on('error', () => {
      /* the close event follows */
    });
    const send = (obj: unknown) => {
      if (!closed && sock.writable) sock.write(`${JSON.stringify(obj)}\n`);
    };
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (buf.length > 4 << 20) {
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) void this.dispatch(line, send, { closed: closedP, isClosed: () => closed });
      }
    });
  }

  private async dispatch(line: string, send: (o: unknown) => void, conn: { closed: Promise<void>; isClosed: () => boolean }): Promise<void> {
    let req: ApiRequest;
    try {
      req = JSON.parse(line) as ApiRequest;
      if (typeof req !== 'object' || req === null || typeof req.method !== 'string') throw new Error('not a request');
    } catch {
      send({ id: null, ok: false, error: { message: 'bad request: expected one JSON object {id, method, params} per line', code: 'EINVAL' } });
      return;
    }
    const id = req.id ?? null;
    const handler = Object.hasOwn(this.handlers, req.method) ? this.handlers[req.method] : undefined;
    if (!handler) {
      send({ id, ok: false, error: { message: `unknown method "${req.method}"; methods: ${Object.keys(this.handlers).join(', ')}`, code: 'ENOSYS' } });
      return;
    }
    const ctx: CallContext = {
      event: (name, body) => send({ id, event: name, ...body }),
      closed: conn.closed,
      isClosed: conn.isClosed,
    };
    try {
      const params = req.params && typeof req.params === 'object' ? req.params : {};
      const result = await handler(params, ctx);
      send({ id, ok: true, result: result ?? null });
    } catch (e) {
      const err = e as Error & { code?: unknown; errors?: ConfigError[] };
      const body: ApiErrorBody = { message: err.message, code: typeof err.code === 'string' ? err.code : 'EINVAL' };
      if (err.errors) body.errors = err.errors;
      log.debug({ method: req.method, err: err.message }, 'request failed');
      send({ id, ok: false, error: body });
    }
  }
}

/** True if something accepts connections on `path`. */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface RequestOptions {
  /** Events the method streams before its response. */
  onEvent?: (name: string, body: Record<string, unknown>) => void;
  /** Give up after this long (default 30 s; 0: never). */
  timeoutMs?: number;
  /** Aborts the request by closing the connection. */
  signal?: AbortSignal;
}

/** The daemon's error, as thrown to the client. */
export class RemoteError extends Error {
  constructor(readonly body: ApiErrorBody) {
    super(body.message);
  }
  get code(): string {
    return this.body.code;
  }
  get errors(): ConfigError[] | undefined {
    return this.body.errors;
  }
}

/** One request on its own connection; resolves with the result or rejects with a RemoteError. */
export function request<T = unknown>(path: string, method: string, params: Record<string, unknown> = {}, opts: RequestOptions = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let done = false;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = timeoutMs > 0 ? setTimeout(() => finish(new Error(`${path}: no answer to ${method} within ${timeoutMs} ms`)), timeoutMs) : undefined;
    const onAbort = () => finish(new Error('aborted'));
    opts.signal?.addEventListener('abort', onAbort);
    function finish(err?: Error, value?: T) {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(value as T);
    }
    sock.once('connect', () => sock.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? `no vtepd answers on ${path} (${e.code}); is it running? (--socket PATH or --config FILE)`
          : `${path}: ${e.message}`;
      const err = new Error(why) as NodeJS.ErrnoException;
      err.code = e.code;
      finish(err);
    });
    sock.on('close', () => finish(new Error(`${path}: the daemon closed the connection before answering ${method}`)));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const msg = JSON.parse(line) as { event?: string; ok?: boolean; result?: T; error?: ApiErrorBody };
        if (msg.event !== undefined) {
          const { id: _id, event, ...body } = msg as Record<string, unknown>;
          opts.onEvent?.(String(event), body);
        } else if (msg.ok) finish(undefined, msg.result);
        else finish(new RemoteError(msg.error ?? { message: 'unknown error', code: 'EUNKNOWN' }));
      }
    });
  });
}
