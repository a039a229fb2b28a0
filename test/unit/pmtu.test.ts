/**
 * The too-big replies, judged by tshark's ICMP dissectors (checksums verified) rather
 * than by our own encoder: frames are written to a pcap and read back with tshark.
 */
import { describe, expect, it } from 'vitest';
import { tooBigReply } from '../../src/overlay/pmtu.js';
import { macToBuffer } from '../../src/util/mac.js';
import { dissect } from '../support/pcap.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

function ipv4Tcp(len: number, df: boolean, proto = 6, firstPayloadByte = 0): Buffer {
  const f = Buffer.alloc(14 + len);
  macToBuffer(B).copy(f, 0);
  macToBuffer(A).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(len, 16);
  f.writeUInt16BE(df ? 0x4000 : 0, 20);
  f[22] = 64;
  f[23] = proto;
  Buffer.from([10, 1, 0, 1]).copy(f, 26);
  Buffer.from([10, 1, 0, 2]).copy(f, 30);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(5201, 36);
  f[34 + 0] = firstPayloadByte || f[34];
  return f;
}

function ipv6Tcp(len: number): Buffer {
  const f = Buffer.alloc(14 + len);
  macToBuffer(B).copy(f, 0);
  macToBuffer(A).copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f.writeUInt16BE(len - 40, 18);
  f[20] = 6;
  f[21] = 64;
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(f, 22);
  Buffer.from('20010db8000000000000000000000002', 'hex').copy(f, 38);
  return f;
}

describe('ICMP too-big replies (judged by tshark)', () => {
  it('answers a DF IPv4 packet with type 3 code 4, the MTU, swapped addresses and good checksums', () => {
    const reply = tooBigReply(ipv4Tcp(1500, true), 1400)!;
    expect(reply).not.toBeNull();
    const [row] = dissect(
      [reply],
      ['eth.dst', 'eth.src', 'ip.src', 'ip.dst', 'ip.checksum.status', 'icmp.type', 'icmp.code', 'icmp.mtu', 'icmp.checksum.status', 'tcp.dstport'],
    );
    // checksum.status 1 = good (0 bad, 2 unverified)
    expect(row).toEqual([A, B, '10.1.0.2', '10.1.0.1', '1', '3', '4', '1400', '1', '5201']);
  });

  it('answers an IPv6 packet with packet-too-big (type 2), the MTU and a good checksum', () => {
    const reply = tooBigReply(ipv6Tcp(1500), 1400)!;
    const [row] = dissect([reply], ['eth.dst', 'ipv6.src', 'ipv6.dst', 'icmpv6.type', 'icmpv6.mtu', 'icmpv6.checksum.status']);
    expect(row).toEqual([A, '2001:db8::2', '2001:db8::1', '2', '1400', '1']);
  });

  it('stays silent for IPv4 without DF, for ICMP errors, for non-IP and for a broadcast destination', () => {
    expect(tooBigReply(ipv4Tcp(1500, false), 1400)).toBeNull();
    const icmpErr = ipv4Tcp(1500, true, 1);
    icmpErr[34] = 3;
    expect(tooBigReply(icmpErr, 1400)).toBeNull();
    const arp = ipv4Tcp(100, true);
    arp.writeUInt16BE(0x0806, 12);
    expect(tooBigReply(arp, 1400)).toBeNull();
    const bcast = ipv4Tcp(1500, true);
    bcast.fill(0xff, 0, 6);
    expect(tooBigReply(bcast, 1400)).toBeNull();
    expect(tooBigReply(Buffer.alloc(20), 1400)).toBeNull();
  });
});
