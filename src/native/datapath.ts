/**
 * The data path as the Switch sees it: a cache it programs and a source of exception
 * events. Two implementations: NativeDatapath (the C fast path, below) and the in-memory
 * fake the unit tests use (test/support/fake-datapath.ts). The Switch never knows which.
 */
import {
  native,
  type DpCreateOptions,
  type DpHandle,
  type DpProcessInfo,
  type DpStats,
  type FdbKind,
  type PortSetOptions,
  EVENT_HEADER,
  EV_LEARN,
  EV_MISS,
  EV_CONTROL,
  EV_TOO_BIG,
  EV_SECURE,
  EV_KEY_USED,
  EV_ENDPOINT,
  type Cipher,
  type SecureSendOptions,
  type VtepOptions,
  type ControlSendOptions,
  IN_PORT,
  IN_VTEP,
  IN_UNKNOWN_VTEP,
  FDB_PORT,
  FDB_VTEP,
  ENCAP_CODES,
} from './addon.js';
import { macFromBuffer, macToBuffer } from '../util/mac.js';
import type { Encap } from '../core/encap.js';

export type Place = { kind: 'port'; portId: number } | { kind: 'vtep'; vtepId: number };

/** Where an exception frame came from. An unknown VTEP is known by its outer source address only. */
export type Ingress = Place | { kind: 'unknown-vtep'; address: string; port: number; encap?: Encap };

export interface DpEvent {
  /**
   * learn: the source MAC is not in the cache at this place. miss: the frame is punted for
   * flooding. too-big: a frame from `ingress` did not fit the path MTU of VTEP `outVtep`
   * (frame: its first bytes). control: a liveness message (src/overlay/liveness.ts) arrived on the
   * underlay port from `outer` (frame: the UDP payload; tenantId 0). Encrypted tunnels
   * (ingress: the VTEP of the receive key, tenantId 0, outer: the real source): secure: a
   * sealed liveness message (frame: its payload); key-used: the first packet under receive
   * key `keyIndex`; endpoint: an authenticated packet from `outer`, not the VTEP's address.
   */
  type: 'learn' | 'miss' | 'too-big' | 'control' | 'secure' | 'key-used' | 'endpoint';
  tenantId: number;
  ingress: Ingress;
  srcMac: string;
  /** The whole inner frame, for 'miss'; the first bytes for 'too-big'; the payload for 'control'. */
  frame?: Buffer;
  /** too-big: the VTEP whose path MTU the frame exceeded. */
  outVtep?: number;
  /** key-used: our index of the receive key. */
  keyIndex?: number;
  /** The outer source address and UDP port, for events from the underlay. */
  outer?: { address: string; port: number };
  /** What carried the frame, for events from the underlay (absent: vxlan). */
  encap?: Encap;
}

export interface FdbIdle {
  tenantId: number;
  mac: string;
  idleMs: number;
}

export interface Datapath {
  start(onEvents: (events: DpEvent[]) => void): void;
  stop(): void;
  tenantSet(tenantId: number, vni: number): void;
  tenantDel(tenantId: number): void;
  /** Anti-spoofing: accept encapsulated frames of the tenant from this VTEP, or not. */
  tenantAccept(tenantId: number, vtepId: number, accept: boolean): void;
  /** Accept them from any source. */
  tenantAcceptAny(tenantId: number, any: boolean): void;
  /** The encapsulations the tenant takes on receive (new tenant: ['vxlan']). */
  tenantEncaps(tenantId: number, encaps: Encap[]): void;
  /** fd: the port's packet descriptor (a TAP); the fake ignores it. opts.vnetHdr: see PortSetOptions. */
  portSet(portId: number, tenantId: number, fd: number, opts?: PortSetOptions): void;
  portDel(portId: number): void;
  /** A trunk (#15): see NativeAddon.dpTrunkSet / dpVlanPortSet. */
  trunkSet(portId: number, fd: number): void;
  vlanPortSet(portId: number, tenantId: number, trunkId: number, vlan: number): void;
  /** opts: path MTU, fixed source port, identity by address and port (VtepOptions). */
  vtepSet(vtepId: number, address: string, port: number, opts?: VtepOptions): void;
  vtepDel(vtepId: number): void;
  /** Hub relay for a tenant: VTEP -> VTEP forwarding (never back to the ingress VTEP). */
  tenantRelay(tenantId: number, relay: boolean): void;
  tenantInnerVlan(tenantId: number, allow: boolean): void;
  /** Clamp the MSS option of TCP SYNs of the tenant, both directions; 0 = off. */
  tenantMss(tenantId: number, mssV4: number, mssV6: number): void;
  /** Send a liveness message on the underlay (see ControlSendOptions). */
  sendControl(address: string, port: number, payload: Buffer, opts?: ControlSendOptions): void;
  /** Encrypted tunnels: a receive key under our index for a session with the VTEP (dpKeyRxSet). */
  keyRxSet(index: number, vtepId: number, key: Buffer): void;
  keyRxDel(index: number): void;
  /** The VTEP's send key and the peer's index for the session (dpKeyTxSet). */
  keyTxSet(vtepId: number, remoteIndex: number, key: Buffer): void;
  keyTxDel(vtepId: number): void;
  /** Encryption required for the tenant's tunnel traffic, both ways (dpTenantEncrypt). */
  tenantEncrypt(tenantId: number, required: boolean): void;
  /** Seal a liveness message with the VTEP's send key and send it (dpSendSecure). */
  sendSecure(vtepId: number, payload: Buffer, opts?: SecureSendOptions): void;
  /** The cipher this host seals with. */
  cipherName(): Cipher;
  fdbSet(tenantId: number, mac: string, place: Place): void;
  fdbDel(tenantId: number, mac: string): void;
  fdbIdle(): FdbIdle[];
  transmit(tenantId: number, frame: Buffer, ports: number[], vteps: number[]): number;
  stats(): DpStats;
  /**
   * The underlay sockets to hand a takeover's successor ([receive, send...], still owned
   * here); [] when there are none to hand over (several queues, stopped, or the fake).
   */
  underlayFds(): number[];
  /** The data path's own process (DpCreateOptions.process): PID, running or how it ended; null when it runs in this one. */
  process(): DpProcessInfo | null;
}

