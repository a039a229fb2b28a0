/**
 * The node's role in the overlay: what a hub, a spoke and a mesh node do beyond switching.
 *
 * This file is what every role shares (probes and replies, path MTU probing, MSS
 * clamping, relay); a spoke's hubs are src/overlay/spoke.ts, a hub's spokes
 * src/overlay/hub.ts.
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
 *
 * With an identity (src/secure/peers.ts), every peer is a key: a spoke's hubs are pinned by
 * theirs, a hub admits only the spokes it lists (into their VNIs only), a mesh VTEP with a
 * key is one too. Liveness and path MTU probes then travel only inside the authenticated
 * channel (the data path encrypts them, dpSendSecure); a plaintext liveness message is
 * counted (`unauthenticated`) and never answered, and nothing is sent to a peer before its
 * handshake succeeded. A hub learns a spoke when its handshake authenticates, at the
 * address and port it came from, and follows it there (NAT rebinding) only on packets the
 * data path authenticated.
 */
import { randomBytes } from 'node:crypto';
import type { Bridge } from '../core/bridge.js';
import type { Config, Role } from '../config/config.js';
import { encapOverhead, type Encap, type Family } from '../core/encap.js';
import { HEADER, PROBE, REPLY, decodeLiveness, encodeLiveness, type LivenessMessage } from './liveness.js';
import { logger, type Logger } from '../util/log.js';
import type { Switch } from '../core/switch.js';
import { vtepKey, type Vtep, type VtepRegistry } from '../core/vteps.js';
import type { Datapath, DpEvent } from '../native/datapath.js';
import { PmtuSearch } from './pmtu.js';
import { SpokeRole } from './spoke.js';
import { HubRole, spokeTimeoutMs } from './hub.js';
import { SECURE_OVERHEAD } from '../core/encap.js';
import type { Identity } from '../secure/handshake.js';
import { SecureLayer, type Endpoint, type Peer, type PeerSpec, type SecureDatapath, type SecureHooks } from '../secure/peers.js';

/**
 * The role keys of the config, keepalive and deadInterval in milliseconds, plus
 * underlay.mtu (the first guess of every path MTU, and the largest probed) and the
 * underlay's address family.
 */
export type RoleOptions = Pick<Config, 'role' | 'hubs' | 'nat' | 'pmtuDiscovery'> & {
  keepaliveMs: number;
  deadIntervalMs: number;
  underlayMtu: number;
  family: Family;
  /** A hub with an identity: the spokes it admits, by key (config `spokes`). */
  spokes?: Config['spokes'];
  /** Session key rotation (identity.rekeyInterval), ms. */
  rekeyMs?: number;
  /** The tunnel's UDP port (mesh peers with keys are reached there). */
  port?: number;
};

/** What the role agent works on: the tenants, the VTEPs, and the data path's sends. */
export interface RoleDeps {
  sw: Switch;
  vteps: VtepRegistry;
  dp: RoleDatapath;
  /** The node's key pair: authenticated peers and encrypted tunnels (null or absent: plain). */
  identity?: Identity | null;
}

/** The data path as the role agent uses it: announcements, liveness messages, session keys. */
export type RoleDatapath = Pick<Datapath, 'transmit' | 'sendControl' | 'sendSecure' | 'cipherName'> & SecureDatapath;

/** What a spoke's or a hub's side (spoke.ts, hub.ts) uses of the agent. */
export interface RoleContext extends RoleDeps {
  readonly opts: RoleOptions;
  readonly log: Logger;
  readonly counters: RoleAgent['counters'];
  clock(): number;
  /** The authenticated peers (null without an identity). */
  readonly secure: SecureLayer | null;
  /** Send a PROBE to the VTEP (inside its session with an identity: not before it is up). */
  probe(v: Vtep): void;
  /** One round of path MTU probes toward a peer; its VTEP gets the confirmed size. */
  pmtuRound(family: Family, search: PmtuSearch, v: Vtep, verify: boolean, budget?: { bytes: number }): void;
  newSearch(family: Family): PmtuSearch;
  /** Put the role's state into one tenant. */
  applyTo(b: Bridge): void;
  refreshMss(b: Bridge): void;
}

