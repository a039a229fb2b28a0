/**
 * The Switch: one Bridge per tenant (VNI), the VTEP registry shared by all tenants, the
 * local ports, and the loop that takes exception events from the data path and hands
 * them to the right bridge. A frame never crosses tenants: every event carries the
 * tenant the data path classified it into, and each bridge sees only its own.
 */
import { Bridge, decide, type BridgeHost, type BridgeSpec, type FdbEntry, type LearnResult } from './bridge.js';
import type { Datapath, DpEvent, Place } from '../native/datapath.js';
import { logger, type Logger } from '../util/log.js';
import { isLearnableMac } from '../util/mac.js';
import type { PortSetOptions, VtepOptions } from '../native/addon.js';
import { encapOverhead, type Encap } from './encap.js';
import { tooBigReply } from '../overlay/pmtu.js';
import { TokenBucket } from './policy.js';

export interface TenantSpec extends BridgeSpec {
  /** VTEP addresses that get broadcast and unknown unicast (head-end replication). */
  flood: string[];
  /** Static FDB entries. */
  fdb: { mac: string; vtep: string }[];
  /** How the tenant reaches its VTEPs (default vxlan), and per VTEP address where it differs. */
  encap?: Encap;
  vtepEncap?: Record<string, Encap>;
}

export interface SwitchOptions {
  /** UDP destination port toward VTEPs (the underlay's VXLAN port). */
  vxlanPort: number;
  /** Switch-wide limit on FDB entries over all tenants. */
  maxMacsTotal: number;
  log?: Logger;
  /** The clock storm control and move dampening run on (ms); Date.now by default. */
  clock?: () => number;
}

export interface Vtep {
  id: number;
  /** The registry key: the address, or "address:port" ("[v6]:port") for a VTEP matched by address and port. */
  key: string;
  address: string;
  port: number;
  /** Configured (flood list or static entry) references. */
  configRefs: number;
  /** FDB entries (learned or static) pointing at it. */
  entryRefs: number;
  /** References from the node's role (a spoke's hubs, a hub's learned spokes: src/overlay/roles.ts). */
  roleRefs: number;
  /** Learned from traffic rather than configured. */
  dynamic: boolean;
  /** Path MTU toward it (largest outer IP packet); 0: not checked. */
  mtu: number;
  /** Sent to from the underlay port (NAT). */
  fixedSourcePort: boolean;
  /** Identified by address and port (a spoke behind NAT). */
  matchPort: boolean;
  /** How frames travel to it. A VTEP is (address, encap): its key is "gre:ADDR" / "nvgre:ADDR" for GRE-TAP / NVGRE. */
  encap: Encap;
}

/** The registry key of a VTEP identified by address and port. */
export function vtepKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The registry key of a VTEP by encapsulation: the address for VXLAN, "gre:ADDR" / "nvgre:ADDR" else. */
export function encapKey(address: string, encap: Encap): string {
  return encap === 'vxlan' ? address : `${encap}:${address}`;
}

/** A key written "gre:ADDR" / "nvgre:ADDR" (a snapshot, the CLI): its parts; null for other keys. */
export function parseEncapKey(key: string): { encap: Encap; address: string } | null {
  const m = /^(gre|nvgre):(.+)$/.exec(key);
  return m ? { encap: m[1] as Encap, address: m[2]! } : null;
}

/** Bytes the outer headers add in front of an Ethernet frame toward a VTEP (its encapsulation over IPv4/IPv6). */
export function outerBytes(v: Pick<Vtep, 'address'> & { encap?: Encap }): number {
  return encapOverhead(v.address.includes(':') ? 6 : 4, v.encap ?? 'vxlan') - 14;
}

export interface SwitchCounters {
  events: number;
  eventsUnknownTenant: number;
  /** Events from a VTEP the tenant does not accept (the data path drops their frames). */
  eventsNotAccepted: number;
  dynamicVteps: number;
  /** Frames too big for their tunnel (fast path and flooding). */
  tooBigFrames: number;
  /** ICMP too-big replies written back (fragmentation needed / packet too big). */
  icmpTooBigSent: number;
  /** Liveness messages from the underlay. */
  controlMessages: number;
}

export interface FdbRow {
  tenant: string;
  vni: number;
  mac: string;
  /** "port blue0" or "vtep 10.0.0.2". */
  where: string;
  type: 'static' | 'learned';
  ageSeconds: number | null;
}

/** Where an FDB entry points, by name: what the API, the snapshot and the CLI speak. */
export type Where = { port: string } | { vtep: string };

/** One FDB entry in a takeover snapshot. */
export interface SnapshotEntry {
  tenant: string;
  mac: string;
  where: Where;
  static: boolean;
  since: number;
  moves: number;
}

