/**
 * One tenant's layer-2 domain (one VNI): its ports, its flood list and its MAC table.
 *
 * The Bridge owns the authoritative MAC table and its policy — learning, ageing, moves,
 * the per-tenant limit, static entries — and keeps the data path's cache in step with
 * it. It sees only exceptions: a source MAC the cache does not hold at that place, and
 * frames the cache cannot forward (broadcast, multicast, unknown unicast), which it floods
 * by head-end replication with split horizon (a frame from a VTEP never goes back to VTEPs).
 */
import type { Datapath, Place } from '../native/datapath.js';
import { MoveDampener, TokenBucket, type DampeningOptions } from './policy.js';
import { frameMacs, isLearnableMac, isMulticastMac } from '../util/mac.js';

export interface BridgeSpec {
  name: string;
  vni: number;
  learning: boolean;
  /** Milliseconds a learned entry may stay idle before it is removed. */
  ageingMs: number;
  maxMacs: number;
  /**
   * Anti-spoofing. 'known' (the default): encapsulated frames are taken only from the
   * VTEPs the tenant knows (flood list, static entries, hubs, spokes), and learning never
   * points a MAC at another VTEP. 'any': from any source; unknown VTEPs are learned.
   */
  acceptFrom?: 'known' | 'any';
  /** Storm control: flooded frames (broadcast, multicast, unknown unicast) per second, token bucket; null = off. */
  stormControl?: { pps: number; burst: number } | null;
  /** A MAC that moves more than `maxMoves` times within `windowMs` is pinned where it is for `holdMs`; null = off. */
  moveDampening?: DampeningOptions | null;
  /**
   * Learn source MACs of frames from VTEPs (default true). Off with a directory: where a
   * remote MAC lives is the directory's word (`setDirectory`), not the last frame's.
   */
  learnFromUnderlay?: boolean;
}

export interface FdbEntry {
  mac: string;
  place: Place;
  static: boolean;
  /** Put there by the directory (a remote MAC's record): never ages, never flushed by learning's rules. */
  directory?: boolean;
  /** Date.now() when learned or last moved. */
  since: number;
  moves: number;
}

/** What learning did with one source MAC. */
export type LearnResult =
  | 'new'
  | 'refresh'
  | 'move'
  | 'disabled'
  | 'not-learnable'
  | 'static-conflict'
  | 'limit'
  /** A move refused because the MAC flaps (move dampening): it stays where it was. */
  | 'dampened';

export interface BridgeCounters {
  learned: number;
  moves: number;
  aged: number;
  /** Learning refused because the table was at maxMacs (or the global limit). */
  limitRefused: number;
  /** A learned source tried to move a static entry. */
  staticConflicts: number;
  /** Frames flooded (broadcast, multicast, unknown unicast) by the bridge. */
  flooded: number;
  /** Punted frames the bridge forwarded as known unicast (the cache had not caught up). */
  unicastSlowPath: number;
  hairpinDrops: number;
  splitHorizonDrops: number;
  /** Flooded frames dropped by storm control. */
  stormDrops: number;
  /** Moves refused because the MAC was pinned by move dampening. */
  movesDampened: number;
  /** Times a MAC was found flapping and pinned. */
  flapping: number;
  /** ARP requests and neighbour solicitations answered on this host from the directory (never flooded). */
  arpSuppressed: number;
  ndSuppressed: number;
  /** ARP requests and neighbour solicitations flooded (the directory did not know the IP, or there is no directory). */
  arpFlooded: number;
  ndFlooded: number;
}

/** What a bridge's host may do with an ARP request or a neighbour solicitation from a local port. */
export type NeighborVerdict = 'arp-suppressed' | 'nd-suppressed' | 'arp-flood' | 'nd-flood' | null;

