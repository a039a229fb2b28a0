/**
 * The GRE/NVGRE header module (native/gre.c) and the raw IP sockets (native/rawip.c), tested
 * in C: test/native/gre_test.c is built with cc (with AddressSanitizer and UBSan, so a read
 * past a packet's end fails) and run; it prints TAP. The raw-socket part runs inside a
 * fresh lab namespace (loopback only).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Lab } from '../../lab/netns.js';
import { runTap } from '../support/ctap.js';

const execFileP = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The TAP lines that failed, or the whole output if the plan line is missing (a crash). */
function failures(out: string): string {
  if (!/^1\.\.\d+$/m.test(out)) return out;
  return out
    .split('\n')
    .filter((l) => l.startsWith('not ok') || l.startsWith('#'))
    .join('\n');
}

describe('native/gre.c and native/rawip.c (C unit tests)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-gre-'));
  const bin = join(dir, 'gre_test');
  const lab = new Lab('vg');

  beforeAll(async () => {
    const src = ['test/native/gre_test.c', 'native/gre.c', 'native/rawip.c'].map((f) => join(root, f));
    const base = ['-std=gnu11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-Werror', '-g', '-O1', `-I${join(root, 'native')}`, ...src, '-o', bin];
    try {
      await execFileP('cc', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', ...base]);
    } catch {
      await execFileP('cc', base); // no sanitizer runtime installed: plain build
    }
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gre_push/gre_pop, nvgre_push/nvgre_pop: good, bad, truncated and random input', async () => {
    const r = await runTap(bin, []);
    expect(failures(r.out), r.out).toBe('');
    expect(r.ok).toBe(true);
    expect(r.out).toMatch(/^1\.\.(\d+)$/m);
  });

  it('raw IPPROTO_GRE sockets carry a GRE packet over loopback, IPv4 and IPv6', async () => {
    await lab.addHost('raw');
    const r = await runTap('ip', ['netns', 'exec', lab.ns('raw'), bin, 'rawip']);
    expect(failures(r.out), r.out).toBe('');
    expect(r.ok).toBe(true);
  });
});
