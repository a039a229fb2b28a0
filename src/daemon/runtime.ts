/**
 * `vtepd run`: the Daemon with everything an operator talks to around it — the control
 * socket (src/daemon/control.ts), the metrics endpoint (src/daemon/metrics.ts), signals (SIGHUP reloads,
 * SIGINT/SIGTERM stop), systemd notification, and the takeover restart.
 *
 * The takeover restart (both sides) is src/daemon/takeover.ts; the API's methods are
 * src/daemon/api.ts.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatConfigErrorIn, type Config } from '../config/config.js';
import { loadConfig } from '../config/load.js';
import { sdNotify } from '../native/system.js';
import { apiHandlers } from './api.js';
import { answers, ApiError, ControlServer } from './control.js';
import { Daemon, type DaemonHooks } from './daemon.js';
import { Metrics } from './metrics.js';
import { explainControlError, explainMetricsError, say } from './explain.js';
import { Busy, Takeover, type TakeoverHost } from './takeover.js';
import { EtcdClient } from '../directory/etcd.js';
import { Nets } from '../directory/nets.js';
import { readDynamicState, stateFileOf, withDynamic, writeDynamicState, type DynamicPort } from '../ports/dynamic.js';
import { logger } from '../util/log.js';

const log = logger('server');

export interface RunOptions {
  configPath: string;
  takeover?: boolean;
  /** Printed once running (the CLI's "vtepd: running ..." line). */
  onRunning?: (d: Daemon) => void;
}

/** The daemon process: one Daemon at a time (a failed handover's recovery makes a new one). */
export class Runtime implements TakeoverHost {
  daemon!: Daemon;
  readonly control: ControlServer;
  readonly metrics: Metrics;
  readonly configPath: string;
  /** A reload or a handover in progress. */
  readonly busy = new Busy();
  readonly takeover: Takeover;
  private exiting = false;

  constructor(configPath: string) {
    this.configPath = resolve(configPath);
    this.takeover = new Takeover(this);
    this.control = new ControlServer(apiHandlers(this));
    this.metrics = new Metrics(() => this.daemon);
  }

  daemonHooks(): DaemonHooks {
    return {
      control: async (socket) => {
        await this.control.close();
        await this.control.listen(socket).catch((e: Error) => Promise.reject(explainControlError(e, socket)));
      },
      metrics: (m) => this.metrics.listen(m).catch((e: Error) => Promise.reject(m ? explainMetricsError(e, m) : e)),
      eventBatch: (n) => this.metrics.observeBatch(n),
      dynamicPorts: (ports) => writeDynamicState(stateFileOf(this.daemon.running.control.socket), ports),
      dataPathLost: () => void this.dataPathLost(),
    };
  }

  /**
   * The data path's process died (the daemon logged it): stop as on SIGTERM (the TAPs go)
   * and exit 1, so that the service manager starts vtepd again (systemd: Restart=on-failure).
   * Step 1 of #18's move; later the daemon respawns the process and replays its state.
   */
  private async dataPathLost(): Promise<void> {
    try {
      await this.shutdown();
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'stopping after the data path process died failed');
    }
    process.exit(1);
  }

  adopt(d: Daemon): void {
    this.daemon = d;
  }

  /** Handed over to a successor: leave (shortly, so the last answer goes out). */
  exit(): void {
    this.exiting = true;
    setTimeout(() => process.exit(0), 100);
  }

  /** Start fresh from a config. */
  async start(config: Config): Promise<void> {
    const socket = config.control.socket;
    if (existsSync(socket) && (await answers(socket))) throw new Error(`control.socket: ${say.daemonAnswers(socket)}`);
    const dynamic = await restoreDynamic(config);
    const merged = withDynamic(config, dynamic);
    for (const d of merged.dropped)
      log.warn({ net: d.rec.net, tenant: d.rec.tenant, tap: d.rec.tap, why: d.why }, 'a port attached before the restart is not attached again');
    const kept = dynamic.filter((r) => !merged.dropped.some((d) => d.rec === r));
    this.adopt(await Daemon.start(merged.config, { hooks: this.daemonHooks(), dynamic: kept }));
    if (kept.length !== dynamic.length) writeDynamicState(stateFileOf(socket), kept);
    try {
      await this.control.listen(socket).catch((e: Error) => Promise.reject(explainControlError(e, socket)));
      const m = config.metrics;
      await this.metrics.listen(m).catch((e: Error) => Promise.reject(m ? explainMetricsError(e, m) : e));
    } catch (e) {
      this.daemon.close();
      await this.control.close();
      throw e;
    }
    sdNotify(`READY=1\nMAINPID=${process.pid}\nSTATUS=running`);
  }

  // ---- reload ----------------------------------------------------------------------------

  async reload(): Promise<{ changes: string[]; failed: string[]; runtimePorts?: { kept: string[]; dropped: string[] } }> {
    this.busy.check();
    const r = loadConfig(this.configPath);
    if (!r.ok) {
      this.daemon.reloads.failed++;
      throw new ApiError(`${this.configPath}: ${r.errors.length} error(s); the running config stays`, 'EINVAL', r.errors);
    }
    this.busy.claim('reload');
    sdNotify(`RELOADING=1\nMONOTONIC_USEC=${Math.round(performance.timeOrigin * 1000 + performance.now() * 1000)}`);
    try {
      const res = await this.daemon.reload(r.config);
      if (res.errors.length) throw new ApiError(`${this.configPath}: cannot be applied by a reload; the running config stays`, 'EINVAL', res.errors);
      if (res.failed.length)
        throw new ApiError(`${this.configPath}: ${res.failed.length} change(s) failed (the others were applied):\n${res.failed.join('\n')}`, 'EIO');
      // runtimePorts only when there are ports attached at runtime: the answer stays as it was for a daemon without them.
      const rp = res.runtimePorts;
      return { changes: res.changes, failed: res.failed, ...(rp.kept.length || rp.dropped.length ? { runtimePorts: rp } : {}) };
    } finally {
      this.busy.release();
      sdNotify('READY=1');
    }
  }

  /** SIGHUP: reload, and say what happened on stderr. */
  async reloadOnSignal(): Promise<void> {
    try {
      const r = await this.reload();
      process.stderr.write(`vtepd: reloaded ${this.configPath}: ${r.changes.length ? r.changes.join('; ') : 'no change'}${runtimeLine(r.runtimePorts)}\n`);
    } catch (e) {
      const err = e as ApiError;
      process.stderr.write(`vtepd: reload failed: ${err.message}\n`);
      for (const x of err.errors ?? []) process.stderr.write(`${formatConfigErrorIn(this.configPath, x)}\n`);
    }
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
    await this.daemon?.closing;
  }
}