/** Hooks the Switch gives a bridge: VTEP reference counting and a global table limit. */
export interface BridgeHost {
  vtepRef(vtepId: number, delta: 1 | -1): void;
  /** True if one more entry fits under the switch-wide limit. */
  globalRoom(): boolean;
  entryCountDelta(delta: number): void;
  /** The clock policies run on (ms). */
  now(): number;
  /** A MAC was found flapping between two places and is pinned (reported, not bounced). */
  flapping?(bridge: Bridge, mac: string, from: Place, to: Place): void;
  /** Does a frame of `len` bytes fit the path MTU toward this VTEP once encapsulated? */
  fits?(b: Bridge, vtepId: number, len: number): boolean;
  /** A frame too big for `vtepId`: answer its sender with ICMP too-big through `ingress`. */
  tooBig?(bridge: Bridge, ingress: Place, frame: Buffer, vtepId: number): void;
  /**
   * A learned MAC is now at a local port (`present`), or no longer is (aged, flushed, its port
   * gone, moved to a VTEP): the directory publishes or withdraws it. Not called for static
   * entries, nor when the directory itself moves the MAC away.
   */
  localMac?(bridge: Bridge, mac: string, portId: number | null, present: boolean): void;
  /**
   * A punted frame from a local port, before it is flooded: the host may glean its sender's
   * IP and answer an ARP request or a neighbour solicitation itself. 'arp-suppressed' /
   * 'nd-suppressed': answered, not flooded; 'arp-flood' / 'nd-flood': a request it could not
   * answer (flooded, counted); null: not a neighbour request.
   */
  neighbor?(bridge: Bridge, portId: number, frame: Buffer): NeighborVerdict;
}

export class Bridge {
  readonly name: string;
  readonly vni: number;
  learning: boolean;
  ageingMs: number;
  maxMacs: number;
  readonly ports = new Set<number>();
  readonly flood = new Set<number>();
  readonly table = new Map<string, FdbEntry>();
  readonly counters: BridgeCounters = {
    learned: 0,
    moves: 0,
    aged: 0,
    limitRefused: 0,
    staticConflicts: 0,
    flooded: 0,
    unicastSlowPath: 0,
    hairpinDrops: 0,
    splitHorizonDrops: 0,
    stormDrops: 0,
    movesDampened: 0,
    flapping: 0,
    arpSuppressed: 0,
    ndSuppressed: 0,
    arpFlooded: 0,
    ndFlooded: 0,
  };
  storm: TokenBucket | null = null;
  dampener: MoveDampener | null = null;

  constructor(
    readonly tenantId: number,
    spec: BridgeSpec,
    private readonly dp: Datapath,
    private readonly host: BridgeHost,
  ) {
    this.name = spec.name;
    this.vni = spec.vni;
    this.learning = spec.learning;
    this.ageingMs = spec.ageingMs;
    this.maxMacs = spec.maxMacs;
    this.acceptAny = spec.acceptFrom === 'any';
    this.learnFromUnderlay = spec.learnFromUnderlay ?? true;
    this.setProtection(spec.stormControl ?? null, spec.moveDampening ?? null);
  }

  /** Set (or turn off with null) storm control and move dampening; the table stays. */
  setProtection(storm: BridgeSpec['stormControl'], damp: BridgeSpec['moveDampening']): void {
    const now = this.host.now();
    if (!storm) this.storm = null;
    else if (!this.storm || this.storm.rate !== storm.pps || this.storm.burst !== storm.burst) this.storm = new TokenBucket(storm.pps, storm.burst, now);
    if (!damp) this.dampener = null;
    else {
      const o = this.dampener?.opts;
      if (!o || o.maxMoves !== damp.maxMoves || o.windowMs !== damp.windowMs || o.holdMs !== damp.holdMs) this.dampener = new MoveDampener({ ...damp });
    }
  }

  /** acceptFrom: any. */
  acceptAny: boolean;
  /** Learn MACs behind VTEPs from their frames (see BridgeSpec.learnFromUnderlay). */
  learnFromUnderlay: boolean;
  /** VTEP ids the tenant accepts frames from (kept in step with the data path by the Switch). */
  readonly accepted = new Set<number>();
  /** VTEP ids accepted beyond the flood list and static entries (hubs, spokes). */
  readonly trusted = new Set<number>();
  /**
   * Flood targets the node's role adds to the configured flood list: on a hub, the spokes
   * that carry this tenant; on a spoke, its active hub (src/overlay/roles.ts keeps them).
   */
  readonly dynFlood = new Set<number>();
  /**
   * Hub relay: frames from a VTEP may go to another VTEP (spoke -> hub -> spoke), known
   * unicast and flooding alike, but never back to the VTEP they came from. Off: split
   * horizon (a full mesh never relays).
   */
  relay = false;
  /** Frames the bridge did not send to a VTEP because they exceed its path MTU (an ICMP reply went back). */
  tooBig = 0;

