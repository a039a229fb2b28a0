/**
 * native/fdb.c in C: test/native/fdb_test.c is built with cc (with AddressSanitizer and
 * UBSan where installed) and run. Random churn against a plain list, and what stays resident
 * when a big table with a few MACs is scanned for ageing (this VM kind has no shared zero
 * page: a read of a page never written costs a real one).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { notOk, runTap } from '../support/ctap.js';

const execFileP = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('native/fdb.c (C unit tests)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-fdb-'));
  const bin = join(dir, 'fdb_test');

  beforeAll(async () => {
    const src = ['test/native/fdb_test.c', 'native/fdb.c'].map((f) => join(root, f));
    const base = ['-std=gnu11', '-D_GNU_SOURCE', '-Wall', '-Werror', '-g', '-O1', `-I${join(root, 'native')}`, ...src, '-o', bin];
    try {
      await execFileP('cc', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', ...base]);
    } catch {
      await execFileP('cc', base); // no sanitizer runtime installed: plain build
    }
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('churn agrees with a plain list; ageing scans keep only the MACs’ pages resident', async () => {
    const { ok, out } = await runTap(bin, []);
    expect(notOk(out), out).toEqual([]);
    expect(ok, out).toBe(true);
    expect(out).toMatch(/^1\.\.8$/m);
  });
});
