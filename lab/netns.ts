/**
 * A lab of network namespaces for the demo, the tests and the benchmarks: hosts joined by
 * veth, every name unique to this run, everything removed on cleanup (also after a
 * failure). Processes started here are tracked and stopped by PID, never by name.
 * Traffic only ever flows between the lab's own namespaces.
 */
import { spawn, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { untilListening } from './wait.js';

const execFileP = promisify(execFile);

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export class Lab {
  /** Short unique prefix, e.g. "vt3f9a1c". */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];

  constructor(tag = 'vt') {
    this.prefix = `${tag}${randomBytes(3).toString('hex')}`;
  }

  /** The full namespace name of a lab host. */
  ns(host: string): string {
    return `${this.prefix}-${host}`;
  }

  /**
   * Create a host. `ipv6: false` turns IPv6 off in it, so an endpoint sends no router
   * solicitations or MLD reports that would be flooded and blur a packet count.
   */
  async addHost(host: string, opts: { ipv6?: boolean } = {}): Promise<string> {
    const name = this.ns(host);
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await this.exec(host, 'ip', ['link', 'set', 'lo', 'up']);
    if (opts.ipv6 === false) {
      await this.exec(host, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    return name;
  }

  /**
   * Join two hosts with a veth pair, `ifA` in host a and `ifB` in host b, with addresses
   * ("10.0.0.1/24"), MTU and link up.
   */
  async link(a: string, ifA: string, addrA: string | null, b: string, ifB: string, addrB: string | null, mtu = 1500): Promise<void> {
    await run('ip', ['link', 'add', ifA, 'netns', this.ns(a), 'mtu', String(mtu), 'type', 'veth', 'peer', ifB, 'netns', this.ns(b), 'mtu', String(mtu)]);
    for (const [h, i, addr] of [
      [a, ifA, addrA],
      [b, ifB, addrB],
    ] as const) {
      if (addr) await this.exec(h, 'ip', ['addr', 'add', addr, 'dev', i, ...(addr.includes(':') ? ['nodad'] : [])]);
      await this.exec(h, 'ip', ['link', 'set', i, 'up']);
    }
  }

  /**
   * Run a command inside a host and wait for it; throws with its stderr on failure. A counted
   * `ping` gets a deadline (see pingDeadline), and a last line saying so that parsePing
   * reads; as without one, it fails only if none of its first `count` probes was answered.
   */
  async exec(host: string, cmd: string, args: string[], timeoutMs = 120_000): Promise<ExecResult> {
    const deadline = cmd === 'ping' ? pingDeadline(args) : args;
    if (deadline === args) return run('ip', ['netns', 'exec', this.ns(host), cmd, ...args], timeoutMs);
    const count = Number(args[args.indexOf('-c') + 1]);
    const said = (r: ExecResult) => ({ stdout: `${r.stdout}${PING_NOTE}: -c ${count} -w ${deadline.at(-1)})\n`, stderr: r.stderr });
    try {
      return said(await run('ip', ['netns', 'exec', this.ns(host), cmd, ...deadline], timeoutMs));
    } catch (e) {
      // ping exits 1 when the deadline passes with fewer replies than counted; without a
      // deadline it would have exited 0 with those replies.
      if (e instanceof ExecError && e.code === 1 && parsePing(e.stdout, count).received > 0) return said(e);
      throw e;
    }
  }

  /** Start a long-running process inside a host; stopped by PID on cleanup. */
  spawn(host: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const argv = cmd === 'ping' ? pingDeadline(args) : args;
    const child = spawn('ip', ['netns', 'exec', this.ns(host), cmd, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.push(child);
    return child;
  }

  /** Stop a process this lab started, by PID; SIGKILL if it does not exit in time. */
  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    if (child.pid) process.kill(child.pid, signal);
    const t = setTimeout(() => child.pid && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(t);
    return code;
  }

  /**
   * iperf3 TCP between two hosts, `client` -> `server` and back (-R), `seconds` each, with
   * `streams` parallel connections (-P).
   * Returns Gbit/s received in each direction; throws if iperf3 fails either way.
   */
  async iperfBothWays(client: string, server: string, serverAddr: string, seconds = 2, streams = 1): Promise<{ up: number; down: number }> {
    const srv = this.spawn(server, 'iperf3', ['-s', '-B', serverAddr]);
    try {
      await untilListening(this, server, 5201);
      const parallel = streams > 1 ? ['-P', String(streams)] : [];
      const run = async (extra: string[]) =>
        iperfGbps((await this.exec(client, 'iperf3', ['-c', serverAddr, '-t', String(seconds), '-J', ...parallel, ...extra], (seconds + 60) * 1000)).stdout);
      return { up: await run([]), down: await run(['-R']) };
    } finally {
      await this.stop(srv);
    }
  }

  /**
   * Capture with tshark inside a host: starts, waits until tshark is capturing, and
   * returns `stop()`, which ends the capture and gives one row of `fields` per packet (the
   * outermost occurrence of each field), and `rows()`, the rows so far (to poll on).
   */
  async capture(
    host: string,
    iface: string,
    filter: string,
    fields: string[],
    tsharkArgs: string[] = [],
  ): Promise<{ stop(): Promise<string[][]>; rows(): string[][] }> {
    // occurrence=f: the first (outer) instance of a field that the inner packet repeats.
    // tsharkArgs: extra options, e.g. ['-o', 'udp.check_checksum:TRUE'].
    const args = ['-l', '-n', '-i', iface, '-f', filter, '-T', 'fields', '-E', 'occurrence=f', ...tsharkArgs, ...fields.flatMap((f) => ['-e', f])];
    const child = this.spawn(host, 'tshark', args);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`tshark did not start: ${err}`)), 15_000);
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (/Capturing on/.test(err)) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', () => {
        clearTimeout(t);
        reject(new Error(`tshark exited: ${err}`));
      });
    });
    // tshark says "Capturing on" a moment before the socket is live.
    await new Promise((r) => setTimeout(r, 300));
    const rows = (text: string) =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t'));
    return {
      stop: async () => {
        await new Promise((r) => setTimeout(r, 300));
        await this.stop(child, 'SIGINT');
        return rows(out);
      },
      rows: () => rows(out.slice(0, out.lastIndexOf('\n') + 1)),
    };
  }

  /**
   * Hand what this lab made over to the caller (`vtepd demo --keep`): the namespaces and the
   * PIDs of the processes still running. cleanup() then leaves them; the caller removes them.
   */
  keep(): { namespaces: string[]; pids: number[] } {
    const pids = this.children.filter((c) => c.exitCode === null && c.signalCode === null && c.pid).map((c) => c.pid!);
    this.children.splice(0);
    return { namespaces: this.namespaces.splice(0), pids };
  }

  async cleanup(): Promise<void> {
    for (const c of this.children.splice(0).reverse()) {
      try {
        await this.stop(c);
      } catch {
        /* already gone */
      }
    }
    for (const n of this.namespaces.splice(0).reverse()) {
      try {
        await run('ip', ['netns', 'del', n]);
      } catch {
        /* already gone */
      }
    }
  }
}