/** What `Switch.trace` says about one frame. */
export interface TraceResult {
  tenant: string;
  vni: number;
  ingress: string;
  src: string;
  dst: string;
  /** What learning does with the source MAC at the ingress. */
  learn: LearnResult | 'dropped';
  /** Who handles the frame: the C fast path alone, the bridge (punted), or a drop in C before either. */
  handledBy: 'fast-path' | 'bridge' | 'none';
  action: 'forward' | 'flood' | 'drop';
  reason: string;
  /** The FDB entry the destination matched, if any. */
  entry: FdbRow | null;
  /** Where copies go. */
  outputs: { ports: string[]; vteps: string[] };
  /** Human-readable steps. */
  steps: string[];
}

class IdAllocator {
  private next = 1;
  private readonly free: number[] = [];
  constructor(private readonly max: number, private readonly what: string) {}
  take(): number {
    const id = this.free.pop() ?? this.next++;
    if (id >= this.max) throw new Error(`too many ${this.what}s (limit ${this.max - 1})`);
    return id;
  }
  give(id: number): void { this.free.push(id); }
}

export class Switch {
  private readonly bridges = new Map<string, Bridge>();
  private readonly bridgesById = new Map<number, Bridge>();
  private readonly ports = new Map<string, { id: number; tenant: string }>();
  private readonly portNames = new Map<number, string>();
  private readonly vtepsByAddr = new Map<string, Vtep>();
  private readonly vtepsById = new Map<number, Vtep>();
  private readonly tenantIds = new IdAllocator(4096, 'tenant');
  private readonly portIds = new IdAllocator(4096, 'port');
  private readonly vtepIds = new IdAllocator(16384, 'VTEP');
  private entries = 0;
  private ageTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  readonly counters: SwitchCounters = {
    events: 0, eventsUnknownTenant: 0, eventsNotAccepted: 0, dynamicVteps: 0, tooBigFrames: 0, icmpTooBigSent: 0, controlMessages: 0,
  };
  /** Liveness messages from the underlay go here (src/overlay/roles.ts). */
  onControl: ((payload: Buffer, from: { address: string; port: number }, vtep: Vtep | undefined) => void) | undefined;
  /** Called for every tenant added (the role applies its hubs or spokes to it). */
  onTenantAdded: ((b: Bridge) => void) | undefined;
  /** ICMP too-big replies: at most 100 a second, bursts of 50, over all tenants. */
  private readonly icmpBucket = new TokenBucket(100, 50, Date.now());

  constructor(readonly dp: Datapath, private readonly opts: SwitchOptions) {
    this.log = opts.log ?? logger('switch');
  }

  /** Start the data path; `onBatch` (metrics) hears the size of every batch of events. */
  start(onBatch?: (size: number) => void): void {
    this.dp.start((events) => {
      onBatch?.(events.length);
      this.handleEvents(events);
    });
  }

  /** Run ageing every `intervalMs` (default: 1 s). */
  startAgeing(intervalMs = 1000): void {
    this.ageTimer = setInterval(() => this.ageTick(), intervalMs);
  }

  stopAgeing(): void {
    if (this.ageTimer) clearInterval(this.ageTimer);
    this.ageTimer = undefined;
  }

  stop(): void {
    if (this.ageTimer) clearInterval(this.ageTimer);
    this.ageTimer = undefined;
    this.dp.stop();
  }

  tenant(name: string): Bridge | undefined { return this.bridges.get(name); }
  tenants(): Bridge[] { return [...this.bridges.values()]; }
  vteps(): Vtep[] { return [...this.vtepsById.values()]; }
  portName(portId: number): string | undefined { return this.portNames.get(portId); }
  portId(name: string): number | undefined { return this.ports.get(name)?.id; }
  vtep(id: number): Vtep | undefined { return this.vtepsById.get(id); }
  vtepByAddress(address: string): Vtep | undefined { return this.vtepsByAddr.get(address); }

