/**
 * vtepd configuration: parse YAML, validate the whole of it, normalize.
 *
 * Config is passive data. `parseConfig` returns either a fully normalized `Config` (every
 * default filled in) or EVERY error found, each as `path: message`, e.g.
 * `tenants[0].vni: must be an integer 1..16777215`. Nothing is applied here.
 *
 * ## YAML reference
 *
 * ```yaml
 * log:                       # optional
 *   level: warn              # fatal|error|warn|info|debug|trace|silent; default warn
 * control:                   # optional
 *   socket: /run/vtepd/vtepd.sock   # the control API's Unix socket (CLI, reload, restart);
 *                            #   an absolute path of at most 107 bytes; default as shown
 * limits:                    # optional
 *   maxMacs: 131072          # FDB entries over all tenants (with maxMacs per tenant: bounded
 *                            #   memory whatever the underlay sends); 1..262144; default 131072
 * role: mesh                 # mesh (default): every node floods to its flood lists, never relays;
 *                            #   hub: relays between the VTEPs of a tenant (spoke -> hub -> spoke,
 *                            #   never back to the spoke a frame came from), learns spokes from their
 *                            #   probes (behind NAT too: by outer address and port) and answers them;
 *                            #   spoke: sends all flooding to its active hub, fails over between hubs
 * identity:                  # optional: this node's key pair (see docs/security.md). With it, tunnels
 *                            #   are authenticated and encrypted (tenants' encryption: required)
 *   privateKeyFile: /etc/vtepd/private.key   # required; from `vtepd genkey`; a file readable by
 *                            #   group or others is refused
 *   rekeyInterval: 120       # seconds between session key rotations, 1..86400; default 120
 * hubs:                      # spoke only, required: 1..8 hubs, the first preferred
 *   - address: 10.0.0.10     #   required; a unicast address of underlay.local's family
 *     port: 4789             #   UDP port of the hub; default underlay.port
 *     mtu: 1500              #   path MTU toward it (the largest outer IP packet), 576..underlay.mtu;
 *                            #   default: discovered by DF probes (pmtuDiscovery), else underlay.mtu
 *     publicKey: KEY         #   the hub's public key (`vtepd pubkey`); required with an identity:
 *                            #   a spoke talks only to the hub that proves it holds this key
 * spokes:                    # hub with an identity only: the spokes it admits, by key
 *   - publicKey: KEY         #   required; the spoke's public key
 *     vnis: [5001]           #   required; the tenants (VNIs) this spoke may join, and no others
 *     name: site-a           #   optional; for logs and status
 * nat: false                 # spoke only: behind NAT. Everything goes out from underlay.port (one
 *                            #   NAT mapping), and something is sent to every hub at least every
 *                            #   `keepalive` seconds to hold the mapping
 * keepalive: 15              # seconds, 1..3600; default 15
 * deadInterval: 3            # seconds without a reply after which a hub is dead, 0.5..3600; default 3.
 *                            #   Spokes probe every hub every deadInterval/10 (at least every 1 s
 *                            #   and every keepalive); a hub forgets a spoke silent for
 *                            #   3 x deadInterval (at least keepalive + deadInterval)
 * pmtuDiscovery: true        # hub/spoke: find the path MTU toward each hub or spoke with DF probes
 *                            #   of growing size (a hub's `mtu` skips it); default true
 * metrics:                   # optional; no metrics endpoint when absent
 *   listen: 127.0.0.1:9477   # Prometheus /metrics over HTTP on ADDRESS:PORT ([v6]:PORT)
 * underlay:                  # required
 *   local: 10.0.0.1          # required; this host's unicast IPv4 or IPv6 underlay address, or a
 *                            #   list of at most one of each ([10.0.0.1, "2001:db8::1"]: dual stack)
 *   port: 4789               # UDP port VXLAN is received on and sent to; 1..65535; default 4789
 *                            #   (Linux's historic default is 8472)
 *   mtu: 1500                # underlay link MTU; 576..65535 (1280.. over IPv6); default 1500
 *   sourcePorts: 8           # send sockets on distinct UDP source ports (49152..65535) that the
 *                            #   inner flow hash picks from; 1..64; default 8
 *   queues: 1                # fast-path thread pairs (encap + decap), each with its own receive
 *                            #   socket (SO_REUSEPORT) and its own queue of every TAP (multi-queue);
 *                            #   1..8; default 1. More than 1 pays only with cores to spare
 * tenants:                   # required; a list, may be empty ([])
 *   - name: blue             # required; 1..32 of a-z A-Z 0-9 _ . -; unique
 *     vni: 5001              # required; the tenant's id on the wire, 1..16777215; unique: the VXLAN
 *                            #   VNI, the GRE-TAP key, the NVGRE VSID (4096.. : 0..0xFFF are reserved)
 *     encap: vxlan           # vxlan | gre | nvgre: how frames to this tenant's VTEPs are wrapped;
 *                            #   default vxlan. A flood or static entry may say otherwise.
 *     ports:                 # local TAP ports; default []
 *       - tap: blue0         # required; Linux interface name: 1..15 bytes, no '/', ':', '%' or
 *                            #   whitespace, not '.' or '..'; unique across all tenants
 *         netns: vmA         # optional; namespace under /run/netns the TAP is created in
 *         address: 10.1.0.1/24   # optional; IPv4 or IPv6 interface address with prefix length
 *         mac: "02:00:00:00:01:01"  # optional; unicast, not all-zero; kernel picks one if absent
 *         mtu: 1450          # optional; 68..65535; default underlay.mtu minus the largest overhead
 *                            #   the tenant can meet: over IPv4 VXLAN 50 bytes (14 inner Ethernet +
 *                            #   8 VXLAN + 8 UDP + 20 IP), GRE-TAP 42 (14 + 8 GRE with key + 20),
 *                            #   NVGRE 42; over IPv6 20 more. The largest over every encap the tenant
 *                            #   uses and every family of underlay.local. A larger MTU is a warning,
 *                            #   not an error: frames too big for the tunnel are answered with ICMP
 *                            #   too-big (TCP adapts) and mssClamp avoids them for TCP.
 *     flood: [10.0.0.2, 10.0.0.3]   # VTEPs that get broadcast, unknown-unicast and multicast
 *                            #   frames (head-end replication); default []; an address family
 *                            #   of underlay.local, not underlay.local itself, no duplicates.
 *                            #   An entry may be { vtep: 10.0.0.4, encap: gre } instead, and
 *                            #   { vtep: 10.0.0.4, publicKey: KEY } names the VTEP's key (identity)
 *     fdb:                   # static FDB entries; default []
 *       - { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 }  # MAC unique within the tenant; an
 *                            #   optional encap: as in flood. One encap per VTEP in a tenant.
 *     learning: true         # learn inner source MAC -> outer source VTEP; default true
 *     learnFromUnderlay: true   # learn MACs behind VTEPs from their frames; default true, and
 *                            #   false with a directory (remote MACs come from the directory)
 *     ageing: 300            # seconds a learned MAC lives unseen; 1..1000000; default 300
 *     maxMacs: 8192          # MAC table limit of the tenant; 1..1048576; default 8192
 *     acceptFrom: known      # known (default): take encapsulated frames only from this tenant's
 *                            #   flood list, static entries, hubs and spokes; any: from any VTEP
 *     stormControl: { pps: 5000, burst: 2000 }   # flooded (broadcast/multicast/unknown) frames a
 *                            #   second, token bucket; excess dropped and counted; or off
 *     moveDampening: { moves: 5, window: 10, hold: 60 }   # a MAC moving more than `moves` times in
 *                            #   `window` s is pinned where it is for `hold` s and reported; or off
 *     mssClamp: off          # off (default) | auto | 536..65495: lower the MSS option of TCP SYNs
 *                            #   crossing the tunnel, both directions. auto: the smallest path MTU
 *                            #   of the tenant's VTEPs minus the overhead, minus 40 (IPv4) or 60
 *                            #   (IPv6) bytes of IP and TCP header
 *     encryption: required   # required (the default on a node with an identity): frames go to and
 *                            #   come from this tenant's VTEPs only authenticated and encrypted
 *                            #   (VXLAN only; 32 bytes more per packet, counted in the TAP MTU);
 *                            #   plaintext is dropped and counted. off (the default without one):
 *                            #   plain VXLAN/GRE, for the kernel and Open vSwitch inside a DC
 * directory:                 # optional (docs/directory.md): the members of every VNI come from etcd;
 *                            #   each tenant floods to the hosts with a port in its VNI, plus its own
 *                            #   flood list (which may then be empty). Without it: static flood lists
 *   etcd:
 *     endpoints: [ "http://10.0.0.9:2379" ]   # required; etcd client URLs, http:// (no TLS yet)
 *     prefix: /vtepd/v1      # every key under it; default /vtepd/v1
 *     leaseTtl: 10           # seconds, 2..3600; default 10: a host that dies leaves the other
 *                            #   hosts' flood lists this long after its last keepalive
 *   freeze: { moves: 5, window: 10, hold: 60 }   # duplicate detection: a MAC that changes
 *                            #   owner more than `moves` times in `window` s stays where it is for
 *                            #   `hold` s (claims refused, counted); the defaults shown
 * ```
 *
 * Unknown keys are errors. MACs may be written with ':' or '-' and any case; they are
 * normalized to lower-case colon form. IPv6 addresses are normalized to RFC 5952 form.
 * Quote MACs and names that YAML could read as numbers.
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
}
export interface PortAddress {
  address: string;
  prefixLength: number;
  family: Family;
}
export interface PortConfig {
  tap: string;
  netns: string | null;
  address: PortAddress | null;
  /** Lower-case colon form; null: the kernel picks one. */
  mac: string | null;
  /** Resolved: the configured value, or underlay.mtu minus the encapsulation overhead. */
  mtu: number;
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
/** Where the VNIs' members come from instead of (or besides) the flood lists (src/directory/). */
export interface DirectoryConfig {
  etcd: {
    /** Client URLs, http(s)://HOST:PORT, without a trailing '/'. */
    endpoints: string[];
    /** Every key vtepd writes or reads starts with it (default /vtepd/v1). */
    prefix: string;
    /** Seconds: the TTL of this host's lease; a dead host leaves the others' flood lists after it (default 10). */
    leaseTtl: number;
  };
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

/** Whether any tenant reaches any VTEP over GRE-TAP or NVGRE (the data path then opens a raw GRE socket). */
export function usesGre(c: Pick<Config, 'tenants'>): boolean {
  return c.tenants.some((t) => t.encap !== 'vxlan' || Object.values(t.vtepEncap).some((e) => e !== 'vxlan'));
}