  /** May encapsulated frames from this VTEP enter the tenant? */
  accepts(vtepId: number): boolean {
    return this.acceptAny || this.accepted.has(vtepId);
  }

  /** What `learn` would do with `mac` at `place`, without doing it (trace uses this). */
  learnDecision(mac: string, place: Place): LearnResult {
    if (!isLearnableMac(mac)) return 'not-learnable';
    if (!this.learning || (place.kind === 'vtep' && !this.learnFromUnderlay)) return 'disabled';
    const cur = this.table.get(mac);
    if (cur) {
      if (samePlace(cur.place, place)) return 'refresh';
      if (cur.static) return 'static-conflict';
      return this.dampener?.isPinned(mac, this.host.now()) ? 'dampened' : 'move';
    }
    if (this.table.size >= this.maxMacs || !this.host.globalRoom()) return 'limit';
    return 'new';
  }

  /** Learn `mac` at `place` under the tenant's policy and program the cache. */
  learn(mac: string, place: Place): LearnResult {
    let result = this.learnDecision(mac, place);
    const cur = this.table.get(mac);
    if (result === 'move' && this.dampener) {
      const verdict = this.dampener.allowMove(mac, this.host.now());
      if (verdict === 'flapping') {
        this.counters.flapping++;
        this.host.flapping?.(this, mac, cur!.place, place);
      }
      if (verdict !== 'ok') result = 'dampened';
    }
    switch (result) {
      case 'dampened':
        this.counters.movesDampened++;
        break;
      case 'refresh':
        // The cache reported it, so it lost the entry (or never had it): program again.
        this.dp.fdbSet(this.tenantId, mac, place);
        if (place.kind === 'port') this.host.localMac?.(this, mac, place.portId, true);
        break;
      case 'static-conflict':
        this.counters.staticConflicts++;
        break;
      case 'move': {
        const from = cur!.place;
        this.retarget(cur!, place);
        cur!.moves++;
        cur!.since = Date.now();
        cur!.directory = undefined;
        this.counters.moves++;
        if (place.kind === 'port') this.host.localMac?.(this, mac, place.portId, true);
        else if (from.kind === 'port') this.host.localMac?.(this, mac, null, false);
        break;
      }
      case 'limit':
        this.counters.limitRefused++;
        break;
      case 'new':
        this.insert({ mac, place, static: false, since: Date.now(), moves: 0 });
        this.counters.learned++;
        if (place.kind === 'port') this.host.localMac?.(this, mac, place.portId, true);
        break;
    }
    return result;
  }

  /** Add or replace a static entry (config). Static entries never age and never move by learning. */
  setStatic(mac: string, place: Place): void {
    const cur = this.table.get(mac);
    if (cur) {
      this.retarget(cur, place);
      cur.static = true;
      cur.since = Date.now();
      return;
    }
    if (!isLearnableMac(mac)) throw new Error(`static entry ${mac}: not a unicast MAC`);
    this.insert({ mac, place, static: true, since: Date.now(), moves: 0 });
  }

  /**
   * Where the directory says a MAC lives (a remote owner's VTEP): replaces a learned entry
   * (the MAC moved away from here; its claim is the other host's now), never a static one.
   * Returns false if a static entry holds the MAC or the table is full.
   */
  setDirectory(mac: string, place: Place): boolean {
    if (!isLearnableMac(mac)) return false;
    const cur = this.table.get(mac);
    if (cur) {
      if (cur.static) return false;
      if (!samePlace(cur.place, place)) {
        this.retarget(cur, place);
        cur.since = Date.now();
      }
      cur.directory = true;
      return true;
    }
    if (this.table.size >= this.maxMacs || !this.host.globalRoom()) {
      this.counters.limitRefused++;
      return false;
    }
    this.insert({ mac, place, static: false, directory: true, since: Date.now(), moves: 0 });
    return true;
  }

  /** The directory no longer knows `mac` (withdrawn, its owner gone): remove it if the directory put it there. */
  removeDirectory(mac: string): boolean {
    const cur = this.table.get(mac);
    if (!cur?.directory) return false;
    return this.remove(mac);
  }

