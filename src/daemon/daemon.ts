/**
 * The daemon: turn a validated Config into a running switch — the underlay data path,
 * one bridge per tenant, a TAP per port — change it by diff on reload, answer what the
 * control API asks (status, FDB, peers, stats, trace), hand itself over to a successor,
 * and tear it all down again.
 *
 * The Daemon is the model; src/daemon/runtime.ts puts the control socket, the metrics endpoint and
 * the signals around it. The data path and the ports come from outside (NativeDatapath and
 * TAPs by default), so the unit tests run the very same reload code over the in-memory
 * fake data path.
 */
import type { PolicyChange, RolesChange } from '../config/reconcile.js';
import {
  type Config,
  type LogLevel,
  type MetricsConfig,
  type PortConfig,
  portKind,
  type StaticFdbEntry,
  type TenantConfig,
  type TrunkConfig,
} from '../config/config.js';
import { NativeDatapath, type Datapath } from '../native/datapath.js';
import { closeQuietly, limits } from '../native/system.js';
import { dpProcessPath, type DpCreateOptions, type DpProcessInfo } from '../native/addon.js';
import { Switch, type TenantPolicy, vlanPortName, type Where } from '../core/switch.js';
import { fdbRow, fdbRows, filterFdb, restoreEntry, snapshotFdb, type FdbFilter, type FdbRow, type SnapshotEntry } from '../core/fdb.js';
import { traceFrame, type TraceResult } from '../core/trace.js';
import { logger, setLogLevel } from '../util/log.js';
import { RoleAgent, type RoleOptions } from '../overlay/roles.js';
import { applyPlan, describeChange, patch, plan, type Change, type Target } from '../config/reconcile.js';
import { LostPorts } from '../ports/lost.js';
import { Trunks, type AdoptedTrunk, type TrunksDeps } from '../ports/trunk.js';
import { EtcdVlanPoolStore, FileVlanPoolStore, vlanStateFileOf } from '../ports/vlan-pool.js';
import { AttachPorts, PortsByKind } from '../ports/attach.js';
import { TapPorts, closePortFds, type PortBackend, type PortHandle, type RunningPort } from '../ports/tap.js';
import { Telemetry, type StatsSnapshot } from './stats.js';
import { VERSION } from '../util/paths.js';
import type { ConfigError } from '../config/config.js';
import { usesGre } from '../config/config.js';
import { handshakeType, type Identity } from '../secure/handshake.js';
import { encodeKey, publicKeyOf, readPrivateKeyFile } from '../secure/keys.js';
import type { Directory, MacRecord } from '../directory/directory.js';
import { ApiError } from './control.js';
import { EtcdDirectory } from '../directory/etcd-directory.js';
import { EvpnDirectory } from '../directory/evpn-directory.js';
import type { Gobgpd, GobgpdHandover } from '../evpn/gobgpd.js';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Membership } from '../directory/membership.js';
import { isDynamicTenant, placeDynamic, placeOf, PortError, tenantOfPort, withDynamic, type DynamicPort } from '../ports/dynamic.js';
import { DirectoryForwarding } from '../directory/forwarding.js';
import { explainPortError, explainUnderlayError } from './explain.js';

const log = logger('daemon');

/** What a takeover hands the new daemon: the old one's ports (by TAP name) and FDB. */
export interface Adopted {
  ports: Map<string, PortHandle>;
  fdb: SnapshotEntry[];
  /** Trunks' packet sockets by interface name (#15); absent from a daemon older than trunks. */
  trunks?: Map<string, AdoptedTrunk>;
  /** The gobgpd the old daemon supervised (EVPN): adopted, not started again (src/evpn/gobgpd.ts). */
  gobgpd?: GobgpdHandover | Gobgpd;
}

/** Hooks for what lives outside the model (the control socket, the metrics endpoint). */
export interface DaemonHooks {
  control?(socket: string): Promise<void>;
  metrics?(m: MetricsConfig | null): Promise<void>;
  /** Once per batch of events from the data path, with its size (metrics). */
  eventBatch?(size: number): void;
  /** The ports attached at runtime changed (the runtime keeps them in its state file). */
  dynamicPorts?(ports: DynamicPort[]): void;
  /** The data path's process died (VTEPD_DP_PROCESS=1); said once, already logged. The runtime exits. */
  dataPathLost?(p: DpProcessInfo): void;
}

export interface DaemonOptions {
  dp?: Datapath;
  ports?: PortBackend;
  adopt?: Adopted;
  hooks?: DaemonHooks;
  /** Switch-wide FDB limit; default half the addon's cache capacity. */
  maxMacsTotal?: number;
  /** The directory backend (tests); default: the config's (`directory.etcd` or `directory.evpn`), else none. */
  directory?: Directory;
  /** Ports attached at runtime that `config` already holds (merged by withDynamic): a restart or a takeover. */
  dynamic?: DynamicPort[];
  /** How trunks open interfaces and get pool IDs (tests; default: the addon, no pool store). */
  trunks?: Omit<TrunksDeps, 'sw'>;
}

export interface ReloadResult {
  ok: boolean;
  /** Validation or plan errors (nothing was changed), each with its path. */
  errors: ConfigError[];
  /** What was changed, one line each. */
  changes: string[];
  /** Changes that failed while applying (the rest were applied). */
  failed: string[];
  /** The ports attached at runtime (`vtepd port add`): kept (`vnet7 (tenant blue)`), or dropped with why. */
  runtimePorts: { kept: string[]; dropped: string[] };
}

/**
 * The data path's options from a config: its underlay, the raw GRE socket if a tenant
 * needs it, and (a takeover) the predecessor's underlay sockets to adopt instead of
 * binding new ones (their count says how many send sockets there are). The data path runs
 * in this process, or with VTEPD_DP_PROCESS=1 in the environment in a process of its own
 * (`vtepd-dp`, docs/performance.md).
 */
