/**
 * What the daemon counts and watches, from the data path's counters: the `stats` and
 * `peers` answers of the API (and the metrics built from them), and once a second, peers
 * going quiet or coming back and fast-path I/O faults, logged.
 */
import type { DirectoryStatus, MacDirectoryStats } from '../directory/directory.js';
import type { DirectoryForwardingCounters } from '../directory/forwarding.js';
import type { BridgeCounters } from '../core/bridge.js';
import type { Encap } from '../core/encap.js';
import type { Switch, SwitchCounters } from '../core/switch.js';
import type { Vtep } from '../core/vteps.js';
import type { Datapath } from '../native/datapath.js';
import type { DpStats } from '../native/addon.js';
import { counterInfo } from '../native/counters.js';
import type { RoleAgent, RoleStatus } from '../overlay/roles.js';
import { logger, type Logger } from '../util/log.js';

const log = logger('daemon');

export interface PeerInfo {
  /** Its registry key: the address, "gre:ADDR" / "nvgre:ADDR", or "address:port" (known by address and port). */
  vtep: string;
  address: string;
  encap: Encap;
  /** The UDP port it sends from, for a VTEP known by address and port (a spoke behind NAT or admitted by its key); else null. */
  udpPort: number | null;
  id: number;
  /** Learned from traffic rather than configured. */
  dynamic: boolean;
  /** Tenants whose flood list holds it. */
  floodOf: string[];
  /** FDB entries pointing at it. */
  macs: number;
  /** active: received within the last 10 s; idle: received before; silent: never. */
  state: 'active' | 'idle' | 'silent';
  /** Seconds since its rx counter last moved (sampled once a second); null: never. */
  lastSeenSeconds: number | null;
  /** When its rx counter last moved (ISO 8601, as stats.at; sampled once a second); null: never. */
  lastSeenAt: string | null;
  /** Path MTU toward it (largest outer IP packet; underlay.mtu unless configured or discovered). */
  pathMtu: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: number;
}

export interface PortStats {
  tenant: string;
  port: string;
  /** tap, attach (an attached interface), trunk (one carrying tenants by VLAN: tenant "-") or vlan (a tenant's VLAN on a trunk, port eth1.100 / eth1.native). */
  kind: string;
  /** A VLAN port: its trunk's interface and VLAN ID (0: untagged, the native tenant). */
  trunk?: string;
  vlan?: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: number;
}

/** A tenant's figures: its bridge's counters (learning, flooding, drops) and its table size. */
export interface TenantStats extends BridgeCounters {
  tenant: string;
  vni: number;
  encap: Encap;
  ports: number;
  /** Its MAC table limit (maxMacs). */
  maxMacs: number;
  fdbLearned: number;
  fdbStatic: number;
  /** Remote MACs put there by the directory. */
  fdbDirectory: number;
  /** Its tunnel traffic, all VTEPs together: inner frames and bytes (DpStats.tenants). */
  tunnel: { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number; drops: number };
}

/** Everything counted, from one dpStats() call. */
export interface StatsSnapshot {
  /** When it was taken, ISO 8601 UTC (as status.startedAt). */
  at: string;
  uptimeSeconds: number;
  /** The fast path's global counters, traffic (not drops). */
  datapath: Record<string, number>;
  /** The fast path's drops by named reason (native/counters.def). */
  drops: Record<string, number>;
  /** Per fast-path queue (underlay.queues): frames read from ports, packets taken from the underlay. */
  queues: { queue: number; encapFrames: number; decapPackets: number }[];
  tenants: TenantStats[];
  /** The switch-wide FDB limit over all tenants (limits.maxMacs). */
  maxMacsTotal: number;
  ports: PortStats[];
  peers: PeerInfo[];
  /** portsDetached / portsAttached: attached interfaces that vanished / were attached when they appeared (#16). */
  switch: SwitchCounters & { eventBatches: number; portsRecreated: number; portsDetached: number; portsAttached: number };
  /** The role: hubs (a spoke), learned spokes (a hub), failovers, path MTUs. */
  overlay: RoleStatus;
  /** With a directory: its state, its MAC layer and what this host did with it (absent: none). */
  directory?: DirectoryStats | null;
}

