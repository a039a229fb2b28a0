/**
 * A spoke's side of the role: its hubs. It probes them all, keeps the one that answers
 * active (HubSelector), trusts every hub in every tenant and floods only to the active
 * one, and when that one has been silent for the dead interval moves to the next: it
 * flushes the MACs learned through the dead hub and re-announces each local MAC through
 * the new one (a RARP broadcast, as QEMU does after a migration), so the other spokes
 * learn them behind the new hub. The same announcement follows a restart of the active
 * hub (its sender id changed).
 *
 * With an identity, each hub is pinned by its key: the spoke starts a handshake toward it
 * (src/secure/peers.ts) and counts as alive only the REPLYs that arrive inside that
 * session. A hub that cannot prove the key gets nothing but initiations: no frames, no
 * probes, and its own messages move nothing here.
 */
import type { Bridge } from '../core/bridge.js';
import type { HubConfig } from '../config/config.js';
import type { Vtep } from '../core/vteps.js';
import { macToBuffer } from '../util/mac.js';
import { HubSelector, type LivenessMessage } from './liveness.js';
import type { PmtuSearch } from './pmtu.js';
import type { RoleContext, RoleStatus } from './roles.js';

interface HubPeer {
  cfg: HubConfig;
  vtep: Vtep;
  pmtu: PmtuSearch | null;
  alive: boolean;
}

const ANNOUNCE_ETHERTYPE = 0x8035; // RARP, as QEMU's self-announcement after migration

/** A RARP "request reverse" from `mac` to broadcast: hosts ignore it, bridges learn from it. */
export function announceFrame(mac: string): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  macToBuffer(mac).copy(f, 6);
  f.writeUInt16BE(ANNOUNCE_ETHERTYPE, 12);
  f.writeUInt16BE(1, 14); // hardware type Ethernet
  f.writeUInt16BE(0x0800, 16); // protocol IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(3, 20); // request reverse
  macToBuffer(mac).copy(f, 22); // sender hardware address
  macToBuffer(mac).copy(f, 32); // target hardware address
  return f;
}

export class SpokeRole {
  private readonly hubs: HubPeer[];
  private readonly selector: HubSelector;

  /** Takes a role reference on each hub's VTEP (released by teardown). */
  constructor(private readonly ctx: RoleContext) {
    const o = ctx.opts;
    this.hubs = o.hubs.map((cfg) => ({
      cfg,
      // Encrypted traffic goes out from the underlay port too: one endpoint per peer.
      vtep: ctx.vteps.role(cfg.address, cfg.port, { fixedSourcePort: o.nat || ctx.secure !== null, mtu: cfg.mtu ?? o.underlayMtu }),
      pmtu: cfg.mtu === null && o.pmtuDiscovery ? ctx.newSearch(cfg.family) : null,
      alive: false,
    }));
    this.selector = new HubSelector(
      o.hubs.map((h) => ({ address: h.address, port: h.port })),
      o.deadIntervalMs,
      ctx.clock(),
    );
  }

  /** The dead interval changed (reload): timers only, the hubs and what was learned stay. */
  setDeadInterval(ms: number): void {
    this.selector.deadMs = ms;
  }

  private activeHub(): HubPeer | undefined {
    const a = this.selector.activeHub;
    return a && this.hubs.find((h) => h.cfg.address === a.address && h.cfg.port === a.port);
  }

  /** Trust every hub in the tenant; flood only to the active one. */
  applyTo(b: Bridge): void {
    const active = this.activeHub();
    for (const h of this.hubs) this.ctx.sw.trust(b, h.vtep.id, h === active);
  }

  /** Probe every hub (and its path MTU, in a PMTU round), then see which are alive; fail over if the active one is not. */
  tick(now: number, pmtuNow: boolean, verify: boolean): void {
    for (const h of this.hubs) {
      this.ctx.probe(h.vtep);
      if (h.pmtu && pmtuNow) this.ctx.pmtuRound(h.cfg.family, h.pmtu, h.vtep, verify);
    }
    this.checkHubs(now);
  }

