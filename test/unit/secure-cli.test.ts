/**
 * `vtepd genkey` and `vtepd pubkey` as a user runs them (the built command, as a process).
 * Interoperability with WireGuard's own `wg` is in test/native/wg-keys.test.ts.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeKey, encodeKey, generatePrivateKey, KEY_TEXT_ERROR, publicKeyOf } from '../../src/secure/keys.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';

const KEY_LINE = /^[A-Za-z0-9+/]{43}=\n$/;

describe('vtepd genkey / pubkey', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/secure/keys.ts']), 120_000);

  it('genkey prints a new clamped key and a newline, a different one each time', async () => {
    const [a, b] = await Promise.all([vtepd(['genkey']), vtepd(['genkey'])]);
    for (const r of [a, b]) {
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(KEY_LINE);
      const k = decodeKey(r.stdout.trim()) as Buffer;
      expect(k[0] & 7).toBe(0);
      expect(k[31] & 0xc0).toBe(0x40);
    }
    expect(a.stdout).not.toBe(b.stdout);
  });

  it('pubkey prints the public key of the private key on standard input', async () => {
    const priv = generatePrivateKey();
    const r = await vtepd(['pubkey'], `${encodeKey(priv)}\n`);
    expect(r).toEqual({ code: 0, stdout: `${encodeKey(publicKeyOf(priv))}\n`, stderr: '' });
    // RFC 7748 section 6.1, Alice.
    const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    const r2 = await vtepd(['pubkey'], encodeKey(alice));
    expect(r2.stdout).toBe(`${Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64')}\n`);
  });

  it.each([
    ['nothing', ''],
    ['junk', 'hello\n'],
    ['a short key', `${encodeKey(Buffer.alloc(31))}\n`],
    ['two keys', `${encodeKey(Buffer.alloc(32))}\n${encodeKey(Buffer.alloc(32))}\n`],
  ])('pubkey refuses %s with exit 1', async (_, input) => {
    const r = await vtepd(['pubkey'], input);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vtepd: pubkey: the private key on standard input ${KEY_TEXT_ERROR}\n` });
  });
});

describe('vtepd check with an identity', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/secure/keys.ts', 'src/config/schema.ts']), 120_000);

  it('refuses a key file group or others can read, as run does, and names the fix; accepts one only its owner reads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtepd-check-'));
    try {
      const priv = generatePrivateKey();
      const key = join(dir, 'private.key');
      writeFileSync(key, `${encodeKey(priv)}\n`, { mode: 0o644 });
      chmodSync(key, 0o644);
      const cfg = join(dir, 'vtepd.yaml');
      // An address of this host (check warns of one that is not), on a port unlikely to be bound.
      writeFileSync(
        cfg,
        `identity: { privateKeyFile: ${key} }\nunderlay: { local: 127.0.0.1, port: ${20000 + Math.floor(Math.random() * 20000)} }\ntenants: []\n`,
      );
      const bad = await vtepd(['check', '--config', cfg]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toBe(`${cfg}: identity.privateKeyFile: ${key} is readable or writable by group or others (mode 0644); chmod 600 it\n`);
      chmodSync(key, 0o600);
      const good = await vtepd(['check', '--config', cfg]);
      expect(good).toEqual({ code: 0, stdout: `${cfg}: ok (0 tenant(s), 0 port(s), identity ${encodeKey(publicKeyOf(priv))})\n`, stderr: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
