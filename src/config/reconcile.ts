/**
 * Reload as a diff: compare the running config with a new, already validated one, and
 * produce the smallest list of changes that turns one into the other — tenants, ports,
 * flood lists, static FDB entries, policy, log level, the control socket and the metrics
 * endpoint. A tenant (or port) that did not change appears in no change, so nothing
 * touches it: it keeps its learned MACs and loses no packet.
 *
 * Identity: a tenant is its name, a port its TAP name. A tenant whose VNI changed is a
 * different layer-2 segment: removed and added again. A port that moved to another
 * tenant or namespace is removed and added again; a port whose MTU, MAC or address
 * changed is changed in place (the TAP stays).
 *
 * What cannot change without a restart (the underlay: local address, UDP port, source
 * ports) is an error with its path, and the reload is refused as a whole.
 *
 * `plan` is pure; `applyPlan` runs the changes against a Target (the Daemon; a fake in
 * tests), carries on past a failed change, and returns the config that really runs:
 * the old one with every change that succeeded applied to it.
 */
import {
  type Config,
  type ConfigError,
  type LogLevel,
  type MetricsConfig,
  type PortConfig,
  portKind,
  type StaticFdbEntry,
  type TenantConfig,
  type TrunkConfig,
} from './config.js';

/** A tenant's policy: everything reload changes in place without touching its table. */
/** The node's role and its timers (top-level keys; src/overlay/roles.ts). */
export type RolesChange = Pick<Config, 'role' | 'hubs' | 'nat' | 'keepalive' | 'deadInterval' | 'pmtuDiscovery' | 'spokes'> & {
  /** identity.rekeyInterval (s); null without an identity. */
  rekeyInterval: number | null;
};
export const ROLE_KEYS = ['role', 'hubs', 'nat', 'keepalive', 'deadInterval', 'pmtuDiscovery'] as const;

export type PolicyChange = Pick<TenantConfig, 'learning' | 'learnFromUnderlay' | 'ageing' | 'maxMacs' | 'acceptFrom' | 'stormControl' | 'moveDampening'>;

export type Change =
  | { op: 'port.remove'; tenant: string; tap: string; why: string }
  | { op: 'trunk.remove'; attach: string; why: string }
  | { op: 'trunk.set'; trunk: TrunkConfig; was: TrunkConfig | null }
  | { op: 'tenant.remove'; tenant: string; why: string }
  | ({ op: 'tenant.policy'; tenant: string; was: PolicyChange } & PolicyChange)
  | { op: 'tenant.flood'; tenant: string; flood: string[]; added: string[]; removed: string[] }
  | { op: 'fdb.del'; tenant: string; mac: string }
  | { op: 'fdb.set'; tenant: string; entry: StaticFdbEntry; was?: string }
  | { op: 'tenant.add'; tenant: string; config: TenantConfig }
  | { op: 'port.add'; tenant: string; port: PortConfig }
  | { op: 'port.change'; tenant: string; from: PortConfig; to: PortConfig }
  | { op: 'tenant.mss'; tenant: string; mssClamp: TenantConfig['mssClamp']; was: TenantConfig['mssClamp'] }
  | { op: 'tenant.innerVlan'; tenant: string; innerVlan: TenantConfig['innerVlan']; was: TenantConfig['innerVlan'] }
  | ({ op: 'roles'; was: RolesChange } & RolesChange)
  | { op: 'log.level'; level: LogLevel }
  | { op: 'limits'; maxMacs: number }
  | { op: 'control.socket'; socket: string }
  | { op: 'metrics'; metrics: MetricsConfig | null };