export function datapathOptions(config: Config, underlayFds?: number[], env: NodeJS.ProcessEnv = process.env): DpCreateOptions {
  const u = config.underlay;
  return {
    ...(dpInOwnProcess(env) ? { process: dpExecutable() } : {}),
    local: u.local,
    port: u.port,
    ...(underlayFds?.length ? { underlayFds } : { sourcePorts: u.sourcePorts }),
    ...(usesGre(config) ? { gre: true } : {}),
    ...(u.locals[1] ? { local2: u.locals[1].address } : {}),
    queues: u.queues,
    ...(u.cpus ? { cpus: u.cpus } : {}),
  };
}

/**
 * VTEPD_DP_PROCESS=1: the data path in a process of its own (#18: its threads wake faster in
 * a small process, but each event batch takes two more thread hops to reach TypeScript, which
 * loses frames to bursts of new MACs on 2 vCPUs: docs/performance.md). Unset, empty or 0: in
 * the daemon's process, the default. Any other value is refused (a typo must not pick a mode).
 */
export function dpInOwnProcess(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.VTEPD_DP_PROCESS;
  if (v === undefined || v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new Error(`VTEPD_DP_PROCESS=${v}: 0 (the data path in the daemon's process, the default) or 1 (in a process of its own)`);
}

/** vtepd-dp's path, or an error that says how to do without it. */
function dpExecutable(): string {
  try {
    return dpProcessPath();
  } catch (e) {
    throw new Error(`VTEPD_DP_PROCESS=1: ${(e as Error).message}`);
  }
}

/** The native data path of a config; a socket that cannot be bound names underlay.local or underlay.port, and what to do. */
function openDatapath(config: Config): NativeDatapath {
  const opts = datapathOptions(config); // outside: a vtepd-dp not built is not the underlay's fault
  try {
    return new NativeDatapath(opts);
  } catch (e) {
    throw explainUnderlayError(e as Error, config);
  }
}

/**
 * A tenant's learning policy in the units the bridge runs on: the config's seconds become
 * milliseconds here, and nowhere else; 'off' becomes null.
 */
export function tenantPolicy(t: PolicyChange): TenantPolicy {
  const d = t.moveDampening;
  return {
    learning: t.learning,
    learnFromUnderlay: t.learnFromUnderlay,
    ageingMs: t.ageing * 1000,
    maxMacs: t.maxMacs,
    acceptFrom: t.acceptFrom,
    stormControl: t.stormControl === 'off' ? null : t.stormControl,
    moveDampening: d === 'off' ? null : { maxMoves: d.moves, windowMs: d.window * 1000, holdMs: d.hold * 1000 },
  };
}

/** The role agent's options from a config (its seconds in milliseconds, converted here only). */
export function roleOptions(
  c: Pick<Config, 'role' | 'hubs' | 'nat' | 'keepalive' | 'deadInterval' | 'pmtuDiscovery' | 'underlay' | 'spokes'> & {
    /** A reload's identity.rekeyInterval, or the config's identity. */
    rekeyInterval?: number | null;
    identity?: Config['identity'];
  },
): RoleOptions {
  return {
    role: c.role,
    hubs: c.hubs,
    nat: c.nat,
    keepaliveMs: c.keepalive * 1000,
    deadIntervalMs: c.deadInterval * 1000,
    pmtuDiscovery: c.pmtuDiscovery,
    underlayMtu: c.underlay.mtu,
    family: c.underlay.family,
    spokes: c.spokes,
    rekeyMs: (c.rekeyInterval ?? c.identity?.rekeyInterval ?? 120) * 1000,
    port: c.underlay.port,
  };
}

/** The node's key pair from identity.privateKeyFile (refused if group or others may read it); null without one. */
export function loadIdentity(c: Pick<Config, 'identity'>): Identity | null {
  if (!c.identity) return null;
  const privateKey = readPrivateKeyFile(c.identity.privateKeyFile);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

export class Daemon implements Target {
  readonly dp: Datapath;
  readonly sw: Switch;
  /** Hub, spoke or mesh: liveness, failover, relay, path MTU, MSS clamping (src/overlay/roles.ts). */
  readonly roles: RoleAgent;
  readonly ports: RunningPort[] = [];
  readonly startedAt = Date.now();
  readonly reloads = { ok: 0, failed: 0 };
  /** Set when this daemon took over from another: its PID and how long forwarding stopped. */
  takeover: { fromPid: number; gapMs: number } | null = null;
  /** The config that runs (the last good one, with every change that succeeded). */
  running: Config;
  /** While a reload applies: the config it applies (to name a failed port by its path in it). */
  private applying: Config | null = null;
  private closed = false;
  private readonly backend: PortBackend;
  private readonly hooks: DaemonHooks;
  private peerTimer: NodeJS.Timeout | undefined;
  /** Peers and fault counters watched, stats counted. */
  private readonly telemetry: Telemetry;
  /** Ports whose TAP went away under us: recreated, retried once a second. */
  private readonly lost: LostPorts;
  private eventBatches = 0;
  /** This node's public key (base64), published in the directory; null without an identity. */
  private readonly identityKey: string | null;
  /** With a directory: the VNIs' members, each tenant's flood list from them (src/directory/). */
  readonly directory: Directory | null;
  private readonly membership: Membership | null;
  /** With a directory: the public keys its VNI's members published, per tenant (address -> key). */
  private readonly dirKeys = new Map<string, Record<string, string>>();
  /** With a directory: remote MACs from its records, local MACs into it, ARP/ND answered from it. */
  readonly forwarding: DirectoryForwarding | null;
  /** Set by close(): the directory withdrawing this host (best effort, bounded). */
  closing: Promise<void> = Promise.resolve();
  /** Ports attached at runtime (`vtepd port add`), by TAP name; also in `running` (src/ports/dynamic.ts). */
  readonly dynamic = new Map<string, DynamicPort>();
  /** VLAN trunks (#15): interfaces carrying tenants by VLAN ID (src/ports/trunk.ts). */
  readonly trunks: Trunks;

  private constructor(config: Config, opts: DaemonOptions) {
    this.running = config;
    for (const r of opts.dynamic ?? []) this.dynamic.set(r.tap, r);
    const dp = (this.dp = opts.dp ?? openDatapath(config));
    this.backend = opts.ports ?? new PortsByKind(new TapPorts(config.underlay.queues), new AttachPorts(config.underlay.locals.map((l) => l.address)));
    this.hooks = opts.hooks ?? {};
    const maxMacsTotal = opts.maxMacsTotal ?? Math.min(config.limits.maxMacs, limits().fdbCapacity);
    this.sw = new Switch(dp, {
      vxlanPort: config.underlay.port,
      maxMacsTotal,
      // Every VTEP's path MTU starts at the underlay's: frames that do not fit get ICMP too-big.
      defaultVtepMtu: config.underlay.mtu,
      onControl: (payload, from) => (handshakeType(payload) !== null ? this.roles.onHandshake(payload, from) : this.roles.onControl(payload, from)),
      onSecureEvent: (ev) => this.roles.onSecureEvent(ev),
      localMac: (b, mac, portId, present) => this.forwarding?.localMac(b, mac, portId, present),
      neighbor: (b, portId, frame) => this.forwarding?.neighbor(b, portId, frame) ?? null,
    });
    const identity = loadIdentity(config);
    this.identityKey = identity ? encodeKey(identity.publicKey) : null;
    const dc = config.directory;
    this.directory = opts.directory ?? (dc ? makeDirectory(config, dc, opts.adopt?.gobgpd) : null);
    this.membership = this.directory
      ? new Membership({
          directory: this.directory,
          self: config.underlay.locals.map((a) => a.address),
          apply: (t, flood, keys) => this.applyFlood(t, flood, keys),
        })
      : null;
    this.forwarding = this.directory
      ? new DirectoryForwarding({ directory: this.directory, sw: this.sw, dp, self: config.underlay.locals.map((a) => a.address) })
      : null;
    this.roles = new RoleAgent({ sw: this.sw, vteps: this.sw.vteps, dp, identity }, roleOptions(config));
    this.telemetry = new Telemetry({ sw: this.sw, dp, roles: this.roles, startedAt: this.startedAt });
    this.trunks = new Trunks({
      sw: this.sw,
      underlay: config.underlay.locals.map((l) => l.address),
      adopted: opts.adopt?.trunks,
      // Pool IDs: in etcd with a directory (two gateways never hand out one ID twice), else in a state file by the control socket.
      pools: () =>
        dc?.etcd
          ? new EtcdVlanPoolStore({ endpoints: dc.etcd.endpoints, prefix: dc.etcd.prefix, host: config.underlay.locals[0]!.address })
          : new FileVlanPoolStore(vlanStateFileOf(config.control.socket)),
      ...opts.trunks,
    });
    this.lost = new LostPorts({
      ports: () => this.ports,
      takeDown: (p) => {
        this.unswitch(p);
        this.dropPort(p);
      },
      bringUp: (tenant, config) => this.plugPort(tenant, config),
      closed: () => this.closed,
    });
  }

  /** Build everything the config describes. On failure, undo what was built and throw. */
  static async start(config: Config, opts: DaemonOptions = {}): Promise<Daemon> {
    setLogLevel(config.log.level);
    const d = new Daemon(config, opts);
    try {
      const start = () =>
        d.sw.start((n) => {
          d.eventBatches++;
          d.hooks.eventBatch?.(n);
        });
      // A takeover programs everything, FDB included, before forwarding resumes, so the
      // first frames after the pause find their learned destinations (no flooding).
      if (!opts.adopt) start();
      for (const t of config.tenants) {
        await d.addTenant(t);
        for (const p of t.ports) await d.addPort(t.name, p, opts.adopt?.ports.get(p.tap));
      }
      for (const t of config.trunks ?? []) await d.setTrunk(t);
      d.trunks.dropUnadopted();
      if (opts.adopt) {
        let restored = 0;
        for (const e of opts.adopt.fdb) if (restoreEntry(d.sw, e)) restored++;
        start();
        log.info({ entries: opts.adopt.fdb.length, restored }, 'FDB restored from the previous daemon');
      }
      d.sw.ageing.start();
      d.roles.start();
      if (d.directory && d.membership) {
        d.membership.start();
        d.forwarding?.start();
        const u = config.underlay;
        d.directory.publish({ address: u.local, port: u.port, role: config.role, ...(d.identityKey ? { publicKey: d.identityKey } : {}) });
        await d.directory.start();
      }
      d.peerTimer = setInterval(() => {
        try {
          d.tick();
        } catch (e) {
          log.warn({ err: (e as Error).message }, 'periodic check failed');
        }
      }, 1000);
      d.peerTimer.unref();
    } catch (e) {
      d.close();
      throw e;
    }
    log.info({ tenants: config.tenants.length, ports: d.ports.length }, 'running');
    return d;
  }

  // ---- Target: the reconcile operations ------------------------------------------------

  /**
   * What the role agent needs of a tenant: its MSS clamping, encap, encryption and the keys of
   * its VTEPs: the config's, and (with a directory) those its VNI's members published (the
   * config's win for an address both name).
   */
  private roleSpec(t: Pick<TenantConfig, 'name' | 'mssClamp' | 'encap' | 'encryption' | 'vtepKeys'>) {
    return {
      mssClamp: t.mssClamp,
      encap: t.encap,
      encrypted: t.encryption === 'required',
      vtepKeys: { ...(this.dirKeys.get(t.name) ?? {}), ...t.vtepKeys },
    };
  }

  addTenant(t: TenantConfig): void {
    const encrypted = t.encryption === 'required';
    const flood = this.membership ? this.membership.addTenant(t.name, t.vni, t.flood) : t.flood;
    if (this.membership) this.dirKeys.set(t.name, this.membership.keysOf(t.name));
    const spec = this.roleSpec(t);
    this.roles.setTenant(t.name, spec);
    const b = this.sw.addTenant({
      name: t.name,
      vni: t.vni,
      flood,
      fdb: t.fdb,
      encap: t.encap,
      vtepEncap: t.vtepEncap,
      encrypted,
      keyed: Object.keys(spec.vtepKeys),
      ...tenantPolicy(t),
    });
    this.roles.applyTo(b);
    if (t.innerVlan === 'allow') this.sw.setInnerVlan(t.name, true);
    this.forwarding?.addTenant(t.name, t.vni);
  }
  setInnerVlan(name: string, v: TenantConfig['innerVlan']): void {
    this.sw.setInnerVlan(name, v === 'allow');
  }

  async removeTenant(name: string): Promise<void> {
    const ports = this.ports.filter((p) => p.tenant === name);
    this.membership?.removeTenant(name);
    this.dirKeys.delete(name);
    this.forwarding?.removeTenant(name);
    for (const p of ports) if (p.config.vlan) this.sw.removeTrunk(p.tap); // a tagged TAP's trunk has no tenant to go with
    this.sw.removeTenant(name);
    this.trunks.tenantRemoved(name);
    this.roles.forgetTenant(name);
    this.lost.forgetTenant(name);
    for (const p of ports) this.dropPort(p);
  }

  /** A trunk as its config says (attached if new; VLAN ports added and removed as a diff). */
  async setTrunk(t: TrunkConfig): Promise<void> {
    try {
      await this.trunks.set(t);
    } catch (e) {
      const i = (this.applying ?? this.running).trunks?.findIndex((x) => x.attach === t.attach) ?? -1;
      throw explainPortError(
        e as Error,
        (key) => (i < 0 ? `trunk ${t.attach}` : `trunks[${i}]${key ? `.${key}` : ''}`),
        {
          tap: t.attach,
          kind: 'attach',
          netns: t.netns,
          address: null,
          mac: null,
          mtu: 0,
        },
        true,
      );
    }
  }
  async removeTrunk(attach: string): Promise<void> {
    await this.trunks.remove(attach);
  }

  setPolicy(name: string, p: PolicyChange): void {
    this.sw.setPolicy(name, tenantPolicy(p));
  }
  /** The config's flood list (reload); with a directory, joined with the VNI's members. */
  setFlood(name: string, flood: string[]): void {
    this.applyFlood(name, this.membership ? this.membership.setStatic(name, flood) : flood);
  }
  /** A tenant's flood list; with a directory also its members' keys (`keys`), which change the role agent's peers. */
  private applyFlood(name: string, flood: string[], keys?: Record<string, string>): void {
    const keysChanged = keys !== undefined && JSON.stringify(keys) !== JSON.stringify(this.dirKeys.get(name) ?? {});
    if (keys) {
      this.dirKeys.set(name, keys);
      this.sw.addKeyed(Object.keys(keys));
    }
    this.sw.setFlood(name, flood);
    const t = this.running.tenants.find((x) => x.name === name);
    if (keysChanged && t) this.roles.setTenant(name, this.roleSpec(t));
    const b = this.sw.tenant(name);
    if (b) this.roles.refreshMss(b);
  }
  setMssClamp(name: string, clamp: TenantConfig['mssClamp']): void {
    const t = this.running.tenants.find((x) => x.name === name);
    this.roles.setTenant(
      name,
      this.roleSpec({ name, mssClamp: clamp, encap: t?.encap ?? 'vxlan', encryption: t?.encryption ?? 'off', vtepKeys: t?.vtepKeys ?? {} }),
    );
  }
  setRoles(r: RolesChange): void {
    this.roles.reconfigure(roleOptions({ ...r, underlay: this.running.underlay }));
  }
  setStatic(name: string, e: StaticFdbEntry): void {
    this.sw.setStatic(name, e.mac, { vtep: e.vtep });
  }
  delStatic(name: string, mac: string): void {
    this.sw.removeEntry(name, mac);
  }

  /** A port of the config (start, reload) or attached at runtime; an attached interface that does not exist yet is waited for. */
  async addPort(tenant: string, p: PortConfig, adopted?: PortHandle): Promise<void> {
    await this.addOrWait(tenant, p, adopted);
  }

  /** Open a port (or take the adopted one) and switch it; throws if that fails. */
  private async plugPort(tenant: string, p: PortConfig, adopted?: PortHandle): Promise<void> {
    const h = adopted ?? (await this.openPort(tenant, p));
    // An adopted TAP keeps the queues it came with, up to this data path's: a queue
    // nobody reads would stall the flows the kernel steers to it, so extra ones close.
    // A tagged TAP (vlan:) is read as a trunk of one VLAN: one queue.
    const queueFds = [...(h.queueFds ?? [])];
    closeQuietly(queueFds.splice(p.vlan ? 0 : this.running.underlay.queues - 1));
    const port: RunningPort = { tenant, tap: p.tap, netns: p.netns, fd: h.fd, queueFds, ifindex: h.ifindex, mac: h.mac, mtu: h.mtu ?? p.mtu, config: p };
    // A packet socket cannot say it reads a virtio_net_hdr (a TAP can): an attached port always does.
    const vnetHdr = h.vnetHdr ?? (portKind(p) === 'attach' ? true : undefined);
    try {
      if (p.vlan) {
        // The VM tags its frames: the TAP is a trunk with this one VLAN (tag off on the way in, on on the way out).
        this.sw.setTrunk(p.tap, h.fd);
        this.sw.addVlanPort(tenant, p.tap, p.vlan);
      } else {
        this.sw.addPort(tenant, p.tap, h.fd, { vnetHdr, ...(queueFds.length ? { queueFds } : {}) });
      }
    } catch (e) {
      if (p.vlan && this.sw.trunkList().some((t) => t.name === p.tap)) this.sw.removeTrunk(p.tap);
      this.backend.close(port);
      throw e;
    }
    this.ports.push(port);
    this.membership?.portAdded(tenant);
    // A port whose MAC and address the config gives is in the directory before it speaks.
    if (p.address && port.mac) this.announceLocal(tenant, port.mac, [p.address.address]);
    log.info({ tenant, tap: p.tap, kind: portKind(p), netns: p.netns, mtu: port.mtu, adopted: !!adopted }, 'port up');
  }

  /**
   * addPort, except that an attached interface (`{ attach: vnet0 }` in the config, or `port
   * add --attach`) that does not exist (yet) is waited for: logged once, attached when it
   * appears (LostPorts); a VM's TAP exists only while the VM runs. True: attached now.
   */
  private async addOrWait(tenant: string, p: PortConfig, adopted?: PortHandle): Promise<boolean> {
    try {
      await this.plugPort(tenant, p, adopted);
      return true;
    } catch (e) {
      if (portKind(p) !== 'attach' || (e as { code?: string }).code !== 'ENODEV') throw e;
      log.warn({ tenant, attach: p.tap, netns: p.netns }, 'attached interface does not exist yet: attaching it when it appears');
      this.lost.wait(tenant, p);
      return false;
    }
  }

  /** Take a port out of the switch: a tagged TAP is a trunk of one VLAN. */
  private unswitch(p: RunningPort): void {
    if (p.config.vlan) this.sw.removeTrunk(p.tap);
    else this.sw.removePort(p.tap);
  }

  /** A port's TAP; a failure names the port's field as the user wrote it, and what to do. */
  private async openPort(tenant: string, p: PortConfig): Promise<PortHandle> {
    try {
      return await this.backend.open(tenant, p);
    } catch (e) {
      throw explainPortError(e as Error, this.portField(tenant, p.tap), p);
    }
  }
  /** `tenants[0].ports[1](.KEY)` for a port of the config (being applied), `(KEY of )port TAP` for one attached at runtime. */
  private portField(tenant: string, tap: string): (key?: string) => string {
    const tenants = (this.applying ?? this.running).tenants;
    const i = tenants.findIndex((t) => t.name === tenant);
    const j = tenants[i]?.ports.findIndex((p) => p.tap === tap) ?? -1;
    if (this.dynamic.has(tap) || j < 0) return (key) => (key ? `${key} of port ${tap}` : `port ${tap}`);
    return (key) => `tenants[${i}].ports[${j}]${key ? `.${key}` : ''}`;
  }

  /**
   * A local port's MAC and IP addresses (config, `vtepd port add --mac --address`): learned at
   * the port and published in the directory at once, so it is found (and its ARP answered)
   * before it sends a frame. Without a directory, nothing.
   */
  announceLocal(tenant: string, mac: string, ips: string[]): void {
    if (!this.forwarding) return;
    const b = this.sw.tenant(tenant);
    const port = this.ports.find((x) => x.tenant === tenant && (x.mac === mac || x.config.mac === mac));
    if (!b || !port) return;
    b.learn(mac, this.sw.portPlace(tenant, port.tap));
    this.forwarding.announce(tenant, mac, ips);
  }

  removePort(tenant: string, tap: string): void {
    if (this.lost.forget(tenant, tap)) return; // its TAP was gone already (deleted under us, not recreated yet)
    const p = this.ports.find((x) => x.tap === tap && x.tenant === tenant);
    if (!p) throw new Error(`no port "${tap}" in tenant "${tenant}"`);
    this.unswitch(p);
    this.dropPort(p);
  }

  async changePort(tenant: string, _from: PortConfig, to: PortConfig): Promise<void> {
    const p = this.ports.find((x) => x.tap === to.tap && x.tenant === tenant);
    if (!p && this.lost.changed(tenant, to)) return; // its interface is gone or not there yet: brought back as `to` says
    if (!p) throw new Error(`no port "${to.tap}" in tenant "${tenant}"`);
    await this.backend.change(p, to);
    p.config = to;
    p.mtu = to.mtu;
    if (to.mac) p.mac = to.mac;
  }

  setLogLevel(level: LogLevel): void {
    setLogLevel(level);
  }
  setMaxMacsTotal(n: number): void {
    this.sw.setMaxMacsTotal(Math.min(n, limits().fdbCapacity));
  }
  async setControl(socket: string): Promise<void> {
    await this.hooks.control?.(socket);
  }
  async setMetrics(m: MetricsConfig | null): Promise<void> {
    await this.hooks.metrics?.(m);
  }

  private dropPort(p: RunningPort): void {
    const i = this.ports.indexOf(p);
    if (i >= 0) {
      this.ports.splice(i, 1);
      this.membership?.portRemoved(p.tenant);
    }
    try {
      this.backend.close(p);
    } catch (e) {
      log.warn({ tap: p.tap, err: (e as Error).message }, 'closing TAP failed');
    }
  }

  // ---- reload ----------------------------------------------------------------------------

  /**
   * Apply `next` as a diff against what runs. Errors that make the reload impossible
   * (underlay changes) refuse it whole; a change that fails while applying is reported and
   * the rest still applied. `running` becomes what really runs.
   */
  async reload(file: Config): Promise<ReloadResult> {
    // The ports attached at runtime stay: merged into the file's config before planning.
    const { config: next, dropped } = withDynamic(file, this.dynamic.values());
    const p = plan(this.running, next);
    if (p.errors.length) {
      this.reloads.failed++;
      log.warn({ errors: p.errors }, 'reload refused');
      return { ok: false, errors: p.errors, changes: [], failed: [], runtimePorts: { kept: [], dropped: [] } };
    }
    const runtimePorts = { kept: [] as string[], dropped: dropped.map((d) => `${d.rec.tap} (${placeOf(d.rec)}): ${d.why}`) };
    if (dropped.length) {
      for (const d of dropped) this.dynamic.delete(d.rec.tap);
      log.warn({ dropped: runtimePorts.dropped }, 'reload: ports attached at runtime dropped');
      this.dynamicChanged();
    }
    runtimePorts.kept = [...this.dynamic.values()].map((r) => `${r.tap} (${placeOf(r)})`);
    if (runtimePorts.kept.length) log.info({ kept: runtimePorts.kept }, 'reload: ports attached at runtime kept');
    this.applying = next;
    const r = await applyPlan(this.running, p.changes, this).finally(() => {
      this.applying = null;
    });
    // All applied: what runs is exactly `next`. Else the old config with what succeeded.
    this.running = r.failed.length ? r.config : next;
    const failed = r.failed.map((f) => `${describeChange(f.change)}: ${f.error}`);
    if (failed.length) this.reloads.failed++;
    else this.reloads.ok++;
    log.info({ changes: r.applied.length, failed: failed.length }, 'reloaded');
    if (failed.length) log.warn({ failed }, 'reload: some changes failed');
    return { ok: failed.length === 0, errors: [], changes: r.applied.map(describeChange), failed, runtimePorts };
  }

  /** The changes a reload to `next` would make, without making them. */
  planReload(file: Config): { changes: Change[]; errors: ConfigError[] } {
    return plan(this.running, withDynamic(file, this.dynamic.values()).config);
  }

  // ---- ports attached at runtime (vtepd port add / del) --------------------------------------

  /**
   * Attach a port to the tenant of its network's VNI (made, named after the network, when
   * the config has none). Refused (PortError) when its TAP name is taken or a field does not
   * check; a TAP that cannot be made throws the backend's error. Nothing stays of a failure.
   */
  async attachPort(rec: DynamicPort): Promise<{ tenant: string; created: boolean; port: RunningPort | null }> {
    const field = rec.kind === 'attach' ? 'attach' : 'tap';
    const holder = tenantOfPort(this.running, rec.tap) ?? this.sw.tenant(this.ports.find((p) => p.tap === rec.tap)?.tenant ?? '');
    if (holder) throw new PortError('exists', `${field}: ${rec.tap} is already a port (tenant ${holder.name})`);
    if (rec.kind === 'attach' && this.trunks.get(rec.tap)) throw new PortError('exists', `${field}: ${rec.tap} is a trunk of the config (trunks)`);
    const { tenant, created, port } = placeDynamic(this.running, rec);
    if (rec.tenant !== undefined) rec.vni = tenant.vni;
    if (created) this.addTenant(tenant);
    this.dynamic.set(rec.tap, rec); // before addOrWait: a missing interface of this port is waited for
    try {
      await this.addOrWait(tenant.name, port);
    } catch (e) {
      this.dynamic.delete(rec.tap);
      if (created) await this.removeTenant(tenant.name);
      throw e;
    }
    this.running = created
      ? patch(this.running, { op: 'tenant.add', tenant: tenant.name, config: { ...tenant, ports: [port] } })
      : patch(this.running, { op: 'port.add', tenant: tenant.name, port });
    this.dynamicChanged();
    // addPort published the port's MAC and address in the directory (announceLocal). Null: waiting for its interface.
    const running = this.ports.find((p) => p.tap === rec.tap) ?? null;
    log.info({ net: rec.net, vni: rec.vni, tenant: tenant.name, tap: rec.tap, kind: port.kind, created, waiting: !running }, 'port attached');
    return { tenant: tenant.name, created, port: running };
  }

  /**
   * Detach a port attached at runtime (`net`, if given, must be its network); a tenant made
   * for such ports goes with the last of them (this host then leaves the VNI).
   */
  async detachPort(tap: string, net?: string, kind?: 'tap' | 'attach'): Promise<{ rec: DynamicPort; tenant: string; tenantRemoved: boolean }> {
    const rec = this.dynamic.get(tap);
    const field = kind ?? 'tap';
    if (!rec) {
      const holder = tenantOfPort(this.running, tap);
      throw new PortError(
        'not-found',
        holder
          ? `${field}: ${tap} is a port of the config (tenant ${holder.name}): remove it there and reload`
          : `${field}: no port ${tap} was attached by port add`,
      );
    }
    const its = rec.kind ?? 'tap';
    if (kind !== undefined && kind !== its)
      throw new PortError('invalid', `${field}: port ${tap} is ${its === 'attach' ? 'an attached interface (port del --attach)' : 'a TAP (port del --tap)'}`);
    if (net !== undefined && net !== rec.net) throw new PortError('invalid', `net: port ${tap} is in ${placeOf(rec)}, not ${net}`);
    const tenant = tenantOfPort(this.running, tap);
    if (tenant) {
      this.removePort(tenant.name, tap);
      this.running = patch(this.running, { op: 'port.remove', tenant: tenant.name, tap, why: 'port del' });
    }
    const last = !!tenant && isDynamicTenant(tenant.name) && tenant.ports.length === 1;
    if (last) {
      await this.removeTenant(tenant.name);
      this.running = patch(this.running, { op: 'tenant.remove', tenant: tenant.name, why: 'its last port detached' });
    }
    this.dynamic.delete(tap);
    this.dynamicChanged();
    log.info({ net: rec.net, tap, tenant: tenant?.name, tenantRemoved: last }, 'port detached');
    return { rec, tenant: tenant?.name ?? rec.tenant ?? rec.net ?? '', tenantRemoved: last };
  }

  /** The ports attached at runtime, with the tenant each is in now (null: not running, e.g. its TAP could not be made on a reload). */
  dynamicPorts() {
    return [...this.dynamic.values()].map((rec) => {
      const p = this.ports.find((x) => x.tap === rec.tap);
      return {
        ...rec,
        kind: rec.kind ?? 'tap',
        // Gone under the daemon or not there yet: attached when an interface of its name appears.
        waiting: !p && this.lost.waiting(rec.tap),
        tenant: tenantOfPort(this.running, rec.tap)?.name ?? null,
        ifindex: p?.ifindex ?? null,
        mac: p?.mac ?? rec.mac ?? null,
        mtu: p?.mtu ?? rec.mtu ?? null,
      };
    });
  }

  /** Where a port attached at runtime went (`acme/web`, `tenant blue`); null: a port of the config. */
  private dynamicPlace(tap: string): string | null {
    const rec = this.dynamic.get(tap);
    return rec ? placeOf(rec) : null;
  }

  private dynamicChanged(): void {
    try {
      this.hooks.dynamicPorts?.([...this.dynamic.values()]);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'saving the ports attached at runtime failed');
    }
  }

  // ---- queries ---------------------------------------------------------------------------

  /** The PID of the data path's own process (VTEPD_DP_PROCESS=1), or null: it runs in this one. */
  dataPathPid(): number | null {
    const p = this.dp.process();
    return p?.alive ? p.pid : null; // once reaped, its PID may be another process's
  }

  status() {
    const rows = fdbRows(this.sw);
    return {
      pid: process.pid,
      version: VERSION,
      uptimeSeconds: Math.floor((Date.now() - this.startedAt) / 1000),
      startedAt: new Date(this.startedAt).toISOString(),
      underlay: { local: this.running.underlay.local, port: this.running.underlay.port, mtu: this.running.underlay.mtu, queues: this.running.underlay.queues },
      // The data path's own process (VTEPD_DP_PROCESS=1): its PID; null: it runs in this one.
      datapath: { process: this.dataPathPid() },
      control: this.running.control.socket,
      metrics: this.running.metrics?.listen ?? null,
      takeover: this.takeover,
      reloads: { ...this.reloads },
      tenants: this.sw.tenants().map((b) => ({
        name: b.name,
        vni: b.vni,
        learning: b.learning,
        ports: [
          ...this.ports.filter((p) => p.tenant === b.name).map((p) => p.tap),
          ...this.sw
            .portList()
            .filter((p) => p.tenant === b.name && p.trunk !== undefined && !this.ports.some((x) => x.tap === p.trunk))
            .map((p) => p.name),
        ],
        flood: [...b.flood].map((id) => this.sw.vteps.get(id)?.address ?? String(id)),
        macs: rows.filter((r) => r.tenant === b.name).length,
      })),
      ports: [
        ...this.ports.map((p) => ({
          tenant: p.tenant,
          tap: p.tap,
          kind: portKind(p.config),
          netns: p.netns,
          ifindex: p.ifindex,
          mac: p.mac,
          mtu: p.mtu,
          // The network of a port attached at runtime (vtepd port add); null: from the config.
          net: this.dynamicPlace(p.tap),
        })),
        // Attached interfaces not there (yet): a VM not started, or stopped.
        ...this.lost
          .list()
          .filter((l) => portKind(l.config) === 'attach' && !this.ports.some((p) => p.tap === l.config.tap))
          .map((l) => ({
            tenant: l.tenant,
            tap: l.config.tap,
            kind: 'attach',
            netns: l.config.netns,
            ifindex: 0,
            mac: '',
            mtu: 0,
            net: this.dynamicPlace(l.config.tap),
            waiting: true,
          })),
      ],
      trunks: this.trunks.list().map((r) => ({
        attach: r.config.attach,
        netns: r.config.netns,
        ifindex: r.ifindex,
        mac: r.mac,
        mtu: r.mtu,
        up: !r.lost,
        native: r.vlans.get(0) ?? null,
        // Every VLAN and its tenant; `pool`: the ID came from the trunk's pool (kept across restarts).
        vlans: [...r.vlans]
          .filter(([v]) => v !== 0)
          .sort(([a], [b]) => a - b)
          .map(([vlan, tenant]) => ({ vlan, tenant, port: vlanPortName(r.config.attach, vlan), pool: r.pooled.has(vlan) })),
        pool: r.config.pool,
      })),
      peers: this.sw.vteps
        .all()
        .map((v) => ({ vtep: v.key, address: v.address, encap: v.encap, udpPort: v.matchPort ? v.port : null, dynamic: v.dynamic, pathMtu: v.mtu })),
      overlay: this.roles.status(),
      directory: this.directoryStatus(),
    };
  }

  /** The directory's state and each tenant's members other than this host; null without a directory. */
  directoryStatus() {
    if (!this.directory || !this.membership) return null;
    const members = this.membership.status();
    return {
      ...this.directory.status(),
      floodUpdates: this.membership.updates,
      applyErrors: this.membership.applyErrors,
      macs: this.directory.macStats(),
      forwarding: this.forwarding ? { ...this.forwarding.counters } : null,
      tenants: Object.fromEntries(Object.entries(members).map(([t, ms]) => [t, ms.map((m) => m.address)])),
    };
  }

  /** The directory's MAC records of a tenant's VNI (owner, IPs, seq), sorted by MAC; frozen ones marked. */
  directoryMacs(tenant: string): (MacRecord & { frozen: boolean })[] {
    const b = this.sw.tenant(tenant);
    if (!b) throw this.sw.noTenant(tenant);
    if (!this.directory) throw new ApiError('this daemon has no directory (directory: in its config)', 'ENODIRECTORY');
    return this.directory
      .macs(b.vni)
      .map((r) => ({ ...r, frozen: this.directory!.isFrozen(b.vni, r.mac) }))
      .sort((x, y) => (x.mac < y.mac ? -1 : x.mac > y.mac ? 1 : 0));
  }

  /** The FDB rows that match `f` (a tenant that does not exist is an error, not an empty list). */
  fdb(f: FdbFilter = {}): FdbRow[] {
    if (f.tenant !== undefined && !this.sw.tenant(f.tenant)) throw this.sw.noTenant(f.tenant);
    return filterFdb(fdbRows(this.sw, f.tenant), f);
  }

  /** Add a static entry; the entry it replaced (static or learned), if there was one. */
  fdbAdd(tenant: string, mac: string, where: Where): FdbRow | null {
    const b = this.sw.tenant(tenant);
    const old = b?.table.get(mac);
    const was = b && old ? fdbRow(this.sw, b, old, undefined) : null;
    this.sw.setStatic(tenant, mac, where);
    return was;
  }

  fdbDel(tenant: string, mac: string): void {
    if (!this.sw.removeEntry(tenant, mac)) throw new Error(`tenant "${tenant}" has no entry for ${mac}`);
  }

  fdbFlush(tenant?: string): number {
    if (tenant !== undefined && !this.sw.tenant(tenant)) throw this.sw.noTenant(tenant);
    return this.sw.flush(tenant);
  }

  trace(tenant: string, ingress: Where, src: string, dst: string): TraceResult {
    return traceFrame(this.sw, tenant, ingress, src, dst);
  }

  /**
   * Once a second: the data path's process (if it has one) still running, peer liveness and
   * fault counters (logged), lost TAPs and attached interfaces (brought back).
   */
  private tick(): void {
    if (this.dataPathGone()) return;
    this.telemetry.tick();
    this.trunks.check();
    if (this.backend instanceof PortsByKind) this.lost.check().catch((e: Error) => log.warn({ err: e.message }, 'checking ports failed'));
  }

  /**
   * The data path's process died: logged (naming it and how it ended), the periodic check
   * stopped, the hook told (the runtime exits non-zero; the service manager starts vtepd
   * again). Step 1: nothing is respawned here yet.
   */
  private dataPathGone(): boolean {
    const p = this.dp.process();
    if (!p || p.alive) return false;
    if (this.peerTimer) clearInterval(this.peerTimer);
    const exit = p.exit ?? 'ended';
    log.error({ pid: p.pid, exit }, `data path process ${p.pid} ${exit}`);
    this.hooks.dataPathLost?.(p);
    return true;
  }

  /** Everything counted, from one dpStats() call. */
  stats(): StatsSnapshot {
    const kindOf = (name: string) => portKind(this.ports.find((p) => p.tap === name)?.config ?? {});
    const { recreated, portsDetached, portsAttached } = this.lost;
    const counts = { eventBatches: this.eventBatches, portsRecreated: recreated, portsDetached, portsAttached, kindOf };
    return { ...this.telemetry.snapshot(counts), directory: this.directoryStatus() };
  }

  // ---- takeover ---------------------------------------------------------------------------

  /**
   * What a handover sends: the TAP fds (they stay open here until the new daemon has
   * them), the ports they belong to, and a snapshot of the FDB. With `stop` (default) the
   * data path stops first: its threads no longer read any TAP and its underlay sockets
   * close, so the successor can bind them. Without, the caller stops it with `stop()`.
   */
  freeze(stop = true): {
    fds: number[];
    ports: (Omit<RunningPort, 'fd' | 'queueFds' | 'config'> & { config: PortConfig; fdIndex: number; queueFdIndex: number[] })[];
    fdb: SnapshotEntry[];
    trunks: (Omit<AdoptedTrunk, 'fd'> & { attach: string; fdIndex: number })[];
  } {
    const fdb = snapshotFdb(this.sw);
    if (stop) this.stopForwarding();
    const fds: number[] = [];
    const ports = this.ports.map((p) => {
      const { fd, queueFds, ...rest } = p;
      const fdIndex = fds.push(fd) - 1;
      const queueFdIndex = queueFds.map((q) => fds.push(q) - 1);
      return { ...rest, fdIndex, queueFdIndex };
    });
    // A trunk whose interface is gone has no socket to hand over: the successor attaches it when it is back.
    const trunks = this.trunks
      .list()
      .filter((t) => t.fd >= 0)
      .map((t) => ({ attach: t.config.attach, ifindex: t.ifindex, mac: t.mac, mtu: t.mtu, fdIndex: fds.push(t.fd) - 1 }));
    return { fds, ports, fdb, trunks };
  }

  /**
   * The underlay sockets a successor can adopt (still this data path's); null when there
   * are none to hand over (several queues: the successor binds its own reuseport group).
   */
  underlayFds(): number[] | null {
    const fds = this.dp.underlayFds();
    return fds.length ? fds : null;
  }

  /** The gobgpd this daemon supervises (EVPN without gobgp.api): a successor adopts it. */
  gobgpd(): Gobgpd | null {
    return this.directory instanceof EvpnDirectory ? this.directory.supervisor : null;
  }

  /** Stop the data path (and timers) but keep every TAP fd open: a handover in progress. */
  stopForwarding(): void {
    this.roles.stop();
    this.sw.stop();
    if (this.peerTimer) clearInterval(this.peerTimer);
  }

  /** After a successful handover: close our copies of the TAP fds (the new daemon holds them: the TAPs stay). */
  release(): void {
    this.closed = true;
    this.leaveDirectory(false);
    this.trunks.close(); // our copies: the successor holds the trunks' sockets
    for (const p of this.ports.splice(0)) {
      try {
        closePortFds(p.fd, p.queueFds);
      } catch {
        /* gone */
      }
    }
  }

  /** Give up this daemon object without touching its fds (a new Daemon adopted them). */
  detach(): void {
    this.closed = true;
    this.leaveDirectory(false);
    this.ports.splice(0);
  }

  /** Stop the directory; `withdraw`: take this host's records back now (not on a handover: the successor publishes them). */
  private leaveDirectory(withdraw: boolean): void {
    this.membership?.stop();
    this.forwarding?.stop();
    if (this.directory) this.closing = this.directory.stop(withdraw).catch((e: Error) => log.warn({ err: e.message }, 'leaving the directory failed'));
  }

  /** Stop the data path and delete the TAPs (closing a TAP's fd removes it). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.leaveDirectory(true);
    if (this.peerTimer) clearInterval(this.peerTimer);
    this.roles.stop();
    this.sw.stop();
    this.trunks.close();
    for (const p of this.ports.splice(0)) {
      try {
        this.backend.close(p);
      } catch (e) {
        log.warn({ tap: p.tap, err: (e as Error).message }, 'closing TAP failed');
      }
    }
  }
}

/** The directory the config names: etcd, or BGP EVPN through gobgpd (its state beside the control socket). */
function makeDirectory(config: Config, dc: NonNullable<Config['directory']>, gobgpd?: GobgpdHandover | Gobgpd): Directory {
  if (dc.evpn) {
    const e = dc.evpn;
    return new EvpnDirectory({
      asn: e.asn,
      routerId: e.routerId,
      neighbors: e.neighbors,
      vtep: config.underlay.locals.find((l) => l.family === 4)!.address,
      port: config.underlay.port,
      api: e.gobgp.api,
      stateDir: gobgpdDirOf(config.control.socket),
      gracefulRestartMs: e.gracefulRestart * 1000,
      ...(gobgpd ? { adopt: gobgpd } : {}),
      freeze: { moves: dc.freeze.moves, windowMs: dc.freeze.window * 1000, holdMs: dc.freeze.hold * 1000 },
    });
  }
  const etcd = dc.etcd!;
  return new EtcdDirectory({
    endpoints: etcd.endpoints,
    prefix: etcd.prefix,
    leaseTtl: etcd.leaseTtl,
    freeze: { moves: dc.freeze.moves, windowMs: dc.freeze.window * 1000, holdMs: dc.freeze.hold * 1000 },
  });
}

/**
 * Where vtepd's own gobgpd keeps its config and API socket: `<socket>.gobgpd/` beside the
 * control socket, or a directory in the temp dir named after it when that socket path
 * would be too long for a unix socket.
 */
export function gobgpdDirOf(controlSocket: string): string {
  const dir = `${controlSocket}.gobgpd`;
  if (Buffer.byteLength(join(dir, 'gobgpd.sock')) <= 107) return dir;
  return join(tmpdir(), `vtepd-gobgpd-${createHash('sha256').update(controlSocket).digest('hex').slice(0, 12)}`);
}
