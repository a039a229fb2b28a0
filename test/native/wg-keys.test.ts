/**
 * Node keys against a real peer: WireGuard's `wg` (Debian wireguard-tools, installed by
 * scripts/test-deps.mjs). `vtepd pubkey` must give what `wg pubkey` gives for keys from
 * `wg genkey`, and `wg pubkey` must take `vtepd genkey`'s keys and agree with vtepd.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeKey, encodeKey, publicKeyOf } from '../../src/secure/keys.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';

const wg = (args: string[], input = '') => execFileSync('wg', args, { input, encoding: 'utf8' });

describe('keys: vtepd and wg agree', () => {
  beforeAll(() => {
    if (spawnSync('sh', ['-c', 'command -v wg'], { stdio: 'ignore' }).status !== 0) {
      throw new Error('wg is missing: run node scripts/test-deps.mjs (Debian wireguard-tools)');
    }
    ensureBuilt(['src/cli/cli.ts', 'src/secure/keys.ts']);
  }, 120_000);

  it('vtepd pubkey = wg pubkey for keys from wg genkey', async () => {
    for (let i = 0; i < 5; i++) {
      const priv = wg(['genkey']);
      const pub = wg(['pubkey'], priv);
      const r = await vtepd(['pubkey'], priv);
      expect(r).toEqual({ code: 0, stdout: pub, stderr: '' });
      expect(encodeKey(publicKeyOf(decodeKey(priv.trim()) as Buffer))).toBe(pub.trim());
    }
  });

  it('wg pubkey takes vtepd genkey and agrees with vtepd pubkey', async () => {
    for (let i = 0; i < 5; i++) {
      const priv = (await vtepd(['genkey'])).stdout;
      const pub = wg(['pubkey'], priv);
      expect(pub).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
      expect((await vtepd(['pubkey'], priv)).stdout).toBe(pub);
    }
  });

  it('the same for a private key that is not clamped (both clamp on use)', async () => {
    const priv = `${encodeKey(Buffer.alloc(32, 0xff))}\n`;
    expect((await vtepd(['pubkey'], priv)).stdout).toBe(wg(['pubkey'], priv));
  });
});