/** What a plan is applied to. */
export interface Target {
  /** A tenant with its flood list and static entries, without ports (they follow as port.add). */
  addTenant(t: TenantConfig): Promise<void> | void;
  /** A tenant with everything it has: ports (their TAPs are deleted), MACs, flood references. */
  removeTenant(name: string): Promise<void> | void;
  setPolicy(name: string, p: PolicyChange): void;
  setFlood(name: string, flood: string[]): void;
  setStatic(name: string, entry: StaticFdbEntry): void;
  delStatic(name: string, mac: string): void;
  addPort(tenant: string, p: PortConfig): Promise<void>;
  removePort(tenant: string, tap: string): Promise<void> | void;
  changePort(tenant: string, from: PortConfig, to: PortConfig): Promise<void>;
  setLogLevel(level: LogLevel): void;
  /** Tagged frames from VTEPs: dropped or let through. */
  setInnerVlan(name: string, v: TenantConfig['innerVlan']): void;
  /** MSS clamping of a tenant (off, auto, or an MSS). */
  setMssClamp(name: string, clamp: TenantConfig['mssClamp']): void;
  /** The role, hubs, NAT and liveness timers: hubs and spokes kept where they did not change. */
  setRoles(r: RolesChange): void;
  /** The switch-wide FDB limit; lowering it refuses new MACs, it removes none. */
  setMaxMacsTotal(n: number): void;
  setControl(socket: string): Promise<void>;
  setMetrics(m: MetricsConfig | null): Promise<void>;
  /** A trunk as its config says: its interface attached if new, its VLAN ports added and removed as a diff. */
  setTrunk(t: TrunkConfig): Promise<void>;
  /** A trunk with its VLAN ports; its interface is let go. */
  removeTrunk(attach: string): Promise<void> | void;
}

export interface Plan {
  changes: Change[];
  /** Changes a reload cannot make (the reload is refused when there is any). */
  errors: ConfigError[];
}

/** Deep equality of config values (plain data, keys in the parser's order). */
export const eqJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A VTEP known before and after is reached with another encapsulation. */
function encapChanged(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const before = a ?? {};
  return Object.entries(b ?? {}).some(([addr, e]) => addr in before && before[addr] !== e);
}

