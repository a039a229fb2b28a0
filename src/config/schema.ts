/**
 * Checking a config: the field parsers, the schema (per-field checks, defaults,
 * normalization), the cross-field checks, and validateConfig, which runs them all and
 * reports every error with its path (src/config/config.ts says what a config is).
 */
import { Address4, Address6 } from 'ip-address';
import { z } from 'zod';
import { ENCAPS, ENCAP_NAMES, NVGRE_VSID_MIN, worstOverhead, type Encap, type Family } from '../core/encap.js';
import { DEFAULT_CONTROL_SOCKET, LOG_LEVELS, ROLES, type Config, type ConfigResult, type MetricsConfig, type TrunkConfig } from './config.js';
import { closest } from '../util/closest.js';

// ---------------------------------------------------------------------------------------
// Field parsers (pure; shared by the schema and the cross-field checks)
// ---------------------------------------------------------------------------------------

type Parsed<T> = { value: T } | { error: string };
interface Ip {
  address: string;
  family: Family;
  prefixLength: number;
}

const MAC_MSG = 'must be a unicast MAC like 02:00:00:00:01:01';
const ADDRESS_MSG = 'must be an IPv4 or IPv6 address';
const CIDR_MSG = 'must be an IPv4 or IPv6 address with a prefix length, like 10.1.0.1/24';

export function parseMac(text: string): Parsed<string> {
  if (!/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i.test(text)) return { error: MAC_MSG };
  const mac = text.toLowerCase().replaceAll('-', ':');
  if (mac === '00:00:00:00:00:00') return { error: `${MAC_MSG}, not all-zero` };
  if (parseInt(mac.slice(0, 2), 16) & 1) return { error: `${MAC_MSG}; ${mac} is multicast` };
  return { value: mac };
}

/** An IPv4/IPv6 address (`cidr`: with a required /prefix) that is unicast and usable. */
function parseIp(text: string, cidr: boolean): Parsed<Ip> {
  const bad = { error: cidr ? CIDR_MSG : ADDRESS_MSG };
  if (!cidr && text.includes('/')) return { error: `${ADDRESS_MSG} without a prefix length (drop the ${text.slice(text.indexOf('/'))})` };
  if (cidr && !text.includes('/')) return bad;
  let ip: Address4 | Address6;
  if (Address4.isValid(text)) ip = new Address4(text);
  else if (Address6.isValid(text)) ip = new Address6(text);
  else return bad;
  const family: Family = ip instanceof Address4 ? 4 : 6;
  if (ip instanceof Address6) {
    if (ip.zone) return { error: `${ADDRESS_MSG} without a zone index (${ip.zone})` };
    if (ip.isMapped4()) return { error: `write IPv4-mapped ${text} as plain IPv4` };
  }
  const address = ip.correctForm();
  const kind = ip.isMulticast() ? 'multicast' : ip.isUnspecified() ? 'unspecified' : ip instanceof Address4 && ip.isBroadcast() ? 'broadcast' : null;
  if (kind) return { error: `must be a unicast address; ${address} is ${kind}` };
  const bits = family === 4 ? 32 : 128;
  const prefixLength = ip.subnetMask;
  if (cidr && prefixLength === 0) return { error: `prefix length must be 1..${bits}` };
  if (cidr && prefixLength <= bits - 2) {
    const net = `${ip.startAddress().correctForm()}/${prefixLength}`;
    if (ip.startAddress().correctForm() === address) return { error: `${address} is the network address of ${net}; use a host address in it` };
    if (ip instanceof Address4 && ip.endAddress().correctForm() === address)
      return { error: `${address} is the broadcast address of ${net}; use a host address in it` };
  }
  return { value: { address, family, prefixLength } };
}

/** Linux dev_valid_name(), plus no '%' (TUNSETIFF would treat it as a name template). */
function isIfName(s: string): boolean {
  return Buffer.byteLength(s) <= 15 && /^[^\s/:%]+$/.test(s) && s !== '.' && s !== '..';
}
function isNetnsName(s: string): boolean {
  return Buffer.byteLength(s) <= 255 && /^[^/\0]+$/.test(s) && s !== '.' && s !== '..';
}
/** An absolute path that fits a Unix socket address (sun_path: 108 bytes with the NUL). */
function isSocketPath(s: string): boolean {
  return s.startsWith('/') && Buffer.byteLength(s) <= 107 && !s.includes('\0') && !s.endsWith('/');
}

const LISTEN_MSG = 'must be ADDRESS:PORT like 127.0.0.1:9477 or [::1]:9477';
/** "127.0.0.1:9477", "[::1]:9477", "0.0.0.0:9477": a local address (or any) and a TCP port. */
export function parseListen(text: string): Parsed<MetricsConfig> {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return { error: LISTEN_MSG };
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { error: `${LISTEN_MSG}; port must be 1..65535` };
  const raw = m[1] ?? m[2]!;
  let host: string;
  if (m[1] !== undefined && Address6.isValid(raw) && !raw.includes('%')) host = new Address6(raw).correctForm();
  else if (m[2] !== undefined && Address4.isValid(raw) && !raw.includes('/')) host = new Address4(raw).correctForm();
  else if (raw.includes('/')) return { error: `${LISTEN_MSG}; an address without a prefix length (drop the ${raw.slice(raw.indexOf('/'))})` };
  else return { error: `${LISTEN_MSG}; ${raw} is not an IPv4 address or a bracketed IPv6 address` };
  return { value: { listen: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, host, port } };
}

const VLAN_MSG = 'must be a VLAN ID, an integer 1..4094';
/** Why an integer is not a VLAN ID: 0 and 4095 have meanings of their own (`zero`: what to write instead of 0). */
function vlanRange(n: unknown, zero: string): string {
  if (n === 0) return `${VLAN_MSG}; 0 is for untagged (priority-tagged) frames: ${zero}`;
  if (n === 4095) return `${VLAN_MSG}; 4095 is reserved`;
  return VLAN_MSG;
}
const POOL_MSG = 'must be a range of VLAN IDs FIRST-LAST like 100-199, or one VLAN ID';
/** A VLAN pool: "100-199", or "100" (one ID). */
export function parsePool(text: string): Parsed<{ first: number; last: number }> {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.replaceAll(' ', ''));
  if (!m) return { error: POOL_MSG };
  const first = Number(m[1]);
  const last = Number(m[2] ?? m[1]);
  const out = [first, last].find((n) => n < 1 || n > 4094);
  if (out !== undefined)
    return { error: `${POOL_MSG}; VLAN IDs are 1..4094, not ${out}${out === 0 ? ' (0 is untagged)' : out === 4095 ? ' (4095 is reserved)' : ''}` };
  if (first > last) return { error: `${POOL_MSG}; ${first} is above ${last} (write ${last}-${first})` };
  return { value: { first, last } };
}

// ---------------------------------------------------------------------------------------
// Schema (per-field checks, defaults and normalization)
// ---------------------------------------------------------------------------------------

/** A message for a wrong value, "is required" for a missing one. */
const need = (message: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : message),
});
const intIn = (lo: number, hi: number) => {
  const m = `must be an integer ${lo}..${hi}`;
  return z.int(need(m)).min(lo, m).max(hi, m);
};
const text = (message: string, ok: (s: string) => boolean) => z.string(need(message)).refine(ok, message);
const parsed = <T>(message: string, parse: (s: string) => Parsed<T>) =>
  z.string(need(message)).transform((s, ctx): T => {
    const r = parse(s);
    if ('value' in r) return r.value;
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  });

const Mac = parsed(MAC_MSG, parseMac);
const HostAddress = parsed(ADDRESS_MSG, (s) => parseIp(s, false));
const Vtep = HostAddress.transform((ip) => ip.address);
const UnderlayMtu = intIn(576, 65535).default(1500);

