/**
 * The Switch: one Bridge per tenant (VNI), the local ports, and the loop that takes
 * exception events from the data path and hands them to the right bridge. A frame never
 * crosses tenants: every event carries the tenant the data path classified it into, and
 * each bridge sees only its own.
 *
 * Its parts live beside it: the VTEP registry all tenants share (vteps.ts), FDB ageing
 * (ageing.ts), and `vtepd trace` (trace.ts).
 */
import { Bridge, type BridgeHost, type BridgeSpec } from './bridge.js';
import type { Datapath, DpEvent, Place } from '../native/datapath.js';
import { logger, type Logger } from '../util/log.js';
import { isLearnableMac } from '../util/mac.js';
import { closest } from '../util/closest.js';
import type { PortSetOptions } from '../native/addon.js';
import { SECURE_OVERHEAD, type Encap } from './encap.js';
import { TooBigResponder } from '../overlay/pmtu.js';
import { Ageing } from './ageing.js';
import { IdAllocator, VtepRegistry, encapKey, type Vtep } from './vteps.js';

export interface TenantSpec extends BridgeSpec {
  /** VTEP addresses that get broadcast and unknown unicast (head-end replication). */
  flood: string[];
  /** Static FDB entries. */
  fdb: { mac: string; vtep: string }[];
  /** How the tenant reaches its VTEPs (default vxlan), and per VTEP address where it differs. */
  encap?: Encap;
  vtepEncap?: Record<string, Encap>;
  /** encryption: required: the data path sends and takes this tenant's frames only encrypted. */
  encrypted?: boolean;
  /** VTEP addresses that hold a key (mesh peers): sent to from the underlay port, one endpoint each. */
  keyed?: string[];
}

/** A tenant's learning policy, in the units the Bridge runs on (ms). */
export type TenantPolicy = Pick<BridgeSpec, 'learning' | 'ageingMs' | 'maxMacs' | 'acceptFrom' | 'stormControl' | 'moveDampening' | 'learnFromUnderlay'>;

/** A liveness message from the underlay (src/overlay/roles.ts), with the VTEP it came from if known. */
export type ControlHandler = (payload: Buffer, from: { address: string; port: number }, vtep: Vtep | undefined) => void;

export interface SwitchOptions {
  /** UDP destination port toward VTEPs (the underlay's VXLAN port). */
  vxlanPort: number;
  /** Switch-wide limit on FDB entries over all tenants. */
  maxMacsTotal: number;
  /** Path MTU of new VTEPs (underlay.mtu); 0 or absent: unchecked. */
  defaultVtepMtu?: number;
  /** Ids the VTEP table gives out: 1..maxVteps-1 (default the data path's, 16384). */
  maxVteps?: number;
  /** Liveness messages from the underlay go here (the role agent); dropped (counted) without. */
  onControl?: ControlHandler;
  /** Encrypted-tunnel events of the data path (secure, key-used, endpoint) go here; ignored without. */
  onSecureEvent?: (ev: DpEvent) => void;
  log?: Logger;
  /** The clock storm control and move dampening run on (ms); Date.now by default. */
  clock?: () => number;
  /** A learned MAC came to a local port or left it (the directory publishes it); see BridgeHost.localMac. */
  localMac?: BridgeHost['localMac'];
  /** ARP/ND from a local port: glean, and answer from the directory; see BridgeHost.neighbor. */
  neighbor?: BridgeHost['neighbor'];
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
  /** Events whose handling threw: counted and logged (at most once a second), never past the event loop. */
  eventErrors: number;
  /** VTEPs not learned from traffic (acceptFrom: any) because the VTEP table was full. */
  vtepsRefused: number;
}

/** Where an FDB entry points, by name: what the API, the snapshot and the CLI speak. */
/** A place by name; a VLAN port of a trunk is its interface and its VLAN (0: untagged, the native tenant's). */
export type Where = { port: string; vlan?: number } | { vtep: string };

/** The name of the port a place names: a VLAN port's (eth1.100) for one with a VLAN. */
export function portNameOf(w: { port: string; vlan?: number }): string {
  return w.vlan === undefined ? w.port : vlanPortName(w.port, w.vlan);
}