/** The changes that turn `running` into `next`, in the order they must be applied. */
export function plan(running: Config, next: Config): Plan {
  const errors: ConfigError[] = [];
  for (const key of ['local', 'port', 'sourcePorts', 'queues'] as const) {
    if (running.underlay[key] !== next.underlay[key])
      errors.push({
        path: `underlay.${key}`,
        message: `is ${String(running.underlay[key])} in the running daemon; changing the underlay needs a restart (vtepd restart), not a reload`,
      });
  }
  if (!eqJson(running.underlay.cpus ?? null, next.underlay.cpus ?? null))
    errors.push({
      path: 'underlay.cpus',
      message: 'differs from the running daemon; pinning the fast path to other CPUs needs a restart (vtepd restart), not a reload',
    });
  if (!errors.some((e) => e.path === 'underlay.local') && !eqJson(running.underlay.locals, next.underlay.locals))
    errors.push({
      path: 'underlay.local',
      message: "the underlay addresses differ from the running daemon's; changing the underlay needs a restart (vtepd restart), not a reload",
    });
  if (running.identity?.privateKeyFile !== next.identity?.privateKeyFile)
    errors.push({
      path: 'identity',
      message: `${running.identity ? `is ${running.identity.privateKeyFile}` : 'is absent'} in the running daemon; a new identity needs a restart (vtepd restart), not a reload`,
    });
  if (!eqJson(running.directory ?? null, next.directory ?? null))
    errors.push({
      path: 'directory',
      message: `${running.directory ? "differs from the running daemon's" : 'is absent in the running daemon'}; changing the directory needs a restart (vtepd restart), not a reload`,
    });
  if (errors.length) return { changes: [], errors };

  const removePorts: Change[] = [];
  const removeTenants: Change[] = [];
  const modify: Change[] = [];
  const addTenants: Change[] = [];
  const addPorts: Change[] = [];
  const changePorts: Change[] = [];

  const oldT = new Map(running.tenants.map((t) => [t.name, t]));
  const newT = new Map(next.tenants.map((t) => [t.name, t]));
  // Where every TAP is now and will be.
  const oldPorts = new Map<string, { tenant: string; port: PortConfig }>();
  for (const t of running.tenants) for (const p of t.ports) oldPorts.set(p.tap, { tenant: t.name, port: p });
  const newPorts = new Map<string, { tenant: string; port: PortConfig }>();
  for (const t of next.tenants) for (const p of t.ports) newPorts.set(p.tap, { tenant: t.name, port: p });

  // Tenants that go, or come back as a different segment (VNI changed).
  const replaced = new Set<string>();
  for (const t of running.tenants) {
    const n = newT.get(t.name);
    if (!n) removeTenants.push({ op: 'tenant.remove', tenant: t.name, why: 'not in the new config' });
    else if (
      n.vni !== t.vni ||
      n.encap !== t.encap ||
      encapChanged(t.vtepEncap, n.vtepEncap) ||
      n.encryption !== t.encryption ||
      !eqJson(t.vtepKeys, n.vtepKeys)
    ) {
      // Another VNI, another encapsulation, encryption or keys on the wire: another segment.
      replaced.add(t.name);
      const why =
        n.vni !== t.vni
          ? `VNI ${t.vni} -> ${n.vni}`
          : n.encap !== t.encap
            ? `encap ${t.encap} -> ${n.encap}`
            : n.encryption !== t.encryption
              ? `encryption ${t.encryption} -> ${n.encryption}`
              : !eqJson(t.vtepKeys, n.vtepKeys)
                ? 'the keys of its VTEPs changed'
                : 'encapsulation toward its VTEPs changed';
      removeTenants.push({ op: 'tenant.remove', tenant: t.name, why });
    }
  }
  const kept = (name: string) => oldT.has(name) && newT.has(name) && !replaced.has(name);

  // Ports of kept tenants that leave, move, or change namespace.
  for (const [tap, o] of oldPorts) {
    if (!kept(o.tenant)) continue; // the tenant's removal takes its ports
    const n = newPorts.get(tap);
    if (!n) removePorts.push({ op: 'port.remove', tenant: o.tenant, tap, why: 'not in the new config' });
    else if (n.tenant !== o.tenant) removePorts.push({ op: 'port.remove', tenant: o.tenant, tap, why: `moves to tenant ${n.tenant}` });
    else if (portKind(n.port) !== portKind(o.port))
      removePorts.push({ op: 'port.remove', tenant: o.tenant, tap, why: `becomes ${portKind(n.port) === 'attach' ? 'an attached interface' : 'a TAP'}` });
    else if ((n.port.vlan ?? null) !== (o.port.vlan ?? null))
      removePorts.push({ op: 'port.remove', tenant: o.tenant, tap, why: `its VLAN ${o.port.vlan ?? 'none'} -> ${n.port.vlan ?? 'none'}` });
    else if (n.port.netns !== o.port.netns)
      removePorts.push({ op: 'port.remove', tenant: o.tenant, tap, why: `moves from namespace ${o.port.netns ?? '(host)'} to ${n.port.netns ?? '(host)'}` });
  }

  // Kept tenants: policy, flood list, static entries.
  for (const t of next.tenants) {
    if (!kept(t.name)) continue;
    const o = oldT.get(t.name)!;
    const policy = (x: TenantConfig): PolicyChange => ({
      learning: x.learning,
      learnFromUnderlay: x.learnFromUnderlay,
      ageing: x.ageing,
      maxMacs: x.maxMacs,
      acceptFrom: x.acceptFrom,
      stormControl: x.stormControl,
      moveDampening: x.moveDampening,
    });
    if (JSON.stringify(policy(o)) !== JSON.stringify(policy(t))) modify.push({ op: 'tenant.policy', tenant: t.name, ...policy(t), was: policy(o) });
    if (!eqJson([...o.flood].sort(), [...t.flood].sort())) {
      const added = t.flood.filter((v) => !o.flood.includes(v));
      const removed = o.flood.filter((v) => !t.flood.includes(v));
      modify.push({ op: 'tenant.flood', tenant: t.name, flood: t.flood, added, removed });
    }
    const oldFdb = new Map(o.fdb.map((e) => [e.mac, e.vtep]));
    const newFdb = new Map(t.fdb.map((e) => [e.mac, e.vtep]));
    for (const mac of oldFdb.keys()) if (!newFdb.has(mac)) modify.push({ op: 'fdb.del', tenant: t.name, mac });
    for (const e of t.fdb) {
      const was = oldFdb.get(e.mac);
      if (was !== e.vtep) modify.push({ op: 'fdb.set', tenant: t.name, entry: e, ...(was !== undefined ? { was } : {}) });
    }
    if (!eqJson(o.mssClamp, t.mssClamp)) modify.push({ op: 'tenant.mss', tenant: t.name, mssClamp: t.mssClamp, was: o.mssClamp });
    if ((o.innerVlan ?? 'drop') !== (t.innerVlan ?? 'drop'))
      modify.push({ op: 'tenant.innerVlan', tenant: t.name, innerVlan: t.innerVlan, was: o.innerVlan ?? 'drop' });
  }

  // New tenants (and replaced ones), then every port that is not running where it should.
  for (const t of next.tenants) {
    if (kept(t.name)) continue;
    addTenants.push({ op: 'tenant.add', tenant: t.name, config: { ...t, ports: [] } });
  }
  for (const t of next.tenants) {
    for (const p of t.ports) {
      const o = oldPorts.get(p.tap);
      const same =
        o && kept(t.name) && o.tenant === t.name && o.port.netns === p.netns && portKind(o.port) === portKind(p) && (o.port.vlan ?? null) === (p.vlan ?? null);
      if (!same) addPorts.push({ op: 'port.add', tenant: t.name, port: p });
      else if (!eqJson(o.port, p)) changePorts.push({ op: 'port.change', tenant: t.name, from: o.port, to: p });
    }
  }

  const services: Change[] = [];
  const roles = (c: Config): RolesChange => ({
    role: c.role,
    hubs: c.hubs,
    nat: c.nat,
    keepalive: c.keepalive,
    deadInterval: c.deadInterval,
    pmtuDiscovery: c.pmtuDiscovery,
    spokes: c.spokes,
    rekeyInterval: c.identity?.rekeyInterval ?? null,
  });
  if (!eqJson(roles(running), roles(next))) services.push({ op: 'roles', ...roles(next), was: roles(running) });
  if (running.log.level !== next.log.level) services.push({ op: 'log.level', level: next.log.level });
  if (running.limits.maxMacs !== next.limits.maxMacs) services.push({ op: 'limits', maxMacs: next.limits.maxMacs });
  if (running.control.socket !== next.control.socket) services.push({ op: 'control.socket', socket: next.control.socket });
  if (!eqJson(running.metrics, next.metrics)) services.push({ op: 'metrics', metrics: next.metrics });

  const { removeTrunks, setTrunks } = planTrunks(running, next, [...removeTenants, ...addTenants]);
  return {
    changes: [...removeTrunks, ...removePorts, ...removeTenants, ...modify, ...addTenants, ...addPorts, ...changePorts, ...setTrunks, ...services],
    errors: [],
  };
}

