/**
 * An in-memory model of the C fast path, with fake ports and a fake underlay, for the
 * pure-logic tier of tests. It follows the same rules as native/fastpath.c: learn events
 * for sources not cached at their place, punts for broadcast/multicast/unknown
 * destinations, known unicast forwarded without the Switch, split horizon and hairpin
 * drops, unknown VNIs dropped. Events are delivered synchronously.
 */
import type { Datapath, DpEvent, FdbIdle, Place } from '../../src/native/datapath.js';
import type { Cipher, ControlSendOptions, DpProcessInfo, DpStats, SecureSendOptions, VtepOptions } from '../../src/native/addon.js';
import { frameMacs, isLearnableMac, isMulticastMac } from '../../src/util/mac.js';

export interface WirePacket {
  /** Destination VTEP address. */
  to: string;
  vni: number;
  frame: Buffer;
  /** The 8-byte VXLAN header as received (native harness only). */
  header?: Buffer;
  /** Destination UDP port and whether it left from the fixed source port (fake only). */
  port?: number;
  fixed?: boolean;
}

/** A liveness message sent with sendControl (fake only). */
export interface ControlPacket {
  address: string;
  port: number;
  payload: Buffer;
  opts: ControlSendOptions;
}

export class FakeDatapath implements Datapath {
  now = 0;
  readonly portOut = new Map<number, Buffer[]>();
  readonly wire: WirePacket[] = [];
  readonly drops: Record<string, number> = {};
  private onEvents: ((e: DpEvent[]) => void) | undefined;
  private readonly tenants = new Map<number, number>();
  private readonly ports = new Map<number, number>();
  private readonly vteps = new Map<number, string>();
  private readonly fdb = new Map<string, { place: Place; lastSeen: number }>();
  readonly vtepOpts = new Map<number, { port: number } & VtepOptions>();
  readonly relayOf = new Set<number>();
  readonly mssOf = new Map<number, [number, number]>();
  readonly control: ControlPacket[] = [];
  /** sendControl throws EMSGSIZE above this payload size (the local link). */
  controlMax = 1472;

