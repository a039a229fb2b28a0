import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultTapMtu, encapOverhead, worstOverhead } from '../../src/core/encap.js';
import { formatConfigError, formatConfigErrorIn, DEFAULT_CONTROL_SOCKET } from '../../src/config/config.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { closest, validateConfig } from '../../src/config/schema.js';
import { errors, ok } from '../support/config-text.js';

const EXAMPLE = `
underlay: { local: 10.0.0.1 }
tenants:
  - name: blue
    vni: 5001
    ports:
      - { tap: blue0, netns: vmA, address: 10.1.0.1/24, mac: "02:00:00:00:01:01" }
    flood: [ 10.0.0.2, 10.0.0.3 ]
    fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 } ]
`;

/** The warnings of a valid config, as `path: message`. */
function warnings(text: string): string[] {
  const r = parseConfig(text);
  if (!r.ok) expect.fail(r.errors.map(formatConfigError).join('\n'));
  return (r.warnings ?? []).map(formatConfigError);
}
/** One tenant `blue` (vni 5001) over IPv4 underlay 10.0.0.1, with extra tenant lines. */
const blue = (...lines: string[]) =>
  ['underlay: { local: 10.0.0.1 }', 'tenants:', '  - name: blue', '    vni: 5001', ...lines.map((l) => `    ${l}`)].join('\n');

describe('valid configs', () => {
  it('normalizes the example and fills every default', () => {
    expect(ok(EXAMPLE)).toEqual({
      log: { level: 'warn' },
      limits: { maxMacs: 131072 },
      control: { socket: '/run/vtepd/vtepd.sock' },
      metrics: null,
      underlay: { local: '10.0.0.1', family: 4, locals: [{ address: '10.0.0.1', family: 4 }], port: 4789, mtu: 1500, sourcePorts: 8, queues: 1 },
      tenants: [
        {
          name: 'blue',
          vni: 5001,
          encap: 'vxlan',
          ports: [
            {
              tap: 'blue0',
              kind: 'tap',
              netns: 'vmA',
              address: { address: '10.1.0.1', prefixLength: 24, family: 4 },
              mac: '02:00:00:00:01:01',
              mtu: 1450,
              vlan: null,
            },
          ],
          flood: ['10.0.0.2', '10.0.0.3'],
          fdb: [{ mac: '02:00:00:00:02:01', vtep: '10.0.0.2' }],
          vtepEncap: { '10.0.0.2': 'vxlan', '10.0.0.3': 'vxlan' },
          learning: true,
          learnFromUnderlay: true,
          ageing: 300,
          maxMacs: 8192,
          acceptFrom: 'known',
          innerVlan: 'drop',
          stormControl: { pps: 5000, burst: 2000 },
          moveDampening: { moves: 5, window: 10, hold: 60 },
          mssClamp: 'off',
          encryption: 'off',
          vtepKeys: {},
        },
      ],
      trunks: [],
      role: 'mesh',
      hubs: [],
      nat: false,
      keepalive: 15,
      deadInterval: 3,
      pmtuDiscovery: true,
      identity: null,
      spokes: [],
      directory: null,
    });
  });

  it('keeps explicit values and resolves the TAP MTU from underlay.mtu', () => {
    const c = ok(`
log: { level: debug }
underlay: { local: 192.0.2.1, port: 8472, mtu: 9000, sourcePorts: 64, queues: 4 }
tenants:
  - { name: red, vni: 16777215, learning: false, ageing: 10, maxMacs: 1048576,
      ports: [ { tap: red0 }, { tap: red1, mtu: 1500 } ] }
`);
    expect(c.log.level).toBe('debug');
    expect(c.underlay).toEqual({
      local: '192.0.2.1',
      family: 4,
      locals: [{ address: '192.0.2.1', family: 4 }],
      port: 8472,
      mtu: 9000,
      sourcePorts: 64,
      queues: 4,
    });
    const t = c.tenants[0]!;
    expect([t.learning, t.ageing, t.maxMacs, t.flood, t.fdb]).toEqual([false, 10, 1048576, [], []]);
    expect(t.ports).toEqual([
      { tap: 'red0', kind: 'tap', netns: null, address: null, mac: null, mtu: 8950, vlan: null },
      { tap: 'red1', kind: 'tap', netns: null, address: null, mac: null, mtu: 1500, vlan: null },
    ]);
  });

  it('underlay.cpus pins the queues: kept as listed, each CPU once, errors naming the entry', () => {
    expect(ok('underlay: { local: 192.0.2.1, queues: 2, cpus: [3, 1] }\ntenants: []\n').underlay.cpus).toEqual([3, 1]);
    expect(ok('underlay: { local: 192.0.2.1 }\ntenants: []\n').underlay.cpus).toBeUndefined();
    expect(errors('underlay: { local: 192.0.2.1, cpus: [0, 2, 0, -1] }\ntenants: []\n')).toEqual([
      'underlay.cpus[2]: CPU 0 is listed twice',
      'underlay.cpus[3]: must be an integer 0..1023',
    ]);
    expect(errors('underlay: { local: 192.0.2.1, cpus: [0, 2, 0] }\ntenants: []\n')).toEqual(['underlay.cpus[2]: CPU 0 is listed twice']);
    expect(errors('underlay: { local: 192.0.2.1, cpus: [] }\ntenants: []\n')).toEqual([
      'underlay.cpus: must be a list of CPU numbers like [2, 3] (queue q runs on cpus[q % length])',
    ]);
    expect(errors('underlay: { local: 192.0.2.1, cpus: 2 }\ntenants: []\n')).toEqual([
      'underlay.cpus: must be a list of CPU numbers like [2, 3] (queue q runs on cpus[q % length]) (received the number 2)',
    ]);
  });

  it('over an IPv6 underlay the default TAP MTU is 1430 and addresses are RFC 5952', () => {
    const c = ok(`
underlay: { local: "2001:DB8:0:0::0001" }
tenants:
  - name: v6
    vni: 1
    ports: [ { tap: v6a, address: "FD00:0:0:0::1/64", mac: "0A-BC-DE-F0-12-34" } ]
    flood: [ "2001:db8:0::2" ]
    fdb: [ { mac: 0A:BC:DE:F0:12:35, vtep: "2001:0db8::3" } ]
`);
    expect(c.underlay.local).toBe('2001:db8::1');
    expect(c.underlay.family).toBe(6);
    expect(c.tenants[0]!.ports[0]).toEqual({
      tap: 'v6a',
      kind: 'tap',
      netns: null,
      address: { address: 'fd00::1', prefixLength: 64, family: 6 },
      mac: '0a:bc:de:f0:12:34',
      mtu: 1430,
      vlan: null,
    });
    expect(c.tenants[0]!.flood).toEqual(['2001:db8::2']);
    expect(c.tenants[0]!.fdb).toEqual([{ mac: '0a:bc:de:f0:12:35', vtep: '2001:db8::3' }]);
  });

  it('accepts an empty tenant list', () => {
    expect(ok('underlay: { local: 10.0.0.1 }\ntenants: []\n').tenants).toEqual([]);
  });

  it('validates already-parsed data (e.g. JSON)', () => {
    const r = validateConfig({ underlay: { local: '10.0.0.1' }, tenants: [{ name: 'a', vni: 7 }] });
    expect(r.ok && r.config.tenants[0]!.ports).toEqual([]);
  });
});

describe('derived values', () => {
  it('VXLAN overhead is 50 bytes over IPv4, 70 over IPv6', () => {
    expect(encapOverhead(4)).toBe(50);
    expect(encapOverhead(6)).toBe(70);
    expect(defaultTapMtu(1500, 4)).toBe(1450);
    expect(defaultTapMtu(1500, 6)).toBe(1430);
  });
});