/** The name a trunk's VLAN port goes by (FDB, stats, trace, capture): eth1.100, eth1.native. */
export function vlanPortName(trunk: string, vlan: number): string {
  return vlan ? `${trunk}.${vlan}` : `${trunk}.native`;
}

export class Switch {
  private readonly bridges = new Map<string, Bridge>();
  private readonly bridgesById = new Map<number, Bridge>();
  private readonly ports = new Map<string, { id: number; tenant: string; trunk?: string; vlan?: number }>();
  /** Trunks (#15) by interface name: a port id with no tenant, whose VLAN ports are in `ports`. */
  private readonly trunks = new Map<string, number>();
  private readonly portNames = new Map<number, string>();
  private readonly tenantIds = new IdAllocator(4096, 'tenant');
  private readonly portIds = new IdAllocator(4096, 'port');
  /** The VTEPs every tenant shares. */
  readonly vteps: VtepRegistry;
  /** FDB ageing, at the cadence of the shortest ageing time. */
  readonly ageing: Ageing;
  private entries = 0;
  private readonly log: Logger;
  private readonly c = { events: 0, eventsUnknownTenant: 0, eventsNotAccepted: 0, controlMessages: 0, eventErrors: 0 };
  /** When an event error was last logged (ms), so a storm of them logs once a second. */
  private lastErrorLog = 0;
  /** ICMP too-big replies to frames that do not fit their tunnel. */
  private readonly tooBig: TooBigResponder;
  /** How each tenant reaches its VTEPs: its encap, and per VTEP address where it differs. */
  private readonly encapOf = new Map<string, { encap: Encap; vtepEncap: Record<string, Encap> }>();
  /** Tenants whose frames travel encrypted (encryption: required), by id. */
  private readonly encrypted = new Set<number>();
  /** VTEP addresses with a key (mesh peers): their VTEPs send from the underlay port. */
  private readonly keyed = new Set<string>();
  /** MSS clamping per tenant id, as last programmed ("v4/v6"). */
  private readonly mss = new Map<number, string>();

  constructor(
    private readonly dp: Datapath,
    private readonly opts: SwitchOptions,
  ) {
    this.log = opts.log ?? logger('switch');
    this.vteps = new VtepRegistry(dp, {
      vxlanPort: opts.vxlanPort,
      defaultMtu: opts.defaultVtepMtu,
      ...(opts.maxVteps ? { maxVteps: opts.maxVteps } : {}),
      log: this.log,
      // Deleting the VTEP withdraws it from every tenant's accept set in the data path.
      onDelete: (v) => {
        for (const b of this.bridges.values()) {
          b.accepted.delete(v.id);
          b.trusted.delete(v.id);
          b.dynFlood.delete(v.id);
        }
      },
    });
    this.ageing = new Ageing(dp, () => this.bridges.values(), this.log);
    this.tooBig = new TooBigResponder(dp, this.vteps, this.log);
  }

  get counters(): SwitchCounters {
    const c = this.c;
    return {
      events: c.events,
      eventsUnknownTenant: c.eventsUnknownTenant,
      eventsNotAccepted: c.eventsNotAccepted,
      dynamicVteps: this.vteps.learned,
      tooBigFrames: this.tooBig.frames,
      icmpTooBigSent: this.tooBig.sent,
      controlMessages: c.controlMessages,
      eventErrors: c.eventErrors,
      vtepsRefused: this.vteps.refused,
    };
  }

  /** Start the data path; `onBatch` (metrics) hears the size of every batch of events. Ageing starts apart (`ageing.start()`). */
  start(onBatch?: (size: number) => void): void {
    this.dp.start((events) => {
      onBatch?.(events.length);
      this.handleEvents(events);
    });
  }

  stop(): void {
    this.ageing.stop();
    this.dp.stop();
  }