  addTenant(spec: TenantSpec): Bridge {
    if (this.bridges.has(spec.name)) throw new Error(`tenant "${spec.name}" exists`);
    for (const b of this.bridges.values()) if (b.vni === spec.vni) throw new Error(`VNI ${spec.vni} is used by tenant "${b.name}"`);
    const tenantId = this.tenantIds.take();
    const bridge = new Bridge(tenantId, spec, this.dp, this.hostFor());
    this.dp.tenantSet(tenantId, spec.vni);
    const encap = { encap: spec.encap ?? 'vxlan', vtepEncap: { ...(spec.vtepEncap ?? {}) } };
    try {
      this.dp.tenantEncaps(tenantId, [...new Set<Encap>([encap.encap, ...Object.values(encap.vtepEncap)])]);
    } catch (e) {
      this.dp.tenantDel(tenantId);
      this.tenantIds.give(tenantId);
      throw e;
    }
    this.encapOf.set(spec.name, encap);
    this.dp.tenantAcceptAny(tenantId, bridge.acceptAny);
    this.bridges.set(spec.name, bridge);
    this.bridgesById.set(tenantId, bridge);
    for (const addr of spec.flood) {
      const v = this.peerVtep(spec.name, addr);
      v.configRefs++;
      bridge.flood.add(v.id);
    }
    for (const s of spec.fdb) this.setStatic(spec.name, s.mac, { vtep: s.vtep });
    this.syncAccept(bridge);
    this.onTenantAdded?.(bridge);
    this.log.info({ tenant: spec.name, vni: spec.vni, tenantId }, 'tenant added');
    return bridge;
  }

  removeTenant(name: string): void {
    const b = this.bridges.get(name);
    if (!b) throw new Error(`no tenant "${name}"`);
    for (const [portName, p] of [...this.ports]) if (p.tenant === name) this.removePort(portName);
    for (const mac of [...b.table.keys()]) b.remove(mac);
    for (const id of b.flood) this.vtepConfigRelease(id);
    this.dp.tenantDel(b.tenantId);
    this.encapOf.delete(name);
    this.bridges.delete(name);
    this.bridgesById.delete(b.tenantId);
    this.tenantIds.give(b.tenantId);
    this.log.info({ tenant: name }, 'tenant removed');
  }

  /** The switch-wide FDB limit (reload). Lowering it refuses new MACs; it removes none. */
  setMaxMacsTotal(n: number): void {
    this.opts.maxMacsTotal = n;
  }

  /** Change a tenant's learning policy in place; its table stays (a smaller maxMacs only refuses new MACs). */
  setPolicy(name: string, p: { learning: boolean; ageing: number; maxMacs: number; acceptFrom?: 'known' | 'any'; stormControl?: BridgeSpec['stormControl']; moveDampening?: BridgeSpec['moveDampening'] }): void {
    const b = this.bridge(name);
    if (p.stormControl !== undefined || p.moveDampening !== undefined) b.setProtection(p.stormControl ?? null, p.moveDampening ?? null);
    b.learning = p.learning;
    b.ageingMs = p.ageing * 1000;
    b.maxMacs = p.maxMacs;
    const any = p.acceptFrom === 'any';
    if (any !== b.acceptAny) {
      b.acceptAny = any;
      this.dp.tenantAcceptAny(b.tenantId, any);
      // Entries learned from VTEPs the tenant no longer accepts go.
      if (!any) for (const e of [...b.table.values()]) if (!e.static && e.place.kind === 'vtep' && !b.accepts(e.place.vtepId)) b.remove(e.mac);
    }
  }

  /**
   * Keep the data path's accept set of a tenant equal to its flood list, the VTEPs of its
   * static entries and its trusted VTEPs (hubs, spokes).
   */
  syncAccept(b: Bridge): void {
    const want = new Set<number>([...b.flood, ...b.trusted]);
    for (const e of b.table.values()) if (e.static && e.place.kind === 'vtep') want.add(e.place.vtepId);
    for (const id of [...b.accepted]) {
      if (want.has(id)) continue;
      b.accepted.delete(id);
      if (this.vtepsById.has(id)) this.dp.tenantAccept(b.tenantId, id, false);
    }
    for (const id of want) {
      if (b.accepted.has(id) || !this.vtepsById.has(id)) continue;
      b.accepted.add(id);
      this.dp.tenantAccept(b.tenantId, id, true);
    }
  }

  /** Replace a tenant's flood list; VTEPs no longer referenced by anything are removed. */
  setFlood(name: string, flood: string[]): void {
    const b = this.bridge(name);
    const want = new Set(flood.map((a) => encapKey(a, this.encapTo(name, a))));
    for (const id of [...b.flood]) {
      const v = this.vtepsById.get(id);
      if (v && want.has(v.key)) continue;
      b.flood.delete(id);
      this.vtepConfigRelease(id);
    }
    for (const addr of flood) {
      const v = this.peerVtep(name, addr);
      if (b.flood.has(v.id)) continue;
      v.configRefs++;
      b.flood.add(v.id);
    }
    this.syncAccept(b);
  }

  /** Add or replace a static FDB entry (at a VTEP, or at a local port by name). */
  setStatic(tenant: string, mac: string, where: Where): void {
    const b = this.bridge(tenant);
    if (!isLearnableMac(mac)) throw new Error(`${mac}: not a unicast MAC`);
    if ('port' in where) {
      const p = this.ports.get(where.port);
      if (!p || p.tenant !== tenant) throw new Error(`no port "${where.port}" in tenant "${tenant}"`);
      b.setStatic(mac, { kind: 'port', portId: p.id });
      return;
    }
    // The entry itself holds the VTEP (entryRefs); no config reference needed.
    const v = this.peerVtep(tenant, where.vtep);
    b.setStatic(mac, { kind: 'vtep', vtepId: v.id });
    this.vtepGc(v);
    this.syncAccept(b);
  }