describe('field errors', () => {
  it('reports every mistake at once, in document order', () => {
    expect(
      errors(`
underlay: { local: 224.0.0.1, port: 0, mtu: 1500.5, sourcePorts: 65, queues: 9 }
tenants:
  - name: blue
    vni: 0
    ports:
      - { tap: "bad/name", mac: "01:00:5e:00:00:01", address: 10.1.0.0/24, mtu: 70000 }
      - { mac: "zz" }
    flood: [ 10.0.0.2, nope ]
    learning: yes
    ageing: 0
    maxMacs: -1
  - name: "b l u e"
  - 7
`),
    ).toEqual([
      'underlay.local: must be a unicast address; 224.0.0.1 is multicast',
      'underlay.port: must be an integer 1..65535',
      'underlay.mtu: must be an integer 576..65535 (received the number 1500.5)',
      'underlay.sourcePorts: must be an integer 1..64',
      'underlay.queues: must be an integer 1..8',
      'tenants[0].vni: must be an integer 1..16777215',
      "tenants[0].ports[0].tap: must be a Linux interface name: 1..15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'",
      'tenants[0].ports[0].mac: must be a unicast MAC like 02:00:00:00:01:01; 01:00:5e:00:00:01 is multicast',
      'tenants[0].ports[0].address: 10.1.0.0 is the network address of 10.1.0.0/24; use a host address in it',
      'tenants[0].ports[0].mtu: must be an integer 68..65535',
      'tenants[0].ports[1]: a port needs tap: NAME (a TAP vtepd creates) or attach: NAME (an interface that exists, vtepd attaches it)',
      'tenants[0].ports[1].mac: must be a unicast MAC like 02:00:00:00:01:01',
      'tenants[0].flood[1]: must be an IPv4 or IPv6 address',
      'tenants[0].learning: must be true or false (received the string "yes")',
      'tenants[0].ageing: must be an integer 1..1000000',
      'tenants[0].maxMacs: must be an integer 1..1048576',
      'tenants[1].name: must be 1..32 characters of a-z A-Z 0-9 _ . -',
      'tenants[1].vni: is required',
      'tenants[2]: must be a mapping like { name: blue, vni: 5001 } (received the number 7)',
    ]);
  });

  it('reports unknown keys at every level, with a hint for near misses', () => {
    expect(
      errors(`
underlay: { local: 10.0.0.1, source_ports: 8 }
log: { level: info, colour: true }
tenants:
  - name: blue
    vni: 5001
    foo: 1
    MaxMacs: 5
    ports: [ { tap: blue0, ip: 10.1.0.1/24 } ]
    fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.2, port: 1 } ]
extra: {}
`),
    ).toEqual([
      'underlay.source_ports: unknown key (did you mean sourcePorts?)',
      'log.colour: unknown key',
      'tenants[0].foo: unknown key',
      'tenants[0].MaxMacs: unknown key (did you mean maxMacs?)',
      'tenants[0].ports[0].ip: unknown key',
      'tenants[0].fdb[0].port: unknown key',
      'extra: unknown key',
    ]);
  });

  it('requires underlay, underlay.local and tenants, and a mapping at the top', () => {
    expect(errors('log: { level: loud }\n')).toEqual([
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent',
      'underlay: is required',
      'tenants: is required',
    ]);
    expect(errors('underlay: {}\ntenants:\n')).toEqual([
      'underlay.local: is required',
      'tenants: must be a list of tenants (write tenants: [] for none) (received an empty value)',
    ]);
    expect(errors('')).toEqual(['(root): must be a mapping with underlay and tenants (received an empty value)']);
    expect(errors('- 1\n')).toEqual(['(root): must be a mapping with underlay and tenants (received a list)']);
  });

  it('checks MACs: unicast, not all-zero, well-formed', () => {
    const mac = (m: string) => errors(blue(`fdb: [ { mac: "${m}", vtep: 10.0.0.2 } ]`));
    expect(mac('ff:ff:ff:ff:ff:ff')).toEqual(['tenants[0].fdb[0].mac: must be a unicast MAC like 02:00:00:00:01:01; ff:ff:ff:ff:ff:ff is multicast']);
    expect(mac('00:00:00:00:00:00')).toEqual(['tenants[0].fdb[0].mac: must be a unicast MAC like 02:00:00:00:01:01, not all-zero']);
    for (const bad of ['02:00:00:00:01', '02:00:00:00:01:1', '02:00-00:00:01:01', '0200.0000.0101'])
      expect(mac(bad)).toEqual(['tenants[0].fdb[0].mac: must be a unicast MAC like 02:00:00:00:01:01']);
  });

  it('checks addresses with ip-address: family, prefix, unicast', () => {
    expect(errors('underlay: { local: 0.0.0.0 }\ntenants: []')).toEqual(['underlay.local: must be a unicast address; 0.0.0.0 is unspecified']);
    expect(errors('underlay: { local: "::" }\ntenants: []')).toEqual(['underlay.local: must be a unicast address; :: is unspecified']);
    expect(errors('underlay: { local: "ff02::1" }\ntenants: []')).toEqual(['underlay.local: must be a unicast address; ff02::1 is multicast']);
    expect(errors('underlay: { local: 10.0.0.1/24 }\ntenants: []')).toEqual([
      'underlay.local: must be an IPv4 or IPv6 address without a prefix length (drop the /24)',
    ]);
    expect(errors('underlay: { local: "fe80::1%eth0" }\ntenants: []')).toEqual([
      'underlay.local: must be an IPv4 or IPv6 address without a zone index (%eth0)',
    ]);
    expect(errors('underlay: { local: "::ffff:10.0.0.1" }\ntenants: []')).toEqual(['underlay.local: write IPv4-mapped ::ffff:10.0.0.1 as plain IPv4']);
    const addr = (a: string) => errors(blue(`ports: [ { tap: blue0, address: "${a}" } ]`));
    const cidr = 'tenants[0].ports[0].address: must be an IPv4 or IPv6 address with a prefix length, like 10.1.0.1/24';
    expect(addr('10.1.0.1')).toEqual([cidr]);
    expect(addr('10.1.0.1/33')).toEqual([cidr]);
    expect(addr('10.1.0.256/24')).toEqual([cidr]);
    expect(addr('10.1.0.1/0')).toEqual(['tenants[0].ports[0].address: prefix length must be 1..32']);
    expect(addr('10.1.0.255/24')).toEqual(['tenants[0].ports[0].address: 10.1.0.255 is the broadcast address of 10.1.0.0/24; use a host address in it']);
    expect(ok(blue('ports: [ { tap: blue0, address: 10.1.0.0/31 } ]')).tenants[0]!.ports[0]!.address).toEqual({
      address: '10.1.0.0',
      prefixLength: 31,
      family: 4,
    });
  });

  it('checks TAP and namespace names like Linux does', () => {
    const tap = (t: string) => errors(blue(`ports: [ { tap: "${t}" } ]`)).map((e) => e.split(':')[0]);
    for (const bad of ['abcdefghijklmnop', 'a:b', 'a b', '.', '..', 'tap%d', '']) expect(tap(bad), bad).toEqual(['tenants[0].ports[0].tap']);
    expect(ok(blue('ports: [ { tap: abcdefghijklmno, netns: "vm-A.1" } ]')).tenants[0]!.ports[0]!.tap).toBe('abcdefghijklmno');
    expect(errors(blue('ports: [ { tap: t0, netns: "a/b" } ]'))).toEqual([
      "tenants[0].ports[0].netns: must be a network namespace name under /run/netns: no '/', not '.' or '..'",
    ]);
    expect(errors(blue('ports: [ { tap: 1234 } ]'))[0]).toMatch(/^tenants\[0\]\.ports\[0\]\.tap: must be a Linux interface name/);
  });
});

