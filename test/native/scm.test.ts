/**
 * The fd handover primitive (native/scm.c): descriptors and a payload cross from one
 * process to another over a Unix socket with SCM_RIGHTS, in chunks past the kernel's
 * 253-fd limit per message, and still work on the other side.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { native } from '../../src/native/addon.js';
import { testAddon } from '../support/test-addon.js';

const n = native();
const t = testAddon();
const dir = mkdtempSync(join(tmpdir(), 'vtepd-scm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A child process that makes `pairs` socketpairs, writes a frame into each, and sends the other ends. */
function sender(path: string, pairs: number, payload: string): Promise<{ code: number | null; err: string }> {
  const addon = resolve('build/Release/vtepd.node');
  const testAddonPath = resolve('build/Release/vtepd_test.node');
  const script = `
    const n = require(${JSON.stringify(addon)});
    const t = require(${JSON.stringify(testAddonPath)});
    const fds = [];
    for (let i = 0; i < ${pairs}; i++) {
      const [a, b] = t.testSocketPair();
      t.testWrite(a, Buffer.from('frame ' + i));
      fds.push(b);
    }
    n.scmSend(${JSON.stringify(path)}, fds, Buffer.from(${JSON.stringify(payload)}), 5000);
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((r) => child.on('exit', (code) => r({ code, err })));
}

async function accept(lfd: number, ms: number): Promise<{ fds: number[]; payload: Buffer }> {
  const until = Date.now() + ms;
  for (;;) {
    const got = n.scmAccept(lfd, 10);
    if (got) return got;
    if (Date.now() > until) throw new Error('no sender');
    await new Promise((r) => setImmediate(r));
  }
}

describe('scm handover', () => {
  it('passes working descriptors and a payload between processes, past 253 fds', async () => {
    const path = join(dir, 'h.sock');
    const lfd = n.scmListen(path);
    expect(n.scmAccept(lfd, 0)).toBeNull();
    const done = sender(path, 300, 'snapshot ✓');
    const got = await accept(lfd, 20_000);
    const r = await done;
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(got.payload.toString()).toBe('snapshot ✓');
    expect(got.fds.length).toBe(300);
    expect(t.testRead(got.fds[0]!, 1000)?.toString()).toBe('frame 0');
    expect(t.testRead(got.fds[299]!, 1000)?.toString()).toBe('frame 299');
    for (const fd of got.fds) n.fdClose(fd);
    n.fdClose(lfd);
  });

  it('fails clearly when nobody listens', () => {
    expect(() => n.scmSend(join(dir, 'nobody.sock'), [], Buffer.alloc(0), 1000)).toThrow(/scmSend: .*nobody\.sock.*No such file/);
  });

  it('sdNotify is a no-op outside systemd', () => {
    const saved = process.env.NOTIFY_SOCKET;
    delete process.env.NOTIFY_SOCKET;
    expect(n.sdNotify('READY=1')).toBe(false);
    if (saved !== undefined) process.env.NOTIFY_SOCKET = saved;
  });
});