function placeToNative(place: Place): [FdbKind, number] {
  return place.kind === 'port' ? [FDB_PORT, place.portId] : [FDB_VTEP, place.vtepId];
}

function formatAddress(buf: Buffer, off: number, family: number): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(off + i).toString(16));
  // Canonical compressed form: collapse the longest run of zero groups.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLen).join(':')}`;
}

/** Decode dpFdbIdle's records (layout in src/native/addon.ts). */
export function decodeFdbIdle(buf: Buffer): FdbIdle[] {
  const out: FdbIdle[] = [];
  for (let off = 0; off + 16 <= buf.length; off += 16) {
    out.push({ tenantId: buf.readUInt32LE(off), mac: macFromBuffer(buf, off + 4), idleMs: buf.readUInt32LE(off + 12) });
  }
  return out;
}

/** Decode one Buffer of event records (layout in src/native/addon.ts). */
export function decodeEvents(buf: Buffer): DpEvent[] {
  const events: DpEvent[] = [];
  let off = 0;
  while (off + EVENT_HEADER <= buf.length) {
    const recLen = buf.readUInt32LE(off);
    if (recLen < EVENT_HEADER || off + recLen > buf.length) break;
    const type = buf[off + 4];
    const inKind = buf[off + 5];
    const outerPort = buf.readUInt16LE(off + 6);
    const tenantId = buf.readUInt32LE(off + 8);
    const inId = buf.readUInt32LE(off + 12);
    const family = buf[off + 32];
    const encap = ENCAP_CODES[buf[off + 33]!];
    const srcMac = macFromBuffer(buf, off + 40);
    const frameLen = buf.readUInt32LE(off + 48);
    let ingress: Ingress;
    if (inKind === IN_PORT) ingress = { kind: 'port', portId: inId };
    else if (inKind === IN_VTEP) ingress = { kind: 'vtep', vtepId: inId };
    else if (inKind === IN_UNKNOWN_VTEP)
      ingress = { kind: 'unknown-vtep', address: formatAddress(buf, off + 16, family), port: outerPort, ...(encap && encap !== 'vxlan' ? { encap } : {}) };
    else {
      off += recLen;
      continue;
    }
    const kinds: Record<number, DpEvent['type']> = {
      [EV_LEARN]: 'learn',
      [EV_MISS]: 'miss',
      [EV_CONTROL]: 'control',
      [EV_TOO_BIG]: 'too-big',
      [EV_SECURE]: 'secure',
      [EV_KEY_USED]: 'key-used',
      [EV_ENDPOINT]: 'endpoint',
    };
    const kind = kinds[type];
    if (!kind) {
      off += recLen;
      continue;
    }
    const ev: DpEvent = { type: kind, tenantId, ingress, srcMac };
    if (type !== EV_LEARN && type !== EV_KEY_USED && type !== EV_ENDPOINT)
      ev.frame = Buffer.from(buf.subarray(off + EVENT_HEADER, off + EVENT_HEADER + frameLen));
    if (type === EV_TOO_BIG) ev.outVtep = buf.readUInt32LE(off + 52);
    if (type === EV_KEY_USED) ev.keyIndex = buf.readUInt32LE(off + 52);
    if (family === 4 || family === 6) ev.outer = { address: formatAddress(buf, off + 16, family), port: outerPort };
    if (encap && encap !== 'vxlan') ev.encap = encap;
    events.push(ev);
    off += recLen;
  }
  return events;
}

/** The C fast path. */
export class NativeDatapath implements Datapath {
  private readonly dp: DpHandle;
  private readonly n = native();
  private stopped = false;