  /** Remove one entry from the table and the cache. Returns false if there was none. */
  remove(mac: string): boolean {
    const cur = this.table.get(mac);
    if (!cur) return false;
    this.table.delete(mac);
    this.dampener?.forget(mac);
    this.host.entryCountDelta(-1);
    if (cur.place.kind === 'vtep') this.host.vtepRef(cur.place.vtepId, -1);
    this.dp.fdbDel(this.tenantId, mac);
    if (cur.place.kind === 'port' && !cur.static) this.host.localMac?.(this, mac, cur.place.portId, false);
    return true;
  }

  /** Remove learned entries (all, or those at one place); static and directory ones stay. Returns how many. */
  flush(where?: Place): number {
    let n = 0;
    for (const e of [...this.table.values()]) {
      if (e.static || e.directory) continue;
      if (where && !samePlace(e.place, where)) continue;
      this.remove(e.mac);
      n++;
    }
    return n;
  }

  /** Remove every entry pointing at a place, static ones included (the place is gone). */
  forget(where: Place): void {
    for (const e of [...this.table.values()]) if (samePlace(e.place, where)) this.remove(e.mac);
  }

  /** Age out learned entries idle longer than the tenant's ageing time. */
  age(idleMs: Map<string, number>): string[] {
    const aged: string[] = [];
    for (const e of [...this.table.values()]) {
      if (e.static || e.directory) continue;
      const idle = idleMs.get(e.mac);
      if (idle !== undefined && idle >= this.ageingMs) {
        this.remove(e.mac);
        this.counters.aged++;
        aged.push(e.mac);
      }
    }
    return aged;
  }

  /** How long until the first learned entry would age if nothing refreshed it (ms; Infinity: none would). */
  untilAged(idleMs: Map<string, number>): number {
    let least = Number.POSITIVE_INFINITY;
    for (const e of this.table.values()) {
      const idle = e.static || e.directory ? undefined : idleMs.get(e.mac);
      if (idle !== undefined) least = Math.min(least, this.ageingMs - idle);
    }
    return least;
  }

  /**
   * Where a frame goes, from its `decide` decision, counted: known unicast to its one place, everything
   * else flooded to the tenant's other ports and (only if it came from a local port) its
   * flood list.
   */
  private outputs(d: Decision): { ports: number[]; vteps: number[] } {
    switch (d.action) {
      case 'forward':
        this.counters.unicastSlowPath++;
        return d.to.kind === 'port' ? { ports: [d.to.portId], vteps: [] } : { ports: [], vteps: [d.to.vtepId] };
      case 'drop':
        if (d.reason === 'hairpin') this.counters.hairpinDrops++;
        else this.counters.splitHorizonDrops++;
        return { ports: [], vteps: [] };
      case 'flood':
        this.counters.flooded++;
        return { ports: d.ports, vteps: d.vteps };
    }
  }

  /** Forward a punted frame: learn its source, then send it where `outputs` says. */
  forward(ingress: Place, frame: Buffer, sourceLearned = false): number {
    const { src, dst } = frameMacs(frame);
    // The fast path reports a new source (learn event) before it punts the same frame
    // (miss event): learn it once, so a refusal is counted once.
    if (!sourceLearned) this.learn(src, ingress);
    if (ingress.kind === 'port' && this.host.neighbor && (dst === 'ff:ff:ff:ff:ff:ff' || isMulticastMac(dst))) {
      const v = this.host.neighbor(this, ingress.portId, frame);
      // Answered on this host (the reply went back out of the port): nothing to flood.
      if (v === 'arp-suppressed' || v === 'nd-suppressed') {
        if (v === 'arp-suppressed') this.counters.arpSuppressed++;
        else this.counters.ndSuppressed++;
        return 1;
      }
      if (v === 'arp-flood') this.counters.arpFlooded++;
      else if (v === 'nd-flood') this.counters.ndFlooded++;
    }
    const d = decide(this, ingress, dst);
    if (this.storm && d.action === 'flood' && !this.storm.take(this.host.now())) {
      this.counters.stormDrops++;
      return 0;
    }
    const out = this.outputs(d);
    let { vteps } = out;
    // Copies too big for a VTEP's path are not sent; the sender hears ICMP too-big instead.
    if (vteps.length && this.host.fits) {
      const fit = vteps.filter((v) => this.host.fits!(this, v, frame.length));
      if (fit.length !== vteps.length) {
        this.tooBig++;
        this.host.tooBig?.(this, ingress, frame, vteps.find((v) => !fit.includes(v))!);
        vteps = fit;
      }
    }
    if (out.ports.length === 0 && vteps.length === 0) return 0;
    return this.dp.transmit(this.tenantId, frame, out.ports, vteps);
  }

