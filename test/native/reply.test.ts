/**
 * The decap thread answering the reply (#18): test/native/reply_test.c is built with cc
 * against every C file of native/ (with AddressSanitizer and UBSan where installed) and
 * run inside a fresh lab namespace (its VTEPs live on that namespace's loopback). It drives
 * the workers without their threads, as decap_batch and encap_port do: the answers a port's
 * endpoint queued are sent in order, each once, by the thread that holds the port, and
 * counted on that thread; a port the encap thread holds is left to it; a light queue merged
 * into its encap thread reads the underlay there, and gives it back when split. It prints TAP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Lab } from '../../lab/netns.js';
import { notOk, runTap } from '../support/ctap.js';

const execFileP = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('the decap thread answers the reply (C unit tests)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-reply-'));
  const bin = join(dir, 'reply_test');
  const lab = new Lab('fast');

  beforeAll(async () => {
    const native = join(root, 'native');
    const src = readdirSync(native)
      .filter((f) => f.endsWith('.c'))
      .map((f) => join(native, f));
    const inc = existsSync('/usr/include/openssl/evp.h') ? [] : ['-idirafter', '/usr/include/node'];
    const base = [
      '-std=gnu11',
      '-D_GNU_SOURCE',
      '-Wall',
      '-Wno-unused-function',
      '-g',
      '-O1',
      `-I${native}`,
      ...inc,
      '-pthread',
      join(root, 'test/native/reply_test.c'),
      ...src,
      '-l:libcrypto.so.3',
      '-o',
      bin,
    ];
    try {
      await execFileP('cc', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', ...base], { timeout: 120_000 });
    } catch {
      await execFileP('cc', base, { timeout: 120_000 }); // no sanitizer runtime installed: plain build
    }
  }, 150_000);

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends what the endpoint answered in order, once, counted on the thread that read it', async () => {
    await lab.addHost('reply');
    const { ok, out } = await runTap('ip', ['netns', 'exec', lab.ns('reply'), bin]);
    expect(notOk(out), out).toEqual([]);
    expect(ok, out).toBe(true);
    expect(out).toMatch(/^1\.\.25$/m);
  }, 90_000);
});