export interface TenantRoleSpec {
  mssClamp: 'off' | 'auto' | number;
  encap: Encap;
  /** Frames travel encrypted (32 bytes more per packet: the MSS clamp leaves room). */
  encrypted?: boolean;
  /** Mesh VTEPs with a key (flood entries): address -> public key. */
  vtepKeys?: Record<string, string>;
}

export interface RoleStatus {
  role: Role;
  senderId: string;
  nat: boolean;
  deadInterval: number;
  hubs: {
    address: string;
    port: number;
    active: boolean;
    alive: boolean;
    lastReplySecondsAgo: number | null;
    rttMs: number | null;
    pathMtu: number;
    pathMtuState: string;
  }[];
  spokes: { vtep: string; nat: boolean; vnis: number[]; lastHeardSecondsAgo: number; pathMtu: number; pathMtuState: string }[];
  /** A hub: probes refused because the spoke table was full, or because one outer address already had its share. */
  spokesRefused: { tableFull: number; perAddress: number };
  failovers: number;
  announcements: number;
  probesSent: number;
  repliesSent: number;
  invalidMessages: number;
  /** Plaintext liveness messages ignored because this node talks only to authenticated peers. */
  unauthenticated: number;
  /** With an identity: the handshakes and peers (src/secure/peers.ts). */
  secure: SecureStatus | null;
}

export interface SecureStatus {
  publicKey: string;
  /** What this node seals with (each receiver takes both): aes-256-gcm with AES-NI, else chacha20-poly1305. */
  cipher: string;
  rekeyInterval: number;
  peers: {
    name: string;
    publicKey: string;
    vtep: string | null;
    up: boolean;
    handshakes: number;
    sessionAgeSeconds: number | null;
    lastHeardSecondsAgo: number | null;
  }[];
  handshakes: number;
  initiationsSent: number;
  responsesSent: number;
  cookiesSent: number;
  cookiesReceived: number;
  roams: number;
  dropped: Record<string, number>;
}

export class RoleAgent implements RoleContext, SecureHooks {
  readonly sender = randomBytes(4).readUInt32BE(0);
  opts: RoleOptions;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private spoke: SpokeRole | null = null;
  private hub: HubRole | null = null;
  private readonly tenants = new Map<string, TenantRoleSpec>();
  /** seq of a PMTU probe -> the peer's search and the size probed. */
  private readonly pmtuProbes = new Map<number, { search: PmtuSearch; size: number }>();
  private ticks = 0;
  /** start() ran and stop() did not: reconfigure() restarts the timer. */
  private started = false;
  readonly log: Logger;
  readonly sw: Switch;
  readonly vteps: VtepRegistry;
  readonly dp: RoleDatapath;
  readonly counters = { failovers: 0, announcements: 0, probesSent: 0, repliesSent: 0, invalidMessages: 0, unauthenticated: 0 };
  readonly secure: SecureLayer | null;

  /**
   * The agent works on the Switch's tenants, the VTEP registry and the data path it is
   * given. It does not wire itself in: whoever builds it routes liveness messages to
   * `onControl` (SwitchOptions.onControl) and calls `applyTo` for every tenant added.
   */
  constructor(
    deps: RoleDeps,
    opts: RoleOptions,
    readonly clock: () => number = Date.now,
    log?: Logger,
  ) {
    this.sw = deps.sw;
    this.vteps = deps.vteps;
    this.dp = deps.dp;
    this.opts = opts;
    this.log = log ?? logger('roles');
    this.secure = deps.identity
      ? new SecureLayer(deps.identity, this.dp, this, { rekeyMs: opts.rekeyMs ?? 120_000, staleMs: opts.deadIntervalMs, clock, log: this.log })
      : null;
    // A hub learns spokes from their probes (their handshakes) as soon as events flow, before start().
    if (opts.role === 'hub') this.hub = new HubRole(this);
    this.refreshPeers();
  }

