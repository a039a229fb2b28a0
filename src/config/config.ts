/**
 * vtepd configuration: parse YAML, validate the whole of it, normalize.
 *
 * Config is passive data. `parseConfig` returns either a fully normalized `Config` (every
 * default filled in) or EVERY error found, each as `path: message`, e.g.
 * `tenants[0].vni: must be an integer 1..16777215`. Nothing is applied here.
 *
 * The YAML reference, every key with its range and default, is docs/configuration.md
 * (test/unit/config-doc.test.ts holds it to the schema); editors take
 * contrib/vtepd.schema.json (`vtepd schema`, src/config/json-schema.ts).
 *
 * This file is what a config is (its types); src/config/schema.ts checks one, and
 * src/config/load.ts reads one from YAML.
 */
import type { Encap, Family } from '../core/encap.js';

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface UnderlayAddress {
  address: string;
  family: Family;
}
export interface UnderlayConfig {
  /** This host's (first) underlay address, normalized. */
  local: string;
  /** Address family of `local`. */
  family: Family;
  /** Every underlay address, in config order: one, or one IPv4 and one IPv6 (dual stack). */
  locals: UnderlayAddress[];
  port: number;
  mtu: number;
  sourcePorts: number;
  /** Fast-path thread pairs, receive sockets and TAP queues (1..8). */
  queues: number;
  /** CPUs to pin the fast path to: queue q's encap and decap threads on cpus[q % length]. */
  cpus?: number[];
}
export type PortKind = 'tap' | 'attach';
export interface PortAddress {
  address: string;
  prefixLength: number;
  family: Family;
}
export interface PortConfig {
  /**
   * The port's interface and its name everywhere (FDB, status, capture, reload): the TAP's
   * name (kind tap), or the name of the interface it attaches (kind attach).
   */
  tap: string;
  /** tap: a TAP vtepd creates and owns; attach: an interface that exists, read and written with AF_PACKET. */
  kind: PortKind;
  netns: string | null;
  address: PortAddress | null;
  /** Lower-case colon form; null: the kernel picks one. */
  mac: string | null;
  /** Resolved: the configured value, or underlay.mtu minus the encapsulation overhead. */
  mtu: number;
  /**
   * A TAP whose frames carry this 802.1Q VLAN ID (1..4094) on the wire (the VM tags them):
   * the tag is taken off on the way in and put on on the way out; null: untagged. (An
   * attached port with `vlan:` is normalized into `Config.trunks`, and has null here.)
   */
  vlan?: number | null;
}
/**
 * A trunk (#15): one attached interface carrying several tenants, each by its 802.1Q VLAN ID.
 * Also what `{ attach: eth1, vlan: 100 }` in a tenant's ports becomes (merged with any other
 * entry of the same interface and netns).
 */