/**
 * Trunks by interface: one that left (or moved namespace) is removed before anything else;
 * one that is new or changed is set after the tenants were added. A tenant removed or added
 * again (its VNI changed) takes its VLAN ports with it, so a trunk that names it is set again.
 */
function planTrunks(running: Config, next: Config, tenantChanges: Change[]): { removeTrunks: Change[]; setTrunks: Change[] } {
  const touched = new Set(tenantChanges.map((c) => ('tenant' in c ? c.tenant : '')));
  const names = (t: TrunkConfig) => [...t.vlans.map((v) => v.tenant), ...(t.native ? [t.native] : []), ...t.tenants];
  const oldT = new Map((running.trunks ?? []).map((t) => [t.attach, t]));
  const removeTrunks: Change[] = [];
  const setTrunks: Change[] = [];
  for (const t of next.trunks ?? []) {
    const o = oldT.get(t.attach);
    if (o && o.netns !== t.netns)
      removeTrunks.push({ op: 'trunk.remove', attach: o.attach, why: `moves from namespace ${o.netns ?? '(host)'} to ${t.netns ?? '(host)'}` });
    const same = o && o.netns === t.netns && eqJson(o, t);
    if (!same || names(t).some((n) => touched.has(n))) setTrunks.push({ op: 'trunk.set', trunk: t, was: o && o.netns === t.netns ? o : null });
  }
  const newNames = new Set((next.trunks ?? []).map((t) => t.attach));
  for (const o of running.trunks ?? []) if (!newNames.has(o.attach)) removeTrunks.push({ op: 'trunk.remove', attach: o.attach, why: 'not in the new config' });
  return { removeTrunks, setTrunks };
}