/** A command run() ran that failed: the message names it, and what it printed comes along. */
export class ExecError extends Error implements ExecResult {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    /** Its exit status; a string (ETIMEDOUT, ENOENT, ...) when it did not exit on its own. */
    readonly code: number | string | undefined,
  ) {
    super(message);
  }
}

export async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr };
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string; code?: number | string };
    throw new ExecError(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`, err.stdout ?? '', err.stderr ?? '', err.code);
  }
}

/** Wait until a child prints a line matching `re` on stdout (or fails/exits first). */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const t = setTimeout(() => done(new Error(`timed out waiting for ${re}; stderr: ${err.slice(-2000)}`)), timeoutMs);
    const onOut = (d: Buffer) => {
      buf += d.toString();
      const m = buf.split('\n').find((l) => re.test(l));
      if (m) done(undefined, m);
    };
    const onErr = (d: Buffer) => {
      err += d.toString();
    };
    const onExit = (code: number | null) => done(new Error(`exited with ${code} before ${re}; stderr: ${err.slice(-2000)}`));
    function done(e?: Error, line?: string) {
      clearTimeout(t);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (e) reject(e);
      else resolve(line!);
    }
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

/** Parse iperf3 --json output: bits per second received. */
export function iperfGbps(json: string): number {
  const r = JSON.parse(json) as { end: { sum_received?: { bits_per_second: number }; sum?: { bits_per_second: number } } };
  const bps = r.end.sum_received?.bits_per_second ?? r.end.sum?.bits_per_second ?? 0;
  return bps / 1e9;
}

/**
 * A counted ping (`-c N`) with a deadline (`-w`): 3 × N × interval (a loaded machine sends
 * slower than asked: 60 probes a second at `-i 0.01` seen beside the suite) + the wait for a
 * reply (`-W`, 2 s if not given), whole seconds. Without a deadline, iputils' ping waits
 * for the replies still out after its last probe only max(2 × the slowest round trip so far,
 * the interval): at `-i 0.01`, a reply 10 ms late is counted lost. With one, it ends as soon
 * as every reply is in, or at the deadline. `args` itself if it has `-w` already or no `-c`.
 */
export function pingDeadline(args: string[]): string[] {
  const value = (flag: string): number | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : undefined;
  };
  const count = value('-c');
  if (count === undefined || !Number.isFinite(count) || args.includes('-w')) return args;
  const seconds = 3 * count * (value('-i') ?? 1) + (value('-W') ?? 2);
  return [...args, '-w', String(Math.ceil(seconds))];
}

/** The line lab.exec adds to the output of a ping it gave a deadline. */
const PING_NOTE = '(lab: a deadline added to ping';

/**
 * Parse `ping` output: transmitted, received, rtt avg (ms), of its first `count` probes (the
 * `-c` it was given; from lab.exec's line if not passed). A ping with a deadline
 * (pingDeadline) sends on until `count` replies are in, also while the first are only late
 * (ARP through a hub), so the replies are counted by icmp_seq 1..count from the reply lines
 * (not with `-q`). Without a count, the summary as ping printed it.
 */
export function parsePing(out: string, count?: number): { sent: number; received: number; avgMs: number | null } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const r = /= [\d.]+\/([\d.]+)\//.exec(out);
  const summary = { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, avgMs: r ? Number(r[1]) : null };
  const note = out.lastIndexOf(PING_NOTE);
  if (note >= 0) count ??= Number(/ -c (\d+)/.exec(out.slice(note))?.[1]);
  if (count === undefined || !Number.isFinite(count)) return summary;
  const seqs = new Set([...out.matchAll(/bytes from .*icmp_seq=(\d+)/g)].map((x) => Number(x[1])).filter((s) => s >= 1 && s <= count));
  return { sent: Math.min(summary.sent, count), received: seqs.size, avgMs: summary.avgMs };
}
