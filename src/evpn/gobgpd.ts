/**
 * vtepd's own gobgpd (Debian's, 3.10): started as a child process with a generated config
 * (global AS, router id, BGP port, the neighbors with l2vpn-evpn), its gRPC API on a unix
 * socket in `dir` (no TCP port to collide with, reachable from any network namespace),
 * ready once the API answers with the configured AS; restarted with backoff when it dies
 * (logged and counted); stopped by PID.
 *
 * A restarted gobgpd has its config back (global and neighbors) but none of the routes added
 * over the API: the `restart` listener re-adds them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
    timers: { config: { 'connect-retry': o.connectRetry ?? 10 } },
    'afi-safis': [{ config: { 'afi-safi-name': 'l2vpn-evpn' } }],
  }));
  return { global, neighbors };
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
  private child: ChildProcess | null = null;
  private stopping = false;
  /** start() succeeded: from then on a death is restarted (before, start() reports it). */
  private up = false;
  private restarts = 0;
  private delay: number;
  private timer: NodeJS.Timeout | null = null;
  private tail: string[] = [];
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
    return this.child?.pid ?? null;
  }

  status(): GobgpdStatus {
    return { running: this.child !== null, pid: this.pid, restarts: this.restarts, api: this.api };
  }

  /** Write the config, start gobgpd and wait until its API answers; throws with its last output otherwise. */
  async start(): Promise<void> {
    // Owner only: the config holds the neighbors' passwords, and the API (which adds routes and lists the passwords) is a socket in it.
    await mkdir(this.o.dir, { recursive: true });
    await chmod(this.o.dir, 0o700);
    const file = join(this.o.dir, 'gobgpd.json');
    await writeFile(file, JSON.stringify(gobgpdConfig(this.o), null, 2), { mode: 0o600 });
    await chmod(file, 0o600);
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
    const args = ['-f', join(this.o.dir, 'gobgpd.json'), '-t', 'json', '--api-hosts', this.api, '--pprof-disable', '-p', '-l', this.o.logLevel ?? 'warn'];
    const bin = this.o.binary ?? 'gobgpd';
    // setpriv (util-linux) makes the kernel SIGKILL gobgpd when vtepd dies, even by SIGKILL: an
    // orphan gobgpd would go on advertising the routes of a VTEP that no longer forwards.
    const own = ['setpriv', '--pdeathsig', 'KILL', '--', bin, ...args];
    const [cmd, argv] = this.o.netns ? ['ip', ['netns', 'exec', this.o.netns, ...own]] : [own[0]!, own.slice(1)];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.tail = [];
    for (const s of [child.stdout, child.stderr]) s?.setEncoding('utf8').on('data', (d: string) => this.output(d));
    child.on('error', (err) => this.output(`spawn ${bin}: ${err.message}\n`));
    child.on('exit', (code, signal) => this.exited(child, code, signal));
    await this.ready(child);
  }

  private output(d: string): void {
    for (const line of d.split('\n').filter(Boolean)) {
      this.log.debug({ line }, 'gobgpd says');
      this.tail = [...this.tail.slice(-19), line];
    }
  }

  /** Poll GetBgp until it reports the configured AS, with a deadline. */
  private async ready(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + (this.o.readyMs ?? 15_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw this.failed('exited before its API answered');
      if ((await this.client.getBgp(1000).catch(() => null))?.asn === this.o.asn) return;
      if (Date.now() > deadline) throw this.failed(`its API (${this.api}) did not answer within ${this.o.readyMs ?? 15_000} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private failed(why: string): Error {
    const e = new Error(`gobgpd: ${why}${this.tail.length ? `; it said: ${this.tail.slice(-5).join(' | ')}` : ''}`) as Error & { code: string };
    e.code = 'EGOBGPD';
    return e;
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    this.emit('exit', code, signal);
    if (this.stopping || !this.up) return;
    this.log.warn({ pid: child.pid, code, signal, restartInMs: this.delay, restarts: this.restarts }, 'gobgpd died; restarting it');
    this.timer = setTimeout(() => void this.restart(), this.delay);
    this.delay = Math.min(this.delay * 2, this.backoff[1]);
  }

  private async restart(): Promise<void> {
    this.timer = null;
    if (this.stopping) return;
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

  /** Stop gobgpd by PID (SIGTERM, SIGKILL after 5 s) and do not restart it. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.client.close();
    const child = this.child;
    // A binary that could not be spawned (ENOENT) has an exit code and never emits 'exit'.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    this.kill(child, 'SIGTERM');
    const t = setTimeout(() => this.kill(child, 'SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }
}
