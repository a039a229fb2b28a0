/**
 * The Switch: one Bridge per tenant (VNI), the VTEP registry shared by all tenants, the
 * local ports, and the loop that takes exception events from the data path and hands
 * them to the right bridge. A frame never crosses tenants: every event carries the
 * tenant the data path classified it into, and each bridge sees only its own.
 */
import { Bridge, type BridgeHost, type BridgeSpec, type FdbEntry } from './bridge.js';
import type { Datapath, DpEvent, Place } from './datapath.js';
import { logger, type Logger } from './log.js';

export interface TenantSpec extends BridgeSpec {
  /** VTEP addresses that get broadcast and unknown unicast (head-end replication). */
  flood: string[];
  /** Static FDB entries. */
  fdb: { mac: string; vtep: string }[];
}

export interface SwitchOptions {
  /** UDP destination port toward VTEPs (the underlay's VXLAN port). */
  vxlanPort: number;
  /** Switch-wide limit on FDB entries over all tenants. */
  maxMacsTotal: number;
  log?: Logger;
}

export interface Vtep {
  id: number;
  address: string;
  port: number;
  /** Configured (flood list or static entry) references. */
  configRefs: number;
  /** FDB entries (learned or static) pointing at it. */
  entryRefs: number;
  /** Learned from traffic rather than configured. */
  dynamic: boolean;
}

export interface SwitchCounters {
  events: number;
  eventsUnknownTenant: number;
  dynamicVteps: number;
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
  readonly counters: SwitchCounters = { events: 0, eventsUnknownTenant: 0, dynamicVteps: 0 };

  constructor(readonly dp: Datapath, private readonly opts: SwitchOptions) {
    this.log = opts.log ?? logger('switch');
  }

  start(): void {
    this.dp.start((events) => this.handleEvents(events));
  }

  /** Run ageing every `intervalMs` (default: 1 s). */
  startAgeing(intervalMs = 1000): void {
    this.ageTimer = setInterval(() => this.ageTick(), intervalMs);
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
    this.bridges.set(spec.name, bridge);
    this.bridgesById.set(tenantId, bridge);
    for (const addr of spec.flood) {
      const v = this.vtepAcquire(addr, false);
      v.configRefs++;
      bridge.flood.add(v.id);
    }
    for (const s of spec.fdb) {
      // The entry itself holds the VTEP (entryRefs); no config reference needed.
      const v = this.vtepAcquire(s.vtep, false);
      bridge.setStatic(s.mac, { kind: 'vtep', vtepId: v.id });
      this.vtepGc(v);
    }
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
    this.bridges.delete(name);
    this.bridgesById.delete(b.tenantId);
    this.tenantIds.give(b.tenantId);
    this.log.info({ tenant: name }, 'tenant removed');
  }

  /** Attach a local port (a TAP fd) to a tenant. Returns its portId. */
  addPort(tenant: string, name: string, fd: number): number {
    const b = this.bridges.get(tenant);
    if (!b) throw new Error(`no tenant "${tenant}"`);
    if (this.ports.has(name)) throw new Error(`port "${name}" exists`);
    const id = this.portIds.take();
    this.dp.portSet(id, b.tenantId, fd);
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
    for (const ev of events) {
      this.counters.events++;
      const b = this.bridgesById.get(ev.tenantId);
      if (!b) {
        this.counters.eventsUnknownTenant++;
        continue;
      }
      let place: Place;
      let created: Vtep | undefined;
      if (ev.ingress.kind === 'unknown-vtep') {
        const known = this.vtepsByAddr.get(ev.ingress.address);
        created = known ? undefined : this.vtepAcquire(ev.ingress.address, true);
        place = { kind: 'vtep', vtepId: (known ?? created)!.id };
      } else {
        place = ev.ingress;
      }
      if (ev.type === 'learn') b.learn(ev.srcMac, place);
      else if (ev.frame) b.forward(place, ev.frame);
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
        : `vtep ${this.vtepsById.get(e.place.vtepId)?.address ?? e.place.vtepId}`;
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
    };
  }

  private vtepAcquire(address: string, dynamic: boolean): Vtep {
    let v = this.vtepsByAddr.get(address);
    if (v) {
      if (!dynamic) v.dynamic = false;
      return v;
    }
    const id = this.vtepIds.take();
    v = { id, address, port: this.opts.vxlanPort, configRefs: 0, entryRefs: 0, dynamic };
    this.dp.vtepSet(id, address, v.port);
    this.vtepsByAddr.set(address, v);
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
    if (v.configRefs > 0 || v.entryRefs > 0) return;
    if (!this.vtepsById.has(v.id)) return;
    this.vtepsByAddr.delete(v.address);
    this.vtepsById.delete(v.id);
    this.dp.vtepDel(v.id);
    this.vtepIds.give(v.id);
  }
}
