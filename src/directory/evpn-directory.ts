/**
 * The BGP EVPN directory (issue #17, step 2): a `Directory` whose members and MAC records are
 * l2vpn-evpn routes, exchanged by a gobgpd that vtepd starts and supervises (src/evpn/gobgpd.ts)
 * or by a running one (`directory.evpn.gobgp.api`).
 *
 * Export (this host's routes, next hop = its VTEP address, RD ROUTER-ID:N, RT ASN:VNI):
 * join/leave add and delete a type-3 route, claimMac/withdrawMac a MAC-only type-2 route and a
 * MAC+IP one per IP. All of them again when gobgpd restarts or the watch comes back.
 *
 * Import (src/evpn/rib.ts): the other routers' type-3 routes are the members of each VNI,
 * their type-2 routes the MAC records (owner = next hop, seq = MAC Mobility sequence).
 *
 * Mobility, minimal (RFC 7432 §15): a MAC claimed here that another VTEP advertises is
 * advertised with its sequence + 1; a higher sequence from another VTEP for a MAC of this host
 * withdraws this host's routes (the record then points at the other VTEP).
 *
 * Duplicate detection (§15.1): more than `freeze.moves` moves of a MAC's record within
 * `freeze.windowMs` freeze it for `freeze.holdMs` (the etcd directory's FreezeCounter): one
 * warning, one 'frozen' call to the listeners; meanwhile this host claims it no more (no
 * sequence bump, no route: the ping-pong with the other VTEP stops), a higher sequence does
 * not withdraw its route, and the record stays where it was. When the hold ends the last
 * refused claim is made and the rules apply again.
 *
 * Sticky MACs (§15.2): a claim with `sticky` (a port's configured MAC) is advertised with the
 * sticky flag and never withdrawn for a higher sequence; a MAC another VTEP advertises sticky
 * is not claimed here (counted as refused, pinned, logged once) and its record is `pinned`.
 *
 * Graceful restart (`gracefulRestartMs`): when a session leaves established, its routes stay,
 * stale, and so do those gobgpd then withdraws (it reports the withdrawals before the peer's
 * new state: a withdrawal is checked against gobgpd's session state first). The same for the
 * routes a restarted gobgpd no longer lists. Routes reported again are fresh; at the deadline
 * the neighbor's stale routes are swept (logged and counted).
 */
import { mkdir } from 'node:fs/promises';
import { type Logger, logger } from '../util/log.js';
import type { EvpnRoute, ImetRouteSpec, MacRouteSpec, NeighborInfo, PeerInfo, PeerSpec, SessionState, WatchHandlers } from '../evpn/gobgp.js';
import { GobgpClient } from '../evpn/gobgp.js';
import { Gobgpd, type GobgpdHandover } from '../evpn/gobgpd.js';
import { CallPipeline } from '../evpn/pipeline.js';
import { bestOwner, claimSeq, EvpnRib, type OwnerClaim, outbid, type RibChange, rdNumber } from '../evpn/rib.js';
import {
  type Directory,
  type DirectoryStatus,
  emptyMacStats,
  type MacChange,
  type MacDirectoryStats,
  type MacListener,
  type MacRecord,
  type Member,
  type MembersListener,
  sortMembers,
  type VtepRecord,
} from './directory.js';
import { DEFAULT_FREEZE, FreezeCounter, type FreezeOptions, normalizeIp, normalizeIps, sameRecord } from './macs.js';

/** What the directory needs of gobgpd's API (GobgpClient; a fake in the unit tests). */
export interface EvpnClient {
  addPeer(p: PeerSpec): Promise<void>;
  listPeers(): Promise<PeerInfo[]>;
  /** The peers with session times and route counts (`vtepd evpn neighbors`); absent: listPeers' states only. */
  listNeighbors?(): Promise<NeighborInfo[]>;
  addMacRoute(r: MacRouteSpec): Promise<void>;
  deleteMacRoute(r: MacRouteSpec): Promise<void>;
  addImetRoute(r: ImetRouteSpec): Promise<void>;
  deleteImetRoute(r: ImetRouteSpec): Promise<void>;
  listEvpn(table?: 'global'): Promise<EvpnRoute[]>;
  watch(h: WatchHandlers): () => void;
  close(): void;
}

