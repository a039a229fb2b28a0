/**
 * A hub's side of the role: the spokes it learns from their probes. A spoke is a VTEP at
 * the probe's outer source address (and port, for a spoke that says it is behind NAT:
 * several may share an address), trusted and flooded to in the tenants whose VNIs the
 * probe lists, answered from the underlay port (what a NAT's or a firewall's conntrack
 * expects). A spoke silent for 3 x deadInterval (at least keepalive + deadInterval) is
 * forgotten with its MACs.
 *
 * The table is bounded: at most HUB_LIMITS.spokes spokes, and at most
 * HUB_LIMITS.spokesPerAddress behind one outer address (spokes behind one NAT). A probe
 * that would learn one more is refused, counted by reason, and not answered.
 *
 * With an identity the hub admits spokes by key only (config `spokes`): a spoke is learned
 * when its handshake authenticates (src/secure/peers.ts calls `bind`), at the address and
 * port the handshake came from, and trusted in the tenants of the VNIs listed for its key,
 * never in others, whatever its probes say. Its probes arrive inside the session. It moves
 * (NAT rebinding) only on authenticated packets, keeping its VTEP id and its MACs. Removing
 * its key (reload) deletes its keys and forgets it at once.
 */
import type { Bridge } from '../core/bridge.js';
import { vtepKey, type Vtep } from '../core/vteps.js';
import type { Endpoint, Peer } from '../secure/peers.js';
import type { LivenessMessage } from './liveness.js';
import type { PmtuSearch } from './pmtu.js';
import type { RoleContext, RoleOptions, RoleStatus } from './roles.js';
import { pmtuState } from './spoke.js';

interface SpokePeer {
  /** The registry key (legacy), or the public key (a spoke admitted by key). */
  key: string;
  /** Admitted by key: its name in the config. */
  name?: string;
  address: string;
  port: number;
  nat: boolean;
  vtep: Vtep;
  vnis: Set<number>;
  lastHeard: number;
  sender: number;
  pmtu: PmtuSearch | null;
  /**
   * A spoke learned from its probes (no identity): the outer bytes it has sent us that our
   * path MTU probes toward it may still spend (capped): it never gets more than it sent.
   */
  budget: { bytes: number } | null;
}

/** The most a spoke's unspent bytes buy of path MTU probes toward it. */
const PMTU_BUDGET_CAP = 64 * 1024;

/** How long a hub keeps a silent spoke (ms): 3 x deadInterval, at least keepalive + deadInterval. */
export function spokeTimeoutMs(o: Pick<RoleOptions, 'deadIntervalMs' | 'keepaliveMs'>): number {
  return Math.max(3 * o.deadIntervalMs, o.keepaliveMs + o.deadIntervalMs);
}

/** How many spokes a hub learns, in all and behind one outer address. */
export const HUB_LIMITS = { spokes: 1024, spokesPerAddress: 16 } as const;

export class HubRole {
  private readonly spokes = new Map<string, SpokePeer>();
  /** Spokes learned per outer address. */
  private readonly perAddress = new Map<string, number>();
  /** Probes refused because they would have learned one spoke too many. */
  readonly refused = { tableFull: 0, perAddress: 0 };

  constructor(private readonly ctx: RoleContext) {}

  /** Trust and flood to the spokes that carry the tenant's VNI. */
  applyTo(b: Bridge): void {
    for (const s of this.spokes.values()) if (s.vnis.has(b.vni)) this.ctx.sw.trust(b, s.vtep.id, true);
  }

  tick(now: number, pmtuNow: boolean, verify: boolean): void {
    for (const s of [...this.spokes.values()]) {
      if (now - s.lastHeard > spokeTimeoutMs(this.ctx.opts)) {
        this.forget(s, 'silent');
        continue;
      }
      if (s.pmtu && pmtuNow) this.ctx.pmtuRound(s.address.includes(':') ? 6 : 4, s.pmtu, s.vtep, verify, s.budget ?? undefined);
    }
  }

