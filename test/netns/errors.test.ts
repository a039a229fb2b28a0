/**
 * Errors that say what to do (#14): each host problem that stops `vtepd run` is said with
 * the config path it is about and the fix, and `vtepd check` warns of the same, in the same
 * words (exit 0), where it can see it. The built CLI runs inside namespaces this test makes:
 * a missing namespace, a TAP name that is a veth, a TAP another daemon holds, an underlay
 * port another daemon or a kernel VXLAN device holds, an address not on the host, a
 * metrics.listen or control.socket in use.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, waitForLine } from '../../lab/netns.js';
import { BIN, ensureBuilt, vtepd, type Run } from '../support/built-cli.js';

const lab = new Lab('ve');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-errors-'));
const P = lab.prefix;

/** The built `vtepd ARGS` inside lab host `host`. */
function vtepdIn(host: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // A run that starts after all (a test failing) is stopped by the timeout (SIGTERM to this child).
    execFile('ip', ['netns', 'exec', lab.ns(host), process.execPath, BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Cfg {
  name: string;
  local?: string;
  port?: number;
  metrics?: string;
  /** Default: NAME.sock in the test's directory. */
  socket?: string;
  ports?: { tap: string; netns?: string }[];
}
/** A config file in block style, one value a line (so a value's line and column are easy to find). */
function config(c: Cfg): string {
  const lines = [
    'underlay:',
    `  local: ${c.local ?? '10.0.0.1'}`,
    `  port: ${c.port ?? 4789}`,
    'control:',
    `  socket: ${c.socket ?? join(dir, `${c.name}.sock`)}`,
    ...(c.metrics ? ['metrics:', `  listen: "${c.metrics}"`] : []),
    'tenants:',
    '  - name: blue',
    '    vni: 5001',
    '    ports:',
    ...(c.ports ?? []).flatMap((p) => [`      - tap: ${p.tap}`, ...(p.netns ? [`        netns: ${p.netns}`] : [])]),
    ...((c.ports ?? []).length ? [] : ['      []']),
  ];
  const f = join(dir, `${c.name}.yaml`);
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}
/** `file:line:col` of the value written as `key: value` in file `f` (its first such line). */
function at(f: string, text: string, key: string, value: string): string {
  const lines = text.split('\n');
  const n = lines.findIndex((l) => l.includes(`${key}: ${value}`) || l.includes(`${key}: "${value}"`));
  return `${f}:${n + 1}:${lines[n]!.indexOf(`${key}: `) + key.length + 3}`;
}

/** `vtepd run` of config `c` in host h: it must fail (exit 1); its stderr, and where (`file:line:col`) `key: value` is. */
async function runFails(c: Cfg): Promise<{ stderr: string; at: (key: string, value: string) => string }> {
  const file = config(c);
  const r = await vtepdIn('h', ['run', '--config', file]);
  expect(r.code).toBe(1);
  return { stderr: r.stderr, at: (key, value) => at(file, readFileSync(file, 'utf8'), key, value) };
}
/** `vtepd check` of config `c` in host h: ok (exit 0), with these warnings. */
async function checkWarns(c: Cfg): Promise<{ file: string; text: string; stderr: string }> {
  const file = config(c);
  const r = await vtepdIn('h', ['check', '--config', file]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toBe(`${file}: ok (1 tenant(s), ${(c.ports ?? []).length} port(s))\n`);
  return { file, text: readFileSync(file, 'utf8'), stderr: r.stderr };
}

let first: ChildProcess;
beforeAll(async () => {
  ensureBuilt(['src/cli/cli.ts', 'src/daemon/explain.ts', 'src/daemon/host.ts', 'src/daemon/daemon.ts', 'src/daemon/runtime.ts', 'src/config/load.ts']);
  await lab.addHost('h', { ipv6: false });
  await lab.exec('h', 'ip', ['addr', 'add', '10.0.0.1/24', 'dev', 'lo']);
  await lab.exec('h', 'ip', ['link', 'add', `${P}va`, 'type', 'veth', 'peer', 'name', `${P}vb`]);
  await lab.exec('h', 'ip', ['link', 'add', `${P}vx`, 'type', 'vxlan', 'id', '42', 'dstport', '4790', 'local', '10.0.0.1']);
  await lab.exec('h', 'ip', ['link', 'set', `${P}vx`, 'up']);
  // The first daemon: holds TAP ${P}ga, UDP 10.0.0.1:4789, TCP 127.0.0.1:19477 and its control socket.
  first = lab.spawn('h', process.execPath, [BIN, 'run', '--config', config({ name: 'first', metrics: '127.0.0.1:19477', ports: [{ tap: `${P}ga` }] })]);
  await waitForLine(first, /^vtepd: running/, 30_000);
}, 120_000);
afterAll(async () => {
  if (first) await lab.stop(first);
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('vtepd run names the config path and what to do', () => {
  it('a missing namespace', async () => {
    const ns = lab.ns('nosuch');
    const r = await runFails({ name: 'r-netns', port: 4800, ports: [{ tap: `${P}e1`, netns: ns }] });
    expect(r.stderr).toBe(
      `${r.at('netns', ns)}: tenants[0].ports[0].netns: namespace ${ns} does not exist (create it with ip netns add ${ns}, or drop netns)\n`,
    );
  });

  it('a TAP name that belongs to a veth', async () => {
    const r = await runFails({ name: 'r-veth', port: 4801, ports: [{ tap: `${P}va` }] });
    expect(r.stderr).toBe(
      `${r.at('tap', `${P}va`)}: tenants[0].ports[0].tap: ${P}va is already a veth device, not a TAP (pick another tap name, or delete it with ip link del ${P}va)\n`,
    );
  });

  it("another daemon's TAP", async () => {
    const r = await runFails({ name: 'r-busy', port: 4802, ports: [{ tap: `${P}ga` }] });
    expect(r.stderr).toBe(
      `${r.at('tap', `${P}ga`)}: tenants[0].ports[0].tap: TAP ${P}ga is in use by vtepd, pid ${first.pid} (stop it, or pick another tap name)\n`,
    );
  });

  it('an underlay port another daemon holds', async () => {
    const r = await runFails({ name: 'r-udp', port: 4789 });
    expect(r.stderr).toBe(
      `${r.at('port', '4789')}: underlay.port: UDP port 4789 on 10.0.0.1 is in use by vtepd, pid ${first.pid} (stop it, or pick another underlay.port)\n`,
    );
  });

  it('an underlay port a kernel VXLAN device holds', async () => {
    const r = await runFails({ name: 'r-vxlan', port: 4790 });
    expect(r.stderr).toBe(
      `${r.at('port', '4790')}: underlay.port: UDP port 4790 is in use by the kernel VXLAN device ${P}vx (delete it with ip link del ${P}vx, or pick another underlay.port)\n`,
    );
  });

  it('an underlay address that is not on this host', async () => {
    const r = await runFails({ name: 'r-addr', local: '192.168.77.50', port: 4803 });
    expect(r.stderr).toBe(
      `${r.at('local', '192.168.77.50')}: underlay.local: 192.168.77.50 is not an address of this host (add it with ip addr add, or set underlay.local to one of this host's addresses)\n`,
    );
  });

  it('metrics.listen in use', async () => {
    const r = await runFails({ name: 'r-metrics', port: 4804, metrics: '127.0.0.1:19477' });
    expect(r.stderr).toBe(
      `${r.at('listen', '127.0.0.1:19477')}: metrics.listen: 127.0.0.1:19477 is in use by vtepd, pid ${first.pid} (stop it, or pick another port)\n`,
    );
  });

  it('control.socket in use', async () => {
    const socket = join(dir, 'first.sock');
    const r = await runFails({ name: 'r-control', port: 4805, socket });
    expect(r.stderr).toBe(
      `${r.at('socket', socket)}: control.socket: another vtepd answers on ${socket} (stop it, start with --takeover to replace it, or set another control.socket)\n`,
    );
  });
});

describe('vtepd check warns of the same, where it can see it (exit 0)', () => {
  it('a missing namespace, a veth name, a TAP another daemon holds', async () => {
    const ns = lab.ns('nosuch');
    const { file, text, stderr } = await checkWarns({
      name: 'c-ports',
      port: 4810,
      ports: [{ tap: `${P}e1`, netns: ns }, { tap: `${P}va` }, { tap: `${P}ga` }],
    });
    expect(stderr).toBe(
      [
        `${at(file, text, 'netns', ns)}: warning: tenants[0].ports[0].netns: namespace ${ns} does not exist (create it with ip netns add ${ns}, or drop netns)`,
        `${at(file, text, 'tap', `${P}va`)}: warning: tenants[0].ports[1].tap: ${P}va is already a veth device, not a TAP (pick another tap name, or delete it with ip link del ${P}va)`,
        `${at(file, text, 'tap', `${P}ga`)}: warning: tenants[0].ports[2].tap: TAP ${P}ga is in use by vtepd, pid ${first.pid} (stop it, or pick another tap name)`,
        '',
      ].join('\n'),
    );
  });

  it('an underlay port held by a daemon, and by a kernel VXLAN device', async () => {
    const a = await checkWarns({ name: 'c-udp', port: 4789 });
    expect(a.stderr).toBe(
      `${at(a.file, a.text, 'port', '4789')}: warning: underlay.port: UDP port 4789 on 10.0.0.1 is in use by vtepd, pid ${first.pid} (stop it, or pick another underlay.port)\n`,
    );
    const b = await checkWarns({ name: 'c-vxlan', port: 4790 });
    expect(b.stderr).toBe(
      `${at(b.file, b.text, 'port', '4790')}: warning: underlay.port: UDP port 4790 is in use by the kernel VXLAN device ${P}vx (delete it with ip link del ${P}vx, or pick another underlay.port)\n`,
    );
  });

  it('addresses not on this host, metrics.listen in use', async () => {
    const a = await checkWarns({ name: 'c-addr', local: '192.168.77.50', port: 4811, metrics: '192.168.77.51:9477' });
    expect(a.stderr).toBe(
      [
        `${at(a.file, a.text, 'local', '192.168.77.50')}: warning: underlay.local: 192.168.77.50 is not an address of this host (add it with ip addr add, or set underlay.local to one of this host's addresses)`,
        `${at(a.file, a.text, 'listen', '192.168.77.51:9477')}: warning: metrics.listen: 192.168.77.51 is not an address of this host (add it with ip addr add, or set metrics.listen to one of this host's addresses)`,
        '',
      ].join('\n'),
    );
    const b = await checkWarns({ name: 'c-metrics', port: 4812, metrics: '127.0.0.1:19477' });
    expect(b.stderr).toBe(
      `${at(b.file, b.text, 'listen', '127.0.0.1:19477')}: warning: metrics.listen: 127.0.0.1:19477 is in use by vtepd, pid ${first.pid} (stop it, or pick another port)\n`,
    );
  });

  it("the running daemon's own config: what it holds is its own, not a warning", async () => {
    const f = join(dir, 'first.yaml');
    const r = await vtepdIn('h', ['check', '--config', f]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `${at(f, readFileSync(f, 'utf8'), 'socket', join(dir, 'first.sock'))}: warning: control.socket: a vtepd answers on ${join(dir, 'first.sock')}: the TAPs and ports it holds are not checked\n`,
    );
  });
});

describe('a config file that is not there, and check without root', () => {
  it('is named once, by check and by run', async () => {
    const f = join(dir, 'nope.yaml');
    const line = `${f}: cannot read the config file: no such file (give its path with --config)\n`;
    expect(await vtepd(['check', '--config', f])).toEqual({ code: 1, stdout: '', stderr: line });
    expect(await vtepd(['run', '--config', f])).toEqual({ code: 1, stdout: '', stderr: line });
  });

  it('check as an unprivileged user validates, and warns of what it can see (a missing namespace)', async () => {
    chmodSync(dir, 0o755);
    const ns = lab.ns('nosuch');
    const f = config({ name: 'c-user', local: '127.0.0.1', port: 4814, ports: [{ tap: `${P}u0`, netns: ns }] });
    chmodSync(f, 0o644);
    const r = await new Promise<Run>((resolve) => {
      execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'check', '--config', f], (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(r).toEqual({
      code: 0,
      stdout: `${f}: ok (1 tenant(s), 1 port(s))\n`,
      stderr: `${at(f, readFileSync(f, 'utf8'), 'netns', ns)}: warning: tenants[0].ports[0].netns: namespace ${ns} does not exist (create it with ip netns add ${ns}, or drop netns)\n`,
    });
  });
});
