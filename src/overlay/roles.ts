/**
 * The node's role in the overlay: what a hub, a spoke and a mesh node do beyond switching.
 *
 * - Every node answers liveness PROBEs (src/overlay/liveness.ts) with a REPLY, from the underlay
 *   port, to the address and port the probe came from (so it crosses a NAT back).
 * - A spoke probes all its hubs every deadInterval/10 (at least every second and every
 *   `keepalive`: a dead hub is noticed within deadInterval + one probe interval), keeps the
 *   one that answers active (HubSelector), trusts every hub in every tenant (accepts their
 *   frames), floods only to the active hub, and when the active hub has been silent for
 *   the dead interval moves to the next one: it flushes the MACs learned through the dead
 *   hub and re-announces each of its local MACs through the new one (a RARP broadcast, as
 *   QEMU does after a migration), so the other spokes learn them behind the new hub. The
 *   same announcement follows a restart of the active hub (its sender id changed). A spoke
 *   with `nat: true` sends everything to its hubs from the underlay port.
 * - A hub learns a spoke from its probes: a VTEP at the probe's outer source address (and
 *   port, for a spoke that says it is behind NAT: several may share an address), trusted
 *   and flooded to in the tenants whose VNIs the probe lists, answered from the underlay
 *   port (what a NAT's or a firewall's conntrack expects). Its tenants relay between
 *   VTEPs (spoke -> hub -> spoke, never back to the ingress spoke). A spoke silent for
 *   3 x deadInterval (at least keepalive + deadInterval) is forgotten with its MACs.
 * - Path MTU: toward each hub (a spoke) and each learned spoke (a hub), unless configured,
 *   DF probes padded to candidate sizes find the largest outer packet that arrives; the
 *   fast path then answers frames that do not fit with ICMP too-big (see Switch).
 * - MSS clamping: per tenant, off, a fixed MSS, or auto (the smallest path MTU of the
 *   tenant's VTEPs minus the encapsulation overhead and 40 / 60 bytes of IP + TCP).
 */
import { randomBytes } from 'node:crypto';
import type { Bridge } from '../core/bridge.js';
import type { Config, HubConfig, Role } from '../config/config.js';
import { encapOverhead, type Encap, type Family } from '../core/encap.js';
import { HEADER, HubSelector, PROBE, REPLY, decodeLiveness, encodeLiveness, type LivenessMessage } from './liveness.js';
import { logger, type Logger } from '../util/log.js';
import { macToBuffer } from '../util/mac.js';
import type { Switch } from '../core/switch.js';
import { vtepKey, type Vtep, type VtepRegistry } from '../core/vteps.js';
import type { Datapath } from '../native/datapath.js';

/**
 * The role keys of the config as they are (keepalive and deadInterval in seconds), plus
 * underlay.mtu (the first guess of every path MTU, and the largest probed) and the
 * underlay's address family.
 */
export type RoleOptions = Pick<Config, 'role' | 'hubs' | 'nat' | 'keepalive' | 'deadInterval' | 'pmtuDiscovery'> & {
  underlayMtu: number;
  family: Family;
};

/** What the role agent works on: the tenants, the VTEPs, and the data path's sends. */
export interface RoleDeps {
  sw: Switch;
  vteps: VtepRegistry;
  dp: RoleDatapath;
}

/** The data path as the role agent uses it: announcements and liveness messages. */
export type RoleDatapath = Pick<Datapath, 'transmit' | 'sendControl'>;

export interface TenantRoleSpec {
  mssClamp: 'off' | 'auto' | number;
  encap: Encap;
}

/** Path MTU discovery toward one peer: rounds of DF probes padded to candidate sizes. */
export class PmtuSearch {
  /** Largest outer packet size known to arrive. */
  lo: number;
  /** Smallest size known not to arrive (max + 1 while unknown). */
  hi: number;
  /** Sizes probed in the current round, and whether a reply came. */
  private round = new Map<number, boolean>();
  done = false;
  /** Rounds with the confirmed size lost in a row (a verify round). */
  private lost = 0;

