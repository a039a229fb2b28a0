/**
 * `vtepd run`: the Daemon with everything an operator talks to around it — the control
 * socket (src/daemon/control.ts), the metrics endpoint (src/daemon/metrics.ts), signals (SIGHUP reloads,
 * SIGINT/SIGTERM stop), systemd notification, and the takeover restart.
 *
 * Takeover (a new process replaces a running one without the TAPs ever disappearing):
 *   1. new: listens on a private handover socket next to the control socket and asks the
 *      old daemon, over the control API, to hand over to it (`handover`).
 *   2. old: takes an FDB snapshot, sends every TAP fd, its underlay UDP sockets
 *      (dpUnderlayFds) and the snapshot with SCM_RIGHTS (native/scm.c), then stops its
 *      data path (its threads stop reading; what arrives meanwhile waits in the TAP queues
 *      and socket buffers), closes its metrics endpoint and control socket, and answers.
 *      A data path that cannot hand its sockets over stops first and closes them instead.
 *   3. new: builds a Daemon over the adopted TAP fds and underlay sockets (or sockets it
 *      binds afresh) and the old running config, restores the FDB, starts forwarding,
 *      tells systemd it is the main PID, takes the control socket and the metrics
 *      endpoint, then reloads its own config file as a diff.
 * An underlay change (address, port, source ports, queues), which a reload refuses, is
 * what a restart is for: the new daemon sends its file's `underlay` with the request; if
 * it differs, the old one hands over no underlay socket and closes its own before it
 * answers (step 2's fallback), and the new one starts on its file's underlay.
 *   4. old: keeps its copies of the fds until the new daemon answers on the control
 *      socket, then closes them and exits. If the new one dies first, the old one builds
 *      a data path again over its own fds and carries on: no TAP is lost either way.
 * Forwarding pauses from step 2 to step 3 (measured and reported as `takeover.gapMs`).
 */
import { spawn } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Address4, Address6 } from 'ip-address';
import { loadConfig, parseMac, type Config } from '../config/config.js';
import { answers, ApiError, ControlServer, request, type CallContext, type Handler } from './control.js';
import { Daemon, datapathOptions, type Adopted, type DaemonHooks } from './daemon.js';
import type { PortHandle } from '../ports/tap.js';
import { NativeDatapath } from '../native/datapath.js';
import { Metrics } from './metrics.js';
import { closeQuietly, fdClose, scmAccept, scmListen, scmSend, sdNotify } from '../native/system.js';
import { runCapture, type CaptureRequest } from './capture.js';
import { eqJson } from '../config/reconcile.js';
import type { SnapshotEntry, Where } from '../core/switch.js';
import type { PortConfig } from '../config/config.js';
import { logger } from '../util/log.js';

const log = logger('server');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the old daemon sends with the fds. */
interface HandoverPayload {
  v: 1;
  fromPid: number;
  /** Date.now() when the old data path stopped. */
  frozenAt: number;
  config: Config;
  /** fdIndex: the TAP's (queue 0's) fd; queueFdIndex: a multi-queue TAP's other queues. */
  ports: { tenant: string; tap: string; ifindex: number; mac: string; config: PortConfig; fdIndex: number; queueFdIndex?: number[] }[];
  fdb: SnapshotEntry[];
  reloads: { ok: number; failed: number };
  /** Indexes (in the fds) of the underlay sockets, when the data path can hand them over. */
  underlayFdIndex: number[];
}


export interface RunOptions {
  configPath: string;
  takeover?: boolean;
  /** Printed once running (the CLI's "vtepd: running ..." line). */
  onRunning?: (d: Daemon) => void;
}

// ---- parameter checks (the API's own validation, with exact messages) ----------------------

