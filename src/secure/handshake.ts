/**
 * The authenticated key exchange between vtepd nodes: Noise_IK_25519_ChaChaPoly_SHA256
 * (src/secure/noise.ts) in WireGuard's message framing, with WireGuard's mac1/mac2,
 * cookies and TAI64N timestamps. Pure logic: no sockets, no timers; time and randomness
 * are injected, so every path is unit-testable. Nothing here throws on input from the
 * network: every parse returns `{ error }`.
 *
 * ## Handshake
 *
 * Every node has a static X25519 key pair (its identity, src/secure/keys.ts). The initiator
 * (a spoke) knows the responder's (the hub's) public key; the responder knows a list of
 * initiators' public keys and learns which one is calling from the first message.
 *
 *   initiator                                            responder
 *   Initiation (148 B): e, es, s, ss, {TAI64N}     ->
 *                                                  <-    Response (92 B): e, ee, se, {}
 *   (under load, instead of a Response:)           <-    Cookie reply (52 B)
 *
 * Noise: protocol name "Noise_IK_25519_ChaChaPoly_SHA256", prologue "vtepd tunnel v1". The
 * initiation's payload is a 12-byte TAI64N timestamp, the response's is empty. After the
 * response both sides run Split(): the initiator sends with the first key and receives
 * with the second, the responder the reverse (SessionKeys). The transport messages (types
 * 4/5) are the data path's (C), not this module's.
 *
 * Wire format (integers little endian, the timestamp big endian as TAI64N is):
 *
 *   Initiation, 148 bytes            Response, 92 bytes               Cookie reply, 52 bytes
 *   0   type 1, 0, 0, 0              0   type 2, 0, 0, 0              0   type 3, 0, 0, 0
 *   4   sender index u32             4   sender index u32             4   receiver index u32
 *   8   ephemeral public 32          8   receiver index u32           8   nonce 12 (random)
 *   40  static public, sealed 48     12  ephemeral public 32          20  cookie 16, sealed 32
 *   88  TAI64N, sealed 28            44  empty payload, sealed 16
 *   116 mac1 16                      60  mac1 16
 *   132 mac2 16                      76  mac2 16 (zeros)
 *
 * - mac1 = HMAC-SHA256(SHA256("mac1----" || receiver's static public), bytes before mac1),
 *   first 16 bytes. The receiver checks it first, before any DH: only someone who knows
 *   its public key can make it do work. (For a Response the receiver is the initiator.)
 * - mac2 = HMAC-SHA256(cookie, bytes before mac2), first 16 bytes, or 16 zeros when the
 *   initiator holds no cookie younger than 120 s. A Response's mac2 is always zeros and
 *   checked to be.
 * - Under load (the caller says so), an initiation whose mac2 is not the cookie of its
 *   source address gets a Cookie reply and nothing else: cookie = HMAC-SHA256(secret,
 *   address || port u16 LE), first 16 bytes, the secret random and renewed every 120 s;
 *   it is sealed with ChaCha20-Poly1305, key SHA256("cookie--" || responder's static
 *   public), a random 12-byte nonce, the answered initiation's mac1 as associated data
 *   (so only the holder of that initiation can use it, and a forged reply fails). 52
 *   bytes answer 148: never more bytes to an unauthenticated source than it sent.
 * - Replay: the timestamp of an accepted initiation must be strictly newer than the last
 *   accepted from that peer (the responder keeps it in the peer's KnownPeer record). An
 *   initiator makes strictly increasing timestamps with one Tai64nClock (max(last + 1 ns,
 *   now)), even for two initiations in the same millisecond.
 * - Indices: each side picks a 32-bit index for the session (the caller, unique among its
 *   sessions); the peer's messages carry it as receiver index, for routing. As in
 *   WireGuard, the indices are outside the Noise transcript: only mac1 covers them, and
 *   anyone who knows the receiver's public key can recompute mac1. An on-path attacker
 *   can thus change the index a Response announces; the session's data then goes to an
 *   index the responder does not have and is dropped: a denial of service, which that
 *   attacker has anyway by dropping packets. Nothing else outside the AEAD is trusted.
 *
 * What the caller still owns: the peer table (KnownPeer per public key), when it is
 * under load, rate limits per peer and per source, retries and their timers, the cookie's
 * age (CookieJar), and the sessions that come out.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { checkIdentity, type Identity, KEY_LEN } from './keys.js';
import { aeadDecrypt, aeadEncrypt, type Err, hash, IkHandshake, TAGLEN } from './noise.js';

export type { Identity } from './keys.js';

export const INIT = 1;
export const RESPONSE = 2;
export const COOKIE = 3;
export const INIT_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_LEN = 52;

/** The Noise prologue: both sides must agree on it. */
export const PROLOGUE = Buffer.from('vtepd tunnel v1', 'ascii');
/** Bytes of a TAI64N timestamp. */
export const TIMESTAMP_LEN = 12;
/** Bytes of mac1, mac2 and a cookie. */
export const MAC_LEN = 16;
/** A cookie is good for this long (ms) at the initiator; the responder's secret is renewed as often. */
export const COOKIE_LIFETIME_MS = 120_000;