  private insert(e: FdbEntry): void {
    this.table.set(e.mac, e);
    this.host.entryCountDelta(1);
    if (e.place.kind === 'vtep') this.host.vtepRef(e.place.vtepId, 1);
    this.dp.fdbSet(this.tenantId, e.mac, e.place);
  }

  private retarget(e: FdbEntry, place: Place): void {
    if (place.kind === 'vtep') this.host.vtepRef(place.vtepId, 1);
    if (e.place.kind === 'vtep') this.host.vtepRef(e.place.vtepId, -1);
    e.place = place;
    this.dp.fdbSet(this.tenantId, e.mac, place);
  }
}

/** What a bridge looks at to forward a frame; a Bridge is one. */
export interface BridgeView {
  readonly table: ReadonlyMap<string, FdbEntry>;
  readonly ports: ReadonlySet<number>;
  readonly flood: ReadonlySet<number>;
  /** Flood targets added by the role (hub: spokes; spoke: the active hub). */
  readonly dynFlood?: ReadonlySet<number>;
  /** Hub relay between VTEPs (see Bridge.relay). */
  readonly relay?: boolean;
}

/** The forwarding decision for one frame (pure; forwarding and `vtepd trace` both use it). */
export type Decision =
  | { action: 'forward'; reason: 'known-unicast'; to: Place; entry: FdbEntry }
  | { action: 'drop'; reason: 'hairpin' | 'split-horizon'; entry: FdbEntry }
  | { action: 'flood'; reason: 'broadcast' | 'multicast' | 'unknown-unicast'; ports: number[]; vteps: number[] };

/**
 * Decide where a frame to `dst` that came in at `ingress` goes. Known unicast goes to its
 * one place, except back out of the port it came in (hairpin) or from a VTEP to a VTEP
 * (split horizon); broadcast, multicast and unknown unicast are flooded to the other local
 * ports and, only if the frame came from a local port, to every VTEP of the flood list.
 * A hub (`relay`) forwards between VTEPs instead: known unicast to another VTEP, floods to
 * every flood VTEP but the one the frame came from, and drops only what would go back
 * to the VTEP it came from (hairpin).
 */
export function decide(view: BridgeView, ingress: Place, dst: string): Decision {
  if (!isMulticastMac(dst)) {
    const entry = view.table.get(dst);
    if (entry) {
      if (entry.place.kind === 'port' && ingress.kind === 'port' && ingress.portId === entry.place.portId) return { action: 'drop', reason: 'hairpin', entry };
      if (entry.place.kind === 'vtep' && ingress.kind === 'vtep') {
        if (!view.relay) return { action: 'drop', reason: 'split-horizon', entry };
        if (entry.place.vtepId === ingress.vtepId) return { action: 'drop', reason: 'hairpin', entry };
      }
      return { action: 'forward', reason: 'known-unicast', to: entry.place, entry };
    }
  }
  const reason = dst === 'ff:ff:ff:ff:ff:ff' ? 'broadcast' : isMulticastMac(dst) ? 'multicast' : 'unknown-unicast';
  const ports = [...view.ports].filter((p) => !(ingress.kind === 'port' && ingress.portId === p));
  const all = view.dynFlood?.size ? [...new Set([...view.flood, ...view.dynFlood])] : [...view.flood];
  const vteps = ingress.kind !== 'vtep' ? all : view.relay ? all.filter((v) => v !== ingress.vtepId) : [];
  return { action: 'flood', reason, ports, vteps };
}

export function samePlace(a: Place, b: Place): boolean {
  if (a.kind === 'port') return b.kind === 'port' && a.portId === b.portId;
  return b.kind === 'vtep' && a.vtepId === b.vtepId;
}