describe('cross-field errors', () => {
  it('duplicate tenant names, VNIs and TAP names across tenants', () => {
    expect(
      errors(`
underlay: { local: 10.0.0.1 }
tenants:
  - { name: blue, vni: 5001, ports: [ { tap: t0 }, { tap: t1 } ] }
  - { name: red, vni: 5001, ports: [ { tap: t2 } ] }
  - { name: blue, vni: 5003, ports: [ { tap: t1 } ] }
`),
    ).toEqual([
      'tenants[1].vni: duplicate VNI 5001 (also tenants[0])',
      'tenants[2].name: duplicate tenant name "blue" (also tenants[0])',
      'tenants[2].ports[0].tap: duplicate TAP name "t1" (also tenants[0].ports[1])',
    ]);
  });

  it('VTEP address family must match underlay.local', () => {
    expect(errors(blue('flood: [ "2001:db8::2" ]', 'fdb: [ { mac: "02:00:00:00:02:01", vtep: "2001:db8::2" } ]'))).toEqual([
      'tenants[0].flood[0]: IPv6 VTEP but underlay.local is IPv4',
      'tenants[0].fdb[0].vtep: IPv6 VTEP but underlay.local is IPv4',
    ]);
    expect(errors('underlay: { local: "2001:db8::1" }\ntenants: [ { name: a, vni: 1, flood: [ 10.0.0.2 ] } ]')).toEqual([
      'tenants[0].flood[0]: IPv4 VTEP but underlay.local is IPv6',
    ]);
  });

  it('flood list: not underlay.local, no duplicates (after normalization)', () => {
    expect(errors(blue('flood: [ 10.0.0.2, 10.0.0.1, 10.0.0.2 ]'))).toEqual([
      'tenants[0].flood[1]: must not be underlay.local (10.0.0.1), this host',
      'tenants[0].flood[2]: duplicate VTEP 10.0.0.2 (also tenants[0].flood[0])',
    ]);
    expect(errors('underlay: { local: "2001:db8::1" }\ntenants: [ { name: a, vni: 1, flood: [ "2001:db8::2", "2001:DB8:0::2" ] } ]')).toEqual([
      'tenants[0].flood[1]: duplicate VTEP 2001:db8::2 (also tenants[0].flood[0])',
    ]);
  });

  it('static FDB: unique MACs within a tenant (also against local port MACs), VTEP not this host', () => {
    expect(
      errors(
        blue(
          'ports: [ { tap: blue0, mac: "02:00:00:00:01:01" } ]',
          'fdb:',
          '  - { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 }',
          '  - { mac: "02-00-00-00-02-01", vtep: 10.0.0.3 }',
          '  - { mac: "02:00:00:00:01:01", vtep: 10.0.0.1 }',
        ),
      ),
    ).toEqual([
      'tenants[0].fdb[1].mac: duplicate MAC 02:00:00:00:02:01 (also tenants[0].fdb[0].mac)',
      'tenants[0].fdb[2].mac: duplicate MAC 02:00:00:00:01:01 (also tenants[0].ports[0].mac)',
      'tenants[0].fdb[2].vtep: must not be underlay.local (10.0.0.1), this host',
    ]);
    // Separate tenants are separate L2 segments: the same MAC is fine.
    ok(`
underlay: { local: 10.0.0.1 }
tenants:
  - { name: a, vni: 1, fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 } ] }
  - { name: b, vni: 2, fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 } ] }
`);
  });

  it('duplicate port addresses within a tenant', () => {
    expect(errors(blue('ports: [ { tap: a, address: 10.1.0.1/24 }, { tap: b, address: 10.1.0.1/16 } ]'))).toEqual([
      'tenants[0].ports[1].address: duplicate address 10.1.0.1 (also tenants[0].ports[0].address)',
    ]);
  });

  it('MTUs: a TAP above underlay.mtu minus overhead is a warning (ICMP feedback), IPv6 at least 1280', () => {
    expect(warnings(blue('ports: [ { tap: a, mtu: 1451 }, { tap: b, mtu: 1450 } ]'))).toEqual([
      'tenants[0].ports[0].mtu: 1451 exceeds underlay.mtu 1500 minus 50 bytes of VXLAN over IPv4 (at most 1450): larger frames are answered with ICMP too-big (set mssClamp to spare TCP the round trip)',
    ]);
    expect(
      warnings('underlay: { local: "2001:db8::1", mtu: 1500 }\ntenants: [ { name: a, vni: 1, mssClamp: auto, ports: [ { tap: a, mtu: 1431 } ] } ]'),
    ).toEqual([
      'tenants[0].ports[0].mtu: 1431 exceeds underlay.mtu 1500 minus 70 bytes of VXLAN over IPv6 (at most 1430): larger frames are answered with ICMP too-big',
    ]);
    expect(warnings(blue('ports: [ { tap: b, mtu: 1450 } ]'))).toEqual([]);
    expect(errors('underlay: { local: "2001:db8::1", mtu: 1000 }\ntenants: []')).toEqual(['underlay.mtu: must be at least 1280 for an IPv6 underlay']);
    expect(errors(blue('ports: [ { tap: a, address: "fd00::1/64", mtu: 1200 } ]'))).toEqual([
      'tenants[0].ports[0].mtu: an IPv6 address needs a port MTU of at least 1280, not 1200',
    ]);
    expect(errors('underlay: { local: 10.0.0.1, mtu: 1300 }\ntenants: [ { name: a, vni: 1, ports: [ { tap: a, address: "fd00::1/64" } ] } ]')).toEqual([
      'tenants[0].ports[0].address: an IPv6 address needs a port MTU of at least 1280, not 1250',
    ]);
  });

  it('cross-field checks still run where other fields are wrong', () => {
    expect(
      errors(`
underlay: { local: 10.0.0.1, port: 99999 }
tenants:
  - { name: blue, vni: 5001, ageing: 0, flood: [ "2001:db8::9" ] }
  - { name: blue, vni: x }
`),
    ).toEqual([
      'underlay.port: must be an integer 1..65535',
      'tenants[0].ageing: must be an integer 1..1000000',
      'tenants[0].flood[0]: IPv6 VTEP but underlay.local is IPv4',
      'tenants[1].name: duplicate tenant name "blue" (also tenants[0])',
      'tenants[1].vni: must be an integer 1..16777215 (received the string "x")',
    ]);
  });
});

