/**
 * Ports attached at runtime (`vtepd port add`, src/ports/dynamic.ts): where a port goes (the
 * config's tenant of its VNI, else a tenant named after the network with the schema's
 * defaults), the checks and their codes, the merge into the next config that keeps them
 * across a reload, the state file; and the Daemon over the fake data path with a directory
 * (join on attach, leave on detach, status, reload keeps, a config tenant that appears or goes
 * with their VNI takes them in or gives them back), and the API's refusals.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Config, PortConfig } from '../../src/config/config.js';
import { parseConfig } from '../../src/config/load.js';
import { apiHandlers, type ApiHost } from '../../src/daemon/api.js';
import { ApiError, type CallContext } from '../../src/daemon/control.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { StaticDirectory } from '../../src/directory/directory.js';
import { placeDynamic, PortError, readDynamicState, stateFileOf, withDynamic, writeDynamicState, type DynamicPort } from '../../src/ports/dynamic.js';
import type { PortBackend, PortHandle } from '../../src/ports/tap.js';
import { FakeDatapath } from '../support/fake-datapath.js';

function cfg(text: string): Config {
  const r = parseConfig(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.config;
}
const DIR = 'directory: { etcd: { endpoints: [ "http://127.0.0.1:1" ] } }';
const BASE = `underlay: { local: 10.0.0.1 }
${DIR}
tenants:
  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ], learning: false, ageing: 60 }
`;
const WEB: DynamicPort = { net: 'acme/web', vni: 5003, tap: 'web0', address: '10.2.0.1/24', mac: '02:00:00:00:03:01' };

function refusal(f: () => unknown): PortError {
  try {
    f();
  } catch (e) {
    if (e instanceof PortError) return e;
    throw e;
  }
  throw new Error('expected a PortError');
}

describe('placeDynamic and withDynamic', () => {
  it("a network without a config tenant gets a tenant of its own, with the schema's defaults", () => {
    const c = cfg(BASE);
    const { tenant, created, port } = placeDynamic(c, WEB);
    expect(created).toBe(true);
    expect(tenant).toMatchObject({
      name: 'acme/web',
      vni: 5003,
      encap: 'vxlan',
      flood: [],
      fdb: [],
      learning: true,
      learnFromUnderlay: false, // a directory's: remote MACs come from it
      ageing: 300,
      maxMacs: 8192,
      acceptFrom: 'known',
      encryption: 'off',
      ports: [],
    });
    expect(port).toEqual({
      tap: 'web0',
      kind: 'tap',
      netns: null,
      address: { address: '10.2.0.1', prefixLength: 24, family: 4 },
      mac: '02:00:00:00:03:01',
      mtu: 1450,
      vlan: null,
    });
  });

  it("a network whose VNI a config tenant has joins that tenant (its MTU from that tenant's encapsulation)", () => {
    const c = cfg(`${BASE}  - { name: gre, vni: 5003, encap: gre }\n`);
    const { tenant, created, port } = placeDynamic(c, { net: 'acme/web', vni: 5003, tap: 'web0' });
    expect(created).toBe(false);
    expect(tenant.name).toBe('gre');
    expect(port.mtu).toBe(1500 - 42);
    expect(placeDynamic(c, { net: 'acme/web', vni: 5003, tap: 'web0', mtu: 1300 }).port.mtu).toBe(1300);
  });

  it('refuses a bad field with a message naming it, code invalid', () => {
    const c = cfg(BASE);
    const bad = (x: Partial<DynamicPort>) => refusal(() => placeDynamic(c, { ...WEB, ...x }));
    expect(bad({ address: '10.2.0.1' })).toMatchObject({
      code: 'invalid',
      message: 'address: must be an IPv4 or IPv6 address with a prefix length, like 10.1.0.1/24',
    });
    expect(bad({ address: '10.2.0.0/24' }).message).toBe('address: 10.2.0.0 is the network address of 10.2.0.0/24; use a host address in it');
    expect(bad({ mac: '01:00:00:00:00:01' }).message).toBe('mac: must be a unicast MAC like 02:00:00:00:01:01; 01:00:00:00:00:01 is multicast');
    expect(bad({ mac: 'nope' }).message).toBe('mac: must be a unicast MAC like 02:00:00:00:01:01');
    expect(bad({ tap: 'a/b' }).message).toMatch(/^tap: must be a Linux interface name/);
    expect(bad({ tap: 'x'.repeat(16) }).message).toMatch(/^tap: /);
    expect(bad({ mtu: 10 }).message).toBe('mtu: must be an integer 68..65535');
    expect(bad({ netns: '../x' }).message).toMatch(/^netns: /);
    expect(bad({ address: '2001:db8::5/64', mtu: 1200 }).message).toMatch(/^mtu: an IPv6 address needs a port MTU of at least 1280/);
  });

  it('merges into the next config; a TAP name the config now uses itself drops the dynamic port', () => {
    const c = cfg(BASE);
    const m = withDynamic(c, [WEB, { net: 'acme/db', vni: 5001, tap: 'db0' }]);
    expect(m.dropped).toEqual([]);
    expect(m.config.tenants.map((t) => [t.name, t.ports.map((p) => p.tap)])).toEqual([
      ['blue', ['blue0', 'db0']],
      ['acme/web', ['web0']],
    ]);
    expect(c.tenants).toHaveLength(1); // pure
    const clash = withDynamic(cfg(BASE.replace('tap: blue0', 'tap: web0')), [WEB]);
    expect(clash.dropped).toEqual([{ rec: WEB, why: 'tenant blue of the config has a port web0' }]);
  });

  it('the state file: written atomically next to the control socket, read back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtepd-dyn-'));
    try {
      const file = stateFileOf(join(dir, 'h1.sock'));
      expect(file).toBe(join(dir, 'h1.ports.json'));
      expect(stateFileOf('/run/vtepd/vtepd.sock')).toBe('/run/vtepd/vtepd.ports.json');
      expect(readDynamicState(file)).toEqual([]);
      writeDynamicState(file, [WEB]);
      expect(readDynamicState(file)).toEqual([WEB]);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ v: 1, ports: [WEB] });
      writeFileSync(file, '{"v": 2}');
      expect(() => readDynamicState(file)).toThrow(/not a vtepd ports file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- the daemon over the fake data path -----------------------------------------------------

class FakePorts implements PortBackend {
  next = 100;
  readonly open_: string[] = [];
  async open(_tenant: string, p: PortConfig): Promise<PortHandle> {
    if (p.tap === 'fail0') throw new Error('TUNSETIFF: EBUSY');
    this.open_.push(p.tap);
    return { fd: -1, ifindex: this.next++, mac: p.mac ?? '02:aa:00:00:00:01' };
  }
  close(p: { tap: string }): void {
    this.open_.splice(this.open_.indexOf(p.tap), 1);
  }
  async change(): Promise<void> {}
}

async function daemon(text = BASE) {
  const dir = new StaticDirectory(4789);
  const ports = new FakePorts();
  const saved: DynamicPort[][] = [];
  const d = await Daemon.start(cfg(text), {
    dp: new FakeDatapath(),
    ports,
    maxMacsTotal: 1000,
    directory: dir,
    hooks: { dynamicPorts: (p) => saved.push(p) },
  });
  return { d, dir, ports, saved };
}
const tenants = (d: Daemon) => d.status().tenants.map((t) => `${t.name}:${t.vni}:${t.ports.join(',')}`);

describe('Daemon: ports attached at runtime', () => {
  it('attach joins the VNI, status marks the port, reload keeps it, detach leaves the VNI and removes the tenant', async () => {
    const { d, dir, ports, saved } = await daemon();
    try {
      const r = await d.attachPort(WEB);
      expect(r).toMatchObject({ tenant: 'acme/web', created: true, port: { tap: 'web0', mac: '02:00:00:00:03:01', mtu: 1450 } });
      expect(dir.status().joined).toEqual([5001, 5003]);
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'acme/web:5003:web0']);
      expect(d.status().ports.map((p) => [p.tap, p.net])).toEqual([
        ['blue0', null],
        ['web0', 'acme/web'],
      ]);
      expect(saved).toEqual([[WEB]]);
      expect(d.dynamicPorts()).toEqual([{ ...WEB, kind: 'tap', waiting: false, tenant: 'acme/web', ifindex: 101, mac: '02:00:00:00:03:01', mtu: 1450 }]);
      // The same TAP again, or a config port's name: refused.
      await expect(d.attachPort({ ...WEB, net: 'acme/db', vni: 5004 })).rejects.toMatchObject({
        code: 'exists',
        message: 'tap: web0 is already a port (tenant acme/web)',
      });
      await expect(d.attachPort({ ...WEB, tap: 'blue0' })).rejects.toMatchObject({ code: 'exists' });
      // A TAP that cannot be made leaves nothing behind (no tenant, no membership).
      await expect(d.attachPort({ net: 'acme/x', vni: 5009, tap: 'fail0' })).rejects.toThrow('EBUSY');
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'acme/web:5003:web0']);
      expect(dir.status().joined).toEqual([5001, 5003]);

      // Reload from the file (which knows nothing of web0): nothing changes.
      const same = await d.reload(cfg(BASE));
      expect(same).toMatchObject({ ok: true, changes: [] });
      expect(d.planReload(cfg(BASE)).changes).toEqual([]);
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'acme/web:5003:web0']);
      // A reload that changes something else keeps it too.
      expect((await d.reload(cfg(BASE.replace('ageing: 60', 'ageing: 90')))).changes).toEqual(['tenant blue: ageing 60s -> 90s']);
      expect(ports.open_).toEqual(['blue0', 'web0']);

      // Detach: the tenant made for it goes, the host leaves VNI 5003.
      await expect(d.detachPort('web0', 'acme/db')).rejects.toMatchObject({ code: 'invalid', message: 'net: port web0 is in acme/web, not acme/db' });
      await expect(d.detachPort('blue0')).rejects.toMatchObject({
        code: 'not-found',
        message: 'tap: blue0 is a port of the config (tenant blue): remove it there and reload',
      });
      expect(await d.detachPort('web0', 'acme/web')).toMatchObject({ tenant: 'acme/web', tenantRemoved: true });
      expect(dir.status().joined).toEqual([5001]);
      expect(tenants(d)).toEqual(['blue:5001:blue0']);
      expect(ports.open_).toEqual(['blue0']);
      expect(saved.at(-1)).toEqual([]);
      expect(d.running.tenants.map((t) => t.name)).toEqual(['blue']);
      await expect(d.detachPort('web0')).rejects.toMatchObject({ code: 'not-found', message: 'tap: no port web0 was attached by port add' });
    } finally {
      d.close();
    }
  });

  it('a config tenant that appears with the VNI takes the port in; when it goes, the port gets its own tenant back', async () => {
    const { d, dir } = await daemon();
    try {
      await d.attachPort(WEB);
      const withWeb = `${BASE}  - { name: web, vni: 5003, learning: false }\n`;
      const r = await d.reload(cfg(withWeb));
      expect(r.ok).toBe(true);
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'web:5003:web0']);
      expect(d.status().tenants.find((t) => t.name === 'web')?.learning).toBe(false);
      expect(dir.status().joined).toEqual([5001, 5003]);
      // Detach from a config tenant: the tenant stays (the file has it), the host leaves the VNI.
      await d.attachPort({ net: 'acme/web', vni: 5003, tap: 'web1' });
      expect(await d.detachPort('web1')).toMatchObject({ tenant: 'web', tenantRemoved: false });
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'web:5003:web0']);
      // The file drops tenant web: web0 is back in a tenant of its own.
      expect((await d.reload(cfg(BASE))).ok).toBe(true);
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'acme/web:5003:web0']);
      expect(dir.status().joined).toEqual([5001, 5003]);
      // The file now has a port web0 itself: the file wins, the dynamic one is dropped.
      const r2 = await d.reload(cfg(BASE.replace('ports: [ { tap: blue0 } ]', 'ports: [ { tap: blue0 }, { tap: web0 } ]')));
      expect(r2.ok).toBe(true);
      expect(tenants(d)).toEqual(['blue:5001:blue0,web0']);
      expect(d.dynamicPorts()).toEqual([]);
      expect(dir.status().joined).toEqual([5001]);
    } finally {
      d.close();
    }
  });

  it('a daemon started with dynamic ports (restart, takeover) has them, and a reload keeps them', async () => {
    const merged = withDynamic(cfg(BASE), [WEB]).config;
    const dir = new StaticDirectory(4789);
    const d = await Daemon.start(merged, { dp: new FakeDatapath(), ports: new FakePorts(), maxMacsTotal: 1000, directory: dir, dynamic: [WEB] });
    try {
      expect(tenants(d)).toEqual(['blue:5001:blue0', 'acme/web:5003:web0']);
      expect(d.status().ports.find((p) => p.tap === 'web0')?.net).toBe('acme/web');
      expect((await d.reload(cfg(BASE))).changes).toEqual([]);
      expect(dir.status().joined).toEqual([5001, 5003]);
    } finally {
      d.close();
    }
  });
});

describe('API: port.add refusals before anything is attached', () => {
  const ctx = {} as CallContext;
  const call = async (host: ApiHost, method: string, p: Record<string, unknown>) => {
    try {
      await apiHandlers(host)[method]!(p, ctx);
    } catch (e) {
      if (e instanceof ApiError) return { code: e.code, message: e.message };
      throw e;
    }
    throw new Error('expected a refusal');
  };
  it('no directory, a bad net name, a bad field, a missing namespace', async () => {
    const bare = { daemon: { running: cfg(BASE.replace(`${DIR}\n`, '')) } } as unknown as ApiHost;
    expect(await call(bare, 'port.add', { net: 'acme/web', tap: 'web0' })).toEqual({
      code: 'ENODIRECTORY',
      message: 'port: this daemon has no directory (directory: in its config)',
    });
    const host = { daemon: { running: cfg(BASE) } } as unknown as ApiHost;
    expect(await call(host, 'port.add', { net: 'web', tap: 'web0' })).toEqual({ code: 'invalid', message: 'net: must be TENANT/NAME like acme/web' });
    expect(await call(host, 'port.add', { net: 'acme/we b', tap: 'web0' })).toEqual({
      code: 'invalid',
      message: 'net: name: must be 1..32 characters of A-Z a-z 0-9 _ . -',
    });
    expect(await call(host, 'port.add', { net: 'acme/web' })).toEqual({ code: 'EINVAL', message: 'tap: is required' });
    expect(await call(host, 'port.add', { net: 'acme/web', tap: 'web0', mtu: 'big' })).toEqual({
      code: 'invalid',
      message: 'mtu: must be an integer 68..65535',
    });
    expect(await call(host, 'port.add', { net: 'acme/web', tap: 'web0', address: '10.2.0.1' })).toMatchObject({
      code: 'invalid',
      message: expect.stringMatching(/^address: /),
    });
    expect(await call(host, 'port.add', { net: 'acme/web', tap: 'web0', netns: 'vtepd-no-such-ns' })).toEqual({
      code: 'no-netns',
      message: 'netns: no network namespace vtepd-no-such-ns (/run/netns/vtepd-no-such-ns)',
    });
  });
});

// ---- a config tenant's attached interface (#16: port add --tenant blue --attach vnet7) --------------

const VNET: DynamicPort = { tenant: 'blue', vni: 1, tap: 'vnet7', kind: 'attach' };

/** A backend whose attached interfaces exist only once `present` has them (else ENODEV, as the addon says). */
class HypervisorPorts extends FakePorts {
  readonly present = new Set<string>();
  override async open(tenant: string, p: PortConfig): Promise<PortHandle> {
    if (p.kind === 'attach' && !this.present.has(p.tap)) throw Object.assign(new Error(`attach ${p.tap}: No such device`), { code: 'ENODEV' });
    return super.open(tenant, p);
  }
}