const LABEL_MAC1 = Buffer.from('mac1----', 'ascii');
const LABEL_COOKIE = Buffer.from('cookie--', 'ascii');
const ZERO_MAC = Buffer.alloc(MAC_LEN);

// Offsets (see the table above).
const I_SENDER = 4;
const I_NOISE = 8;
const I_MAC1 = 116;
const I_MAC2 = 132;
const R_SENDER = 4;
const R_RECEIVER = 8;
const R_NOISE = 12;
const R_MAC1 = 60;
const R_MAC2 = 76;
const C_RECEIVER = 4;
const C_NONCE = 8;
const C_SEALED = 20;

/** Transport keys of one session, 32 bytes each. */
export interface SessionKeys {
  send: Buffer;
  recv: Buffer;
}

/** A source of random bytes (node:crypto's randomBytes by default; a seeded one in tests). */
export type Random = (n: number) => Buffer;

/** The handshake message type of a datagram, by its first 4 bytes and its exact length; null for anything else. */
export function handshakeType(b: Buffer): 1 | 2 | 3 | null {
  if (b.length < 4 || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return null;
  if (b[0] === INIT && b.length === INIT_LEN) return INIT;
  if (b[0] === RESPONSE && b.length === RESPONSE_LEN) return RESPONSE;
  if (b[0] === COOKIE && b.length === COOKIE_LEN) return COOKIE;
  return null;
}

/** The indices a handshake message carries (cheap, unauthenticated: for routing only); {} for anything else. */
export function readIndices(b: Buffer): { sender?: number; receiver?: number } {
  switch (handshakeType(b)) {
    case INIT:
      return { sender: b.readUInt32LE(I_SENDER) };
    case RESPONSE:
      return { sender: b.readUInt32LE(R_SENDER), receiver: b.readUInt32LE(R_RECEIVER) };
    case COOKIE:
      return { receiver: b.readUInt32LE(C_RECEIVER) };
    default:
      return {};
  }
}

function hmac16(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest().subarray(0, MAC_LEN);
}

/** The mac1 key of a receiver: SHA256("mac1----" || its static public key). */
export function mac1Key(receiverPublic: Buffer): Buffer {
  return hash(LABEL_MAC1, receiverPublic);
}

/** The cookie-reply sealing key of a responder: SHA256("cookie--" || its static public key). */
export function cookieKey(responderPublic: Buffer): Buffer {
  return hash(LABEL_COOKIE, responderPublic);
}

function equal16(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function checkIndex(i: number): void {
  if (!Number.isInteger(i) || i < 0 || i > 0xffff_ffff) throw new RangeError(`handshake: index must be a u32, not ${i}`);
}

function checkKey(k: Buffer, what: string): void {
  if (!Buffer.isBuffer(k) || k.length !== KEY_LEN) throw new RangeError(`handshake: ${what} must be ${KEY_LEN} bytes`);
}

// ---------------------------------------------------------------------------------------
// TAI64N timestamps

/** TAI64 label of the Unix epoch: 2^62 + 10 s (TAI - UTC in 1970), as WireGuard writes it. */
const TAI64_EPOCH = 0x400000000000000an;
const NS = 1_000_000_000n;

/** TAI64N of a Unix time in nanoseconds: seconds u64 big endian, then nanoseconds u32 big endian. */
export function tai64n(unixNs: bigint): Buffer {
  const b = Buffer.alloc(TIMESTAMP_LEN);
  b.writeBigUInt64BE(TAI64_EPOCH + unixNs / NS, 0);
  b.writeUInt32BE(Number(unixNs % NS), 8);
  return b;
}

/** Order of two TAI64N timestamps: < 0, 0, > 0 (big endian, so byte order is time order). */
export function compareTimestamps(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/**
 * The initiator's timestamps, strictly increasing: each is max(last + 1 ns, now). Use one
 * per local identity (the responder keeps the newest per initiator key).
 */
export class Tai64nClock {
  private last = -1n;

  constructor(private readonly nowNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n) {}

  next(): Buffer {
    let t = this.nowNs();
    if (t <= this.last) t = this.last + 1n;
    this.last = t;
    return tai64n(t);
  }
}

// ---------------------------------------------------------------------------------------
// Initiator

export interface InitiationOptions {
  /** Where the timestamp comes from: one clock per local identity. */
  timestamps: Tai64nClock;
  /** The responder's cookie, if one younger than 120 s is held (CookieJar.current()). */
  cookie?: Buffer | null;
  random?: Random;
}

/** One initiation, sent and waiting for its Response (or a Cookie reply). */
export class Initiation {
  private done = false;

  private constructor(
    private readonly hs: IkHandshake,
    private readonly localPublic: Buffer,
    /** The responder's static public key. */
    readonly remotePublic: Buffer,
    /** Our index for this session: the Response's receiver index. */
    readonly senderIndex: number,
    /** The 148-byte message to send (and to resend unchanged on a retry, or make a new one). */
    readonly message: Buffer,
    readonly timestamp: Buffer,
  ) {}

  /**
   * A new initiation to `remotePublic`. Throws (a local error, not a network one) when a key
   * has the wrong length, the remote key is not a usable X25519 key, or the index is not a u32.
   */
  static create(local: Identity, remotePublic: Buffer, senderIndex: number, opts: InitiationOptions): Initiation {
    const localPublic = checkIdentity(local);
    checkKey(remotePublic, 'remote public key');
    checkIndex(senderIndex);
    const random = opts.random ?? randomBytes;
    const hs = IkHandshake.initiator(PROLOGUE, local.privateKey, remotePublic);
    const timestamp = opts.timestamps.next();
    const body = hs.writeMessage1(Buffer.from(random(KEY_LEN)), timestamp);
    if (!Buffer.isBuffer(body)) throw new Error(`handshake: ${body.error}`);
    const m = Buffer.alloc(INIT_LEN);
    m.writeUInt32LE(INIT, 0);
    m.writeUInt32LE(senderIndex, I_SENDER);
    body.copy(m, I_NOISE);
    hmac16(mac1Key(remotePublic), m.subarray(0, I_MAC1)).copy(m, I_MAC1);
    if (opts.cookie) {
      if (opts.cookie.length !== MAC_LEN) throw new RangeError(`handshake: a cookie is ${MAC_LEN} bytes`);
      hmac16(opts.cookie, m.subarray(0, I_MAC2)).copy(m, I_MAC2);
    }
    return new Initiation(hs, localPublic, Buffer.from(remotePublic), senderIndex, m, timestamp);
  }

  /** The mac1 of this initiation (a Cookie reply to it is sealed with it as associated data). */
  get mac1(): Buffer {
    return this.message.subarray(I_MAC1, I_MAC2);
  }

  /**
   * The responder's Response: the session keys and the responder's index, or an error.
   * A bad message changes nothing (the genuine Response may still come); after one
   * success every other message is refused.
   */
  consumeResponse(msg: Buffer): { keys: SessionKeys; remoteIndex: number } | Err {
    if (this.done) return { error: 'initiation already answered' };
    if (handshakeType(msg) !== RESPONSE) return { error: 'not a handshake response' };
    if (msg.readUInt32LE(R_RECEIVER) !== this.senderIndex) return { error: 'response for another index' };
    if (!equal16(msg.subarray(R_MAC1, R_MAC2), hmac16(mac1Key(this.localPublic), msg.subarray(0, R_MAC1)))) return { error: 'bad mac1' };
    if (!equal16(msg.subarray(R_MAC2, RESPONSE_LEN), ZERO_MAC)) return { error: 'bad mac2' };
    const r = this.hs.readMessage2(msg.subarray(R_NOISE, R_MAC1));
    if ('error' in r) return { error: `response: ${r.error}` };
    if (r.payload.length !== 0) return { error: 'response: payload not empty' };
    this.done = true;
    const { i2r, r2i } = this.hs.split();
    return { keys: { send: i2r.k!, recv: r2i.k! }, remoteIndex: msg.readUInt32LE(R_SENDER) };
  }

  /** A Cookie reply to this initiation: the cookie, or an error (its receiver index must be ours). */
  consumeCookieReply(msg: Buffer): Buffer | Err {
    if (handshakeType(msg) === COOKIE && msg.readUInt32LE(C_RECEIVER) !== this.senderIndex) return { error: 'cookie reply for another index' };
    return consumeCookieReply(msg, this.remotePublic, this.mac1);
  }
}

/** Open a Cookie reply with the responder's public key and the mac1 of the initiation it answers. */
export function consumeCookieReply(msg: Buffer, responderPublic: Buffer, lastMac1: Buffer): Buffer | Err {
  if (handshakeType(msg) !== COOKIE) return { error: 'not a cookie reply' };
  if (responderPublic.length !== KEY_LEN || lastMac1.length !== MAC_LEN) return { error: 'bad arguments' };
  const cookie = aeadDecrypt(cookieKey(responderPublic), msg.subarray(C_NONCE, C_SEALED), lastMac1, msg.subarray(C_SEALED, COOKIE_LEN));
  if (!cookie || cookie.length !== MAC_LEN) return { error: 'cookie reply does not decrypt' };
  return cookie;
}

/** The initiator's cookie from one responder, good for 120 s after it came. */
export class CookieJar {
  private cookie: Buffer | null = null;
  private at = 0;

  constructor(private readonly clockMs: () => number = Date.now) {}

  store(cookie: Buffer): void {
    this.cookie = Buffer.from(cookie);
    this.at = this.clockMs();
  }

  /** The cookie if younger than COOKIE_LIFETIME_MS, else null. */
  current(): Buffer | null {
    if (this.cookie && this.clockMs() - this.at < COOKIE_LIFETIME_MS) return this.cookie;
    this.cookie = null;
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Responder

/** What the responder knows of an initiator it accepts; consumeInitiation updates lastTimestamp. */
export interface KnownPeer {
  /** The newest timestamp accepted from this peer (TAI64N), or null. */
  lastTimestamp: Buffer | null;
}

export interface ResponderOptions {
  /** The initiators accepted, by static public key; undefined refuses. */
  peers: (publicKey: Buffer) => KnownPeer | undefined;
  /** Milliseconds, for the cookie secret's renewal (Date.now by default). */
  clockMs?: () => number;
  random?: Random;
}

export interface AcceptedInitiation {
  peerPublic: Buffer;
  /** The initiator's index: the Response's receiver index. */
  senderIndex: number;
  timestamp: Buffer;
  /** Make the Response (once) with our index for the session, and the session keys. */
  respond(localIndex: number): { message: Buffer; keys: SessionKeys };
}

export type InitiationResult = { cookieReply: Buffer } | Err | AcceptedInitiation;

/** The hub's side: answers initiations from the peers it knows. */
export class Responder {
  readonly publicKey: Buffer;
  private readonly mac1Key: Buffer;
  private readonly cookieKey: Buffer;
  private readonly clockMs: () => number;
  private readonly random: Random;
  private secret: Buffer;
  private secretAt: number;

  constructor(
    private readonly local: Identity,
    private readonly opts: ResponderOptions,
  ) {
    this.publicKey = checkIdentity(local);
    this.mac1Key = mac1Key(this.publicKey);
    this.cookieKey = cookieKey(this.publicKey);
    this.clockMs = opts.clockMs ?? Date.now;
    this.random = opts.random ?? randomBytes;
    this.secret = Buffer.from(this.random(32));
    this.secretAt = this.clockMs();
  }

  /** The cookie of a source address: HMAC(secret renewed every 120 s, address || port u16 LE), 16 bytes. */
  cookieFor(from: { address: string; port: number }): Buffer {
    const now = this.clockMs();
    if (now - this.secretAt >= COOKIE_LIFETIME_MS || now < this.secretAt) {
      this.secret = Buffer.from(this.random(32));
      this.secretAt = now;
    }
    const port = Buffer.alloc(2);
    port.writeUInt16LE(from.port & 0xffff);
    return hmac16(this.secret, Buffer.concat([Buffer.from(String(from.address), 'utf8'), port]));
  }

  /**
   * An Initiation from `from`: mac1 first (no DH for anyone who does not know our public
   * key); then, when `underLoad`, a mac2 that is not the source's cookie gets
   * `{ cookieReply }` (52 bytes, to send back) and nothing else; then the Noise message,
   * the initiator's key (must be a known peer) and the timestamp (must be newer than the
   * peer's lastTimestamp, which is then updated). Never throws.
   */
  consumeInitiation(msg: Buffer, from: { address: string; port: number }, underLoad: boolean): InitiationResult {
    if (handshakeType(msg) !== INIT) return { error: 'not a handshake initiation' };
    const mac1 = msg.subarray(I_MAC1, I_MAC2);
    if (!equal16(mac1, hmac16(this.mac1Key, msg.subarray(0, I_MAC1)))) return { error: 'bad mac1' };
    const senderIndex = msg.readUInt32LE(I_SENDER);
    if (underLoad && !equal16(msg.subarray(I_MAC2, INIT_LEN), hmac16(this.cookieFor(from), msg.subarray(0, I_MAC2)))) {
      return { cookieReply: this.cookieReply(senderIndex, mac1, from) };
    }
    let peer: KnownPeer | undefined;
    let hs: IkHandshake;
    try {
      hs = IkHandshake.responder(PROLOGUE, this.local.privateKey);
    } catch (e) {
      return { error: `local key: ${(e as Error).message}` };
    }
    const r = hs.readMessage1(msg.subarray(I_NOISE, I_MAC1), (rs) => {
      peer = this.opts.peers(rs);
      return peer ? null : 'unknown peer';
    });
    if ('error' in r) return { error: `initiation: ${r.error}` };
    if (r.payload.length !== TIMESTAMP_LEN || !peer) return { error: 'initiation: bad timestamp' };
    const timestamp = r.payload;
    if (peer.lastTimestamp && compareTimestamps(timestamp, peer.lastTimestamp) <= 0) return { error: 'initiation: replayed (timestamp not newer)' };
    peer.lastTimestamp = Buffer.from(timestamp);
    const peerPublic = Buffer.from(hs.rs!);
    let answered = false;
    return {
      peerPublic,
      senderIndex,
      timestamp,
      respond: (localIndex: number) => {
        if (answered) throw new Error('handshake: respond() called twice');
        checkIndex(localIndex);
        answered = true;
        const body = hs.writeMessage2(Buffer.from(this.random(KEY_LEN)), Buffer.alloc(0));
        if (!Buffer.isBuffer(body)) throw new Error(`handshake: ${body.error}`);
        const m = Buffer.alloc(RESPONSE_LEN);
        m.writeUInt32LE(RESPONSE, 0);
        m.writeUInt32LE(localIndex, R_SENDER);
        m.writeUInt32LE(senderIndex, R_RECEIVER);
        body.copy(m, R_NOISE);
        hmac16(mac1Key(peerPublic), m.subarray(0, R_MAC1)).copy(m, R_MAC1);
        const { i2r, r2i } = hs.split();
        return { message: m, keys: { send: r2i.k!, recv: i2r.k! } };
      },
    };
  }

  private cookieReply(receiverIndex: number, mac1: Buffer, from: { address: string; port: number }): Buffer {
    const m = Buffer.alloc(COOKIE_LEN);
    m.writeUInt32LE(COOKIE, 0);
    m.writeUInt32LE(receiverIndex, C_RECEIVER);
    const nonce = Buffer.from(this.random(12));
    nonce.copy(m, C_NONCE);
    const sealed = aeadEncrypt(this.cookieKey, nonce, mac1, this.cookieFor(from));
    if (sealed.length !== MAC_LEN + TAGLEN) throw new Error('handshake: sealed cookie length');
    sealed.copy(m, C_SEALED);
    return m;
  }
}