/** The directory's figures in a stats snapshot (metrics). */
export interface DirectoryStats {
  connected: boolean;
  errors: number;
  regrants?: number;
  resyncs?: number;
  macs?: MacDirectoryStats;
  forwarding?: DirectoryForwardingCounters | null;
  /** EVPN: sessions and route counts (metrics vtepd_bgp_*, vtepd_evpn_routes). */
  evpn?: DirectoryStatus['evpn'];
}

/** Fast-path counters of I/O faults (not hostile input): a rise is logged, once a second at most. */
const FAULT_COUNTERS = ['tap_rx_error', 'tap_tx_error', 'underlay_rx_error', 'underlay_tx_error', 'underlay_tx_too_big', 'event_queue_full'];

/**
 * How loud `peer quiet` is: warn for a VTEP that is expected to keep talking (a spoke's hub,
 * a hub's spoke: `roleRefs`, or a peer with a key, which keeps its session alive); info for
 * a plain mesh VTEP, which sends nothing when its VMs are quiet.
 */
export function quietLevel(v: Pick<Vtep, 'roleRefs'> | undefined, keyed: boolean): 'warn' | 'info' {
  return (v?.roleRefs ?? 0) > 0 || keyed ? 'warn' : 'info';
}

/** What the telemetry reads: the switch's tables, the data path's counters, the role's status. */
export interface TelemetrySource {
  sw: Switch;
  dp: Pick<Datapath, 'stats'>;
  roles: Pick<RoleAgent, 'status'>;
  startedAt: number;
  /** Where peer liveness is logged (default: the daemon's logger). */
  log?: Pick<Logger, 'warn' | 'info'>;
}

export class Telemetry {
  private readonly peerSeen = new Map<string, { rx: number; at: number | null; active?: boolean }>();
  /** Fault counters as last logged. */
  private readonly faultSeen = new Map<string, number>();

  constructor(private readonly src: TelemetrySource) {}

  /** Note which VTEPs received something since the last sample (once a second). */
  private samplePeers(stats: DpStats): void {
    const now = Date.now();
    for (const v of this.src.sw.vteps.all()) {
      const rx = stats.vteps[v.id]?.rxPackets ?? 0;
      const seen = this.peerSeen.get(v.key);
      if (!seen) this.peerSeen.set(v.key, { rx, at: rx > 0 ? now : null });
      else if (rx !== seen.rx) {
        seen.rx = rx;
        seen.at = now;
      }
    }
    for (const a of [...this.peerSeen.keys()]) if (!this.src.sw.vteps.find(a)) this.peerSeen.delete(a);
  }

  /** The VTEP `key` is an authenticated peer's (with an identity). */
  private keyed(key: string): boolean {
    return this.src.roles.status().secure?.peers.some((p) => p.vtep === key) ?? false;
  }

  /** Once a second: peer liveness (logged when a peer goes quiet or comes back) and fault counters. */
  tick(): void {
    const s = this.src.dp.stats();
    this.samplePeers(s);
    const now = Date.now();
    for (const [vtep, seen] of this.peerSeen) {
      if (seen.at === null) continue;
      const active = now - seen.at <= 10_000;
      if (seen.active === true && !active)
        (this.src.log ?? log)[quietLevel(this.src.sw.vteps.find(vtep), this.keyed(vtep))](
          { vtep, lastSeenSeconds: Math.floor((now - seen.at) / 1000) },
          'peer quiet: nothing received from it for 10 s',
        );
      else if (seen.active === false && active) (this.src.log ?? log).info({ vtep }, 'peer receiving again');
      seen.active = active;
    }
    for (const name of FAULT_COUNTERS) {
      const v = s.counters[name] ?? 0;
      const last = this.faultSeen.get(name) ?? 0;
      if (v > last) log.warn({ counter: name, delta: v - last, total: v }, 'fast-path faults counted');
      this.faultSeen.set(name, v);
    }
  }