  constructor(readonly min: number, readonly max: number) {
    this.lo = min;
    this.hi = max + 1;
  }

  /** A round of probes is out (close it with next()). */
  get pending(): boolean {
    return this.round.size > 0;
  }

  /** The size the path is believed to carry now. */
  get value(): number {
    return this.lo;
  }

  /** A reply to a probe of `size` arrived. */
  confirm(size: number): void {
    if (this.round.has(size)) this.round.set(size, true);
  }

  /** A probe of `size` could not even leave this host (EMSGSIZE). */
  refuse(size: number): void {
    if (this.round.has(size)) this.round.delete(size);
    if (size < this.hi && size > this.lo) this.hi = size;
  }

  /**
   * Close the round that ran since the last call and say which sizes to probe next.
   * Returns [] when there is nothing to probe this tick.
   */
  next(): number[] {
    const wasVerify = this.done;
    let verifiedLost = false;
    for (const [size, ok] of this.round) {
      if (ok) this.lo = Math.max(this.lo, size);
      else if (size > this.lo) this.hi = Math.min(this.hi, size);
      else if (wasVerify && size === this.lo) verifiedLost = true;
    }
    if (this.hi <= this.lo) this.hi = this.lo + 1;
    this.round = new Map();
    if (wasVerify) {
      // Verify the confirmed size; two lost in a row: search again from the bottom.
      this.lost = verifiedLost ? this.lost + 1 : 0;
      if (this.lost >= 2) {
        this.hi = this.lo;
        this.lo = this.min;
        this.done = false;
        this.lost = 0;
      } else {
        return [];
      }
    }
    if (this.hi - this.lo <= 8) {
      this.done = true;
      return [];
    }
    // Up to 6 sizes spread over (lo, hi), the largest first.
    const sizes = new Set<number>();
    const span = this.hi - 1 - this.lo;
    for (let k = 6; k >= 1; k--) sizes.add(this.lo + Math.ceil((span * k) / 6));
    for (const s of sizes) this.round.set(s, false);
    return [...sizes];
  }

  /** Probe the confirmed size once (a verify round) — every minute or so once done. */
  verify(): number[] {
    if (!this.done) return [];
    this.round = new Map([[this.lo, false]]);
    return [this.lo];
  }
}

interface HubPeer {
  cfg: HubConfig;
  vtep: Vtep;
  pmtu: PmtuSearch | null;
  alive: boolean;
}

interface SpokePeer {
  key: string;
  address: string;
  port: number;
  nat: boolean;
  vtep: Vtep;
  vnis: Set<number>;
  lastHeard: number;
  sender: number;
  pmtu: PmtuSearch | null;
}

export interface RoleStatus {
  role: Role;
  senderId: string;
  nat: boolean;
  deadInterval: number;
  hubs: { address: string; port: number; active: boolean; alive: boolean; lastReplySecondsAgo: number | null; rttMs: number | null; pathMtu: number; pathMtuState: string }[];
  spokes: { vtep: string; nat: boolean; vnis: number[]; lastHeardSecondsAgo: number; pathMtu: number; pathMtuState: string }[];
  failovers: number;
  announcements: number;
  probesSent: number;
  repliesSent: number;
  invalidMessages: number;
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

export class RoleAgent {
  readonly sender = randomBytes(4).readUInt32BE(0);
  private opts: RoleOptions;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private selector: HubSelector | null = null;
  private hubs: HubPeer[] = [];
  private readonly spokes = new Map<string, SpokePeer>();
  private readonly tenants = new Map<string, TenantRoleSpec>();
  /** seq of a PMTU probe -> the peer's search and the size probed. */
  private readonly pmtuProbes = new Map<number, { search: PmtuSearch; size: number }>();
  private ticks = 0;
  private readonly log: Logger;
  readonly counters = { failovers: 0, announcements: 0, probesSent: 0, repliesSent: 0, invalidMessages: 0 };

