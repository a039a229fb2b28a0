/**
 * The takeover restart: both sides of it, and `vtepd restart`, which starts the new side.
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
import { dirname, join } from 'node:path';
import type { Config, PortConfig } from '../config/config.js';
import { loadConfig } from '../config/load.js';
import { eqJson } from '../config/reconcile.js';
import type { SnapshotEntry } from '../core/fdb.js';
import { NativeDatapath } from '../native/datapath.js';
import { closeQuietly, fdClose, scmAccept, scmListen, scmSend, sdNotify } from '../native/system.js';
import type { PortHandle } from '../ports/tap.js';
import { logger } from '../util/log.js';
import { answers, ApiError, request, type ControlServer } from './control.js';
import { Daemon, datapathOptions, type Adopted, type DaemonHooks } from './daemon.js';
import type { Metrics } from './metrics.js';
import type { DynamicPort } from '../ports/dynamic.js';

const log = logger('server');

/**
 * What the old daemon says as it leaves. From a terminal: the successor runs on in its own
 * session (it must outlive this process and its terminal's job control), so Ctrl-C there
 * no longer reaches it; say how to stop it.
 */
export function handedOver(pid: number, terminal: boolean): string {
  const line = `vtepd: handed over to pid ${pid}\n`;
  if (!terminal) return line;
  return `${line}vtepd: pid ${pid} runs on detached from this terminal (Ctrl-C does not reach it); stop it with: kill ${pid}\n`;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the old daemon sends with the fds. */
interface HandoverPayload {
  v: 1;
  fromPid: number;
  /** Date.now() when the old data path stopped. */
  frozenAt: number;
  config: Config;
  /** fdIndex: the TAP's (queue 0's) fd; queueFdIndex: a multi-queue TAP's other queues. */
  ports: { tenant: string; tap: string; ifindex: number; mac: string; mtu?: number; config: PortConfig; fdIndex: number; queueFdIndex?: number[] }[];
  fdb: SnapshotEntry[];
  reloads: { ok: number; failed: number };
  /** Indexes (in the fds) of the underlay sockets, when the data path can hand them over. */
  underlayFdIndex: number[];
  /** The ports attached at runtime (`config` holds them too); absent from an older daemon. */
  dynamic?: DynamicPort[];
  /** Trunks' packet sockets (#15); absent from an older daemon (the successor attaches them again). */
  trunks?: { attach: string; ifindex: number; mac: string; mtu: number; fdIndex: number }[];
  /** The gobgpd the old daemon supervises (EVPN): its PID and the fd index of its lifeline's write end. */
  gobgpd?: { pid: number; fdIndex: number };
}

/** One operation at a time that must not overlap another (a reload, a handover). */
export class Busy {
  what: string | null = null;
  /** Throws EBUSY while something runs. */
  check(): void {
    if (this.what) throw new ApiError(`busy: ${this.what}`, 'EBUSY');
  }
  claim(what: string): void {
    this.check();
    this.what = what;
  }
  release(): void {
    this.what = null;
  }
}

/** What the takeover works with: the process around the daemon (the Runtime). */
export interface TakeoverHost {
  readonly control: ControlServer;
  readonly metrics: Metrics;
  readonly configPath: string;
  readonly busy: Busy;
  /** The Daemon that runs now. */
  readonly daemon: Daemon;
  /** Run `d` from now on (a successor's adopted daemon, or ours rebuilt after a failed handover). */
  adopt(d: Daemon): void;
  /** The hooks a Daemon built here gets. */
  daemonHooks(): DaemonHooks;
  /** Start fresh from a config (nobody to take over from). */
  start(config: Config): Promise<void>;
  /** Handed over: leave. */
  exit(): void;
}

export class Takeover {
  private successor: { pid: number; done: (ok: boolean) => void } | null = null;

  constructor(private readonly rt: TakeoverHost) {}

  // ---- the new side ----------------------------------------------------------------------------

  /** Take over from the daemon answering on the config's control socket (or start fresh if none does). */
  async takeOver(fileConfig: Config): Promise<void> {
    const socket = fileConfig.control.socket;
    if (!existsSync(socket) || !(await answers(socket))) {
      log.warn({ socket }, 'takeover: no vtepd answers on the control socket; starting fresh');
      process.stderr.write(`vtepd: --takeover: no vtepd answers on ${socket}; starting fresh\n`);
      return this.rt.start(fileConfig);
    }
    const path = join(dirname(socket), `.vtepd-takeover-${process.pid}.sock`);
    const lfd = scmListen(path);
    let got: { fds: number[]; payload: Buffer } | null = null;
    let answered: Promise<unknown>;
    try {
      let failure: Error | undefined;
      answered = request(socket, 'handover', { path, pid: process.pid, underlay: fileConfig.underlay }, { timeoutMs: 30_000 });
      answered.catch((e: Error) => {
        failure = e;
      });
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
      try {
        unlinkSync(path);
      } catch {
        /* gone */
      }
    }
    const p = JSON.parse(got.payload.toString('utf8')) as HandoverPayload;
    const ports = new Map<string, PortHandle>();
    for (const x of p.ports) {
      ports.set(x.tap, { fd: got.fds[x.fdIndex]!, ifindex: x.ifindex, mac: x.mac, mtu: x.mtu, queueFds: (x.queueFdIndex ?? []).map((i) => got!.fds[i]!) });
    }
    const trunks = new Map((p.trunks ?? []).map((t) => [t.attach, { fd: got!.fds[t.fdIndex]!, ifindex: t.ifindex, mac: t.mac, mtu: t.mtu }]));
    const gobgpd = p.gobgpd ? { pid: p.gobgpd.pid, lifeline: got.fds[p.gobgpd.fdIndex]! } : undefined;
    const adopted: Adopted = { ports, fdb: p.fdb, trunks, ...(gobgpd ? { gobgpd } : {}) };
    const underlayFds = (p.underlayFdIndex ?? []).map((i) => got!.fds[i]!);
    // The old running config, on this file's underlay (the one thing a reload cannot change).
    const start = eqJson(p.config.underlay, fileConfig.underlay) ? p.config : { ...p.config, underlay: fileConfig.underlay };
    const d = await this.startAdopted(start, adopted, underlayFds, p.dynamic ?? []);
    const gapMs = Date.now() - p.frozenAt;
    d.takeover = { fromPid: p.fromPid, gapMs };
    Object.assign(d.reloads, p.reloads);
    this.rt.adopt(d);
    log.info({ fromPid: p.fromPid, gapMs, ports: p.ports.length, fdb: p.fdb.length }, 'took over');
    // systemd (NotifyAccess=all) follows this process as the service's main PID from now,
    // before the old one can see us answer and exit.
    sdNotify(`MAINPID=${process.pid}`);
    await answered; // the old daemon has let go of the control socket and the metrics endpoint
    await this.rt.control.listen(p.config.control.socket);
    await this.rt.metrics.listen(p.config.metrics);
    sdNotify(`READY=1\nSTATUS=running (took over from ${p.fromPid})`);
    process.stderr.write(`vtepd: took over from pid ${p.fromPid}: ${p.ports.length} TAP(s), ${p.fdb.length} FDB entries, forwarding paused ${gapMs} ms\n`);
    // The config file may have changed with the upgrade: apply it as a diff.
    const r = await d.reload(fileConfig);
    if (!r.ok)
      process.stderr.write(
        `vtepd: after takeover, the config file could not be applied fully:\n${[...r.errors.map((e) => `  ${e.path}: ${e.message}`), ...r.failed.map((f) => `  ${f}`)].join('\n')}\n`,
      );
  }

  /**
   * A Daemon over adopted TAPs: on the old daemon's underlay sockets when they came along
   * (nothing is lost in the pause: packets wait in the socket buffers), else on sockets
   * bound afresh (the old daemon has closed its own; retried briefly).
   */
  private async startAdopted(config: Config, adopted: Adopted, underlayFds: number[], dynamic: DynamicPort[]): Promise<Daemon> {
    // Once a data path has adopted the sockets they are its own: it closes them (once) when
    // it stops, so they must not be closed here again (the numbers may be reused by then).
    let adoptedByDp = false;
    if (underlayFds.length) {
      try {
        const dp = new NativeDatapath(datapathOptions(config, underlayFds));
        adoptedByDp = true;
        return await Daemon.start(config, { adopt: adopted, hooks: this.rt.daemonHooks(), dp, dynamic });
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'adopting the underlay sockets failed; binding new ones');
      }
    }
    if (!adoptedByDp) closeQuietly(underlayFds);
    for (let attempt = 0; ; attempt++) {
      try {
        return await Daemon.start(config, { adopt: adopted, hooks: this.rt.daemonHooks(), dynamic });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw e;
        await sleep(10);
      }
    }
  }

  // ---- the old side ----------------------------------------------------------------------------

  async handover(path: string, pid: number, wanted?: unknown): Promise<{ fds: number; fdb: number }> {
    this.rt.busy.claim('handover');
    const d = this.rt.daemon;
    const frozenAt = Date.now();
    // With the underlay sockets handed over too, forwarding goes on here until the new
    // daemon holds everything; without (they cannot be, or the successor wants another
    // underlay), it stops first so the new one can bind its own.
    const underlay = wanted === undefined || eqJson(d.running.underlay, wanted) ? d.underlayFds() : null;
    const { fds, ports, fdb, trunks } = d.freeze(underlay === null);
    // gobgpd's lifeline goes along: gobgpd then lives as long as the successor (or this daemon, if it resumes).
    const bgp = d.gobgpd()?.handover() ?? null;
    const all = [...fds, ...(underlay ?? []), ...(bgp ? [bgp.lifeline] : [])];
    const payload: HandoverPayload = {
      v: 1,
      fromPid: process.pid,
      frozenAt,
      config: d.running,
      ports: ports.map((p) => ({
        tenant: p.tenant,
        tap: p.tap,
        ifindex: p.ifindex,
        mac: p.mac,
        mtu: p.mtu,
        config: p.config,
        fdIndex: p.fdIndex,
        queueFdIndex: p.queueFdIndex,
      })),
      fdb,
      reloads: d.reloads,
      underlayFdIndex: (underlay ?? []).map((_, i) => fds.length + i),
      dynamic: [...d.dynamic.values()],
      trunks,
      ...(bgp ? { gobgpd: { pid: bgp.pid, fdIndex: all.length - 1 } } : {}),
    };
    try {
      scmSend(path, all, Buffer.from(JSON.stringify(payload)), 10_000);
    } catch (e) {
      if (underlay === null) await this.recover(d, fdb);
      this.rt.busy.release();
      throw new ApiError(`handover to pid ${pid} failed: ${(e as Error).message}; this daemon forwards again`, 'EIO');
    }
    if (underlay !== null) d.stopForwarding();
    log.info({ to: pid, fds: fds.length, fdb: fdb.length }, 'handed over; waiting for the new daemon');
    await this.rt.metrics.close();
    await this.rt.control.close();
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
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (alive && existsSync(socket)) {
        try {
          const s = await request<{ pid: number }>(socket, 'status', {}, { timeoutMs: 2000 });
          if (s.pid === pid) break;
        } catch {
          /* not yet */
        }
      }
      if (!alive || Date.now() > until) {
        log.error({ pid }, 'the new daemon did not take over; resuming');
        process.stderr.write(`vtepd: pid ${pid} did not take over; resuming forwarding here\n`);
        await this.recover(d, fdb);
        await this.rt.control.listen(this.rt.daemon.running.control.socket);
        await this.rt.metrics.listen(this.rt.daemon.running.metrics);
        this.rt.busy.release();
        this.successor?.done(false);
        return;
      }
    }
    d.release();
    this.successor?.done(true);
    process.stdout.write(handedOver(pid, process.stdout.isTTY === true));
    this.rt.exit();
  }

  /** A new data path over our own (still open) TAP fds, after a failed handover. */
  private async recover(d: Daemon, fdb: SnapshotEntry[]): Promise<void> {
    const ports = new Map<string, PortHandle>(d.ports.map((p) => [p.tap, { fd: p.fd, ifindex: p.ifindex, mac: p.mac, mtu: p.mtu, queueFds: p.queueFds }]));
    const trunks = new Map(
      d.trunks
        .list()
        .filter((t) => t.fd >= 0)
        .map((t) => [t.config.attach, { fd: t.fd, ifindex: t.ifindex, mac: t.mac, mtu: t.mtu }]),
    );
    const running = d.running;
    const reloads = d.reloads;
    const gobgpd = d.gobgpd() ?? undefined;
    d.detach();
    await d.closing; // the directory let go of gobgpd (released, not stopped)
    const nd = await Daemon.start(running, { adopt: { ports, fdb, trunks, gobgpd }, hooks: this.rt.daemonHooks(), dynamic: [...d.dynamic.values()] });
    Object.assign(nd.reloads, reloads);
    this.rt.adopt(nd);
  }

  /** `vtepd restart`: start a successor with --takeover and wait until it has taken over. */
  async restart(): Promise<{ oldPid: number; newPid: number }> {
    this.rt.busy.check();
    const r = loadConfig(this.rt.configPath);
    if (!r.ok) throw new ApiError(`${this.rt.configPath}: ${r.errors.length} error(s); not restarting`, 'EINVAL', r.errors);
    const script = process.argv[1]!;
    const child = spawn(process.execPath, [...process.execArgv, script, 'run', '--config', this.rt.configPath, '--takeover'], {
      detached: true,
      stdio: 'inherit',
    });
    child.unref();
    const pid = child.pid!;
    log.info({ pid }, 'successor started');
    const ok = await new Promise<boolean>((resolve, reject) => {
      const t = setTimeout(() => reject(new ApiError(`pid ${pid} did not take over within 60 s`, 'ETIMEDOUT')), 60_000);
      this.successor = {
        pid,
        done: (v) => {
          clearTimeout(t);
          resolve(v);
        },
      };
      child.once('exit', (code, sig) => {
        if (this.rt.busy.what === 'handover') return; // awaitSuccessor decides
        clearTimeout(t);
        reject(new ApiError(`the new vtepd (pid ${pid}) exited (${sig ?? code}) before taking over; this one keeps running`, 'EIO'));
      });
    });
    this.successor = null;
    if (!ok) throw new ApiError(`the new vtepd (pid ${pid}) failed after the handover; this one resumed forwarding`, 'EIO');
    return { oldPid: process.pid, newPid: pid };
  }
}