const Cidr = parsed(CIDR_MSG, (s) => parseIp(s, true));
const TapName = text("must be a Linux interface name: 1..15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'", isIfName);
const PortMtu = intIn(68, 65535);

/** An object that takes exactly one of some keys (a port: tap or attach), for the JSON Schema. */
export const ONE_OF = z.registry<{ oneOf: readonly { required: string[] }[] }>();
/** What each stringOr accepts (its z.unknown() says nothing), for the JSON Schema (src/config/json-schema.ts). */
export const STRING_OR = z.registry<{ anyOf: readonly unknown[] }>();
/**
 * `a` for a string, `b` for anything else, each with its own messages and paths (z.union
 * would report only "Invalid input" when a member's transform fails).
 */
const stringOr = <A extends z.ZodType, B extends z.ZodType>(a: A, b: B) =>
  z
    .unknown()
    .transform((v, ctx): z.output<A> | z.output<B> => {
      if (v === undefined) {
        ctx.addIssue({ code: 'custom', message: 'is required' });
        return z.NEVER;
      }
      const r = (typeof v === 'string' ? a : b).safeParse(v);
      if (r.success) return r.data;
      for (const iss of r.error.issues) ctx.addIssue({ ...iss } as Parameters<typeof ctx.addIssue>[0]);
      return z.NEVER;
    })
    .register(STRING_OR, { anyOf: [a, b] });
const LOCAL_MSG = 'must be an IPv4 or IPv6 address, or a list of at most one of each like [10.0.0.1, "2001:db8::1"]';
const Local = stringOr(HostAddress, z.array(HostAddress, need(LOCAL_MSG)).min(1, LOCAL_MSG).max(2, LOCAL_MSG));
const CPUS_MSG = 'must be a list of CPU numbers like [2, 3] (queue q runs on cpus[q % length])';
/** underlay.cpus: the CPUs the fast path's queues are pinned to, each once. */
const Cpus = z
  .array(intIn(0, 1023), need(CPUS_MSG))
  .min(1, CPUS_MSG)
  .max(64, CPUS_MSG)
  .superRefine((cpus, ctx) => {
    for (const [i, c] of cpus.entries()) if (cpus.indexOf(c) < i) ctx.addIssue({ code: 'custom', path: [i], message: `CPU ${c} is listed twice` });
  });
const EncapName = z.enum(ENCAPS, need(`must be one of ${ENCAPS.join(', ')}`));
const Underlay = z.strictObject(
  {
    local: Local,
    port: intIn(1, 65535).default(4789),
    mtu: UnderlayMtu,
    sourcePorts: intIn(1, 64).default(8),
    queues: intIn(1, 8).default(1),
    cpus: Cpus.optional(),
  },
  need('must be a mapping like { local: 10.0.0.1 }'),
);
const Netns = text("must be a network namespace name under /run/netns: no '/', not '.' or '..'", isNetnsName);
/** An integer VLAN ID 1..4094 (`zero`: what to write instead of 0). */
const vlanId = (zero: string) =>
  z
    .int(need(VLAN_MSG))
    .min(1, { error: (iss) => vlanRange(iss.input, zero) })
    .max(4094, { error: (iss) => vlanRange(iss.input, zero) });
const PortVlan = vlanId('leave vlan out');
const Port = z
  .strictObject(
    {
      tap: TapName.optional(),
      attach: TapName.optional(),
      netns: Netns.optional(),
      address: Cidr.optional(),
      mac: Mac.optional(),
      mtu: PortMtu.optional(),
      vlan: PortVlan.optional(),
    },
    need('must be a mapping like { tap: blue0 } or { attach: eth1 }'),
  )
  .register(ONE_OF, { oneOf: [{ required: ['tap'] }, { required: ['attach'] }] });