  /**
   * A PROBE from a spoke (no identity: the legacy, unauthenticated mode): learn it, or note
   * it is alive and which VNIs it carries now.
   * False when it would be one spoke too many: refused and counted, and not to be answered.
   */
  onProbe(from: { address: string; port: number }, m: LivenessMessage, now: number): boolean {
    const { sw, vteps, opts } = this.ctx;
    const key = m.nat ? vtepKey(from.address, from.port) : from.address;
    let s = this.spokes.get(key);
    if (!s) {
      const behind = this.perAddress.get(from.address) ?? 0;
      if (this.spokes.size >= HUB_LIMITS.spokes) {
        this.refused.tableFull++;
        return false;
      }
      if (behind >= HUB_LIMITS.spokesPerAddress) {
        this.refused.perAddress++;
        return false;
      }
      this.perAddress.set(from.address, behind + 1);
      const vtep = vteps.role(from.address, from.port, { matchPort: m.nat, fixedSourcePort: true, mtu: opts.underlayMtu });
      s = {
        key,
        address: from.address,
        port: from.port,
        nat: m.nat,
        vtep,
        vnis: new Set(),
        lastHeard: now,
        sender: m.sender,
        pmtu: opts.pmtuDiscovery ? this.ctx.newSearch(from.address.includes(':') ? 6 : 4) : null,
        budget: { bytes: 0 },
      };
      this.spokes.set(key, s);
      this.ctx.log.info({ spoke: vtep.key, nat: m.nat, vnis: m.vnis }, 'spoke learned from its probes');
    } else if (s.port !== from.port && !m.nat) {
      // A spoke not behind NAT that now probes from another port: answer there.
      s.port = from.port;
      vteps.releaseRole(vteps.role(from.address, from.port, { fixedSourcePort: true }));
    }
    if (s.sender !== m.sender) {
      // It restarted: what was learned behind it is stale.
      s.sender = m.sender;
      sw.flushVtep(s.vtep.id);
    }
    s.lastHeard = now;
    if (s.budget) s.budget.bytes = Math.min(PMTU_BUDGET_CAP, s.budget.bytes + m.length + 8 + (from.address.includes(':') ? 40 : 20));
    const vnis = new Set(m.vnis);
    const changed = vnis.size !== s.vnis.size || [...vnis].some((v) => !s!.vnis.has(v));
    s.vnis = vnis;
    if (!changed) return true;
    for (const b of sw.tenants()) {
      if (vnis.has(b.vni)) sw.trust(b, s.vtep.id, true);
      else if (b.trusted.has(s.vtep.id)) sw.untrust(b, s.vtep.id);
      this.ctx.refreshMss(b);
    }
    return true;
  }

  // ---- spokes admitted by key ------------------------------------------------------------

  /** The VNIs the config lists for a key, as a set. */
  private listed(publicKey: string): Set<number> | null {
    const sp = this.ctx.opts.spokes?.find((x) => x.publicKey === publicKey);
    return sp ? new Set(sp.vnis) : null;
  }

  /** A listed spoke's handshake authenticated: its VTEP at `from`, learned, or moved there. null: refused (bounds). */
  bind(peer: Peer, from: Endpoint, now: number): number | null {
    const { sw, vteps, opts } = this.ctx;
    const vnis = this.listed(peer.spec.publicKey);
    if (!vnis) return null;
    let s = this.spokes.get(peer.spec.publicKey);
    if (!s) {
      const behind = this.perAddress.get(from.address) ?? 0;
      if (this.spokes.size >= HUB_LIMITS.spokes || !vteps.room()) {
        this.refused.tableFull++;
        return null;
      }
      if (behind >= HUB_LIMITS.spokesPerAddress) {
        this.refused.perAddress++;
        return null;
      }
      if (vteps.find(vtepKey(from.address, from.port))) return null; // another spoke holds that source
      this.perAddress.set(from.address, behind + 1);
      const vtep = vteps.role(from.address, from.port, { matchPort: true, fixedSourcePort: true, mtu: opts.underlayMtu });
      s = {
        key: peer.spec.publicKey,
        name: peer.spec.name,
        address: from.address,
        port: from.port,
        nat: true,
        vtep,
        vnis,
        lastHeard: now,
        sender: 0,
        pmtu: opts.pmtuDiscovery ? this.ctx.newSearch(from.address.includes(':') ? 6 : 4) : null,
        budget: null, // authenticated: probes go inside its session
      };
      this.spokes.set(s.key, s);
      for (const b of sw.tenants()) {
        if (vnis.has(b.vni)) sw.trust(b, vtep.id, true);
        this.ctx.refreshMss(b);
      }
      this.ctx.log.info({ spoke: s.name, vtep: vtep.key, vnis: [...vnis] }, 'spoke admitted by key');
    } else if (s.address !== from.address || s.port !== from.port) {
      if (!vteps.relocate(s.vtep, from.address, from.port)) return null;
      this.count(s.address, -1);
      this.count(from.address, 1);
      this.ctx.log.info({ spoke: s.name, from: s.vtep.key }, 'spoke moved (authenticated)');
      s.address = from.address;
      s.port = from.port;
    }
    s.lastHeard = now;
    return s.vtep.id;
  }

