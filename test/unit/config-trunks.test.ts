/**
 * The config of VLAN trunks and tagged ports (#15): `trunks:` and a port's `vlan:`, as
 * parseConfig normalizes them (a tagged attached port merged into the trunk of its
 * interface) and every error, with its exact path and words, as `vtepd check` prints it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';
import { errors, ok } from '../support/config-text.js';

/** Tenants blue (5001), red (5002), green (5003), orange (5004), each with `ports[name]` if given, then `rest` (top-level lines). */
function config(ports: Record<string, string>, ...rest: string[]): string {
  const tenants = ['blue', 'red', 'green', 'orange'].map((name, i) => {
    const p = ports[name] ? `, ports: ${ports[name]}` : '';
    return `  - { name: ${name}, vni: ${5001 + i}${p} }`;
  });
  return ['underlay: { local: 10.0.0.1 }', 'tenants:', ...tenants, ...rest].join('\n');
}
/** `config` with one trunk entry (its lines, indented under `- `). */
const trunk = (ports: Record<string, string>, ...lines: string[]) => config(ports, 'trunks:', ...lines.map((l, i) => `${i === 0 ? '  - ' : '    '}${l}`));

/** A trunk entry of `attach` with only these VLANs. */
const vlansOnly = (attach: string, ...vlans: [number, string][]) => ({
  attach,
  netns: null,
  vlans: vlans.map(([vlan, tenant]) => ({ vlan, tenant })),
  native: null,
  pool: null,
  tenants: [],
});

describe('trunks: normalized', () => {
  it('no trunks is [], and every port says vlan: null unless it has one', () => {
    const c = ok(config({ blue: '[ { tap: blue0 }, { attach: eth1 } ]' }));
    expect(c.trunks).toEqual([]);
    expect(c.tenants[0]!.ports.map((p) => p.vlan)).toEqual([null, null]);
  });

  it('a trunk entry: vlans as [{ vlan, tenant }] by VLAN ID, native, pool { first, last }, tenants; absent keys null or []', () => {
    const c = ok(
      config(
        {},
        'trunks:',
        '  - { attach: eth1, netns: rack1, vlans: { 200: red, 100: blue }, native: green, pool: 300-399, tenants: [ orange ] }',
        '  - { attach: eth2 }',
        '  - { attach: eth3, pool: 7, tenants: [ blue ] }',
      ),
    );
    expect(c.trunks).toEqual([
      {
        attach: 'eth1',
        netns: 'rack1',
        vlans: [
          { vlan: 100, tenant: 'blue' },
          { vlan: 200, tenant: 'red' },
        ],
        native: 'green',
        pool: { first: 300, last: 399 },
        tenants: ['orange'],
      },
      vlansOnly('eth2'),
      { attach: 'eth3', netns: null, vlans: [], native: null, pool: { first: 7, last: 7 }, tenants: ['blue'] },
    ]);
  });

  it('a tagged attached port leaves its tenant’s ports for the trunk of its interface: merged into its entry, or a new one after them', () => {
    const c = ok(
      trunk(
        { blue: '[ { tap: blue0 }, { attach: eth1, vlan: 300 } ]', red: '[ { attach: eth2, vlan: 200 } ]', green: '[ { attach: eth2, vlan: 100 } ]' },
        'attach: eth1',
        'vlans: { 100: red }',
      ),
    );
    expect(c.tenants.map((t) => t.ports.map((p) => p.tap))).toEqual([['blue0'], [], [], []]);
    expect(c.trunks).toEqual([vlansOnly('eth1', [100, 'red'], [300, 'blue']), vlansOnly('eth2', [100, 'green'], [200, 'red'])]);
  });

  it('the two ways of docs/configuration.md are one config', () => {
    const ports = ok(config({ blue: '[ { attach: eth1, vlan: 100 } ]', red: '[ { attach: eth1, vlan: 200 } ]' }));
    const entry = ok(config({}, 'trunks:', '  - { attach: eth1, vlans: { 100: blue, 200: red } }'));
    expect(ports).toEqual(entry);
  });

  it('netns tells interfaces apart: eth1 here and eth1 in rack1 are two trunks, and a TAP or an untagged eth1 elsewhere is no conflict', () => {
    const c = ok(
      trunk(
        { blue: '[ { attach: eth1, vlan: 100 } ]', red: '[ { attach: eth1, netns: rack1, vlan: 100 }, { tap: eth9 } ]', green: '[ { attach: eth2 } ]' },
        'attach: eth2',
        'netns: rack2',
        'vlans: { 100: orange }',
      ),
    );
    expect(c.trunks.map((t) => [t.attach, t.netns, t.vlans])).toEqual([
      ['eth2', 'rack2', [{ vlan: 100, tenant: 'orange' }]],
      ['eth1', null, [{ vlan: 100, tenant: 'blue' }]],
      ['eth1', 'rack1', [{ vlan: 100, tenant: 'red' }]],
    ]);
    expect(c.tenants[2]!.ports).toMatchObject([{ tap: 'eth2', kind: 'attach', vlan: null }]);
  });

  it('a TAP with vlan: stays a port of its tenant, with its VLAN ID', () => {
    const c = ok(config({ blue: '[ { tap: blue0, vlan: 300 } ]', red: '[ { tap: red0, vlan: 300 } ]' }));
    expect(c.trunks).toEqual([]);
    expect(c.tenants.slice(0, 2).map((t) => t.ports.map((p) => [p.tap, p.kind, p.vlan]))).toEqual([[['blue0', 'tap', 300]], [['red0', 'tap', 300]]]);
  });

  it('a VLAN ID given as a quoted key is the same VLAN (keys of a YAML mapping are read as strings)', () => {
    expect(ok(trunk({}, 'attach: eth1', 'vlans: { "100": blue }')).trunks[0]!.vlans).toEqual([{ vlan: 100, tenant: 'blue' }]);
  });
});

