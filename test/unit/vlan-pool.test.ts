/**
 * VLAN pools on trunks (src/ports/vlan-pool.ts): the allocation rules (lowest free ID, kept
 * when held, freed when the tenant goes, fixed IDs never handed out, a full pool refuses by
 * name), and the state file without a directory: a restart is a new store over the same
 * file, a crash mid-write leaves the old file whole (a process killed by PID while it
 * writes). The etcd store against a real etcd: test/native/vlan-pool-etcd.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../lab/wait.js';
import type { TrunkConfig } from '../../src/config/config.js';
import { allocate, FileVlanPoolStore, type PoolRequest, poolRequestOf, type VlanRange, vlanStateFileOf } from '../../src/ports/vlan-pool.js';
import { ensureBuilt, ROOT } from '../support/built-cli.js';

const POOL: VlanRange = { first: 100, last: 199 };
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function stateFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'vtepd-vlanpool-'));
  dirs.push(d);
  return join(d, 'vtepd.vlans.json');
}
const eth1 = (tenants: string[], pool = POOL, fixed: number[] = []): PoolRequest => ({
  trunk: { attach: 'eth1', netns: null },
  pool,
  fixed: new Set(fixed),
  tenants,
});
const obj = (m: Map<string, number>) => Object.fromEntries(m);

describe('VLAN pool: the allocation rules', () => {
  it('new tenants get the lowest free IDs in config order; fixed IDs are skipped', () => {
    expect(obj(allocate(POOL, new Set(), new Map(), ['blue', 'red', 'green']).vlans)).toEqual({ blue: 100, red: 101, green: 102 });
    expect(obj(allocate(POOL, new Set([100, 102, 300]), new Map(), ['blue', 'red', 'green']).vlans)).toEqual({ blue: 101, red: 103, green: 104 });
  });

  it('a tenant that holds an ID keeps it; a gone tenant frees its ID for the next new one', () => {
    const held = new Map([
      ['blue', 100],
      ['red', 101],
      ['green', 102],
    ]);
    const out = allocate(POOL, new Set(), held, ['green', 'blue', 'yellow', 'purple']);
    expect(obj(out.vlans)).toEqual({ green: 102, blue: 100, yellow: 101, purple: 103 });
    expect([...out.vlans.keys()]).toEqual(['green', 'blue', 'yellow', 'purple']);
  });

  it('a held ID that is now fixed on the trunk, or outside the pool, is replaced', () => {
    const held = new Map([
      ['blue', 100],
      ['red', 250],
    ]);
    expect(obj(allocate(POOL, new Set([100]), held, ['blue', 'red']).vlans)).toEqual({ blue: 101, red: 102 });
  });

  it('a full pool refuses each tenant left over by name, with its range; the others are assigned', () => {
    const out = allocate({ first: 10, last: 12 }, new Set([11]), new Map(), ['a', 'b', 'c', 'a']);
    expect(obj(out.vlans)).toEqual({ a: 10, b: 12 });
    expect(out.refused.map((e) => [e.code, e.tenant, e.message])).toEqual([
      ['pool-full', 'c', 'no free VLAN ID for tenant c: the pool 10-12 is full (3 IDs: 2 held by tenants, 1 fixed on the trunk)'],
    ]);
  });

  it('poolRequestOf reads a trunk of the config', () => {
    const t: TrunkConfig = {
      attach: 'eth1',
      netns: 'tor',
      vlans: [{ vlan: 100, tenant: 'blue' }],
      native: null,
      pool: { first: 100, last: 199 },
      tenants: ['red'],
    };
    expect(poolRequestOf(t)).toEqual({ trunk: { attach: 'eth1', netns: 'tor' }, pool: POOL, fixed: new Set([100]), tenants: ['red'] });
    expect(poolRequestOf({ ...t, pool: null })).toBeNull();
  });
});

describe('VLAN pool: the state file', () => {
  // The writer that is killed runs the compiled module.
  beforeAll(() => ensureBuilt(['src/ports/vlan-pool.ts']), 120_000);

  it('lives next to the control socket', () => {
    expect(vlanStateFileOf('/run/vtepd/vtepd.sock')).toBe('/run/vtepd/vtepd.vlans.json');
  });

  it('three tenants get 100, 101, 102; after a restart and a deleted tenant the IDs stay and the freed one is reused', async () => {
    const file = stateFile();
    const first = await new FileVlanPoolStore(file).assign(eth1(['blue', 'red', 'green']));
    expect(obj(first.vlans)).toEqual({ blue: 100, red: 101, green: 102 });
    // A restart: a new store over the same file. red is deleted, then yellow comes.
    const again = new FileVlanPoolStore(file);
    expect(obj((await again.assign(eth1(['blue', 'red', 'green']))).vlans)).toEqual({ blue: 100, red: 101, green: 102 });
    expect(obj((await again.assign(eth1(['blue', 'green']))).vlans)).toEqual({ blue: 100, green: 102 });
    expect(obj((await new FileVlanPoolStore(file).assign(eth1(['blue', 'green', 'yellow']))).vlans)).toEqual({ blue: 100, green: 102, yellow: 101 });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      v: 1,
      trunks: { 'eth1 100-199': { attach: 'eth1', netns: null, first: 100, last: 199, vlans: { blue: 100, green: 102, yellow: 101 } } },
    });
  });

  it('keys by trunk (interface and namespace) and range: other trunks keep theirs; a new range starts afresh', async () => {
    const file = stateFile();
    const s = new FileVlanPoolStore(file);
    await s.assign(eth1(['blue', 'red']));
    const other: PoolRequest = { trunk: { attach: 'eth1', netns: 'tor2' }, pool: POOL, fixed: new Set(), tenants: ['red'] };
    expect(obj((await s.assign(other)).vlans)).toEqual({ red: 100 });
    expect(obj((await s.assign(eth1(['blue', 'red'], { first: 200, last: 299 }))).vlans)).toEqual({ blue: 200, red: 201 });
    expect(s.entries().map((e) => [e.netns, e.attach, e.first, e.vlans])).toEqual([
      ['tor2', 'eth1', 100, { red: 100 }],
      [null, 'eth1', 200, { blue: 200, red: 201 }],
    ]);
    // A trunk that leaves the config: released with no tenants.
    await s.assign({ ...other, tenants: [] });
    expect(s.entries().map((e) => e.netns)).toEqual([null]);
  });

  it('a file that is not a pool state file is refused with its path, and left alone', async () => {
    const file = stateFile();
    writeFileSync(file, '{"ports": []}\n');
    await expect(new FileVlanPoolStore(file).assign(eth1(['blue']))).rejects.toMatchObject({
      code: 'state-file',
      message: `VLAN pool state ${file}: not a vtepd VLAN pool file (v 1)`,
    });
    writeFileSync(file, '{"v": 1, "trunks": {"eth1 100-1');
    await expect(new FileVlanPoolStore(file).assign(eth1(['blue']))).rejects.toThrow(`VLAN pool state ${file}: not JSON`);
    expect(readFileSync(file, 'utf8')).toBe('{"v": 1, "trunks": {"eth1 100-1');
  });

  it('a write cut short leaves only its temporary file: the state is the last whole one', async () => {
    const file = stateFile();
    await new FileVlanPoolStore(file).assign(eth1(['blue', 'red']));
    writeFileSync(`${file}.99999.tmp`, '{"v": 1, "trunks": {"eth1 100-199": {"vlans": {"blue": 1');
    expect(obj((await new FileVlanPoolStore(file).assign(eth1(['blue', 'red', 'green']))).vlans)).toEqual({ blue: 100, red: 101, green: 102 });
  });

  it('a process killed by PID in the middle of a write leaves the last whole state', async () => {
    const mod = join(ROOT, 'dist', 'src', 'ports', 'vlan-pool.js');
    const file = stateFile();
    // 300 tenants on a pool of 300 IDs; the writer alternates between two sets, forever.
    const script = `
      const { FileVlanPoolStore } = await import(${JSON.stringify(mod)});
      const s = new FileVlanPoolStore(${JSON.stringify(file)});
      const a = Array.from({ length: 300 }, (_, i) => 'tenant-' + i);
      const b = a.map((t, i) => (i % 2 ? 'other-' + i : t));
      for (let n = 1; ; n++) await s.assign({ trunk: { attach: 'eth1', netns: null }, pool: { first: 1000, last: 1299 }, fixed: new Set(), tenants: n % 2 ? a : b });`;
    /** A write under way: its temporary file exists, or the state file is not whole JSON. */
    const writing = (tmp: string): boolean => {
      if (existsSync(tmp)) return true;
      try {
        JSON.parse(readFileSync(file, 'utf8'));
        return false;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code !== 'ENOENT';
      }
    };
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => {
        err += b.toString();
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await until(`the writer to write ${file} (stderr: ${err})`, async () => existsSync(file));
      // Caught in the act: spin (the event loop is not needed) until a write is under way, then kill.
      const tmp = `${file}.${child.pid}.tmp`;
      const deadline = Date.now() + 20_000;
      let caught = false;
      while (!caught && Date.now() < deadline) caught = writing(tmp);
      process.kill(child.pid!, 'SIGKILL');
      await exited;
      expect(caught, 'a write under way was seen').toBe(true);
      const entries = new FileVlanPoolStore(file).entries();
      expect(entries).toHaveLength(1);
      const ids = Object.values(entries[0]!.vlans);
      expect(ids).toHaveLength(300);
      expect(new Set(ids).size).toBe(300);
      expect(ids.every((v) => v >= 1000 && v <= 1299)).toBe(true);
    }
  }, 90_000);
});