export interface EvpnDirectoryOptions {
  asn: number;
  routerId: string;
  /** `password`: the session's TCP MD5 key (RFC 2385). */
  neighbors: { address: string; password?: string }[];
  /** This host's VTEP address (IPv4 underlay.local): the next hop of its routes. */
  vtep: string;
  /** The VXLAN UDP port of members (EVPN says none: the underlay's). */
  port: number;
  /** A running gobgpd's API; null: start one (config and socket in `stateDir`, BGP on `vtep`:179). */
  api: string | null;
  stateDir: string;
  /**
   * A takeover (`vtepd restart`): the predecessor's gobgpd to supervise instead of starting one
   * (its PID and lifeline; or, after a failed handover, this process's own supervisor again).
   */
  adopt?: GobgpdHandover | Gobgpd;
  /** Tests: this client instead of gobgpd. */
  client?: EvpnClient;
  /** Re-watch delays after the watch ended: the first, doubled up to the last (default 250 ms to 5 s). */
  rewatchMs?: [number, number];
  /** How long a lost session's routes are kept, stale, before they are swept; 0 (default): withdrawn at once. */
  gracefulRestartMs?: number;
  /** Duplicate detection: more than `moves` moves of a MAC within `windowMs` freeze it for `holdMs` (default 5, 10 s, 60 s). */
  freeze?: Partial<FreezeOptions>;
}

/** FRR's datacenter profile: a dead peer is noticed in seconds, not GoBGP's 90 (BGP takes the lower hold time of the two ends). */
export const HOLD_TIME = 9;
export const KEEPALIVE = 3;

/** A neighbor as status shows it. */
export interface EvpnNeighborStatus {
  address: string;
  state: SessionState;
  /** Times the session came up or went down since vtepd started. */
  changes: number;
}

/** A neighbor as `vtepd evpn neighbors` shows it: status's fields and gobgpd's figures (null when gobgpd does not answer). */
export interface EvpnNeighborRow extends EvpnNeighborStatus {
  routerId: string | null;
  /** When the session came up (established) or last went down, ISO 8601; null: not known. */
  uptime: string | null;
  downtime: string | null;
  received: number | null;
  accepted: number | null;
  advertised: number | null;
}

/** A route as `vtepd evpn routes` shows it: `from` is the neighbor it came from, or 'local' (this host's). */
export interface EvpnRouteRow extends Pick<EvpnRoute, 'type' | 'vni' | 'mac' | 'ip' | 'nexthop' | 'seq' | 'sticky' | 'rd'> {
  from: string;
}

const routeOrder = (a: EvpnRouteRow, b: EvpnRouteRow): number =>
  a.vni - b.vni ||
  a.type - b.type ||
  (a.mac ?? '').localeCompare(b.mac ?? '') ||
  (a.ip ?? '').localeCompare(b.ip ?? '', 'en', { numeric: true }) ||
  a.nexthop.localeCompare(b.nexthop, 'en', { numeric: true }) ||
  a.from.localeCompare(b.from);

interface LocalMac {
  vni: number;
  mac: string;
  ips: string[];
  seq: number;
  /** Static here (a port's configured MAC): advertised sticky, never moves away. */
  sticky?: boolean;
}

const key = (vni: number, mac: string) => `${vni}/${mac}`;
/** What names a route of ours in gobgpd (its NLRI): calls for the same one stay in order. */
const macRouteKey = (r: { rd: string; mac: string; ip?: string | null }) => `2 ${r.rd} ${r.mac} ${r.ip ?? ''}`;
const imetRouteKey = (rd: string) => `3 ${rd}`;

export class EvpnDirectory implements Directory {
  readonly backend = 'evpn' as const;
  private readonly log: Logger = logger('evpn');
  private readonly rib: EvpnRib;
  private gobgpd: Gobgpd | null = null;
  private client: EvpnClient | null = null;
  private readonly joined = new Set<number>();
  private readonly local = new Map<string, LocalMac>();
  /** vni -> mac -> the record listeners were told. */
  private readonly records = new Map<number, Map<string, MacRecord>>();
  private readonly listeners = new Set<MembersListener>();
  private readonly macListeners = new Set<MacListener>();
  private readonly peers = new Map<string, SessionState>();
  /** Per neighbor: times its session came up or went down (vtepd_bgp_session_changes_total). */
  private readonly sessionChanges = new Map<string, number>();
  private readonly stats: MacDirectoryStats = emptyMacStats();
  private started = false;
  private stopping = false;
  private connected = false;
  private errors = 0;
  private gen = 0;
  private rewatchDelay: number;
  private rewatchTimer: NodeJS.Timeout | null = null;
  private unwatch: (() => void) | null = null;
  /** gRPC calls, several in flight; in order per route (a delete never overtakes its add). */
  private readonly calls = new CallPipeline();
  /** Type-2 routes of this host (a MAC-only one and one per IP of each local MAC), kept as they change. */
  private macRoutesOut = 0;
  /** Withdrawals (and what follows them) waiting for gobgpd's session state: a session loss keeps them stale. */
  private pending: { r: EvpnRoute; gen: number }[] = [];
  private draining = false;
  /** neighbor -> the timer that sweeps its stale routes. */
  private readonly sweepTimers = new Map<string, NodeJS.Timeout>();
  private swept = 0;
  private readonly freeze: FreezeCounter;
  /** vni/mac -> the last claim refused while the MAC was frozen (made when the hold ends). */
  private readonly frozenClaims = new Map<string, { ips: string[]; sticky: boolean }>();
  private readonly thawTimers = new Map<string, NodeJS.Timeout>();
  /** vni/mac refused because another VTEP has it sticky (logged once, until withdrawn). */
  private readonly stickyRefused = new Set<string>();

