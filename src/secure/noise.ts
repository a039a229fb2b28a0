/**
 * The Noise protocol framework's state machine (revision 34) for one pattern, IK, with one
 * suite: Noise_IK_25519_ChaChaPoly_SHA256. Protocol logic only: every primitive is
 * node:crypto's (X25519 via KeyObjects, ChaCha20-Poly1305, SHA-256, HKDF).
 *
 *   IK:
 *     <- s
 *     ...
 *     -> e, es, s, ss      (message 1: e.pub 32 | s.pub encrypted 48 | payload encrypted, +16)
 *     <- e, ee, se         (message 2: e.pub 32 | payload encrypted, +16)
 *
 * - HASH is SHA-256 (HASHLEN 32); the protocol name is exactly 32 bytes, so h starts as the
 *   name itself (no hashing, no padding) and ck = h; then MixHash(prologue), MixHash(rs).
 * - HKDF(ck, ikm) is RFC 5869 HKDF-SHA256 with ck as the salt and empty info, 64 bytes
 *   split in two (Noise's HMAC chain is exactly that).
 * - The AEAD nonce is 4 zero bytes then the 64-bit counter n, little endian; the hash h is
 *   the associated data of every handshake encryption. Nonce 2^64-1 is never used.
 * - Split(): HKDF(ck, empty); the first key protects initiator -> responder, the second
 *   responder -> initiator.
 *
 * Ephemeral keys and payloads are given by the caller, so the same code runs against the
 * published test vectors (test/fixtures/noise-ik-25519-chachapoly-sha256.json) and in
 * handshake.ts. Reading never throws: a bad message is an `{ error }` value and, on the
 * initiator, leaves the state as it was (a forged message 2 does not spoil the real one).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, type KeyObject } from 'node:crypto';
import { dh, KEY_LEN, privateKeyObject, publicKeyOf } from './keys.js';

export const PROTOCOL_NAME = 'Noise_IK_25519_ChaChaPoly_SHA256';
export const HASHLEN = 32;
export const TAGLEN = 16;
const MAX_NONCE = 0xffff_ffff_ffff_ffffn; // reserved by Noise, never used

export type Err = { error: string };

export function hash(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Noise's HKDF with two outputs: RFC 5869 HKDF-SHA256 (salt = chaining key, info empty). */
export function hkdf2(ck: Buffer, ikm: Buffer): [Buffer, Buffer] {
  const out = Buffer.from(hkdfSync('sha256', ikm, ck, Buffer.alloc(0), 2 * HASHLEN));
  return [out.subarray(0, HASHLEN), out.subarray(HASHLEN)];
}

/** The 96-bit ChaCha20-Poly1305 nonce of counter n: 4 zero bytes, then n as u64 little endian. */
export function aeadNonce(n: bigint): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64LE(n, 4);
  return iv;
}

/** ChaCha20-Poly1305: ciphertext || 16-byte tag. */
export function aeadEncrypt(key: Buffer, iv: Buffer, ad: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, iv, { authTagLength: TAGLEN });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** ChaCha20-Poly1305 open of ciphertext || tag; null if it does not authenticate. Never throws. */
export function aeadDecrypt(key: Buffer, iv: Buffer, ad: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < TAGLEN || key.length !== 32 || iv.length !== 12) return null;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, iv, { authTagLength: TAGLEN });
    d.setAAD(ad, { plaintextLength: sealed.length - TAGLEN });
    d.setAuthTag(sealed.subarray(sealed.length - TAGLEN));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAGLEN)), d.final()]);
  } catch {
    return null;
  }
}

/** Noise CipherState: a key (or none) and a nonce counter. */
export class CipherState {
  constructor(
    public k: Buffer | null = null,
    public n = 0n,
  ) {}

  /** Encrypt (plaintext as is while there is no key). Throws only when the nonces are used up (a local condition). */
  encryptWithAd(ad: Buffer, plaintext: Buffer): Buffer {
    if (!this.k) return Buffer.from(plaintext);
    if (this.n >= MAX_NONCE) throw new Error('noise: nonce space exhausted; rekey');
    return aeadEncrypt(this.k, aeadNonce(this.n++), ad, plaintext);
  }

  /** Decrypt, or null if it does not authenticate (the nonce then stays as it was). */
  decryptWithAd(ad: Buffer, ciphertext: Buffer): Buffer | null {
    if (!this.k) return Buffer.from(ciphertext);
    if (this.n >= MAX_NONCE) return null;
    const p = aeadDecrypt(this.k, aeadNonce(this.n), ad, ciphertext);
    if (p) this.n++;
    return p;
  }
}

