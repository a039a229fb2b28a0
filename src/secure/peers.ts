/**
 * The node's authenticated peers: who may talk to it (by public key), their sessions, and
 * the handshakes that make and rotate them (src/secure/handshake.ts). The data path only
 * ever sees keys: TypeScript decides who gets them.
 *
 * ## Sessions
 *
 * A session is a pair of 32-byte keys, one per direction, each sender with its own index.
 * The receive key goes into the data path under OUR index (dpKeyRxSet), the send key under
 * the peer's VTEP with THEIR index (dpKeyTxSet). A peer has at most three sessions:
 * - `current`: what frames are sent with;
 * - `previous`: the one before a rekey, still accepted for PREVIOUS_KEEP_MS so that what
 *   was in flight when the keys turned arrives (a rekey loses nothing);
 * - `next` (responder only): answered but not yet confirmed. The responder installs its
 *   receive key before it sends the response and switches its send key only when the
 *   first packet arrives under the new index (the data path's "key used" event): the
 *   initiator has the keys by then. Until then it keeps sending with `current`, which the
 *   initiator still accepts as its `previous`.
 *
 * Sessions turn every `rekeyMs` (identity.rekeyInterval); the initiator of the peer pair
 * starts it (a spoke toward its hubs; between mesh VTEPs, the one with the smaller key), the
 * other side only if that has not happened by 1.5 x rekeyMs. A session older than 3 x
 * rekeyMs is no longer used (its keys are deleted): the peer is down until a handshake
 * succeeds. Initiations are retried every RETRY_MS until answered. An initiator that has
 * heard nothing authenticated from a peer for `staleMs` (a spoke: the dead interval)
 * handshakes again: the peer may have restarted without its keys.
 *
 * ## What an unauthenticated sender gets
 *
 * Nothing. A handshake message that fails its MAC, names an unknown key, replays an old
 * timestamp, or arrives for an index we never gave out is counted and dropped without an
 * answer. Under a flood (more than LOAD_PER_S initiations a second) an initiation must also
 * carry a cookie MAC: without one it gets only a cookie reply, which is smaller than the
 * initiation, so we never send a source more bytes than it sent.
 *
 * ## Endpoints
 *
 * A peer's endpoint (address:port) is where its authenticated packets come from: an
 * authenticated initiation, or a data packet the data path authenticated under its key
 * (the "endpoint" event). A spoke behind a NAT that rebinds is followed on the first such
 * packet; a spoofed packet never moves anything.
 */
import { randomBytes } from 'node:crypto';
import { logger, type Logger } from '../util/log.js';
import {
  COOKIE,
  INIT,
  RESPONSE,
  Initiation,
  Responder,
  Tai64nClock,
  consumeCookieReply,
  handshakeType,
  readIndices,
  type Identity,
  type SessionKeys,
} from './handshake.js';

export interface Endpoint {
  address: string;
  port: number;
}

export interface PeerSpec {
  /** Base64, as in the config. */
  publicKey: string;
  /** For logs and status. */
  name: string;
  /** Where initiations go; null: we never initiate (a hub's spokes: they come to us). */
  endpoint: Endpoint | null;
  /** This side starts handshakes and rekeys on time (a spoke toward its hubs; between mesh VTEPs, the smaller key). */
  initiator: boolean;
}

/** The data path as the secure layer uses it. */
export interface SecureDatapath {
  sendControl(address: string, port: number, payload: Buffer, opts?: { df?: boolean; fromRxSocket?: boolean }): void;
  keyRxSet(index: number, vtepId: number, key: Buffer): void;
  keyRxDel(index: number): void;
  keyTxSet(vtepId: number, remoteIndex: number, key: Buffer): void;
  keyTxDel(vtepId: number): void;
}

export interface SecureHooks {
  /**
   * An authenticated peer's sessions need a VTEP: the one it has, created or moved to
   * `from` as the role sees fit. null refuses the peer (its handshake goes unanswered).
   */
  bind(peer: Peer, from: Endpoint): number | null;
  /** A session is up: the first one (`first`), or a new one after a rekey. Send something through it now. */
  up(peer: Peer, first: boolean): void;
  /** The peer has no usable session any more: its keys are gone (expired, revoked). */
  down(peer: Peer, why: 'expired' | 'revoked'): void;
}

interface Session {
  localIndex: number;
  remoteIndex: number;
  keys: SessionKeys;
  createdAt: number;
}

export interface Peer {
  spec: PeerSpec;
  readonly publicKey: Buffer;
  vtepId: number | null;
  endpoint: Endpoint | null;
  current: Session | null;
  previous: Session | null;
  next: Session | null;
  pending: { init: Initiation; localIndex: number; sentAt: number } | null;
  /** The newest initiation timestamp accepted from it (replays are older or equal). */
  lastTimestamp: Buffer | null;
  cookie: { value: Buffer; at: number } | null;
  /** When an authenticated packet was last seen from it (handshake, key use, endpoint). */
  lastHeard: number | null;
  handshakes: number;
}

