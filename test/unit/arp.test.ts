/**
 * ARP and neighbour-discovery frames (src/core/arp.ts). The requests come from scapy, an
 * encoder we did not write (test/support/nd-frames.py); the replies and announcements are
 * judged by tshark's dissectors (checksums verified). Kernel-made frames: test/netns/arp.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { Address6 } from 'ip-address';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type AnswerableArp,
  type AnswerableSolicitation,
  arpReply,
  glean,
  gratuitousArp,
  ipv6At,
  neighborAdvertisement,
  parseArpRequest,
  parseNeighborSolicitation,
  rarp,
  unsolicitedNeighborAdvertisement,
} from '../../src/core/arp.js';
import { csum16, csumFinish, ipv6PseudoSum } from '../../src/util/checksum.js';
import { dissect } from '../support/pcap.js';
import { prng } from '../support/prng.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';

const scapy: Record<string, Buffer> = Object.fromEntries(
  Object.entries(
    JSON.parse(execFileSync('/usr/bin/python3', [fileURLToPath(new URL('../support/nd-frames.py', import.meta.url))], { encoding: 'utf8' })) as Record<
      string,
      string
    >,
  ).map(([k, v]) => [k, Buffer.from(v, 'hex')]),
);
const f = (name: string): Buffer => {
  const b = scapy[name];
  if (b === undefined) throw new Error(`no frame ${name}`);
  return Buffer.from(b);
};

function request(name: string): AnswerableArp {
  const r = parseArpRequest(f(name));
  if (r?.kind !== 'request') throw new Error(`${name}: not an answerable request: ${JSON.stringify(r)}`);
  return r;
}

function solicitation(name: string): AnswerableSolicitation {
  const ns = parseNeighborSolicitation(f(name));
  if (ns === null || ns.dad) throw new Error(`${name}: not an answerable solicitation: ${JSON.stringify(ns)}`);
  return ns;
}

/** The frame with its ICMPv6 checksum made right again after a test changed a byte. */
function withChecksum(x: Buffer): Buffer {
  const len = x.readUInt16BE(14 + 4);
  x.writeUInt16BE(0, 14 + 40 + 2);
  x.writeUInt16BE(csumFinish(csum16(x, 54, 54 + len, ipv6PseudoSum(x, 14, len, 58))), 14 + 40 + 2);
  return x;
}

const parsers = [parseArpRequest, parseNeighborSolicitation, glean];