  get role(): Role {
    return this.opts.role;
  }

  /** How often probes go out (ms): deadInterval / 10, at least every second and every keepalive, at most 10 a second. */
  get probeIntervalMs(): number {
    return Math.max(100, Math.min(this.opts.deadIntervalMs / 10, 1000, this.opts.keepaliveMs));
  }

  /** How long a hub keeps a silent spoke (ms). */
  get spokeTimeoutMs(): number {
    return spokeTimeoutMs(this.opts);
  }

  /** Set up hubs (a spoke), relay (a hub) and every tenant, and start probing. */
  start(): void {
    this.setup();
    this.restartTimer();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.started = false;
  }

  /** A tenant's MSS clamping and encapsulation (before it is added, or on reload). */
  setTenant(name: string, spec: TenantRoleSpec): void {
    this.tenants.set(name, spec);
    const b = this.sw.tenant(name);
    if (b) this.refreshMss(b);
    this.refreshPeers();
  }

  forgetTenant(name: string): void {
    this.tenants.delete(name);
    this.refreshPeers();
  }

  // ---- authenticated peers (with an identity) ---------------------------------------------

  /** Who holds a key we accept, from the role and the tenants: a spoke's hubs, a hub's spokes, mesh VTEPs with keys. */
  private peerSpecs(): PeerSpec[] {
    const me = this.secure?.publicKey;
    if (!me) return [];
    const specs = new Map<string, PeerSpec>();
    if (this.opts.role === 'spoke')
      for (const h of this.opts.hubs)
        if (h.publicKey)
          specs.set(h.publicKey, {
            publicKey: h.publicKey,
            name: `hub ${vtepKey(h.address, h.port)}`,
            endpoint: { address: h.address, port: h.port },
            initiator: true,
          });
    if (this.opts.role === 'hub')
      for (const sp of this.opts.spokes ?? []) specs.set(sp.publicKey, { publicKey: sp.publicKey, name: sp.name, endpoint: null, initiator: false });
    for (const t of this.tenants.values())
      for (const [address, key] of Object.entries(t.vtepKeys ?? {}))
        if (!specs.has(key))
          specs.set(key, {
            publicKey: key,
            name: `vtep ${address}`,
            endpoint: { address, port: this.opts.port ?? 4789 },
            // Between mesh VTEPs, the one with the smaller key starts handshakes.
            initiator: Buffer.compare(me, Buffer.from(key, 'base64')) < 0,
          });
    return [...specs.values()];
  }

  private refreshPeers(): void {
    this.secure?.setPeers(this.peerSpecs());
  }

  /** SecureHooks: the VTEP an authenticated peer's sessions bind to. */
  bind(peer: Peer, from: Endpoint): number | null {
    const key = peer.spec.publicKey;
    if (this.hub && this.opts.spokes?.some((s) => s.publicKey === key)) return this.hub.bind(peer, from, this.clock());
    const hub = this.spoke?.hubOfKey(key);
    if (hub) return hub.id;
    // A mesh VTEP: the configured one at the address its key is listed for.
    for (const t of this.tenants.values())
      for (const [address, k] of Object.entries(t.vtepKeys ?? {})) if (k === key) return this.vteps.find(address)?.id ?? null;
    return null;
  }

  /** SecureHooks: a session is up; a probe through it confirms the keys to the responder and measures the peer. */
  up(peer: Peer): void {
    const v = peer.vtepId !== null ? this.vteps.get(peer.vtepId) : undefined;
    if (v && peer.spec.initiator) this.probe(v);
  }

  /** SecureHooks: the peer's keys are gone (revoked by a reload, or expired). */
  down(peer: Peer, why: 'expired' | 'revoked'): void {
    this.hub?.drop(peer.spec.publicKey, why);
  }