/** One line a person reads, e.g. "tenant red: added (VNI 5002)". */
export function describeChange(c: Change): string {
  switch (c.op) {
    case 'trunk.remove':
      return `trunk ${c.attach}: removed (${c.why})`;
    case 'trunk.set':
      return `trunk ${c.trunk.attach}: ${c.was ? `changed (${trunkDiff(c.was, c.trunk)})` : `attached (${trunkText(c.trunk)})`}`;
    case 'port.remove':
      return `port ${c.tap} (tenant ${c.tenant}): removed (${c.why})`;
    case 'tenant.remove':
      return `tenant ${c.tenant}: removed (${c.why})`;
    case 'tenant.policy':
      return `tenant ${c.tenant}: ${diffText(c.was, c, POLICY_TEXT)}`;
    case 'tenant.flood':
      return `tenant ${c.tenant}: flood list ${[...c.added.map((v) => `+${v}`), ...c.removed.map((v) => `-${v}`)].join(' ')}`;
    case 'fdb.del':
      return `tenant ${c.tenant}: static entry ${c.mac} removed`;
    case 'fdb.set':
      return `tenant ${c.tenant}: static entry ${c.entry.mac} -> vtep ${c.entry.vtep}${c.was ? ` (was vtep ${c.was})` : ''}`;
    case 'tenant.add':
      return `tenant ${c.tenant}: added (VNI ${c.config.vni})`;
    case 'port.add':
      return `port ${c.port.tap} (tenant ${c.tenant}): ${portKind(c.port) === 'attach' ? 'attached' : 'added'}`;
    case 'port.change': {
      const what = (['mtu', 'mac', 'address'] as const).filter((k) => !eqJson(c.from[k], c.to[k]));
      return `port ${c.to.tap} (tenant ${c.tenant}): changed ${what.join(', ')}`;
    }
    case 'tenant.mss':
      return `tenant ${c.tenant}: mssClamp ${c.was} -> ${c.mssClamp}`;
    case 'tenant.innerVlan':
      return `tenant ${c.tenant}: innerVlan ${c.was} -> ${c.innerVlan}`;
    case 'roles':
      return [diffText(c.was, c, ROLES_TEXT), spokesText(c.was.spokes, c.spokes)].filter(Boolean).join(', ');
    case 'log.level':
      return `log level ${c.level}`;
    case 'limits':
      return `limits: maxMacs ${c.maxMacs} over all tenants`;
    case 'control.socket':
      return `control socket ${c.socket}`;
    case 'metrics':
      return c.metrics ? `metrics on ${c.metrics.listen}` : 'metrics off';
  }
}

/** "VLAN 100 blue, 200 red, native green, pool 100-199 for orange". */
function trunkText(t: TrunkConfig): string {
  const parts = [
    ...(t.vlans.length ? [`VLAN ${t.vlans.map((v) => `${v.vlan} ${v.tenant}`).join(', ')}`] : []),
    ...(t.native ? [`native ${t.native}`] : []),
    ...(t.pool ? [`pool ${t.pool.first}-${t.pool.last}${t.tenants.length ? ` for ${t.tenants.join(', ')}` : ''}`] : []),
  ];
  return parts.join(', ') || 'no VLANs';
}

