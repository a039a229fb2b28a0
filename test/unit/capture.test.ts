/**
 * What `vtepd capture` reads off the underlay and prints: VXLAN, GRE-TAP and NVGRE packets
 * over IPv4 and IPv6 taken apart and given to the tenant the data path would give them to;
 * the live view's lines; its time order across sources; `-c` meaning --config on capture.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { LINKTYPE_ETHERNET, pcapHeader, pcapRecord, tenantOf, underlayDecap, underlayFilter, type TenantWire } from '../../src/daemon/capture.js';
import { describeEthernet, frameJson, frameLine, LiveView } from '../../src/cli/capture-view.js';
import type { Encap } from '../../src/core/encap.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';

const hex = (s: string) => Buffer.from(s.replace(/[\s:]/g, ''), 'hex');
const M1 = '02:00:00:00:aa:01';
const M2 = '02:00:00:00:aa:02';

/** An inner frame: M1 -> M2, IPv4 10.1.0.1 -> 10.1.0.2, ICMP echo request (8 bytes). */
const ICMP_FRAME = Buffer.concat([hex(`${M2}${M1}0800`), hex('4500001c00004000400100000a0100010a010002'), hex('0800f7ff00000000')]);

function ipv4(proto: number, payload: Buffer, src = '0a000001', dst = '0a000002'): Buffer {
  const h = hex(`4500000000004000 40${proto.toString(16).padStart(2, '0')}0000 ${src}${dst}`);
  h.writeUInt16BE(20 + payload.length, 2);
  return Buffer.concat([hex('020000000002020000000001 0800'), h, payload]);
}

function ipv6(next: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payload.length, 4);
  h[6] = next;
  h[7] = 64;
  hex('20010db8000000000000000000000001').copy(h, 8);
  hex('20010db8000000000000000000000002').copy(h, 24);
  return Buffer.concat([hex('020000000002020000000001 86dd'), h, payload]);
}

const gre = (key: number, flags = 0x2000) => {
  const h = Buffer.alloc(flags & 0x8000 ? 12 : 8);
  h.writeUInt16BE(flags, 0);
  h.writeUInt16BE(0x6558, 2);
  h.writeUInt32BE(key >>> 0, flags & 0x8000 ? 8 : 4);
  return Buffer.concat([h, ICMP_FRAME]);
};
const vxlan = (vni: number, port = 4789) => {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(50000, 0);
  h.writeUInt16BE(port, 2);
  h[8] = 0x08;
  h.writeUIntBE(vni, 12, 3);
  return Buffer.concat([h, ICMP_FRAME]);
};

const wire = (name: string, vni: number, ...encaps: Encap[]): TenantWire => ({ name, vni, encaps: new Set(encaps) });

describe('capture: the underlay packets taken apart', () => {
  it('GRE-TAP over IPv4 and IPv6: the addresses, the whole key, the inner frame', () => {
    for (const [pkt, src, dst] of [
      [ipv4(47, gre(5001)), '10.0.0.1', '10.0.0.2'],
      [ipv6(47, gre(5001)), '2001:db8::1', '2001:db8::2'],
    ] as const) {
      const o = underlayDecap(LINKTYPE_ETHERNET, pkt, 4789);
      expect(o).toMatchObject({ encap: 'gre', key: 5001, src, dst });
      expect(o!.inner.equals(ICMP_FRAME)).toBe(true);
    }
  });

  it('a GRE checksum word is skipped; no key, another protocol or version 1 is not a tenant’s packet', () => {
    expect(underlayDecap(LINKTYPE_ETHERNET, ipv4(47, gre(5001, 0xa000)), 4789)).toMatchObject({ key: 5001 });
    expect(underlayDecap(LINKTYPE_ETHERNET, ipv4(47, gre(5001, 0x0000)), 4789)).toBeNull();
    expect(underlayDecap(LINKTYPE_ETHERNET, ipv4(47, gre(5001, 0x2001)), 4789)).toBeNull();
    const ip = gre(5001);
    ip.writeUInt16BE(0x0800, 2);
    expect(underlayDecap(LINKTYPE_ETHERNET, ipv4(47, ip), 4789)).toBeNull();
  });

  it('VXLAN to the underlay port only', () => {
    expect(underlayDecap(LINKTYPE_ETHERNET, ipv6(17, vxlan(5002)), 4789)).toMatchObject({ encap: 'vxlan', key: 5002, src: '2001:db8::1' });
    expect(underlayDecap(LINKTYPE_ETHERNET, ipv4(17, vxlan(5002, 8472)), 4789)).toBeNull();
  });

  it('the tenant is the data path’s: the whole key for GRE-TAP, else key >> 8 for NVGRE, by what each tenant takes', () => {
    const ts = [wire('blue', 5001, 'gre'), wire('green', 0x12345, 'nvgre'), wire('red', 5002, 'vxlan'), wire('mixed', 7000, 'vxlan', 'nvgre')];
    expect(tenantOf(ts, { encap: 'gre', key: 5001 })).toEqual({ tenant: 'blue', encap: 'gre' });
    expect(tenantOf(ts, { encap: 'gre', key: (0x12345 << 8) | 0x7f })).toEqual({ tenant: 'green', encap: 'nvgre' });
    expect(tenantOf(ts, { encap: 'gre', key: 7000 << 8 })).toEqual({ tenant: 'mixed', encap: 'nvgre' });
    expect(tenantOf(ts, { encap: 'gre', key: 5002 })).toBeNull(); // red takes VXLAN only
    expect(tenantOf(ts, { encap: 'vxlan', key: 5002 })).toEqual({ tenant: 'red', encap: 'vxlan' });
  });

  it('the tcpdump filter asks for what the tenant’s encapsulations put on the wire', () => {
    expect(underlayFilter(new Set(['vxlan']), 4789)).toBe('udp dst port 4789');
    expect(underlayFilter(new Set(['nvgre']), 4789, '2001:db8::2')).toBe('(ip proto 47 or ip6 proto 47) and host 2001:db8::2');
    expect(underlayFilter(new Set(['vxlan', 'gre']), 8472, '10.0.0.2')).toBe('(udp dst port 8472 or ip proto 47 or ip6 proto 47) and host 10.0.0.2');
  });
});