  constructor(private readonly o: EvpnDirectoryOptions) {
    this.rib = new EvpnRib(o.vtep);
    this.freeze = new FreezeCounter({ ...DEFAULT_FREEZE, ...o.freeze });
    this.rewatchDelay = this.rewatchBounds[0];
    for (const n of o.neighbors) this.peers.set(n.address, 'unknown');
  }

  private get rewatchBounds(): [number, number] {
    return this.o.rewatchMs ?? [250, 5000];
  }

  // ---- lifecycle -----------------------------------------------------------------------

  async start(): Promise<void> {
    this.client = this.o.client ?? (this.o.api ? new GobgpClient(this.o.api) : await this.startGobgpd());
    this.started = true;
    const adopted = !!this.o.adopt && !this.o.api;
    if (adopted) await this.adoptRoutes(this.client);
    if (this.o.api && !this.o.client)
      for (const n of this.o.neighbors) this.send(`add neighbor ${n.address}`, `peer ${n.address}`, (c) => this.addPeer(c, n.address, n.password));
    this.reexport(adopted ? 'adopted gobgpd' : 'start');
    const synced = this.watch();
    // An adopted gobgpd has the routes already: FDB and flood lists are full when start() returns.
    if (adopted) await synced;
  }

  /** The gobgpd this directory supervises (null with `gobgp.api`): a takeover hands it over. */
  get supervisor(): Gobgpd | null {
    return this.gobgpd;
  }

  /**
   * An adopted gobgpd has the other routers' routes (imported here at once) and still
   * advertises the predecessor's: take their MAC Mobility sequences for the MACs still here,
   * and withdraw those that are no longer local.
   */
  private async adoptRoutes(c: EvpnClient): Promise<void> {
    const routes = await c.listEvpn('global').catch(() => []);
    for (const r of routes) this.onRoute(r, 0);
    const own = routes.filter((r) => r.neighbor === '' && !r.withdrawal);
    let stale = 0;
    for (const r of own) {
      const m = r.type === 2 && r.mac ? this.local.get(key(r.vni, r.mac)) : undefined;
      if (m) m.seq = Math.max(m.seq, r.seq ?? 0);
      const kept = r.type === 3 ? this.joined.has(r.vni) : !!m && (r.ip === null || m.ips.includes(r.ip));
      if (kept) continue;
      stale++;
      const base = { rd: r.rd, rts: r.rts, vni: r.vni, nexthop: r.nexthop };
      if (r.type === 3) this.send(`withdraw VNI ${r.vni}`, imetRouteKey(r.rd), (x) => x.deleteImetRoute(base));
      else
        this.send(`withdraw ${r.mac}`, macRouteKey({ rd: r.rd, mac: r.mac!, ip: r.ip }), (x) =>
          x.deleteMacRoute({ ...base, mac: r.mac!, ...(r.ip ? { ip: r.ip } : {}) }),
        );
    }
    this.log.info({ routes: routes.length, own: own.length, stale }, 'routes of the adopted gobgpd read');
  }

