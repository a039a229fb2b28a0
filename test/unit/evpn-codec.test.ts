/**
 * EVPN encodings (src/evpn/codec.ts) against fixed vectors written from the RFCs' layouts,
 * and the same bytes gobgpd 3.10 put on the wire for these routes (its ListPath with
 * enable_attribute_binary, recorded once; test/netns/evpn-gobgp.test.ts checks them live).
 * Then the decoding of GoBGP's API paths (google.protobuf.Any unpacked by proto-loader).
 */
import { describe, expect, it } from 'vitest';
import {
  encapBytes,
  imetNlriBytes,
  ipText,
  macIpNlriBytes,
  mobilityBytes,
  parseAttribute,
  parseRd,
  parseRt,
  pmsiBytes,
  rdBytes,
  rdText,
  rtBytes,
  rtText,
  splitCommunities,
} from '../../src/evpn/codec.js';
import { decodePath, imetPath, macPath } from '../../src/evpn/gobgp.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('EVPN codec: text forms', () => {
  it('parses and prints RDs (type 1 router-id:N as FRR uses, type 0 ASN:N) and RTs (ASN:VNI)', () => {
    expect(parseRd('10.9.9.1:100')).toEqual({ kind: 'ip', admin: '10.9.9.1', assigned: 100 });
    expect(parseRd('65000:7')).toEqual({ kind: 'asn', admin: 65000, assigned: 7 });
    expect(rdText(parseRd('10.9.9.1:100'))).toBe('10.9.9.1:100');
    expect(parseRt('65000:100')).toEqual({ asn: 65000, value: 100 });
    expect(rtText(parseRt('4200000000:100'))).toBe('4200000000:100');
  });

  it('refuses malformed RDs and RTs with the value in the message', () => {
    expect(() => parseRd('10.9.9.1:70000')).toThrow('RD: must be an integer 0..65535, not "70000"');
    expect(() => parseRd('100')).toThrow('RD: expected ROUTER-ID:N or ASN:N, not "100"');
    expect(() => parseRd('10.9.9:1')).toThrow('RD: "10.9.9" is not an IPv4 address');
    expect(() => parseRt('65000')).toThrow('RT: expected ASN:N, not "65000"');
    expect(() => parseRt('4200000000:70000')).toThrow('RT: must be an integer 0..65535, not "70000"');
  });
});