  private readonly sw: Switch;
  private readonly vteps: VtepRegistry;
  private readonly dp: RoleDatapath;

  /**
   * The agent works on the Switch's tenants, the VTEP registry and the data path it is
   * given. It does not wire itself in: whoever builds it routes liveness messages to
   * `onControl` (SwitchOptions.onControl) and calls `applyTo` for every tenant added.
   */
  constructor(deps: RoleDeps, opts: RoleOptions, private readonly clock: () => number = Date.now, log?: Logger) {
    this.sw = deps.sw;
    this.vteps = deps.vteps;
    this.dp = deps.dp;
    this.opts = opts;
    this.log = log ?? logger('roles');
  }

  get role(): Role {
    return this.opts.role;
  }

  /** How often probes go out (ms): deadInterval / 10, at least every second and every keepalive, at most 10 a second. */
  get probeIntervalMs(): number {
    return Math.max(100, Math.min((this.opts.deadInterval * 1000) / 10, 1000, this.opts.keepalive * 1000));
  }

  /** How long a hub keeps a silent spoke (ms). */
  get spokeTimeoutMs(): number {
    return Math.max(3 * this.opts.deadInterval, this.opts.keepalive + this.opts.deadInterval) * 1000;
  }

  /** Set up hubs (a spoke), relay (a hub) and every tenant, and start probing. */
  start(): void {
    this.setup();
    this.restartTimer();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A tenant's MSS clamping and encapsulation (before it is added, or on reload). */
  setTenant(name: string, spec: TenantRoleSpec): void {
    this.tenants.set(name, spec);
    const b = this.sw.tenant(name);
    if (b) this.refreshMss(b);
  }

  forgetTenant(name: string): void {
    this.tenants.delete(name);
  }

  /** Apply a new role configuration (reload): what changed is torn down and set up again. */
  reconfigure(opts: RoleOptions): void {
    const before = this.opts;
    this.opts = opts;
    const same = (a: RoleOptions, b: RoleOptions) => a.role === b.role && a.nat === b.nat && a.pmtuDiscovery === b.pmtuDiscovery &&
      a.underlayMtu === b.underlayMtu && JSON.stringify(a.hubs) === JSON.stringify(b.hubs);
    if (!same(before, opts)) {
      this.teardown();
      this.setup();
    } else if (this.selector) {
      this.selector.deadMs = opts.deadInterval * 1000; // timers only: hubs and learned state stay
    }
    if (this.timer) this.restartTimer();
  }

  private restartTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), this.probeIntervalMs);
    this.timer.unref();
  }

  private setup(): void {
    const o = this.opts;
    if (o.role === 'spoke') {
      this.hubs = o.hubs.map((cfg) => ({
        cfg,
        vtep: this.vteps.role(cfg.address, cfg.port, { fixedSourcePort: o.nat, mtu: cfg.mtu ?? o.underlayMtu }),
        pmtu: cfg.mtu === null && o.pmtuDiscovery ? this.newSearch(cfg.family) : null,
        alive: false,
      }));
      this.selector = new HubSelector(o.hubs.map((h) => ({ address: h.address, port: h.port })), o.deadInterval * 1000, this.clock());
    }
    for (const b of this.sw.tenants()) this.applyTo(b);
  }

  private teardown(): void {
    for (const b of this.sw.tenants()) {
      for (const h of this.hubs) this.sw.untrust(b, h.vtep.id);
      for (const s of this.spokes.values()) this.sw.untrust(b, s.vtep.id);
      this.sw.setRelay(b, false);
    }
    for (const h of this.hubs) this.vteps.releaseRole(h.vtep);
    for (const s of this.spokes.values()) this.vteps.releaseRole(s.vtep);
    this.hubs = [];
    this.spokes.clear();
    this.selector = null;
    this.pmtuProbes.clear();
  }

  private newSearch(family: Family): PmtuSearch {
    return new PmtuSearch(family === 4 ? 576 : 1280, this.opts.underlayMtu);
  }

  private activeHub(): HubPeer | undefined {
    const a = this.selector?.activeHub;
    return a && this.hubs.find((h) => h.cfg.address === a.address && h.cfg.port === a.port);
  }

  /** Put the role's state into one tenant (a new one, or all at setup). */
  applyTo(b: Bridge): void {
    const o = this.opts;
    this.sw.setRelay(b, o.role === 'hub');
    if (o.role === 'spoke') {
      const active = this.activeHub();
      for (const h of this.hubs) this.sw.trust(b, h.vtep.id, h === active);
    }
    if (o.role === 'hub') {
      for (const s of this.spokes.values()) if (s.vnis.has(b.vni)) this.sw.trust(b, s.vtep.id, true);
    }
    this.refreshMss(b);
  }

  /** MSS clamping of one tenant from its spec and the path MTUs of its VTEPs. */
  refreshMss(b: Bridge): void {
    const spec = this.tenants.get(b.name);
    const clamp = spec?.mssClamp ?? 'off';
    if (clamp === 'off') return this.sw.setMss(b, 0, 0);
    if (typeof clamp === 'number') return this.sw.setMss(b, clamp, clamp);
    let mtu = this.opts.underlayMtu;
    let family = this.opts.family;
    for (const id of new Set([...b.flood, ...b.dynFlood, ...b.trusted])) {
      const v = this.vteps.get(id);
      if (v && v.mtu > 0 && v.mtu < mtu) { mtu = v.mtu; family = v.address.includes(':') ? 6 : 4; }
    }
    const inner = mtu - encapOverhead(family, spec?.encap ?? 'vxlan');
    this.sw.setMss(b, Math.max(88, inner - 40), Math.max(88, inner - 60));
  }

  // ---- the probe loop ------------------------------------------------------------------

  tick(now = this.clock()): void {
    this.ticks++;
    // Path MTU rounds once a second (a round's replies have that long to come back);
    // a discovered size is verified once a minute.
    const pmtuEvery = Math.max(1, Math.round(1000 / this.probeIntervalMs));
    const pmtuNow = this.ticks % pmtuEvery === 0;
    const verifyEvery = 60 * pmtuEvery;
    if (this.opts.role === 'spoke' && this.selector) {
      for (const h of this.hubs) {
        this.probe(h.cfg.address, h.cfg.port, h.cfg.family);
        if (h.pmtu && pmtuNow) this.pmtuRound(h.cfg.address, h.cfg.port, h.cfg.family, h.pmtu, h.vtep, this.ticks % verifyEvery === 0);
      }
      this.checkHubs(now);
    }
    if (this.opts.role === 'hub') {
      for (const s of [...this.spokes.values()]) {
        if (now - s.lastHeard > this.spokeTimeoutMs) {
          this.forgetSpoke(s, 'silent');
          continue;
        }
        if (s.pmtu && pmtuNow) this.pmtuRound(s.address, s.port, s.address.includes(':') ? 6 : 4, s.pmtu, s.vtep, this.ticks % verifyEvery === 0);
      }
    }
  }

  private checkHubs(now: number): void {
    const sel = this.selector!;
    const before = this.activeHub();
    const ev = sel.tick(now);
    for (const h of this.hubs) {
      const st = sel.hubs.find((x) => x.address === h.cfg.address && x.port === h.cfg.port)!;
      const alive = sel.alive(st, now);
      if (h.alive && !alive) {
        const n = this.sw.flushVtep(h.vtep.id);
        this.log.warn({ hub: h.vtep.key, flushed: n }, 'hub silent for the dead interval: MACs learned through it flushed');
      }
      h.alive = alive;
    }
    if (ev?.kind === 'failover') {
      const after = this.activeHub()!;
      this.counters.failovers++;
      this.log.warn({ from: before?.vtep.key, to: after.vtep.key }, 'failover to the next hub');
      if (before) this.sw.flushVtep(before.vtep.id);
      for (const b of this.sw.tenants()) this.applyTo(b);
      this.announce(after);
    }
  }

  /** Re-announce every local MAC of every tenant through a hub. */
  private announce(h: HubPeer): void {
    for (const b of this.sw.tenants()) {
      for (const e of b.table.values()) {
        if (e.place.kind !== 'port') continue;
        try {
          this.dp.transmit(b.tenantId, announceFrame(e.mac), [], [h.vtep.id]);
          this.counters.announcements++;
        } catch (err) {
          this.log.debug({ err: (err as Error).message }, 'announcement not sent');
        }
      }
    }
  }

  private message(type: typeof PROBE | typeof REPLY, extra: Partial<LivenessMessage> & { padTo?: number } = {}): Buffer {
    return encodeLiveness({
      type, seq: extra.seq ?? (this.seq = (this.seq + 1) >>> 0), sender: this.sender, timestamp: extra.timestamp ?? this.clock(),
      probedSize: extra.probedSize ?? 0, role: this.opts.role, nat: this.opts.nat,
      vnis: this.sw.tenants().map((b) => b.vni), padTo: extra.padTo,
    });
  }

  private send(address: string, port: number, payload: Buffer): boolean {
    try {
      this.dp.sendControl(address, port, payload, { df: true, fromRxSocket: true });
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EMSGSIZE') this.log.debug({ to: address, port, err: (e as Error).message }, 'liveness message not sent');
      return false;
    }
  }

  private probe(address: string, port: number, _family: Family): void {
    if (this.send(address, port, this.message(PROBE))) this.counters.probesSent++;
  }

  /** One round of path MTU probes toward a peer; the VTEP gets the confirmed size. */
  private pmtuRound(address: string, port: number, family: Family, search: PmtuSearch, v: Vtep, verify: boolean): void {
    for (const [seq, p] of this.pmtuProbes) if (p.search === search) this.pmtuProbes.delete(seq);
    const sizes = !search.done || search.pending ? search.next() : verify ? search.verify() : [];
    if (search.done) this.setPathMtu(v, search.value);
    for (const size of sizes) {
      const payload = size - (family === 4 ? 20 : 40) - 8;
      if (payload < HEADER + 4 * this.sw.tenants().length) continue;
      const msg = this.message(PROBE, { padTo: payload });
      if (this.send(address, port, msg)) this.pmtuProbes.set(msg.readUInt32BE(8), { search, size });
      else search.refuse(size);
    }
  }

  private setPathMtu(v: Vtep, mtu: number): void {
    if (v.mtu === mtu) return;
    this.log.info({ vtep: v.key, pathMtu: mtu }, 'path MTU');
    this.vteps.setMtu(v, mtu);
    for (const b of this.sw.tenants()) this.refreshMss(b);
  }

  // ---- messages in -------------------------------------------------------------------------

  onControl(payload: Buffer, from: { address: string; port: number }): void {
    const m = decodeLiveness(payload);
    if ('error' in m) {
      this.counters.invalidMessages++;
      return;
    }
    const now = this.clock();
    if (m.type === PROBE) {
      const reply = this.message(REPLY, { seq: m.seq, timestamp: m.timestamp, probedSize: m.length });
      if (this.send(from.address, from.port, reply)) this.counters.repliesSent++;
      if (this.opts.role === 'hub' && m.role === 'spoke') this.learnSpoke(from, m, now);
      return;
    }
    // A REPLY: a path MTU probe answered, and (a spoke) a hub alive.
    const probe = this.pmtuProbes.get(m.seq);
    if (probe && m.probedSize === probe.size - (from.address.includes(':') ? 40 : 20) - 8) probe.search.confirm(probe.size);
    if (this.selector) {
      const ev = this.selector.onReply(from.address, from.port, m, now);
      const h = this.hubs.find((x) => x.cfg.address === from.address && x.cfg.port === from.port) ?? this.hubs.find((x) => x.cfg.address === from.address);
      if (h && !h.alive) h.alive = true;
      if (ev?.kind === 'restarted' && h) {
        this.log.warn({ hub: h.vtep.key }, 'hub restarted');
        this.sw.flushVtep(h.vtep.id);
        if (h === this.activeHub()) this.announce(h);
      }
    }
  }

  private learnSpoke(from: { address: string; port: number }, m: LivenessMessage, now: number): void {
    const key = m.nat ? vtepKey(from.address, from.port) : from.address;
    let s = this.spokes.get(key);
    if (!s) {
      const vtep = this.vteps.role(from.address, from.port, { matchPort: m.nat, fixedSourcePort: true, mtu: this.opts.underlayMtu });
      s = {
        key, address: from.address, port: from.port, nat: m.nat, vtep, vnis: new Set(), lastHeard: now, sender: m.sender,
        pmtu: this.opts.pmtuDiscovery ? this.newSearch(from.address.includes(':') ? 6 : 4) : null,
      };
      this.spokes.set(key, s);
      this.log.info({ spoke: vtep.key, nat: m.nat, vnis: m.vnis }, 'spoke learned from its probes');
    } else if (s.port !== from.port && !m.nat) {
      // A spoke not behind NAT that now probes from another port: answer there.
      s.port = from.port;
      this.vteps.releaseRole(this.vteps.role(from.address, from.port, { fixedSourcePort: true }));
    }
    if (s.sender !== m.sender) {
      // It restarted: what was learned behind it is stale.
      s.sender = m.sender;
      this.sw.flushVtep(s.vtep.id);
    }
    s.lastHeard = now;
    const vnis = new Set(m.vnis);
    const changed = vnis.size !== s.vnis.size || [...vnis].some((v) => !s!.vnis.has(v));
    s.vnis = vnis;
    if (!changed) return;
    for (const b of this.sw.tenants()) {
      if (vnis.has(b.vni)) this.sw.trust(b, s.vtep.id, true);
      else if (b.trusted.has(s.vtep.id)) this.sw.untrust(b, s.vtep.id);
      this.refreshMss(b);
    }
  }

  private forgetSpoke(s: SpokePeer, why: string): void {
    this.spokes.delete(s.key);
    for (const b of this.sw.tenants()) this.sw.untrust(b, s.vtep.id);
    this.vteps.releaseRole(s.vtep);
    this.log.info({ spoke: s.vtep.key, why }, 'spoke forgotten');
  }

  status(now = this.clock()): RoleStatus {
    const sel = this.selector;
    const active = this.activeHub();
    const ago = (t: number | null) => (t === null ? null : Math.floor((now - t) / 1000));
    const state = (p: PmtuSearch | null, configured: boolean) => (configured ? 'configured' : !p ? 'underlay.mtu' : p.done ? 'discovered' : 'probing');
    return {
      role: this.opts.role,
      senderId: this.sender.toString(16).padStart(8, '0'),
      nat: this.opts.nat,
      deadInterval: this.opts.deadInterval,
      hubs: this.hubs.map((h) => {
        const st = sel?.hubs.find((x) => x.address === h.cfg.address && x.port === h.cfg.port);
        return {
          address: h.cfg.address, port: h.cfg.port, active: h === active, alive: !!st && sel!.alive(st, now),
          lastReplySecondsAgo: ago(st?.lastReply ?? null), rttMs: st?.rtt ?? null,
          pathMtu: h.vtep.mtu, pathMtuState: state(h.pmtu, h.cfg.mtu !== null),
        };
      }),
      spokes: [...this.spokes.values()].map((s) => ({
        vtep: s.vtep.key, nat: s.nat, vnis: [...s.vnis], lastHeardSecondsAgo: Math.floor((now - s.lastHeard) / 1000),
        pathMtu: s.vtep.mtu, pathMtuState: state(s.pmtu, false),
      })),
      ...this.counters,
    };
  }
}
