/**
 * The VTEP registry, shared by every tenant: one entry per remote tunnel endpoint, keyed
 * by address (and encapsulation, and for a spoke behind NAT by port), with an id the data
 * path knows it by. A VTEP lives while something refers to it — a tenant's configuration
 * (flood list), an FDB entry, or the node's role (hubs, spokes) — and is deleted from the
 * data path when the last reference goes.
 */
import type { Datapath } from '../native/datapath.js';
import type { VtepOptions } from '../native/addon.js';
import { encapOverhead, type Encap } from './encap.js';
import type { Logger } from '../util/log.js';

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

/** What a role asks of a VTEP it refers to. */
export interface RoleVtepOptions {
  matchPort?: boolean;
  fixedSourcePort?: boolean;
  mtu?: number;
}

export interface VtepRegistryOptions {
  /** UDP destination port toward VTEPs unless one says otherwise (the underlay's VXLAN port). */
  vxlanPort: number;
  /** Path MTU of new VTEPs (underlay.mtu; 0: unchecked). */
  defaultMtu?: number;
  /** Ids the data path takes: 1..maxVteps-1. */
  maxVteps?: number;
  /** A VTEP is about to be deleted (the Switch withdraws it from every tenant). */
  onDelete?(v: Vtep): void;
  log?: Logger;
}

/** Small integer ids, reused once given back. */
export class IdAllocator {
  private next = 1;
  private readonly free: number[] = [];
  constructor(
    private readonly max: number,
    private readonly what: string,
  ) {}
  take(): number {
    const id = this.free.pop() ?? this.next++;
    if (id >= this.max) throw new Error(`too many ${this.what}s (limit ${this.max - 1})`);
    return id;
  }
  /** Whether take() would give an id. */
  get available(): boolean {
    return this.free.length > 0 || this.next < this.max;
  }
  give(id: number): void {
    this.free.push(id);
  }
}

export class VtepRegistry {
  private readonly byKey = new Map<string, Vtep>();
  private readonly byId = new Map<number, Vtep>();
  private readonly ids: IdAllocator;
  /** VTEPs learned from traffic, ever. */
  learned = 0;
  /** VTEPs not learned because the table was full (counted by the callers that ask `room`). */
  refused = 0;

  constructor(
    private readonly dp: Pick<Datapath, 'vtepSet' | 'vtepDel'>,
    private readonly opts: VtepRegistryOptions,
  ) {
    this.ids = new IdAllocator(opts.maxVteps ?? 16384, 'VTEP');
  }

  all(): Vtep[] {
    return [...this.byId.values()];
  }
  get(id: number): Vtep | undefined {
    return this.byId.get(id);
  }
  has(id: number): boolean {
    return this.byId.has(id);
  }
  /** By registry key: an address, "gre:ADDR", or "address:port". */
  find(key: string): Vtep | undefined {
    return this.byKey.get(key);
  }

  /**
   * Whether one more VTEP fits. Callers that create VTEPs from what the network sends (an
   * unknown source under acceptFrom: any, a hub's spoke) ask first, and refuse and count
   * (`refused`; `counted`: this refusal was counted already) instead: the table is bounded and a full one never throws on the event path.
   */
  room(counted = false): boolean {
    if (this.ids.available) return true;
    if (!counted) this.refused++;
    return false;
  }

  /**
   * Move a VTEP matched by address and port (a spoke whose NAT mapping changed) to a new
   * source, keeping its id, its FDB entries and its tenants. False if another VTEP is there.
   */
  relocate(v: Vtep, address: string, port: number): boolean {
    if (!this.byId.has(v.id)) return false;
    const key = v.matchPort ? vtepKey(address, port) : encapKey(address, v.encap);
    if (key === v.key) {
      if (v.port !== port) {
        v.port = port;
        this.program(v);
      }
      return true;
    }
    if (this.byKey.has(key)) return false;
    this.byKey.delete(v.key);
    Object.assign(v, { key, address, port });
    this.byKey.set(key, v);
    this.program(v);
    return true;
  }