  /** Everything counted, from one dpStats() call. */
  snapshot(daemon: {
    eventBatches: number;
    portsRecreated: number;
    portsDetached: number;
    portsAttached: number;
    kindOf?: (port: string) => string;
  }): StatsSnapshot {
    const { sw, roles, startedAt } = this.src;
    const s = this.src.dp.stats();
    this.samplePeers(s);
    const now = Date.now();
    const datapath: Record<string, number> = {};
    const drops: Record<string, number> = {};
    for (const c of counterInfo()) (c.drop ? drops : datapath)[c.name] = s.counters[c.name] ?? 0;
    for (const [k, v] of Object.entries(s.counters)) if (!(k in datapath) && !(k in drops)) datapath[k] = v;
    const queues = (s.queues ?? []).map((q, queue) => ({ queue, ...q }));
    const zero = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, drops: 0 };
    const kindOf = daemon.kindOf ?? (() => 'tap');
    const ports: PortStats[] = [
      ...sw.portList().map((p) => ({
        tenant: p.tenant,
        port: p.name,
        kind: p.trunk !== undefined ? 'vlan' : kindOf(p.name),
        ...(p.trunk !== undefined ? { trunk: p.trunk, vlan: p.vlan ?? 0 } : {}),
        ...zero,
        ...s.ports[p.id],
      })),
      // A trunk's own row: every frame read on the interface (its drops: untagged_no_native, vlan_unmapped, vlan_double).
      ...sw.trunkList().map((t) => ({ tenant: '-', port: t.name, kind: 'trunk', ...zero, ...s.ports[t.id] })),
    ];
    const floodOf = new Map<number, string[]>();
    const macsAt = new Map<number, number>();
    const tenants: TenantStats[] = sw.tenants().map((b) => {
      for (const id of b.flood) floodOf.set(id, [...(floodOf.get(id) ?? []), b.name]);
      let fdbStatic = 0;
      let fdbDirectory = 0;
      for (const e of b.table.values()) {
        if (e.static) fdbStatic++;
        else if (e.directory) fdbDirectory++;
        if (e.place.kind === 'vtep') macsAt.set(e.place.vtepId, (macsAt.get(e.place.vtepId) ?? 0) + 1);
      }
      return {
        tenant: b.name,
        vni: b.vni,
        encap: sw.tenantEncap(b.name),
        maxMacs: b.maxMacs,
        ports: b.ports.size,
        fdbLearned: b.table.size - fdbStatic - fdbDirectory,
        fdbStatic,
        fdbDirectory,
        ...b.counters,
        tunnel: { ...zero, ...s.tenants?.[b.tenantId] },
      };
    });
    const peers: PeerInfo[] = sw.vteps.all().map((v) => {
      const seen = this.peerSeen.get(v.key);
      const at = seen?.at ?? null;
      const lastSeenSeconds = at === null ? null : Math.floor((now - at) / 1000);
      return {
        vtep: v.key,
        address: v.address,
        encap: v.encap,
        udpPort: v.matchPort ? v.port : null,
        id: v.id,
        dynamic: v.dynamic,
        floodOf: floodOf.get(v.id) ?? [],
        macs: macsAt.get(v.id) ?? 0,
        state: lastSeenSeconds === null ? 'silent' : lastSeenSeconds <= 10 ? 'active' : 'idle',
        lastSeenSeconds,
        lastSeenAt: at === null ? null : new Date(at).toISOString(),
        pathMtu: v.mtu,
        ...zero,
        ...s.vteps[v.id],
      };
    });
    return {
      at: new Date(now).toISOString(),
      uptimeSeconds: (now - startedAt) / 1000,
      datapath,
      drops,
      queues,
      tenants,
      maxMacsTotal: sw.maxMacsTotal,
      ports,
      peers,
      overlay: roles.status(),
      switch: { ...sw.counters, ...daemon },
    };
  }
}