/**
 * The ports attached before a plain restart (the state file next to the control socket):
 * those of a config tenant (`port add --tenant`) as they were (withDynamic drops one whose
 * tenant is gone; one whose interface is missing waits for it), those of a network each with
 * its VNI as the directory has it now: a network deleted meanwhile drops its ports. With etcd
 * unreachable, the VNIs last known are kept.
 */
export async function restoreDynamic(config: Config): Promise<DynamicPort[]> {
  const file = stateFileOf(config.control.socket);
  let recs: DynamicPort[];
  try {
    recs = readDynamicState(file);
  } catch (e) {
    log.warn({ file, err: (e as Error).message }, 'ports attached before the restart: state file unreadable, ignored');
    return [];
  }
  const byTenant = recs.filter((r) => r.net === undefined && netnsThere(r));
  return [
    ...byTenant,
    ...(await restoreNets(
      config,
      recs.filter((r) => r.net !== undefined),
    )),
  ];
}

/** The namespace of a port attached before the restart is there (or it has none); logged when not. */
function netnsThere(r: DynamicPort): boolean {
  if (!r.netns || existsSync(`/run/netns/${r.netns}`)) return true;
  log.warn({ net: r.net, tenant: r.tenant, tap: r.tap, netns: r.netns }, 'the namespace of a port attached before the restart is gone: not attached again');
  return false;
}

/** The ports of directory networks (`port add --net`), with their VNIs now. */
async function restoreNets(config: Config, recs: DynamicPort[]): Promise<DynamicPort[]> {
  const file = stateFileOf(config.control.socket);
  const dc = config.directory?.etcd;
  if (recs.length === 0 || !dc) {
    if (recs.length) log.warn({ file, ports: recs.length }, 'ports attached before the restart need an etcd directory: not attached again');
    return [];
  }
  const etcd = new EtcdClient({ endpoints: dc.endpoints, timeoutMs: 5000 });
  try {
    const nets = new Nets(etcd, { prefix: dc.prefix });
    const out: DynamicPort[] = [];
    for (const r of recs) {
      const [tenant, name] = r.net!.split('/') as [string, string];
      const n = await nets.get(tenant, name);
      if (!n) log.warn({ net: r.net, tap: r.tap }, 'the network of a port attached before the restart is gone: not attached again');
      else if (netnsThere(r)) out.push({ ...r, vni: n.vni });
    }
    return out;
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'the directory is unreachable: ports attached before the restart keep their last-known VNIs');
    return recs.filter((r) => !r.netns || existsSync(`/run/netns/${r.netns}`));
  } finally {
    etcd.close();
  }
}

/** What a reload did with the ports attached at runtime, for its one line ('' when there are none). */
export function runtimeLine(r: { kept: string[]; dropped: string[] } = { kept: [], dropped: [] }): string {
  const kept = r.kept.length ? `; ports attached at runtime kept: ${r.kept.join(', ')}` : '';
  return `${kept}${r.dropped.length ? `; dropped: ${r.dropped.join('; ')}` : ''}`;
}

/** `vtepd run`: start (or take over), then serve until a signal. */
export async function runDaemon(opts: RunOptions, config: Config): Promise<Runtime> {
  const rt = new Runtime(opts.configPath);
  if (opts.takeover) await rt.takeover.takeOver(config);
  else await rt.start(config);
  opts.onRunning?.(rt.daemon);
  process.on('SIGHUP', () => void rt.reloadOnSignal());
  return rt;
}
