/**
 * Node identity: X25519 key pairs, their text form and the private key file.
 *
 * A key is 32 raw bytes (RFC 7748), written as standard base64 with padding: 44
 * characters, the form of `wg genkey` / `wg pubkey`, so keys move between vtepd and
 * WireGuard's tools unchanged. A new private key is 32 random bytes clamped as `wg genkey`
 * clamps them (bits 0-2 of byte 0 and bit 7 of byte 31 cleared, bit 6 of byte 31 set);
 * any 32 bytes are accepted as a private key (X25519 clamps on use, as `wg pubkey` does).
 *
 * The arithmetic is node:crypto's (OpenSSL). Raw keys go in and out of its KeyObjects
 * through DER with fixed prefixes (RFC 8410): a private key is PKCS#8
 * `302e020100300506032b656e04220420 || key`, a public key SPKI `302a300506032b656e032100 || key`.
 *
 * The private key file holds the base64 key (surrounding whitespace ignored). It is refused
 * when it is a symbolic link, not a regular file, or readable, writable or executable by
 * group or others: every refusal says the path, what is wrong and the fix.
 */
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Bytes of an X25519 key, private or public. */
export const KEY_LEN = 32;

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

/** What is wrong with a key given as text (one message everywhere). */
export const KEY_TEXT_ERROR = 'must be 32 bytes of base64 (44 characters), like the output of vtepd genkey';

/** A node's static key pair. */
export interface Identity {
  privateKey: Buffer;
  publicKey: Buffer;
}

/** The identity of a private key. */
export function identityOf(privateKey: Buffer): Identity {
  return { privateKey: Buffer.from(privateKey), publicKey: publicKeyOf(privateKey) };
}

/** Check an identity (lengths, the public key is the private key's) and return its public key; throws RangeError. */
export function checkIdentity(id: Identity): Buffer {
  if (!Buffer.isBuffer(id.privateKey) || id.privateKey.length !== KEY_LEN) throw new RangeError(`identity: private key must be ${KEY_LEN} bytes`);
  const pub = publicKeyOf(id.privateKey);
  if (!Buffer.isBuffer(id.publicKey) || !pub.equals(id.publicKey)) throw new RangeError('identity: publicKey is not the public key of privateKey');
  return pub;
}

/** A new private key: 32 random bytes, clamped like `wg genkey`. */
export function generatePrivateKey(random: (n: number) => Buffer = randomBytes): Buffer {
  const k = Buffer.from(random(KEY_LEN));
  if (k.length !== KEY_LEN) throw new Error(`generatePrivateKey: random source gave ${k.length} bytes, not ${KEY_LEN}`);
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
  return k;
}

/** A raw 32-byte private key as a node:crypto KeyObject. */
export function privateKeyObject(priv: Buffer): KeyObject {
  if (priv.length !== KEY_LEN) throw new Error(`X25519 private key must be ${KEY_LEN} bytes, not ${priv.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, priv]), format: 'der', type: 'pkcs8' });
}

/** A raw 32-byte public key as a node:crypto KeyObject. */
export function publicKeyObject(pub: Buffer): KeyObject {
  if (pub.length !== KEY_LEN) throw new Error(`X25519 public key must be ${KEY_LEN} bytes, not ${pub.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, pub]), format: 'der', type: 'spki' });
}

/** The raw 32 bytes of a public KeyObject. */
export function rawPublicKey(k: KeyObject): Buffer {
  const der = k.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - KEY_LEN));
}

/** The public key of a raw private key (32 bytes). */
export function publicKeyOf(priv: Buffer): Buffer {
  return rawPublicKey(createPublicKey(privateKeyObject(priv)));
}

/**
 * X25519(priv, pub), or null when it fails: the peer's point is of low order (the shared
 * secret would be all zeros, which OpenSSL refuses) or a key has the wrong length. Never throws.
 */
export function dh(priv: KeyObject | Buffer, pub: Buffer): Buffer | null {
  try {
    const privateKey = Buffer.isBuffer(priv) ? privateKeyObject(priv) : priv;
    const out = diffieHellman({ privateKey, publicKey: publicKeyObject(pub) });
    return out.length === KEY_LEN ? out : null;
  } catch {
    return null;
  }
}

/** Standard base64 with padding: 44 characters for a 32-byte key. */
export function encodeKey(b: Buffer): string {
  return b.toString('base64');
}

const KEY_TEXT = /^[A-Za-z0-9+/]{43}=$/;

/** A key from its base64 text (exactly 44 characters, canonical), or what is wrong with it. */
export function decodeKey(s: string): Buffer | { error: string } {
  if (typeof s !== 'string' || !KEY_TEXT.test(s)) return { error: KEY_TEXT_ERROR };
  const b = Buffer.from(s, 'base64');
  // Canonical only: the last character's two unused bits must be zero.
  if (b.length !== KEY_LEN || b.toString('base64') !== s) return { error: KEY_TEXT_ERROR };
  return b;
}

/** decodeKey that throws `${what} ${KEY_TEXT_ERROR}`. */
export function parseKey(s: string, what = 'key'): Buffer {
  const k = decodeKey(s);
  if (!Buffer.isBuffer(k)) throw new Error(`${what} ${k.error}`);
  return k;
}

/** The largest key file read (a key is 44 characters; room for whitespace and line ends). */
const MAX_KEY_FILE = 4096;

/**
 * Read a private key file. Throws an Error whose message starts with `${what}: ${path}`
 * and says what is wrong and the fix: a symbolic link, not a regular file, a mode that
 * lets group or others in, not a key.
 */
export function readPrivateKeyFile(path: string, what = 'identity.privateKeyFile'): Buffer {
  const where = `${what}: ${path}`;
  let fd: number;
  try {
    // O_NOFOLLOW: a symbolic link is refused by the kernel (ELOOP), with no window between a check and the open.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new Error(`${where} is a symbolic link; give the path of the key file itself`);
    if (code === 'ENOENT') throw new Error(`${where} does not exist; create it with: umask 077; vtepd genkey > ${path}`);
    if (code === 'EACCES') throw new Error(`${where} cannot be read by this user (EACCES)`);
    throw new Error(`${where} cannot be opened (${code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${where} is not a regular file`);
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      const how = mode & 0o066 ? 'readable or writable' : 'accessible';
      throw new Error(`${where} is ${how} by group or others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`);
    }
    const buf = Buffer.alloc(MAX_KEY_FILE + 1);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    const text = buf.subarray(0, n).toString('utf8').trim();
    buf.fill(0);
    const key = decodeKey(text);
    if (!Buffer.isBuffer(key)) throw new Error(`${where} ${key.error}`);
    return key;
  } finally {
    closeSync(fd);
  }
}
