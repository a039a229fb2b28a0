/**
 * Ports attached to a running daemon (`vtepd port add --net acme/web --tap web0 …`, issue
 * #13 self-service): what such a port is, where it goes, and how it survives a reload.
 *
 * A dynamic port names a network of the directory (`<tenant>/<name>`, src/directory/nets.ts)
 * and carries that network's VNI. It joins the config's tenant with that VNI when there is
 * one; else a tenant named after the network (`acme/web`: a config tenant's name cannot hold
 * a '/', so no name clashes) with the schema's default policy and an empty static flood list
 * (the directory's membership gives its flood list). The last dynamic port of such a tenant
 * takes the tenant with it.
 *
 * The records are the operator's request as given (strings, the MTU if any), so they are
 * checked by the same schema as a config port (validateConfig over a minimal config: the
 * same messages, the same defaults) and placed again after every reload: `withDynamic`
 * merges them into the next config before the reload plans, so a reload from the file keeps
 * them, and a config tenant that appears or goes with their VNI takes them in or hands them
 * back to a tenant of their own.
 *
 * A port can also name a tenant of the config (`vtepd port add --tenant blue --attach vnet7`,
 * issue #16: a hypervisor plugs a VM's TAP in; no directory needed). It is that tenant's while
 * the config has it; a reload whose file drops the tenant drops the port (logged, and said in
 * the reload's answer).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Config, PortConfig, TenantConfig } from '../config/config.js';
import { validateConfig } from '../config/schema.js';
import { worstOverhead } from '../core/encap.js';

/** A port attached at runtime, as asked for (JSON: the handover and the state file carry it). */
export interface DynamicPort {
  /** The directory's network, `<tenant>/<name>` (`--net`); absent: a port of config tenant `tenant`. */
  net?: string;
  /** A tenant of the config, by name (`--tenant`, issue #16): the port joins it, no directory needed. */
  tenant?: string;
  /** The network's VNI when it was attached (or last looked up); for `tenant`, that tenant's. */
  vni: number;
  /** The interface: a TAP vtepd makes, or (kind attach) one that exists, like a hypervisor's vnet7. */
  tap: string;
  /** 'attach' (`--attach`): an interface vtepd does not make; absent: a TAP (`--tap`). */
  kind?: 'attach';
  netns?: string;
  /** With prefix length, like a config port's: 10.1.0.5/24, 2001:db8::5/64. */
  address?: string;
  mac?: string;
  mtu?: number;
}

export type PortErrorCode = 'invalid' | 'exists' | 'no-netns' | 'not-found';