describe('trunks: refused, each at its path with what to do', () => {
  it('a VLAN ID that is not 1..4094: 0 is untagged, 4095 reserved, a word is no ID', () => {
    expect(errors(trunk({}, 'attach: eth1', 'vlans: { 0: blue, 4095: red, 5000: green, abc: orange }'))).toEqual([
      'trunks[0].vlans.0: must be a VLAN ID, an integer 1..4094; 0 is for untagged (priority-tagged) frames: name their tenant under native',
      'trunks[0].vlans.4095: must be a VLAN ID, an integer 1..4094; 4095 is reserved',
      'trunks[0].vlans.5000: must be a VLAN ID, an integer 1..4094',
      'trunks[0].vlans.abc: must be a VLAN ID, an integer 1..4094',
    ]);
    expect(errors(config({ blue: '[ { attach: eth1, vlan: 0 }, { tap: blue0, vlan: 4095 }, { tap: blue1, vlan: "300" } ]' }))).toEqual([
      'tenants[0].ports[0].vlan: must be a VLAN ID, an integer 1..4094; 0 is for untagged (priority-tagged) frames: leave vlan out',
      'tenants[0].ports[1].vlan: must be a VLAN ID, an integer 1..4094; 4095 is reserved',
      'tenants[0].ports[2].vlan: must be a VLAN ID, an integer 1..4094 (received the string "300"; drop the quotes)',
    ]);
  });

  it('a tenant that does not exist, with the one meant', () => {
    expect(errors(trunk({}, 'attach: eth1', 'vlans: { 100: bleu }', 'native: grene', 'pool: 200-299', 'tenants: [ purple ]'))).toEqual([
      'trunks[0].vlans.100: no tenant "bleu" (tenants: blue, red, green, orange; did you mean blue?)',
      'trunks[0].native: no tenant "grene" (tenants: blue, red, green, orange; did you mean green?)',
      'trunks[0].tenants[0]: no tenant "purple" (tenants: blue, red, green, orange)',
    ]);
  });

  it('one VLAN ID twice on an interface: across a trunk entry and tagged ports, naming both places', () => {
    expect(
      errors(
        trunk(
          { blue: '[ { attach: eth1, vlan: 100 } ]', red: '[ { attach: eth2, vlan: 7 } ]', green: '[ { attach: eth2, vlan: 7 } ]' },
          'attach: eth1',
          'vlans: { 100: red }',
        ),
      ),
    ).toEqual([
      'tenants[0].ports[0].vlan: duplicate VLAN 100 on interface "eth1" (also trunks[0].vlans.100)',
      'tenants[2].ports[0].vlan: duplicate VLAN 7 on interface "eth2" (also tenants[1].ports[0].vlan)',
    ]);
  });

  it('one tenant twice on an interface: two VLANs, a VLAN and native, vlans and tenants, two tagged ports', () => {
    expect(
      errors(
        trunk(
          { green: '[ { attach: eth1, vlan: 300 } ]', orange: '[ { attach: eth2, vlan: 1 }, { attach: eth2, vlan: 2 } ]' },
          'attach: eth1',
          'vlans: { 100: blue, 200: blue, 250: red }',
          'native: blue',
          'pool: 400-499',
          'tenants: [ red, green ]',
        ),
      ),
    ).toEqual([
      'tenants[2].ports[0].vlan: tenant "green" is already on interface "eth1" (trunks[0].tenants[1]); a tenant gets one VLAN per trunk',
      'tenants[3].ports[1].vlan: tenant "orange" is already on interface "eth2" (tenants[3].ports[0].vlan); a tenant gets one VLAN per trunk',
      'trunks[0].vlans.200: tenant "blue" is already on interface "eth1" (trunks[0].vlans.100); a tenant gets one VLAN per trunk',
      'trunks[0].native: tenant "blue" is already on interface "eth1" (trunks[0].vlans.100); a tenant gets one VLAN per trunk',
      'trunks[0].tenants[0]: tenant "red" is already on interface "eth1" (trunks[0].vlans.250); a tenant gets one VLAN per trunk',
    ]);
  });

  it('two entries for one interface (name and netns); one name in two namespaces', () => {
    expect(errors(config({}, 'trunks:', '  - { attach: eth1, netns: r1 }', '  - { attach: eth1 }', '  - { attach: eth1, netns: r1 }'))).toEqual([
      "trunks[1].attach: a trunk eth1 in another namespace is trunks[0]: a trunk goes by its interface's name (status, capture --port, trace --in), so trunks in two namespaces need two names",
      'trunks[2].attach: duplicate trunk interface "eth1" in netns r1 (also trunks[0]); give all its VLANs in one entry',
    ]);
  });

  it('an interface that is a trunk and an untagged attached port of the same netns: give it a vlan or make it native', () => {
    const why =
      "where untagged frames are the native VLAN's: give this port a vlan: (its tenant joins the trunk tagged), or make its tenant the trunk's native";
    expect(errors(trunk({ red: '[ { attach: eth1 } ]' }, 'attach: eth1', 'vlans: { 100: blue }'))).toEqual([
      `tenants[1].ports[0].attach: interface "eth1" is a trunk (trunks[0]), ${why}`,
    ]);
    // A trunk made only of tagged ports is one too.
    expect(errors(config({ blue: '[ { attach: eth1, netns: x, vlan: 100 } ]', red: '[ { attach: eth1, netns: x } ]' }))).toEqual([
      `tenants[1].ports[0].attach: interface "eth1" in netns x is a trunk (tenants[0].ports[0]), ${why}`,
    ]);
  });

  it('an interface that is a trunk and the name of a TAP in the same netns', () => {
    expect(errors(trunk({ red: '[ { tap: eth1 }, { tap: eth2, netns: x } ]' }, 'attach: eth1'))).toEqual([
      'tenants[1].ports[0].tap: interface "eth1" is a trunk (trunks[0]): a TAP vtepd creates cannot take its name; pick another tap name',
    ]);
  });

  it('pools: tenants need one; FIRST-LAST within 1..4094, in order', () => {
    expect(errors(trunk({}, 'attach: eth1', 'tenants: [ blue ]'))).toEqual([
      'trunks[0].tenants: these tenants get their VLAN IDs from a pool: add pool: FIRST-LAST (like pool: 100-199), or give each a VLAN under vlans',
    ]);
    const pool = (p: string) => errors(trunk({}, 'attach: eth1', `pool: ${p}`));
    const MSG = 'trunks[0].pool: must be a range of VLAN IDs FIRST-LAST like 100-199, or one VLAN ID';
    expect(pool('199-100')).toEqual([`${MSG}; 199 is above 100 (write 100-199)`]);
    expect(pool('0-10')).toEqual([`${MSG}; VLAN IDs are 1..4094, not 0 (0 is untagged)`]);
    expect(pool('4000-4095')).toEqual([`${MSG}; VLAN IDs are 1..4094, not 4095 (4095 is reserved)`]);
    expect(pool('5000')).toEqual([`${MSG}; VLAN IDs are 1..4094, not 5000`]);
    expect(pool('100..199')).toEqual([MSG]);
    expect(pool('[100, 199]')).toEqual([`${MSG} (received a list)`]);
  });

  it('a pool with fewer free IDs than tenants; IDs given on the interface are not free', () => {
    // 100 and 102 are given, 101 is free: enough for one.
    const fits = ok(
      trunk({ orange: '[ { attach: eth1, vlan: 102 } ]' }, 'attach: eth1', 'vlans: { 100: blue, 300: red }', 'pool: 100-102', 'tenants: [ green ]'),
    );
    expect(fits.trunks[0]).toMatchObject({ pool: { first: 100, last: 102 }, tenants: ['green'] });
    expect(errors(trunk({}, 'attach: eth1', 'vlans: { 100: blue }', 'pool: 100-102', 'tenants: [ red, green, orange ]'))).toEqual([
      'trunks[0].tenants: 3 tenants need a VLAN ID from the pool, but 100-102 has 2 free of 3 (1 fixed under vlans or vlan: on interface "eth1"): widen the pool',
    ]);
    expect(
      errors(trunk({ orange: '[ { attach: eth1, vlan: 101 } ]' }, 'attach: eth1', 'vlans: { 100: blue }', 'pool: 100-102', 'tenants: [ red, green ]')),
    ).toEqual([
      'trunks[0].tenants: 2 tenants need a VLAN ID from the pool, but 100-102 has 1 free of 3 (2 fixed under vlans or vlan: on interface "eth1"): widen the pool',
    ]);
    expect(errors(trunk({}, 'attach: eth1', 'pool: 7', 'tenants: [ red, green ]'))).toEqual([
      'trunks[0].tenants: 2 tenants need a VLAN ID from the pool, but 7 has 1 free of 1: widen the pool',
    ]);
  });

  it('unknown keys and wrong shapes, with the key meant and what was read', () => {
    expect(errors(trunk({}, 'attach: eth1', 'vlan: { 100: blue }', 'natve: red'))).toEqual([
      'trunks[0].vlan: unknown key (did you mean vlans?)',
      'trunks[0].natve: unknown key (did you mean native?)',
    ]);
    expect(errors(config({}, 'trunks:', '  - { netns: x, vlans: [ 100 ], tenants: blue }', '  - eth1'))).toEqual([
      'trunks[0].vlans: must be a mapping of VLAN IDs to tenants like { 100: blue, 200: red } (received a list)',
      'trunks[0].tenants: must be a list of tenant names like [ green, orange ] (received the string "blue")',
      'trunks[0].attach: is required',
      'trunks[1]: must be a mapping like { attach: eth1, vlans: { 100: blue } } (received the string "eth1")',
    ]);
  });

  it('places each error at its line and column, a VLAN ID key at the key', () => {
    const r = parseConfig(trunk({}, 'attach: eth1', 'vlans: { 100: bleu, 0: red }'));
    expect(!r.ok && r.errors.map((e) => [e.path, e.line, e.col])).toEqual([
      ['trunks[0].vlans.100', 9, 19],
      ['trunks[0].vlans.0', 9, 25],
    ]);
  });
});

