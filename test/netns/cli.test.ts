/**
 * The `vtepd` command as a user runs it: check (exit codes, every error with its path),
 * run (TAPs created in the named namespace with the right MTU, address and MAC; removed
 * on SIGTERM; a bad config never starts; VTEPD_LOG wins over the config's log.level).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, waitForLine } from '../../lab/netns.js';
import { CLI } from '../../lab/topology.js';
import { until } from '../../lab/wait.js';

function vtepd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('vtepd check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a valid config and says what it holds', async () => {
    const f = join(dir, 'ok.yaml');
    writeFileSync(f, 'underlay: { local: 10.0.0.1 }\ntenants:\n  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ], flood: [ 10.0.0.2 ] }\n');
    const r = await vtepd(['check', '--config', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok (1 tenant(s), 1 port(s))');
  });

  it('prints every error with its path and exits 1', async () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'underlay: { local: 10.0.0.1, port: 0 }\ntenants:\n  - { name: blue, vni: 0 }\n  - { name: blue, vni: 5002, flood: [ nope ] }\n');
    const r = await vtepd(['check', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f}:1:36: underlay.port: must be an integer 1..65535`);
    expect(r.stderr).toContain(`${f}:3:24: tenants[0].vni: must be an integer 1..16777215`);
    expect(r.stderr).toContain(`${f}:4:13: tenants[1].name: duplicate tenant name "blue" (also tenants[0])`);
    expect(r.stderr).toContain(`${f}:4:39: tenants[1].flood[0]: must be an IPv4 or IPv6 address`);
    expect(r.stderr).toContain('4 errors');
  });

  it('reports a missing file clearly', async () => {
    const r = await vtepd(['check', '--config', join(dir, 'nope.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope\.yaml.*(no such file|ENOENT)/i);
  });
});

describe('vtepd run', () => {
  const lab = new Lab('vc');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-run-'));
  beforeAll(async () => {
    await lab.addHost('h');
    await lab.addHost('vm', { ipv6: false });
    await lab.exec('h', 'ip', ['addr', 'add', '10.0.0.1/24', 'dev', 'lo']);
  });
  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the TAP in its namespace with MTU, address and MAC, and removes it on SIGTERM', async () => {
    const f = join(dir, 'run.yaml');
    writeFileSync(
      f,
      `control: { socket: ${join(dir, 'run.sock')} }
underlay: { local: 10.0.0.1, mtu: 9000 }
tenants:
  - name: blue
    vni: 5001
    ports: [ { tap: blue0, netns: ${lab.ns('vm')}, address: 10.1.0.1/24, mac: "02:00:00:00:01:01" } ]
`,
    );
    const child = lab.spawn('h', process.execPath, [CLI, 'run', '--config', f]);
    await waitForLine(child, /^vtepd: running, 1 tenant\(s\), 1 port\(s\), underlay 10\.0\.0\.1 udp\/4789/);
    const link = (await lab.exec('vm', 'ip', ['-o', 'link', 'show', 'blue0'])).stdout;
    expect(link).toContain('mtu 8950');
    expect(link).toContain('02:00:00:00:01:01');
    expect(link).toMatch(/UP/);
    expect((await lab.exec('vm', 'ip', ['-o', 'addr', 'show', 'blue0'])).stdout).toContain('10.1.0.1/24');
    // A second daemon on the same control socket refuses to start (and touches nothing).
    const second = await lab.exec('h', process.execPath, [CLI, 'run', '--config', f]).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(second).toContain(`another vtepd answers on ${join(dir, 'run.sock')}`);
    expect(await lab.stop(child, 'SIGTERM')).toBe(0);
    await expect(lab.exec('vm', 'ip', ['link', 'show', 'blue0'])).rejects.toThrow(/does not exist/);
  });

  it('VTEPD_LOG=debug wins over log.level: warn in the config; a bad VTEPD_LOG is said by name', async () => {
    const f = join(dir, 'loud.yaml');
    writeFileSync(
      f,
      `control: { socket: ${join(dir, 'loud.sock')} }\nlog: { level: warn }\nunderlay: { local: 10.0.0.1 }\n` +
        `tenants: [ { name: blue, vni: 5001, ports: [ { tap: blue0, netns: ${lab.ns('vm')} } ] } ]\n`,
    );
    /** run with VTEPD_LOG=`level`: its stderr once it says it runs (JSON lines: stderr is a pipe). */
    const runWith = async (level: string) => {
      const child = lab.spawn('h', process.execPath, [CLI, 'run', '--config', f], { env: { ...process.env, VTEPD_LOG: level, VTEPD_LOG_FORMAT: 'json' } });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
      });
      try {
        await waitForLine(child, /^vtepd: running/);
        return { child, stderr: () => err };
      } catch (e) {
        await lab.stop(child);
        throw e;
      }
    };
    const loud = await runWith('debug');
    try {
      const line = await until('a debug line on stderr', async () =>
        loud
          .stderr()
          .split('\n')
          .find((l) => l.includes('"level":20')),
      );
      expect(JSON.parse(line!)).toMatchObject({ level: 20, ns: 'daemon', msg: 'TAP offloads' });
    } finally {
      expect(await lab.stop(loud.child, 'SIGTERM')).toBe(0);
    }
    const bogus = await runWith('bogus');
    try {
      expect(bogus.stderr()).toContain('vtepd: VTEPD_LOG: must be one of fatal, error, warn, info, debug, trace, silent, not "bogus" (ignored)\n');
      expect(bogus.stderr()).not.toContain('"level":20');
    } finally {
      expect(await lab.stop(bogus.child, 'SIGTERM')).toBe(0);
    }
  });

  it('refuses to start on a bad config and leaves nothing behind', async () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, `underlay: { local: 10.0.0.1 }\ntenants: [ { name: blue, vni: 99999999, ports: [ { tap: blue0, netns: ${lab.ns('vm')} } ] } ]\n`);
    const r = await lab.exec('h', process.execPath, [CLI, 'run', '--config', f]).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(r).toContain('tenants[0].vni: must be an integer 1..16777215');
    await expect(lab.exec('vm', 'ip', ['link', 'show', 'blue0'])).rejects.toThrow(/does not exist/);
  });

  it('fails with a clear message when the namespace does not exist, and leaves no TAP', async () => {
    const f = join(dir, 'nons.yaml');
    writeFileSync(f, `underlay: { local: 10.0.0.1 }\ntenants: [ { name: blue, vni: 5001, ports: [ { tap: blue0, netns: ${lab.ns('nosuch')} } ] } ]\n`);
    const r = await lab.exec('h', process.execPath, [CLI, 'run', '--config', f]).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(r).toContain(
      `tenants[0].ports[0].netns: namespace ${lab.ns('nosuch')} does not exist (create it with ip netns add ${lab.ns('nosuch')}, or drop netns)`,
    );
  });
});
