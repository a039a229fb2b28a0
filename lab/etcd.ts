/**
 * A private etcd member for the tests and the demo: its own data directory (mkdtemp), client
 * and peer URLs on 127.0.0.1 on free ports, readiness by polling /health with a deadline,
 * stopped by PID (SIGTERM, then SIGKILL after a deadline), the directory removed at the end.
 * `stop()` + `start()` restart the same member on the same data directory and ports, for
 * outage tests. Never touches a system etcd.
 *
 * With `netns` (a lab host's namespace) and `host` (that host's address), the member runs
 * inside the namespace and listens on HOST:2379 (clients) and HOST:2380 (peers): the ports
 * are free there, nothing else lives in it. Its health is then polled from inside the
 * namespace (curl), so nothing is sent from the root namespace.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { READY_MS, until } from './wait.js';

export interface EtcdOptions {
  /** The etcd binary (Debian's etcd-server: /usr/bin/etcd). */
  binary?: string;
  /** Extra command-line flags, e.g. ['--experimental-watch-progress-notify-interval', '1s']. */
  args?: string[];
  /** How long start() waits for /health before it gives up. */
  readyMs?: number;
  /** Run inside this network namespace (a lab host's, `lab.ns(host)`); needs `host`. */
  netns?: string;
  /** The address to listen on (default 127.0.0.1); inside `netns`, that host's address. */
  host?: string;
  /** A member of a cluster (startCluster): its name, ports and the cluster's `--initial-cluster` and token. */
  member?: { name: string; clientPort: number; peerPort: number; initialCluster: string; token: string };
}

/** A free TCP port on 127.0.0.1: bind port 0, read it, close. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('freePort: no port');
  return addr.port;
}

/** GET /health: true when the member answers {"health":"true"}. */
function health(url: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/health`, { timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export class EtcdMember {
  readonly name: string;
  dataDir = '';
  clientPort = 0;
  peerPort = 0;
  private child: ChildProcess | null = null;
  private log = '';

  constructor(private readonly opts: EtcdOptions = {}) {
    this.name = opts.member?.name ?? `vtepd-lab-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  }

  /** The client URL, http://HOST:PORT (HOST 127.0.0.1 unless given; an IPv6 one in brackets). */
  get url(): string {
    return `http://${this.hostPart}:${this.clientPort}`;
  }
  private get hostPart(): string {
    const h = this.opts.host ?? '127.0.0.1';
    return h.includes(':') ? `[${h}]` : h;
  }

  /** /health, from where the member runs (inside its namespace with `netns`). */
  private healthy(): Promise<boolean> {
    const ns = this.opts.netns;
    if (!ns) return health(this.url);
    return new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', '1', `${this.url}/health`], { timeout: 3000 }, (err, stdout) =>
        resolve(!err && stdout.includes('"true"')),
      );
    });
  }

  /** The PID of the running member, or null. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Its last output (for a failure message). */
  get output(): string {
    return this.log.slice(-4000);
  }

  /**
   * Start the member. The first start makes the data directory and picks ports (retrying
   * with new ports when one is taken meanwhile); a later start reuses both.
   */
  async start(): Promise<void> {
    if (this.child) throw new Error('etcd: already running');
    const first = this.dataDir === '';
    if (first) this.dataDir = await mkdtemp(join(tmpdir(), 'vtepd-etcd-'));
    for (let attempt = 0; ; attempt++) {
      if (first && attempt > 0) await rm(join(this.dataDir, 'member'), { recursive: true, force: true });
      if (first && this.opts.member) {
        this.clientPort = this.opts.member.clientPort;
        this.peerPort = this.opts.member.peerPort;
      } else if (first && this.opts.netns) {
        this.clientPort = 2379;
        this.peerPort = 2380;
      } else if (first) {
        this.clientPort = await freePort();
        do this.peerPort = await freePort();
        while (this.peerPort === this.clientPort);
      }
      try {
        await this.launch();
        return;
      } catch (e) {
        if (!first || this.opts.member || attempt >= 4 || !/address already in use/.test(this.log)) throw e;
      }
    }
  }

  private async launch(): Promise<void> {
    const peer = `http://${this.hostPart}:${this.peerPort}`;
    const args = [
      '--name',
      this.name,
      '--data-dir',
      this.dataDir,
      '--listen-client-urls',
      this.url,
      '--advertise-client-urls',
      this.url,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      this.opts.member?.initialCluster ?? `${this.name}=${peer}`,
      '--initial-cluster-token',
      this.opts.member?.token ?? this.name,
      '--initial-cluster-state',
      'new',
      '--log-level',
      'warn',
      ...(this.opts.args ?? []),
    ];
    this.log = '';
    const bin = this.opts.binary ?? 'etcd';
    // `ip netns exec` execs etcd in place: the child's PID is etcd's.
    const child = this.opts.netns
      ? spawn('ip', ['netns', 'exec', this.opts.netns, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let exited = false;
    const append = (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-64_000);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    child.once('exit', () => {
      exited = true;
      if (this.child === child) this.child = null;
    });
    child.once('error', (e) => {
      exited = true;
      this.log += `\nspawn: ${e.message}`;
    });
    try {
      await until(
        `etcd on ${this.url} to report healthy`,
        async () => {
          if (exited) throw new Error(`etcd exited: ${this.output}`);
          return this.healthy();
        },
        (ok) => ok || exited,
        this.opts.readyMs ?? READY_MS,
        50,
      );
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (exited) throw new Error(`etcd exited during start: ${this.output}`);
  }

  /** Stop the member by PID: `signal` (SIGTERM), then SIGKILL after `timeoutMs`. The data directory stays. */
  async stop(timeoutMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stop the member and remove its data directory. */
  async destroy(): Promise<void> {
    await this.stop();
    if (this.dataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Start a private single-member etcd; `destroy()` it when done. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdMember> {
  const m = new EtcdMember(opts);
  try {
    await m.start();
  } catch (e) {
    await m.destroy();
    throw e;
  }
  return m;
}

/**
 * A private cluster of `size` members on 127.0.0.1 (free client and peer ports each), started
 * together: a member reports healthy only once a quorum has elected a leader. The same flags
 * as docs/directory.md's three-member walk-through. `destroy()` each member when done.
 */
export async function startCluster(size = 3, opts: Omit<EtcdOptions, 'member' | 'netns' | 'host'> = {}): Promise<EtcdMember[]> {
  const tag = `vtepd-lab-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const used = new Set<number>();
  const port = async () => {
    let p: number;
    do p = await freePort();
    while (used.has(p));
    used.add(p);
    return p;
  };
  const specs: { name: string; clientPort: number; peerPort: number }[] = [];
  for (let i = 1; i <= size; i++) specs.push({ name: `${tag}-${i}`, clientPort: await port(), peerPort: await port() });
  const initialCluster = specs.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const members = specs.map((m) => new EtcdMember({ ...opts, member: { ...m, initialCluster, token: tag } }));
  const started = await Promise.allSettled(members.map((m) => m.start()));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(members.map((m) => m.destroy()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return members;
}