const FdbEntry = z.strictObject(
  { mac: Mac, vtep: Vtep, encap: EncapName.optional() },
  need('must be a mapping like { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 }'),
);
const KEY_MSG = 'must be an X25519 public key: 32 bytes of base64 (44 characters), as `vtepd pubkey` prints it';
/** A public key as `vtepd pubkey` / `wg pubkey` print it: 32 bytes, standard base64. */
export function parsePublicKey(text: string): Parsed<string> {
  const b = /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : null;
  if (b?.length !== 32 || b.toString('base64') !== text) return { error: KEY_MSG };
  if (b.every((x) => x === 0)) return { error: `${KEY_MSG}, not all-zero` };
  return { value: text };
}
const PublicKey = parsed(KEY_MSG, parsePublicKey);
const FloodPeer = z.strictObject(
  { vtep: Vtep, encap: EncapName.optional(), publicKey: PublicKey.optional() },
  need('must be a VTEP address or a mapping like { vtep: 10.0.0.2, encap: gre }'),
);
const FloodEntry = stringOr(Vtep, FloodPeer);
const TenantName = text('must be 1..32 characters of a-z A-Z 0-9 _ . -', (s) => /^[A-Za-z0-9_.-]{1,32}$/.test(s));
const Vni = intIn(1, 16777215);
const MSS_MSG = 'must be auto, off or an integer 536..65495 (the TCP MSS to clamp to)';
const MssClamp = z.union([z.literal('auto'), z.literal('off'), z.int(MSS_MSG).min(536, MSS_MSG).max(65495, MSS_MSG)], need(MSS_MSG));
const seconds = (lo: number, hi: number) => {
  const m = `must be a number of seconds ${lo}..${hi}`;
  return z.number(need(m)).min(lo, m).max(hi, m);
};
const RoleName = z.enum(ROLES, need('must be mesh, hub or spoke'));
const HubPeer = z.strictObject(
  { address: HostAddress, port: intIn(1, 65535).optional(), mtu: intIn(576, 65535).optional(), publicKey: PublicKey.optional() },
  need('must be a mapping like { address: 10.0.0.10 }'),
);
const SpokeName = text('must be 1..64 characters of a-z A-Z 0-9 _ . -', (s) => /^[A-Za-z0-9_.-]{1,64}$/.test(s));
const SpokePeer = z.strictObject(
  {
    publicKey: PublicKey,
    vnis: z.array(intIn(1, 16777215), need('must be a list of VNIs like [5001]')),
    name: SpokeName.optional(),
  },
  need('must be a mapping like { publicKey: KEY, vnis: [5001], name: site-a }'),
);
const Spokes = z.array(SpokePeer, need('must be a list of spokes like [ { publicKey: KEY, vnis: [5001] } ]'));
const Identity = z.strictObject(
  {
    privateKeyFile: text('must be an absolute path to a file holding a key from vtepd genkey', (s) => s.startsWith('/') && !s.includes('\0')),
    rekeyInterval: seconds(1, 86400).default(120),
  },
  need('must be a mapping like { privateKeyFile: /etc/vtepd/private.key }'),
);
const Hubs = z.array(HubPeer, need('must be a list of hubs like [ { address: 10.0.0.10 } ]'));
const Tenant = z.strictObject(
  {
    name: TenantName,
    vni: Vni,
    encap: EncapName.default('vxlan'),
    ports: z.array(Port, need('must be a list of ports')).default([]),
    flood: z.array(FloodEntry, need('must be a list of VTEP addresses')).default([]),
    fdb: z.array(FdbEntry, need('must be a list of { mac, vtep } entries')).default([]),
    learning: z.boolean(need('must be true or false')).default(true),
    learnFromUnderlay: z.boolean(need('must be true or false')).optional(),
    ageing: intIn(1, 1000000).default(300),
    maxMacs: intIn(1, 1048576).default(8192),
    acceptFrom: z.enum(['known', 'any'], need('must be known or any')).default('known'),
    innerVlan: z.enum(['drop', 'allow'], need('must be drop or allow')).default('drop'),
    stormControl: z
      .union(
        [z.literal('off'), z.strictObject({ pps: intIn(1, 10_000_000), burst: intIn(1, 10_000_000) }, need('must be off or { pps, burst }'))],
        need('must be off or { pps, burst }'),
      )
      .default({ pps: 5000, burst: 2000 }),
    moveDampening: z
      .union(
        [
          z.literal('off'),
          z.strictObject({ moves: intIn(1, 1000), window: intIn(1, 3600), hold: intIn(1, 86400) }, need('must be off or { moves, window, hold }')),
        ],
        need('must be off or { moves, window, hold }'),
      )
      .default({ moves: 5, window: 10, hold: 60 }),
    mssClamp: MssClamp.default('off'),
    encryption: z.enum(['required', 'off'], need('must be required or off')).optional(),
  },
  need('must be a mapping like { name: blue, vni: 5001 }'),
);
/** A key of a trunk's vlans (YAML reads `100: blue` as the key "100"). */
const VlanKey = z.string().regex(/^([1-9]\d{0,2}|[1-3]\d{3}|40[0-8]\d|409[0-4])$/, {
  error: (iss) => (typeof iss.input === 'string' && /^\d+$/.test(iss.input) ? vlanRange(Number(iss.input), 'name their tenant under native') : VLAN_MSG),
});
/** A pool written as one number out of range: as parsePool says it of the same text. */
const poolError = {
  error: (iss: { input?: unknown }) => {
    const r = parsePool(String(iss.input));
    return 'error' in r ? r.error : POOL_MSG;
  },
};
const Pool = stringOr(
  parsed(POOL_MSG, parsePool),
  z
    .int(need(POOL_MSG))
    .min(1, poolError)
    .max(4094, poolError)
    .transform((n) => ({ first: n, last: n })),
);
const Trunk = z.strictObject(
  {
    attach: TapName,
    netns: Netns.optional(),
    vlans: z.record(VlanKey, TenantName, need('must be a mapping of VLAN IDs to tenants like { 100: blue, 200: red }')).optional(),
    native: TenantName.optional(),
    pool: Pool.optional(),
    tenants: z.array(TenantName, need('must be a list of tenant names like [ green, orange ]')).optional(),
  },
  need('must be a mapping like { attach: eth1, vlans: { 100: blue } }'),
);
const Control = z.strictObject(
  {
    socket: text('must be an absolute path of at most 107 bytes (a Unix socket), like /run/vtepd/vtepd.sock', isSocketPath).default(DEFAULT_CONTROL_SOCKET),
  },
  need('must be a mapping like { socket: /run/vtepd/vtepd.sock }'),
);
// TLS toward etcd is not built (the client speaks plain HTTP to the JSON gateway): https:// is refused here rather than at the first request.
const ENDPOINT_MSG = 'must be an http:// URL like "http://10.0.0.9:2379" (https:// is not supported yet: keep etcd on a management network)';
const isEndpoint = (s: string) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' && u.hostname !== '' && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash;
  } catch {
    return false;
  }
};
const PREFIX_MSG = 'must be a key prefix like /vtepd/v1: starting with "/", not ending with "/", no whitespace';
const EtcdDirectory = z.strictObject(
  {
    endpoints: z
      .array(text(ENDPOINT_MSG, isEndpoint), need('must be a list of etcd client URLs like [ "http://10.0.0.9:2379" ]'))
      .min(1, 'must list at least one etcd client URL like "http://10.0.0.9:2379"'),
    prefix: text(PREFIX_MSG, (s) => /^\/\S*[^/\s]$/.test(s)).default('/vtepd/v1'),
    leaseTtl: intIn(2, 3600).default(10),
  },
  need('must be a mapping like { endpoints: [ "http://10.0.0.9:2379" ] }'),
);
const Freeze = z.strictObject(
  { moves: intIn(1, 1000).default(5), window: intIn(1, 3600).default(10), hold: intIn(1, 86400).default(60) },
  need('must be a mapping like { moves: 5, window: 10, hold: 60 }'),
);
const ASN_MSG = 'must be an AS number, an integer 1..4294967295';
const Asn = z.int(need(ASN_MSG)).min(1, ASN_MSG).max(4294967295, ASN_MSG);
const ROUTER_ID_MSG = 'must be an IPv4 address like 10.0.0.1 (the BGP router id)';
const RouterId = parsed(ROUTER_ID_MSG, (s) => {
  const r = parseIp(s, false);
  return 'value' in r && r.value.family !== 4 ? { error: ROUTER_ID_MSG } : 'value' in r ? { value: r.value.address } : { error: ROUTER_ID_MSG };
});
const GOBGP_API_MSG = 'must be unix:///PATH (an absolute path) or HOST:PORT like 127.0.0.1:50051: the gRPC API of a running gobgpd';
/** A gRPC target of gobgpd: unix:///abs/path, or host:port (a name, an IPv4 address or [IPv6]). */
export const isGobgpApi = (s: string): boolean => {
  if (s.startsWith('unix://')) return /^unix:\/\/\/\S+$/.test(s);
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
};
const BGP_PASSWORD_MSG = 'must be 1..80 printable ASCII characters without spaces (the TCP MD5 key of the session, RFC 2385; the same on the neighbor)';
const BgpPassword = text(BGP_PASSWORD_MSG, (s) => /^[\x21-\x7e]{1,80}$/.test(s));
const EvpnNeighbor = z.strictObject({ address: Vtep, password: BgpPassword.optional() }, need('must be a mapping like { address: 10.0.0.2 }'));
const EvpnDirectory = z.strictObject(
  {
    asn: Asn,
    neighbors: z
      .array(EvpnNeighbor, need('must be a list of BGP neighbors like [ { address: 10.0.0.2 } ]'))
      .min(1, 'must list at least one BGP neighbor like { address: 10.0.0.2 }'),
    routerId: RouterId.optional(),
    gobgp: z.strictObject({ api: text(GOBGP_API_MSG, isGobgpApi).optional() }, need('must be a mapping like { api: "unix:///run/gobgpd.sock" }')).optional(),
    gracefulRestart: intIn(0, 3600).default(120),
  },
  need('must be a mapping like { asn: 65000, neighbors: [ { address: 10.0.0.2 } ] }'),
);
const Directory = z.strictObject(
  { etcd: EtcdDirectory.optional(), evpn: EvpnDirectory.optional(), freeze: Freeze.default({ moves: 5, window: 10, hold: 60 }) },
  need('must be a mapping like { etcd: { endpoints: [ "http://10.0.0.9:2379" ] } } or { evpn: { asn: 65000, neighbors: [ { address: 10.0.0.2 } ] } }'),
);
const Metrics = z.strictObject({ listen: parsed(LISTEN_MSG, parseListen) }, need('must be a mapping like { listen: "127.0.0.1:9477" }'));
const Log = z.strictObject(
  { level: z.enum(LOG_LEVELS, need(`must be one of ${LOG_LEVELS.join(', ')}`)).default('warn') },
  need('must be a mapping like { level: warn }'),
);
/** The switch-wide FDB limit: the fast path's cache holds 262144 entries. */
export const MAX_MACS_TOTAL = 262144;
const Limits = z.strictObject({ maxMacs: intIn(1, MAX_MACS_TOTAL).default(131072) }, need('must be a mapping like { maxMacs: 131072 }'));
/** The whole config file, as zod checks it (src/config/json-schema.ts derives the JSON Schema from it). */
export const Root = z.strictObject(
  {
    log: Log.default({ level: 'warn' }),
    limits: Limits.default({ maxMacs: 131072 }),
    control: Control.default({ socket: DEFAULT_CONTROL_SOCKET }),
    metrics: Metrics.optional(),
    underlay: Underlay,
    tenants: z.array(Tenant, need('must be a list of tenants (write tenants: [] for none)')),
    trunks: z.array(Trunk, need('must be a list of trunks like [ { attach: eth1, vlans: { 100: blue } } ]')).default([]),
    role: RoleName.default('mesh'),
    hubs: Hubs.optional(),
    nat: z.boolean(need('must be true or false')).default(false),
    keepalive: seconds(1, 3600).default(15),
    deadInterval: seconds(0.5, 3600).default(3),
    pmtuDiscovery: z.boolean(need('must be true or false')).default(true),
    identity: Identity.optional(),
    spokes: Spokes.optional(),
    directory: Directory.optional(),
  },
  need('must be a mapping with underlay and tenants'),
);

