/**
 * vtepd's own gobgpd (Debian's, 3.10): started as a child process with a generated config
 * (global AS, router id, BGP port, the neighbors with l2vpn-evpn), its gRPC API on a unix
 * socket in `dir` (no TCP port to collide with, reachable from any network namespace),
 * ready once the API answers with the configured AS; restarted with backoff when it dies
 * (logged and counted); stopped by PID.
 *
 * A restarted gobgpd has its config back (global and neighbors) but none of the routes added
 * over the API: the `restart` listener re-adds them.
 *
 * gobgpd runs under a watchdog (WATCHDOG below) that holds the read end of a lifeline pipe
 * whose write end vtepd holds: when every write end is closed (vtepd died, even by SIGKILL)
 * the watchdog kills gobgpd. A takeover hands the write end to the successor (handover()),
 * which adopts the running gobgpd (adopt()) and supervises it by PID from then on. gobgpd's
 * output goes to `gobgpd.log` in `dir` (no pipe to a parent that may be gone).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type Logger, logger } from '../util/log.js';
import { GobgpClient } from './gobgp.js';

export interface GobgpdOptions {
  asn: number;
  routerId: string;
  /** BGP TCP port (default 179); -1: no listener, outbound sessions only. */
  listenPort?: number;
  listenAddresses?: string[];
  neighbors?: { address: string; asn?: number; password?: string }[];
  /** Seconds between connection attempts to a neighbor (default 10; GoBGP's own is 120). */
  connectRetry?: number;
  /** Hold time and keepalive interval, seconds (default GoBGP's: 90 and 30). */
  holdTime?: number;
  keepalive?: number;
  /** Where the config and the API socket live (created; the caller owns it). */
  dir: string;
  /** The gobgpd binary (default: gobgpd on PATH). */
  binary?: string;
  /** Run inside this network namespace (`ip netns exec`): the lab's hosts. */
  netns?: string;
  /** gobgpd's own log level (default warn); its lines go to vtepd's log at debug. */
  logLevel?: string;
  /** How long start() (and each restart) waits for the API (default 15 s). */
  readyMs?: number;
  /** Restart delays: the first, doubled up to the last (default 250 ms to 10 s). */
  backoffMs?: [number, number];
}

/** gobgpd's config (JSON, `-t json`): the global section and one neighbor entry each. */
export function gobgpdConfig(o: GobgpdOptions): object {
  const port = o.listenPort ?? 179;
  const global = { config: { as: o.asn, 'router-id': o.routerId, port, ...(o.listenAddresses ? { 'local-address-list': o.listenAddresses } : {}) } };
  const neighbors = (o.neighbors ?? []).map((n) => ({
    config: { 'neighbor-address': n.address, 'peer-as': n.asn ?? o.asn, ...(n.password ? { 'auth-password': n.password } : {}) },
    timers: {
      config: {
        'connect-retry': o.connectRetry ?? 10,
        ...(o.holdTime ? { 'hold-time': o.holdTime, 'keepalive-interval': o.keepalive ?? Math.floor(o.holdTime / 3) } : {}),
      },
    },
    'afi-safis': [{ config: { 'afi-safi-name': 'l2vpn-evpn' } }],
  }));
  return { global, neighbors };
}

/**
 * What a successor needs to adopt a running gobgpd: its PID and the write end of its
 * lifeline (an fd of this process, handed over with SCM_RIGHTS).
 */
export interface GobgpdHandover {
  pid: number;
  lifeline: number;
}

/**
 * `sh -c WATCHDOG sh PIDFILE GOBGPD ARGS...`, with the lifeline's read end on fd 3: gobgpd
 * (killed by the kernel if this shell dies) in the background, its PID in PIDFILE, a
 * subshell that kills it once the lifeline reads EOF (every write end closed), and the
 * shell's own exit when gobgpd exits (with its status).
 */
const WATCHDOG = [
  'p=$1; shift',
  'setpriv --pdeathsig KILL -- "$@" 3<&- &',
  'g=$!',
  'echo $g > "$p"',
  '(while read -r _; do :; done <&3; kill -KILL $g) &',
  'w=$!',
  'exec 3<&-',
  'wait $g; s=$?',
  'kill $w 2>/dev/null',
  'exit $s',
].join('\n');

