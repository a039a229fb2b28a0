/**
 * contrib/libvirt/qemu, the libvirt hook (#16): from a domain's XML (libvirt's own shape,
 * metadata in the vtepd namespace) and the operation libvirt names, which vtepd commands it
 * runs. VTEPD points at a recorder that writes its arguments, one call per line, so the test
 * reads exactly what a real vtepd would have been asked; the real daemon's side of
 * `port add --attach` is tested in test/netns/.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const HOOK = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'contrib', 'libvirt', 'qemu');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-hook-'));
const log = join(dir, 'calls');
const recorder = join(dir, 'vtepd');
writeFileSync(recorder, `#!/bin/sh\necho "$*" >> ${log}\n[ "$3" = "--tenant" ] && [ "$4" = "nosuch" ] && { echo 'no tenant "nosuch"' >&2; exit 1; }\nexit 0\n`);
chmodSync(recorder, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DOMAIN = (meta: string) => `<domain type="kvm">
  <name>web1</name>
  <metadata>
    <vtepd:ports xmlns:vtepd="urn:vtepd:libvirt:1">${meta}</vtepd:ports>
  </metadata>
  <devices>
    <interface type="ethernet"><target dev="web1-blue" managed="yes"/><model type="virtio"/><mtu size="1450"/></interface>
    <interface type="ethernet"><target dev="web1-red" managed="yes"/><model type="virtio"/><mtu size="1450"/></interface>
    <interface type="network"><source network="default"/></interface>
  </devices>
</domain>`;

function hook(op: string, xml: string, env: Record<string, string> = {}) {
  rmSync(log, { force: true });
  const r = spawnSync('/usr/bin/python3', [HOOK, 'web1', op, 'begin', '-'], { input: xml, env: { ...process.env, VTEPD: recorder, ...env }, encoding: 'utf8' });
  const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
  return { code: r.status, stderr: r.stderr, calls };
}

const BOTH = '<vtepd:port dev="web1-blue" tenant="blue"/><vtepd:port dev="web1-red" tenant="red"/>';

it('started (and reconnect, restore): port add --tenant T --attach DEV for each port of the metadata', () => {
  for (const op of ['started', 'reconnect', 'restore']) {
    expect(hook(op, DOMAIN(BOTH))).toEqual({
      code: 0,
      stderr: '',
      calls: ['port add --tenant blue --attach web1-blue', 'port add --tenant red --attach web1-red'],
    });
  }
});

it('stopped and release: port del --attach DEV; every other operation: nothing', () => {
  expect(hook('stopped', DOMAIN(BOTH)).calls).toEqual(['port del --attach web1-blue', 'port del --attach web1-red']);
  expect(hook('release', DOMAIN(BOTH)).calls).toEqual(['port del --attach web1-blue', 'port del --attach web1-red']);
  for (const op of ['prepare', 'start', 'migrate', 'attach']) expect(hook(op, DOMAIN(BOTH))).toEqual({ code: 0, stderr: '', calls: [] });
});

it('passes VTEPD_SOCKET on; a refusal is logged and the other ports still go, the domain is never stopped (exit 0)', () => {
  const r = hook('started', DOMAIN('<vtepd:port dev="web1-red" tenant="nosuch"/><vtepd:port dev="web1-blue" tenant="blue"/>'), { VTEPD_SOCKET: '/run/x.sock' });
  expect(r.calls).toEqual([
    'port add --tenant nosuch --attach web1-red --socket /run/x.sock',
    'port add --tenant blue --attach web1-blue --socket /run/x.sock',
  ]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain('no tenant "nosuch"');
});

it('says what is wrong with the metadata; unreadable XML exits 1', () => {
  const r = hook('started', DOMAIN('<vtepd:port dev="web1-green" tenant="green"/><vtepd:port tenant="blue"/>'));
  expect(r.calls).toEqual([]);
  expect(r.stderr).toContain("vtepd:port dev=web1-green: the domain has no <interface> with <target dev='web1-green'/>");
  expect(r.stderr).toContain('a vtepd:port needs dev and tenant');
  expect(hook('started', '<domain><devices>').code).toBe(1);
});