describe('parsing what scapy sends', () => {
  it('reads an ARP request, and flags a gratuitous ARP and a probe as not to be answered', () => {
    expect(parseArpRequest(f('arp_request'))).toEqual({ kind: 'request', senderMac: A, senderIp: '10.0.0.1', targetIp: '10.0.0.2' });
    expect(parseArpRequest(f('arp_gratuitous'))).toMatchObject({ kind: 'gratuitous', senderIp: '10.0.0.1', targetIp: '10.0.0.1' });
    expect(parseArpRequest(f('arp_probe'))).toMatchObject({ kind: 'probe', senderIp: '0.0.0.0', targetIp: '10.0.0.1' });
  });

  it('is null for an ARP reply, a multicast sender hardware address, and non-ARP frames', () => {
    expect(parseArpRequest(f('arp_reply'))).toBeNull();
    expect(parseArpRequest(f('arp_multicast_sender'))).toBeNull();
    expect(parseArpRequest(f('ns'))).toBeNull();
    expect(parseArpRequest(rarp(A))).toBeNull();
  });

  it('is null for other hardware or protocol types and lengths', () => {
    for (const [off, value] of [
      [15, 6], // htype 6 (IEEE 802)
      [16, 0x86], // ptype 0x86dd
      [18, 8], // hlen 8
      [19, 16], // plen 16
      [21, 3], // op 3
    ] as const) {
      const x = f('arp_request');
      x[off] = value;
      expect(parseArpRequest(x), `byte ${off} = ${value}`).toBeNull();
    }
  });

  it('reads a neighbour solicitation with its source link-layer option; IPv6 in RFC 5952 form', () => {
    expect(parseNeighborSolicitation(f('ns'))).toEqual({ srcMac: A, srcIp: '2001:db8::1', targetIp: '2001:db8::2', sourceLinkLayer: A, dad: false });
    expect(parseNeighborSolicitation(f('ns_upper_case_target'))?.targetIp).toBe('2001:db8::1:0:0:1');
    expect(parseNeighborSolicitation(f('ns_without_sllao'))).toEqual({ srcMac: A, srcIp: '2001:db8::1', targetIp: '2001:db8::2', dad: false });
  });

  it('flags duplicate address detection, and refuses a DAD that RFC 4861 7.1.1 calls invalid', () => {
    expect(parseNeighborSolicitation(f('ns_dad'))).toEqual({ srcMac: A, srcIp: '::', targetIp: '2001:db8::2', dad: true });
    expect(parseNeighborSolicitation(f('ns_dad_with_sllao'))).toBeNull();
    expect(parseNeighborSolicitation(f('ns_dad_unicast'))).toBeNull();
  });

  it('is null for hop limit 254, an extension header, a multicast target, a bad checksum, and an NA', () => {
    expect(parseNeighborSolicitation(f('ns'))).not.toBeNull();
    expect(parseNeighborSolicitation(f('ns_hop_limit_254'))).toBeNull();
    expect(parseNeighborSolicitation(f('ns_hop_by_hop'))).toBeNull();
    expect(parseNeighborSolicitation(f('ns_multicast_target'))).toBeNull();
    expect(parseNeighborSolicitation(f('na_unsolicited'))).toBeNull();
    const bad = f('ns');
    bad[14 + 40 + 2] ^= 0x01;
    expect(parseNeighborSolicitation(bad)).toBeNull();
    const badTarget = f('ns');
    badTarget[14 + 40 + 8 + 15] ^= 0x01; // the checksum no longer covers the target
    expect(parseNeighborSolicitation(badTarget)).toBeNull();
  });

  it('is null for an ICMPv6 code other than 0 and for an empty option', () => {
    const code = f('ns');
    code[14 + 40 + 1] = 1;
    expect(parseNeighborSolicitation(withChecksum(code))).toBeNull();
    const empty = f('ns');
    empty[14 + 40 + 25] = 0;
    expect(parseNeighborSolicitation(withChecksum(empty))).toBeNull();
    expect(parseNeighborSolicitation(withChecksum(f('ns')))).not.toBeNull();
  });

  it('never throws and is null at every truncated length', () => {
    for (const name of ['arp_request', 'arp_reply', 'ns', 'ns_dad', 'na_unsolicited', 'na_solicited', 'rs']) {
      const whole = f(name);
      for (let n = 0; n < whole.length; n++) {
        const cut = whole.subarray(0, n);
        for (const p of parsers) expect(p(cut), `${name} cut to ${n} by ${p.name}`).toBeNull();
      }
    }
  });
});