describe('encapsulations (VXLAN, GRE-TAP, NVGRE) and dual stack', () => {
  const one = (local: string, ...lines: string[]) =>
    [`underlay: { local: ${local} }`, 'tenants:', '  - name: blue', '    vni: 5001', ...lines.map((l) => `    ${l}`)].join('\n');

  it('overheads: VXLAN 50/70, GRE-TAP with its key 42/62, NVGRE 42/62 (IPv4/IPv6)', () => {
    expect([encapOverhead(4, 'vxlan'), encapOverhead(6, 'vxlan')]).toEqual([50, 70]);
    expect([encapOverhead(4, 'gre'), encapOverhead(6, 'gre')]).toEqual([42, 62]);
    expect([encapOverhead(4, 'nvgre'), encapOverhead(6, 'nvgre')]).toEqual([42, 62]);
    expect([defaultTapMtu(1500, 4, 'gre'), defaultTapMtu(1500, 6, 'nvgre')]).toEqual([1458, 1438]);
    expect(worstOverhead([4, 6], ['gre', 'vxlan'])).toEqual({ overhead: 70, family: 6, encap: 'vxlan' });
  });

  it('defaults encap to vxlan; a GRE-TAP or NVGRE tenant gets the TAP MTU of its overhead', () => {
    expect(ok(blue('ports: [ { tap: blue0 } ]')).tenants[0]).toMatchObject({ encap: 'vxlan', ports: [{ mtu: 1450 }] });
    expect(ok(blue('encap: gre', 'ports: [ { tap: blue0 } ]')).tenants[0]).toMatchObject({ encap: 'gre', ports: [{ mtu: 1458 }] });
    expect(ok(blue('encap: nvgre', 'ports: [ { tap: blue0 } ]')).tenants[0]).toMatchObject({ encap: 'nvgre', ports: [{ mtu: 1458 }] });
    expect(ok(one('"2001:db8::1"', 'encap: gre', 'ports: [ { tap: blue0 } ]')).tenants[0]!.ports[0]!.mtu).toBe(1438);
  });

  it('takes per-peer overrides in flood and fdb, normalized to addresses plus vtepEncap', () => {
    const t = ok(
      blue(
        'encap: gre',
        'ports: [ { tap: blue0 } ]',
        'flood: [ 10.0.0.2, { vtep: 10.0.0.3, encap: vxlan }, { vtep: 10.0.0.4 } ]',
        'fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.5, encap: nvgre }, { mac: "02:00:00:00:02:02", vtep: 10.0.0.2 } ]',
      ),
    ).tenants[0]!;
    expect(t.flood).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(t.fdb).toEqual([
      { mac: '02:00:00:00:02:01', vtep: '10.0.0.5' },
      { mac: '02:00:00:00:02:02', vtep: '10.0.0.2' },
    ]);
    expect(t.vtepEncap).toEqual({ '10.0.0.2': 'gre', '10.0.0.3': 'vxlan', '10.0.0.4': 'gre', '10.0.0.5': 'nvgre' });
    // The TAP MTU covers the largest overhead the tenant uses: VXLAN's 50.
    expect(t.ports[0]!.mtu).toBe(1450);
  });

  it('refuses NVGRE VSIDs 0..0xFFF, also when only a peer uses NVGRE', () => {
    const msg = 'tenants[0].vni: NVGRE VSID must be 4096..16777215 (0..0xFFF are reserved)';
    expect(errors(blue('encap: nvgre').replace('vni: 5001', 'vni: 4095'))).toEqual([msg]);
    expect(errors(blue('encap: nvgre').replace('vni: 5001', 'vni: 1'))).toEqual([msg]);
    expect(errors(blue('flood: [ { vtep: 10.0.0.2, encap: nvgre } ]').replace('vni: 5001', 'vni: 100'))).toEqual([msg]);
    expect(ok(blue('encap: nvgre').replace('vni: 5001', 'vni: 4096')).tenants[0]!.vni).toBe(4096);
    expect(ok(blue('encap: gre').replace('vni: 5001', 'vni: 1')).tenants[0]!.vni).toBe(1);
  });

  it('refuses a GRE-TAP key that an NVGRE tenant would claim as its VSID', () => {
    const text = [
      'underlay: { local: 10.0.0.1 }',
      'tenants:',
      '  - { name: g, vni: 1048581, encap: gre }', // 0x100005: read as NVGRE it is VSID 0x1000
      '  - { name: n, vni: 4096, encap: nvgre }',
      '  - { name: ok, vni: 1048577, encap: vxlan }', // VXLAN has no GRE key
    ].join('\n');
    expect(errors(text)).toEqual(['tenants[0].vni: GRE-TAP key 1048581 would be read as NVGRE VSID 4096 of tenants[1]; pick a VNI whose top 16 bits differ']);
  });

  it('checks encap names, flood entry shapes and one encapsulation per VTEP in a tenant', () => {
    expect(errors(blue('encap: geneve'))).toEqual(['tenants[0].encap: must be one of vxlan, gre, nvgre']);
    expect(errors(blue('flood: [ { vtep: 10.0.0.2, encap: GRE } ]'))).toEqual([
      'tenants[0].flood[0].encap: must be one of vxlan, gre, nvgre (did you mean gre?)',
    ]);
    expect(errors(blue('flood: [ { vtep: 10.0.0.2, Encap: gre } ]'))).toEqual(['tenants[0].flood[0].Encap: unknown key (did you mean encap?)']);
    expect(errors(blue('flood: [ 7, { encap: gre } ]'))).toEqual([
      'tenants[0].flood[0]: must be a VTEP address or a mapping like { vtep: 10.0.0.2, encap: gre } (received the number 7)',
      'tenants[0].flood[1].vtep: is required',
    ]);
    expect(errors(blue('flood: [ { vtep: 10.0.0.1 } ]'))).toEqual(['tenants[0].flood[0].vtep: must not be underlay.local (10.0.0.1), this host']);
    expect(errors(blue('fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.2, encap: nope } ]'))).toEqual([
      'tenants[0].fdb[0].encap: must be one of vxlan, gre, nvgre',
    ]);
    expect(errors(blue('flood: [ { vtep: 10.0.0.2, encap: gre } ]', 'fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.2 } ]'))).toEqual([
      'tenants[0].fdb[0]: VTEP 10.0.0.2 is gre in tenants[0].flood[0]; a tenant reaches a VTEP with one encapsulation',
    ]);
    expect(errors(blue('flood: [ 10.0.0.2, { vtep: 10.0.0.2, encap: gre } ]'))).toEqual([
      'tenants[0].flood[1].vtep: duplicate VTEP 10.0.0.2 (also tenants[0].flood[0])',
      'tenants[0].flood[1].encap: VTEP 10.0.0.2 is vxlan in tenants[0].flood[0]; a tenant reaches a VTEP with one encapsulation',
    ]);
    // Another tenant may reach the same VTEP another way.
    const two = ok(
      [
        'underlay: { local: 10.0.0.1 }',
        'tenants:',
        '  - { name: a, vni: 5001, flood: [ 10.0.0.2 ] }',
        '  - { name: b, vni: 5002, encap: gre, flood: [ 10.0.0.2 ] }',
      ].join('\n'),
    );
    expect(two.tenants.map((t) => t.vtepEncap['10.0.0.2'])).toEqual(['vxlan', 'gre']);
  });

  it('warns of a GRE-TAP TAP MTU above its overhead with the encapsulation named', () => {
    expect(warnings(blue('encap: gre', 'ports: [ { tap: blue0, mtu: 1459 } ]'))).toEqual([
      'tenants[0].ports[0].mtu: 1459 exceeds underlay.mtu 1500 minus 42 bytes of GRE-TAP over IPv4 (at most 1458): larger frames are answered with ICMP too-big (set mssClamp to spare TCP the round trip)',
    ]);
    expect(ok(blue('encap: gre', 'ports: [ { tap: blue0, mtu: 1458 } ]')).tenants[0]!.ports[0]!.mtu).toBe(1458);
  });

  it('takes a dual-stack underlay: one IPv4 and one IPv6 address, VTEPs of both families', () => {
    const c = ok(one('[ 10.0.0.1, "2001:DB8::1" ]', 'encap: gre', 'ports: [ { tap: blue0 } ]', 'flood: [ 10.0.0.2, "2001:db8::2" ]'));
    expect(c.underlay).toMatchObject({
      local: '10.0.0.1',
      family: 4,
      locals: [
        { address: '10.0.0.1', family: 4 },
        { address: '2001:db8::1', family: 6 },
      ],
    });
    expect(c.tenants[0]!.flood).toEqual(['10.0.0.2', '2001:db8::2']);
    expect(c.tenants[0]!.ports[0]!.mtu).toBe(1438); // GRE-TAP over IPv6: 62
    expect(ok(one('[ "2001:db8::1", 10.0.0.1 ]', 'ports: [ { tap: blue0 } ]')).tenants[0]!.ports[0]!.mtu).toBe(1430);
    expect(ok(one('[ 10.0.0.1 ]')).underlay.locals).toEqual([{ address: '10.0.0.1', family: 4 }]);
  });

  it('refuses two addresses of one family, an empty or long list, and this host as a VTEP', () => {
    const LOCAL = 'underlay.local: must be an IPv4 or IPv6 address, or a list of at most one of each like [10.0.0.1, "2001:db8::1"]';
    expect(errors(one('[ 10.0.0.1, 10.0.0.2 ]'))).toEqual(['underlay.local[1]: at most one address per family: 10.0.0.1 and 10.0.0.2 are both IPv4']);
    expect(errors(one('[]'))).toEqual([LOCAL]);
    expect(errors(one('[ 10.0.0.1, "2001:db8::1", "2001:db8::2" ]'))).toEqual([LOCAL]);
    expect(errors(one('7'))).toEqual([`${LOCAL} (received the number 7)`]);
    expect(errors(one('[ 10.0.0.1, nope ]'))).toEqual(['underlay.local[1]: must be an IPv4 or IPv6 address']);
    expect(errors(one('[ 10.0.0.1, "2001:db8::1" ]', 'flood: [ "2001:db8::1" ]'))).toEqual([
      'tenants[0].flood[0]: must not be underlay.local (2001:db8::1), this host',
    ]);
    expect(errors('underlay: { local: [ 10.0.0.1, "2001:db8::1" ], mtu: 1000 }\ntenants: []')).toEqual([
      'underlay.mtu: must be at least 1280 for an IPv6 underlay',
    ]);
    expect(errors(one('10.0.0.1', 'flood: [ "2001:db8::2" ]'))).toEqual(['tenants[0].flood[0]: IPv6 VTEP but underlay.local is IPv4']);
  });
});