  start(onEvents: (events: DpEvent[]) => void): void {
    this.onEvents = onEvents;
  }
  underlayFds(): number[] {
    return [];
  }
  /** What process() answers: null (in process) unless a test plays a data path process. */
  dpProcess: DpProcessInfo | null = null;
  process(): DpProcessInfo | null {
    return this.dpProcess;
  }
  stop(): void {
    this.onEvents = undefined;
  }
  tenantSet(tenantId: number, vni: number): void {
    this.tenants.set(tenantId, vni);
  }
  private readonly acceptAnyOf = new Set<number>();
  private readonly acceptOf = new Map<number, Set<number>>();
  tenantAccept(tenantId: number, vtepId: number, accept: boolean): void {
    let s = this.acceptOf.get(tenantId);
    if (!s) this.acceptOf.set(tenantId, (s = new Set()));
    if (accept) s.add(vtepId);
    else s.delete(vtepId);
  }
  /** What each tenant takes on receive (tenantEncaps), when set. */
  readonly encapsOf = new Map<number, string[]>();
  tenantEncaps(tenantId: number, encaps: string[]): void {
    this.encapsOf.set(tenantId, [...encaps]);
  }
  tenantAcceptAny(tenantId: number, any: boolean): void {
    if (any) this.acceptAnyOf.add(tenantId);
    else this.acceptAnyOf.delete(tenantId);
  }
  tenantDel(tenantId: number): void {
    this.tenants.delete(tenantId);
    for (const k of [...this.fdb.keys()]) if (k.startsWith(`${tenantId}/`)) this.fdb.delete(k);
  }
  portSet(portId: number, tenantId: number): void {
    this.ports.set(portId, tenantId);
  }
  trunkSet(portId: number): void {
    this.ports.set(portId, 0);
  }
  vlanPortSet(portId: number, tenantId: number): void {
    this.ports.set(portId, tenantId);
  }
  portDel(portId: number): void {
    this.ports.delete(portId);
    for (const [k, v] of [...this.fdb]) if (v.place.kind === 'port' && v.place.portId === portId) this.fdb.delete(k);
  }
  vtepSet(vtepId: number, address: string, port = 4789, opts: VtepOptions = {}): void {
    this.vteps.set(vtepId, address);
    this.vtepOpts.set(vtepId, { port, ...opts });
  }
  tenantInnerVlan(): void {}
  tenantRelay(tenantId: number, relay: boolean): void {
    if (relay) this.relayOf.add(tenantId);
    else this.relayOf.delete(tenantId);
  }
  tenantMss(tenantId: number, v4: number, v6: number): void {
    this.mssOf.set(tenantId, [v4, v6]);
  }
  sendControl(address: string, port: number, payload: Buffer, opts: ControlSendOptions = {}): void {
    if (payload.length > this.controlMax) throw Object.assign(new Error('dpSendControl: message too long'), { code: 'EMSGSIZE' });
    this.control.push({ address, port, payload: Buffer.from(payload), opts });
  }
  /** A liveness message arrives on the underlay port from address:port. */
  fromControl(address: string, port: number, payload: Buffer): void {
    const vtepId = this.lookupVtep(address, port);
    const ingress: DpEvent['ingress'] = vtepId !== undefined ? { kind: 'vtep', vtepId } : { kind: 'unknown-vtep', address, port };
    this.onEvents?.([{ type: 'control', tenantId: 0, ingress, srcMac: '00:00:00:00:00:00', frame: Buffer.from(payload), outer: { address, port } }]);
  }
  /** As the C fast path: a VTEP by address and port first, else by address alone. */
  private lookupVtep(address: string, port: number): number | undefined {
    const byPort = [...this.vteps].find(([id, a]) => a === address && this.vtepOpts.get(id)?.matchPort && this.vtepOpts.get(id)?.port === port);
    return (byPort ?? [...this.vteps].find(([id, a]) => a === address && !this.vtepOpts.get(id)?.matchPort))?.[0];
  }
  /** Encrypted tunnels (recorded only; the fake neither seals nor opens). */
  readonly rxKeys = new Map<number, { vtepId: number; key: Buffer }>();
  readonly txKeys = new Map<number, { remoteIndex: number; key: Buffer }>();
  readonly encryptOf = new Set<number>();
  readonly secureSent: { vtepId: number; payload: Buffer; opts: SecureSendOptions }[] = [];
  cipher: Cipher = 'chacha20-poly1305';
  keyRxSet(index: number, vtepId: number, key: Buffer): void {
    if (!this.vteps.has(vtepId)) throw Object.assign(new Error(`dpKeyRxSet: VTEP ${vtepId} does not exist`), { code: 'ENOENT' });
    const mine = [...this.rxKeys].filter(([i, k]) => k.vtepId === vtepId && i !== index);
    if (mine.length >= 3) throw Object.assign(new Error(`dpKeyRxSet: VTEP ${vtepId} has 3 receive keys already`), { code: 'ENOSPC' });
    this.rxKeys.set(index, { vtepId, key: Buffer.from(key) });
  }
  keyRxDel(index: number): void {
    this.rxKeys.delete(index);
  }
  keyTxSet(vtepId: number, remoteIndex: number, key: Buffer): void {
    if (!this.vteps.has(vtepId)) throw Object.assign(new Error(`dpKeyTxSet: VTEP ${vtepId} does not exist`), { code: 'ENOENT' });
    this.txKeys.set(vtepId, { remoteIndex, key: Buffer.from(key) });
  }
  keyTxDel(vtepId: number): void {
    this.txKeys.delete(vtepId);
  }
  tenantEncrypt(tenantId: number, required: boolean): void {
    if (required) this.encryptOf.add(tenantId);
    else this.encryptOf.delete(tenantId);
  }
  sendSecure(vtepId: number, payload: Buffer, opts: SecureSendOptions = {}): void {
    if (!this.txKeys.has(vtepId)) throw Object.assign(new Error(`dpSendSecure: VTEP ${vtepId} has no send key`), { code: 'ENOKEY' });
    this.secureSent.push({ vtepId, payload: Buffer.from(payload), opts });
  }
  cipherName(): Cipher {
    return this.cipher;
  }
  vtepDel(vtepId: number): void {
    this.vteps.delete(vtepId);
    this.vtepOpts.delete(vtepId);
    this.txKeys.delete(vtepId);
    for (const [i, k] of [...this.rxKeys]) if (k.vtepId === vtepId) this.rxKeys.delete(i);
    for (const set of this.acceptOf.values()) set.delete(vtepId);
    for (const [k, v] of [...this.fdb]) if (v.place.kind === 'vtep' && v.place.vtepId === vtepId) this.fdb.delete(k);
  }
  fdbSet(tenantId: number, mac: string, place: Place): void {
    this.fdb.set(`${tenantId}/${mac}`, { place, lastSeen: this.now });
  }
  fdbDel(tenantId: number, mac: string): void {
    this.fdb.delete(`${tenantId}/${mac}`);
  }
  fdbIdle(): FdbIdle[] {
    return [...this.fdb].map(([k, v]) => {
      const [t, mac] = k.split('/');
      return { tenantId: Number(t), mac, idleMs: this.now - v.lastSeen };
    });
  }
  cacheSize(): number {
    return this.fdb.size;
  }
  cached(tenantId: number, mac: string): Place | undefined {
    return this.fdb.get(`${tenantId}/${mac}`)?.place;
  }