/** Noise SymmetricState: chaining key, handshake hash and the current CipherState. */
export class SymmetricState {
  constructor(
    public ck: Buffer,
    public h: Buffer,
    public cs: CipherState,
  ) {}

  static initialize(protocolName: string): SymmetricState {
    const name = Buffer.from(protocolName, 'ascii');
    const h = name.length <= HASHLEN ? Buffer.concat([name, Buffer.alloc(HASHLEN - name.length)]) : hash(name);
    return new SymmetricState(h, Buffer.from(h), new CipherState());
  }

  clone(): SymmetricState {
    return new SymmetricState(this.ck, this.h, new CipherState(this.cs.k, this.cs.n));
  }

  mixKey(ikm: Buffer): void {
    const [ck, k] = hkdf2(this.ck, ikm);
    this.ck = ck;
    this.cs = new CipherState(k, 0n);
  }

  mixHash(data: Buffer): void {
    this.h = hash(this.h, data);
  }

  encryptAndHash(plaintext: Buffer): Buffer {
    const c = this.cs.encryptWithAd(this.h, plaintext);
    this.mixHash(c);
    return c;
  }

  decryptAndHash(ciphertext: Buffer): Buffer | null {
    const p = this.cs.decryptWithAd(this.h, ciphertext);
    if (p) this.mixHash(ciphertext);
    return p;
  }

  /** Noise Split(): [initiator -> responder, responder -> initiator]. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf2(this.ck, Buffer.alloc(0));
    return [new CipherState(Buffer.from(k1)), new CipherState(Buffer.from(k2))];
  }
}

/** Transport keys after the handshake, named for the side that holds them. */
export interface SplitKeys {
  /** Initiator -> responder. */
  i2r: CipherState;
  /** Responder -> initiator. */
  r2i: CipherState;
}

/**
 * One IK handshake, either side. `initiator(...)` then writeMessage1 / readMessage2;
 * `responder(...)` then readMessage1 / writeMessage2; then split().
 */
export class IkHandshake {
  private sym: SymmetricState;
  private readonly s: KeyObject;
  private readonly sPub: Buffer;
  private e: KeyObject | null = null;
  private ePub: Buffer | null = null;
  private re: Buffer | null = null;
  private step = 0; // messages done

  private constructor(
    readonly isInitiator: boolean,
    prologue: Buffer,
    staticPrivate: Buffer,
    /** The remote static public key: given to the initiator, learned by the responder from message 1. */
    public rs: Buffer | null,
    protocolName: string,
  ) {
    this.s = privateKeyObject(staticPrivate);
    this.sPub = publicKeyOf(staticPrivate);
    this.sym = SymmetricState.initialize(protocolName);
    this.sym.mixHash(prologue);
    // Pre-message pattern "<- s": the responder's static key.
    this.sym.mixHash(isInitiator ? rs! : this.sPub);
  }

  static initiator(prologue: Buffer, staticPrivate: Buffer, remoteStatic: Buffer, protocolName = PROTOCOL_NAME): IkHandshake {
    if (remoteStatic.length !== KEY_LEN) throw new Error(`noise: remote static key must be ${KEY_LEN} bytes`);
    return new IkHandshake(true, prologue, staticPrivate, Buffer.from(remoteStatic), protocolName);
  }

  static responder(prologue: Buffer, staticPrivate: Buffer, protocolName = PROTOCOL_NAME): IkHandshake {
    return new IkHandshake(false, prologue, staticPrivate, null, protocolName);
  }

  /** The handshake hash h (channel binding); final after message 2. */
  get handshakeHash(): Buffer {
    return this.sym.h;
  }

  /** The local ephemeral public key once a message was written. */
  get ephemeralPublic(): Buffer | null {
    return this.ePub;
  }

  private setEphemeral(ePriv: Buffer): Err | null {
    if (ePriv.length !== KEY_LEN) return { error: `ephemeral key must be ${KEY_LEN} bytes` };
    this.e = privateKeyObject(ePriv);
    this.ePub = publicKeyOf(ePriv);
    return null;
  }