  /** Remove one entry (static or learned). False if the tenant has no such MAC. */
  removeEntry(tenant: string, mac: string): boolean {
    const b = this.bridge(tenant);
    const wasStatic = b.table.get(mac)?.static;
    const removed = b.remove(mac);
    if (wasStatic) this.syncAccept(b);
    return removed;
  }

  /** Remove learned entries of one tenant or of all; static ones stay. Returns how many. */
  flush(tenant?: string): number {
    let n = 0;
    for (const b of this.bridges.values()) if (!tenant || b.name === tenant) n += b.flush();
    return n;
  }

  /** Every FDB entry, places by name, for a takeover snapshot. */
  snapshot(): SnapshotEntry[] {
    const out: SnapshotEntry[] = [];
    for (const b of this.bridges.values()) {
      for (const e of b.table.values()) {
        const where = this.whereOf(e.place);
        if (where) out.push({ tenant: b.name, mac: e.mac, where, static: e.static, since: e.since, moves: e.moves });
      }
    }
    return out;
  }

  /** Put back an entry from a snapshot. False if its tenant, port or MAC no longer fits. */
  restore(e: SnapshotEntry): boolean {
    const b = this.bridges.get(e.tenant);
    if (!b || !isLearnableMac(e.mac)) return false;
    if (e.static) {
      try { this.setStatic(e.tenant, e.mac, e.where); } catch { return false; }
      return true;
    }
    let place: Place;
    let created: Vtep | undefined;
    if ('port' in e.where) {
      const p = this.ports.get(e.where.port);
      if (!p || p.tenant !== e.tenant) return false;
      place = { kind: 'port', portId: p.id };
    } else {
      const known = this.vtepsByAddr.get(e.where.vtep);
      if (!known) {
        // A spoke learned behind NAT ("address:port") comes back with its next probe, not from here.
        try { created = this.vtepAcquire(e.where.vtep, true); } catch { return false; }
      }
      place = { kind: 'vtep', vtepId: (known ?? created)!.id };
    }
    const r = b.learn(e.mac, place);
    const cur = b.table.get(e.mac);
    if (cur && !cur.static && (r === 'new' || r === 'move' || r === 'refresh')) {
      cur.since = e.since;
      cur.moves = e.moves;
    }
    if (created) this.vtepGc(created);
    return r === 'new' || r === 'move' || r === 'refresh';
  }

  /** Ports by name, with their tenant and id. */
  portList(): { name: string; id: number; tenant: string }[] {
    return [...this.ports].map(([name, p]) => ({ name, id: p.id, tenant: p.tenant }));
  }