export interface SecureOptions {
  rekeyMs: number;
  /**
   * An initiator that has heard nothing authenticated from a peer for this long starts a
   * new handshake (every RETRY_MS) though its session is not due: the peer may have
   * restarted and lost its keys (a hub's deadInterval). Default: never.
   */
  staleMs?: number;
  clock?: () => number;
  log?: Logger;
}

export const RETRY_MS = 1000;
export const PREVIOUS_KEEP_MS = 15_000;
export const NEXT_KEEP_MS = 10_000;
export const COOKIE_MS = 120_000;
/** Initiations a second beyond which the responder asks for cookies. */
export const LOAD_PER_S = 50;

export interface SecureCounters {
  /** Handshakes completed (as initiator or responder). */
  handshakes: number;
  initiationsSent: number;
  responsesSent: number;
  cookiesSent: number;
  cookiesReceived: number;
  /** Dropped without an answer, by reason. */
  dropped: Record<string, number>;
  roams: number;
}

export class SecureLayer {
  private readonly peers = new Map<string, Peer>();
  private readonly byVtep = new Map<number, Peer>();
  /** Our indices: local index -> the peer whose session (or pending initiation) has it. */
  private readonly indices = new Map<number, Peer>();
  private readonly responder: Responder;
  private readonly clock: () => number;
  private readonly log: Logger;
  private rekeyMs: number;
  private staleMs: number;
  /** TAI64N timestamps of our initiations: strictly increasing. */
  private readonly timestamps = new Tai64nClock();
  /** Initiations in the current one-second window (load). */
  private window = { at: 0, count: 0 };
  readonly counters: SecureCounters = {
    handshakes: 0,
    initiationsSent: 0,
    responsesSent: 0,
    cookiesSent: 0,
    cookiesReceived: 0,
    dropped: {},
    roams: 0,
  };

  constructor(
    private readonly identity: Identity,
    private readonly dp: SecureDatapath,
    private readonly hooks: SecureHooks,
    opts: SecureOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.rekeyMs = opts.rekeyMs;
    this.staleMs = opts.staleMs ?? Number.POSITIVE_INFINITY;
    this.log = opts.log ?? logger('secure');
    // The responder looks initiators up here and keeps each one's newest timestamp on it (replays refused).
    this.responder = new Responder(identity, { peers: (pub) => this.peers.get(pub.toString('base64')), clockMs: this.clock });
  }

  get publicKey(): Buffer {
    return this.identity.publicKey;
  }

  setRekey(ms: number, staleMs?: number): void {
    this.rekeyMs = ms;
    if (staleMs !== undefined) this.staleMs = staleMs;
  }

  /** The peers as the config lists them now: new ones added, gone ones revoked at once, the rest updated. */
  setPeers(specs: PeerSpec[]): void {
    const want = new Map(specs.map((s) => [s.publicKey, s]));
    for (const [key, p] of this.peers) if (!want.has(key)) this.revoke(p);
    for (const spec of specs) {
      const p = this.peers.get(spec.publicKey);
      if (p) {
        p.spec = spec;
        if (spec.endpoint && !p.endpoint) p.endpoint = spec.endpoint;
        continue;
      }
      this.peers.set(spec.publicKey, {
        spec,
        publicKey: Buffer.from(spec.publicKey, 'base64'),
        vtepId: null,
        endpoint: spec.endpoint,
        current: null,
        previous: null,
        next: null,
        pending: null,
        lastTimestamp: null,
        cookie: null,
        lastHeard: null,
        handshakes: 0,
      });
    }
  }

  peer(publicKey: string): Peer | undefined {
    return this.peers.get(publicKey);
  }

  peerOfVtep(vtepId: number): Peer | undefined {
    return this.byVtep.get(vtepId);
  }

  all(): Peer[] {
    return [...this.peers.values()];
  }

  /** Whether frames can go to the peer now (a confirmed send key is installed). */
  established(p: Peer): boolean {
    return p.current !== null && p.vtepId !== null;
  }

  private drop(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
  }

  private newIndex(p: Peer): number {
    for (;;) {
      const i = randomBytes(4).readUInt32LE(0);
      if (i !== 0 && !this.indices.has(i)) {
        this.indices.set(i, p);
        return i;
      }
    }
  }

  /**
   * A key call into the data path. A VTEP deleted under a session (its last reference went)
   * took its keys with it: a call that fails then is logged, never thrown into the caller
   * (the event path, a timer).
   */
  private key(what: string, f: () => void): boolean {
    try {
      f();
      return true;
    } catch (e) {
      this.log.debug({ what, err: (e as Error).message }, 'key call failed');
      return false;
    }
  }