  /** Opens (or, with `underlayFds`, adopts) the underlay sockets; see DpCreateOptions for ownership. */
  constructor(opts: DpCreateOptions) {
    this.dp = this.n.dpCreate(opts);
  }

  start(onEvents: (events: DpEvent[]) => void): void {
    this.n.dpStart(this.dp, (records) => onEvents(decodeEvents(records)));
  }
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.n.dpStop(this.dp);
    } catch (e) {
      // A data path process that died has nothing left to stop (its sockets and threads went with it).
      if (this.process()?.alive !== false) throw e;
    }
  }
  process(): DpProcessInfo | null {
    return this.n.dpProcess(this.dp);
  }
  tenantSet(tenantId: number, vni: number): void {
    this.n.dpTenantSet(this.dp, tenantId, vni);
  }
  tenantDel(tenantId: number): void {
    this.n.dpTenantDel(this.dp, tenantId);
  }
  tenantAccept(tenantId: number, vtepId: number, accept: boolean): void {
    this.n.dpTenantAccept(this.dp, tenantId, vtepId, accept);
  }
  tenantAcceptAny(tenantId: number, any: boolean): void {
    this.n.dpTenantAcceptAny(this.dp, tenantId, any);
  }
  tenantEncaps(tenantId: number, encaps: Encap[]): void {
    this.n.dpTenantEncaps(this.dp, tenantId, encaps);
  }
  portSet(portId: number, tenantId: number, fd: number, opts?: PortSetOptions): void {
    this.n.dpPortSet(this.dp, portId, tenantId, fd, opts);
  }
  underlayFds(): number[] {
    return this.n.dpUnderlayFds(this.dp);
  }
  portDel(portId: number): void {
    this.n.dpPortDel(this.dp, portId);
  }
  trunkSet(portId: number, fd: number): void {
    this.n.dpTrunkSet(this.dp, portId, fd);
  }
  vlanPortSet(portId: number, tenantId: number, trunkId: number, vlan: number): void {
    this.n.dpVlanPortSet(this.dp, portId, tenantId, trunkId, vlan);
  }
  vtepSet(vtepId: number, address: string, port: number, opts?: VtepOptions): void {
    if (opts) this.n.dpVtepSet(this.dp, vtepId, address, port, opts);
    else this.n.dpVtepSet(this.dp, vtepId, address, port);
  }
  tenantRelay(tenantId: number, relay: boolean): void {
    this.n.dpTenantRelay(this.dp, tenantId, relay);
  }
  tenantInnerVlan(tenantId: number, allow: boolean): void {
    this.n.dpTenantInnerVlan(this.dp, tenantId, allow);
  }
  tenantMss(tenantId: number, mssV4: number, mssV6: number): void {
    this.n.dpTenantMss(this.dp, tenantId, mssV4, mssV6);
  }
  sendControl(address: string, port: number, payload: Buffer, opts?: ControlSendOptions): void {
    this.n.dpSendControl(this.dp, address, port, payload, opts ?? {});
  }
  vtepDel(vtepId: number): void {
    this.n.dpVtepDel(this.dp, vtepId);
  }
  keyRxSet(index: number, vtepId: number, key: Buffer): void {
    this.n.dpKeyRxSet(this.dp, index, vtepId, key);
  }
  keyRxDel(index: number): void {
    this.n.dpKeyRxDel(this.dp, index);
  }
  keyTxSet(vtepId: number, remoteIndex: number, key: Buffer): void {
    this.n.dpKeyTxSet(this.dp, vtepId, remoteIndex, key);
  }
  keyTxDel(vtepId: number): void {
    this.n.dpKeyTxDel(this.dp, vtepId);
  }
  tenantEncrypt(tenantId: number, required: boolean): void {
    this.n.dpTenantEncrypt(this.dp, tenantId, required);
  }
  sendSecure(vtepId: number, payload: Buffer, opts?: SecureSendOptions): void {
    this.n.dpSendSecure(this.dp, vtepId, payload, opts ?? {});
  }
  cipherName(): Cipher {
    return this.n.dpCipher(this.dp);
  }
  fdbSet(tenantId: number, mac: string, place: Place): void {
    const [kind, id] = placeToNative(place);
    this.n.dpFdbSet(this.dp, tenantId, macToBuffer(mac), kind, id);
  }
  fdbDel(tenantId: number, mac: string): void {
    this.n.dpFdbDel(this.dp, tenantId, macToBuffer(mac));
  }
  fdbIdle(): FdbIdle[] {
    return decodeFdbIdle(this.n.dpFdbIdle(this.dp));
  }
  transmit(tenantId: number, frame: Buffer, ports: number[], vteps: number[]): number {
    return this.n.dpTransmit(this.dp, tenantId, frame, Uint32Array.from(ports), Uint32Array.from(vteps));
  }
  stats(): DpStats {
    return this.n.dpStats(this.dp);
  }
}