export interface TrunkConfig {
  /** The interface (it exists; attached with AF_PACKET like `{ attach }`). */
  attach: string;
  netns: string | null;
  /** Fixed VLAN IDs (1..4094), each to one tenant, in ascending order (tagged attached ports merged in). */
  vlans: { vlan: number; tenant: string }[];
  /** The tenant that takes untagged (and priority-tagged, VID 0) frames; null: dropped as untagged_no_native. */
  native: string | null;
  /** VLAN IDs handed out to `tenants`, lowest free first, kept across restarts; null: no pool. */
  pool: { first: number; last: number } | null;
  /** Tenants given the trunk without a VLAN: each gets an ID from `pool`. */
  tenants: string[];
}
export interface StaticFdbEntry {
  mac: string;
  vtep: string;
}
export interface TenantConfig {
  name: string;
  /** The tenant's id on the wire: VXLAN VNI, GRE-TAP key, NVGRE VSID. */
  vni: number;
  /** The tenant's encapsulation (default vxlan); `vtepEncap` has the one per configured VTEP. */
  encap: Encap;
  ports: PortConfig[];
  /** VTEP addresses; the encapsulation toward each is `vtepEncap[address]`. */
  flood: string[];
  fdb: StaticFdbEntry[];
  /** The encapsulation toward every VTEP of `flood` and `fdb`: the entry's own, else `encap`. */
  vtepEncap: Record<string, Encap>;
  learning: boolean;
  /** Learn MACs behind VTEPs from their frames (default: true; false with a directory). */
  learnFromUnderlay: boolean;
  ageing: number;
  maxMacs: number;
  /** Anti-spoofing: take encapsulated frames only from known VTEPs (default), or from any. */
  acceptFrom: 'known' | 'any';
  /** Flooded frames per second (token bucket); 'off' for none. */
  stormControl: 'off' | { pps: number; burst: number };
  /** Pin a MAC moving more than `moves` times in `window` s for `hold` s; 'off' for none. */
  moveDampening: 'off' | { moves: number; window: number; hold: number };
  /** TCP MSS clamping on SYNs crossing the tunnel: off, auto (from the path MTU), or an MSS. */
  mssClamp: 'off' | 'auto' | number;
  /** Frames from VTEPs that carry an 802.1Q/802.1ad tag inside: dropped (inner_vlan, the default) or let through. */
  innerVlan: 'drop' | 'allow';
  /** required: only authenticated, encrypted frames (the default with an identity); off: plain VXLAN/GRE. */
  encryption: 'required' | 'off';
  /** The public key of every VTEP of `flood` that has one (base64). */
  vtepKeys: Record<string, string>;
}
/** What a node is in the overlay (see the YAML reference). */
export const ROLES = ['mesh', 'hub', 'spoke'] as const;
export type Role = (typeof ROLES)[number];
export interface HubConfig {
  address: string;
  family: Family;
  /** UDP port of the hub (default underlay.port). */
  port: number;
  /** Configured path MTU toward it (largest outer IP packet); null: discovered or underlay.mtu. */
  mtu: number | null;
  /** The hub's public key (base64): the spoke talks only to a hub that proves it; null without an identity. */
  publicKey: string | null;
}
/** A spoke a hub admits (a hub with an identity): by its key, into these VNIs only. */
export interface SpokeConfig {
  publicKey: string;
  vnis: number[];
  /** For logs and status; default spokeN. */
  name: string;
}
export interface IdentityConfig {
  /** The node's X25519 private key (vtepd genkey), in a file only its owner can read. */
  privateKeyFile: string;
  /** Seconds between session key rotations (default 120). */
  rekeyInterval: number;
}
export interface MetricsConfig {
  /** As written (normalized): "127.0.0.1:9477" or "[::1]:9477". */
  listen: string;
  host: string;
  port: number;
}
export interface EvpnConfig {
  /** This host's AS; every neighbor is in it (iBGP). */
  asn: number;
  /** `password`: the TCP MD5 key of the session (RFC 2385, gobgpd's auth-password); absent: none. */
  neighbors: { address: string; password?: string }[];
  /** The BGP router id (IPv4), also the RD's admin field; default: the IPv4 underlay.local. */
  routerId: string;
  /** A running gobgpd's gRPC API (unix:///PATH or HOST:PORT); null: vtepd starts and supervises its own. */
  gobgp: { api: string | null };
  /** Seconds a lost session's (or a restarted gobgpd's) routes are kept, stale, before they are swept; 0: withdrawn at once. */
  gracefulRestart: number;
}
/** Where the VNIs' members come from instead of (or besides) the flood lists (src/directory/). */
export interface DirectoryConfig {
  /** One of etcd and evpn is set, the other null. */
  etcd: {
    /** Client URLs, http(s)://HOST:PORT, without a trailing '/'. */
    endpoints: string[];
    /** Every key vtepd writes or reads starts with it (default /vtepd/v1). */
    prefix: string;
    /** Seconds: the TTL of this host's lease; a dead host leaves the others' flood lists after it (default 10). */
    leaseTtl: number;
  } | null;
  /** BGP EVPN (#17, docs/evpn.md): members and MACs from type-3 and type-2 routes, through gobgpd. */
  evpn: EvpnConfig | null;
  /** Duplicate detection: a MAC that changes owner more than `moves` times within `window` s is frozen for `hold` s. */
  freeze: { moves: number; window: number; hold: number };
}
export interface Config {
  log: { level: LogLevel };
  /** Switch-wide: FDB entries over all tenants; learning beyond it is refused and counted. */
  limits: { maxMacs: number };
  control: { socket: string };
  /** null: no metrics endpoint. */
  metrics: MetricsConfig | null;
  underlay: UnderlayConfig;
  tenants: TenantConfig[];
  /** VLAN trunks toward switches and bare-metal hosts (#15); [] for none. */
  trunks: TrunkConfig[];
  /** mesh (default), hub or spoke. */
  role: Role;
  /** A spoke's hubs, first preferred; [] otherwise. */
  hubs: HubConfig[];
  /** A spoke behind NAT: fixed source port, keepalives. */
  nat: boolean;
  /** Seconds: the longest a NAT spoke stays silent toward a hub. */
  keepalive: number;
  /** Seconds without a reply after which a hub counts as dead. */
  deadInterval: number;
  /** Discover path MTUs toward hubs and spokes with DF probes. */
  pmtuDiscovery: boolean;
  /** The node's key pair: authenticated handshakes and encrypted tunnels; null: none (plain). */
  identity: IdentityConfig | null;
  /** A hub's admitted spokes (with an identity); [] otherwise. */
  spokes: SpokeConfig[];
  /** null: static flood lists only (no directory). */
  directory: DirectoryConfig | null;
}
export interface ConfigError {
  path: string;
  message: string;
  /** Where in the YAML file (1-based), when it was read from one. */
  line?: number;
  col?: number;
}
/** A valid config may come with warnings (e.g. a TAP MTU above what the tunnel carries). */
export type ConfigResult =
  | {
      ok: true;
      config: Config;
      warnings?: ConfigError[];
      /** Read from YAML: the line and column of a config path (to place what is found later, e.g. `vtepd check`'s host warnings). */
      locate?: (path: readonly PropertyKey[]) => { line: number; col: number } | undefined;
    }
  | { ok: false; errors: ConfigError[] };

