/**
 * The CLI in the field's habits (#14): MACs in any common form, byte counts in human units,
 * fdb filters, places as structured JSON, the default config file and its example, short
 * flags, JSON errors without a daemon, ISO log times, what a restart from a terminal says, a
 * daemon's refusal said by the flag the user typed.
 * Pure functions here; the built command for what a user types (no daemon needed).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filterFdb, whereText, type FdbRow } from '../../src/core/fdb.js';
import { humanBytes, table } from '../../src/cli/table.js';
import { handedOver } from '../../src/daemon/takeover.js';
import { normalizeMac } from '../../src/util/mac.js';
import { prettyLine } from '../../src/util/log.js';
import { parseConfig } from '../../src/config/load.js';
import { describeChange, plan } from '../../src/config/reconcile.js';
import type { Config } from '../../src/config/config.js';
import { ApiError, ControlServer } from '../../src/daemon/control.js';
import { BIN, ensureBuilt, ROOT, vtepd } from '../support/built-cli.js';

describe('MACs in any common form', () => {
  it('colons, dashes, Cisco dotted groups, bare hex, either case: all the same MAC', () => {
    for (const s of ['02:00:00:00:09:09', '02-00-00-00-09-09', '0200.0000.0909', '020000000909', '02:00:00:00:09:09'.toUpperCase(), ' 0200.0000.0909 '])
      expect(normalizeMac(s)).toBe('02:00:00:00:09:09');
  });
  it('refuses what is none of them', () => {
    for (const s of ['02:00:00:00:09', '02:00-00:00:09:09', '0200.0000.090g', '0200.00000.909', '', 'blue']) expect(normalizeMac(s)).toBeNull();
  });
});

describe('byte counts in human units (as ip -s -h)', () => {
  it('powers of 1000 with one decimal; the number itself below 1000', () => {
    expect([0, 999, 1000, 1500, 999_949, 999_950, 2_000_000, 3_456_789_012, 1e15].map(humanBytes)).toEqual([
      0,
      999,
      '1.0K',
      '1.5K',
      '999.9K',
      '1.0M',
      '2.0M',
      '3.5G',
      '1.0P',
    ]);
  });
  it('right-aligned in a table like the numbers they replace', () => {
    expect(
      table(
        ['PORT', 'RX BYTES'],
        [
          ['a', humanBytes(1500)],
          ['b', 12],
        ],
      ),
    ).toBe('PORT  RX BYTES\na         1.5K\nb           12\n');
  });
});

describe('fdb show filters and places', () => {
  const rows: FdbRow[] = [
    { tenant: 'blue', vni: 5001, mac: '02:00:00:00:00:01', where: { kind: 'port', port: 'blue0' }, type: 'learned', ageSeconds: 1 },
    { tenant: 'blue', vni: 5001, mac: '02:00:00:00:00:02', where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' }, type: 'learned', ageSeconds: 2 },
    { tenant: 'red', vni: 5002, mac: '02:00:00:00:00:02', where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'gre' }, type: 'static', ageSeconds: null },
    {
      tenant: 'red',
      vni: 5002,
      mac: '02:00:00:00:00:03',
      where: { kind: 'vtep', vtep: '10.0.0.9', encap: 'vxlan', udpPort: 40001 },
      type: 'learned',
      ageSeconds: 0,
    },
  ];
  const macs = (f: Parameters<typeof filterFdb>[1]) => filterFdb(rows, f).map((r) => `${r.tenant} ${r.mac}`);
  it('every filter given must match', () => {
    expect(macs({})).toHaveLength(4);
    expect(macs({ vni: 5002 })).toEqual(['red 02:00:00:00:00:02', 'red 02:00:00:00:00:03']);
    expect(macs({ mac: '02:00:00:00:00:02' })).toEqual(['blue 02:00:00:00:00:02', 'red 02:00:00:00:00:02']);
    expect(macs({ port: 'blue0' })).toEqual(['blue 02:00:00:00:00:01']);
    expect(macs({ vtep: '10.0.0.2' })).toEqual(['blue 02:00:00:00:00:02', 'red 02:00:00:00:00:02']);
    expect(macs({ vtep: '10.0.0.2', tenant: 'red' })).toEqual(['red 02:00:00:00:00:02']);
    expect(macs({ port: 'blue0', vni: 5002 })).toEqual([]);
  });
  it('a place is written as the tables show it', () => {
    expect(rows.map((r) => whereText(r.where))).toEqual(['port blue0', 'vtep 10.0.0.2', 'vtep gre:10.0.0.2', 'vtep 10.0.0.9:40001']);
  });
});

describe('reload says what changed, old and new', () => {
  const K1 = Buffer.alloc(32, 1).toString('base64');
  const K2 = Buffer.alloc(32, 2).toString('base64');
  const cfg = (text: string): Config => {
    const r = parseConfig(text);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.config;
  };
  const lines = (a: string, b: string) => plan(cfg(a), cfg(b)).changes.map(describeChange);
  it('a hub’s spokes by name and key, its timers', () => {
    const hub = (spokes: string, dead = 3) =>
      `identity: { privateKeyFile: /etc/vtepd/private.key }\nunderlay: { local: 10.0.0.1 }\nrole: hub\ndeadInterval: ${dead}\nspokes: [ ${spokes} ]\ntenants: [ { name: a, vni: 1 } ]`;
    const one = `{ publicKey: "${K1}", vnis: [1], name: site-a }`;
    const two = `{ publicKey: "${K2}", vnis: [1], name: site-b }`;
    expect(lines(hub(one), hub(`${one}, ${two}`))).toEqual([`spokes +site-b (${K2.slice(0, 10)}…, VNIs 1)`]);
    expect(lines(hub(`${one}, ${two}`), hub(two, 5))).toEqual(['deadInterval 3s -> 5s, spokes -site-a']);
  });
  it('a spoke’s hubs; a flood list and a static entry of a tenant', () => {
    const spoke = (hubs: string) => `underlay: { local: 10.0.0.1 }\nrole: spoke\nhubs: [ ${hubs} ]\ntenants: []`;
    expect(lines(spoke('{ address: 10.0.0.10 }'), spoke('{ address: 10.0.0.10 }, { address: 10.0.0.11, port: 4790 }'))).toEqual([
      'hubs 10.0.0.10:4789 -> 10.0.0.10:4789,10.0.0.11:4790',
    ]);
    const mesh = (flood: string, vtep: string) =>
      `underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, flood: [ ${flood} ], fdb: [ { mac: "02:00:00:00:00:01", vtep: ${vtep} } ] } ]`;
    expect(lines(mesh('10.0.0.2, 10.0.0.3', '10.0.0.2'), mesh('10.0.0.2, 10.0.0.4', '10.0.0.4'))).toEqual([
      'tenant a: flood list +10.0.0.4 -10.0.0.3',
      'tenant a: static entry 02:00:00:00:00:01 -> vtep 10.0.0.4 (was vtep 10.0.0.2)',
    ]);
  });
});

describe('log times', () => {
  it('the terminal line reads the ISO time of a record as local HH:MM:SS.mmm', () => {
    const t = new Date(2026, 0, 2, 3, 4, 5, 67);
    expect(prettyLine(JSON.stringify({ level: 30, time: t.toISOString(), ns: 'daemon', msg: 'up' }))).toBe('03:04:05.067 INFO  daemon: up\n');
  });
});

describe('restart from a terminal', () => {
  it('says the successor runs on detached and how to stop it; under systemd just the hand-over', () => {
    expect(handedOver(42, false)).toBe('vtepd: handed over to pid 42\n');
    expect(handedOver(42, true)).toBe(
      'vtepd: handed over to pid 42\nvtepd: pid 42 runs on detached from this terminal (Ctrl-C does not reach it); stop it with: kill 42\n',
    );
  });
});

/** `node ARGS` with extra environment. */
function nodeEnv(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** `vtepd ARGS` with extra environment. */
const vtepdEnv = (args: string[], env: Record<string, string>) => nodeEnv([BIN, ...args], env);

describe('the built command: config file, short flags, JSON errors, logs', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-habits-'));
  const EXAMPLE = join(ROOT, 'contrib', 'vtepd.example.yaml');
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/cli/table.ts', 'src/util/log.ts', 'src/util/mac.ts']), 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('check accepts contrib/vtepd.example.yaml, and host B’s copy of it', async () => {
    expect(await vtepd(['check', '-c', EXAMPLE])).toMatchObject({ code: 0, stdout: `${EXAMPLE}: ok (1 tenant(s), 1 port(s))\n` });
    const b = join(dir, 'b.yaml');
    writeFileSync(
      b,
      readFileSync(EXAMPLE, 'utf8')
        .replace('local: 192.168.10.1', 'local: 192.168.10.2')
        .replace('flood: [192.168.10.2]', 'flood: [192.168.10.1]')
        .replace('10.1.0.1/24', '10.1.0.2/24'),
    );
    expect(await vtepd(['check', '--config', b])).toMatchObject({ code: 0 });
  });

  it('without -c, check reads the default config ($VTEPD_CONFIG here, else /etc/vtepd/vtepd.yaml) and says when there is none', async () => {
    expect(await vtepdEnv(['check'], { VTEPD_CONFIG: EXAMPLE })).toMatchObject({ code: 0, stdout: `${EXAMPLE}: ok (1 tenant(s), 1 port(s))\n` });
    const none = await vtepdEnv(['check'], { VTEPD_CONFIG: join(dir, 'absent.yaml') });
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      `vtepd: no config file: ${join(dir, 'absent.yaml')} (the default, from $VTEPD_CONFIG) does not exist; give one with -c FILE, or start from contrib/vtepd.example.yaml\n`,
    );
    const run = await vtepdEnv(['run'], { VTEPD_CONFIG: join(dir, 'absent.yaml') });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('no config file:');
  });

  it('a client finds the socket through the default config’s control.socket', async () => {
    const f = join(dir, 'sock.yaml');
    writeFileSync(f, `control: { socket: ${join(dir, 'here.sock')} }\nunderlay: { local: 10.0.0.1 }\ntenants: []\n`);
    const r = await vtepdEnv(['status'], { VTEPD_CONFIG: f, VTEPD_SOCKET: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no vtepd answers on ${join(dir, 'here.sock')}`);
  });

  it('-c is --config and -s is --socket on the client verbs', async () => {
    const f = join(dir, 'c.yaml');
    writeFileSync(f, `control: { socket: ${join(dir, 'c.sock')} }\nunderlay: { local: 10.0.0.1 }\ntenants: []\n`);
    const verbs = [['status'], ['fdb', 'show'], ['peers'], ['stats'], ['reload'], ['restart'], ['trace'], ['log', 'level'], ['port', 'list']];
    await Promise.all(
      verbs.map(async (verb) => {
        const byConfig = await vtepd([...verb, '-c', f]);
        if (verb[0] === 'trace') expect(byConfig.stderr).toContain("required option '-t, --tenant <name>' not specified");
        else expect(byConfig.stderr, verb.join(' ')).toContain(`no vtepd answers on ${join(dir, 'c.sock')}`);
        if (!['status', 'stats', 'log'].includes(verb[0]!)) return;
        const bySocket = await vtepd([...verb, '-s', join(dir, 's.sock')]);
        expect(bySocket.stderr, verb.join(' ')).toContain(`no vtepd answers on ${join(dir, 's.sock')}`);
      }),
    );
  });

  it('with no daemon, --json prints a JSON error on stdout and exits 1', async () => {
    const sock = join(dir, 'nobody.sock');
    for (const verb of [['status'], ['fdb', 'show', 'blue'], ['stats', '-h'], ['log', 'level', 'debug'], ['reload']]) {
      const r = await vtepd([...verb, '-s', sock, '--json']);
      expect(r.code, verb.join(' ')).toBe(1);
      expect(JSON.parse(r.stdout), verb.join(' ')).toEqual({
        ok: false,
        error: { code: 'ENOENT', message: `no vtepd answers on ${sock} (ENOENT); is it running? (--socket PATH or --config FILE)` },
      });
    }
  });

  it('-h is --human on stats and peers (as ip -s -h), --help still helps; elsewhere -h is help', async () => {
    for (const verb of ['stats', 'peers']) {
      const help = await vtepd([verb, '--help']);
      expect(help.stdout).toMatch(/-h, --human\s+byte counts in K, M, G/);
      expect((await vtepd([verb, '-h', '-s', join(dir, 'x.sock')])).stderr).toContain('no vtepd answers');
    }
    expect((await vtepd(['status', '-h'])).stdout).toMatch(/^Usage: vtepd status/);
  });

  it('flags checked before anything is asked: --vni, a log level, two tenants', async () => {
    expect((await vtepd(['fdb', 'show', '--vni', 'abc'])).stderr).toContain('--vni: must be an integer 1..16777215, not "abc"');
    expect((await vtepd(['log', 'level', 'loud'])).stderr).toContain("'loud' is invalid for argument 'level'. Allowed choices are fatal, error, warn");
    const two = await vtepd(['fdb', 'show', 'blue', '--tenant', 'red', '--json']);
    expect(two.code).toBe(1);
    expect(JSON.parse(two.stdout).error.message).toBe('fdb show: two tenants given (blue and --tenant red)');
  });

  it('JSON log lines carry ISO 8601 times', async () => {
    const js = `import(${JSON.stringify(join(ROOT, 'dist', 'src', 'util', 'log.js'))}).then((m) => m.logger('test').warn('hello'))`;
    const r = await nodeEnv(['--input-type=module', '-e', js], { VTEPD_LOG_FORMAT: 'json', VTEPD_LOG: '' });
    const rec = JSON.parse(r.stderr.trim()) as { time: string; msg: string };
    expect(rec.msg).toBe('hello');
    expect(rec.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});

describe("a daemon's refusal about a field, said by the flag typed", { timeout: 60_000 }, () => {
  let dir: string;
  let srv: ControlServer;
  beforeAll(async () => {
    ensureBuilt(['src/cli/cli.ts']);
    dir = mkdtempSync(join(tmpdir(), 'vtepd-flags-'));
    // A stand-in daemon that refuses each call by the field it names.
    const refuse = (m: string) => () => {
      throw new ApiError(m);
    };
    srv = new ControlServer({
      'fdb.add': refuse('tenant: must be a string'),
      'fdb.show': refuse('port: no port "x0"'),
      'port.add': refuse('mac: must be a unicast MAC like 02:00:00:00:01:01'),
      stats: refuse('tenant: unknown'),
    });
    await srv.listen(join(dir, 'sock'));
  });
  afterAll(async () => {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('-t/--tenant, --port, --mac as the verb spells them; a verb without the flag keeps the field; --json the daemon’s words', async () => {
    const s = ['-s', join(dir, 'sock')];
    expect((await vtepd(['fdb', 'add', '-t', 'blue', '-m', '02:00:00:00:01:01', '--port', 'x0', ...s])).stderr).toBe('vtepd: -t/--tenant: must be a string\n');
    expect((await vtepd(['fdb', 'show', '--port', 'x0', ...s])).stderr).toBe('vtepd: --port: no port "x0"\n');
    expect((await vtepd(['port', 'add', '--net', 'a/b', '--tap', 't0', '--mac', '01:00:00:00:00:01', ...s])).stderr).toBe(
      'vtepd: --mac: must be a unicast MAC like 02:00:00:00:01:01\n',
    );
    expect((await vtepd(['stats', ...s])).stderr).toBe('vtepd: tenant: unknown\n');
    const j = await vtepd(['fdb', 'show', '--port', 'x0', '--json', ...s]);
    expect(JSON.parse(j.stdout)).toEqual({ ok: false, error: { code: 'EINVAL', message: 'port: no port "x0"' } });
  });
});