  /** Initiator: -> e, es, s, ss, payload. */
  writeMessage1(ephemeralPrivate: Buffer, payload: Buffer): Buffer | Err {
    if (!this.isInitiator || this.step !== 0) return { error: 'writeMessage1: not an initiator at the first message' };
    const bad = this.setEphemeral(ephemeralPrivate);
    if (bad) return bad;
    const sym = this.sym.clone();
    sym.mixHash(this.ePub!);
    const es = dh(this.e!, this.rs!);
    if (!es) return { error: 'the remote static key is not a usable X25519 public key' };
    sym.mixKey(es);
    const encS = sym.encryptAndHash(this.sPub);
    const ss = dh(this.s, this.rs!);
    if (!ss) return { error: 'the remote static key is not a usable X25519 public key' };
    sym.mixKey(ss);
    const encP = sym.encryptAndHash(payload);
    this.sym = sym;
    this.step = 1;
    return Buffer.concat([this.ePub!, encS, encP]);
  }

  /**
   * Responder: reads message 1 and learns the initiator's static key (rs). `checkStatic`,
   * called once it is decrypted (before the ss DH), may refuse it with an error string.
   */
  readMessage1(msg: Buffer, checkStatic?: (rs: Buffer) => string | null): { payload: Buffer } | Err {
    if (this.isInitiator || this.step !== 0) return { error: 'readMessage1: not a responder at the first message' };
    if (msg.length < KEY_LEN + KEY_LEN + TAGLEN + TAGLEN) return { error: 'message 1 too short' };
    const sym = this.sym.clone();
    const re = Buffer.from(msg.subarray(0, KEY_LEN));
    sym.mixHash(re);
    const es = dh(this.s, re);
    if (!es) return { error: 'bad ephemeral key' };
    sym.mixKey(es);
    const rs = sym.decryptAndHash(msg.subarray(KEY_LEN, 2 * KEY_LEN + TAGLEN));
    if (!rs) return { error: 'static key does not decrypt' };
    const refused = checkStatic?.(rs);
    if (refused) return { error: refused };
    const ss = dh(this.s, rs);
    if (!ss) return { error: 'bad static key' };
    sym.mixKey(ss);
    const payload = sym.decryptAndHash(msg.subarray(2 * KEY_LEN + TAGLEN));
    if (!payload) return { error: 'payload does not decrypt' };
    this.sym = sym;
    this.re = re;
    this.rs = rs;
    this.step = 1;
    return { payload };
  }

  /** Responder: <- e, ee, se, payload. */
  writeMessage2(ephemeralPrivate: Buffer, payload: Buffer): Buffer | Err {
    if (this.isInitiator || this.step !== 1) return { error: 'writeMessage2: not a responder after message 1' };
    const bad = this.setEphemeral(ephemeralPrivate);
    if (bad) return bad;
    const sym = this.sym.clone();
    sym.mixHash(this.ePub!);
    const ee = dh(this.e!, this.re!);
    const se = dh(this.e!, this.rs!);
    if (!ee || !se) return { error: 'a DH result is zero' };
    sym.mixKey(ee);
    sym.mixKey(se);
    const encP = sym.encryptAndHash(payload);
    this.sym = sym;
    this.step = 2;
    return Buffer.concat([this.ePub!, encP]);
  }

  /** Initiator: reads message 2. On any error the state is unchanged (a later, genuine message 2 still works). */
  readMessage2(msg: Buffer): { payload: Buffer } | Err {
    if (!this.isInitiator || this.step !== 1) return { error: 'readMessage2: not an initiator waiting for message 2' };
    if (msg.length < KEY_LEN + TAGLEN) return { error: 'message 2 too short' };
    const sym = this.sym.clone();
    const re = Buffer.from(msg.subarray(0, KEY_LEN));
    sym.mixHash(re);
    const ee = dh(this.e!, re);
    if (!ee) return { error: 'bad ephemeral key' };
    sym.mixKey(ee);
    const se = dh(this.s, re);
    if (!se) return { error: 'bad ephemeral key' };
    sym.mixKey(se);
    const payload = sym.decryptAndHash(msg.subarray(KEY_LEN));
    if (!payload) return { error: 'payload does not decrypt' };
    this.sym = sym;
    this.re = re;
    this.step = 2;
    return { payload };
  }

  /** The transport CipherStates; only after both messages. */
  split(): SplitKeys {
    if (this.step !== 2) throw new Error('noise: split() before the handshake finished');
    const [i2r, r2i] = this.sym.split();
    return { i2r, r2i };
  }
}