/** What changed on a trunk: +VLAN / -VLAN, native, pool. */
function trunkDiff(was: TrunkConfig, now: TrunkConfig): string {
  const key = (v: { vlan: number; tenant: string }) => `${v.vlan} ${v.tenant}`;
  const before = new Set(was.vlans.map(key));
  const after = new Set(now.vlans.map(key));
  const parts = [
    ...now.vlans.filter((v) => !before.has(key(v))).map((v) => `+VLAN ${key(v)}`),
    ...was.vlans.filter((v) => !after.has(key(v))).map((v) => `-VLAN ${key(v)}`),
  ];
  if (was.native !== now.native) parts.push(`native ${was.native ?? 'none'} -> ${now.native ?? 'none'}`);
  if (!eqJson(was.pool, now.pool) || !eqJson(was.tenants, now.tenants))
    parts.push(trunkText({ ...now, vlans: [], native: null }) === 'no VLANs' ? 'pool removed' : trunkText({ ...now, vlans: [], native: null }));
  return parts.join(', ') || 'its tenants were added again';
}

type Texts<T> = { [K in keyof T]?: (v: T[K]) => string };

/** "key old -> new" for each key of `texts` whose value differs, joined by commas. */
function diffText<T>(was: T, now: T, texts: Texts<T>): string {
  const keys = Object.keys(texts) as (keyof T)[];
  return keys
    .filter((k) => !eqJson(was[k], now[k]))
    .map((k) => `${String(k)} ${texts[k]!(was[k])} -> ${texts[k]!(now[k])}`)
    .join(', ');
}

const str = (v: unknown) => String(v);
const secs = (v: number | null) => (v === null ? 'none' : `${v}s`);
const POLICY_TEXT: Texts<PolicyChange> = {
  learning: str,
  learnFromUnderlay: str,
  ageing: secs,
  maxMacs: str,
  acceptFrom: str,
  stormControl: (v) => (v === 'off' ? 'off' : `${v.pps}/s burst ${v.burst}`),
  moveDampening: (v) => (v === 'off' ? 'off' : `${v.moves} in ${v.window}s hold ${v.hold}s`),
};
const ROLES_TEXT: Texts<RolesChange> = {
  role: str,
  hubs: (v) => (v.length ? v.map((h) => `${h.address}:${h.port}`).join(',') : 'none'),
  nat: str,
  keepalive: secs,
  deadInterval: secs,
  pmtuDiscovery: str,
  rekeyInterval: secs,
};

/** A hub's admitted spokes that came, went or changed (by name, key and VNIs). */
function spokesText(was: RolesChange['spokes'], now: RolesChange['spokes']): string {
  const key = (s: RolesChange['spokes'][number]) => JSON.stringify(s);
  const before = new Set(was.map(key));
  const after = new Set(now.map(key));
  const parts = [
    ...now.filter((s) => !before.has(key(s))).map((s) => `+${s.name} (${s.publicKey.slice(0, 10)}…, VNIs ${s.vnis.join(',')})`),
    ...was.filter((s) => !after.has(key(s))).map((s) => `-${s.name}`),
  ];
  return parts.length ? `spokes ${parts.join(' ')}` : '';
}

async function run(target: Target, c: Change): Promise<void> {
  switch (c.op) {
    case 'trunk.remove':
      return target.removeTrunk(c.attach);
    case 'trunk.set':
      return target.setTrunk(c.trunk);
    case 'port.remove':
      return target.removePort(c.tenant, c.tap);
    case 'tenant.remove':
      return target.removeTenant(c.tenant);
    case 'tenant.policy':
      return target.setPolicy(c.tenant, c);
    case 'tenant.flood':
      return target.setFlood(c.tenant, c.flood);
    case 'fdb.del':
      return target.delStatic(c.tenant, c.mac);
    case 'fdb.set':
      return target.setStatic(c.tenant, c.entry);
    case 'tenant.add':
      return target.addTenant(c.config);
    case 'port.add':
      return target.addPort(c.tenant, c.port);
    case 'port.change':
      return target.changePort(c.tenant, c.from, c.to);
    case 'tenant.mss':
      return target.setMssClamp(c.tenant, c.mssClamp);
    case 'tenant.innerVlan':
      return target.setInnerVlan(c.tenant, c.innerVlan);
    case 'roles': {
      const { op: _op, was: _was, ...r } = c;
      return target.setRoles(r);
    }
    case 'log.level':
      return target.setLogLevel(c.level);
    case 'limits':
      return target.setMaxMacsTotal(c.maxMacs);
    case 'control.socket':
      return target.setControl(c.socket);
    case 'metrics':
      return target.setMetrics(c.metrics);
  }
}