describe('attached ports (#15)', () => {
  it('takes { attach: NAME, netns } as a port of kind attach, named by its interface', () => {
    const c = ok(blue('ports: [ { tap: blue0 }, { attach: eth1 }, { attach: veth-bm, netns: tor } ]'));
    expect(c.tenants[0]!.ports.map((p) => [p.tap, p.kind, p.netns])).toEqual([
      ['blue0', 'tap', null],
      ['eth1', 'attach', null],
      ['veth-bm', 'attach', 'tor'],
    ]);
    // The MTU the tunnel carries (the attached interface keeps its own; vtepd warns when it is larger).
    expect(c.tenants[0]!.ports[1]!.mtu).toBe(1450);
  });

  it('a port is exactly one of tap or attach, the error names the port', () => {
    expect(errors(blue('ports: [ { tap: blue0, attach: eth1 } ]'))).toEqual([
      'tenants[0].ports[0].tap: a port is a TAP vtepd creates (tap) or an interface it attaches (attach), not both: keep one',
    ]);
    expect(errors(blue('ports: [ { netns: vmA } ]'))).toEqual([
      'tenants[0].ports[0]: a port needs tap: NAME (a TAP vtepd creates) or attach: NAME (an interface that exists, vtepd attaches it)',
    ]);
    expect(errors(blue('ports: [ { attach: "eth/1" } ]'))).toEqual([
      "tenants[0].ports[0].attach: must be a Linux interface name: 1..15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'",
    ]);
  });

  it('refuses address, mac and mtu on an attached port by name, with what to do', () => {
    expect(errors(blue('ports: [ { attach: eth1, address: 10.1.0.1/24, mac: "02:00:00:00:01:01", mtu: 1400 } ]'))).toEqual([
      'tenants[0].ports[0].address: not for an attached port (attach), as vtepd does not change an interface it did not create: an attached interface is a switch port and needs no address; set one on the host behind it',
      'tenants[0].ports[0].mac: not for an attached port (attach), as vtepd does not change an interface it did not create: it keeps its own MAC',
      'tenants[0].ports[0].mtu: not for an attached port (attach), as vtepd does not change an interface it did not create: set its MTU (and the MTU of the hosts behind it) yourself, at most 1450 (underlay.mtu 1500 minus 50 bytes of VXLAN over IPv4)',
    ]);
  });

  it('one interface is one port: a TAP and an attached port of one name collide', () => {
    expect(errors(blue('ports: [ { tap: eth1 }, { attach: eth1 } ]'))).toEqual([
      'tenants[0].ports[1].attach: duplicate interface "eth1" (also tenants[0].ports[0])',
    ]);
  });
});