/** Known keys per object kind, for "did you mean" on an unknown key. */
const SHAPES: Record<string, string[]> = {
  '': Object.keys(Root.shape),
  log: Object.keys(Log.shape),
  control: Object.keys(Control.shape),
  metrics: Object.keys(Metrics.shape),
  limits: Object.keys(Limits.shape),
  underlay: Object.keys(Underlay.shape),
  tenants: Object.keys(Tenant.shape),
  'tenants.ports': Object.keys(Port.shape),
  'tenants.fdb': Object.keys(FdbEntry.shape),
  'tenants.flood': Object.keys(FloodPeer.shape),
  trunks: Object.keys(Trunk.shape),
  hubs: Object.keys(HubPeer.shape),
  spokes: Object.keys(SpokePeer.shape),
  identity: Object.keys(Identity.shape),
  directory: Object.keys(Directory.shape),
  'directory.etcd': Object.keys(EtcdDirectory.shape),
  'directory.freeze': Object.keys(Freeze.shape),
  'directory.evpn': Object.keys(EvpnDirectory.shape),
  'directory.evpn.neighbors': Object.keys(EvpnNeighbor.shape),
  'directory.evpn.gobgp': ['api'],
};
function unknownKey(path: PropertyKey[], key: string): string {
  const near = closest(key, SHAPES[path.filter((p) => typeof p === 'string').join('.')] ?? []);
  return near ? `unknown key (did you mean ${near}?)` : 'unknown key';
}

/** Did-you-mean (src/util/closest.ts), as the config's errors use it. */
export { closest };

// ---------------------------------------------------------------------------------------
// Cross-field checks. They read the raw input, so they run even where other fields are
// wrong, and look only at values that pass their own field check.
// ---------------------------------------------------------------------------------------

/** `key`: about the key at `path` (unknown), not its value. */
type Issue = { path: PropertyKey[]; message: string; key?: boolean };
const record = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
function valid<S extends z.ZodType>(schema: S, v: unknown): z.output<S> | undefined {
  const r = schema.safeParse(v);
  return r.success ? r.data : undefined;
}

/**
 * An attached port ({ attach: eth1 }): not a TAP too, and none of a TAP's creation keys, as
 * vtepd does not change an interface it did not create (each refused with what to do).
 */
function checkAttached(
  port: Record<string, unknown>,
  path: (key: string) => PropertyKey[],
  maxMtu: number | undefined,
  why: string | undefined,
  add: (path: PropertyKey[], message: string) => void,
): void {
  const not = 'not for an attached port (attach), as vtepd does not change an interface it did not create:';
  if (port.tap !== undefined) add(path('tap'), 'a port is a TAP vtepd creates (tap) or an interface it attaches (attach), not both: keep one');
  if (port.address !== undefined) add(path('address'), `${not} an attached interface is a switch port and needs no address; set one on the host behind it`);
  if (port.mac !== undefined) add(path('mac'), `${not} it keeps its own MAC`);
  if (port.mtu !== undefined)
    add(path('mtu'), `${not} set its MTU (and the MTU of the hosts behind it) yourself${maxMtu !== undefined ? `, at most ${maxMtu} (${why})` : ''}`);
}

/** The error for a name that is no tenant: `no tenant "bleu" (tenants: blue, red; did you mean blue?)`, as the CLI says it. */
function noTenant(name: string, names: readonly string[]): string {
  const near = closest(name, names);
  return `no tenant "${name}" (${names.length ? `tenants: ${names.join(', ')}` : 'there are none'}${near ? `; did you mean ${near}?` : ''})`;
}

type Add = (path: PropertyKey[], message: string) => void;
/** One interface that carries VLANs (a trunk entry, or tagged access ports): what it holds, and where. */
interface TrunkIface {
  /** For messages: `interface "eth1"`, `interface "eth1" in netns rack1`. */
  name: string;
  /** Where it first became a trunk: `trunks[0]` or `tenants[1].ports[0]`. */
  where: string;
  /** VLAN ID to where it is given. */
  vlans: Map<number, string>;
  /** Tenant to where it is given. */
  tenants: Map<string, string>;
}
/** The interfaces that carry VLANs, by name and netns, each VLAN ID and each tenant once on each. */
class TrunkIfaces {
  readonly byKey = new Map<string, TrunkIface>();
  constructor(private readonly add: Add) {}

  /** The key of the interface `attach` in `r.netns` (undefined: a name or netns that is wrong, reported by the schema). */
  static keyOf(r: Record<string, unknown>, attach: unknown): string | undefined {
    const name = valid(TapName, attach);
    const netns = valid(Netns, r.netns);
    return name === undefined || (r.netns !== undefined && netns === undefined) ? undefined : `${netns ?? ''}/${name}`;
  }
  /** The interface of `key` (`r`: the entry or port that names it), made at `where` if it is new. */
  at(key: string, r: Record<string, unknown>, where: string): TrunkIface {
    const name = `interface "${String(r.attach)}"${r.netns === undefined ? '' : ` in netns ${String(r.netns)}`}`;
    if (!this.byKey.has(key)) this.byKey.set(key, { name, where, vlans: new Map(), tenants: new Map() });
    return this.byKey.get(key)!;
  }
  vlan(f: TrunkIface, vlan: number, where: string, path: PropertyKey[]): void {
    const first = f.vlans.get(vlan);
    if (first !== undefined) this.add(path, `duplicate VLAN ${vlan} on ${f.name} (also ${first})`);
    else f.vlans.set(vlan, where);
  }
  tenant(f: TrunkIface, tenant: string, where: string, path: PropertyKey[]): void {
    const first = f.tenants.get(tenant);
    if (first !== undefined) this.add(path, `tenant "${tenant}" is already on ${f.name} (${first}); a tenant gets one VLAN per trunk`);
    else f.tenants.set(tenant, where);
  }
}

/**
 * Trunks (#15) and tagged access ports ({ attach: eth1, vlan: 100 }, one VLAN of the trunk of
 * eth1): tenants that exist, each VLAN ID and each tenant once per interface (an interface
 * is its name and netns), pools that fit their tenants, and no interface that is a trunk
 * and also an untagged attached port or a TAP.
 */
function checkTrunks(root: Record<string, unknown>, add: Add): void {
  const ifaces = new TrunkIfaces(add);
  const pools = checkTrunkEntries(root, ifaces, add);
  // Tagged access ports: each a VLAN of the trunk of its interface (one is made if there is none).
  list(root.tenants).forEach((t, i) => {
    const tenant = valid(TenantName, record(t).name);
    list(record(t).ports).forEach((p, j) => {
      const port = record(p);
      const key = port.vlan === undefined || port.tap !== undefined ? undefined : TrunkIfaces.keyOf(port, port.attach);
      if (key === undefined) return;
      const where = `tenants[${i}].ports[${j}]`;
      const f = ifaces.at(key, port, where);
      const vlan = valid(PortVlan, port.vlan);
      if (vlan !== undefined) ifaces.vlan(f, vlan, `${where}.vlan`, ['tenants', i, 'ports', j, 'vlan']);
      if (tenant !== undefined) ifaces.tenant(f, tenant, `${where}.vlan`, ['tenants', i, 'ports', j, 'vlan']);
    });
  });
  for (const { i, f, pool, count } of pools) {
    const size = pool.last - pool.first + 1;
    const fixed = [...f.vlans.keys()].filter((vlan) => vlan >= pool.first && vlan <= pool.last).length;
    const range = pool.first === pool.last ? `${pool.first}` : `${pool.first}-${pool.last}`;
    if (count > size - fixed)
      add(
        ['trunks', i, 'tenants'],
        `${count} tenants need a VLAN ID from the pool, but ${range} has ${size - fixed} free of ${size}${fixed ? ` (${fixed} fixed under vlans or vlan: on ${f.name})` : ''}: widen the pool`,
      );
  }
  checkPortsOnTrunks(root, ifaces, add);
}