describe('vtepd check of a trunk config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-trunks-'));
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/config/schema.ts', 'src/config/load.ts', 'src/daemon/explain.ts']), 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints every error at file:line:col with its path', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, trunk({ red: '[ { attach: eth1 } ]' }, 'attach: eth1', 'vlans: { 100: bleu }'));
    expect(await vtepd(['check', '-c', file])).toMatchObject({
      code: 1,
      stderr: [
        `${file}:4:48: tenants[1].ports[0].attach: interface "eth1" is a trunk (trunks[0]), where untagged frames are the native VLAN's: give this port a vlan: (its tenant joins the trunk tagged), or make its tenant the trunk's native`,
        `${file}:9:19: trunks[0].vlans.100: no tenant "bleu" (tenants: blue, red, green, orange; did you mean blue?)`,
        `${file}: 2 errors`,
        '',
      ].join('\n'),
    });
  });

  it('counts trunks and their VLANs in its ok line, and warns of a trunk interface this host does not have', async () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(
      file,
      'underlay: { local: 127.0.0.1, port: 47998 }\ncontrol: { socket: /nonexistent/x.sock }\ntenants:\n  - { name: blue, vni: 5001, ports: [] }\n  - { name: red, vni: 5002, ports: [] }\ntrunks:\n  - { attach: nosuch9, vlans: { 100: blue }, native: red }\n',
    );
    const r = await vtepd(['check', '-c', file]);
    expect(r.stdout).toBe(`${file}: ok (2 tenant(s), 0 port(s), 1 trunk(s) with 2 VLAN(s))\n`);
    expect(r.stderr).toContain(
      `${file}:7:15: warning: trunks[0].attach: interface nosuch9 does not exist (a trunk attaches an interface that exists: check the name with ip link, or create it first)`,
    );
  });
});
