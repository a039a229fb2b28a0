/**
 * EVPN encodings as FRR uses them (issue #17), in two forms: the text a person reads (RD
 * "10.0.0.1:100", RT "65000:100") parsed and printed here, and the bytes on the wire, built
 * here only to check what gobgpd sends (test/netns/evpn-gobgp.test.ts compares them with the
 * path attributes gobgpd reports in binary). vtepd never builds a BGP message itself.
 *
 *   Route Distinguisher, type 1 (RFC 4364 §4.2): 0x0001 | IPv4 address (4) | assigned (2)
 *   Route Target, 2-octet AS (RFC 4360 §3.1):    0x00 0x02 | ASN (2) | local admin (4)
 *   Route Target, 4-octet AS (RFC 5668 §2):      0x02 0x02 | ASN (4) | local admin (2)
 *   Encapsulation (RFC 9012 §4.1, RFC 8365 §5.1.3): 0x03 0x0c | reserved (4) | tunnel type (2), VXLAN = 8
 *   MAC Mobility (RFC 7432 §7.7):               0x06 0x00 | flags (1, bit 0 sticky) | reserved (1) | sequence (4)
 *   PMSI Tunnel attribute (RFC 6514 §5, RFC 8365 §5.1.3): flags (1) | tunnel type (1), ingress
 *     replication = 6 | label (3): the raw 24-bit VNI | tunnel id: the VTEP's IPv4 address (4)
 *   Label1 of a type-2 route: the raw 24-bit VNI (RFC 8365 §5.1.3).
 *   NLRI (RFC 7432 §7): route type (1) | length (1) | route
 *     type 2 (§7.2): RD (8) | ESI (10) | Ethernet tag (4) | MAC length in bits (1), 48 | MAC (6)
 *                    | IP length in bits (1), 0/32/128 | IP (0/4/16) | Label1 (3)
 *     type 3 (§7.3): RD (8) | Ethernet tag (4) | IP length in bits (1) | originating router's IP
 *   Path attribute (RFC 4271 §4.3): flags (1, 0x10 extended length) | type (1) | length (1 or 2) | value
 */
import { Address4, Address6 } from 'ip-address';

/** RFC 8365 §5.1.3: the encapsulation community's tunnel type for VXLAN. */
export const TUNNEL_VXLAN = 8;
/** RFC 6514 §5: PMSI tunnel type ingress replication (head-end replication). */
export const PMSI_INGRESS_REPLICATION = 6;

export type Rd = { kind: 'ip'; admin: string; assigned: number } | { kind: 'asn'; admin: number; assigned: number };
export interface Rt {
  asn: number;
  value: number;
}

function uint(text: string, max: number, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) > max) throw new Error(`${what}: must be an integer 0..${max}, not "${text}"`);
  return Number(text);
}

function ipv4(text: string, what: string): string {
  if (!Address4.isValid(text) || text.includes('/')) throw new Error(`${what}: "${text}" is not an IPv4 address`);
  return new Address4(text).correctForm();
}

/** "10.0.0.1:100" (type 1, what FRR uses: router-id:N) or "65000:100" (type 0). */
export function parseRd(text: string): Rd {
  const i = text.lastIndexOf(':');
  if (i <= 0) throw new Error(`RD: expected ROUTER-ID:N or ASN:N, not "${text}"`);
  const [left, right] = [text.slice(0, i), text.slice(i + 1)];
  if (left.includes('.')) return { kind: 'ip', admin: ipv4(left, 'RD'), assigned: uint(right, 0xffff, 'RD') };
  return { kind: 'asn', admin: uint(left, 0xffff, 'RD'), assigned: uint(right, 0xffffffff, 'RD') };
}

export function rdText(rd: Rd): string {
  return `${rd.admin}:${rd.assigned}`;
}

/** "65000:100" (FRR's ASN:VNI); an ASN above 65535 takes the 4-octet form, its value 16 bits. */
export function parseRt(text: string): Rt {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) throw new Error(`RT: expected ASN:N, not "${text}"`);
  const asn = uint(m[1], 0xffffffff, 'RT');
  return { asn, value: uint(m[2], asn > 0xffff ? 0xffff : 0xffffffff, 'RT') };
}

export function rtText(rt: Rt): string {
  return `${rt.asn}:${rt.value}`;
}