  private release(s: Session | null): void {
    if (!s) return;
    this.indices.delete(s.localIndex);
    this.key('rx del', () => this.dp.keyRxDel(s.localIndex));
  }

  private send(to: Endpoint, payload: Buffer): boolean {
    try {
      this.dp.sendControl(to.address, to.port, payload, { fromRxSocket: true });
      return true;
    } catch (e) {
      this.log.debug({ to, err: (e as Error).message }, 'handshake message not sent');
      return false;
    }
  }

  /** Attach the peer to its VTEP (the role creates or moves it). */
  private bind(p: Peer, from: Endpoint): number | null {
    const id = this.hooks.bind(p, from);
    if (id === null) return null;
    if (p.vtepId !== null && p.vtepId !== id) {
      // Another VTEP now: the sessions' keys belong to the old one.
      const old = p.vtepId;
      this.byVtep.delete(old);
      this.key('tx del', () => this.dp.keyTxDel(old));
      for (const s of [p.current, p.previous, p.next]) if (s) this.key('rx set', () => this.dp.keyRxSet(s.localIndex, id, s.keys.recv));
      const cur = p.current;
      if (cur) this.key('tx set', () => this.dp.keyTxSet(id, cur.remoteIndex, cur.keys.send));
    }
    p.vtepId = id;
    p.endpoint = from;
    this.byVtep.set(id, p);
    return id;
  }

  /** Make `s` the current session: its send key goes in, the one before stays as previous. */
  private promote(p: Peer, s: Session): void {
    const first = p.current === null;
    if (!this.key('tx set', () => this.dp.keyTxSet(p.vtepId!, s.remoteIndex, s.keys.send))) {
      this.release(s);
      return;
    }
    this.release(p.previous);
    p.previous = p.current;
    p.current = s;
    p.handshakes++;
    this.counters.handshakes++;
    this.log.info({ peer: p.spec.name, vtep: p.vtepId, first }, first ? 'session up' : 'session rekeyed');
    this.hooks.up(p, first);
  }

  /** Every session and key of the peer goes; the role is told. */
  private shut(p: Peer, why: 'expired' | 'revoked'): void {
    const had = p.current !== null || p.next !== null;
    for (const s of [p.current, p.previous, p.next]) this.release(s);
    if (p.pending) this.indices.delete(p.pending.localIndex);
    const vid = p.vtepId;
    if (vid !== null) this.key('tx del', () => this.dp.keyTxDel(vid));
    p.current = p.previous = p.next = null;
    p.pending = null;
    if (had || why === 'revoked') this.hooks.down(p, why);
    if (p.vtepId !== null) this.byVtep.delete(p.vtepId);
    p.vtepId = null;
  }

  private revoke(p: Peer): void {
    this.shut(p, 'revoked');
    this.peers.delete(p.spec.publicKey);
    this.log.info({ peer: p.spec.name }, 'peer revoked: its keys are deleted');
  }

  /** Forget the peer's sessions (the role dropped it: silent too long). It may come back with a new handshake. */
  forget(p: Peer): void {
    this.shut(p, 'expired');
  }

  // ---- timers ------------------------------------------------------------------------

  tick(now = this.clock()): void {
    for (const p of this.peers.values()) {
      if (p.current && now - p.current.createdAt > 3 * this.rekeyMs) {
        this.log.warn({ peer: p.spec.name }, 'session expired without a rekey');
        this.shut(p, 'expired');
      }
      if (p.previous && p.current && now - p.current.createdAt > PREVIOUS_KEEP_MS) {
        this.release(p.previous);
        p.previous = null;
      }
      if (p.next && now - p.next.createdAt > NEXT_KEEP_MS) {
        this.release(p.next);
        p.next = null;
      }
      const age = p.current ? now - p.current.createdAt : Number.POSITIVE_INFINITY;
      const silent = p.current !== null && now - (p.lastHeard ?? p.current.createdAt) > this.staleMs;
      // A peer without a configured endpoint (a hub's spoke) is never initiated to: it comes to us.
      const due = p.spec.initiator ? age >= this.rekeyMs || silent : p.spec.endpoint !== null && age >= 1.5 * this.rekeyMs;
      if (due && p.endpoint && (!p.pending || now - p.pending.sentAt >= RETRY_MS)) this.initiate(p, now);
    }
  }

  private initiate(p: Peer, now: number): void {
    if (p.pending) this.indices.delete(p.pending.localIndex);
    const localIndex = this.newIndex(p);
    const cookie = p.cookie && now - p.cookie.at < COOKIE_MS ? p.cookie.value : null;
    const init = Initiation.create(this.identity, p.publicKey, localIndex, { timestamps: this.timestamps, cookie });
    p.pending = { init, localIndex, sentAt: now };
    if (this.send(p.endpoint!, init.message)) this.counters.initiationsSent++;
  }