describe('capture: the live view', () => {
  const rec = (data: Buffer, tsUsec = 5) => ({ tsSec: 1_700_000_000, tsUsec, origLen: data.length, data });

  it('describes frames as tcpdump -e does: ARP, ICMP, TCP flags, UDP ports, IPv6, a VLAN tag', () => {
    expect(describeEthernet(ICMP_FRAME)).toBe(`${M1} > ${M2}, IPv4, 10.1.0.1 > 10.1.0.2: ICMP echo request`);
    const arp = hex(`ffffffffffff${M1}0806 0001080006040001 ${M1}0a010001 000000000000 0a010002`);
    expect(describeEthernet(arp)).toBe(`${M1} > ff:ff:ff:ff:ff:ff, ARP, Request who-has 10.1.0.2 tell 10.1.0.1`);
    const tcp = Buffer.concat([
      hex(`${M2}${M1}8100 0064 0800`),
      hex('450000280000400040060000 0a010001 0a010002'),
      hex('c35014510000000000000000 5002 0000 00000000'),
    ]);
    expect(describeEthernet(tcp)).toBe(`${M1} > ${M2}, vlan 100, IPv4, 10.1.0.1.50000 > 10.1.0.2.5201: TCP [S]`);
    const udp6 = ipv6(17, hex('0035d431000c0000 00000000')).subarray(0);
    expect(describeEthernet(udp6)).toBe('02:00:00:00:00:01 > 02:00:00:00:00:02, IPv6, 2001:db8::1.53 > 2001:db8::2.54321: UDP');
    expect(describeEthernet(hex(`${M2}${M1}88cc 0000`))).toBe(`${M1} > ${M2}, LLDP`);
  });

  it('a line: local time to the microsecond, where and which way, the frame, the length', () => {
    const line = frameLine(rec(ICMP_FRAME), { where: { kind: 'port', port: 'blue0' }, dir: 'rx' });
    expect(line).toMatch(
      new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.000005 port blue0 rx ${M1} > ${M2}, IPv4, 10\\.1\\.0\\.1 > 10\\.1\\.0\\.2: ICMP echo request, length 42$`),
    );
    const pkt = ipv4(47, gre((0x12345 << 8) | 9));
    const outer = frameLine(rec(pkt), {
      where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'nvgre' },
      dir: 'tx',
      encap: 'nvgre',
      key: (0x12345 << 8) | 9,
      inner: 14 + 20 + 8,
    });
    expect(outer).toMatch(/ vtep 10\.0\.0\.2 tx NVGRE vsid 74565 flowid 9: 02:00:00:00:aa:01 > .*ICMP echo request, length 84$/);
    const gre10 = { kind: 'vtep', vtep: '10.0.0.2', encap: 'gre' } as const;
    expect(frameLine(rec(ICMP_FRAME), { where: gre10, dir: 'rx', encap: 'gre' })).toMatch(/^\S+ vtep 10\.0\.0\.2 rx 02:/);
    expect(frameJson(rec(ICMP_FRAME), { where: gre10, dir: 'rx', encap: 'gre' })).toEqual({
      time: '2023-11-14T22:13:20.000005Z',
      where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'gre' },
      dir: 'rx',
      frame: `${M1} > ${M2}, IPv4, 10.1.0.1 > 10.1.0.2: ICMP echo request`,
      length: 42,
    });
  });

  it('prints in time order what two sources delivered out of order, once held long enough', () => {
    const out: string[] = [];
    const view = new LiveView((r, meta) => out.push(`${r.tsUsec} ${meta.dir}`), 100);
    view.push(pcapHeader(LINKTYPE_ETHERNET));
    view.push(pcapRecord(rec(ICMP_FRAME, 300)), { where: { kind: 'port', port: 'blue0' }, dir: 'tx' });
    view.push(pcapRecord(rec(ICMP_FRAME, 100)), { where: { kind: 'port', port: 'blue0' }, dir: 'rx' });
    const t0 = 1_700_000_000_000;
    view.flush(false, t0 + 50);
    expect(out).toEqual([]);
    view.flush(false, t0 + 101);
    expect(out).toEqual(['100 rx', '300 tx']);
    view.push(pcapRecord(rec(ICMP_FRAME, 900)), { where: { kind: 'port', port: 'blue0' }, dir: 'rx' });
    view.flush(true, t0);
    expect(out).toEqual(['100 rx', '300 tx', '900 rx']);
  });
});

describe('capture: flags', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/cli/capture-view.ts', 'src/daemon/capture.ts']), 120_000);

  it('-c is --config (as on every verb); --count has no short form; a tenant or a port is needed', async () => {
    const c = await vtepd(['capture', '--port', 'blue0', '-c', '/nonexistent/vtepd.yaml']);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('/nonexistent/vtepd.yaml');
    expect((await vtepd(['capture', '-s', '/nonexistent.sock'])).stderr).toBe(
      'vtepd: capture: give --tenant NAME, or --port TAP (the port names its tenant)\n',
    );
    expect((await vtepd(['capture', '--help'])).stdout).toMatch(/^ {2}--count <n> /m);
  });
});