  private async startGobgpd(): Promise<EvpnClient> {
    await mkdir(this.o.stateDir, { recursive: true });
    const adopt = this.o.adopt;
    if (adopt instanceof Gobgpd) {
      adopt.resume();
      this.gobgpd = adopt;
      adopt.on('restart', () => this.reexport('gobgpd restarted'));
      return adopt.client;
    }
    const g = new Gobgpd({
      asn: this.o.asn,
      routerId: this.o.routerId,
      listenPort: 179,
      listenAddresses: [this.o.vtep],
      neighbors: this.o.neighbors.map((n) => ({ address: n.address, password: n.password })),
      // Seconds between connection attempts: GoBGP 3's minimum (it waits up to about twice that before the first one too).
      connectRetry: 5,
      holdTime: HOLD_TIME,
      keepalive: KEEPALIVE,
      dir: this.o.stateDir,
    });
    try {
      await (adopt ? g.adopt(adopt) : g.start());
    } catch (e) {
      throw new Error(`directory.evpn: ${(e as Error).message} (install gobgpd, Debian's 3.10, or set directory.evpn.gobgp.api)`);
    }
    g.on('restart', () => this.reexport('gobgpd restarted'));
    this.gobgpd = g;
    return g.client;
  }

  /** An existing gobgpd may have the neighbor already (a vtepd restart): not an error (its password is then the one it has). */
  private async addPeer(c: EvpnClient, address: string, password?: string): Promise<void> {
    await c.addPeer({ address, asn: this.o.asn, connectRetry: 5, holdTime: HOLD_TIME, keepalive: KEEPALIVE, password }).catch((e: Error) => {
      if (!/exist/i.test(e.message)) throw e;
    });
  }