/** The entries of trunks: tenants that exist, once each; a pool for `tenants`. Returns the pools to fit once every VLAN is known. */
function checkTrunkEntries(root: Record<string, unknown>, ifaces: TrunkIfaces, add: Add) {
  const tenantNames = list(root.tenants).flatMap((t) => valid(TenantName, record(t).name) ?? []);
  const known = (path: PropertyKey[], v: unknown): string | undefined => {
    const name = valid(TenantName, v);
    if (name !== undefined && !tenantNames.includes(name)) return void add(path, noTenant(name, tenantNames));
    return name;
  };
  const pools: { i: number; f: TrunkIface; pool: { first: number; last: number }; count: number }[] = [];
  const byName = new Map<string, string>();
  list(root.trunks).forEach((tr, i) => {
    const trunk = record(tr);
    const at = `trunks[${i}]`;
    const key = TrunkIfaces.keyOf(trunk, trunk.attach);
    const twice = key === undefined ? undefined : ifaces.byKey.get(key);
    if (twice) add(['trunks', i, 'attach'], `duplicate trunk ${twice.name} (also ${twice.where}); give all its VLANs in one entry`);
    const name = valid(TapName, trunk.attach);
    const other = name === undefined ? undefined : byName.get(name);
    if (name !== undefined && other !== undefined && !twice)
      add(
        ['trunks', i, 'attach'],
        `a trunk ${name} in another namespace is ${other}: a trunk goes by its interface's name (status, capture --port, trace --in), so trunks in two namespaces need two names`,
      );
    if (name !== undefined && !byName.has(name)) byName.set(name, at);
    const f = key === undefined ? undefined : ifaces.at(key, trunk, at);
    for (const [k, v] of Object.entries(record(trunk.vlans))) {
      const path = ['trunks', i, 'vlans', k];
      const tenant = known(path, v);
      if (!f || valid(VlanKey, k) === undefined) continue;
      ifaces.vlan(f, Number(k), `${at}.vlans.${k}`, path);
      if (tenant !== undefined) ifaces.tenant(f, tenant, `${at}.vlans.${k}`, path);
    }
    const native = known(['trunks', i, 'native'], trunk.native);
    if (f && native !== undefined) ifaces.tenant(f, native, `${at}.native`, ['trunks', i, 'native']);
    list(trunk.tenants).forEach((v, j) => {
      const tenant = known(['trunks', i, 'tenants', j], v);
      if (f && tenant !== undefined) ifaces.tenant(f, tenant, `${at}.tenants[${j}]`, ['trunks', i, 'tenants', j]);
    });
    const pool = valid(Pool, trunk.pool);
    const count = list(trunk.tenants).length;
    if (count > 0 && trunk.pool === undefined)
      add(['trunks', i, 'tenants'], 'these tenants get their VLAN IDs from a pool: add pool: FIRST-LAST (like pool: 100-199), or give each a VLAN under vlans');
    if (f && pool) pools.push({ i, f, pool, count });
  });
  return pools;
}

/** Untagged attached ports and TAPs on an interface that is a trunk (the same name in the same netns). */
function checkPortsOnTrunks(root: Record<string, unknown>, ifaces: TrunkIfaces, add: Add): void {
  list(root.tenants).forEach((t, i) => {
    list(record(t).ports).forEach((p, j) => {
      const port = record(p);
      const tap = port.tap !== undefined;
      if (!tap && port.vlan !== undefined) return;
      const f = ifaces.byKey.get(TrunkIfaces.keyOf(port, tap ? port.tap : port.attach) ?? '');
      if (!f) return;
      if (tap) add(['tenants', i, 'ports', j, 'tap'], `${f.name} is a trunk (${f.where}): a TAP vtepd creates cannot take its name; pick another tap name`);
      else
        add(
          ['tenants', i, 'ports', j, 'attach'],
          `${f.name} is a trunk (${f.where}), where untagged frames are the native VLAN's: give this port a vlan: (its tenant joins the trunk tagged), or make its tenant the trunk's native`,
        );
    });
  });
}