  // ---- messages in -------------------------------------------------------------------

  /** A handshake message (types 1..3) from the underlay, unauthenticated so far. */
  onHandshake(msg: Buffer, from: Endpoint, now = this.clock()): void {
    const type = handshakeType(msg);
    if (type === INIT) return this.onInitiation(msg, from, now);
    if (type === RESPONSE) return this.onResponse(msg, from, now);
    if (type === COOKIE) return this.onCookie(msg, now);
    this.drop('malformed');
  }

  private underLoad(now: number): boolean {
    if (now - this.window.at >= 1000) this.window = { at: now, count: 0 };
    return ++this.window.count > LOAD_PER_S;
  }

  private onInitiation(msg: Buffer, from: Endpoint, now: number): void {
    const r = this.responder.consumeInitiation(msg, from, this.underLoad(now));
    if ('cookieReply' in r) {
      if (this.send(from, r.cookieReply)) this.counters.cookiesSent++;
      return;
    }
    // Unknown keys and replayed timestamps are refused inside (the responder's peer lookup).
    if ('error' in r) return this.drop(r.error);
    const p = this.peers.get(r.peerPublic.toString('base64'));
    if (!p) return this.drop('initiation: unknown peer');
    const vtepId = this.bind(p, from);
    if (vtepId === null) return this.drop('refused');
    p.lastHeard = now;
    const localIndex = this.newIndex(p);
    const { message, keys } = r.respond(localIndex);
    this.release(p.next);
    p.next = { localIndex, remoteIndex: r.senderIndex, keys, createdAt: now };
    if (!this.key('rx set', () => this.dp.keyRxSet(localIndex, vtepId, keys.recv))) return this.drop('no room for keys');
    if (this.send(from, message)) this.counters.responsesSent++;
  }

  private onResponse(msg: Buffer, from: Endpoint, now: number): void {
    const { receiver } = readIndices(msg);
    const p = receiver !== undefined ? this.indices.get(receiver) : undefined;
    if (!p?.pending || p.pending.localIndex !== receiver) return this.drop('unknown index');
    const r = p.pending.init.consumeResponse(msg);
    if ('error' in r) return this.drop(r.error);
    const vtepId = this.bind(p, from);
    if (vtepId === null) return this.drop('refused');
    p.lastHeard = now;
    const s: Session = { localIndex: p.pending.localIndex, remoteIndex: r.remoteIndex, keys: r.keys, createdAt: now };
    p.pending = null;
    // The data path holds three receive keys per VTEP: the oldest goes before the new one comes.
    this.release(p.previous);
    p.previous = null;
    if (!this.key('rx set', () => this.dp.keyRxSet(s.localIndex, vtepId, s.keys.recv))) return this.drop('no room for keys');
    this.promote(p, s);
  }

  private onCookie(msg: Buffer, now: number): void {
    const { receiver } = readIndices(msg);
    const p = receiver !== undefined ? this.indices.get(receiver) : undefined;
    if (!p?.pending || p.pending.localIndex !== receiver) return this.drop('unknown index');
    const c = consumeCookieReply(msg, p.publicKey, p.pending.init.mac1);
    if (!Buffer.isBuffer(c)) return this.drop(c.error);
    p.cookie = { value: c, at: now };
    this.counters.cookiesReceived++;
    // Retry with the cookie at once rather than a whole retry interval later.
    p.pending.sentAt = now - RETRY_MS;
  }

  /** The data path authenticated a first packet under one of our indices (key confirmation). */
  onKeyUsed(vtepId: number, index: number, now = this.clock()): void {
    const p = this.indices.get(index);
    if (!p || p.vtepId !== vtepId) return;
    p.lastHeard = now;
    if (p.next && p.next.localIndex === index) {
      const s = p.next;
      p.next = null;
      this.promote(p, s);
    }
  }

  /** An authenticated packet from a new source address:port: the peer moved (NAT rebinding, roaming). */
  onEndpoint(vtepId: number, from: Endpoint, now = this.clock()): void {
    const p = this.byVtep.get(vtepId);
    if (!p) return;
    p.lastHeard = now;
    if (p.endpoint && p.endpoint.address === from.address && p.endpoint.port === from.port) return;
    this.counters.roams++;
    this.log.info({ peer: p.spec.name, from }, 'peer moved');
    this.bind(p, from);
  }

  /** Something authenticated arrived from the peer's VTEP (a liveness message in the channel). */
  heard(vtepId: number, now = this.clock()): void {
    const p = this.byVtep.get(vtepId);
    if (p) p.lastHeard = now;
  }
}