  /**
   * The VTEP at `key`, created if there is none (configured, or `dynamic`: learned from
   * traffic). A configured use makes a learned VTEP configured. The caller takes a
   * reference (or calls gc when it takes none).
   */
  acquire(address: string, dynamic: boolean, key = address, port = this.opts.vxlanPort, opts: RoleVtepOptions & { encap?: Encap } = {}): Vtep {
    // A key ("gre:ADDR") where an address is expected (a snapshot, a CLI argument).
    const parsed = opts.encap === undefined ? parseEncapKey(address) : null;
    if (parsed) ({ address } = parsed);
    const encap = opts.encap ?? parsed?.encap ?? 'vxlan';
    let v = this.byKey.get(key);
    if (v) {
      if (!dynamic) v.dynamic = false;
      return v;
    }
    const id = this.ids.take();
    v = {
      id,
      key,
      address,
      port,
      configRefs: 0,
      entryRefs: 0,
      roleRefs: 0,
      dynamic,
      mtu: opts.mtu ?? this.opts.defaultMtu ?? 0,
      fixedSourcePort: !!opts.fixedSourcePort,
      matchPort: !!opts.matchPort,
      encap,
    };
    this.program(v);
    this.byKey.set(key, v);
    this.byId.set(id, v);
    if (dynamic) {
      this.learned++;
      this.opts.log?.debug({ vtep: address }, 'VTEP learned from traffic');
    }
    return v;
  }

  /** A configured VTEP (flood list, static entry): by address in `encap`, or by key ("gre:ADDR"). */
  configured(addressOrKey: string, encap: Encap): Vtep {
    const parsed = parseEncapKey(addressOrKey);
    const address = parsed?.address ?? addressOrKey;
    const e = parsed?.encap ?? encap;
    return this.acquire(address, false, encapKey(address, e), undefined, { encap: e });
  }

  /** Drop a configuration reference. */
  releaseConfig(id: number): void {
    const v = this.byId.get(id);
    if (!v) return;
    v.configRefs--;
    this.gc(v);
  }

  /** An FDB entry starts (+1) or stops (-1) pointing at the VTEP. */
  entryRef(id: number, delta: 1 | -1): void {
    const v = this.byId.get(id);
    if (!v) return;
    v.entryRefs += delta;
    if (delta < 0) this.gc(v);
  }

  /**
   * A VTEP the role needs (a spoke's hub, a hub's spoke): found by key (address, or
   * address and port with matchPort) or created, and referenced until releaseRole.
   * Its destination port and options are updated to what is asked.
   */
  role(address: string, port: number, opts: RoleVtepOptions = {}): Vtep {
    const key = opts.matchPort ? vtepKey(address, port) : address;
    let v = this.byKey.get(key);
    if (!v) {
      v = this.acquire(address, false, key, port, opts);
    } else {
      const next = { port, fixedSourcePort: opts.fixedSourcePort ?? v.fixedSourcePort, mtu: opts.mtu ?? v.mtu };
      if (next.port !== v.port || next.fixedSourcePort !== v.fixedSourcePort || next.mtu !== v.mtu) {
        Object.assign(v, next);
        this.program(v);
      }
    }
    v.roleRefs++;
    return v;
  }

  releaseRole(v: Vtep): void {
    if (v.roleRefs > 0) v.roleRefs--;
    this.gc(v);
  }

  /** Send to the VTEP from the underlay port (a peer with a key: one endpoint, as its session expects). */
  fixSource(v: Vtep): void {
    if (v.fixedSourcePort || !this.byId.has(v.id)) return;
    v.fixedSourcePort = true;
    this.program(v);
  }

  /** Set the path MTU toward a VTEP (0: unchecked); the fast path checks it on every encap. */
  setMtu(v: Vtep, mtu: number): void {
    if (v.mtu === mtu || !this.byId.has(v.id)) return;
    v.mtu = mtu;
    this.program(v);
  }

  /** Does a frame of `len` bytes fit the path MTU toward VTEP `id` once encapsulated? */
  fits(id: number, len: number): boolean {
    const v = this.byId.get(id);
    return !v || v.mtu === 0 || len + outerBytes(v) <= v.mtu;
  }

  /** Delete a VTEP nothing refers to any more. */
  gc(v: Vtep): void {
    if (v.configRefs > 0 || v.entryRefs > 0 || v.roleRefs > 0) return;
    if (!this.byId.has(v.id)) return;
    this.opts.onDelete?.(v);
    this.byKey.delete(v.key);
    this.byId.delete(v.id);
    this.dp.vtepDel(v.id);
    this.ids.give(v.id);
  }

  private program(v: Vtep): void {
    const o = vtepOptions(v);
    if (o) this.dp.vtepSet(v.id, v.address, v.port, o);
    else this.dp.vtepSet(v.id, v.address, v.port);
  }
}

/** The data path's options for a VTEP; undefined for a plain VXLAN one. */
function vtepOptions(v: Vtep): VtepOptions | undefined {
  if (!v.mtu && !v.fixedSourcePort && !v.matchPort && v.encap === 'vxlan') return undefined;
  return { mtu: v.mtu, fixedSourcePort: v.fixedSourcePort, matchPort: v.matchPort, ...(v.encap !== 'vxlan' ? { encap: v.encap } : {}) };
}