describe('EVPN codec: wire bytes (RFC layouts)', () => {
  it('RD type 1 (RFC 4364 §4.2) and type 0', () => {
    expect(hex(rdBytes(parseRd('10.9.9.1:100')))).toBe('0001' + '0a090901' + '0064');
    expect(hex(rdBytes(parseRd('65000:100')))).toBe('0000' + 'fde8' + '00000064');
  });

  it('route target (RFC 4360 §3.1, RFC 5668), encapsulation VXLAN (RFC 9012, RFC 8365), MAC mobility (RFC 7432 §7.7)', () => {
    expect(hex(rtBytes(parseRt('65000:100')))).toBe('0002' + 'fde8' + '00000064');
    expect(hex(rtBytes(parseRt('4200000000:100')))).toBe('0202' + 'fa56ea00' + '0064');
    expect(hex(encapBytes())).toBe('030c' + '00000000' + '0008');
    expect(hex(mobilityBytes(1))).toBe('0600' + '00' + '00' + '00000001');
    expect(hex(mobilityBytes(0x01020304, true))).toBe('0600' + '01' + '00' + '01020304');
  });

  it('PMSI tunnel: ingress replication (6), label = raw VNI, tunnel id = VTEP (RFC 6514 §5, RFC 8365 §5.1.3)', () => {
    expect(hex(pmsiBytes(100, '10.9.9.1'))).toBe('00' + '06' + '000064' + '0a090901');
    expect(hex(pmsiBytes(0xabcdef, '10.9.9.1'))).toBe('0006abcdef0a090901');
  });

  it('type-2 and type-3 NLRIs (RFC 7432 §7.2, §7.3); Label1 is the raw 24-bit VNI', () => {
    const rd = parseRd('10.9.9.1:100');
    const esiTag = '00'.repeat(10) + '00000000';
    expect(hex(macIpNlriBytes(rd, '02:00:00:00:00:01', '10.1.0.1', 100))).toBe(
      '02' + '25' + '00010a0909010064' + esiTag + '30' + '020000000001' + '20' + '0a010001' + '000064',
    );
    expect(hex(macIpNlriBytes(rd, '02:00:00:00:00:01', null, 100))).toBe('02' + '21' + '00010a0909010064' + esiTag + '30' + '020000000001' + '00' + '000064');
    expect(macIpNlriBytes(rd, '02:00:00:00:00:01', '2001:db8::1', 100)[1]).toBe(8 + 10 + 4 + 1 + 6 + 1 + 16 + 3);
    expect(hex(imetNlriBytes(rd, '10.9.9.1'))).toBe('03' + '11' + '00010a0909010064' + '00000000' + '20' + '0a090901');
  });

  it('matches what gobgpd 3.10 sent for a type-2 route with mobility sequence 1', () => {
    // ListPath(enable_attribute_binary) of the route macPath() below builds, as gobgpd 3.10.0 reported it.
    const communities = parseAttribute(Buffer.from('c010180002fde800000064030c0000000000080600000000000001', 'hex'));
    expect(communities).toMatchObject({ flags: 0xc0, type: 16 });
    expect(splitCommunities(communities.value).map(hex)).toEqual([rtBytes(parseRt('65000:100')), encapBytes(), mobilityBytes(1)].map(hex));
    const reach = parseAttribute(Buffer.from('800e30001946040a09090100022500010a0909010064000000000000000000000000000030020000000001200a010001000064', 'hex'));
    expect(reach.type).toBe(14);
    // MP_REACH_NLRI (RFC 4760 §3): AFI 25, SAFI 70, next hop length 4, 10.9.9.1, reserved 0, NLRI.
    expect(hex(reach.value)).toBe(
      '0019' + '46' + '04' + '0a090901' + '00' + hex(macIpNlriBytes(parseRd('10.9.9.1:100'), '02:00:00:00:00:01', '10.1.0.1', 100)),
    );
  });

  it('reads an extended-length attribute and refuses a truncated one; prints addresses', () => {
    expect(parseAttribute(Buffer.from('d0100008' + '030c000000000008', 'hex')).value).toEqual(encapBytes());
    expect(() => parseAttribute(Buffer.from('c0100803', 'hex'))).toThrow('path attribute 16: 8 bytes announced, 1 present');
    expect(ipText(Buffer.from('0a090901', 'hex'))).toBe('10.9.9.1');
    expect(ipText(Buffer.from('20010db8000000000000000000000001', 'hex'))).toBe('2001:db8::1');
    expect(ipText(Buffer.alloc(3))).toBe('');
  });
});

describe('GoBGP API paths', () => {
  const mac = { rd: '10.9.9.1:100', rts: ['65000:100'], vni: 100, mac: '02:00:00:00:00:01', ip: '10.1.0.1', nexthop: '10.9.9.1', seq: 1 };

  it('a type-2 path round-trips through the decoder (mobility, RT, encapsulation, Label1 = VNI)', () => {
    expect(decodePath(macPath(mac))).toEqual({
      type: 2,
      rd: '10.9.9.1:100',
      vni: 100,
      mac: '02:00:00:00:00:01',
      ip: '10.1.0.1',
      nexthop: '10.9.9.1',
      seq: 1,
      sticky: false,
      rts: ['65000:100'],
      pmsi: null,
      encap: 8,
      withdrawal: false,
      neighbor: '',
    });
  });

  it('a MAC-only route: no mobility community, and GoBGP\'s "<nil>" IP is no IP', () => {
    const p = macPath({ ...mac, ip: undefined, seq: undefined });
    expect(decodePath(p)).toMatchObject({ ip: null, seq: null });
    p.nlri.ipAddress = '<nil>';
    p.neighborIp = '10.77.0.1';
    p.isWithdraw = true;
    expect(decodePath(p)).toMatchObject({ ip: null, neighbor: '10.77.0.1', withdrawal: true });
  });

  it('a type-3 path: PMSI ingress replication with label = VNI, originator = next hop', () => {
    const p = imetPath({ rd: '10.9.9.1:100', rts: ['65000:100'], vni: 100, nexthop: '10.9.9.1' });
    expect(p.pattrs.at(-1)).toMatchObject({ '@type': 'type.googleapis.com/apipb.PmsiTunnelAttribute', type: 6, label: 100 });
    expect(decodePath(p)).toMatchObject({ type: 3, vni: 100, mac: null, ip: '10.9.9.1', nexthop: '10.9.9.1', pmsi: 6, encap: 8, rts: ['65000:100'] });
  });

  it('other families and route types are not EVPN routes of ours', () => {
    expect(decodePath({ nlri: { '@type': 'type.googleapis.com/apipb.IPAddressPrefix', prefix: '10.0.0.0', prefixLen: 8 } })).toBeNull();
  });
});
