/**
 * What the other VTEPs' EVPN routes say, as the directory needs it (issue #17, step 2): pure
 * bookkeeping, apart from gobgpd so the unit tests drive it with plain routes.
 *
 * - Type-3 routes (inclusive multicast) of other routers: the VTEPs in each VNI's flood list
 *   (the route's next hop, the VTEP address FRR and vtepd put there).
 * - Type-2 routes (MAC/IP advertisement): each MAC's owner VTEP (the next hop), its IPs
 *   (a MAC+IP route each; FRR sends a MAC-only one too) and its MAC Mobility sequence
 *   (0 without the community, RFC 7432 §7.7).
 * - A withdrawal removes what the route had said. This router's own routes (`neighbor === ''`)
 *   and routes whose next hop is this VTEP are not imported.
 *
 * Routes are keyed by their NLRI (RD, MAC, IP), so two VTEPs that advertise one MAC are two
 * routes; `bestOwner` picks the record (RFC 7432 §15: highest sequence, then lowest VTEP IP).
 *
 * Graceful restart: a route can be kept `stale` (its session went down, or gobgpd restarted)
 * instead of removed; it counts as before until it is reported again (fresh) or swept.
 */
import type { EvpnRoute } from './gobgp.js';

interface MacRoute {
  vni: number;
  mac: string;
  owner: string;
  ip: string | null;
  seq: number;
  /** The MAC Mobility community's sticky flag (RFC 7432 §15.2: a static MAC). */
  sticky: boolean;
  /** The watch generation that last reported it (re-watch sweeps what was not reported again). */
  gen: number;
  /** The BGP neighbor it came through (a route reflector's routes name the reflector). */
  neighbor: string;
  stale: boolean;
}
interface ImetRoute {
  vni: number;
  address: string;
  gen: number;
  neighbor: string;
  stale: boolean;
}

/** What applying a route changed: the members of a VNI, or the owners of a MAC. */
export type RibChange = { kind: 'members'; vni: number } | { kind: 'mac'; vni: number; mac: string };

/** One VTEP's claim of a MAC: its highest sequence and the IPs of its MAC+IP routes (sorted). */
export interface OwnerClaim {
  seq: number;
  ips: string[];
  /** A sticky (static) MAC there: it never moves (RFC 7432 §15.2). */
  sticky?: boolean;
}

const macKey = (vni: number, mac: string) => `${vni}/${mac}`;
/** What names a route in its table: RD and originator (type 3), RD, MAC and IP (type 2). */
const routeKey = (r: EvpnRoute) => (r.type === 3 ? `${r.rd}|${r.ip ?? r.nexthop}` : `${r.rd}|${r.mac}|${r.ip ?? ''}`);

export class EvpnRib {
  private readonly macRoutes = new Map<string, MacRoute>();
  private readonly imets = new Map<string, ImetRoute>();
  /** vni/mac -> the route keys that name it. */
  private readonly byMac = new Map<string, Set<string>>();

  /** `self`: this VTEP's address (routes with it as next hop are ours, reflected back). */
  constructor(private readonly self: string) {}

  /** Routes imported now (type 2 and type 3). */
  get size(): number {
    return this.macRoutes.size + this.imets.size;
  }

  /** Take a route (or its withdrawal); null when it changes nothing this host imports. */
  apply(r: EvpnRoute, gen = 0): RibChange | null {
    if (r.neighbor === '' || r.nexthop === this.self || !r.nexthop) return null;
    if (r.type === 3) return this.applyImet(r, gen);
    if (!r.mac) return null;
    const key = routeKey(r);
    const old = this.macRoutes.get(key);
    if (old) this.unindex(key, old);
    if (r.withdrawal) return old ? { kind: 'mac', vni: old.vni, mac: old.mac } : null;
    const route: MacRoute = { vni: r.vni, mac: r.mac, owner: r.nexthop, ip: r.ip, seq: r.seq ?? 0, sticky: r.sticky, gen, neighbor: r.neighbor, stale: false };
    this.macRoutes.set(key, route);
    const k = macKey(route.vni, route.mac);
    let s = this.byMac.get(k);
    if (!s) this.byMac.set(k, (s = new Set()));
    s.add(key);
    return { kind: 'mac', vni: route.vni, mac: route.mac };
  }

  private applyImet(r: EvpnRoute, gen: number): RibChange | null {
    const key = routeKey(r);
    const old = this.imets.get(key);
    this.imets.delete(key);
    if (r.withdrawal) return old ? { kind: 'members', vni: old.vni } : null;
    this.imets.set(key, { vni: r.vni, address: r.nexthop, gen, neighbor: r.neighbor, stale: false });
    return { kind: 'members', vni: r.vni };
  }

  private unindex(key: string, r: MacRoute): void {
    this.macRoutes.delete(key);
    const k = macKey(r.vni, r.mac);
    const s = this.byMac.get(k);
    s?.delete(key);
    if (s?.size === 0) this.byMac.delete(k);
  }

  /**
   * After a re-watch: drop the routes not reported since generation `gen` began and absent
   * from `current` (a full listing), which were withdrawn while the watch was down.
   */
  sweep(gen: number, current: EvpnRoute[]): RibChange[] {
    const live = new Set(current.map(routeKey));
    const out: RibChange[] = [];
    for (const [key, r] of [...this.imets])
      if (r.gen < gen && !live.has(key)) {
        this.imets.delete(key);
        out.push({ kind: 'members', vni: r.vni });
      }
    for (const [key, r] of [...this.macRoutes])
      if (r.gen < gen && !live.has(key)) {
        this.unindex(key, r);
        out.push({ kind: 'mac', vni: r.vni, mac: r.mac });
      }
    return out;
  }