describe('YAML and files', () => {
  it('reports YAML syntax errors at (root) with line and column', () => {
    const dup = parseConfig('underlay:\n  local: 10.0.0.1\n  local: 10.0.0.2\ntenants: []\n');
    expect(!dup.ok && dup.errors).toEqual([{ path: '(root)', message: 'Map keys must be unique', line: 3, col: 3 }]);
    expect(!dup.ok && formatConfigErrorIn('vtepd.yaml', dup.errors[0]!)).toBe('vtepd.yaml:3:3: Map keys must be unique');
    const r = parseConfig('tenants: [ { name: a\nunderlay: {}\n');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors.length).toBeGreaterThan(0);
      for (const e of r.errors) expect(formatConfigErrorIn('vtepd.yaml', e)).toMatch(/^vtepd\.yaml:\d+:\d+: \S/);
    }
    const docs = parseConfig('a: 1\n---\nb: 2\n');
    expect(!docs.ok && docs.errors[0]).toMatchObject({ line: 2, col: 1, message: expect.stringMatching(/^Source contains multiple documents/) });
  });

  it('loadConfig reads a file; a missing one is one error that does not repeat its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtepd-config-'));
    try {
      const good = join(dir, 'good.yaml');
      writeFileSync(good, EXAMPLE);
      const r = loadConfig(good);
      expect(r.ok && r.config.tenants[0]!.ports[0]!.mtu).toBe(1450);
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'tenants: [\n');
      const b = loadConfig(bad);
      expect(!b.ok && b.errors[0]).toMatchObject({ line: 2, col: 1 });
      const missing = loadConfig(join(dir, 'missing.yaml'));
      expect(!missing.ok && missing.errors).toEqual([{ path: '(root)', message: 'cannot read the config file: no such file (give its path with --config)' }]);
      expect(!missing.ok && formatConfigErrorIn('missing.yaml', missing.errors[0]!)).toBe(
        'missing.yaml: cannot read the config file: no such file (give its path with --config)',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('messages that say where and what to do (#14)', () => {
  /** Every error as the CLI prints it for `vtepd.yaml`. */
  const printed = (text: string) => {
    const r = parseConfig(text);
    if (r.ok) expect.fail('config unexpectedly valid');
    return r.errors.map((e) => formatConfigErrorIn('vtepd.yaml', e));
  };

  it('places every schema error at file:line:col and says what a wrong type received', () => {
    expect(printed(blue().replace('vni: 5001', 'vni: "5001"'))).toEqual([
      'vtepd.yaml:4:10: tenants[0].vni: must be an integer 1..16777215 (received the string "5001"; drop the quotes)',
    ]);
    expect(printed(blue('learning: "false"', 'ports: [ { tap: 1234 } ]'))).toEqual([
      'vtepd.yaml:5:15: tenants[0].learning: must be true or false (received the string "false"; drop the quotes)',
      "vtepd.yaml:6:21: tenants[0].ports[0].tap: must be a Linux interface name: 1..15 bytes, no '/', ':', '%' or whitespace, not '.' or '..' (received the number 1234; quote it)",
    ]);
    // A quoted string that would not pass unquoted either: no "drop the quotes".
    expect(printed(blue('ageing: "soon"'))).toEqual(['vtepd.yaml:5:13: tenants[0].ageing: must be an integer 1..1000000 (received the string "soon")']);
    expect(printed(blue('mssClamp: "1400"'))).toEqual([
      'vtepd.yaml:5:15: tenants[0].mssClamp: must be auto, off or an integer 536..65495 (the TCP MSS to clamp to) (received the string "1400"; drop the quotes)',
    ]);
    expect(printed('underlay:\n  local:\ntenants: []\n')).toEqual([
      'vtepd.yaml:2:9: underlay.local: must be an IPv4 or IPv6 address, or a list of at most one of each like [10.0.0.1, "2001:db8::1"] (received an empty value)',
    ]);
    expect(printed('underlay: { local: 10.0.0.1 }\ntenants:\n  - name: blue\n')).toEqual(['vtepd.yaml:3:5: tenants[0].vni: is required']);
  });

  it('says which key was meant, when one is close', () => {
    expect(printed(blue('floood: [ 10.0.0.2 ]'))).toEqual(['vtepd.yaml:5:5: tenants[0].floood: unknown key (did you mean flood?)']);
    expect(printed('underlay: { local: 10.0.0.1, mut: 1400 }\ntenants: []\n')).toEqual(['vtepd.yaml:1:30: underlay.mut: unknown key (did you mean mtu?)']);
    expect(printed('underlay: { local: 10.0.0.1 }\ntenant: []\n')).toEqual([
      'vtepd.yaml:2:1: tenant: unknown key (did you mean tenants?)',
      'vtepd.yaml:1:1: tenants: is required',
    ]);
    expect(printed(blue('colour: blue'))).toEqual(['vtepd.yaml:5:5: tenants[0].colour: unknown key']);
    expect(printed(blue('encap: vxaln', 'acceptFrom: knwon'))).toEqual([
      'vtepd.yaml:5:12: tenants[0].encap: must be one of vxlan, gre, nvgre (did you mean vxlan?)',
      'vtepd.yaml:6:17: tenants[0].acceptFrom: must be known or any (did you mean known?)',
    ]);
    expect(closest('floood', ['flood', 'fdb'])).toBe('flood');
    expect(closest('foo', ['flood', 'fdb'])).toBeUndefined();
  });

  it('tells to drop the prefix length where a bare address is wanted', () => {
    const drop = (path: string, prefix: string) => `${path}: must be an IPv4 or IPv6 address without a prefix length (drop the ${prefix})`;
    expect(errors('underlay: { local: 10.0.0.0/24 }\ntenants: []\n')).toEqual([drop('underlay.local', '/24')]);
    expect(errors('underlay: { local: [ 10.0.0.1, "2001:db8::1/64" ] }\ntenants: []\n')).toEqual([drop('underlay.local[1]', '/64')]);
    expect(errors(blue('flood: [ 10.0.0.2/32, { vtep: 10.0.0.3/24 } ]', 'fdb: [ { mac: "02:00:00:00:02:01", vtep: 10.0.0.4/8 } ]'))).toEqual([
      drop('tenants[0].flood[0]', '/32'),
      drop('tenants[0].flood[1].vtep', '/24'),
      drop('tenants[0].fdb[0].vtep', '/8'),
    ]);
    expect(errors('role: spoke\nhubs: [ { address: 10.0.0.10/24 } ]\nunderlay: { local: 10.0.0.1 }\ntenants: []\n')).toEqual([drop('hubs[0].address', '/24')]);
    expect(errors('metrics: { listen: "127.0.0.1/8:9477" }\nunderlay: { local: 10.0.0.1 }\ntenants: []\n')).toEqual([
      'metrics.listen: must be ADDRESS:PORT like 127.0.0.1:9477 or [::1]:9477; an address without a prefix length (drop the /8)',
    ]);
  });

  it('places warnings too', () => {
    const r = parseConfig(blue('ports: [ { tap: b0, mtu: 1451 } ]'));
    expect(r.ok && r.warnings?.map((w) => formatConfigErrorIn('vtepd.yaml', w, 'warning'))).toEqual([
      'vtepd.yaml:5:30: warning: tenants[0].ports[0].mtu: 1451 exceeds underlay.mtu 1500 minus 50 bytes of VXLAN over IPv4 (at most 1450): larger frames are answered with ICMP too-big (set mssClamp to spare TCP the round trip)',
    ]);
    expect(r.ok && r.locate?.(['tenants', 0, 'ports', 0, 'tap'])).toMatchObject({ line: 5, col: 21 });
  });
});

describe('control and metrics', () => {
  const base = 'underlay: { local: 10.0.0.1 }\ntenants: []\n';

  it('defaults the control socket under /run and leaves metrics off', () => {
    const c = ok(base);
    expect(c.control).toEqual({ socket: DEFAULT_CONTROL_SOCKET });
    expect(DEFAULT_CONTROL_SOCKET).toBe('/run/vtepd/vtepd.sock');
    expect(c.metrics).toBeNull();
  });

  it('takes a socket path and a metrics listen address, IPv4 or bracketed IPv6', () => {
    const c = ok(`control: { socket: /tmp/v.sock }\nmetrics: { listen: "127.0.0.1:9477" }\n${base}`);
    expect(c.control.socket).toBe('/tmp/v.sock');
    expect(c.metrics).toEqual({ listen: '127.0.0.1:9477', host: '127.0.0.1', port: 9477 });
    expect(ok(`metrics: { listen: "[0:0::1]:80" }\n${base}`).metrics).toEqual({ listen: '[::1]:80', host: '::1', port: 80 });
    expect(ok(`metrics: { listen: "0.0.0.0:9477" }\n${base}`).metrics?.host).toBe('0.0.0.0');
  });

  it('rejects a relative or too long socket path and a bad listen address, with paths', () => {
    const long = `/${'x'.repeat(107)}`;
    expect(errors(`control: { socket: run/v.sock }\nmetrics: { listen: "localhost:9477" }\n${base}`)).toEqual([
      'control.socket: must be an absolute path of at most 107 bytes (a Unix socket), like /run/vtepd/vtepd.sock',
      'metrics.listen: must be ADDRESS:PORT like 127.0.0.1:9477 or [::1]:9477; localhost is not an IPv4 address or a bracketed IPv6 address',
    ]);
    expect(errors(`control: { socket: ${long} }\n${base}`)).toEqual([
      'control.socket: must be an absolute path of at most 107 bytes (a Unix socket), like /run/vtepd/vtepd.sock',
    ]);
    expect(errors(`metrics: { listen: "127.0.0.1:70000" }\n${base}`)).toEqual([
      'metrics.listen: must be ADDRESS:PORT like 127.0.0.1:9477 or [::1]:9477; port must be 1..65535',
    ]);
    expect(errors(`metrics: { listen: "::1:9477" }\n${base}`)).toEqual(['metrics.listen: must be ADDRESS:PORT like 127.0.0.1:9477 or [::1]:9477']);
    expect(errors(`metrics: { listen: 9477 }\n${base}`)).toEqual([
      'metrics.listen: must be ADDRESS:PORT like 127.0.0.1:9477 or [::1]:9477 (received the number 9477)',
    ]);
    expect(errors(`metrics: {}\n${base}`)).toEqual(['metrics.listen: is required']);
    expect(errors(`control: { Socket: /x }\nmetrics: { address: x }\n${base}`)).toEqual([
      'control.Socket: unknown key (did you mean socket?)',
      'metrics.address: unknown key',
      'metrics.listen: is required',
    ]);
  });
});

describe('stormControl and moveDampening', () => {
  it('take off or their fields, and name a bad value', () => {
    const ok = parseConfig(
      'underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, stormControl: off, moveDampening: { moves: 3, window: 5, hold: 30 } } ]\n',
    );
    expect(ok.ok && [ok.config.tenants[0].stormControl, ok.config.tenants[0].moveDampening]).toEqual(['off', { moves: 3, window: 5, hold: 30 }]);
    const bad = parseConfig('underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, stormControl: { pps: 0, burst: 5 }, moveDampening: sometimes } ]\n');
    expect(!bad.ok && bad.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'tenants[0].stormControl.pps: must be an integer 1..10000000',
      'tenants[0].moveDampening: must be off or { moves, window, hold }',
    ]);
  });
});