  private count(address: string, delta: 1 | -1): void {
    const n = (this.perAddress.get(address) ?? 0) + delta;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
  }

  /** A PROBE inside a spoke's session: it is alive; a restart (new sender id) makes what was learned behind it stale. */
  onSecureProbe(vtepId: number, m: LivenessMessage, now: number): void {
    const s = [...this.spokes.values()].find((x) => x.vtep.id === vtepId);
    if (!s) return;
    if (s.sender !== 0 && s.sender !== m.sender) this.ctx.sw.flushVtep(s.vtep.id);
    s.sender = m.sender;
    s.lastHeard = now;
  }

  /** The VNIs a spoke admitted by key may use (null: not such a spoke). */
  vnisOf(vtepId: number): Set<number> | null {
    for (const s of this.spokes.values()) if (s.vtep.id === vtepId && s.name !== undefined) return s.vnis;
    return null;
  }

  /** Its keys are gone (revoked, expired): forget the spoke now. */
  drop(publicKey: string, why: string): void {
    const s = this.spokes.get(publicKey);
    if (s) this.forget(s, why);
  }

  /** Reload: a listed spoke's VNIs may have changed; trust follows the list. */
  reconfigure(): void {
    for (const s of this.spokes.values()) {
      if (s.name === undefined) continue;
      const vnis = this.listed(s.key);
      if (!vnis) continue; // revoked: the secure layer drops it
      s.vnis = vnis;
      for (const b of this.ctx.sw.tenants()) {
        if (vnis.has(b.vni)) this.ctx.sw.trust(b, s.vtep.id, true);
        else if (b.trusted.has(s.vtep.id)) this.ctx.sw.untrust(b, s.vtep.id);
        this.ctx.refreshMss(b);
      }
    }
  }

  private forget(s: SpokePeer, why: string): void {
    this.spokes.delete(s.key);
    const behind = (this.perAddress.get(s.address) ?? 1) - 1;
    if (behind > 0) this.perAddress.set(s.address, behind);
    else this.perAddress.delete(s.address);
    this.ctx.vteps.releaseRole(s.vtep);
    // Untrusted: its path MTU no longer bounds the tenants' MSS clamp (auto).
    for (const b of this.ctx.sw.tenants()) {
      this.ctx.sw.untrust(b, s.vtep.id);
      this.ctx.refreshMss(b);
    }
    this.ctx.log.info({ spoke: s.vtep.key, why }, 'spoke forgotten');
    // Silent: its sessions go too (a handshake brings it back).
    if (why === 'silent' && s.name !== undefined) {
      const p = this.ctx.secure?.peer(s.key);
      if (p) this.ctx.secure!.forget(p);
    }
  }

  /** Withdraw every spoke from every tenant and release their VTEPs. */
  // (teardown: the secure layer's sessions are forgotten by the agent)
  teardown(): void {
    for (const b of this.ctx.sw.tenants()) for (const s of this.spokes.values()) this.ctx.sw.untrust(b, s.vtep.id);
    for (const s of this.spokes.values()) this.ctx.vteps.releaseRole(s.vtep);
    this.spokes.clear();
    this.perAddress.clear();
  }

  status(now: number): RoleStatus['spokes'] {
    return [...this.spokes.values()].map((s) => ({
      vtep: s.vtep.key,
      nat: s.nat,
      vnis: [...s.vnis],
      lastHeardSecondsAgo: Math.floor((now - s.lastHeard) / 1000),
      pathMtu: s.vtep.mtu,
      pathMtuState: pmtuState(s.pmtu, false),
    }));
  }
}