  async stop(withdraw = true): Promise<void> {
    this.stopping = true;
    if (this.rewatchTimer) clearTimeout(this.rewatchTimer);
    for (const t of this.sweepTimers.values()) clearTimeout(t);
    for (const t of this.thawTimers.values()) clearTimeout(t);
    this.unwatch?.();
    this.listeners.clear();
    this.macListeners.clear();
    if (withdraw && this.client && !this.gobgpd) {
      for (const vni of this.joined) this.send('withdraw', imetRouteKey(this.rd(vni)), (c) => c.deleteImetRoute(this.imetSpec(vni)));
      for (const m of this.local.values()) this.deleteMac(m);
      await Promise.race([this.calls.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    // Not withdrawing is a handover: the successor adopts gobgpd (its sessions stay up).
    if (this.gobgpd && !withdraw) {
      this.gobgpd.release();
      this.gobgpd.removeAllListeners('restart');
    } else if (this.gobgpd) await this.gobgpd.stop();
    else this.client?.close();
  }

  // ---- export --------------------------------------------------------------------------

  private rd(vni: number): string {
    return `${this.o.routerId}:${rdNumber(vni)}`;
  }

  private imetSpec(vni: number): ImetRouteSpec {
    return { rd: this.rd(vni), rts: [`${this.o.asn}:${vni}`], vni, nexthop: this.o.vtep };
  }

  /** A MAC-only route and one per IP (as FRR sends them); the mobility community past sequence 0. */
  private macSpecs(m: LocalMac, ips = m.ips): MacRouteSpec[] {
    const mobility = m.sticky ? { seq: m.seq, sticky: true } : m.seq > 0 ? { seq: m.seq } : {};
    const base = { rd: this.rd(m.vni), rts: [`${this.o.asn}:${m.vni}`], vni: m.vni, mac: m.mac, nexthop: this.o.vtep, ...mobility };
    return [base, ...ips.map((ip) => ({ ...base, ip }))];
  }

  /** Queue a gRPC call (after start); a failure is counted and logged, never thrown. */
  private send(what: string, routeKey: string, f: (c: EvpnClient) => Promise<void>): void {
    const c = this.client;
    if (!this.started || !c) return;
    this.calls.push(routeKey, () =>
      f(c).catch((e: Error) => {
        this.errors++;
        this.log.warn({ err: e.message }, `gobgpd: ${what} failed`);
      }),
    );
  }

  private addMac(m: LocalMac, ips = m.ips): void {
    for (const r of this.macSpecs(m, ips)) this.send(`advertise ${m.mac}`, macRouteKey(r), (c) => c.addMacRoute(r));
  }

  /**
   * Withdrawn without the mobility community: the NLRI is what names the route, and gobgpd
   * refuses ("invalid MAC mobility sequence number") a withdrawal whose sequence is below
   * another VTEP's, which is just when a MAC that moved away is withdrawn.
   */
  private deleteMac(m: LocalMac, ips = m.ips, macOnly = true): void {
    for (const r of this.macSpecs({ ...m, seq: 0, sticky: false }, ips).slice(macOnly ? 0 : 1))
      this.send(`withdraw ${m.mac}`, macRouteKey(r), (c) => c.deleteMacRoute(r));
  }

  /** Every route of this host, again (a new or restarted gobgpd has none of them). */
  private reexport(why: string): void {
    for (const vni of this.joined) this.send(`advertise VNI ${vni}`, imetRouteKey(this.rd(vni)), (c) => c.addImetRoute(this.imetSpec(vni)));
    for (const m of this.local.values()) this.addMac(m);
    if (this.joined.size || this.local.size) this.log.info({ vnis: this.joined.size, macs: this.local.size, why }, 'EVPN routes advertised');
  }

  /** A local MAC in or out of the table, its routes counted (O(1): no walk over the local MACs per claim). */
  private setLocal(m: LocalMac): void {
    this.local.set(key(m.vni, m.mac), m);
    this.macRoutesOut += 1 + m.ips.length;
  }

  private dropLocal(m: LocalMac): void {
    this.local.delete(key(m.vni, m.mac));
    this.macRoutesOut -= 1 + m.ips.length;
  }

  publish(_self: VtepRecord): void {}

  join(vni: number): void {
    if (this.joined.has(vni)) return;
    this.joined.add(vni);
    this.send(`advertise VNI ${vni}`, imetRouteKey(this.rd(vni)), (c) => c.addImetRoute(this.imetSpec(vni)));
    this.emitMembers(vni);
  }

  leave(vni: number): void {
    if (!this.joined.delete(vni)) return;
    this.send(`withdraw VNI ${vni}`, imetRouteKey(this.rd(vni)), (c) => c.deleteImetRoute(this.imetSpec(vni)));
    this.emitMembers(vni);
  }

  /** `sticky`: a MAC static here (a port's configured MAC), advertised sticky (RFC 7432 §15.2). */
  claimMac(vni: number, mac: string, ips: string[] = [], sticky = false): void {
    const want = normalizeIps(ips);
    const cur = this.local.get(key(vni, mac));
    if (cur) {
      const gone = cur.ips.filter((ip) => !want.includes(ip));
      const added = want.filter((ip) => !cur.ips.includes(ip));
      const nowSticky = sticky && !cur.sticky;
      if (!gone.length && !added.length && !nowSticky) return;
      this.deleteMac(cur, gone, false);
      this.macRoutesOut += want.length - cur.ips.length;
      cur.ips = want;
      if (nowSticky) cur.sticky = true;
      this.addMac(cur, nowSticky ? want : added);
    } else {
      if (this.refuseClaim(vni, mac, want, sticky)) return;
      const others = this.rib.owners(vni, mac);
      const m: LocalMac = { vni, mac, ips: want, seq: claimSeq(others), ...(sticky ? { sticky } : {}) };
      this.setLocal(m);
      this.stats.claims++;
      if (others.size) this.log.info({ vni, mac, from: [...others.keys()], seq: m.seq }, 'MAC moved here: advertised with a higher sequence');
      this.addMac(m);
    }
    this.refresh(vni, mac);
  }

  /**
   * A new claim refused (counted): the MAC is frozen (kept, made when the hold ends), or
   * another VTEP has it sticky and this claim is not (logged once until withdrawn).
   */
  private refuseClaim(vni: number, mac: string, ips: string[], sticky: boolean): boolean {
    const k = key(vni, mac);
    if (this.isFrozen(vni, mac)) {
      this.stats.claimsRefusedFrozen++;
      this.frozenClaims.set(k, { ips, sticky });
      return true;
    }
    if (sticky) return false;
    const owner = [...this.rib.owners(vni, mac)].find(([, c]) => c.sticky)?.[0];
    if (!owner) return false;
    this.stats.claimsRefusedPinned++;
    if (!this.stickyRefused.has(k)) this.log.warn({ vni, mac, owner }, 'MAC is sticky (static) at another VTEP: not claimed here');
    this.stickyRefused.add(k);
    return true;
  }

  withdrawMac(vni: number, mac: string): void {
    this.frozenClaims.delete(key(vni, mac));
    this.stickyRefused.delete(key(vni, mac));
    const cur = this.local.get(key(vni, mac));
    if (!cur) return;
    this.dropLocal(cur);
    this.stats.withdrawn++;
    this.deleteMac(cur);
    this.refresh(vni, mac);
  }

  // ---- import --------------------------------------------------------------------------

  /** Watch, and list what is there (resync); resolves once listed. */
  private watch(): Promise<void> {
    const c = this.client;
    if (!c || this.stopping) return Promise.resolve();
    const gen = ++this.gen;
    this.unwatch = c.watch({
      route: (r) => this.onRoute(r, gen),
      peer: (p) => this.onPeer(p),
      end: (err) => this.onWatchEnd(err),
    });
    return this.resync(c, gen);
  }

  /** After (re)watching: the peers' states, and what was withdrawn while the watch was down. */
  private async resync(c: EvpnClient, gen: number): Promise<void> {
    try {
      const [routes, peers] = await Promise.all([c.listEvpn('global'), c.listPeers()]);
      if (gen !== this.gen) return;
      for (const p of peers) this.onPeer(p);
      if (this.graceMs) for (const [neighbor, n] of this.rib.markUnlisted(gen, routes)) this.keptStale(neighbor, n, 'gobgpd no longer lists them');
      else for (const ch of this.rib.sweep(gen, routes)) this.changed(ch);
      if (!this.connected) this.log.info({ routes: this.rib.size }, 'gobgpd API connected');
      this.connected = true;
      this.rewatchDelay = this.rewatchBounds[0];
      if (gen > 1) this.reexport('watch back');
    } catch (e) {
      this.errors++;
      this.log.debug({ err: (e as Error).message }, 'gobgpd: listing routes and peers failed');
    }
  }

  private onWatchEnd(err: Error | null): void {
    this.unwatch = null;
    if (this.stopping) return;
    this.connected = false;
    this.errors++;
    this.log.warn({ err: err?.message, retryInMs: this.rewatchDelay }, 'gobgpd watch ended; watching again');
    this.rewatchTimer = setTimeout(() => {
      this.rewatchTimer = null;
      void this.watch();
    }, this.rewatchDelay);
    this.rewatchDelay = Math.min(this.rewatchDelay * 2, this.rewatchBounds[1]);
  }

  private onPeer(p: PeerInfo): void {
    if (!p.address || !this.peers.has(p.address)) return;
    const was = this.peers.get(p.address);
    if (was === p.state) return;
    this.peers.set(p.address, p.state);
    const log = { neighbor: p.address, state: p.state, was };
    if (p.state !== 'established' && was !== 'established') {
      this.log.debug(log, 'BGP session state');
      return;
    }
    this.sessionChanges.set(p.address, (this.sessionChanges.get(p.address) ?? 0) + 1);
    if (p.state === 'established') this.log.info(log, 'BGP session up');
    else this.log.warn(log, 'BGP session down');
    if (was !== 'established' || !this.graceMs) return;
    this.rib.markStale(p.address);
    this.keptStale(p.address, this.rib.staleCount(p.address), 'session down');
  }

  private get graceMs(): number {
    return this.o.gracefulRestartMs ?? 0;
  }

  private onRoute(r: EvpnRoute, gen: number): void {
    if (!this.graceMs || (!this.pending.length && !(r.withdrawal && r.neighbor))) return this.applyRoute(r, gen);
    this.pending.push({ r, gen });
    if (!this.draining) void this.drain();
  }

  private applyRoute(r: EvpnRoute, gen: number): void {
    const ch = this.rib.apply(r, gen);
    if (ch) this.changed(ch);
  }

  /** Apply the queued routes in order; a withdrawal from a neighbor whose session is not established keeps its route, stale. */
  private async drain(): Promise<void> {
    this.draining = true;
    while (this.pending.length) {
      const states = await this.sessionStates();
      for (const { r, gen } of this.pending.splice(0)) {
        const lost = r.withdrawal && r.neighbor !== '' && states.get(r.neighbor) !== 'established';
        if (lost && this.rib.keepStale(r)) this.armSweep(r.neighbor, false);
        else this.applyRoute(r, gen);
      }
    }
    this.draining = false;
  }

  /** gobgpd's session states (it sets a peer's state before it withdraws the peer's routes); none when it does not answer. */
  private async sessionStates(): Promise<Map<string, SessionState>> {
    const peers = await (this.client?.listPeers() ?? Promise.resolve([])).catch(() => [] as PeerInfo[]);
    return new Map(peers.map((p) => [p.address, p.state]));
  }

  /** A neighbor's routes kept stale: logged, and swept at the deadline. */
  private keptStale(neighbor: string, n: number, why: string): void {
    if (!n) return;
    this.log.info({ neighbor, stale: n, sweepInS: this.graceMs / 1000, why }, 'graceful restart: routes kept stale');
    this.armSweep(neighbor, true);
  }

  /** Sweep `neighbor`'s stale routes after the restart time (from now when `again`, else from the running timer). */
  private armSweep(neighbor: string, again: boolean): void {
    const t = this.sweepTimers.get(neighbor);
    if (t && !again) return;
    if (t) clearTimeout(t);
    const timer = setTimeout(() => this.sweepNeighbor(neighbor), this.graceMs);
    timer.unref?.();
    this.sweepTimers.set(neighbor, timer);
  }

  private sweepNeighbor(neighbor: string): void {
    this.sweepTimers.delete(neighbor);
    const chs = this.rib.sweepStale(neighbor);
    this.swept += chs.length;
    const seen = new Set<string>();
    for (const ch of chs) {
      const k = ch.kind === 'members' ? `m${ch.vni}` : `${ch.vni}/${ch.mac}`;
      if (seen.has(k)) continue;
      seen.add(k);
      this.changed(ch);
    }
    this.log.info({ neighbor, swept: chs.length, state: this.peers.get(neighbor) ?? 'unknown' }, 'graceful restart over: stale routes swept');
  }

  private changed(ch: RibChange): void {
    if (ch.kind === 'members') this.emitMembers(ch.vni);
    else {
      this.checkOutbid(ch.vni, ch.mac);
      this.refresh(ch.vni, ch.mac);
    }
  }

  /** Another VTEP advertises a MAC of this host with a higher sequence: it moved there; ours goes. */
  private checkOutbid(vni: number, mac: string): void {
    const m = this.local.get(key(vni, mac));
    if (!m || m.sticky || this.isFrozen(vni, mac)) return;
    const winner = outbid(m.seq, this.rib.owners(vni, mac));
    if (!winner) return;
    this.dropLocal(m);
    this.deleteMac(m);
    this.log.info({ vni, mac, to: winner, seq: m.seq }, 'MAC moved to another VTEP (higher sequence): our route withdrawn');
  }

  /** Recompute the record of a MAC and tell the listeners if it changed. */
  private refresh(vni: number, mac: string): void {
    const claims = new Map<string, OwnerClaim>(this.rib.owners(vni, mac));
    const m = this.local.get(key(vni, mac));
    if (m) claims.set(this.o.vtep, { seq: m.seq, ips: m.ips, ...(m.sticky ? { sticky: true } : {}) });
    let t = this.records.get(vni);
    const old = t?.get(mac) ?? null;
    // Frozen: the record stays with its owner while that owner still claims it.
    const kept = old && this.isFrozen(vni, mac) ? claims.get(old.owner) : undefined;
    const best = kept ? { owner: old!.owner, claim: kept } : bestOwner(claims);
    const rec: MacRecord | null = best
      ? { vni, mac, owner: best.owner, port: this.o.port, ips: best.claim.ips, seq: best.claim.seq, ...(best.claim.sticky ? { pinned: true } : {}) }
      : null;
    if (old && rec && sameRecord(old, rec)) return;
    if (!old && !rec) return;
    if (rec) {
      if (!t) this.records.set(vni, (t = new Map()));
      t.set(mac, rec);
    } else t?.delete(mac);
    const why: MacChange = !rec ? 'remove' : !old ? 'add' : old.owner !== rec.owner ? 'move' : 'update';
    if (why === 'move') this.stats.moves++;
    for (const l of this.macListeners) l(vni, mac, rec, why);
    if (why === 'move' && rec) this.countMove(rec);
  }

  /** Duplicate detection (RFC 7432 §15.1): a move that freezes the MAC is logged and told once; the hold's end is timed. */
  private countMove(rec: MacRecord): void {
    const k = key(rec.vni, rec.mac);
    if (!this.freeze.move(k, Date.now())) return;
    this.stats.frozen++;
    const { holdMs } = this.freeze.opts;
    this.log.warn({ vni: rec.vni, mac: rec.mac, owner: rec.owner, seq: rec.seq, holdMs }, 'MAC moves too often (a duplicate?): frozen where it is');
    for (const l of this.macListeners) l(rec.vni, rec.mac, rec, 'frozen');
    clearTimeout(this.thawTimers.get(k));
    const t = setTimeout(() => this.thaw(rec.vni, rec.mac), holdMs + 1);
    t.unref();
    this.thawTimers.set(k, t);
  }

  /** The hold ended: the claim refused meanwhile is made, a higher sequence elsewhere wins again. */
  private thaw(vni: number, mac: string): void {
    const k = key(vni, mac);
    this.thawTimers.delete(k);
    if (this.stopping || this.isFrozen(vni, mac)) return;
    this.log.info({ vni, mac }, 'MAC no longer frozen');
    const c = this.frozenClaims.get(k);
    this.frozenClaims.delete(k);
    if (c && !this.local.has(k)) {
      this.claimMac(vni, mac, c.ips, c.sticky);
      return;
    }
    this.checkOutbid(vni, mac);
    this.refresh(vni, mac);
  }

  private emitMembers(vni: number): void {
    const ms = this.members(vni);
    for (const l of this.listeners) l(vni, ms);
  }

  // ---- reads ---------------------------------------------------------------------------

  subscribe(listener: MembersListener): () => void {
    this.listeners.add(listener);
    const vnis = new Set([...this.joined, ...this.records.keys()]);
    for (const vni of vnis) listener(vni, this.members(vni));
    return () => this.listeners.delete(listener);
  }

  members(vni: number): Member[] {
    const addrs = this.rib.members(vni);
    if (this.joined.has(vni)) addrs.push(this.o.vtep);
    return sortMembers([...new Set(addrs)].map((address) => ({ address, port: this.o.port })));
  }

  subscribeMacs(listener: MacListener): () => void {
    this.macListeners.add(listener);
    for (const [vni, t] of this.records) for (const [mac, rec] of t) listener(vni, mac, rec, 'add');
    return () => this.macListeners.delete(listener);
  }

  mac(vni: number, mac: string): MacRecord | null {
    return this.records.get(vni)?.get(mac) ?? null;
  }

  macs(vni: number): MacRecord[] {
    return [...(this.records.get(vni)?.values() ?? [])];
  }

  lookupIp(vni: number, ip: string): MacRecord | null {
    const n = normalizeIp(ip);
    if (!n) return null;
    for (const rec of this.records.get(vni)?.values() ?? []) if (rec.ips.includes(n)) return rec;
    return null;
  }

  /** The routes gobgpd holds (its global table: this host's and the neighbors'), of one VNI or all, sorted. */
  async routes(vni?: number): Promise<EvpnRouteRow[]> {
    const c = this.client;
    if (!c) return [];
    return (await c.listEvpn('global'))
      .filter((r) => vni === undefined || r.vni === vni)
      .map((r) => ({ type: r.type, vni: r.vni, mac: r.mac, ip: r.ip, nexthop: r.nexthop, seq: r.seq, sticky: r.sticky, rd: r.rd, from: r.neighbor || 'local' }))
      .sort(routeOrder);
  }

  /** The configured neighbors: status's state and changes, and gobgpd's session times and route counts. */
  async neighbors(): Promise<EvpnNeighborRow[]> {
    // gobgpd not answering (restarting): the states vtepd saw, without gobgpd's figures.
    const list: NeighborInfo[] = (await this.client?.listNeighbors?.().catch(() => [])) ?? [];
    const info = new Map(list.map((n) => [n.address, n]));
    return [...this.peers].map(([address, state]) => {
      const n = info.get(address);
      return {
        address,
        state: n?.state ?? state,
        changes: this.sessionChanges.get(address) ?? 0,
        routerId: n?.routerId || null,
        uptime: n?.uptime ?? null,
        downtime: n?.downtime ?? null,
        received: n?.received ?? null,
        accepted: n?.accepted ?? null,
        advertised: n?.advertised ?? null,
      };
    });
  }

  isFrozen(vni: number, mac: string): boolean {
    return this.freeze.isFrozen(key(vni, mac), Date.now());
  }

  macStats(): MacDirectoryStats {
    let macs = 0;
    for (const t of this.records.values()) macs += t.size;
    return { ...this.stats, macs, owned: this.local.size };
  }

  status(): DirectoryStatus {
    return {
      backend: 'evpn',
      connected: this.connected,
      errors: this.errors,
      joined: [...this.joined].sort((a, b) => a - b),
      evpn: {
        asn: this.o.asn,
        routerId: this.o.routerId,
        api: this.gobgpd?.api ?? this.o.api ?? '',
        gobgpd: this.gobgpd ? { pid: this.gobgpd.pid, restarts: this.gobgpd.status().restarts } : null,
        neighbors: [...this.peers].map(([address, state]) => ({ address, state, changes: this.sessionChanges.get(address) ?? 0 })),
        routes: { in: this.rib.size, out: this.joined.size + this.macRoutesOut },
        stale: this.rib.staleCount(),
        swept: this.swept,
      },
    };
  }
}