/** Where the control API listens unless the config says otherwise. */
export const DEFAULT_CONTROL_SOCKET = '/run/vtepd/vtepd.sock';

export function formatConfigError(e: ConfigError): string {
  return `${e.path}: ${e.message}`;
}

/**
 * As the CLI prints it: `file:line:col: path: message` (the form editors jump to; `(root)`
 * left out), e.g. `vtepd.yaml:5:10: tenants[0].vni: ...`, with `label` after the place:
 * `vtepd.yaml:7:16: warning: tenants[0].ports[0].mtu: ...`.
 */
export function formatConfigErrorIn(file: string, e: ConfigError, label?: string): string {
  const where = e.line === undefined ? file : `${file}:${e.line}:${e.col}`;
  return [where, label, e.path === '(root)' ? undefined : e.path, e.message].filter((x) => x !== undefined).join(': ');
}

// ---------------------------------------------------------------------------------------
// Derived values
// ---------------------------------------------------------------------------------------

/** A port's kind; a config handed over by a daemon older than attached ports has TAPs only. */
export function portKind(p: Partial<Pick<PortConfig, 'kind'>>): PortKind {
  return p.kind ?? 'tap';
}

/** Whether any tenant reaches any VTEP over GRE-TAP or NVGRE (the data path then opens a raw GRE socket). */
export function usesGre(c: Pick<Config, 'tenants'>): boolean {
  return c.tenants.some((t) => t.encap !== 'vxlan' || Object.values(t.vtepEncap).some((e) => e !== 'vxlan'));
}
