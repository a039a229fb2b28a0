/**
 * A small typed client of gobgpd's gRPC API (GoBGP v3, the `.proto` files vendored in
 * proto/gobgp/ and pinned to Debian's gobgpd 3.10.0), for what vtepd needs of BGP EVPN: the
 * global config, peers and their session state, and l2vpn-evpn routes of type 2 (MAC/IP
 * advertisement) and type 3 (inclusive multicast: VNI membership), added, withdrawn, listed
 * and watched as plain objects.
 *
 * GoBGP v3 wraps NLRIs, path attributes, RDs and extended communities in
 * google.protobuf.Any; @grpc/proto-loader's `json` option packs and unpacks them as objects
 * with an `@type` field ("type.googleapis.com/apipb.EVPNMACIPAdvertisementRoute").
 * Encodings are FRR's (src/evpn/codec.ts): RD router-id:N, RT ASN:VNI, the encapsulation
 * community tunnel type 8 (VXLAN), Label1 and the PMSI label the raw 24-bit VNI.
 */
import {
  credentials,
  type ClientReadableStream,
  type ClientWritableStream,
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';
import { ipv4Bytes, parseRd, parseRt, PMSI_INGRESS_REPLICATION, type Rd, rdText, rtText, TUNNEL_VXLAN } from './codec.js';

/** Where the vendored protos live, and the gobgpd version they are pinned to (proto/gobgp/VERSION). */
export const PROTO_DIR = join(packageRoot, 'proto', 'gobgp');

const T = 'type.googleapis.com/apipb.';
const EVPN_FAMILY = { afi: 'AFI_L2VPN', safi: 'SAFI_EVPN' } as const;
/** Type 0 ESI: single-homed (RFC 7432 §5); GoBGP wants the 9 value bytes after the type. */
const ESI0 = { type: 0, value: Buffer.alloc(9) };

// biome-ignore lint/suspicious/noExplicitAny: a decoded protobuf message (proto-loader objects are untyped)
type Msg = Record<string, any>;
type Unary = (req: Msg, cb: (err: Error | null, res: Msg) => void) => void;
type Stream = (req: Msg) => ClientReadableStream<Msg>;
type Upload = (opts: object, cb: (err: Error | null) => void) => ClientWritableStream<Msg>;

/** Type-2 routes sent together in one AddPathStream request (a burst: one HTTP/2 stream, not one call each). */
export const PATH_BATCH = 64;
/** gRPC codes of a call gobgpd did not answer (cancelled, deadline exceeded, unavailable): no use sending it again path by path. */
const UNANSWERED = [1, 4, 14];

interface Queued {
  path: Msg;
  /** The same route alone (AddPath or DeletePath): when the batch fails, each of its routes is retried so, to know which one gobgpd refuses. */
  alone: () => Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** A type-2 route to advertise: this VTEP has `mac` (and `ip`) in `vni`. */
export interface MacRouteSpec {
  rd: string;
  rts: string[];
  vni: number;
  mac: string;
  ip?: string;
  /** The VTEP's underlay address. */
  nexthop: string;
  /** MAC Mobility sequence (RFC 7432 §15); absent: no mobility community (a first advertisement). */
  seq?: number;
  sticky?: boolean;
}

/** A type-3 route to advertise: this VTEP is a member of `vni` (head-end replication to `nexthop`). */
export interface ImetRouteSpec {
  rd: string;
  rts: string[];
  vni: number;
  /** The VTEP's underlay address: next hop, originator IP and PMSI tunnel id. */
  nexthop: string;
}

/** A received (or local) l2vpn-evpn route, decoded. */
export interface EvpnRoute {
  type: 2 | 3;
  rd: string;
  vni: number;
  /** Type 2: the MAC (lower case); type 3: null. */
  mac: string | null;
  /** Type 2: the IP, null for a MAC-only route; type 3: the originator's IP. */
  ip: string | null;
  nexthop: string;
  /** MAC Mobility sequence; null without the community. */
  seq: number | null;
  sticky: boolean;
  rts: string[];
  /** PMSI tunnel type (type 3: 6, ingress replication) and tunnel encapsulation (8: VXLAN), null when absent. */
  pmsi: number | null;
  encap: number | null;
  withdrawal: boolean;
  /** The peer it came from; '' for a route of this gobgpd. */
  neighbor: string;
}

export type SessionState = 'unknown' | 'idle' | 'connect' | 'active' | 'opensent' | 'openconfirm' | 'established';

export interface PeerInfo {
  address: string;
  asn: number;
  state: SessionState;
  /** The peer's BGP identifier once OPEN was received. */
  routerId: string;
}

export interface GlobalConfig {
  asn: number;
  routerId: string;
  /** BGP TCP port (179); -1: do not listen (outbound sessions only). */
  listenPort: number;
  listenAddresses?: string[];
}

export interface PeerSpec {
  address: string;
  asn: number;
  /** Seconds between connection attempts (GoBGP's default is 120). */
  connectRetry?: number;
  /** Hold time and keepalive interval, seconds (default GoBGP's: 90 and 30). */
  holdTime?: number;
  keepalive?: number;
  /** TCP MD5 signature key (RFC 2385; GoBGP's auth-password): segments without it are dropped by the kernel. */
  password?: string;
}

/** A peer with its session's figures (ListPeer with the advertised counts), for the operator's view. */
export interface NeighborInfo extends PeerInfo {
  /** When the session came up (established) or last went down, ISO 8601; null: never. */
  uptime: string | null;
  downtime: string | null;
  /** l2vpn-evpn routes received from it, accepted of those, and advertised to it. */
  received: number;
  accepted: number;
  advertised: number;
}

let api: ServiceClientConstructor | null = null;

/** The GobgpApi service from the vendored protos (loaded once). */
function service(): ServiceClientConstructor {
  if (api) return api;
  const def = loadSync(['gobgp.proto', 'attribute.proto', 'capability.proto'], {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
    json: true,
  });
  api = (loadPackageDefinition(def).apipb as GrpcObject).GobgpApi as ServiceClientConstructor;
  return api;
}

const any = (type: string, body: Msg): Msg => ({ '@type': T + type, ...body });
const typeOf = (m: Msg | null | undefined): string => (typeof m?.['@type'] === 'string' ? m['@type'].slice(m['@type'].lastIndexOf('.') + 1) : '');

function rdAny(text: string): Msg {
  const rd = parseRd(text);
  return rd.kind === 'ip'
    ? any('RouteDistinguisherIPAddress', { admin: rd.admin, assigned: rd.assigned })
    : any('RouteDistinguisherTwoOctetASN', { admin: rd.admin, assigned: rd.assigned });
}

function rdFromAny(m: Msg): string {
  const kind: Rd['kind'] = typeOf(m) === 'RouteDistinguisherIPAddress' ? 'ip' : 'asn';
  return rdText({ kind, admin: m.admin, assigned: m.assigned } as Rd);
}

function rtAny(text: string): Msg {
  const rt = parseRt(text);
  const type = rt.asn > 0xffff ? 'FourOctetAsSpecificExtended' : 'TwoOctetAsSpecificExtended';
  return any(type, { isTransitive: true, subType: 2, asn: rt.asn, localAdmin: rt.value });
}

/** The attributes every route of ours carries: origin IGP, next hop, RTs, VXLAN encapsulation. */
function baseAttrs(nexthop: string, rts: string[], extra: Msg[]): Msg[] {
  const communities = [...rts.map(rtAny), any('EncapExtended', { tunnelType: TUNNEL_VXLAN }), ...extra];
  return [any('OriginAttribute', { origin: 0 }), any('NextHopAttribute', { nextHop: nexthop }), any('ExtendedCommunitiesAttribute', { communities })];
}

/** The API path of a type-2 route. */
export function macPath(r: MacRouteSpec): Msg {
  const nlri = any('EVPNMACIPAdvertisementRoute', {
    rd: rdAny(r.rd),
    esi: ESI0,
    ethernetTag: 0,
    macAddress: r.mac.toLowerCase(),
    ipAddress: r.ip ?? '',
    labels: [r.vni],
  });
  const mobility = r.seq === undefined ? [] : [any('MacMobilityExtended', { isSticky: r.sticky ?? false, sequenceNum: r.seq })];
  return { family: EVPN_FAMILY, nlri, pattrs: baseAttrs(r.nexthop, r.rts, mobility) };
}

/** The API path of a type-3 route. */
export function imetPath(r: ImetRouteSpec): Msg {
  const nlri = any('EVPNInclusiveMulticastEthernetTagRoute', { rd: rdAny(r.rd), ethernetTag: 0, ipAddress: r.nexthop });
  const pmsi = any('PmsiTunnelAttribute', { flags: 0, type: PMSI_INGRESS_REPLICATION, label: r.vni, id: ipv4Bytes(r.nexthop) });
  return { family: EVPN_FAMILY, nlri, pattrs: [...baseAttrs(r.nexthop, r.rts, []), pmsi] };
}

/** "<nil>", "" and unspecified addresses mean no IP (GoBGP prints a MAC-only route's IP so). */
function optionalIp(s: string): string | null {
  return s === '' || s === '<nil>' || s === '0.0.0.0' || s === '::' ? null : s;
}

interface Attrs {
  nexthop: string;
  rts: string[];
  seq: number | null;
  sticky: boolean;
  encap: number | null;
  pmsi: Msg | null;
}

function decodeCommunity(c: Msg, a: Attrs): void {
  const t = typeOf(c);
  if ((t === 'TwoOctetAsSpecificExtended' || t === 'FourOctetAsSpecificExtended') && c.subType === 2) a.rts.push(rtText({ asn: c.asn, value: c.localAdmin }));
  else if (t === 'EncapExtended') a.encap = c.tunnelType;
  else if (t === 'MacMobilityExtended') [a.seq, a.sticky] = [c.sequenceNum, c.isSticky];
}

function decodeAttrs(pattrs: Msg[]): Attrs {
  const a: Attrs = { nexthop: '', rts: [], seq: null, sticky: false, encap: null, pmsi: null };
  for (const p of pattrs) {
    const t = typeOf(p);
    if (t === 'NextHopAttribute') a.nexthop = p.nextHop;
    else if (t === 'MpReachNLRIAttribute') a.nexthop = p.nextHops?.[0] ?? a.nexthop;
    else if (t === 'ExtendedCommunitiesAttribute') for (const c of p.communities ?? []) decodeCommunity(c, a);
    else if (t === 'PmsiTunnelAttribute') a.pmsi = p;
  }
  return a;
}

/** A path of the API as an EvpnRoute; null for other families and other route types. */
export function decodePath(p: Msg): EvpnRoute | null {
  const t = typeOf(p.nlri);
  if (t !== 'EVPNMACIPAdvertisementRoute' && t !== 'EVPNInclusiveMulticastEthernetTagRoute') return null;
  const a = decodeAttrs(p.pattrs ?? []);
  const common = { rd: rdFromAny(p.nlri.rd), nexthop: a.nexthop, seq: a.seq, sticky: a.sticky, rts: a.rts, encap: a.encap };
  const tail = { withdrawal: Boolean(p.isWithdraw), neighbor: optionalIp(p.neighborIp ?? '') ?? '' };
  if (t === 'EVPNMACIPAdvertisementRoute') {
    const n = p.nlri;
    return { type: 2, ...common, vni: n.labels?.[0] ?? 0, mac: n.macAddress.toLowerCase(), ip: optionalIp(n.ipAddress), pmsi: null, ...tail };
  }
  const vni = a.pmsi ? a.pmsi.label : p.nlri.ethernetTag;
  return { type: 3, ...common, vni, mac: null, ip: optionalIp(p.nlri.ipAddress), pmsi: a.pmsi ? a.pmsi.type : null, ...tail };
}

const STATES: SessionState[] = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'];

function decodePeer(p: Msg): PeerInfo {
  const s = p.state ?? {};
  const state = String(s.sessionState ?? 'UNKNOWN').toLowerCase() as SessionState;
  return {
    address: s.neighborAddress || p.conf?.neighborAddress || '',
    asn: s.peerAsn || p.conf?.peerAsn || 0,
    state: STATES.includes(state) ? state : 'unknown',
    routerId: s.routerId ?? '',
  };
}

/** A google.protobuf.Timestamp (seconds since 1970) as ISO 8601; null when unset (0). */
function timestamp(t: Msg | string | null | undefined): string | null {
  if (typeof t === 'string') return t && !t.startsWith('1970-') ? new Date(t).toISOString() : null;
  const s = Number(t?.seconds ?? 0);
  return s > 0 ? new Date(s * 1000).toISOString() : null;
}

function decodeNeighbor(p: Msg): NeighborInfo {
  const evpn = (p.afiSafis ?? []).find((a: Msg) => a.state?.family?.afi === EVPN_FAMILY.afi && a.state?.family?.safi === EVPN_FAMILY.safi)?.state ?? {};
  const t = p.timers?.state ?? {};
  return {
    ...decodePeer(p),
    uptime: timestamp(t.uptime),
    downtime: timestamp(t.downtime),
    received: Number(evpn.received ?? 0),
    accepted: Number(evpn.accepted ?? 0),
    advertised: Number(evpn.advertised ?? 0),
  };
}

/** Events of `watch`: routes (adds and withdrawals) and peer state changes. */
export interface WatchHandlers {
  route?: (r: EvpnRoute) => void;
  peer?: (p: PeerInfo) => void;
  /** The stream ended or failed (gobgpd gone): watch again once it is back. */
  end?: (err: Error | null) => void;
}

export class GobgpClient {
  private readonly stub: Record<string, Unary | Stream | Upload> & { close(): void };
  /** Type-2 paths waiting for this tick's AddPathStream request. */
  private batch: Queued[] = [];

  /** `target`: "unix:///run/vtepd/gobgpd.sock" or "127.0.0.1:50051". */
  constructor(readonly target: string) {
    const Api = service();
    // Reconnect soon after gobgpd restarts (grpc-js waits 1 s, then longer, by default).
    const opts = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 2000 };
    this.stub = new Api(target, credentials.createInsecure(), opts) as unknown as GobgpClient['stub'];
  }

  private call(method: string, req: Msg, timeoutMs = 5000): Promise<Msg> {
    const fn = this.stub[method] as (req: Msg, opts: object, cb: (err: Error | null, res: Msg) => void) => void;
    return new Promise((resolve, reject) => {
      fn.call(this.stub, req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(gobgpError(method, err)) : resolve(res)));
    });
  }

  private collect(method: string, req: Msg, timeoutMs = 10_000): Promise<Msg[]> {
    const fn = this.stub[method] as (req: Msg, opts: object) => ClientReadableStream<Msg>;
    const s = fn.call(this.stub, req, { deadline: Date.now() + timeoutMs });
    const out: Msg[] = [];
    return new Promise((resolve, reject) => {
      s.on('data', (m: Msg) => out.push(m));
      s.on('error', (err: Error) => reject(gobgpError(method, err)));
      s.on('end', () => resolve(out));
    });
  }

  async startBgp(g: GlobalConfig): Promise<void> {
    await this.call('startBgp', { global: { asn: g.asn, routerId: g.routerId, listenPort: g.listenPort, listenAddresses: g.listenAddresses ?? [] } });
  }

  /** The running global config; asn 0 until it is configured. */
  async getBgp(timeoutMs?: number): Promise<GlobalConfig> {
    const g = (await this.call('getBgp', {}, timeoutMs)).global ?? {};
    return { asn: g.asn ?? 0, routerId: g.routerId ?? '', listenPort: g.listenPort ?? 0, listenAddresses: g.listenAddresses ?? [] };
  }

  /** A neighbor with the l2vpn-evpn family (iBGP when `asn` is ours). */
  async addPeer(p: PeerSpec): Promise<void> {
    const peer = {
      conf: { neighborAddress: p.address, peerAsn: p.asn, authPassword: p.password ?? '' },
      timers: {
        config: {
          connectRetry: p.connectRetry ?? 120,
          ...(p.holdTime ? { holdTime: p.holdTime, keepaliveInterval: p.keepalive ?? Math.floor(p.holdTime / 3) } : {}),
        },
      },
      afiSafis: [{ config: { family: EVPN_FAMILY, enabled: true } }],
    };
    await this.call('addPeer', { peer });
  }

  async listPeers(address = ''): Promise<PeerInfo[]> {
    return (await this.collect('listPeer', { address })).map((r) => decodePeer(r.peer ?? {}));
  }

  /** The peers with their session times and l2vpn-evpn route counts. */
  async listNeighbors(): Promise<NeighborInfo[]> {
    return (await this.collect('listPeer', { address: '', enableAdvertised: true })).map((r) => decodeNeighbor(r.peer ?? {}));
  }

  /** Advertised in a batch with the type-2 calls made in the same tick (see `queuePath`). */
  async addMacRoute(r: MacRouteSpec): Promise<void> {
    const path = macPath(r);
    return this.queuePath(path, async () => void (await this.call('addPath', { tableType: 'GLOBAL', path })));
  }

  async deleteMacRoute(r: MacRouteSpec): Promise<void> {
    const path = { ...macPath(r), isWithdraw: true };
    return this.queuePath(path, async () => void (await this.call('deletePath', { tableType: 'GLOBAL', family: EVPN_FAMILY, path })));
  }

  /**
   * Type-2 adds and withdrawals made in the same tick go to gobgpd together, PATH_BATCH paths
   * to an AddPathStream call (gobgpd takes a withdrawal there too), in the order they were
   * made. The caller keeps calls for the same route apart (src/evpn/pipeline.ts). gobgpd
   * refuses a whole request for one bad path: then each path is sent alone, one after the
   * other in order, and each call settles with its own answer (a gobgpd that did not answer
   * fails them all at once).
   */
  private queuePath(path: Msg, alone: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.batch.push({ path, alone, resolve, reject });
      if (this.batch.length >= PATH_BATCH) this.flushPaths();
      else if (this.batch.length === 1) setImmediate(() => this.flushPaths());
    });
  }

  private flushPaths(): void {
    const b = this.batch.splice(0);
    if (!b.length) return;
    if (b.length === 1) {
      b[0]!.alone().then(b[0]!.resolve, b[0]!.reject);
      return;
    }
    this.addPathStream(b.map((q) => q.path)).then(
      () => {
        for (const q of b) q.resolve();
      },
      async (e: Error & { grpcCode?: number }) => {
        if (e.grpcCode !== undefined && UNANSWERED.includes(e.grpcCode)) for (const q of b) q.reject(e);
        else for (const q of b) await q.alone().then(q.resolve, q.reject);
      },
    );
  }

  private addPathStream(paths: Msg[], timeoutMs = 10_000): Promise<void> {
    const fn = this.stub.addPathStream as unknown as Upload;
    return new Promise((resolve, reject) => {
      const s = fn.call(this.stub, { deadline: Date.now() + timeoutMs }, (err) => (err ? reject(gobgpError('addPathStream', err)) : resolve()));
      s.write({ tableType: 'GLOBAL', paths });
      s.end();
    });
  }

  async addImetRoute(r: ImetRouteSpec): Promise<void> {
    await this.call('addPath', { tableType: 'GLOBAL', path: imetPath(r) });
  }

  async deleteImetRoute(r: ImetRouteSpec): Promise<void> {
    await this.call('deletePath', { tableType: 'GLOBAL', family: EVPN_FAMILY, path: { ...imetPath(r), isWithdraw: true } });
  }

  /**
   * The l2vpn-evpn routes of a table: 'global' (the best paths, local ones included) or
   * 'adj-in' of `neighbor` (what it sent). `binary`: also the attributes' wire bytes.
   */
  async listEvpn(table: 'global' | 'adj-in' = 'global', neighbor = ''): Promise<EvpnRoute[]> {
    return (await this.listEvpnRaw(table, neighbor, false)).map(decodePath).filter((r): r is EvpnRoute => r !== null);
  }

  /** ListPath's paths as GoBGP sends them; with `binary`, `pattrsBinary` holds each attribute's bytes (flags, type, length, value). */
  async listEvpnRaw(table: 'global' | 'adj-in', neighbor: string, binary: boolean): Promise<Msg[]> {
    const req = { tableType: table === 'global' ? 'GLOBAL' : 'ADJ_IN', name: neighbor, family: EVPN_FAMILY, enableAttributeBinary: binary };
    return (await this.collect('listPath', req)).flatMap((r) => r.destination?.paths ?? []);
  }

  /**
   * Watch best-path changes of l2vpn-evpn (the current routes first) and peer state changes.
   * Returns a function that cancels the watch.
   */
  watch(h: WatchHandlers): () => void {
    const fn = this.stub.watchEvent as Stream;
    const s = fn.call(this.stub, { peer: {}, table: { filters: [{ type: 'BEST', init: true }] } });
    s.on('data', (ev: Msg) => {
      if (ev.peer) h.peer?.(decodePeer(ev.peer.peer ?? {}));
      for (const p of ev.table?.paths ?? []) {
        const r = decodePath(p);
        if (r) h.route?.(r);
      }
    });
    let ended = false;
    const end = (err: Error | null) => {
      if (!ended) h.end?.(err);
      ended = true;
    };
    s.on('error', (err: Error & { code?: number }) => end(err.code === 1 ? null : gobgpError('watchEvent', err)));
    s.on('end', () => end(null));
    return () => {
      ended = true;
      s.cancel();
    };
  }

  close(): void {
    this.stub.close();
  }
}

/** A gRPC failure as an Error that names the call and keeps the gRPC status code. */
function gobgpError(method: string, err: Error & { code?: number; details?: string }): Error & { code: string } {
  const e = new Error(`gobgpd ${method}: ${err.details || err.message}`) as Error & { code: string; grpcCode?: number };
  e.code = 'EGOBGP';
  e.grpcCode = err.code;
  return e;
}