describe('ports of a config tenant, attached at runtime', () => {
  it("joins the tenant by name with its VNI and MTU; an unknown tenant or a TAP's fields are refused", () => {
    const c = cfg(`${BASE}  - { name: gre, vni: 5003, encap: gre }\n`);
    const { tenant, created, port } = placeDynamic(c, { ...VNET, tenant: 'gre' });
    expect([tenant.name, created, port.kind, port.tap, port.mtu]).toEqual(['gre', false, 'attach', 'vnet7', 1458]);
    const e = refusal(() => placeDynamic(c, { ...VNET, tenant: 'red' }));
    expect([e.code, e.message]).toEqual(['not-found', 'tenant: no tenant red in the config (it has blue, gre)']);
    expect(refusal(() => placeDynamic(c, { ...VNET, address: '10.1.0.9/24' })).message).toMatch(/^address: not for an attached port/);
  });

  it('a reload whose file drops the tenant drops the port, with why; the state file keeps tenant ports', () => {
    const m = withDynamic(cfg(BASE), [VNET]);
    expect(m.config.tenants[0]!.ports.map((p) => [p.tap, p.kind])).toEqual([
      ['blue0', 'tap'],
      ['vnet7', 'attach'],
    ]);
    const gone = withDynamic(cfg(BASE.replace('name: blue', 'name: red')), [VNET]);
    expect(gone.dropped).toEqual([{ rec: VNET, why: 'tenant: no tenant blue in the config (it has red)' }]);
    const dir = mkdtempSync(join(tmpdir(), 'vtepd-dyn-'));
    try {
      const file = join(dir, 'h1.ports.json');
      writeDynamicState(file, [VNET, WEB]);
      expect(readDynamicState(file)).toEqual([VNET, WEB]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('attaches without a directory, waits for a missing interface, says in a reload what it kept, and detaches', async () => {
    const ports = new HypervisorPorts();
    const saved: DynamicPort[][] = [];
    const text = BASE.replace(`${DIR}\n`, '');
    const d = await Daemon.start(cfg(text), { dp: new FakeDatapath(), ports, maxMacsTotal: 1000, hooks: { dynamicPorts: (p) => saved.push(p) } });
    try {
      ports.present.add('vnet7');
      const r = await d.attachPort({ ...VNET });
      expect([r.tenant, r.created, r.port?.tap, r.port?.config.kind]).toEqual(['blue', false, 'vnet7', 'attach']);
      expect(d.status().ports.map((p) => [p.tap, p.kind, p.net])).toEqual([
        ['blue0', 'tap', null],
        ['vnet7', 'attach', 'tenant blue'],
      ]);
      await expect(d.attachPort({ ...VNET })).rejects.toThrow('attach: vnet7 is already a port (tenant blue)');
      await expect(d.attachPort({ ...VNET, tenant: 'red' })).rejects.toThrow(/already a port/);
      await expect(d.attachPort({ ...VNET, tap: 'vnet8', tenant: 'red' })).rejects.toThrow('tenant: no tenant red in the config (it has blue)');
      // Not there yet (the VM not started): kept, waiting, not an error.
      const w = await d.attachPort({ ...VNET, tap: 'vnet8' });
      expect(w.port).toBeNull();
      expect(d.dynamicPorts().map((p) => [p.tap, p.kind, p.waiting, p.tenant])).toEqual([
        ['vnet7', 'attach', false, 'blue'],
        ['vnet8', 'attach', true, 'blue'],
      ]);
      expect(saved.at(-1)!.map((p) => p.tap)).toEqual(['vnet7', 'vnet8']);
      const rl = await d.reload(cfg(text));
      expect(rl.changes).toEqual([]);
      expect(rl.runtimePorts).toEqual({ kept: ['vnet7 (tenant blue)', 'vnet8 (tenant blue)'], dropped: [] });
      // A reload that changes the waiting port (its MTU, from blue's encapsulation): applied to the port it waits to bring back.
      const gre = await d.reload(cfg(text.replace('learning: false', 'learning: false, encap: gre')));
      expect([gre.ok, gre.failed]).toEqual([true, []]);
      await expect(d.detachPort('vnet7', undefined, 'tap')).rejects.toThrow('tap: port vnet7 is an attached interface (port del --attach)');
      expect((await d.detachPort('vnet8', undefined, 'attach')).tenant).toBe('blue'); // a waiting one too
      expect((await d.detachPort('vnet7', undefined, 'attach')).tenantRemoved).toBe(false);
      expect(ports.open_).toEqual(['blue0']);
      expect(saved.at(-1)).toEqual([]);
    } finally {
      d.close();
    }
  });

  it('a daemon started with a port whose interface is missing waits for it, whether attached at runtime or in the config', async () => {
    const text = BASE.replace(`${DIR}\n`, '');
    const merged = withDynamic(cfg(text), [VNET]).config;
    const d = await Daemon.start(merged, { dp: new FakeDatapath(), ports: new HypervisorPorts(), maxMacsTotal: 1000, dynamic: [VNET] });
    try {
      expect(d.dynamicPorts().map((p) => [p.tap, p.waiting])).toEqual([['vnet7', true]]);
    } finally {
      d.close();
    }
    const fromConfig = cfg(text.replace('ports: [ { tap: blue0 } ]', 'ports: [ { tap: blue0 }, { attach: vnet7 } ]'));
    const c = await Daemon.start(fromConfig, { dp: new FakeDatapath(), ports: new HypervisorPorts(), maxMacsTotal: 1000 });
    try {
      expect(c.status().ports.map((p) => [p.tap, p.kind, 'waiting' in p && p.waiting === true])).toEqual([
        ['blue0', 'tap', false],
        ['vnet7', 'attach', true],
      ]);
    } finally {
      c.close();
    }
  });
});