  /** An encrypted liveness message the data path authenticated: from VTEP `vtepId`'s session. */
  onSecureControl(payload: Buffer, vtepId: number, _from: Endpoint): void {
    if (!this.secure) return;
    this.secure.heard(vtepId);
    const m = decodeLiveness(payload);
    if ('error' in m) {
      this.counters.invalidMessages++;
      return;
    }
    const v = this.vteps.get(vtepId);
    if (!v) return;
    const now = this.clock();
    if (m.type === PROBE) {
      if (this.hub) this.hub.onSecureProbe(vtepId, m, now);
      const reply = this.message(REPLY, { seq: m.seq, timestamp: m.timestamp, probedSize: m.length, vnis: this.vnisFor(v.id) });
      if (this.sendTo(v, reply, false)) this.counters.repliesSent++;
      return;
    }
    const probe = this.pmtuProbes.get(m.seq);
    if (probe && m.probedSize === this.probePayload(probe.size, v.address.includes(':') ? 6 : 4)) probe.search.confirm(probe.size);
    this.spoke?.onSecureReply(vtepId, m, now);
  }

  /**
   * The data path's events of encrypted tunnels: a liveness message it authenticated
   * (`secure`), the first packet under one of our receive keys (`key-used`: key
   * confirmation), an authenticated packet from a new source (`endpoint`: the peer moved).
   */
  onSecureEvent(ev: DpEvent): void {
    if (!this.secure || ev.ingress.kind !== 'vtep') return;
    const vtepId = ev.ingress.vtepId;
    if (ev.type === 'secure' && ev.frame && ev.outer) this.onSecureControl(ev.frame, vtepId, ev.outer);
    else if (ev.type === 'key-used' && ev.keyIndex !== undefined) this.secure.onKeyUsed(vtepId, ev.keyIndex);
    else if (ev.type === 'endpoint' && ev.outer) this.secure.onEndpoint(vtepId, ev.outer);
  }

  /** The handshake messages (types 1..3), for the secure layer. */
  onHandshake(payload: Buffer, from: Endpoint): void {
    if (this.secure) this.secure.onHandshake(payload, from);
    else this.counters.invalidMessages++;
  }

  /** Apply a new role configuration (reload): what changed is torn down and set up again. */
  reconfigure(opts: RoleOptions): void {
    const before = this.opts;
    this.opts = opts;
    const same = (a: RoleOptions, b: RoleOptions) =>
      a.role === b.role &&
      a.nat === b.nat &&
      a.pmtuDiscovery === b.pmtuDiscovery &&
      a.underlayMtu === b.underlayMtu &&
      JSON.stringify(a.hubs) === JSON.stringify(b.hubs);
    // The peers first: a key no longer listed is revoked (its keys deleted) before anything else.
    this.refreshPeers();
    this.secure?.setRekey(opts.rekeyMs ?? 120_000, opts.deadIntervalMs);
    if (!same(before, opts)) {
      this.teardown();
      this.setup();
    } else {
      this.spoke?.setDeadInterval(opts.deadIntervalMs); // timers only: hubs and learned state stay
      this.hub?.reconfigure(); // a listed spoke's VNIs may have changed
    }
    if (this.started) this.restartTimer();
  }