  /**
   * A withdrawal that follows a session loss (graceful restart): the route it names stays,
   * stale. False when this host does not import it (then there is nothing to keep).
   */
  keepStale(r: EvpnRoute): boolean {
    const route = r.type === 3 ? this.imets.get(routeKey(r)) : this.macRoutes.get(routeKey(r));
    if (!route) return false;
    route.stale = true;
    return true;
  }

  /** Mark the routes learned through `neighbor` stale; how many were fresh. */
  markStale(neighbor: string): number {
    return this.markWhere((r) => r.neighbor === neighbor).get(neighbor) ?? 0;
  }

  /**
   * After a re-watch (gobgpd restarted): the routes not reported since `gen` began and absent
   * from `current` go stale. Returns how many per neighbor.
   */
  markUnlisted(gen: number, current: EvpnRoute[]): Map<string, number> {
    const live = new Set(current.map(routeKey));
    return this.markWhere((r, key) => r.gen < gen && !live.has(key));
  }

  private markWhere(pick: (r: MacRoute | ImetRoute, key: string) => boolean): Map<string, number> {
    const out = new Map<string, number>();
    for (const routes of [this.imets, this.macRoutes] as Map<string, MacRoute | ImetRoute>[])
      for (const [key, r] of routes)
        if (!r.stale && pick(r, key)) {
          r.stale = true;
          out.set(r.neighbor, (out.get(r.neighbor) ?? 0) + 1);
        }
    return out;
  }

  /** Remove the stale routes (of `neighbor`, or all): what was not refreshed within the restart time. */
  sweepStale(neighbor: string | null = null): RibChange[] {
    const out: RibChange[] = [];
    const pick = (r: MacRoute | ImetRoute) => r.stale && (neighbor === null || r.neighbor === neighbor);
    for (const [key, r] of [...this.imets])
      if (pick(r)) {
        this.imets.delete(key);
        out.push({ kind: 'members', vni: r.vni });
      }
    for (const [key, r] of [...this.macRoutes])
      if (pick(r)) {
        this.unindex(key, r);
        out.push({ kind: 'mac', vni: r.vni, mac: r.mac });
      }
    return out;
  }

  /** Routes kept stale now (of `neighbor`, or all). */
  staleCount(neighbor: string | null = null): number {
    let n = 0;
    for (const routes of [this.imets, this.macRoutes] as Map<string, MacRoute | ImetRoute>[])
      for (const r of routes.values()) if (r.stale && (neighbor === null || r.neighbor === neighbor)) n++;
    return n;
  }

  /** The other VTEPs with a type-3 route for `vni`, sorted. */
  members(vni: number): string[] {
    const out = new Set<string>();
    for (const r of this.imets.values()) if (r.vni === vni) out.add(r.address);
    return [...out].sort();
  }

  /** Each other VTEP that advertises `mac` in `vni`, with its claim. */
  owners(vni: number, mac: string): Map<string, OwnerClaim> {
    const out = new Map<string, OwnerClaim>();
    for (const key of this.byMac.get(macKey(vni, mac)) ?? []) {
      const r = this.macRoutes.get(key)!;
      const c = out.get(r.owner) ?? { seq: 0, ips: [] };
      c.seq = Math.max(c.seq, r.seq);
      if (r.ip && !c.ips.includes(r.ip)) c.ips = [...c.ips, r.ip].sort();
      if (r.sticky) c.sticky = true;
      out.set(r.owner, c);
    }
    return out;
  }

  /** The MACs of `vni` some other VTEP advertises. */
  macs(vni: number): string[] {
    const out: string[] = [];
    for (const k of this.byMac.keys()) {
      const i = k.indexOf('/');
      if (Number(k.slice(0, i)) === vni) out.push(k.slice(i + 1));
    }
    return out;
  }
}

const ipNum = (ip: string) => ip.split('.').reduce((n, x) => n * 256 + Number(x), 0);

/**
 * The VTEP that holds a MAC (RFC 7432 §15): a sticky claim first (§15.2), then the highest
 * sequence number; on a tie, the lowest VTEP IP. `claims` holds every claim, this host's
 * included; null when there is none.
 */
export function bestOwner(claims: Map<string, OwnerClaim>): { owner: string; claim: OwnerClaim } | null {
  let best: { owner: string; claim: OwnerClaim } | null = null;
  for (const [owner, claim] of claims) if (!best || beats(owner, claim, best.owner, best.claim)) best = { owner, claim };
  return best;
}

function beats(owner: string, c: OwnerClaim, bestOwner: string, b: OwnerClaim): boolean {
  if (!!c.sticky !== !!b.sticky) return !!c.sticky;
  return c.seq > b.seq || (c.seq === b.seq && ipNum(owner) < ipNum(bestOwner));
}

/** The sequence to advertise a MAC with when it appears here (RFC 7432 §15): past every other VTEP's, 0 when nobody has it. */
export function claimSeq(others: Map<string, OwnerClaim>): number {
  let max = -1;
  for (const c of others.values()) max = Math.max(max, c.seq);
  return max + 1;
}

/** Whether another VTEP advertises `mac` with a higher sequence than ours (or sticky, RFC 7432 §15.2): then ours is withdrawn (it moved away). */
export function outbid(localSeq: number, others: Map<string, OwnerClaim>): string | null {
  for (const [owner, c] of others) if (c.seq > localSeq || c.sticky) return owner;
  return null;
}

/**
 * The RD's assigned number for a VNI (RD type 1 is ROUTER-ID:N with N 16 bits): the VNI itself
 * up to 65535, else 1 + VNI mod 65535. (FRR numbers its VNIs itself; any number unique per
 * host works, as routes are imported by their label.)
 */
export function rdNumber(vni: number): number {
  return vni <= 0xffff ? vni : 1 + (vni % 0xffff);
}