/** `config` with one change applied (pure: returns a new object). */
export function patch(config: Config, c: Change): Config {
  const cfg: Config = structuredClone(config);
  const tenant = (name: string) => cfg.tenants.find((t) => t.name === name);
  switch (c.op) {
    case 'trunk.remove':
      cfg.trunks = (cfg.trunks ?? []).filter((t) => t.attach !== c.attach);
      break;
    case 'trunk.set':
      cfg.trunks = [...(cfg.trunks ?? []).filter((t) => t.attach !== c.trunk.attach), structuredClone(c.trunk)];
      break;
    case 'port.remove': {
      const t = tenant(c.tenant);
      if (t) t.ports = t.ports.filter((p) => p.tap !== c.tap);
      break;
    }
    case 'tenant.remove':
      cfg.tenants = cfg.tenants.filter((t) => t.name !== c.tenant);
      break;
    case 'tenant.policy': {
      const t = tenant(c.tenant);
      if (t)
        Object.assign(t, {
          learning: c.learning,
          learnFromUnderlay: c.learnFromUnderlay,
          ageing: c.ageing,
          maxMacs: c.maxMacs,
          acceptFrom: c.acceptFrom,
          stormControl: c.stormControl,
          moveDampening: c.moveDampening,
        });
      break;
    }
    case 'tenant.flood': {
      const t = tenant(c.tenant);
      if (t) t.flood = [...c.flood];
      break;
    }
    case 'fdb.del': {
      const t = tenant(c.tenant);
      if (t) t.fdb = t.fdb.filter((e) => e.mac !== c.mac);
      break;
    }
    case 'fdb.set': {
      const t = tenant(c.tenant);
      if (t) t.fdb = [...t.fdb.filter((e) => e.mac !== c.entry.mac), { ...c.entry }];
      break;
    }
    case 'tenant.add':
      cfg.tenants.push(structuredClone(c.config));
      break;
    case 'port.add': {
      const t = tenant(c.tenant);
      if (t) t.ports.push({ ...c.port });
      break;
    }
    case 'port.change': {
      const t = tenant(c.tenant);
      if (t) t.ports = t.ports.map((p) => (p.tap === c.to.tap ? { ...c.to } : p));
      break;
    }
    case 'tenant.innerVlan': {
      const t = tenant(c.tenant);
      if (t) t.innerVlan = c.innerVlan;
      break;
    }
    case 'tenant.mss': {
      const t = tenant(c.tenant);
      if (t) t.mssClamp = c.mssClamp;
      break;
    }
    case 'roles': {
      const { op: _op, ...r } = c;
      Object.assign(cfg, structuredClone(r));
      break;
    }
    case 'log.level':
      cfg.log = { level: c.level };
      break;
    case 'limits':
      cfg.limits = { maxMacs: c.maxMacs };
      break;
    case 'control.socket':
      cfg.control = { socket: c.socket };
      break;
    case 'metrics':
      cfg.metrics = c.metrics ? { ...c.metrics } : null;
      break;
  }
  return cfg;
}

export interface ApplyResult {
  /** The config that now runs: `running` with every change that succeeded. */
  config: Config;
  applied: Change[];
  failed: { change: Change; error: string }[];
}

/** Apply changes in order; a failure is recorded and the rest still run. */
export async function applyPlan(running: Config, changes: Change[], target: Target): Promise<ApplyResult> {
  let config = running;
  const applied: Change[] = [];
  const failed: ApplyResult['failed'] = [];
  for (const c of changes) {
    try {
      await run(target, c);
      config = patch(config, c);
      applied.push(c);
    } catch (e) {
      failed.push({ change: c, error: (e as Error).message });
    }
  }
  return { config, applied, failed };
}