/** The RD's 8 bytes. */
export function rdBytes(rd: Rd): Buffer {
  const b = Buffer.alloc(8);
  if (rd.kind === 'ip') {
    b.writeUInt16BE(1, 0);
    ipv4Bytes(rd.admin).copy(b, 2);
    b.writeUInt16BE(rd.assigned, 6);
  } else {
    b.writeUInt16BE(rd.admin, 2);
    b.writeUInt32BE(rd.assigned, 4);
  }
  return b;
}

/** A route target's 8-byte extended community (transitive, sub-type 2). */
export function rtBytes(rt: Rt): Buffer {
  const b = Buffer.alloc(8);
  const wide = rt.asn > 0xffff;
  b[0] = wide ? 0x02 : 0x00;
  b[1] = 0x02;
  if (wide) {
    b.writeUInt32BE(rt.asn, 2);
    b.writeUInt16BE(rt.value, 6);
  } else {
    b.writeUInt16BE(rt.asn, 2);
    b.writeUInt32BE(rt.value, 4);
  }
  return b;
}

/** The encapsulation extended community for `tunnelType` (VXLAN: 8). */
export function encapBytes(tunnelType = TUNNEL_VXLAN): Buffer {
  const b = Buffer.from([0x03, 0x0c, 0, 0, 0, 0, 0, 0]);
  b.writeUInt16BE(tunnelType, 6);
  return b;
}

/** The MAC Mobility extended community. */
export function mobilityBytes(seq: number, sticky = false): Buffer {
  const b = Buffer.from([0x06, 0x00, sticky ? 1 : 0, 0, 0, 0, 0, 0]);
  b.writeUInt32BE(seq, 4);
  return b;
}

/** The PMSI Tunnel attribute's value for ingress replication toward `vtep` with label `vni`. */
export function pmsiBytes(vni: number, vtep: string): Buffer {
  const b = Buffer.alloc(5);
  b[1] = PMSI_INGRESS_REPLICATION;
  b.writeUIntBE(vni, 2, 3);
  return Buffer.concat([b, ipv4Bytes(vtep)]);
}

/** A type-2 NLRI (single-homed: ESI 0, Ethernet tag 0) with Label1 = VNI. */
export function macIpNlriBytes(rd: Rd, mac: string, ip: string | null, vni: number): Buffer {
  const addr = ip === null ? Buffer.alloc(0) : ipBytes(ip);
  const macb = Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
  const label = Buffer.alloc(3);
  label.writeUIntBE(vni, 0, 3);
  const route = Buffer.concat([rdBytes(rd), Buffer.alloc(10 + 4), Buffer.from([48]), macb, Buffer.from([addr.length * 8]), addr, label]);
  return Buffer.concat([Buffer.from([2, route.length]), route]);
}

/** A type-3 NLRI (Ethernet tag 0) of the VTEP `ip`. */
export function imetNlriBytes(rd: Rd, ip: string): Buffer {
  const addr = ipBytes(ip);
  const route = Buffer.concat([rdBytes(rd), Buffer.alloc(4), Buffer.from([addr.length * 8]), addr]);
  return Buffer.concat([Buffer.from([3, route.length]), route]);
}

export interface PathAttribute {
  flags: number;
  type: number;
  value: Buffer;
}

/** One path attribute from its bytes (what gobgpd reports in `pattrsBinary`). */
export function parseAttribute(b: Uint8Array): PathAttribute {
  const ext = (b[0] & 0x10) !== 0;
  const len = ext ? (b[2] << 8) | b[3] : b[2];
  const start = ext ? 4 : 3;
  if (b.length < start + len) throw new Error(`path attribute ${b[1]}: ${len} bytes announced, ${b.length - start} present`);
  return { flags: b[0], type: b[1], value: Buffer.from(b.subarray(start, start + len)) };
}

function ipBytes(ip: string): Buffer {
  if (!ip.includes(':')) return ipv4Bytes(ip);
  return Buffer.from(new Address6(ip).toUnsignedByteArray());
}

export function ipv4Bytes(ip: string): Buffer {
  return Buffer.from(ipv4(ip, 'address').split('.').map(Number));
}

/** IPv4 (4 bytes) or IPv6 (16) as text; '' for anything else. */
export function ipText(b: Uint8Array): string {
  if (b.length === 4) return Address4.fromUnsignedByteArray([...b]).correctForm();
  if (b.length === 16) return Address6.fromUnsignedByteArray([...b]).correctForm();
  return '';
}

/** The 8-byte communities of an extended-communities attribute's value (RFC 4360 §2). */
export function splitCommunities(value: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + 8 <= value.length; i += 8) out.push(Buffer.from(value.subarray(i, i + 8)));
  return out;
}