function str(p: Record<string, unknown>, key: string, required = true): string | undefined {
  const v = p[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new ApiError(`${key}: is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new ApiError(`${key}: must be a string`);
  return v;
}

function anyMac(v: string, key: string): string {
  if (!/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i.test(v)) throw new ApiError(`${key}: must be a MAC like 02:00:00:00:01:01`);
  return v.toLowerCase().replaceAll('-', ':');
}

function unicastMac(v: string, key: string): string {
  const r = parseMac(v);
  if ('error' in r) throw new ApiError(`${key}: ${r.error}`);
  return r.value;
}

function address(v: string, key: string): string {
  if (Address4.isValid(v) && !v.includes('/')) return new Address4(v).correctForm();
  if (Address6.isValid(v) && !v.includes('/') && !v.includes('%')) return new Address6(v).correctForm();
  throw new ApiError(`${key}: must be an IPv4 or IPv6 address`);
}

function num(p: Record<string, unknown>, key: string, lo: number, hi: number): number | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new ApiError(`${key}: must be an integer ${lo}..${hi}`);
  return v;
}

/** The daemon process: one Daemon at a time (a failed handover's recovery makes a new one). */
export class Runtime {
  daemon!: Daemon;
  readonly control: ControlServer;
  readonly metrics: Metrics;
  readonly configPath: string;
  private busy: string | null = null;
  private successor: { pid: number; done: (ok: boolean) => void } | null = null;
  private exiting = false;

  constructor(configPath: string) {
    this.configPath = resolve(configPath);
    this.control = new ControlServer(this.handlers());
    this.metrics = new Metrics(() => this.daemon);
  }

  private hooks(): DaemonHooks {
    return {
      control: async (socket) => {
        await this.control.close();
        await this.control.listen(socket);
      },
      metrics: (m) => this.metrics.listen(m),
      eventBatch: (n) => this.metrics.observeBatch(n),
    };
  }

  private adopt(d: Daemon): void {
    this.daemon = d;
  }

  /** Start fresh from a config. */
  async start(config: Config): Promise<void> {
    const socket = config.control.socket;
    if (existsSync(socket) && (await answers(socket)))
      throw new Error(`another vtepd answers on ${socket}: stop it, or start with --takeover to replace it`);
    this.adopt(await Daemon.start(config, { hooks: this.hooks() }));
    try {
      await this.control.listen(socket);
      await this.metrics.listen(config.metrics);
    } catch (e) {
      this.daemon.close();
      await this.control.close();
      throw e;
    }
    sdNotify(`READY=1\nMAINPID=${process.pid}\nSTATUS=running`);
  }

  /** Take over from the daemon answering on the config's control socket (or start fresh if none does). */
  async takeover(fileConfig: Config): Promise<void> {
    const socket = fileConfig.control.socket;
    if (!existsSync(socket) || !(await answers(socket))) {
      log.warn({ socket }, 'takeover: no vtepd answers on the control socket; starting fresh');
      process.stderr.write(`vtepd: --takeover: no vtepd answers on ${socket}; starting fresh\n`);
      return this.start(fileConfig);
    }
    const path = join(dirname(socket), `.vtepd-takeover-${process.pid}.sock`);
    const lfd = scmListen(path);
    let got: { fds: number[]; payload: Buffer } | null = null;
    let answered: Promise<unknown>;
    try {
      let failure: Error | undefined;
      answered = request(socket, 'handover', { path, pid: process.pid, underlay: fileConfig.underlay }, { timeoutMs: 30_000 });
      answered.catch((e: Error) => { failure = e; });
      const until = Date.now() + 30_000;
      while (!got) {
        got = scmAccept(lfd, 5, 10_000);
        if (got) break;
        if (failure) throw new Error(`takeover refused: ${failure.message}`);
        if (Date.now() > until) throw new Error('takeover: the old daemon sent nothing within 30 s');
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      fdClose(lfd);
      try { unlinkSync(path); } catch { /* gone */ }
    }
    const p = JSON.parse(got.payload.toString('utf8')) as HandoverPayload;
    const ports = new Map<string, PortHandle>();
    for (const x of p.ports) {
      ports.set(x.tap, { fd: got.fds[x.fdIndex]!, ifindex: x.ifindex, mac: x.mac, queueFds: (x.queueFdIndex ?? []).map((i) => got!.fds[i]!) });
    }
    const adopted: Adopted = { ports, fdb: p.fdb };
    const underlayFds = (p.underlayFdIndex ?? []).map((i) => got!.fds[i]!);
    // The old running config, on this file's underlay (the one thing a reload cannot change).
    const start = eqJson(p.config.underlay, fileConfig.underlay) ? p.config : { ...p.config, underlay: fileConfig.underlay };
    const d = await this.startAdopted(start, adopted, underlayFds);
    const gapMs = Date.now() - p.frozenAt;
    d.takeover = { fromPid: p.fromPid, gapMs };
    Object.assign(d.reloads, p.reloads);
    this.adopt(d);
    log.info({ fromPid: p.fromPid, gapMs, ports: p.ports.length, fdb: p.fdb.length }, 'took over');
    // systemd (NotifyAccess=all) follows this process as the service's main PID from now,
    // before the old one can see us answer and exit.
    sdNotify(`MAINPID=${process.pid}`);
    await answered; // the old daemon has let go of the control socket and the metrics endpoint
    await this.control.listen(p.config.control.socket);
    await this.metrics.listen(p.config.metrics);
    sdNotify(`READY=1\nSTATUS=running (took over from ${p.fromPid})`);
    process.stderr.write(`vtepd: took over from pid ${p.fromPid}: ${p.ports.length} TAP(s), ${p.fdb.length} FDB entries, forwarding paused ${gapMs} ms\n`);
    // The config file may have changed with the upgrade: apply it as a diff.
    const r = await d.reload(fileConfig);
    if (!r.ok) process.stderr.write(`vtepd: after takeover, the config file could not be applied fully:\n${[...r.errors.map((e) => `  ${e.path}: ${e.message}`), ...r.failed.map((f) => `  ${f}`)].join('\n')}\n`);
  }

  /**
   * A Daemon over adopted TAPs: on the old daemon's underlay sockets when they came along
   * (nothing is lost in the pause: packets wait in the socket buffers), else on sockets
   * bound afresh (the old daemon has closed its own; retried briefly).
   */
  private async startAdopted(config: Config, adopted: Adopted, underlayFds: number[]): Promise<Daemon> {
    // Once a data path has adopted the sockets they are its own: it closes them (once) when
    // it stops, so they must not be closed here again (the numbers may be reused by then).
    let adoptedByDp = false;
    if (underlayFds.length) {
      try {
        const dp = new NativeDatapath(datapathOptions(config, underlayFds));
        adoptedByDp = true;
        return await Daemon.start(config, { adopt: adopted, hooks: this.hooks(), dp });
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'adopting the underlay sockets failed; binding new ones');
      }
    }
    if (!adoptedByDp) closeQuietly(underlayFds);
    for (let attempt = 0; ; attempt++) {
      try {
        return await Daemon.start(config, { adopt: adopted, hooks: this.hooks() });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw e;
        await sleep(10);
      }
    }
  }

  // ---- reload ----------------------------------------------------------------------------

  async reload(): Promise<{ changes: string[]; failed: string[] }> {
    if (this.busy) throw new ApiError(`busy: ${this.busy}`, 'EBUSY');
    const r = loadConfig(this.configPath);
    if (!r.ok) {
      this.daemon.reloads.failed++;
      throw new ApiError(`${this.configPath}: ${r.errors.length} error(s); the running config stays`, 'EINVAL', r.errors);
    }
    this.busy = 'reload';
    sdNotify(`RELOADING=1\nMONOTONIC_USEC=${Math.round(performance.timeOrigin * 1000 + performance.now() * 1000)}`);
    try {
      const res = await this.daemon.reload(r.config);
      if (res.errors.length) throw new ApiError(`${this.configPath}: cannot be applied by a reload; the running config stays`, 'EINVAL', res.errors);
      if (res.failed.length) throw new ApiError(`${this.configPath}: ${res.failed.length} change(s) failed (the others were applied):\n${res.failed.join('\n')}`, 'EIO');
      return { changes: res.changes, failed: res.failed };
    } finally {
      this.busy = null;
      sdNotify('READY=1');
    }
  }

  /** SIGHUP: reload, and say what happened on stderr. */
  async reloadOnSignal(): Promise<void> {
    try {
      const r = await this.reload();
      process.stderr.write(`vtepd: reloaded ${this.configPath}: ${r.changes.length ? r.changes.join('; ') : 'no change'}\n`);
    } catch (e) {
      const err = e as ApiError;
      process.stderr.write(`vtepd: reload failed: ${err.message}\n`);
      for (const x of err.errors ?? []) process.stderr.write(`${this.configPath}: ${x.path}: ${x.message}\n`);
    }
  }

  // ---- takeover, old side -------------------------------------------------------------------

  private async handover(path: string, pid: number, wanted?: unknown): Promise<{ fds: number; fdb: number }> {
    if (this.busy) throw new ApiError(`busy: ${this.busy}`, 'EBUSY');
    this.busy = 'handover';
    const d = this.daemon;
    const frozenAt = Date.now();
    // With the underlay sockets handed over too, forwarding goes on here until the new
    // daemon holds everything; without (they cannot be, or the successor wants another
    // underlay), it stops first so the new one can bind its own.
    const underlay = wanted === undefined || eqJson(d.running.underlay, wanted) ? d.underlayFds() : null;
    const { fds, ports, fdb } = d.freeze(underlay === null);
    const all = [...fds, ...(underlay ?? [])];
    const payload: HandoverPayload = {
      v: 1, fromPid: process.pid, frozenAt, config: d.running,
      ports: ports.map((p) => ({ tenant: p.tenant, tap: p.tap, ifindex: p.ifindex, mac: p.mac, config: p.config, fdIndex: p.fdIndex, queueFdIndex: p.queueFdIndex })),
      fdb, reloads: d.reloads,
      underlayFdIndex: (underlay ?? []).map((_, i) => fds.length + i),
    };
    try {
      scmSend(path, all, Buffer.from(JSON.stringify(payload)), 10_000);
    } catch (e) {
      if (underlay === null) await this.recover(d, fdb);
      this.busy = null;
      throw new ApiError(`handover to pid ${pid} failed: ${(e as Error).message}; this daemon forwards again`, 'EIO');
    }
    if (underlay !== null) d.stopForwarding();
    log.info({ to: pid, fds: fds.length, fdb: fdb.length }, 'handed over; waiting for the new daemon');
    await this.metrics.close();
    await this.control.close();
    void this.awaitSuccessor(d, fdb, pid);
    return { fds: fds.length, fdb: fdb.length };
  }

  /** Hold our fds until the successor answers on the control socket; recover if it dies first. */
  private async awaitSuccessor(d: Daemon, fdb: SnapshotEntry[], pid: number): Promise<void> {
    const socket = d.running.control.socket;
    const until = Date.now() + 30_000;
    for (;;) {
      await sleep(20);
      let alive = true;
      try { process.kill(pid, 0); } catch { alive = false; }
      if (alive && existsSync(socket)) {
        try {
          const s = await request<{ pid: number }>(socket, 'status', {}, { timeoutMs: 2000 });
          if (s.pid === pid) break;
        } catch { /* not yet */ }
      }
      if (!alive || Date.now() > until) {
        log.error({ pid }, 'the new daemon did not take over; resuming');
        process.stderr.write(`vtepd: pid ${pid} did not take over; resuming forwarding here\n`);
        await this.recover(d, fdb);
        await this.control.listen(this.daemon.running.control.socket);
        await this.metrics.listen(this.daemon.running.metrics);
        this.busy = null;
        this.successor?.done(false);
        return;
      }
    }
    d.release();
    this.successor?.done(true);
    process.stdout.write(`vtepd: handed over to pid ${pid}\n`);
    this.exiting = true;
    setTimeout(() => process.exit(0), 100);
  }

  /** A new data path over our own (still open) TAP fds, after a failed handover. */
  private async recover(d: Daemon, fdb: SnapshotEntry[]): Promise<void> {
    const ports = new Map<string, PortHandle>(d.ports.map((p) => [p.tap, { fd: p.fd, ifindex: p.ifindex, mac: p.mac, queueFds: p.queueFds }]));
    const running = d.running;
    const reloads = d.reloads;
    d.detach();
    const nd = await Daemon.start(running, { adopt: { ports, fdb }, hooks: this.hooks() });
    Object.assign(nd.reloads, reloads);
    this.adopt(nd);
  }

  /** `vtepd restart`: start a successor with --takeover and wait until it has taken over. */
  private async restart(): Promise<{ oldPid: number; newPid: number }> {
    if (this.busy) throw new ApiError(`busy: ${this.busy}`, 'EBUSY');
    const r = loadConfig(this.configPath);
    if (!r.ok) throw new ApiError(`${this.configPath}: ${r.errors.length} error(s); not restarting`, 'EINVAL', r.errors);
    const script = process.argv[1]!;
    const child = spawn(process.execPath, [...process.execArgv, script, 'run', '--config', this.configPath, '--takeover'], {
      detached: true,
      stdio: 'inherit',
    });
    child.unref();
    const pid = child.pid!;
    log.info({ pid }, 'successor started');
    const ok = await new Promise<boolean>((resolve, reject) => {
      const t = setTimeout(() => reject(new ApiError(`pid ${pid} did not take over within 60 s`, 'ETIMEDOUT')), 60_000);
      this.successor = { pid, done: (v) => { clearTimeout(t); resolve(v); } };
      child.once('exit', (code, sig) => {
        if (this.busy === 'handover') return; // awaitSuccessor decides
        clearTimeout(t);
        reject(new ApiError(`the new vtepd (pid ${pid}) exited (${sig ?? code}) before taking over; this one keeps running`, 'EIO'));
      });
    });
    this.successor = null;
    if (!ok) throw new ApiError(`the new vtepd (pid ${pid}) failed after the handover; this one resumed forwarding`, 'EIO');
    return { oldPid: process.pid, newPid: pid };
  }

  // ---- the API ------------------------------------------------------------------------------

  private where(p: Record<string, unknown>): Where {
    const port = str(p, 'port', false);
    const vtep = str(p, 'vtep', false);
    if ((port === undefined) === (vtep === undefined)) throw new ApiError('give either port or vtep');
    return port !== undefined ? { port } : { vtep: address(vtep!, 'vtep') };
  }

  private handlers(): Record<string, Handler> {
    return {
      status: () => ({ ...this.daemon.status(), config: this.configPath }),
      'fdb.show': (p) => this.daemon.fdb(str(p, 'tenant', false)),
      'fdb.add': (p) => {
        const tenant = str(p, 'tenant')!;
        const mac = unicastMac(str(p, 'mac')!, 'mac');
        const where = this.where(p);
        if ('vtep' in where && where.vtep === this.daemon.running.underlay.local) throw new ApiError('vtep: is this host (underlay.local)');
        this.daemon.fdbAdd(tenant, mac, where);
        return { tenant, mac, where: 'port' in where ? `port ${where.port}` : `vtep ${where.vtep}`, type: 'static' };
      },
      'fdb.del': (p) => {
        const tenant = str(p, 'tenant')!;
        const mac = anyMac(str(p, 'mac')!, 'mac');
        this.daemon.fdbDel(tenant, mac);
        return { tenant, mac };
      },
      'fdb.flush': (p) => ({ flushed: this.daemon.fdbFlush(str(p, 'tenant', false)) }),
      peers: () => this.daemon.stats().peers,
      stats: () => this.daemon.stats(),
      reload: () => this.reload(),
      restart: () => this.restart(),
      handover: (p) => this.handover(str(p, 'path')!, num(p, 'pid', 1, 2 ** 31)!, p.underlay),
      trace: (p) => {
        const tenant = str(p, 'tenant')!;
        const inp = str(p, 'in')!;
        const isPort = this.daemon.sw.portList().some((x) => x.name === inp);
        const ingress: Where = isPort ? { port: inp } : { vtep: address(inp, 'in (a port name or a VTEP address)') };
        return this.daemon.trace(tenant, ingress, anyMac(str(p, 'src')!, 'src'), anyMac(str(p, 'dst')!, 'dst'));
      },
      capture: async (p, ctx: CallContext) => {
        const req: CaptureRequest = {
          tenant: str(p, 'tenant')!,
          port: str(p, 'port', false),
          peer: str(p, 'peer', false) !== undefined ? address(str(p, 'peer')!, 'peer') : undefined,
          outer: p.outer === true,
          count: num(p, 'count', 1, 2 ** 31),
          seconds: num(p, 'seconds', 1, 86400),
        };
        const ac = new AbortController();
        void ctx.closed.then(() => ac.abort());
        return runCapture(this.daemon, req, (b) => ctx.event('data', { data: b.toString('base64') }), (info) => ctx.event('started', info), ac.signal);
      },
    };
  }

  /** SIGINT/SIGTERM: stop forwarding, delete the TAPs, leave. */
  async shutdown(): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    sdNotify('STOPPING=1');
    this.daemon?.close();
    this.control.destroyAll();
    await this.control.close();
    await this.metrics.close();
  }
}

/** `vtepd run`: start (or take over), then serve until a signal. */
export async function runDaemon(opts: RunOptions, config: Config): Promise<Runtime> {
  const rt = new Runtime(opts.configPath);
  if (opts.takeover) await rt.takeover(config);
  else await rt.start(config);
  opts.onRunning?.(rt.daemon);
  process.on('SIGHUP', () => void rt.reloadOnSignal());
  return rt;
}