function crossCheck(raw: unknown, warnings: Issue[] = []): Issue[] {
  const issues: Issue[] = [];
  const add = (path: PropertyKey[], message: string) => issues.push({ path, message });
  /** Report `key` if already seen in `seen` (under another owner), else remember it. */
  const once = (seen: Map<unknown, string>, key: unknown, owner: string, path: PropertyKey[], what: string) => {
    const first = seen.get(key);
    if (first !== undefined) add(path, `duplicate ${what} (also ${first})`);
    else seen.set(key, owner);
  };

  const root = record(raw);
  const underlay = record(root.underlay);
  // underlay.local: one address or a list of at most one per family (checked only when valid).
  const locals: Ip[] = [];
  const rawLocal = valid(Local, underlay.local);
  if (rawLocal) {
    (Array.isArray(rawLocal) ? rawLocal : [rawLocal]).forEach((ip, j) => {
      const other = locals.find((l) => l.family === ip.family);
      if (other) add(['underlay', 'local', j], `at most one address per family: ${other.address} and ${ip.address} are both IPv${ip.family}`);
      else locals.push(ip);
    });
  }
  const families = locals.map((l) => l.family);
  const underlayMtu = valid(UnderlayMtu, underlay.mtu);
  if (families.includes(6) && underlayMtu !== undefined && underlayMtu < 1280) add(['underlay', 'mtu'], 'must be at least 1280 for an IPv6 underlay');
  const checkVtep = (path: PropertyKey[], v: unknown): string | undefined => {
    const ip = valid(HostAddress, v);
    if (!ip || locals.length === 0) return ip?.address;
    const self = locals.find((l) => l.address === ip.address);
    if (!families.includes(ip.family)) add(path, `IPv${ip.family} VTEP but underlay.local is IPv${locals[0]!.family}`);
    else if (self) add(path, `must not be underlay.local (${self.address}), this host`);
    else return ip.address;
    return undefined;
  };
  /** A flood entry (an address or { vtep, encap }) or a static entry: its raw vtep and encap. */
  const peerOf = (v: unknown): { vtep: unknown; encap: Encap | undefined; object: boolean } => {
    if (typeof v === 'string') return { vtep: v, encap: undefined, object: false };
    const r = record(v);
    return { vtep: r.vtep, encap: valid(EncapName, r.encap), object: true };
  };
  // The tenant ids GRE-TAP keys and NVGRE VSIDs claim, to refuse one key read both ways.
  const greKeys: { vni: number; at: string; i: number }[] = [];
  const nvgreVsids = new Map<number, string>();

  const names = new Map<unknown, string>();
  const vnis = new Map<unknown, string>();
  const taps = new Map<unknown, string>();
  // Keys: every public key needs a node identity; one key per VTEP address and one VTEP per key.
  const identity = root.identity !== undefined;
  const NO_IDENTITY = 'needs a node identity: identity: { privateKeyFile: PATH } (make one with vtepd genkey)';
  const keyOfVtep = new Map<string, { key: string; where: string }>();
  const vtepOfKey = new Map<string, { vtep: string; where: string }>();
  const keyed = (path: PropertyKey[], where: string, vtep: string | undefined, key: string | undefined) => {
    if (key === undefined) return;
    if (!identity) return add(path, `publicKey ${NO_IDENTITY}`);
    if (vtep === undefined) return;
    const byVtep = keyOfVtep.get(vtep);
    const byKey = vtepOfKey.get(key);
    if (byVtep && byVtep.key !== key) add(path, `VTEP ${vtep} has another publicKey in ${byVtep.where}; a VTEP has one key`);
    else if (byKey && byKey.vtep !== vtep) add(path, `this publicKey is VTEP ${byKey.vtep}'s in ${byKey.where}; a key names one VTEP`);
    if (!byVtep) keyOfVtep.set(vtep, { key, where });
    if (!byKey) vtepOfKey.set(key, { vtep, where });
  };
  list(root.tenants).forEach((t, i) => {
    list(record(t).flood).forEach((v, j) => {
      const peer = record(v);
      if (typeof v === 'string' || peer.publicKey === undefined) return;
      keyed(['tenants', i, 'flood', j, 'publicKey'], `tenants[${i}].flood[${j}]`, valid(HostAddress, peer.vtep)?.address, valid(PublicKey, peer.publicKey));
    });
  });
  list(root.tenants).forEach((t, i) => {
    const tenant = record(t);
    const at = `tenants[${i}]`;
    const name = valid(TenantName, tenant.name);
    if (name !== undefined) once(names, name, at, ['tenants', i, 'name'], `tenant name "${name}"`);
    const vni = valid(Vni, tenant.vni);
    if (vni !== undefined) once(vnis, vni, at, ['tenants', i, 'vni'], `VNI ${vni}`);

    // Encapsulations: the tenant's and every override; one per VTEP within the tenant.
    const encap = valid(EncapName, tenant.encap) ?? 'vxlan';
    const encaps = new Set<Encap>([encap]);
    const vtepEncap = new Map<string, { encap: Encap; where: string }>();
    const peerEncap = (path: PropertyKey[], where: string, v: unknown) => {
      const peer = peerOf(v);
      const e = peer.encap ?? encap;
      encaps.add(e);
      const ip = valid(HostAddress, peer.vtep);
      if (!ip) return;
      const first = vtepEncap.get(ip.address);
      if (!first) vtepEncap.set(ip.address, { encap: e, where });
      else if (first.encap !== e)
        add(
          peer.object && peer.encap ? [...path, 'encap'] : path,
          `VTEP ${ip.address} is ${first.encap} in ${first.where}; a tenant reaches a VTEP with one encapsulation`,
        );
    };
    list(tenant.flood).forEach((v, j) => peerEncap(['tenants', i, 'flood', j], `${at}.flood[${j}]`, v));
    list(tenant.fdb).forEach((v, j) => peerEncap(['tenants', i, 'fdb', j], `${at}.fdb[${j}]`, v));
    if (vni !== undefined && encaps.has('nvgre')) {
      if (vni < NVGRE_VSID_MIN) add(['tenants', i, 'vni'], 'NVGRE VSID must be 4096..16777215 (0..0xFFF are reserved)');
      else nvgreVsids.set(vni, at);
    }
    if (vni !== undefined && encaps.has('gre')) greKeys.push({ vni, at, i });

    // Encryption: required by default on a node with an identity, and then VXLAN only, and
    // only toward VTEPs with a key.
    const encryption = valid(z.enum(['required', 'off']), tenant.encryption) ?? (identity ? 'required' : 'off');
    const encrypted = encryption === 'required';
    if (encrypted && !identity) add(['tenants', i, 'encryption'], `required ${NO_IDENTITY}, or set encryption: off`);
    if (encrypted && identity) {
      const why = tenant.encryption === undefined ? ' (the default on a node with an identity)' : '';
      if (encaps.size > 1 || !encaps.has('vxlan'))
        add(
          tenant.encryption === undefined ? ['tenants', i, 'encap'] : ['tenants', i, 'encryption'],
          `encryption${why} is for VXLAN only; GRE-TAP and NVGRE tenants need encryption: off`,
        );
      list(tenant.flood).forEach((v, j) => {
        const peer = peerOf(v);
        const ip = valid(HostAddress, peer.vtep);
        if (ip && !keyOfVtep.has(ip.address))
          add(
            ['tenants', i, 'flood', j],
            `VTEP ${ip.address} has no publicKey, and encryption is required${why}: write { vtep: ${ip.address}, publicKey: KEY }, or set encryption: off`,
          );
      });
      list(tenant.fdb).forEach((e, j) => {
        const ip = valid(HostAddress, record(e).vtep);
        if (ip && !keyOfVtep.has(ip.address))
          add(['tenants', i, 'fdb', j, 'vtep'], `VTEP ${ip.address} has no publicKey (give it one in a flood entry), and encryption is required${why}`);
      });
    }
    const worst = underlayMtu !== undefined && locals.length > 0 ? worstOverhead(families, encaps, encrypted) : undefined;
    const maxMtu = worst && underlayMtu! - worst.overhead;
    const why =
      worst &&
      `underlay.mtu ${underlayMtu} minus ${worst.overhead} bytes of ${encrypted ? 'encrypted ' : ''}${ENCAP_NAMES[worst.encap]} over IPv${worst.family}`;

    const macs = new Map<unknown, string>(); // one L2 segment: port MACs and static FDB MACs
    const addresses = new Map<unknown, string>();
    list(tenant.ports).forEach((p, j) => {
      const port = record(p);
      const path = (key: string) => ['tenants', i, 'ports', j, key];
      const tap = valid(TapName, port.tap);
      if (tap !== undefined) once(taps, tap, `${at}.ports[${j}]`, path('tap'), `TAP name "${tap}"`);
      const attach = valid(TapName, port.attach);
      // A tagged attached port is one VLAN of a trunk (checkTrunks).
      if (attach !== undefined && port.vlan === undefined) once(taps, attach, `${at}.ports[${j}]`, path('attach'), `interface "${attach}"`);
      if (port.tap === undefined && port.attach === undefined && p !== null && typeof p === 'object' && !Array.isArray(p))
        add(['tenants', i, 'ports', j], 'a port needs tap: NAME (a TAP vtepd creates) or attach: NAME (an interface that exists, vtepd attaches it)');
      if (port.attach !== undefined) return checkAttached(port, path, maxMtu, why, add);
      const mac = valid(Mac, port.mac);
      if (mac !== undefined) once(macs, mac, `${at}.ports[${j}].mac`, path('mac'), `MAC ${mac}`);
      const address = valid(Cidr, port.address);
      if (address) once(addresses, address.address, `${at}.ports[${j}].address`, path('address'), `address ${address.address}`);
      const mtu = valid(PortMtu, port.mtu);
      if (mtu !== undefined && maxMtu !== undefined && mtu > maxMtu)
        warnings.push({
          path: path('mtu'),
          message: `${mtu} exceeds ${why} (at most ${maxMtu}): larger frames are answered with ICMP too-big${valid(MssClamp, tenant.mssClamp) === 'off' || tenant.mssClamp === undefined ? ' (set mssClamp to spare TCP the round trip)' : ''}`,
        });
      const effective = mtu ?? maxMtu;
      if (address?.family === 6 && effective !== undefined && effective < 1280)
        add(path(mtu === undefined ? 'address' : 'mtu'), `an IPv6 address needs a port MTU of at least 1280, not ${effective}`);
    });

    const flood = new Map<unknown, string>();
    list(tenant.flood).forEach((v, j) => {
      const peer = peerOf(v);
      const path = peer.object ? ['tenants', i, 'flood', j, 'vtep'] : ['tenants', i, 'flood', j];
      const vtep = checkVtep(path, peer.vtep);
      if (vtep !== undefined) once(flood, vtep, `${at}.flood[${j}]`, path, `VTEP ${vtep}`);
    });
    list(tenant.fdb).forEach((e, j) => {
      const entry = record(e);
      checkVtep(['tenants', i, 'fdb', j, 'vtep'], entry.vtep);
      const mac = valid(Mac, entry.mac);
      if (mac !== undefined) once(macs, mac, `${at}.fdb[${j}].mac`, ['tenants', i, 'fdb', j, 'mac'], `MAC ${mac}`);
    });
  });

  // Roles: hubs only (and always) on a spoke, nat only on a spoke, a spoke floods to its hubs.
  const role = valid(RoleName, root.role) ?? 'mesh';
  if (role === 'spoke') {
    if (root.hubs === undefined || (Array.isArray(root.hubs) && root.hubs.length === 0))
      add(['hubs'], 'a spoke needs at least one hub, like hubs: [ { address: 10.0.0.10 } ]');
    if (Array.isArray(root.hubs) && root.hubs.length > 8) add(['hubs'], `at most 8 hubs, not ${root.hubs.length}`);
    list(root.tenants).forEach((t, i) => {
      if (list(record(t).flood).length > 0) add(['tenants', i, 'flood'], 'a spoke floods to its active hub only: list the hubs under hubs, not here');
    });
  } else if (root.hubs !== undefined) {
    add(['hubs'], `only a spoke has hubs (role is ${role})`);
  }
  if (root.nat === true && role !== 'spoke')
    add(['nat'], `only a spoke is configured as behind NAT (role is ${role}); a hub learns NAT'd spokes from their probes`);
  const hubSeen = new Map<string, string>();
  const port = valid(intIn(1, 65535), underlay.port) ?? 4789;
  list(root.hubs).forEach((h, j) => {
    const hub = record(h);
    const address = checkVtep(['hubs', j, 'address'], hub.address);
    if (address !== undefined) {
      const p = valid(intIn(1, 65535), hub.port) ?? port;
      once(hubSeen, `${address}/${p}`, `hubs[${j}]`, ['hubs', j, 'address'], `hub ${address} port ${p}`);
    }
    if (hub.publicKey === undefined && identity && role === 'spoke')
      add(['hubs', j], "a spoke with an identity pins each hub by its key: add publicKey (the hub's, from vtepd pubkey)");
    if (hub.publicKey !== undefined && !identity) add(['hubs', j, 'publicKey'], `publicKey ${NO_IDENTITY}`);
    const mtu = valid(intIn(576, 65535), hub.mtu);
    if (mtu !== undefined && underlayMtu !== undefined && mtu > underlayMtu)
      add(['hubs', j, 'mtu'], `must be at most underlay.mtu (${underlayMtu}): the path carries no more than the link`);
    else if (mtu !== undefined && mtu < 1280 && valid(HostAddress, hub.address)?.family === 6)
      add(['hubs', j, 'mtu'], 'must be at least 1280 toward an IPv6 hub');
  });

  // A hub admits spokes by key: spokes only on a hub with an identity, each key once.
  if (root.spokes !== undefined) {
    if (role !== 'hub') add(['spokes'], `only a hub lists spokes (role is ${role})`);
    else if (!identity) add(['spokes'], NO_IDENTITY);
  } else if (role === 'hub' && identity) {
    warnings.push({ path: ['spokes'], message: 'no spokes are listed: a hub with an identity admits only the spokes whose keys it lists' });
  }
  const spokeKeys = new Map<unknown, string>();
  const spokeNames = new Map<unknown, string>();
  const carried = new Set(list(root.tenants).map((t) => valid(Vni, record(t).vni)));
  list(root.spokes).forEach((sp, j) => {
    const spoke = record(sp);
    const key = valid(PublicKey, spoke.publicKey);
    if (key !== undefined) once(spokeKeys, key, `spokes[${j}]`, ['spokes', j, 'publicKey'], 'spoke publicKey');
    const name = valid(SpokeName, spoke.name);
    if (name !== undefined) once(spokeNames, name, `spokes[${j}]`, ['spokes', j, 'name'], `spoke name "${name}"`);
    list(spoke.vnis).forEach((v, k) => {
      const vni = valid(Vni, v);
      if (vni !== undefined && !carried.has(vni)) warnings.push({ path: ['spokes', j, 'vnis', k], message: `no tenant here has VNI ${vni}` });
    });
  });

  checkDirectory(record(root.directory), root.directory !== undefined, locals, add);
  // A GRE-TAP key K and an NVGRE key with VSID K >> 8 look alike on the wire.
  for (const g of greKeys) {
    const owner = nvgreVsids.get(g.vni >>> 8);
    if (owner !== undefined && owner !== g.at) {
      add(['tenants', g.i, 'vni'], `GRE-TAP key ${g.vni} would be read as NVGRE VSID ${g.vni >>> 8} of ${owner}; pick a VNI whose top 16 bits differ`);
    }
  }
  checkTrunks(root, add);
  return issues;
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^([A-Za-z_$][\w$]*|\d+)$/.test(String(p))) out += out ? `.${String(p)}` : String(p);
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || '(root)';
}

