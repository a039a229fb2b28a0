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
 * withdraws this host's routes (the record then points at the other VTEP). Duplicate detection
 * (freeze) is not built: isFrozen is false, `frozen` 0.
 */
import { mkdir } from 'node:fs/promises';
import { type Logger, logger } from '../util/log.js';
import type { EvpnRoute, ImetRouteSpec, MacRouteSpec, NeighborInfo, PeerInfo, PeerSpec, SessionState, WatchHandlers } from '../evpn/gobgp.js';
import { GobgpClient } from '../evpn/gobgp.js';
import { Gobgpd } from '../evpn/gobgpd.js';
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
import { normalizeIp, normalizeIps, sameRecord } from './macs.js';

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
  /** Tests: this client instead of gobgpd. */
  client?: EvpnClient;
  /** Re-watch delays after the watch ended: the first, doubled up to the last (default 250 ms to 5 s). */
  rewatchMs?: [number, number];
}

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
}

const key = (vni: number, mac: string) => `${vni}/${mac}`;

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
  /** gRPC calls in order (a delete never overtakes its add). */
  private chain: Promise<void> = Promise.resolve();
  private routesOut = 0;

  constructor(private readonly o: EvpnDirectoryOptions) {
    this.rib = new EvpnRib(o.vtep);
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
    if (this.o.api && !this.o.client) for (const n of this.o.neighbors) this.send(`add neighbor ${n.address}`, (c) => this.addPeer(c, n.address, n.password));
    this.reexport('start');
    this.watch();
  }

  private async startGobgpd(): Promise<EvpnClient> {
    await mkdir(this.o.stateDir, { recursive: true });
    const g = new Gobgpd({
      asn: this.o.asn,
      routerId: this.o.routerId,
      listenPort: 179,
      listenAddresses: [this.o.vtep],
      neighbors: this.o.neighbors.map((n) => ({ address: n.address, password: n.password })),
      // Seconds between connection attempts: GoBGP 3's minimum (it waits up to about twice that before the first one too).
      connectRetry: 5,
      dir: this.o.stateDir,
    });
    try {
      await g.start();
    } catch (e) {
      throw new Error(`directory.evpn: ${(e as Error).message} (install gobgpd, Debian's 3.10, or set directory.evpn.gobgp.api)`);
    }
    g.on('restart', () => this.reexport('gobgpd restarted'));
    this.gobgpd = g;
    return g.client;
  }

  /** An existing gobgpd may have the neighbor already (a vtepd restart): not an error (its password is then the one it has). */
  private async addPeer(c: EvpnClient, address: string, password?: string): Promise<void> {
    await c.addPeer({ address, asn: this.o.asn, connectRetry: 5, password }).catch((e: Error) => {
      if (!/exist/i.test(e.message)) throw e;
    });
  }

  async stop(withdraw = true): Promise<void> {
    this.stopping = true;
    if (this.rewatchTimer) clearTimeout(this.rewatchTimer);
    this.unwatch?.();
    this.listeners.clear();
    this.macListeners.clear();
    if (withdraw && this.client && !this.gobgpd) {
      for (const vni of this.joined) this.send('withdraw', (c) => c.deleteImetRoute(this.imetSpec(vni)));
      for (const m of this.local.values()) this.deleteMac(m);
      await Promise.race([this.chain, new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    if (this.gobgpd) await this.gobgpd.stop();
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
    const base = { rd: this.rd(m.vni), rts: [`${this.o.asn}:${m.vni}`], vni: m.vni, mac: m.mac, nexthop: this.o.vtep, ...(m.seq > 0 ? { seq: m.seq } : {}) };
    return [base, ...ips.map((ip) => ({ ...base, ip }))];
  }

  /** Queue a gRPC call (after start); a failure is counted and logged, never thrown. */
  private send(what: string, f: (c: EvpnClient) => Promise<void>): void {
    const c = this.client;
    if (!this.started || !c) return;
    this.chain = this.chain.then(() =>
      f(c).catch((e: Error) => {
        this.errors++;
        this.log.warn({ err: e.message }, `gobgpd: ${what} failed`);
      }),
    );
  }

  private addMac(m: LocalMac, ips = m.ips): void {
    for (const r of this.macSpecs(m, ips)) this.send(`advertise ${m.mac}`, (c) => c.addMacRoute(r));
  }

  /**
   * Withdrawn without the mobility community: the NLRI is what names the route, and gobgpd
   * refuses ("invalid MAC mobility sequence number") a withdrawal whose sequence is below
   * another VTEP's, which is just when a MAC that moved away is withdrawn.
   */
  private deleteMac(m: LocalMac, ips = m.ips, macOnly = true): void {
    for (const r of this.macSpecs({ ...m, seq: 0 }, ips).slice(macOnly ? 0 : 1)) this.send(`withdraw ${m.mac}`, (c) => c.deleteMacRoute(r));
  }

  /** Every route of this host, again (a new or restarted gobgpd has none of them). */
  private reexport(why: string): void {
    for (const vni of this.joined) this.send(`advertise VNI ${vni}`, (c) => c.addImetRoute(this.imetSpec(vni)));
    for (const m of this.local.values()) this.addMac(m);
    this.countOut();
    if (this.joined.size || this.local.size) this.log.info({ vnis: this.joined.size, macs: this.local.size, why }, 'EVPN routes advertised');
  }

  private countOut(): void {
    let n = this.joined.size;
    for (const m of this.local.values()) n += 1 + m.ips.length;
    this.routesOut = n;
  }

  publish(_self: VtepRecord): void {}

  join(vni: number): void {
    if (this.joined.has(vni)) return;
    this.joined.add(vni);
    this.send(`advertise VNI ${vni}`, (c) => c.addImetRoute(this.imetSpec(vni)));
    this.countOut();
    this.emitMembers(vni);
  }

  leave(vni: number): void {
    if (!this.joined.delete(vni)) return;
    this.send(`withdraw VNI ${vni}`, (c) => c.deleteImetRoute(this.imetSpec(vni)));
    this.countOut();
    this.emitMembers(vni);
  }

  claimMac(vni: number, mac: string, ips: string[] = []): void {
    const want = normalizeIps(ips);
    const cur = this.local.get(key(vni, mac));
    if (cur) {
      const gone = cur.ips.filter((ip) => !want.includes(ip));
      const added = want.filter((ip) => !cur.ips.includes(ip));
      if (!gone.length && !added.length) return;
      this.deleteMac(cur, gone, false);
      cur.ips = want;
      this.addMac(cur, added);
    } else {
      const others = this.rib.owners(vni, mac);
      const m: LocalMac = { vni, mac, ips: want, seq: claimSeq(others) };
      this.local.set(key(vni, mac), m);
      this.stats.claims++;
      if (others.size) this.log.info({ vni, mac, from: [...others.keys()], seq: m.seq }, 'MAC moved here: advertised with a higher sequence');
      this.addMac(m);
    }
    this.countOut();
    this.refresh(vni, mac);
  }

  withdrawMac(vni: number, mac: string): void {
    const cur = this.local.get(key(vni, mac));
    if (!cur) return;
    this.local.delete(key(vni, mac));
    this.stats.withdrawn++;
    this.deleteMac(cur);
    this.countOut();
    this.refresh(vni, mac);
  }

  // ---- import --------------------------------------------------------------------------

  private watch(): void {
    const c = this.client;
    if (!c || this.stopping) return;
    const gen = ++this.gen;
    this.unwatch = c.watch({
      route: (r) => this.onRoute(r, gen),
      peer: (p) => this.onPeer(p),
      end: (err) => this.onWatchEnd(err),
    });
    void this.resync(c, gen);
  }

  /** After (re)watching: the peers' states, and what was withdrawn while the watch was down. */
  private async resync(c: EvpnClient, gen: number): Promise<void> {
    try {
      const [routes, peers] = await Promise.all([c.listEvpn('global'), c.listPeers()]);
      if (gen !== this.gen) return;
      for (const p of peers) this.onPeer(p);
      for (const ch of this.rib.sweep(gen, routes)) this.changed(ch);
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
      this.watch();
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
  }

  private onRoute(r: EvpnRoute, gen: number): void {
    const ch = this.rib.apply(r, gen);
    if (ch) this.changed(ch);
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
    if (!m) return;
    const winner = outbid(m.seq, this.rib.owners(vni, mac));
    if (!winner) return;
    this.local.delete(key(vni, mac));
    this.deleteMac(m);
    this.countOut();
    this.log.info({ vni, mac, to: winner, seq: m.seq }, 'MAC moved to another VTEP (higher sequence): our route withdrawn');
  }

  /** Recompute the record of a MAC and tell the listeners if it changed. */
  private refresh(vni: number, mac: string): void {
    const claims = new Map<string, OwnerClaim>(this.rib.owners(vni, mac));
    const m = this.local.get(key(vni, mac));
    if (m) claims.set(this.o.vtep, { seq: m.seq, ips: m.ips });
    const best = bestOwner(claims);
    const rec: MacRecord | null = best ? { vni, mac, owner: best.owner, port: this.o.port, ips: best.claim.ips, seq: best.claim.seq } : null;
    let t = this.records.get(vni);
    const old = t?.get(mac) ?? null;
    if (old && rec && sameRecord(old, rec)) return;
    if (!old && !rec) return;
    if (rec) {
      if (!t) this.records.set(vni, (t = new Map()));
      t.set(mac, rec);
    } else t?.delete(mac);
    const why: MacChange = !rec ? 'remove' : !old ? 'add' : old.owner !== rec.owner ? 'move' : 'update';
    if (why === 'move') this.stats.moves++;
    for (const l of this.macListeners) l(vni, mac, rec, why);
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

  /** Duplicate detection is not built for EVPN yet (docs/evpn.md). */
  isFrozen(_vni: number, _mac: string): boolean {
    return false;
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
        routes: { in: this.rib.size, out: this.routesOut },
      },
    };
  }
}