describe('acceptFrom', () => {
  it('defaults to known, takes any, and names a bad value', () => {
    const ok = parseConfig('underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1 }, { name: b, vni: 2, acceptFrom: any } ]\n');
    expect(ok.ok && ok.config.tenants.map((t) => t.acceptFrom)).toEqual(['known', 'any']);
    const bad = parseConfig('underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, acceptFrom: everyone } ]\n');
    expect(!bad.ok && bad.errors.map((e) => `${e.path}: ${e.message}`)).toEqual(['tenants[0].acceptFrom: must be known or any']);
  });
});

describe('roles: hub, spoke, mesh; NAT, liveness timers, path MTU, mssClamp', () => {
  const spoke = (...lines: string[]) => ['underlay: { local: 10.0.0.1 }', ...lines, 'tenants: [ { name: blue, vni: 5001 } ]'].join('\n');

  it('normalizes a spoke with its hubs (port defaults to underlay.port) and timers', () => {
    const c = ok(
      [
        'underlay: { local: 10.0.0.1, port: 8472 }',
        'role: spoke',
        'nat: true',
        'keepalive: 20',
        'deadInterval: 1.5',
        'hubs: [ { address: 10.0.0.10 }, { address: 10.0.0.11, port: 4789, mtu: 1400 } ]',
        'tenants: [ { name: blue, vni: 5001, mssClamp: auto } ]',
      ].join('\n'),
    );
    expect(c).toMatchObject({
      role: 'spoke',
      nat: true,
      keepalive: 20,
      deadInterval: 1.5,
      pmtuDiscovery: true,
      hubs: [
        { address: '10.0.0.10', family: 4, port: 8472, mtu: null },
        { address: '10.0.0.11', family: 4, port: 4789, mtu: 1400 },
      ],
    });
    expect(c.tenants[0]!.mssClamp).toBe('auto');
    expect(ok(spoke('role: hub', 'pmtuDiscovery: false'))).toMatchObject({ role: 'hub', hubs: [], nat: false, pmtuDiscovery: false });
    expect(ok(blue('mssClamp: 1360')).tenants[0]!.mssClamp).toBe(1360);
  });

  it('names a bad role, timer, mssClamp, and a bad hub entry', () => {
    expect(errors(spoke('role: star'))).toEqual(['role: must be mesh, hub or spoke']);
    expect(errors(spoke('role: spoke', 'hubs: [ { address: 10.0.0.10 } ]', 'keepalive: 0', 'deadInterval: 0.1', 'nat: yes-please'))).toEqual([
      'keepalive: must be a number of seconds 1..3600',
      'deadInterval: must be a number of seconds 0.5..3600',
      'nat: must be true or false (received the string "yes-please")',
    ]);
    expect(errors(blue('mssClamp: 100'))).toEqual(['tenants[0].mssClamp: must be auto, off or an integer 536..65495 (the TCP MSS to clamp to)']);
    expect(errors(blue('mssClamp: sometimes'))).toEqual(['tenants[0].mssClamp: must be auto, off or an integer 536..65495 (the TCP MSS to clamp to)']);
    expect(errors(spoke('role: spoke', 'hubs: [ 10.0.0.10, { address: 10.0.0.11, MTU: 1400 }, { port: 70000, mtu: 100 } ]'))).toEqual([
      'hubs[0]: must be a mapping like { address: 10.0.0.10 } (received the string "10.0.0.10")',
      'hubs[1].MTU: unknown key (did you mean mtu?)',
      'hubs[2].port: must be an integer 1..65535',
      'hubs[2].mtu: must be an integer 576..65535',
      'hubs[2].address: is required',
    ]);
  });

  it('a spoke needs hubs; only a spoke has hubs or NAT; a spoke floods to its hub', () => {
    expect(errors(spoke('role: spoke'))).toEqual(['hubs: a spoke needs at least one hub, like hubs: [ { address: 10.0.0.10 } ]']);
    expect(errors(spoke('role: spoke', 'hubs: []'))).toEqual(['hubs: a spoke needs at least one hub, like hubs: [ { address: 10.0.0.10 } ]']);
    expect(errors(spoke('role: hub', 'nat: true', 'hubs: [ { address: 10.0.0.10 } ]'))).toEqual([
      "nat: only a spoke is configured as behind NAT (role is hub); a hub learns NAT'd spokes from their probes",
      'hubs: only a spoke has hubs (role is hub)',
    ]);
    expect(errors(spoke('hubs: [ { address: 10.0.0.10 } ]'))).toEqual(['hubs: only a spoke has hubs (role is mesh)']);
    expect(
      errors(
        [
          'underlay: { local: 10.0.0.1 }',
          'role: spoke',
          'hubs: [ { address: 10.0.0.10 } ]',
          'tenants: [ { name: blue, vni: 5001, flood: [ 10.0.0.2 ] } ]',
        ].join('\n'),
      ),
    ).toEqual(['tenants[0].flood: a spoke floods to its active hub only: list the hubs under hubs, not here']);
  });

  it('checks hub addresses against the underlay: family, this host, duplicates, MTU within the link', () => {
    expect(
      errors(
        spoke(
          'role: spoke',
          'hubs: [ { address: "2001:db8::10" }, { address: 10.0.0.1 }, { address: 10.0.0.10 }, { address: 10.0.0.10, port: 4789 }, { address: 10.0.0.11, mtu: 1600 } ]',
        ),
      ),
    ).toEqual([
      'hubs[0].address: IPv6 VTEP but underlay.local is IPv4',
      'hubs[1].address: must not be underlay.local (10.0.0.1), this host',
      'hubs[3].address: duplicate hub 10.0.0.10 port 4789 (also hubs[2])',
      'hubs[4].mtu: must be at most underlay.mtu (1500): the path carries no more than the link',
    ]);
    expect(ok(spoke('role: spoke', 'hubs: [ { address: 10.0.0.10 }, { address: 10.0.0.10, port: 4790 } ]')).hubs).toHaveLength(2);
    expect(errors('underlay: { local: "2001:db8::1" }\nrole: spoke\nhubs: [ { address: "2001:db8::10", mtu: 1200 } ]\ntenants: []')).toEqual([
      'hubs[0].mtu: must be at least 1280 toward an IPv6 hub',
    ]);
  });
});