/** Where a node is in the source: offset (for the order), line and column (1-based). */
export interface SourcePosition {
  offset: number;
  line: number;
  col: number;
}
/** The position of the node at `path` (`key`: the key itself, e.g. an unknown key). */
export type Locate = (path: readonly PropertyKey[], what: 'value' | 'key') => SourcePosition | undefined;

/** The raw value at `path` in the parsed data. */
function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/**
 * The directory has one backend, etcd or evpn; EVPN's routes carry an IPv4 VTEP address
 * (underlay.local), and its router id defaults to it.
 */
function checkDirectory(dir: Record<string, unknown>, present: boolean, locals: Ip[], add: (path: PropertyKey[], message: string) => void): void {
  if (!present) return;
  if (dir.etcd !== undefined && dir.evpn !== undefined)
    add(['directory', 'evpn'], 'directory.etcd and directory.evpn are exclusive: the members and MACs come from etcd or from BGP EVPN, not both');
  else if (dir.etcd === undefined && dir.evpn === undefined && Object.keys(dir).length > 0)
    add(
      ['directory'],
      'needs a backend: etcd (like { etcd: { endpoints: [ "http://10.0.0.9:2379" ] } }) or evpn (like { evpn: { asn: 65000, neighbors: [ { address: 10.0.0.2 } ] } })',
    );
  if (dir.evpn === undefined || locals.length === 0 || locals.some((l) => l.family === 4)) return;
  add(['directory', 'evpn'], 'needs an IPv4 underlay.local: the routes carry the VTEP address, and IPv6 VTEPs are not built yet');
  if (record(dir.evpn).routerId === undefined)
    add(['directory', 'evpn', 'routerId'], 'is required when underlay.local has no IPv4 address: set the BGP router id, an IPv4 address like 10.0.0.1');
}

/** A zod issue as the user reads it: an unknown key with the one meant, a wrong type with what was given. */
function schemaIssues(data: unknown, iss: z.core.$ZodIssue): Issue[] {
  if (iss.code === 'unrecognized_keys') return iss.keys.map((k) => ({ path: [...iss.path, k], message: unknownKey(iss.path, k), key: true }));
  if (iss.code === 'invalid_key') return [{ path: iss.path, message: iss.issues[0]?.message ?? iss.message, key: true }];
  const hint = iss.code === 'invalid_type' || iss.code === 'invalid_value' || iss.code === 'invalid_union' ? wrongValueHint(data, iss) : undefined;
  return [{ path: iss.path, message: hint ? `${iss.message} (${hint})` : iss.message }];
}

/**
 * For a value of the wrong type or not one of the names: what was received and the fix
 * that would pass (`received the string "5001"; drop the quotes`, `received the number 7;
 * quote it`), or the name meant (`did you mean vxlan?`).
 */