  /**
   * Tick every probe interval while there is something to tick: a spoke, a hub or keys.
   * Without (a static role, no identity) no timer runs, so an idle daemon does not wake for it.
   */
  private restartTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.started = true;
    // A tick that throws (the data path's process gone or not answering: the daemon's
    // periodic check acts on that) is logged, not thrown out of the timer, which would end
    // the daemon without its last words.
    const tick = () => {
      try {
        this.tick();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'role tick failed');
      }
    };
    this.timer = this.spoke || this.hub || this.secure ? setInterval(tick, this.probeIntervalMs) : undefined;
    this.timer?.unref();
  }

  private setup(): void {
    if (this.opts.role === 'spoke') this.spoke = new SpokeRole(this);
    if (this.opts.role === 'hub') this.hub ??= new HubRole(this);
    for (const b of this.sw.tenants()) this.applyTo(b);
  }

  private teardown(): void {
    this.spoke?.teardown();
    this.hub?.teardown();
    for (const b of this.sw.tenants()) this.sw.setRelay(b, false);
    for (const p of this.secure?.all() ?? []) this.secure!.forget(p);
    this.spoke = null;
    this.hub = null;
    this.pmtuProbes.clear();
  }

  newSearch(family: Family): PmtuSearch {
    return new PmtuSearch(family === 4 ? 576 : 1280, this.opts.underlayMtu);
  }

  /** Put the role's state into one tenant (a new one, or all at setup). */
  applyTo(b: Bridge): void {
    this.sw.setRelay(b, this.opts.role === 'hub');
    this.spoke?.applyTo(b);
    this.hub?.applyTo(b);
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
      if (v && v.mtu > 0 && v.mtu < mtu) {
        mtu = v.mtu;
        family = v.address.includes(':') ? 6 : 4;
      }
    }
    const inner = mtu - encapOverhead(family, spec?.encap ?? 'vxlan', spec?.encrypted ?? false);
    this.sw.setMss(b, Math.max(88, inner - 40), Math.max(88, inner - 60));
  }

  // ---- the probe loop ------------------------------------------------------------------

  tick(now = this.clock()): void {
    this.ticks++;
    // Path MTU rounds once a second (a round's replies have that long to come back);
    // a discovered size is verified once a minute.
    const pmtuEvery = Math.max(1, Math.round(1000 / this.probeIntervalMs));
    const pmtuNow = this.ticks % pmtuEvery === 0;
    const verify = this.ticks % (60 * pmtuEvery) === 0;
    this.secure?.tick(now);
    this.spoke?.tick(now, pmtuNow, verify);
    this.hub?.tick(now, pmtuNow, verify);
  }

  /** The VNIs a REPLY to this VTEP names: a listed spoke's own (a hub with keys), else every tenant's. */
  private vnisFor(vtepId: number): number[] {
    const mine = this.sw.tenants().map((b) => b.vni);
    const allowed = this.hub?.vnisOf(vtepId);
    return allowed ? mine.filter((v) => allowed.has(v)) : mine;
  }

  /** The liveness payload of a PMTU probe of `size` bytes of outer IP packet (encrypted: 32 bytes fewer). */
  private probePayload(size: number, family: Family): number {
    return size - (family === 4 ? 20 : 40) - 8 - (this.secure ? SECURE_OVERHEAD : 0);
  }

  private message(type: typeof PROBE | typeof REPLY, extra: Partial<LivenessMessage> & { padTo?: number } = {}): Buffer {
    return encodeLiveness({
      type,
      seq: extra.seq ?? (this.seq = (this.seq + 1) >>> 0),
      sender: this.sender,
      timestamp: extra.timestamp ?? this.clock(),
      probedSize: extra.probedSize ?? 0,
      role: this.opts.role,
      nat: this.opts.nat,
      vnis: extra.vnis ?? this.sw.tenants().map((b) => b.vni),
      padTo: extra.padTo,
    });
  }

  /**
   * A liveness message to a VTEP: with an identity, only inside its session (encrypted by the
   * data path), and nothing before the handshake; without, in the clear from the underlay port.
   */
  private sendTo(v: Vtep, payload: Buffer, df = true): boolean {
    if (!this.secure) return this.send(v.address, v.port, payload);
    const p = this.secure.peerOfVtep(v.id);
    if (!p || !this.secure.established(p)) return false;
    try {
      this.dp.sendSecure(v.id, payload, { df });
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EMSGSIZE') this.log.debug({ to: v.key, err: (e as Error).message }, 'liveness message not sent');
      return false;
    }
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

  probe(v: Vtep): void {
    if (this.sendTo(v, this.message(PROBE))) this.counters.probesSent++;
  }

  /**
   * One round of path MTU probes toward a peer; the VTEP gets the confirmed size. With an
   * identity, only toward a peer whose handshake succeeded: a path MTU search never sends
   * an unauthenticated source anything. Without one, toward a peer that was never
   * authenticated (a hub's spoke learned from its probes), within `budget`: the bytes it
   * has sent us, so that one spoofed probe never buys a search's worth of packets toward
   * its forged source; a size that does not fit waits for a later round.
   */
  pmtuRound(family: Family, search: PmtuSearch, v: Vtep, verify: boolean, budget?: { bytes: number }): void {
    for (const [seq, p] of this.pmtuProbes) if (p.search === search) this.pmtuProbes.delete(seq);
    if (this.secure) {
      const p = this.secure.peerOfVtep(v.id);
      if (!p || !this.secure.established(p)) return;
    }
    const sizes = !search.done || search.pending ? search.next() : verify ? search.verify() : [];
    if (search.done) this.setPathMtu(v, search.value);
    for (const size of sizes) {
      const payload = this.probePayload(size, family);
      if (payload < HEADER + 4 * this.sw.tenants().length) continue;
      if (budget) {
        if (size > budget.bytes) {
          search.skip(size);
          continue;
        }
        budget.bytes -= size;
      }
      const msg = this.message(PROBE, { padTo: payload });
      if (this.sendTo(v, msg)) this.pmtuProbes.set(msg.readUInt32BE(8), { search, size });
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
    // With an identity, liveness lives inside the authenticated channel only.
    if (this.secure) {
      this.counters.unauthenticated++;
      return;
    }
    const m = decodeLiveness(payload);
    if ('error' in m) {
      this.counters.invalidMessages++;
      return;
    }
    const now = this.clock();
    if (m.type === PROBE) {
      // A hub refuses (and does not answer) a probe that would learn one spoke too many.
      if (this.hub && m.role === 'spoke' && !this.hub.onProbe(from, m, now)) return;
      // A REPLY names only the VNIs the probe named that this node carries: no enumeration.
      const asked = new Set(m.vnis);
      const vnis = this.sw
        .tenants()
        .map((b) => b.vni)
        .filter((v) => asked.has(v));
      const reply = this.message(REPLY, { seq: m.seq, timestamp: m.timestamp, probedSize: m.length, vnis });
      if (this.send(from.address, from.port, reply)) this.counters.repliesSent++;
      return;
    }
    // A REPLY: a path MTU probe answered, and (a spoke) a hub alive.
    const probe = this.pmtuProbes.get(m.seq);
    if (probe && m.probedSize === probe.size - (from.address.includes(':') ? 40 : 20) - 8) probe.search.confirm(probe.size);
    this.spoke?.onReply(from, m, now);
  }

  status(now = this.clock()): RoleStatus {
    return {
      role: this.opts.role,
      senderId: this.sender.toString(16).padStart(8, '0'),
      nat: this.opts.nat,
      deadInterval: this.opts.deadIntervalMs / 1000,
      hubs: this.spoke?.status(now) ?? [],
      spokes: this.hub?.status(now) ?? [],
      spokesRefused: { ...(this.hub?.refused ?? { tableFull: 0, perAddress: 0 }) },
      ...this.counters,
      secure: this.secureStatus(now),
    };
  }

  private secureStatus(now: number): SecureStatus | null {
    const s = this.secure;
    if (!s) return null;
    const { dropped, ...c } = s.counters;
    return {
      publicKey: s.publicKey.toString('base64'),
      cipher: this.dp.cipherName(),
      rekeyInterval: (this.opts.rekeyMs ?? 120_000) / 1000,
      peers: s.all().map((p) => ({
        name: p.spec.name,
        publicKey: p.spec.publicKey,
        vtep: p.vtepId !== null ? (this.vteps.get(p.vtepId)?.key ?? null) : null,
        up: s.established(p),
        handshakes: p.handshakes,
        sessionAgeSeconds: p.current ? Math.floor((now - p.current.createdAt) / 1000) : null,
        lastHeardSecondsAgo: p.lastHeard === null ? null : Math.floor((now - p.lastHeard) / 1000),
      })),
      ...c,
      dropped: { ...dropped },
    };
  }
}