/** The fd under a Node stream (the lifeline's write end: libuv's socket to the watchdog's fd 3). */
function fdOf(stream: unknown): number | null {
  const fd = (stream as { _handle?: { fd?: unknown } } | null)?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** `pid` is a live (not zombie) process named `comm` (not a PID reused by another program). */
function isRunning(pid: number, comm: string): boolean {
  try {
    const m = /^\d+ \((.*)\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return m?.[1] === comm && m[2] !== 'Z' && m[2] !== 'X';
  } catch {
    return false;
  }
}

export interface GobgpdStatus {
  running: boolean;
  pid: number | null;
  /** Restarts after gobgpd died (not counting the first start). */
  restarts: number;
  api: string;
}

/** Events: 'restart' (gobgpd is back and answering after it died), 'exit' (code, signal). */
export class Gobgpd extends EventEmitter {
  readonly api: string;
  readonly client: GobgpClient;
  /** The watchdog this process started (null for an adopted gobgpd). */
  private child: ChildProcess | null = null;
  /** gobgpd's own PID (from the watchdog's pid file, or the handover). */
  private gpid: number | null = null;
  /** An adopted gobgpd's lifeline write end (a plain fd of this process) and its liveness poll. */
  private lifeline: number | null = null;
  private poll: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Handed over (release()): not supervised here until resume(). */
  private released = false;
  /** start() succeeded: from then on a death is restarted (before, start() reports it). */
  private up = false;
  private restarts = 0;
  private delay: number;
  private timer: NodeJS.Timeout | null = null;
  private spawnError: string | null = null;
  private readonly log: Logger;

  constructor(private readonly o: GobgpdOptions) {
    super();
    this.api = `unix://${join(o.dir, 'gobgpd.sock')}`;
    this.client = new GobgpClient(this.api);
    this.delay = this.backoff[0];
    this.log = logger('gobgpd', { api: this.api });
  }

  private get backoff(): [number, number] {
    return this.o.backoffMs ?? [250, 10_000];
  }

  get pid(): number | null {
    return this.gpid;
  }

  /** gobgpd's output (stdout and stderr, appended across restarts; emptied by start()). */
  get logPath(): string {
    return join(this.o.dir, 'gobgpd.log');
  }

  private get pidPath(): string {
    return join(this.o.dir, 'gobgpd.pid');
  }

  private get comm(): string {
    return basename(this.o.binary ?? 'gobgpd').slice(0, 15);
  }

  status(): GobgpdStatus {
    return { running: this.gpid !== null, pid: this.pid, restarts: this.restarts, api: this.api };
  }

  /** Write the config, start gobgpd and wait until its API answers; throws with its last output otherwise. */
  async start(): Promise<void> {
    // Owner only: the config holds the neighbors' passwords, and the API (which adds routes and lists the passwords) is a socket in it.
    await mkdir(this.o.dir, { recursive: true });
    await chmod(this.o.dir, 0o700);
    const file = join(this.o.dir, 'gobgpd.json');
    await writeFile(file, JSON.stringify(gobgpdConfig(this.o), null, 2), { mode: 0o600 });
    await chmod(file, 0o600);
    await writeFile(this.logPath, '');
    try {
      await this.launch();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.up = true;
  }

  private async launch(): Promise<void> {
    await rm(join(this.o.dir, 'gobgpd.sock'), { force: true });
    await rm(this.pidPath, { force: true });
    const args = ['-f', join(this.o.dir, 'gobgpd.json'), '-t', 'json', '--api-hosts', this.api, '--pprof-disable', '-p', '-l', this.o.logLevel ?? 'warn'];
    // The watchdog: gobgpd dies with the last holder of the lifeline (vtepd, or its successor after
    // a takeover), even by SIGKILL: an orphan gobgpd would go on advertising the routes of a VTEP
    // that no longer forwards.
    const own = ['sh', '-c', WATCHDOG, 'sh', this.pidPath, this.o.binary ?? 'gobgpd', ...args];
    const [cmd, argv] = this.o.netns ? ['ip', ['netns', 'exec', this.o.netns, ...own]] : [own[0]!, own.slice(1)];
    const out = openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(cmd, argv, { stdio: ['ignore', out, out, 'pipe'] });
    } finally {
      closeSync(out);
    }
    this.child = child;
    this.gpid = null;
    this.spawnError = null;
    child.on('error', (err) => {
      this.spawnError = `spawn ${cmd}: ${err.message}`;
    });
    child.on('exit', (code, signal) => this.exited(child, code, signal));
    await this.ready(() => child.exitCode === null && child.signalCode === null);
  }

  /** Poll GetBgp until it reports the configured AS (and the PID is known), with a deadline. */
  private async ready(alive: () => boolean): Promise<void> {
    const deadline = Date.now() + (this.o.readyMs ?? 15_000);
    for (;;) {
      if (!alive()) throw this.failed('exited before its API answered');
      this.gpid ??= this.readPid();
      if (this.gpid !== null && (await this.client.getBgp(1000).catch(() => null))?.asn === this.o.asn) return;
      if (Date.now() > deadline) throw this.failed(`its API (${this.api}) did not answer within ${this.o.readyMs ?? 15_000} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private readPid(): number | null {
    try {
      const pid = Number(readFileSync(this.pidPath, 'utf8').trim());
      return pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** The last lines gobgpd wrote (its log file). */
  private tail(): string[] {
    let text = '';
    try {
      text = readFileSync(this.logPath, 'utf8').slice(-4000);
    } catch {
      /* none yet */
    }
    return [...text.split('\n').filter(Boolean), ...(this.spawnError ? [this.spawnError] : [])].slice(-5);
  }

  private failed(why: string): Error {
    const tail = this.tail();
    const e = new Error(`gobgpd: ${why}${tail.length ? `; it said: ${tail.join(' | ')}` : ''}`) as Error & { code: string };
    e.code = 'EGOBGPD';
    return e;
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    this.died(code, signal);
  }

  /** gobgpd is gone (our watchdog exited, or an adopted gobgpd's PID went away): restart it. */
  private died(code: number | null, signal: NodeJS.Signals | null): void {
    const pid = this.gpid;
    this.gpid = null;
    this.emit('exit', code, signal);
    if (this.stopping || !this.up || this.released) return;
    this.log.warn({ pid, code, signal, restartInMs: this.delay, restarts: this.restarts }, 'gobgpd died; restarting it');
    this.timer = setTimeout(() => void this.restart(), this.delay);
    this.delay = Math.min(this.delay * 2, this.backoff[1]);
  }

  private async restart(): Promise<void> {
    this.timer = null;
    if (this.stopping || this.released) return;
    this.restarts++;
    try {
      await this.launch();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'gobgpd restart failed');
      if (this.child) this.kill(this.child, 'SIGKILL');
      return;
    }
    this.delay = this.backoff[0];
    this.log.warn({ pid: this.pid, restarts: this.restarts }, 'gobgpd restarted');
    this.emit('restart');
  }

  private kill(child: ChildProcess, signal: NodeJS.Signals): void {
    if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal);
  }

  // ---- takeover ------------------------------------------------------------------------

  /** What a successor needs to adopt this gobgpd; null when none runs. */
  handover(): GobgpdHandover | null {
    const lifeline = this.lifeline ?? fdOf(this.child?.stdio[3]);
    return this.gpid !== null && lifeline !== null ? { pid: this.gpid, lifeline } : null;
  }

  /** Handed over: stop supervising (no restart, no kill); gobgpd and the lifeline stay. */
  release(): void {
    this.released = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
    this.timer = this.poll = null;
  }

  /** The successor failed after a handover: supervise this gobgpd again (restarted if it died meanwhile). */
  resume(): void {
    this.released = false;
    if (this.gpid !== null && this.child === null && !isRunning(this.gpid, this.comm)) this.gpid = null;
    if (this.gpid === null) this.died(null, null);
    else if (this.lifeline !== null) this.watchAdopted();
  }

  /**
   * Supervise the gobgpd a predecessor handed over (it is not our child: polled by PID).
   * One that does not answer is replaced by a new one.
   */
  async adopt(h: GobgpdHandover): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    this.gpid = h.pid;
    this.lifeline = h.lifeline;
    try {
      await this.ready(() => isRunning(h.pid, this.comm));
    } catch (err) {
      this.log.warn({ pid: h.pid, err: (err as Error).message }, 'the gobgpd handed over does not answer; starting a new one');
      await this.dropAdopted('SIGKILL');
      return this.start();
    }
    this.up = true;
    this.watchAdopted();
    this.log.info({ pid: h.pid }, 'gobgpd adopted');
  }

  private watchAdopted(): void {
    if (this.poll) clearInterval(this.poll);
    this.poll = setInterval(() => {
      if (this.gpid !== null && isRunning(this.gpid, this.comm)) return;
      void this.dropAdopted(null).then(() => this.died(null, null));
    }, 250);
    this.poll.unref();
  }

  /** Let go of an adopted gobgpd: `signal` it, wait until it is gone (5 s, then SIGKILL), close its lifeline. */
  private async dropAdopted(signal: NodeJS.Signals | null): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    const pid = this.gpid;
    if (pid !== null && signal) {
      const deadline = Date.now() + 5000;
      for (let sig: NodeJS.Signals = signal; isRunning(pid, this.comm); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > deadline) sig = 'SIGKILL';
        process.kill(pid, sig);
      }
    }
    if (this.lifeline !== null) closeSync(this.lifeline);
    this.lifeline = null;
  }

  /** Stop gobgpd by PID (SIGTERM, SIGKILL after 5 s) and do not restart it. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.client.close();
    if (this.lifeline !== null) return this.dropAdopted('SIGTERM');
    const child = this.child;
    // A binary that could not be spawned (ENOENT) has an exit code and never emits 'exit'.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    // gobgpd itself (its watchdog then exits with it); the watchdog if its PID is not known yet.
    if (this.gpid !== null && isRunning(this.gpid, this.comm)) process.kill(this.gpid, 'SIGTERM');
    else this.kill(child, 'SIGTERM');
    const t = setTimeout(() => this.kill(child, 'SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }
}