function wrongValueHint(data: unknown, iss: z.core.$ZodIssue): string | undefined {
  const value = valueAt(data, iss.path);
  if (value === undefined) return undefined;
  const names = (i: z.core.$ZodIssue): unknown[] => (i.code === 'invalid_value' ? i.values : i.code === 'invalid_union' ? i.errors.flat().flatMap(names) : []);
  const near =
    typeof value === 'string'
      ? closest(
          value,
          names(iss).filter((x): x is string => typeof x === 'string'),
        )
      : undefined;
  if (near) return `did you mean ${near}?`;
  const passes = (v: unknown) => passesWith(data, iss.path, v);
  if (typeof value === 'string') {
    const unquoted =
      value.trim() !== '' && Number.isFinite(Number(value)) ? Number(value) : value === 'true' || value === 'false' ? value === 'true' : undefined;
    if (unquoted !== undefined && passes(unquoted)) return `received the string ${JSON.stringify(value)}; drop the quotes`;
    return iss.code === 'invalid_type' ? `received the string ${JSON.stringify(value)}` : undefined;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return `received the ${typeof value} ${value}${passes(String(value)) ? '; quote it' : ''}`;
  if (value === null) return 'received an empty value';
  return Array.isArray(value) ? 'received a list' : 'received a mapping';
}

/** Whether the schema takes `data` with the value at `path` replaced by `v` (no issue left there). */
function passesWith(data: unknown, path: readonly PropertyKey[], v: unknown): boolean {
  const copy = structuredClone(data) as Record<PropertyKey, unknown>;
  let parent = copy;
  for (const p of path.slice(0, -1)) parent = parent[p] as Record<PropertyKey, unknown>;
  parent[path.at(-1)!] = v;
  const same = (a: readonly PropertyKey[]) => a.length === path.length && a.every((p, i) => p === path[i]);
  return !(Root.safeParse(copy).error?.issues ?? []).some((i) => same(i.path));
}

/**
 * The trunks, each entry's VLANs in ascending order, with every tagged attached port
 * ({ attach: eth1, vlan: 100 }) merged into the entry of its interface (name and netns), or
 * in a new entry after the configured ones.
 */
function trunksOf(trunks: z.output<typeof Trunk>[], tenants: z.output<typeof Tenant>[]): TrunkConfig[] {
  const out: TrunkConfig[] = trunks.map((t) => ({
    attach: t.attach,
    netns: t.netns ?? null,
    vlans: Object.entries(t.vlans ?? {}).map(([vlan, tenant]) => ({ vlan: Number(vlan), tenant })),
    native: t.native ?? null,
    pool: t.pool ?? null,
    tenants: t.tenants ?? [],
  }));
  for (const t of tenants)
    for (const p of t.ports) {
      if (p.attach === undefined || p.vlan === undefined) continue;
      const netns = p.netns ?? null;
      let trunk = out.find((x) => x.attach === p.attach && x.netns === netns);
      if (!trunk) out.push((trunk = { attach: p.attach, netns, vlans: [], native: null, pool: null, tenants: [] }));
      trunk.vlans.push({ vlan: p.vlan, tenant: t.name });
    }
  for (const trunk of out) trunk.vlans.sort((a, b) => a.vlan - b.vlan);
  return out;
}

/**
 * Validate already-parsed data (e.g. JSON from the API socket). `locate` (YAML read with
 * positions) gives every error and warning its line and column, and orders the errors as
 * they are in the source; without it they come in schema order.
 */
export function validateConfig(data: unknown, locate?: Locate): ConfigResult {
  const issues: Issue[] = [];
  const result = Root.safeParse(data);
  for (const iss of result.error?.issues ?? []) issues.push(...schemaIssues(data, iss));
  const warned: Issue[] = [];
  issues.push(...crossCheck(data, warned));
  const placed = (iss: Issue) => {
    const at = locate?.(iss.path, iss.key ? 'key' : 'value');
    return { offset: at?.offset ?? 0, error: { path: formatPath(iss.path), message: iss.message, ...(at ? { line: at.line, col: at.col } : {}) } };
  };
  if (issues.length > 0 || !result.success) {
    const order = issues.map((iss, n) => ({ ...placed(iss), n }));
    order.sort((a, b) => a.offset - b.offset || a.n - b.n);
    return { ok: false, errors: order.map((o) => o.error) };
  }

  const { log, limits, control, metrics, underlay, tenants, trunks, role, hubs, nat, keepalive, deadInterval, pmtuDiscovery, identity, spokes, directory } =
    result.data;
  const locals = (Array.isArray(underlay.local) ? underlay.local : [underlay.local]).map((ip) => ({ address: ip.address, family: ip.family }));
  const families = locals.map((l) => l.family);
  const config: Config = {
    log,
    limits,
    control,
    metrics: metrics?.listen ?? null,
    underlay: { ...underlay, local: locals[0]!.address, family: locals[0]!.family, locals },
    tenants: tenants.map((t) => {
      const vtepEncap: Record<string, Encap> = {};
      const vtepKeys: Record<string, string> = {};
      const flood = t.flood.map((f) => {
        const peer = typeof f === 'string' ? { vtep: f, encap: undefined, publicKey: undefined } : f;
        vtepEncap[peer.vtep] = peer.encap ?? t.encap;
        if (peer.publicKey) vtepKeys[peer.vtep] = peer.publicKey;
        return peer.vtep;
      });
      const fdb = t.fdb.map((e) => {
        vtepEncap[e.vtep] = e.encap ?? t.encap;
        return { mac: e.mac, vtep: e.vtep };
      });
      const encryption = t.encryption ?? (identity ? 'required' : 'off');
      const worst = worstOverhead(families, new Set([t.encap, ...Object.values(vtepEncap)]), encryption === 'required');
      return {
        ...t,
        learnFromUnderlay: t.learnFromUnderlay ?? !directory,
        encryption,
        flood,
        fdb,
        vtepEncap,
        vtepKeys,
        ports: t.ports
          .filter((p) => p.attach === undefined || p.vlan === undefined)
          .map((p) => ({
            tap: (p.tap ?? p.attach)!,
            kind: p.attach !== undefined ? ('attach' as const) : ('tap' as const),
            netns: p.netns ?? null,
            address: p.address ?? null,
            mac: p.mac ?? null,
            mtu: p.mtu ?? underlay.mtu - worst.overhead,
            vlan: p.vlan ?? null,
          })),
      };
    }),
    trunks: trunksOf(trunks, tenants),
    role,
    hubs: (hubs ?? []).map((h) => ({
      address: h.address.address,
      family: h.address.family,
      port: h.port ?? underlay.port,
      mtu: h.mtu ?? null,
      publicKey: h.publicKey ?? null,
    })),
    identity: identity ?? null,
    spokes: (spokes ?? []).map((sp, j) => ({ publicKey: sp.publicKey, vnis: [...new Set(sp.vnis)], name: sp.name ?? `spoke${j}` })),
    nat,
    keepalive,
    deadInterval,
    pmtuDiscovery,
    directory: directory
      ? {
          etcd: directory.etcd
            ? { endpoints: directory.etcd.endpoints.map((e) => e.replace(/\/$/, '')), prefix: directory.etcd.prefix, leaseTtl: directory.etcd.leaseTtl }
            : null,
          evpn: directory.evpn
            ? {
                asn: directory.evpn.asn,
                neighbors: directory.evpn.neighbors.map((n) => ({ address: n.address, ...(n.password !== undefined ? { password: n.password } : {}) })),
                // crossCheck refused a config without routerId and without an IPv4 underlay address.
                routerId: directory.evpn.routerId ?? locals.find((l) => l.family === 4)!.address,
                gobgp: { api: directory.evpn.gobgp?.api ?? null },
                gracefulRestart: directory.evpn.gracefulRestart,
              }
            : null,
          freeze: directory.freeze,
        }
      : null,
  };
  const warnings = warned.map((w) => placed(w).error);
  return { ok: true, config, warnings, ...(locate ? { locate: (path: readonly PropertyKey[]) => locate(path, 'value') } : {}) };
}