  /**
   * Which path a frame would take, using the bridge's own decision (`decide`), without
   * sending anything. `ingress`: a port name of the tenant, or a VTEP address.
   */
  trace(tenant: string, ingress: Where, src: string, dst: string): TraceResult {
    const b = this.bridge(tenant);
    let place: Place | undefined;
    let inName: string;
    if ('port' in ingress) {
      const p = this.ports.get(ingress.port);
      if (!p || p.tenant !== tenant) throw new Error(`no port "${ingress.port}" in tenant "${tenant}"`);
      place = { kind: 'port', portId: p.id };
      inName = `port ${ingress.port}`;
    } else {
      const v = this.vtepsByAddr.get(ingress.vtep);
      // An unknown VTEP would be learned as a dynamic one on its first packet (acceptFrom: any).
      place = v ? { kind: 'vtep', vtepId: v.id } : { kind: 'vtep', vtepId: 0 };
      inName = `vtep ${ingress.vtep}${v ? '' : b.acceptAny ? ' (not known yet: learned as a dynamic VTEP on its first packet)' : ' (not known)'}`;
    }
    const steps: string[] = [];
    const base = { tenant, vni: b.vni, ingress: inName, src, dst };
    if (place.kind === 'vtep' && !(b.acceptAny || (place.vtepId !== 0 && b.accepts(place.vtepId)))) {
      steps.push(`fast path: tenant ${tenant} does not accept frames from ${inName} (acceptFrom: known; not in its flood list, static entries, hubs or spokes): dropped (counter vtep_not_accepted)`);
      return { ...base, learn: 'dropped', handledBy: 'none', action: 'drop', reason: 'vtep_not_accepted', entry: null, outputs: { ports: [], vteps: [] }, steps };
    }
    if (!isLearnableMac(src)) {
      steps.push(`fast path: source ${src} is multicast, broadcast or all-zero: dropped (counter bad_src_mac)`);
      return { ...base, learn: 'dropped', handledBy: 'none', action: 'drop', reason: 'bad_src_mac', entry: null, outputs: { ports: [], vteps: [] }, steps };
    }
    const learn = b.learnDecision(src, place);
    const learnText: Record<LearnResult, string> = {
      new: `not in the table: learned at ${inName}`,
      refresh: `already at ${inName}: its idle time is reset`,
      move: `known elsewhere (${this.whereText(b.table.get(src)?.place)}): moves to ${inName}`,
      disabled: 'learning is off in this tenant',
      'not-learnable': 'not a learnable MAC',
      'static-conflict': `static entry at ${this.whereText(b.table.get(src)?.place)}: not moved (counted as a static conflict)`,
      limit: `table full (maxMacs ${b.maxMacs} or the switch-wide limit): not learned (counted)`,
      dampened: `flapping: pinned at ${this.whereText(b.table.get(src)?.place)} by move dampening, not moved (counted)`,
    };
    steps.push(`source ${src}: ${learnText[learn]}`);
    let d = decide(b, place, dst);
    if (d.action === 'flood' && src === dst && (learn === 'new' || learn === 'move')) {
      // Punted: the bridge learns the source before it decides, so the frame finds itself.
      const table = new Map(b.table);
      table.set(src, { mac: src, place, static: false, since: Date.now(), moves: 0 });
      d = decide({ table, ports: b.ports, flood: b.flood, dynFlood: b.dynFlood, relay: b.relay }, place, dst);
    }
    const idle = new Map<string, number>();
    if (d.action !== 'flood') for (const r of this.dp.fdbIdle()) if (r.tenantId === b.tenantId && r.mac === dst) idle.set(r.mac, r.idleMs);
    const entry = d.action === 'flood' ? null : this.fdbRow(b, d.entry, idle.get(dst));
    const names = (ports: number[], vteps: number[]) => ({
      ports: ports.map((id) => this.portNames.get(id) ?? String(id)),
      vteps: vteps.map((id) => this.vtepsById.get(id)?.key ?? String(id)),
    });
    if (d.action === 'forward') {
      const out = d.to.kind === 'port' ? names([d.to.portId], []) : names([], [d.to.vtepId]);
      steps.push(`destination ${dst}: ${entry!.type} entry at ${entry!.where}${entry!.ageSeconds !== null ? ` (idle ${entry!.ageSeconds} s)` : ''}`);
      steps.push(`fast path: cache hit, forwarded in C without the bridge${d.to.kind === 'vtep' ? ` (VXLAN, VNI ${b.vni})` : ''}`);
      return { ...base, learn, handledBy: 'fast-path', action: 'forward', reason: d.reason, entry, outputs: out, steps };
    }
    if (d.action === 'drop') {
      steps.push(`destination ${dst}: ${entry!.type} entry at ${entry!.where}`);
      steps.push(d.reason === 'hairpin'
        ? `fast path: the destination is the ${place.kind === 'vtep' ? 'VTEP' : 'port'} the frame came in: dropped (counter hairpin)`
        : 'fast path: from a VTEP to a MAC behind a VTEP: dropped (split horizon, counter split_horizon)');
      return { ...base, learn, handledBy: 'fast-path', action: 'drop', reason: d.reason, entry, outputs: { ports: [], vteps: [] }, steps };
    }
    const out = names(d.ports, d.vteps);
    steps.push(`destination ${dst}: ${d.reason === 'unknown-unicast' ? 'not in the table (unknown unicast)' : d.reason}`);
    steps.push(`fast path: punted to the bridge, which floods by head-end replication to ${out.ports.length} port(s)` +
      ` and ${out.vteps.length} VTEP(s)${place.kind !== 'vtep' ? '' : b.relay ? ' (hub relay: every flood VTEP but the one it came from)' : ' (none back to VTEPs: split horizon)'}`);
    if (out.ports.length === 0 && out.vteps.length === 0) steps.push('nowhere to flood: the frame goes nowhere');
    return { ...base, learn, handledBy: 'bridge', action: 'flood', reason: d.reason, entry: null, outputs: out, steps };
  }

  private bridge(name: string): Bridge {
    const b = this.bridges.get(name);
    if (!b) throw new Error(`no tenant "${name}"`);
    return b;
  }

  private whereOf(place: Place): Where | undefined {
    if (place.kind === 'port') {
      const name = this.portNames.get(place.portId);
      return name === undefined ? undefined : { port: name };
    }
    const v = this.vtepsById.get(place.vtepId);
    return v ? { vtep: v.key } : undefined;
  }

