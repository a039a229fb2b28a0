/**
 * The daemon: turn a validated Config into a running switch — the underlay data path,
 * one bridge per tenant, a TAP per port — and tear it all down again.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Config, PortConfig, TenantConfig } from './config.js';
import { NativeDatapath } from './datapath.js';
import { native } from './native.js';
import { Switch } from './switch.js';
import { logger, setLogLevel } from './log.js';

const execFileP = promisify(execFile);
const log = logger('daemon');

export interface RunningPort {
  tenant: string;
  tap: string;
  netns: string | null;
  fd: number;
  ifindex: number;
  mac: string;
  mtu: number;
}

export class Daemon {
  readonly sw: Switch;
  readonly ports: RunningPort[] = [];
  readonly startedAt = Date.now();
  private closed = false;

  private constructor(readonly config: Config) {
    const dp = new NativeDatapath({
      local: config.underlay.local,
      port: config.underlay.port,
      sourcePorts: config.underlay.sourcePorts,
    });
    const limits = native().limits();
    this.sw = new Switch(dp, { vxlanPort: config.underlay.port, maxMacsTotal: Math.floor(limits.fdbCapacity / 2) });
  }

  /** Build everything the config describes. On failure, undo what was built and throw. */
  static async start(config: Config): Promise<Daemon> {
    setLogLevel(config.log.level);
    const d = new Daemon(config);
    try {
      d.sw.start();
      for (const t of config.tenants) await d.addTenant(t);
      d.sw.startAgeing(ageingInterval(config));
    } catch (e) {
      d.close();
      throw e;
    }
    log.info({ tenants: config.tenants.length, ports: d.ports.length }, 'running');
    return d;
  }

  private async addTenant(t: TenantConfig): Promise<void> {
    this.sw.addTenant({
      name: t.name, vni: t.vni, learning: t.learning, ageing: t.ageing, maxMacs: t.maxMacs,
      flood: t.flood, fdb: t.fdb,
    });
    for (const p of t.ports) await this.addPort(t.name, p);
  }

  private async addPort(tenant: string, p: PortConfig): Promise<void> {
    const n = native();
    const tap = n.tapOpen({
      name: p.tap,
      netns: p.netns ?? undefined,
      mtu: p.mtu,
      mac: p.mac ?? undefined,
      ipv4: p.address?.family === 4 ? { address: p.address.address, prefixLength: p.address.prefixLength } : undefined,
      up: true,
    });
    try {
      if (p.address?.family === 6) {
        const ip = ['addr', 'add', `${p.address.address}/${p.address.prefixLength}`, 'dev', p.tap, 'nodad'];
        await execFileP('ip', p.netns ? ['-n', p.netns, ...ip] : ip);
      }
      this.sw.addPort(tenant, p.tap, tap.fd);
    } catch (e) {
      n.fdClose(tap.fd);
      throw e;
    }
    this.ports.push({ tenant, tap: p.tap, netns: p.netns, fd: tap.fd, ifindex: tap.ifindex, mac: tap.mac, mtu: p.mtu });
    log.info({ tenant, tap: p.tap, netns: p.netns, mtu: p.mtu }, 'port up');
  }

  /** Stop the data path and delete the TAPs (closing a TAP's fd removes it). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sw.stop();
    for (const p of this.ports.splice(0)) {
      try {
        native().fdClose(p.fd);
      } catch (e) {
        log.warn({ tap: p.tap, err: (e as Error).message }, 'closing TAP failed');
      }
    }
  }
}

/** Check ageing often enough for the shortest ageing time, at most once a second. */
function ageingInterval(config: Config): number {
  const shortest = Math.min(300, ...config.tenants.map((t) => t.ageing));
  return Math.max(100, Math.min(1000, (shortest * 1000) / 4));
}