  tenant(name: string): Bridge | undefined {
    return this.bridges.get(name);
  }
  tenants(): Bridge[] {
    return [...this.bridges.values()];
  }
  portName(portId: number): string | undefined {
    return this.portNames.get(portId);
  }
  portId(name: string): number | undefined {
    return this.ports.get(name)?.id;
  }

  /** A port of a tenant by name, as a place; throws if the tenant has no such port. */
  portPlace(tenant: string, name: string): Place {
    const p = this.ports.get(name);
    if (!p || p.tenant !== tenant) throw new Error(`no port "${name}" in tenant "${tenant}"`);
    return { kind: 'port', portId: p.id };
  }

  /** A tenant by name; throws if there is none. */
  bridge(name: string): Bridge {
    const b = this.bridges.get(name);
    if (!b) throw this.noTenant(name);
    return b;
  }

  /** The error for a tenant that does not exist: `no tenant "bleu" (tenants: blue, red; did you mean blue?)`. */
  noTenant(name: string): Error {
    const names = [...this.bridges.keys()].sort();
    const near = closest(name, names);
    return new Error(`no tenant "${name}" (${names.length ? `tenants: ${names.join(', ')}` : 'there are none'}${near ? `; did you mean ${near}?` : ''})`);
  }

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
    for (const a of spec.keyed ?? []) this.keyed.add(a);
    if (spec.encrypted) {
      this.dp.tenantEncrypt(tenantId, true);
      this.encrypted.add(tenantId);
    }
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
    this.ageing.reschedule();
    this.log.info({ tenant: spec.name, vni: spec.vni, tenantId }, 'tenant added');
    return bridge;
  }

  removeTenant(name: string): void {
    const b = this.bridge(name);
    for (const [portName, p] of [...this.ports]) if (p.tenant === name) this.removePort(portName);
    for (const mac of [...b.table.keys()]) b.remove(mac);
    for (const id of b.flood) this.vteps.releaseConfig(id);
    this.dp.tenantDel(b.tenantId);
    this.encapOf.delete(name);
    this.mss.delete(b.tenantId);
    this.encrypted.delete(b.tenantId);
    this.bridges.delete(name);
    this.bridgesById.delete(b.tenantId);
    this.tenantIds.give(b.tenantId);
    this.ageing.reschedule();
    this.log.info({ tenant: name }, 'tenant removed');
  }

  /** The switch-wide FDB limit (limits.maxMacs). */
  get maxMacsTotal(): number {
    return this.opts.maxMacsTotal;
  }

  /** The switch-wide FDB limit (reload). Lowering it refuses new MACs; it removes none. */
  setMaxMacsTotal(n: number): void {
    this.opts.maxMacsTotal = n;
  }

  /** Change a tenant's learning policy in place; its table stays (a smaller maxMacs only refuses new MACs). */
  setPolicy(name: string, p: TenantPolicy): void {
    const b = this.bridge(name);
    if (p.stormControl !== undefined || p.moveDampening !== undefined) b.setProtection(p.stormControl ?? null, p.moveDampening ?? null);
    b.learning = p.learning;
    if (p.learnFromUnderlay !== undefined) b.learnFromUnderlay = p.learnFromUnderlay;
    b.ageingMs = p.ageingMs;
    b.maxMacs = p.maxMacs;
    this.ageing.reschedule();
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
  private syncAccept(b: Bridge): void {
    const want = new Set<number>([...b.flood, ...b.trusted]);
    for (const e of b.table.values()) if (e.static && e.place.kind === 'vtep') want.add(e.place.vtepId);
    for (const id of [...b.accepted]) {
      if (want.has(id)) continue;
      b.accepted.delete(id);
      if (this.vteps.has(id)) this.dp.tenantAccept(b.tenantId, id, false);
    }
    for (const id of want) {
      if (b.accepted.has(id) || !this.vteps.has(id)) continue;
      b.accepted.add(id);
      this.dp.tenantAccept(b.tenantId, id, true);
    }
  }

  /** VTEP addresses that hold a key (from the directory): like a tenant's `keyed`, they send from the underlay port. */
  addKeyed(addresses: Iterable<string>): void {
    for (const a of addresses) this.keyed.add(a);
  }

  /** Replace a tenant's flood list; VTEPs no longer referenced by anything are removed. */
  setFlood(name: string, flood: string[]): void {
    const b = this.bridge(name);
    const want = new Set(flood.map((a) => encapKey(a, this.encapTo(name, a))));
    for (const id of [...b.flood]) {
      const v = this.vteps.get(id);
      if (v && want.has(v.key)) continue;
      b.flood.delete(id);
      this.vteps.releaseConfig(id);
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
      b.setStatic(mac, this.portPlace(tenant, portNameOf(where)));
      return;
    }
    // The entry itself holds the VTEP (entryRefs); no config reference needed.
    const v = this.peerVtep(tenant, where.vtep);
    b.setStatic(mac, { kind: 'vtep', vtepId: v.id });
    this.vteps.gc(v);
    this.syncAccept(b);
  }

  /**
   * A remote MAC from the directory, at the VTEP of its owner (`vtep`, an address in the
   * tenant's encap). False when a static entry holds the MAC or the table is full.
   */
  setDirectoryEntry(tenant: string, mac: string, vtep: string): boolean {
    const b = this.bridge(tenant);
    // The entry holds the VTEP (entryRefs), as a static entry does. Frames are accepted from
    // the VNI's members (the flood list), the owner among them.
    const v = this.peerVtep(tenant, vtep);
    const ok = b.setDirectory(mac, { kind: 'vtep', vtepId: v.id });
    this.vteps.gc(v);
    return ok;
  }

  /** The directory withdrew a MAC: remove the entry it had put there. */
  removeDirectoryEntry(tenant: string, mac: string): boolean {
    return this.bridge(tenant).removeDirectory(mac);
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

  /** Ports by name, with their tenant and id (a trunk's VLAN port: its trunk and VLAN too). */
  portList(): { name: string; id: number; tenant: string; trunk?: string; vlan?: number }[] {
    return [...this.ports].map(([name, p]) => ({ name, ...p }));
  }
  /** Trunks by interface name, with their port id. */
  trunkList(): { name: string; id: number }[] {
    return [...this.trunks].map(([name, id]) => ({ name, id }));
  }

  /** A trunk (#15): an attached interface's packet socket, carrying tenants by VLAN ID. Set again (a new fd), it keeps its VLAN ports. */
  setTrunk(name: string, fd: number): number {
    if (this.ports.has(name)) throw new Error(`port "${name}" exists`);
    const known = this.trunks.get(name);
    const id = known ?? this.portIds.take();
    try {
      this.dp.trunkSet(id, fd);
    } catch (e) {
      if (known === undefined) this.portIds.give(id);
      throw e;
    }
    this.trunks.set(name, id);
    this.portNames.set(id, name);
    return id;
  }

  /** A tenant's VLAN port on a trunk (vlan 0: untagged frames, the native tenant). Returns its name. */
  addVlanPort(tenant: string, trunk: string, vlan: number): string {
    const b = this.bridge(tenant);
    const tid = this.trunks.get(trunk);
    if (tid === undefined) throw new Error(`no trunk "${trunk}"`);
    const name = vlanPortName(trunk, vlan);
    if (this.ports.has(name)) throw new Error(`port "${name}" exists`);
    const id = this.portIds.take();
    try {
      this.dp.vlanPortSet(id, b.tenantId, tid, vlan);
    } catch (e) {
      this.portIds.give(id);
      throw e;
    }
    b.ports.add(id);
    this.ports.set(name, { id, tenant, trunk, vlan });
    this.portNames.set(id, name);
    return name;
  }

  /** Remove a trunk and its VLAN ports. */
  removeTrunk(name: string): void {
    const id = this.trunks.get(name);
    if (id === undefined) throw new Error(`no trunk "${name}"`);
    for (const [portName, p] of [...this.ports]) if (p.trunk === name) this.removePort(portName);
    this.dp.portDel(id);
    this.trunks.delete(name);
    this.portNames.delete(id);
    this.portIds.give(id);
  }

  /** A place by name ({ port } or { vtep: key }); undefined once the port or VTEP is gone. */
  whereOf(place: Place): Where | undefined {
    if (place.kind === 'port') {
      const name = this.portNames.get(place.portId);
      const p = name === undefined ? undefined : this.ports.get(name);
      if (p?.trunk !== undefined) return { port: p.trunk, vlan: p.vlan ?? 0 };
      return name === undefined ? undefined : { port: name };
    }
    const v = this.vteps.get(place.vtepId);
    return v ? { vtep: v.key } : undefined;
  }

  /** A place as the FDB shows it: "port NAME" / "vtep KEY" ("?" if gone). */
  whereText(place: Place | undefined): string {
    const w = place && this.whereOf(place);
    if (w && 'port' in w && w.vlan !== undefined) return `port ${w.port} ${w.vlan ? `vlan ${w.vlan}` : 'untagged'}`;
    return !w ? '?' : 'port' in w ? `port ${w.port}` : `vtep ${w.vtep}`;
  }

  /** Attach a local port (a TAP fd) to a tenant. Returns its portId. */
  addPort(tenant: string, name: string, fd: number, opts?: PortSetOptions): number {
    const b = this.bridge(tenant);
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

  /**
   * Handle one batch of exception events from the data path. The events come from the
   * network: one whose handling throws is counted (`eventErrors`) and logged at most once a
   * second, and the rest of the batch goes on; nothing thrown here ends the daemon.
   */
  handleEvents(events: DpEvent[]): void {
    // The learn event the data path sent just before a miss of the same frame.
    const state = { lastLearn: '', lastRefused: '' };
    for (const ev of events) {
      this.c.events++;
      try {
        this.handleEvent(ev, state);
      } catch (e) {
        this.c.eventErrors++;
        const now = Date.now();
        if (now - this.lastErrorLog >= 1000) {
          this.lastErrorLog = now;
          this.log.error(
            { err: e instanceof Error ? e.message : String(e), event: ev.type, errors: this.c.eventErrors },
            'an event could not be handled; counted and skipped',
          );
        }
      }
    }
  }

  /** One event; `state` carries what a miss needs from the learn just before it. */
  private handleEvent(ev: DpEvent, state: { lastLearn: string; lastRefused: string }): void {
    if (ev.type === 'secure' || ev.type === 'key-used' || ev.type === 'endpoint') {
      this.opts.onSecureEvent?.(ev);
      return;
    }
    if (ev.type === 'control') {
      this.c.controlMessages++;
      const from = ev.outer ?? (ev.ingress.kind === 'unknown-vtep' ? { address: ev.ingress.address, port: ev.ingress.port } : undefined);
      if (from && ev.frame) this.opts.onControl?.(ev.frame, from, ev.ingress.kind === 'vtep' ? this.vteps.get(ev.ingress.vtepId) : undefined);
      return;
    }
    const b = this.bridgesById.get(ev.tenantId);
    if (!b) {
      this.c.eventsUnknownTenant++;
      return;
    }
    let place: Place;
    let created: Vtep | undefined;
    if (ev.ingress.kind === 'unknown-vtep') {
      const encap = ev.ingress.encap ?? 'vxlan';
      const key = encapKey(ev.ingress.address, encap);
      const known = this.vteps.find(key);
      // The data path drops these for a tenant that does not accept any source; never
      // learn a VTEP for one that does not.
      if (!known && !b.acceptAny) {
        this.c.eventsNotAccepted++;
        return;
      }
      // A full VTEP table refuses (counted in vteps.refused, once per frame) rather than throws.
      if (!known && !this.vteps.room(ev.type === 'miss' && state.lastRefused === `${ev.ingress.address}/${ev.srcMac}`)) {
        state.lastRefused = `${ev.ingress.address}/${ev.srcMac}`;
        return;
      }
      created = known ? undefined : this.vteps.acquire(ev.ingress.address, true, key, undefined, { encap });
      place = { kind: 'vtep', vtepId: (known ?? created)!.id };
    } else {
      place = ev.ingress;
    }
    if (place.kind === 'vtep' && !b.accepts(place.vtepId)) {
      this.c.eventsNotAccepted++;
      return;
    }
    if (ev.type === 'too-big') {
      if (ev.frame && ev.outVtep) this.tooBig.answer(b.tenantId, place, ev.frame, ev.outVtep, this.sealed(b.tenantId));
      if (created) this.vteps.gc(created);
      return;
    }
    const placeKey = `${ev.tenantId}/${ev.srcMac}/${place.kind === 'port' ? `p${place.portId}` : `v${place.vtepId}`}`;
    if (ev.type === 'learn') {
      b.learn(ev.srcMac, place);
      state.lastLearn = placeKey;
    } else if (ev.frame) {
      b.forward(place, ev.frame, state.lastLearn === placeKey);
      state.lastLearn = '';
    }
    if (created) this.vteps.gc(created);
  }

  /** Idle times the data path measures, by "tenantId/mac". */
  idleTimes(): Map<string, number> {
    const idle = new Map<string, number>();
    for (const r of this.dp.fdbIdle()) idle.set(`${r.tenantId}/${r.mac}`, r.idleMs);
    return idle;
  }

  private hostFor(): BridgeHost {
    return {
      vtepRef: (id, delta) => this.vteps.entryRef(id, delta),
      globalRoom: () => this.entries < this.opts.maxMacsTotal,
      entryCountDelta: (d) => {
        this.entries += d;
      },
      now: this.opts.clock ?? Date.now,
      flapping: (b, mac, from, to) => {
        this.log.warn(
          { tenant: b.name, mac, from: this.whereOf(from), to: this.whereOf(to) },
          'MAC flapping between two places: pinned, moves refused for the hold time',
        );
      },
      // An encrypted tenant's datagrams carry 32 bytes more (transport header and tag).
      fits: (b, id, len) => this.vteps.fits(id, len + this.sealed(b.tenantId)),
      tooBig: (b, ingress, frame, id) => this.tooBig.answer(b.tenantId, ingress, frame, id, this.sealed(b.tenantId)),
      ...(this.opts.localMac ? { localMac: this.opts.localMac } : {}),
      ...(this.opts.neighbor ? { neighbor: this.opts.neighbor } : {}),
    };
  }

  // ---- roles (src/overlay/roles.ts): trust, relay, MSS clamping ----------------------------

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

  /** Frames from VTEPs with an 802.1Q/802.1ad tag: let through (innerVlan: allow) or dropped as inner_vlan (default). */
  setInnerVlan(tenant: string, allow: boolean): void {
    this.dp.tenantInnerVlan(this.bridge(tenant).tenantId, allow);
  }

  /** Hub relay on or off for a tenant. */
  setRelay(b: Bridge, relay: boolean): void {
    if (b.relay === relay) return;
    b.relay = relay;
    this.dp.tenantRelay(b.tenantId, relay);
  }

  /** MSS clamping of a tenant (0 = off). */
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

  /** Tenant `name`'s encapsulation (`encap` in its config; a flood or static entry may differ). */
  tenantEncap(name: string): Encap {
    return this.encapOf.get(name)?.encap ?? 'vxlan';
  }

  /** How tenant `name` reaches VTEP `address`: its per-VTEP encap, else the tenant's. */
  private encapTo(name: string, address: string): Encap {
    const e = this.encapOf.get(name);
    return e?.vtepEncap[address] ?? e?.encap ?? 'vxlan';
  }

  /** A configured VTEP of a tenant (flood list, static entry): by address in the tenant's encap, or by key ("gre:ADDR"). */
  /** Bytes encryption adds to each of the tenant's datagrams (0 for a plain tenant). */
  private sealed(tenantId: number): number {
    return this.encrypted.has(tenantId) ? SECURE_OVERHEAD : 0;
  }

  private peerVtep(tenant: string, addressOrKey: string): Vtep {
    const v = this.vteps.configured(addressOrKey, this.encapTo(tenant, addressOrKey));
    if (this.keyed.has(v.address)) this.vteps.fixSource(v);
    return v;
  }
}