  private whereText(place: Place | undefined): string {
    const w = place && this.whereOf(place);
    return !w ? '?' : 'port' in w ? `port ${w.port}` : `vtep ${w.vtep}`;
  }

  /** Attach a local port (a TAP fd) to a tenant. Returns its portId. */
  addPort(tenant: string, name: string, fd: number, opts?: PortSetOptions): number {
    const b = this.bridges.get(tenant);
    if (!b) throw new Error(`no tenant "${tenant}"`);
    if (this.ports.has(name)) throw new Error(`port "${name}" exists`);
    const id = this.portIds.take();
    this.dp.portSet(id, b.tenantId, fd, opts);
    b.ports.add(id);
    this.ports.set(name, { id, tenant });
    this.portNames.set(id, name);
    return id;
  }

  removePort(name: string): void {
    const p = this.ports.get(name);
    if (!p) throw new Error(`no port "${name}"`);
    const b = this.bridges.get(p.tenant)!;
    b.forget({ kind: 'port', portId: p.id });
    b.ports.delete(p.id);
    this.dp.portDel(p.id);
    this.ports.delete(name);
    this.portNames.delete(p.id);
    this.portIds.give(p.id);
  }

  /** Handle one batch of exception events from the data path. */
  handleEvents(events: DpEvent[]): void {
    // The learn event the data path sent just before a miss of the same frame.
    let lastLearn = '';
    for (const ev of events) {
      this.counters.events++;
      if (ev.type === 'control') {
        this.counters.controlMessages++;
        const from = ev.outer ?? (ev.ingress.kind === 'unknown-vtep' ? { address: ev.ingress.address, port: ev.ingress.port } : undefined);
        if (from && ev.frame) this.onControl?.(ev.frame, from, ev.ingress.kind === 'vtep' ? this.vtepsById.get(ev.ingress.vtepId) : undefined);
        continue;
      }
      const b = this.bridgesById.get(ev.tenantId);
      if (!b) {
        this.counters.eventsUnknownTenant++;
        continue;
      }
      let place: Place;
      let created: Vtep | undefined;
      if (ev.ingress.kind === 'unknown-vtep') {
        const encap = ev.ingress.encap ?? 'vxlan';
        const key = encapKey(ev.ingress.address, encap);
        const known = this.vtepsByAddr.get(key);
        // The data path drops these for a tenant that does not accept any source; never
        // learn a VTEP for one that does not.
        if (!known && !b.acceptAny) { this.counters.eventsNotAccepted++; continue; }
        created = known ? undefined : this.vtepAcquire(ev.ingress.address, true, key, undefined, { encap });
        place = { kind: 'vtep', vtepId: (known ?? created)!.id };
      } else {
        place = ev.ingress;
      }
      if (place.kind === 'vtep' && !b.accepts(place.vtepId)) { this.counters.eventsNotAccepted++; continue; }
      if (ev.type === 'too-big') {
        if (ev.frame && ev.outVtep) this.answerTooBig(b, place, ev.frame, ev.outVtep);
        if (created) this.vtepGc(created);
        continue;
      }
      const placeKey = `${ev.tenantId}/${ev.srcMac}/${place.kind === 'port' ? `p${place.portId}` : `v${place.vtepId}`}`;
      if (ev.type === 'learn') {
        b.learn(ev.srcMac, place);
        lastLearn = placeKey;
      } else if (ev.frame) {
        b.forward(place, ev.frame, lastLearn === placeKey);
        lastLearn = '';
      }
      if (created) this.vtepGc(created);
    }
  }

  /** Remove learned entries idle longer than their tenant's ageing time. */
  ageTick(): void {
    const idle = new Map<number, Map<string, number>>();
    for (const r of this.dp.fdbIdle()) {
      let m = idle.get(r.tenantId);
      if (!m) idle.set(r.tenantId, (m = new Map()));
      m.set(r.mac, r.idleMs);
    }
    for (const [tenantId, m] of idle) {
      const aged = this.bridgesById.get(tenantId)?.age(m);
      if (aged?.length) this.log.debug({ tenantId, aged: aged.length }, 'aged out');
    }
  }

  fdbRows(tenant?: string): FdbRow[] {
    const rows: FdbRow[] = [];
    const idle = new Map<string, number>();
    for (const r of this.dp.fdbIdle()) idle.set(`${r.tenantId}/${r.mac}`, r.idleMs);
    for (const b of this.bridges.values()) {
      if (tenant && b.name !== tenant) continue;
      for (const e of b.table.values()) rows.push(this.fdbRow(b, e, idle.get(`${b.tenantId}/${e.mac}`)));
    }
    return rows;
  }