describe('identity, keys and encryption (#12)', () => {
  const K1 = Buffer.alloc(32, 1).toString('base64');
  const K2 = Buffer.alloc(32, 2).toString('base64');
  const ID = 'identity: { privateKeyFile: /etc/vtepd/private.key }';

  it('without an identity every tenant is plain, with one every tenant is encrypted unless it says off', () => {
    expect(ok('underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1 } ]').tenants[0]!.encryption).toBe('off');
    const c = ok(
      `${ID}\nunderlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, ports: [ { tap: a0 } ] }, { name: b, vni: 2, encryption: off, ports: [ { tap: b0 } ] } ]`,
    );
    expect(c.identity).toEqual({ privateKeyFile: '/etc/vtepd/private.key', rekeyInterval: 120 });
    expect(c.tenants.map((t) => t.encryption)).toEqual(['required', 'off']);
    // The TAP MTU leaves room for the 32 bytes of transport header and tag.
    expect(c.tenants.map((t) => t.ports[0]!.mtu)).toEqual([1418, 1450]);
  });

  it('keeps the keys of hubs, spokes and flood VTEPs', () => {
    const spoke = ok(`${ID}\nunderlay: { local: 10.0.0.1 }\nrole: spoke\nhubs: [ { address: 10.0.0.10, publicKey: "${K1}" } ]\ntenants: []`);
    expect(spoke.hubs[0]!.publicKey).toBe(K1);
    const hub = ok(
      `${ID}\nunderlay: { local: 10.0.0.1 }\nrole: hub\nspokes: [ { publicKey: "${K1}", vnis: [1, 1], name: site-a }, { publicKey: "${K2}", vnis: [1] } ]\ntenants: [ { name: a, vni: 1 } ]`,
    );
    expect(hub.spokes).toEqual([
      { publicKey: K1, vnis: [1], name: 'site-a' },
      { publicKey: K2, vnis: [1], name: 'spoke1' },
    ]);
    const mesh = ok(`${ID}\nunderlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, flood: [ { vtep: 10.0.0.2, publicKey: "${K1}" } ] } ]`);
    expect(mesh.tenants[0]!.vtepKeys).toEqual({ '10.0.0.2': K1 });
  });

  it('names the field of every key and encryption mistake', () => {
    expect(errors(`underlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, encryption: required } ]`)).toEqual([
      'tenants[0].encryption: required needs a node identity: identity: { privateKeyFile: PATH } (make one with vtepd genkey), or set encryption: off',
    ]);
    expect(errors(`${ID}\nunderlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, flood: [ 10.0.0.2 ] } ]`)).toEqual([
      'tenants[0].flood[0]: VTEP 10.0.0.2 has no publicKey, and encryption is required (the default on a node with an identity): write { vtep: 10.0.0.2, publicKey: KEY }, or set encryption: off',
    ]);
    expect(errors(`${ID}\nunderlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, encap: gre } ]`)).toEqual([
      'tenants[0].encap: encryption (the default on a node with an identity) is for VXLAN only; GRE-TAP and NVGRE tenants need encryption: off',
    ]);
    expect(errors(`${ID}\nunderlay: { local: 10.0.0.1 }\nrole: spoke\nhubs: [ { address: 10.0.0.10 } ]\ntenants: []`)).toEqual([
      "hubs[0]: a spoke with an identity pins each hub by its key: add publicKey (the hub's, from vtepd pubkey)",
    ]);
    expect(errors(`underlay: { local: 10.0.0.1 }\nrole: hub\nspokes: [ { publicKey: "${K1}", vnis: [1] } ]\ntenants: []`)).toEqual([
      'spokes: needs a node identity: identity: { privateKeyFile: PATH } (make one with vtepd genkey)',
    ]);
    expect(
      errors(`${ID}\nunderlay: { local: 10.0.0.1 }\nrole: hub\nspokes: [ { publicKey: "${K1}", vnis: [1] }, { publicKey: "${K1}", vnis: [2] } ]\ntenants: []`),
    ).toEqual(['spokes[1].publicKey: duplicate spoke publicKey (also spokes[0])']);
    expect(errors(`${ID}\nunderlay: { local: 10.0.0.1 }\nrole: hub\nspokes: [ { publicKey: "abc", vnis: [1] } ]\ntenants: []`)).toEqual([
      'spokes[0].publicKey: must be an X25519 public key: 32 bytes of base64 (44 characters), as `vtepd pubkey` prints it',
    ]);
    expect(
      errors(
        `${ID}\nunderlay: { local: 10.0.0.1 }\ntenants: [ { name: a, vni: 1, flood: [ { vtep: 10.0.0.2, publicKey: "${K1}" }, { vtep: 10.0.0.3, publicKey: "${K1}" } ] } ]`,
      ),
    ).toEqual(["tenants[0].flood[1].publicKey: this publicKey is VTEP 10.0.0.2's in tenants[0].flood[0]; a key names one VTEP"]);
  });

  it('warns about a hub with an identity that lists no spokes', () => {
    const r = parseConfig(`${ID}\nunderlay: { local: 10.0.0.1 }\nrole: hub\ntenants: []`);
    expect(r.ok && r.warnings?.map((w) => `${w.path}: ${w.message}`)).toEqual([
      'spokes: no spokes are listed: a hub with an identity admits only the spokes whose keys it lists',
    ]);
  });
});

describe('directory (#13)', () => {
  const dir = (body: string) => `underlay: { local: 10.0.0.1 }\ntenants: [ { name: blue, vni: 5001, ports: [ { tap: blue0 } ] } ]\ndirectory: ${body}\n`;
  it('is null without the key; endpoints with the default prefix and lease TTL', () => {
    expect(ok(blue()).directory).toBeNull();
    expect(ok(dir('{ etcd: { endpoints: [ "http://10.0.0.9:2379/" ] } }')).directory).toEqual({
      etcd: { endpoints: ['http://10.0.0.9:2379'], prefix: '/vtepd/v1', leaseTtl: 10 },
      evpn: null,
      freeze: { moves: 5, window: 10, hold: 60 },
    });
    expect(
      ok(dir('{ etcd: { endpoints: [ "http://[2001:db8::9]:2379", "http://e2:2379" ], prefix: /lab/x, leaseTtl: 3 }, freeze: { moves: 2 } }')).directory,
    ).toEqual({
      etcd: { endpoints: ['http://[2001:db8::9]:2379', 'http://e2:2379'], prefix: '/lab/x', leaseTtl: 3 },
      evpn: null,
      freeze: { moves: 2, window: 10, hold: 60 },
    });
    expect(errors(dir('{ etcd: { endpoints: [ "http://e:2379" ] }, freeze: { moves: 0 } }'))).toEqual(['directory.freeze.moves: must be an integer 1..1000']);
  });
  it('a tenant may have no flood list with a directory', () => {
    expect(ok(dir('{ etcd: { endpoints: [ "http://10.0.0.9:2379" ] } }')).tenants[0]!.flood).toEqual([]);
  });
  it('names the bad field', () => {
    expect(errors(dir('{ etcd: { endpoints: [ "10.0.0.9:2379" ] } }'))).toEqual([
      'directory.etcd.endpoints[0]: must be an http:// URL like "http://10.0.0.9:2379" (https:// is not supported yet: keep etcd on a management network)',
    ]);
    expect(errors(dir('{ etcd: { endpoints: [ "ftp://e:2379" ] } }'))).toEqual([
      'directory.etcd.endpoints[0]: must be an http:// URL like "http://10.0.0.9:2379" (https:// is not supported yet: keep etcd on a management network)',
    ]);
    expect(errors(dir('{ etcd: { endpoints: [] } }'))).toEqual([
      'directory.etcd.endpoints: must list at least one etcd client URL like "http://10.0.0.9:2379"',
    ]);
    expect(errors(dir('{ etcd: { endpoints: [ "https://e:2379" ] } }'))).toEqual([
      'directory.etcd.endpoints[0]: must be an http:// URL like "http://10.0.0.9:2379" (https:// is not supported yet: keep etcd on a management network)',
    ]);
    expect(errors(dir('{ etcd: {} }'))).toEqual(['directory.etcd.endpoints: is required']);
    expect(errors(dir('{ etcd: { endpoints: [ "http://e:2379" ], prefix: vtepd/ } }'))).toEqual([
      'directory.etcd.prefix: must be a key prefix like /vtepd/v1: starting with "/", not ending with "/", no whitespace',
    ]);
    expect(errors(dir('{ etcd: { endpoints: [ "http://e:2379" ], leaseTtl: 1 } }'))).toEqual(['directory.etcd.leaseTtl: must be an integer 2..3600']);
    expect(errors(dir('{ etcd: { endpoints: [ "http://e:2379" ], ttl: 3 } }'))).toEqual(['directory.etcd.ttl: unknown key']);
    expect(errors(dir('{ consul: {} }'))).toEqual([
      'directory: needs a backend: etcd (like { etcd: { endpoints: [ "http://10.0.0.9:2379" ] } }) or evpn (like { evpn: { asn: 65000, neighbors: [ { address: 10.0.0.2 } ] } })',
      'directory.consul: unknown key',
    ]);
  });
});
