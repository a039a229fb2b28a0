/**
 * Node identity keys (src/secure/keys.ts): generation and clamping, the public key of a
 * private key (RFC 7748's test vector), the base64 text form, and the private key file
 * (mode, symbolic link, directory, content).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeKey, dh, encodeKey, generatePrivateKey, KEY_TEXT_ERROR, parseKey, publicKeyOf, readPrivateKeyFile } from '../../src/secure/keys.js';

const hex = (s: string) => Buffer.from(s, 'hex');

describe('X25519 keys', () => {
  it('generates clamped 32-byte keys that differ', () => {
    const a = generatePrivateKey();
    const b = generatePrivateKey();
    expect(a.length).toBe(32);
    expect(a.equals(b)).toBe(false);
    for (const k of [a, b, generatePrivateKey(() => Buffer.alloc(32, 0xff)), generatePrivateKey(() => Buffer.alloc(32, 0))]) {
      expect(k[0] & 7).toBe(0);
      expect(k[31] & 0x80).toBe(0);
      expect(k[31] & 0x40).toBe(0x40);
    }
  });

  it("computes RFC 7748 section 6.1's public keys and shared secret", () => {
    const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    expect(publicKeyOf(alice).toString('hex')).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(publicKeyOf(bob).toString('hex')).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(dh(alice, publicKeyOf(bob))?.toString('hex')).toBe(shared);
    expect(dh(bob, publicKeyOf(alice))?.toString('hex')).toBe(shared);
  });

  it('refuses a low-order public key (all-zero shared secret) without throwing', () => {
    expect(dh(generatePrivateKey(), Buffer.alloc(32))).toBeNull();
    expect(dh(generatePrivateKey(), Buffer.from([1, ...Buffer.alloc(31)]))).toBeNull();
    expect(dh(generatePrivateKey(), Buffer.alloc(31, 9))).toBeNull();
  });

  it('encodes as 44 characters of standard base64 and decodes back', () => {
    const k = generatePrivateKey();
    const s = encodeKey(k);
    expect(s).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(decodeKey(s)).toEqual(k);
    expect(parseKey(s)).toEqual(k);
  });

  it.each([
    ['empty', ''],
    ['too short', encodeKey(Buffer.alloc(31))],
    ['too long', encodeKey(Buffer.alloc(33))],
    ['base64url', '-'.repeat(43) + '='],
    ['no padding', encodeKey(Buffer.alloc(32)).slice(0, 43)],
    ['spaces inside', ` ${encodeKey(Buffer.alloc(32)).slice(1)}`],
    ['not canonical (unused bits set)', 'A'.repeat(42) + 'B='],
    ['hex', 'ab'.repeat(32)],
  ])('refuses %s text', (_, s) => {
    expect(decodeKey(s)).toEqual({ error: KEY_TEXT_ERROR });
    expect(() => parseKey(s, 'peers[0].publicKey')).toThrow(`peers[0].publicKey ${KEY_TEXT_ERROR}`);
  });
});

describe('readPrivateKeyFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const key = generatePrivateKey();
  const file = (name: string, mode: number, content = `${encodeKey(key)}\n`) => {
    const p = join(dir, name);
    writeFileSync(p, content, { mode });
    chmodSync(p, mode); // the umask may have taken bits away
    return p;
  };

  it('reads a 0600 file, trimming whitespace', () => {
    expect(readPrivateKeyFile(file('ok', 0o600))).toEqual(key);
    expect(readPrivateKeyFile(file('ws', 0o400, `  \n${encodeKey(key)}  \r\n\n`))).toEqual(key);
  });

  it.each([
    [0o644, 'readable or writable', '0644'],
    [0o640, 'readable or writable', '0640'],
    [0o604, 'readable or writable', '0604'],
    [0o620, 'readable or writable', '0620'],
    [0o610, 'accessible', '0610'],
  ])('refuses mode %o', (mode, how, shown) => {
    const p = file(`m${mode.toString(8)}`, mode);
    expect(() => readPrivateKeyFile(p)).toThrow(`identity.privateKeyFile: ${p} is ${how} by group or others (mode ${shown}); chmod 600 it`);
  });

  it('refuses a symbolic link, even to a good file', () => {
    const target = file('target', 0o600);
    const link = join(dir, 'link');
    symlinkSync(target, link);
    expect(() => readPrivateKeyFile(link)).toThrow(`identity.privateKeyFile: ${link} is a symbolic link; give the path of the key file itself`);
  });

  it('refuses a directory', () => {
    const d = join(dir, 'adir');
    mkdirSync(d, { mode: 0o700 });
    expect(() => readPrivateKeyFile(d)).toThrow(`identity.privateKeyFile: ${d} is not a regular file`);
  });

  it('says how to create a missing file', () => {
    const p = join(dir, 'missing');
    expect(() => readPrivateKeyFile(p)).toThrow(`identity.privateKeyFile: ${p} does not exist; create it with: umask 077; vtepd genkey > ${p}`);
  });

  it('refuses content that is not a key, and names the label given', () => {
    for (const [name, content] of [
      ['empty', ''],
      ['pub', 'not a key\n'],
      ['two', `${encodeKey(key)}\n${encodeKey(key)}\n`],
      ['big', 'A'.repeat(10_000)],
    ]) {
      const p = file(`c-${name}`, 0o600, content);
      expect(() => readPrivateKeyFile(p, 'hub.key')).toThrow(`hub.key: ${p} ${KEY_TEXT_ERROR}`);
    }
  });
});