  private fdbRow(b: Bridge, e: FdbEntry, idleMs: number | undefined): FdbRow {
    const where =
      e.place.kind === 'port'
        ? `port ${this.portNames.get(e.place.portId) ?? e.place.portId}`
        : `vtep ${this.vtepsById.get(e.place.vtepId)?.key ?? e.place.vtepId}`;
    return {
      tenant: b.name, vni: b.vni, mac: e.mac, where,
      type: e.static ? 'static' : 'learned',
      ageSeconds: e.static || idleMs === undefined ? null : Math.floor(idleMs / 1000),
    };
  }

  private hostFor(): BridgeHost {
    return {
      vtepRef: (id, delta) => {
        const v = this.vtepsById.get(id);
        if (!v) return;
        v.entryRefs += delta;
        if (delta < 0) this.vtepGc(v);
      },
      globalRoom: () => this.entries < this.opts.maxMacsTotal,
      entryCountDelta: (d) => { this.entries += d; },
      now: this.opts.clock ?? Date.now,
      flapping: (b, mac, from, to) => {
        this.log.warn({ tenant: b.name, mac, from: this.whereOf(from), to: this.whereOf(to) }, 'MAC flapping between two places: pinned, moves refused for the hold time');
      },
      fits: (id, len) => {
        const v = this.vtepsById.get(id);
        return !v || v.mtu === 0 || len + outerBytes(v) <= v.mtu;
      },
      tooBig: (b, ingress, frame, id) => this.answerTooBig(b, ingress, frame, id),
    };
  }