describe('replies and announcements, judged by tshark', () => {
  it('an ARP reply is op 2 from the answer MAC to the requester, 60 bytes', () => {
    const reply = arpReply(request('arp_request'), C);
    expect(reply.length).toBe(60);
    const [row] = dissect(
      [reply],
      ['eth.dst', 'eth.src', 'eth.type', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4', 'arp.isgratuitous'],
    );
    expect(row).toEqual([A, C, '0x0806', '2', C, '10.0.0.2', A, '10.0.0.1', '']); // not flagged gratuitous
  });

  it('a neighbour advertisement is unicast, hop limit 255, S and O set, R clear, target option, good checksum', () => {
    const cases = [
      ['ns', A],
      ['ns_without_sllao', A],
      ['ns_sllao_other_mac', B], // to the link-layer address the solicitor asked to be answered at
    ] as const;
    // One tshark for the three (it takes seconds to start on a loaded machine).
    const rows = dissect(
      cases.map(([name]) => neighborAdvertisement(solicitation(name), C)),
      [
        'eth.dst',
        'eth.src',
        'ipv6.src',
        'ipv6.dst',
        'ipv6.hlim',
        'icmpv6.type',
        'icmpv6.code',
        'icmpv6.checksum.status',
        'icmpv6.nd.na.flag.r',
        'icmpv6.nd.na.flag.s',
        'icmpv6.nd.na.flag.o',
        'icmpv6.nd.na.target_address',
        'icmpv6.opt.type',
        'icmpv6.opt.linkaddr',
      ],
    );
    expect(rows).toHaveLength(cases.length);
    cases.forEach(([name, dstMac], i) => {
      // checksum.status 1 = good
      expect(rows[i], name).toEqual([dstMac, C, '2001:db8::2', '2001:db8::1', '255', '136', '0', '1', '0', '1', '1', '2001:db8::2', '2', C]);
    });
  });

  it('a gratuitous ARP is a broadcast request with sender IP = target IP, as Linux sends it', () => {
    const garp = gratuitousArp(B, '10.0.0.2');
    expect(garp.length).toBe(60);
    const [row] = dissect(
      [garp],
      ['eth.dst', 'eth.src', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4', 'arp.isgratuitous'],
    );
    expect(row).toEqual(['ff:ff:ff:ff:ff:ff', B, '1', B, '10.0.0.2', '00:00:00:00:00:00', '10.0.0.2', '1']);
    expect(parseArpRequest(garp)?.kind).toBe('gratuitous');
  });

  it('a RARP is a broadcast reverse request (0x8035, op 3) for the MAC, as QEMU sends after a migration', () => {
    const r = rarp(B);
    expect(r.length).toBe(60);
    const [row] = dissect(
      [r],
      ['eth.dst', 'eth.src', 'eth.type', 'arp.opcode', 'arp.src.hw_mac', 'arp.dst.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4'],
    );
    expect(row).toEqual(['ff:ff:ff:ff:ff:ff', B, '0x8035', '3', B, B, '0.0.0.0', '0.0.0.0']);
  });

  it('an unsolicited NA goes to all nodes with only Override set', () => {
    const [row] = dissect(
      [unsolicitedNeighborAdvertisement(B, '2001:db8::2')],
      [
        'eth.dst',
        'ipv6.src',
        'ipv6.dst',
        'ipv6.hlim',
        'icmpv6.checksum.status',
        'icmpv6.nd.na.flag.s',
        'icmpv6.nd.na.flag.o',
        'icmpv6.nd.na.target_address',
        'icmpv6.opt.linkaddr',
      ],
    );
    expect(row).toEqual(['33:33:00:00:00:01', '2001:db8::2', 'ff02::1', '255', '1', '0', '1', '2001:db8::2', B]);
  });

  it('refuses a MAC or an IP that is not one (a caller bug, not network input)', () => {
    expect(() => gratuitousArp('02:00:00:00:00', '10.0.0.1')).toThrow(/not a MAC/);
    expect(() => gratuitousArp(A, '10.0.0.256')).toThrow(/not an IPv4/);
    expect(() => gratuitousArp(A, '2001:db8::1')).toThrow(/not an IPv4/);
    expect(() => gratuitousArp(A, '010.0.0.1')).toThrow(/not an IPv4/);
    expect(() => gratuitousArp(A, '10.0.0.1/24')).toThrow(/not an IPv4/);
    expect(() => unsolicitedNeighborAdvertisement(A, '2001:db8::/64')).toThrow(/not an IPv6/);
    expect(() => unsolicitedNeighborAdvertisement(A, 'fe80::1%eth0')).toThrow(/not an IPv6/);
    expect(() => unsolicitedNeighborAdvertisement(A, '10.0.0.1')).toThrow(/not an IPv6/);
  });
});

describe('gleaning a port’s own addresses', () => {
  it('takes the sender of ARP requests, replies and gratuitous ARPs, never a probe’s 0.0.0.0', () => {
    expect(glean(f('arp_request'))).toEqual({ mac: A, ips: ['10.0.0.1'] });
    expect(glean(f('arp_reply'))).toEqual({ mac: A, ips: ['10.0.0.1'] });
    expect(glean(f('arp_gratuitous'))).toEqual({ mac: A, ips: ['10.0.0.1'] });
    expect(glean(f('arp_probe'))).toBeNull();
    expect(glean(rarp(A))).toBeNull();
    expect(glean(arpReply(request('arp_request'), C))).toEqual({ mac: C, ips: ['10.0.0.2'] });
  });

  it('takes the source of NS, NA and RS, and the target of an unsolicited NA with Override', () => {
    expect(glean(f('ns'))).toEqual({ mac: A, ips: ['2001:db8::1'] });
    expect(glean(f('ns_without_sllao'))).toEqual({ mac: A, ips: ['2001:db8::1'] });
    expect(glean(f('rs'))).toEqual({ mac: A, ips: ['fe80::a'] });
    expect(glean(f('na_unsolicited'))).toEqual({ mac: A, ips: ['fe80::a', '2001:db8::1'] });
    expect(glean(f('na_unsolicited_no_override'))).toEqual({ mac: A, ips: ['fe80::a'] }); // a proxy's form
    expect(glean(f('na_solicited'))).toEqual({ mac: A, ips: ['2001:db8::1'] });
    expect(glean(unsolicitedNeighborAdvertisement(B, '2001:db8::2'))).toEqual({ mac: B, ips: ['2001:db8::2'] });
    expect(glean(neighborAdvertisement(solicitation('ns'), C))).toEqual({ mac: C, ips: ['2001:db8::2'] });
  });

  it('takes nothing from DAD, or when the claimed link-layer address is not the Ethernet source', () => {
    expect(glean(f('ns_dad'))).toBeNull();
    expect(glean(f('arp_spoofed_sender'))).toBeNull();
    expect(glean(f('ns_sllao_other_mac'))).toBeNull();
    expect(glean(f('na_spoofed_tlla'))).toBeNull();
    expect(glean(f('ns_hop_limit_254'))).toBeNull();
  });
});

describe('addresses', () => {
  it('IPv6 reads in the same RFC 5952 form as ip-address writes (what the directory stores)', () => {
    const r = prng(5952);
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.alloc(16);
      for (let g = 0; g < 16; g += 2) if (r.below(2) === 0) b.writeUInt16BE(r.below(4) === 0 ? r.below(16) : r.u32() & 0xffff, g);
      expect(ipv6At(b, 0)).toBe(Address6.fromUnsignedByteArray([...b]).correctForm());
    }
    expect(ipv6At(Buffer.from('20010DB8000000000001000000000001', 'hex'), 0)).toBe('2001:db8::1:0:0:1');
    expect(ipv6At(Buffer.alloc(16), 0)).toBe('::');
  });
});

describe('fuzz', () => {
  it('random bytes and bit flips of valid frames never throw, and what parses is well-formed', () => {
    const r = prng(13);
    const valid = [
      ...Object.values(scapy),
      arpReply(request('arp_request'), C),
      gratuitousArp(B, '10.0.0.2'),
      rarp(B),
      neighborAdvertisement(solicitation('ns'), C),
    ];
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      let x: Buffer;
      if (i % 4 === 0) {
        x = r.bytes(r.below(120));
        if (x.length >= 14 && r.below(2) === 0) x.writeUInt16BE([0x0806, 0x86dd, 0x8035][r.below(3)]!, 12);
      } else {
        x = Buffer.from(valid[r.below(valid.length)]!);
        for (let n = 1 + r.below(3); n > 0; n--) x[r.below(x.length)] ^= 1 << r.below(8);
        if (r.below(8) === 0) x = x.subarray(0, r.below(x.length + 1));
      }
      for (const p of parsers) {
        const out = p(x);
        if (out !== null) parsed++;
      }
      // Whatever parses can be answered, and the answer is what it claims to be.
      const ns = parseNeighborSolicitation(x);
      if (ns !== null && !ns.dad) expect(glean(neighborAdvertisement(ns, C))).toEqual({ mac: C, ips: [ns.targetIp] });
      const arp = parseArpRequest(x);
      if (arp?.kind === 'request') expect(parseArpRequest(arpReply(arp, C))).toBeNull(); // a reply, not a request
    }
    expect(parsed).toBeGreaterThan(0);
  });
});
