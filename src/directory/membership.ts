/**
 * Flood lists from a directory: each tenant floods to the members of its VNI (this host
 * excluded) plus the static flood list of its config, and this host is a member of a VNI
 * while the tenant has at least one port.
 *
 * Pure bookkeeping over a `Directory` and an `apply(tenant, flood)` callback (the daemon's
 * Switch.setFlood), so the unit tests drive it with a fake directory. A flood list is applied
 * only when it changed; a failure to apply is counted and logged, never thrown at the
 * directory.
 */
import { isIPv6 } from 'node:net';
import { logger } from '../util/log.js';
import type { Directory, Member } from './directory.js';

const log = logger('directory');

interface TenantState {
  vni: number;
  /** The config's flood list. */
  static: string[];
  ports: number;
  /** The flood list last applied, and the keys. */
  applied: string[];
  appliedKeys: string;
}

export interface MembershipOptions {
  directory: Directory;
  /** This host's underlay addresses: never in its own flood lists. */
  self: string[];
  /**
   * Set a tenant's flood list (addresses, in order) and the public keys the directory gives
   * for them (address -> base64 key; members that published one), for encrypted tenants.
   */
  apply(tenant: string, flood: string[], keys: Record<string, string>): void;
}

const family = (a: string) => (isIPv6(a) ? 6 : 4);

export class Membership {
  private readonly tenants = new Map<string, TenantState>();
  private readonly self: Set<string>;
  private readonly families: Set<number>;
  private unsubscribe: (() => void) | null = null;
  /** Flood lists that failed to apply. */
  applyErrors = 0;
  /** Flood lists changed by the directory (not by the config). */
  updates = 0;

  constructor(private readonly opts: MembershipOptions) {
    this.self = new Set(opts.self);
    this.families = new Set(opts.self.map(family));
  }

  /** Listen to the directory (after the tenants that exist at start were added). */
  start(): void {
    this.unsubscribe ??= this.opts.directory.subscribe((vni) => this.refreshVni(vni));
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** The public keys of the VNI's other members that published one (address -> base64 key). */
  keysOf(tenant: string): Record<string, string> {
    const t = this.tenants.get(tenant);
    if (!t) return {};
    const keys: Record<string, string> = {};
    for (const m of this.opts.directory.members(t.vni))
      if (m.publicKey && !this.self.has(m.address) && this.families.has(family(m.address))) keys[m.address] = m.publicKey;
    return keys;
  }

  /** The flood list a tenant gets now: its static list, then the VNI's other members (deduplicated). */
  floodOf(tenant: string): string[] {
    const t = this.tenants.get(tenant);
    if (!t) return [];
    const out = [...t.static];
    const seen = new Set(out);
    for (const m of this.opts.directory.members(t.vni)) {
      if (this.self.has(m.address) || seen.has(m.address) || !this.families.has(family(m.address))) continue;
      seen.add(m.address);
      out.push(m.address);
    }
    return out;
  }

  /** A new tenant: returns its flood list (the caller creates the tenant with it). */
  addTenant(name: string, vni: number, staticFlood: string[]): string[] {
    this.tenants.set(name, { vni, static: [...staticFlood], ports: 0, applied: [], appliedKeys: '{}' });
    const flood = this.floodOf(name);
    const t = this.tenants.get(name)!;
    t.applied = flood;
    t.appliedKeys = JSON.stringify(this.keysOf(name));
    return flood;
  }

  removeTenant(name: string): void {
    const t = this.tenants.get(name);
    if (!t) return;
    this.tenants.delete(name);
    if (t.ports > 0 && !this.vniInUse(t.vni)) this.opts.directory.leave(t.vni);
  }

  /** The config's flood list of a tenant changed (reload): returns the list to apply. */
  setStatic(name: string, staticFlood: string[]): string[] {
    const t = this.tenants.get(name);
    if (!t) return staticFlood;
    t.static = [...staticFlood];
    t.applied = this.floodOf(name);
    return t.applied;
  }

  portAdded(name: string): void {
    const t = this.tenants.get(name);
    if (!t) return;
    if (t.ports++ === 0) this.opts.directory.join(t.vni);
  }

  portRemoved(name: string): void {
    const t = this.tenants.get(name);
    if (!t || t.ports === 0) return;
    if (--t.ports === 0 && !this.vniInUse(t.vni)) this.opts.directory.leave(t.vni);
  }

  /** Members of each tenant's VNI other than this host, for status. */
  status(): Record<string, Member[]> {
    const out: Record<string, Member[]> = {};
    for (const [name, t] of this.tenants) out[name] = this.opts.directory.members(t.vni).filter((m) => !this.self.has(m.address));
    return out;
  }

  private vniInUse(vni: number): boolean {
    for (const t of this.tenants.values()) if (t.vni === vni && t.ports > 0) return true;
    return false;
  }

  private refreshVni(vni: number): void {
    for (const [name, t] of this.tenants) {
      if (t.vni !== vni) continue;
      const flood = this.floodOf(name);
      const keys = this.keysOf(name);
      const keysJson = JSON.stringify(keys);
      if (flood.length === t.applied.length && flood.every((a, i) => a === t.applied[i]) && keysJson === t.appliedKeys) continue;
      try {
        this.opts.apply(name, flood, keys);
        t.appliedKeys = keysJson;
        const added = flood.filter((a) => !t.applied.includes(a));
        const removed = t.applied.filter((a) => !flood.includes(a));
        t.applied = flood;
        this.updates++;
        log.info({ tenant: name, vni, added, removed }, 'flood list from the directory');
      } catch (e) {
        this.applyErrors++;
        log.warn({ tenant: name, vni, err: (e as Error).message }, 'applying the flood list from the directory failed');
      }
    }
  }
}