/** A refusal with a stable `code`; the message starts with the field it is about. */
export class PortError extends Error {
  override name = 'PortError';
  constructor(
    readonly code: PortErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A tenant made for a dynamic port (no config tenant has its VNI) is named after the network. */
export const isDynamicTenant = (name: string) => name.includes('/');

const PORT_PATH = 'tenants[0].ports[0].';

/**
 * Check a request's port fields through the config schema, in a minimal config on this
 * daemon's underlay (and identity): a tenant of VNI `vni` with this one port. Returns that
 * tenant (schema defaults) with the port resolved; throws PortError('invalid', 'field: …').
 */
function viaSchema(running: Config, rec: DynamicPort): TenantConfig {
  const u = running.underlay;
  const port: Record<string, unknown> = rec.kind === 'attach' ? { attach: rec.tap } : { tap: rec.tap };
  for (const k of ['netns', 'address', 'mac', 'mtu'] as const) if (rec[k] !== undefined) port[k] = rec[k];
  const r = validateConfig({
    underlay: { local: u.locals.map((l) => l.address), port: u.port, mtu: u.mtu },
    ...(running.identity ? { identity: { ...running.identity } } : {}),
    tenants: [{ name: 'dynamic', vni: rec.vni, ports: [port] }],
  });
  if (!r.ok) {
    const e = r.errors[0]!;
    const field = e.path.startsWith(PORT_PATH) ? e.path.slice(PORT_PATH.length) : e.path === 'tenants[0].vni' ? 'vni' : e.path;
    throw new PortError('invalid', `${field}: ${e.message}`);
  }
  return r.config.tenants[0]!;
}

/** Check the fields of a request (tap, netns, address, mac, mtu) before anything is looked up. */
export function checkDynamic(running: Config, rec: DynamicPort): void {
  viaSchema(running, rec);
}

/** Where a port goes: `--net` names a network, `--tenant` a tenant of the config. */
export const placeOf = (rec: DynamicPort): string => rec.net ?? `tenant ${rec.tenant}`;

/**
 * Where `rec` goes in `config`: the config tenant it names (`tenant`: refused with code
 * not-found when there is none), else the tenant with its VNI (`created` false: the caller adds
 * the port to it), or a new tenant named after the network (`created`: without ports), and
 * the port resolved (its MTU, when not given, from the tenant's encapsulations).
 */
export function placeDynamic(config: Config, rec: DynamicPort): { tenant: TenantConfig; created: boolean; port: PortConfig } {
  const named = rec.tenant === undefined ? undefined : config.tenants.find((t) => t.name === rec.tenant && !isDynamicTenant(t.name));
  if (rec.tenant !== undefined && !named) throw new PortError('not-found', `tenant: no tenant ${rec.tenant} in the config (${tenantNames(config)})`);
  const fresh = viaSchema(config, named ? { ...rec, vni: named.vni } : rec);
  const port = fresh.ports[0]!;
  const existing = named ?? config.tenants.find((t) => t.vni === rec.vni);
  // A tenant of its own has a config tenant's defaults in this config: no underlay learning with a directory.
  const tenant = existing ?? { ...fresh, name: rec.net ?? '', ports: [], learnFromUnderlay: !config.directory };
  if (rec.mtu === undefined && existing) {
    const worst = worstOverhead(
      config.underlay.locals.map((l) => l.family),
      new Set([existing.encap, ...Object.values(existing.vtepEncap)]),
      existing.encryption === 'required',
    );
    port.mtu = config.underlay.mtu - worst.overhead;
  }
  if (port.address?.family === 6 && port.mtu < 1280) throw new PortError('invalid', `mtu: an IPv6 address needs a port MTU of at least 1280, not ${port.mtu}`);
  return { tenant, created: !existing, port };
}

function tenantNames(config: Config): string {
  const names = config.tenants.filter((t) => !isDynamicTenant(t.name)).map((t) => t.name);
  return names.length ? `it has ${names.join(', ')}` : 'it has none';
}

/** The tenant (in `config`) that holds port `tap`, if any. */
export function tenantOfPort(config: Config, tap: string): TenantConfig | undefined {
  return config.tenants.find((t) => t.ports.some((p) => p.tap === tap));
}

/**
 * `config` with the dynamic ports merged in (pure): each joins the tenant of its VNI or a
 * tenant of its own. A port whose TAP name the config now uses itself, or that no longer
 * checks, is left out and returned in `dropped` with the reason.
 */
export function withDynamic(config: Config, recs: Iterable<DynamicPort>): { config: Config; dropped: { rec: DynamicPort; why: string }[] } {
  const cfg = structuredClone(config);
  const dropped: { rec: DynamicPort; why: string }[] = [];
  for (const rec of recs) {
    const holder = tenantOfPort(cfg, rec.tap);
    if (holder) {
      dropped.push({ rec, why: `tenant ${holder.name} of the config has a port ${rec.tap}` });
      continue;
    }
    try {
      const { tenant, created, port } = placeDynamic(cfg, rec);
      tenant.ports.push(port);
      if (created) cfg.tenants.push(tenant);
    } catch (e) {
      dropped.push({ rec, why: (e as Error).message });
    }
  }
  return { config: cfg, dropped };
}

// ---- the state file: dynamic ports across a plain restart ------------------------------------

/** Next to the control socket: /run/vtepd/vtepd.sock → /run/vtepd/vtepd.ports.json. */
export function stateFileOf(controlSocket: string): string {
  return join(dirname(controlSocket), `${basename(controlSocket).replace(/\.sock$/, '')}.ports.json`);
}

/** Write the dynamic ports atomically (a temporary file renamed over the old one). */
export function writeDynamicState(file: string, recs: DynamicPort[]): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ v: 1, ports: recs }, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}

/** The dynamic ports of the state file; [] when there is none. A file that is not ours throws. */
export function readDynamicState(file: string): DynamicPort[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const data = JSON.parse(text) as { v?: unknown; ports?: unknown };
  if (data.v !== 1 || !Array.isArray(data.ports)) throw new Error(`${file}: not a vtepd ports file (v 1)`);
  return (data.ports as DynamicPort[]).filter(
    (p) => (typeof p?.net === 'string' || typeof p?.tenant === 'string') && typeof p.tap === 'string' && typeof p.vni === 'number',
  );
}