  /**
   * A frame from `ingress` too big for VTEP `vtepId`: tell its sender, as the kernel's
   * bridged VXLAN does, with an ICMP fragmentation-needed / packet-too-big reply written
   * back where it came from (a port; on a hub, the VTEP of the spoke that sent it).
   */
  answerTooBig(b: Bridge, ingress: Place, frame: Buffer, vtepId: number): void {
    this.counters.tooBigFrames++;
    const v = this.vtepsById.get(vtepId);
    if (!v || v.mtu === 0) return;
    const reply = tooBigReply(frame, v.mtu - outerBytes(v) - 14);
    if (!reply || !this.icmpBucket.take(Date.now())) return;
    try {
      const n = ingress.kind === 'port' ? this.dp.transmit(b.tenantId, reply, [ingress.portId], []) : this.dp.transmit(b.tenantId, reply, [], [ingress.vtepId]);
      if (n > 0) this.counters.icmpTooBigSent++;
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'ICMP too-big reply not sent');
    }
  }

  // ---- roles (src/overlay/roles.ts): hubs, spokes, relay, path MTU ------------------------------

  /**
   * A VTEP the role needs (a spoke's hub, a hub's spoke): found by key (address, or
   * address and port with matchPort) or created, and referenced until roleVtepRelease.
   * Its destination port and options are updated to what is asked.
   */
  roleVtep(address: string, port: number, opts: { matchPort?: boolean; fixedSourcePort?: boolean; mtu?: number } = {}): Vtep {
    const key = opts.matchPort ? vtepKey(address, port) : address;
    let v = this.vtepsByAddr.get(key);
    if (!v) {
      v = this.vtepAcquire(address, false, key, port, opts);
    } else {
      const next = { port, fixedSourcePort: opts.fixedSourcePort ?? v.fixedSourcePort, mtu: opts.mtu ?? v.mtu };
      if (next.port !== v.port || next.fixedSourcePort !== v.fixedSourcePort || next.mtu !== v.mtu) {
        Object.assign(v, next);
        this.dp.vtepSet(v.id, v.address, v.port, this.vtepOptions(v));
      }
    }
    v.roleRefs++;
    return v;
  }

  roleVtepRelease(v: Vtep): void {
    if (v.roleRefs > 0) v.roleRefs--;
    this.vtepGc(v);
  }

  /** Set the path MTU toward a VTEP (0: unchecked); the fast path checks it on every encap. */
  setVtepMtu(v: Vtep, mtu: number): void {
    if (v.mtu === mtu || !this.vtepsById.has(v.id)) return;
    v.mtu = mtu;
    this.dp.vtepSet(v.id, v.address, v.port, this.vtepOptions(v));
  }

  /** Trust a VTEP in a tenant (accept its frames) and, with `flood`, flood to it. */
  trust(b: Bridge, vtepId: number, flood: boolean): void {
    b.trusted.add(vtepId);
    if (flood) b.dynFlood.add(vtepId);
    else b.dynFlood.delete(vtepId);
    this.syncAccept(b);
  }

  /** Withdraw trust (and flooding); MACs learned behind it in this tenant go. */
  untrust(b: Bridge, vtepId: number): void {
    b.dynFlood.delete(vtepId);
    if (!b.trusted.delete(vtepId)) return;
    b.flush({ kind: 'vtep', vtepId });
    this.syncAccept(b);
  }

  /** Hub relay on or off for a tenant. */
  setRelay(b: Bridge, relay: boolean): void {
    if (b.relay === relay) return;
    b.relay = relay;
    this.dp.tenantRelay(b.tenantId, relay);
  }

  /** MSS clamping of a tenant (0 = off). */
  private readonly mss = new Map<number, string>();
  setMss(b: Bridge, v4: number, v6: number): void {
    const key = `${v4}/${v6}`;
    if ((this.mss.get(b.tenantId) ?? '0/0') === key) return;
    this.mss.set(b.tenantId, key);
    this.dp.tenantMss(b.tenantId, v4, v6);
  }

  /** Remove learned MACs behind a VTEP in every tenant (a dead hub). Returns how many. */
  flushVtep(vtepId: number): number {
    let n = 0;
    for (const b of this.bridges.values()) n += b.flush({ kind: 'vtep', vtepId });
    return n;
  }

  private vtepOptions(v: Vtep): VtepOptions | undefined {
    if (!v.mtu && !v.fixedSourcePort && !v.matchPort && v.encap === 'vxlan') return undefined;
    return { mtu: v.mtu, fixedSourcePort: v.fixedSourcePort, matchPort: v.matchPort, ...(v.encap !== 'vxlan' ? { encap: v.encap } : {}) };
  }

  /** How tenant `name` reaches VTEP `address`: its per-VTEP encap, else the tenant's. */
  private readonly encapOf = new Map<string, { encap: Encap; vtepEncap: Record<string, Encap> }>();
  encapTo(name: string, address: string): Encap {
    const e = this.encapOf.get(name);
    return e?.vtepEncap[address] ?? e?.encap ?? 'vxlan';
  }

  /** A configured VTEP of a tenant (flood list, static entry): by address in the tenant's encap, or by key ("gre:ADDR"). */
  private peerVtep(tenant: string, addressOrKey: string): Vtep {
    const parsed = parseEncapKey(addressOrKey);
    const address = parsed?.address ?? addressOrKey;
    const encap = parsed?.encap ?? this.encapTo(tenant, address);
    return this.vtepAcquire(address, false, encapKey(address, encap), undefined, { encap });
  }

  /** Path MTU of VTEPs created from now on (underlay.mtu; 0: unchecked). */
  defaultVtepMtu = 0;

  private vtepAcquire(address: string, dynamic: boolean, key = address, port = this.opts.vxlanPort,
    opts: { matchPort?: boolean; fixedSourcePort?: boolean; mtu?: number; encap?: Encap } = {}): Vtep {
    // A key ("gre:ADDR") where an address is expected (a snapshot, a CLI argument).
    const parsed = opts.encap === undefined ? parseEncapKey(address) : null;
    if (parsed) ({ address } = parsed);
    const encap = opts.encap ?? parsed?.encap ?? 'vxlan';
    let v = this.vtepsByAddr.get(key);
    if (v) {
      if (!dynamic) v.dynamic = false;
      return v;
    }
    const id = this.vtepIds.take();
    v = {
      id, key, address, port, configRefs: 0, entryRefs: 0, roleRefs: 0, dynamic,
      mtu: opts.mtu ?? this.defaultVtepMtu, fixedSourcePort: !!opts.fixedSourcePort, matchPort: !!opts.matchPort, encap,
    };
    const o = this.vtepOptions(v);
    if (o) this.dp.vtepSet(id, address, v.port, o);
    else this.dp.vtepSet(id, address, v.port);
    this.vtepsByAddr.set(key, v);
    this.vtepsById.set(id, v);
    if (dynamic) {
      this.counters.dynamicVteps++;
      this.log.debug({ vtep: address }, 'VTEP learned from traffic');
    }
    return v;
  }

  private vtepConfigRelease(id: number): void {
    const v = this.vtepsById.get(id);
    if (!v) return;
    v.configRefs--;
    this.vtepGc(v);
  }

  /** Delete a VTEP nothing refers to any more. */
  private vtepGc(v: Vtep): void {
    if (v.configRefs > 0 || v.entryRefs > 0 || v.roleRefs > 0) return;
    if (!this.vtepsById.has(v.id)) return;
    // Deleting the VTEP withdraws it from every tenant's accept set in the data path.
    for (const b of this.bridges.values()) { b.accepted.delete(v.id); b.trusted.delete(v.id); b.dynFlood.delete(v.id); }
    this.vtepsByAddr.delete(v.key);
    this.vtepsById.delete(v.id);
    this.dp.vtepDel(v.id);
    this.vtepIds.give(v.id);
  }
}