  transmit(tenantId: number, frame: Buffer, ports: number[], vteps: number[]): number {
    let n = 0;
    for (const p of ports)
      if (this.ports.get(p) === tenantId) {
        this.deliver(p, frame);
        n++;
      }
    for (const v of vteps) {
      if (this.encap(tenantId, v, frame)) n++;
    }
    return n;
  }

  stats(): DpStats {
    return { counters: { ...this.drops }, ports: {}, vteps: {} };
  }

  /** A frame arrives from a local port. */
  fromPort(portId: number, frame: Buffer): void {
    const tenantId = this.ports.get(portId);
    if (tenantId === undefined) return this.drop('port_no_tenant');
    this.classify(tenantId, { kind: 'port', portId }, frame);
  }

  /** A VXLAN packet arrives on the underlay from `address`. */
  fromUnderlay(address: string, vni: number, frame: Buffer, port = 4789): void {
    const tenantId = [...this.tenants].find(([, v]) => v === vni)?.[0];
    if (tenantId === undefined) return this.drop('vxlan_unknown_vni');
    const vtepId = this.lookupVtep(address, port);
    const accepted = this.acceptAnyOf.has(tenantId) || (vtepId !== undefined && (this.acceptOf.get(tenantId)?.has(vtepId) ?? false));
    if (!accepted) return this.drop('vtep_not_accepted');
    const place: Place | undefined = vtepId !== undefined ? { kind: 'vtep', vtepId } : undefined;
    this.classify(tenantId, place, frame, address, port);
  }

  private classify(tenantId: number, place: Place | undefined, frame: Buffer, outerAddr = '', outerPort = 4789): void {
    if (frame.length < 14) return this.drop('inner_runt');
    const { dst, src } = frameMacs(frame);
    if (!isLearnableMac(src)) return this.drop('bad_src_mac');
    const ingress: DpEvent['ingress'] = place ?? { kind: 'unknown-vtep', address: outerAddr, port: outerPort };
    const events: DpEvent[] = [];
    const s = this.fdb.get(`${tenantId}/${src}`);
    if (place && s && samePlace(s.place, place)) s.lastSeen = this.now;
    else events.push({ type: 'learn', tenantId, ingress, srcMac: src });
    const d = isMulticastMac(dst) ? undefined : this.fdb.get(`${tenantId}/${dst}`);
    if (!d) {
      events.push({ type: 'miss', tenantId, ingress, srcMac: src, frame: Buffer.from(frame) });
    } else if (d.place.kind === 'port') {
      if (place?.kind === 'port' && place.portId === d.place.portId) this.drop('hairpin');
      else this.deliver(d.place.portId, frame);
    } else if (ingress.kind === 'vtep' && this.relayOf.has(tenantId) && ingress.vtepId !== d.place.vtepId) {
      this.encapChecked(tenantId, d.place.vtepId, frame, ingress, events);
    } else if (ingress.kind === 'vtep' && this.relayOf.has(tenantId)) {
      this.drop('hairpin');
    } else if (ingress.kind !== 'port') {
      this.drop('split_horizon');
    } else {
      this.encapChecked(tenantId, d.place.vtepId, frame, ingress, events);
    }
    if (events.length) this.onEvents?.(events);
  }

  private deliver(portId: number, frame: Buffer): void {
    let q = this.portOut.get(portId);
    if (!q) this.portOut.set(portId, (q = []));
    q.push(Buffer.from(frame));
  }

  /** The fast path's encap: a frame too big for the VTEP's path MTU becomes a too-big event. */
  private encapChecked(tenantId: number, vtepId: number, frame: Buffer, ingress: DpEvent['ingress'], events: DpEvent[]): void {
    const o = this.vtepOpts.get(vtepId);
    const outer = (this.vteps.get(vtepId)?.includes(':') ? 40 : 20) + 8 + 8;
    if (o?.mtu && frame.length + outer > o.mtu) {
      events.push({ type: 'too-big', tenantId, ingress, srcMac: frameMacs(frame).src, frame: Buffer.from(frame.subarray(0, 1294)), outVtep: vtepId });
      this.drop('too_big');
      return;
    }
    this.encap(tenantId, vtepId, frame);
  }

  private encap(tenantId: number, vtepId: number, frame: Buffer): boolean {
    const to = this.vteps.get(vtepId);
    const vni = this.tenants.get(tenantId);
    if (to === undefined || vni === undefined) {
      this.drop('vtep_gone');
      return false;
    }
    const o = this.vtepOpts.get(vtepId);
    this.wire.push({ to, vni, frame: Buffer.from(frame), port: o?.port, fixed: !!o?.fixedSourcePort });
    return true;
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}

function samePlace(a: Place, b: Place): boolean {
  return a.kind === 'port' ? b.kind === 'port' && a.portId === b.portId : b.kind === 'vtep' && a.vtepId === b.vtepId;
}