  private checkHubs(now: number): void {
    const sel = this.selector;
    const before = this.activeHub();
    const ev = sel.tick(now);
    for (const h of this.hubs) {
      const st = sel.hubs.find((x) => x.address === h.cfg.address && x.port === h.cfg.port)!;
      const alive = sel.alive(st, now);
      if (h.alive && !alive) {
        const n = this.ctx.sw.flushVtep(h.vtep.id);
        this.ctx.log.warn({ hub: h.vtep.key, flushed: n }, 'hub silent for the dead interval: MACs learned through it flushed');
      }
      h.alive = alive;
    }
    if (ev?.kind === 'failover') {
      const after = this.activeHub()!;
      this.ctx.counters.failovers++;
      this.ctx.log.warn({ from: before?.vtep.key, to: after.vtep.key }, 'failover to the next hub');
      if (before) this.ctx.sw.flushVtep(before.vtep.id);
      for (const b of this.ctx.sw.tenants()) this.ctx.applyTo(b);
      this.announce(after);
    }
  }

  /** Re-announce every local MAC of every tenant through a hub. */
  private announce(h: HubPeer): void {
    for (const b of this.ctx.sw.tenants()) {
      for (const e of b.table.values()) {
        if (e.place.kind !== 'port') continue;
        try {
          this.ctx.dp.transmit(b.tenantId, announceFrame(e.mac), [], [h.vtep.id]);
          this.ctx.counters.announcements++;
        } catch (err) {
          this.ctx.log.debug({ err: (err as Error).message }, 'announcement not sent');
        }
      }
    }
  }

  /** A REPLY from a hub: it is alive; a restarted active hub gets the announcements again. */
  onReply(from: { address: string; port: number }, m: LivenessMessage, now: number): void {
    const ev = this.selector.onReply(from.address, from.port, m, now);
    const h = this.hubs.find((x) => x.cfg.address === from.address && x.cfg.port === from.port) ?? this.hubs.find((x) => x.cfg.address === from.address);
    if (h && !h.alive) h.alive = true;
    if (ev?.kind === 'restarted' && h) {
      this.ctx.log.warn({ hub: h.vtep.key }, 'hub restarted');
      this.ctx.sw.flushVtep(h.vtep.id);
      if (h === this.activeHub()) this.announce(h);
    }
  }

  /** The VTEP of the hub pinned by this key. */
  hubOfKey(publicKey: string): Vtep | undefined {
    return this.hubs.find((h) => h.cfg.publicKey === publicKey)?.vtep;
  }

  /** A REPLY that arrived inside the session of the hub at VTEP `vtepId`. */
  onSecureReply(vtepId: number, m: LivenessMessage, now: number): void {
    const h = this.hubs.find((x) => x.vtep.id === vtepId);
    if (h) this.onReply({ address: h.cfg.address, port: h.cfg.port }, m, now);
  }

  /** Withdraw the hubs from every tenant and release their VTEPs. */
  teardown(): void {
    for (const b of this.ctx.sw.tenants()) for (const h of this.hubs) this.ctx.sw.untrust(b, h.vtep.id);
    for (const h of this.hubs) this.ctx.vteps.releaseRole(h.vtep);
  }

  status(now: number): RoleStatus['hubs'] {
    const sel = this.selector;
    const active = this.activeHub();
    return this.hubs.map((h) => {
      const st = sel.hubs.find((x) => x.address === h.cfg.address && x.port === h.cfg.port);
      const last = st?.lastReply ?? null;
      return {
        address: h.cfg.address,
        port: h.cfg.port,
        active: h === active,
        alive: !!st && sel.alive(st, now),
        lastReplySecondsAgo: last === null ? null : Math.floor((now - last) / 1000),
        rttMs: st?.rtt ?? null,
        pathMtu: h.vtep.mtu,
        pathMtuState: pmtuState(h.pmtu, h.cfg.mtu !== null),
      };
    });
  }
}

/** What `status` says about a peer's path MTU. */
export function pmtuState(p: PmtuSearch | null, configured: boolean): string {
  return configured ? 'configured' : !p ? 'underlay.mtu' : p.done ? 'discovered' : 'probing';
}
