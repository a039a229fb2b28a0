/**
 * Property tests of the C segmentation and coalescing (native/gso.c) through the addon's
 * test exports, judged by an independent checksum and header reading written here:
 *   - any TCP super-frame (IPv4 or IPv6, any MSS, options, ECN) split and re-coalesced is
 *     byte-identical to what the kernel handed over (virtio_net_hdr included);
 *   - every segment has a valid IPv4 header checksum and TCP checksum, contiguous sequence
 *     numbers, FIN/PSH only on the last and CWR only on the first segment;
 *   - for any disturbed train (a gap, a swap, a changed ACK/window/TTL/flag, a short
 *     segment), coalescing never merges what it cannot give back: segmenting what it
 *     writes yields exactly the frames that went in;
 *   - UDP super-frames (USO) split into datagrams with valid UDP checksums, and coalesce
 *     back byte for byte.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { testAddon } from '../support/test-addon.js';

const n = testAddon();

// ---- an independent Internet checksum (RFC 1071), big-endian word at a time ----------

function sum16(buf: Buffer, sum = 0): number {
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length & 1) sum += buf[buf.length - 1]! << 8;
  return sum;
}
function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
const csum = (sum: number) => ~fold(sum) & 0xffff;

interface Layout {
  l3: number;
  l4: number;
  v6: boolean;
  hdrLen: number;
  proto: number;
}

function layout(f: Buffer): Layout {
  let l3 = 14;
  let type = f.readUInt16BE(12);
  if (type === 0x8100) {
    type = f.readUInt16BE(16);
    l3 = 18;
  }
  const v6 = type === 0x86dd;
  const l4 = v6 ? l3 + 40 : l3 + (f[l3]! & 15) * 4;
  const proto = v6 ? f[l3 + 6]! : f[l3 + 9]!;
  const hdrLen = proto === 6 ? l4 + (f[l4 + 12]! >> 4) * 4 : l4 + 8;
  return { l3, l4, v6, hdrLen, proto };
}

function pseudo(f: Buffer, L: Layout, l4len: number): number {
  const ip = f.subarray(L.l3);
  return L.v6 ? sum16(ip.subarray(8, 40)) + Math.floor(l4len / 0x10000) + (l4len & 0xffff) + L.proto : sum16(ip.subarray(12, 20)) + L.proto + l4len;
}

function l4Valid(f: Buffer): boolean {
  const L = layout(f);
  const l4len = f.length - L.l4;
  return fold(pseudo(f, L, l4len) + sum16(f.subarray(L.l4))) === 0xffff;
}

function ip4Valid(f: Buffer): boolean {
  const L = layout(f);
  return L.v6 || fold(sum16(f.subarray(L.l3, L.l4))) === 0xffff;
}

/** Recompute the IPv4 header and L4 checksums of a whole frame (after a test changed it). */
function fixChecksums(f: Buffer): void {
  const L = layout(f);
  if (!L.v6) {
    f.writeUInt16BE(0, L.l3 + 10);
    f.writeUInt16BE(csum(sum16(f.subarray(L.l3, L.l4))), L.l3 + 10);
  }
  const at = L.l4 + (L.proto === 6 ? 16 : 6);
  f.writeUInt16BE(0, at);
  let c = csum(pseudo(f, L, f.length - L.l4) + sum16(f.subarray(L.l4)));
  if (L.proto === 17 && c === 0) c = 0xffff;
  f.writeUInt16BE(c, at);
}

// ---- super-frames as the kernel hands them to a TAP ------------------------------------

interface Spec {
  v6: boolean;
  vlan: boolean;
  mss: number;
  segs: number;
  lastShort: number;
  tos: number;
  id: number;
  df: boolean;
  ttl: number;
  seq: number;
  ack: number;
  win: number;
  flags: number; // besides ACK: PSH 0x08, FIN 0x01, ECE 0x40, CWR 0x80
  opts: number[];
  seed: number;
}

const spec: fc.Arbitrary<Spec> = fc.record({
  v6: fc.boolean(),
  vlan: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
  mss: fc.integer({ min: 1, max: 1460 }),
  segs: fc.integer({ min: 2, max: 64 }),
  lastShort: fc.nat(),
  tos: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  df: fc.boolean(),
  ttl: fc.integer({ min: 1, max: 255 }),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  ack: fc.integer({ min: 0, max: 0xffffffff }),
  win: fc.integer({ min: 0, max: 0xffff }),
  flags: fc.subarray([0x08, 0x01, 0x40, 0x80]).map((a) => a.reduce((x, y) => x | y, 0)),
  opts: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 10 }).map((a) => a.slice(0, a.length - (a.length % 4))),
  seed: fc.integer(),
});

function payloadOf(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function ethHeader(s: Spec, type: number): Buffer {
  const eth = Buffer.from([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
  if (!s.vlan) return Buffer.concat([eth, Buffer.from([type >> 8, type & 0xff])]);
  return Buffer.concat([eth, Buffer.from([0x81, 0x00, 0x00, 0x07, type >> 8, type & 0xff])]);
}

function ipHeader(s: Spec, proto: number, l4len: number): Buffer {
  if (s.v6) {
    const h = Buffer.alloc(40);
    h.writeUInt32BE((6 << 28) | (s.tos << 20) | (s.seed & 0xfffff), 0);
    h.writeUInt16BE(l4len, 4);
    h[6] = proto;
    h[7] = s.ttl;
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(h, 8);
    Buffer.from('20010db8000000000000000000000002', 'hex').copy(h, 24);
    return h;
  }
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = s.tos;
  h.writeUInt16BE(20 + l4len, 2);
  h.writeUInt16BE(s.id, 4);
  h.writeUInt16BE(s.df ? 0x4000 : 0, 6);
  h[8] = s.ttl;
  h[9] = proto;
  Buffer.from([10, 1, 0, 1, 10, 1, 0, 2]).copy(h, 12);
  h.writeUInt16BE(csum(sum16(h)), 10);
  return h;
}

/** segs - 1 full segments and a last of 1..mss bytes, within 64 KB of IP (IPv6: of payload length). */
function payloadLen(s: Spec, l4hdr: number): number {
  const max = 65535 - l4hdr - (s.v6 ? 0 : 20);
  const len = (s.segs - 1) * s.mss + 1 + (s.lastShort % s.mss);
  return Math.min(len, max);
}

/** A TCP super-frame behind its virtio_net_hdr, as tun_put_user writes it. */
function tcpSuper(s: Spec): Buffer {
  const tcp = Buffer.alloc(20 + s.opts.length);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(s.seq, 4);
  tcp.writeUInt32BE(s.ack, 8);
  tcp[12] = ((20 + s.opts.length) / 4) << 4;
  tcp[13] = 0x10 | s.flags;
  tcp.writeUInt16BE(s.win, 14);
  Buffer.from(s.opts).copy(tcp, 20);
  const payload = payloadOf(payloadLen(s, tcp.length), s.seed);
  const l4len = tcp.length + payload.length;
  const eth = ethHeader(s, s.v6 ? 0x86dd : 0x0800);
  const ip = ipHeader(s, 6, l4len);
  const frame = Buffer.concat([eth, ip, tcp, payload]);
  const L = layout(frame);
  // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not complemented.
  frame.writeUInt16BE(fold(pseudo(frame, L, l4len)), L.l4 + 16);
  const vh = Buffer.alloc(10);
  vh[0] = 1; // NEEDS_CSUM
  vh[1] = (s.v6 ? 4 : 1) | (s.flags & 0x80 ? 0x80 : 0);
  vh.writeUInt16LE(L.hdrLen, 2);
  vh.writeUInt16LE(s.mss, 4);
  vh.writeUInt16LE(L.l4, 6);
  vh.writeUInt16LE(16, 8);
  return Buffer.concat([vh, frame]);
}

function udpSuper(s: Spec): Buffer {
  const payload = payloadOf(payloadLen(s, 8), s.seed);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(5201, 2);
  udp.writeUInt16BE((8 + payload.length) & 0xffff, 4);
  const eth = ethHeader(s, s.v6 ? 0x86dd : 0x0800);
  const ip = ipHeader(s, 17, 8 + payload.length);
  const frame = Buffer.concat([eth, ip, udp, payload]);
  const L = layout(frame);
  frame.writeUInt16BE(fold(pseudo(frame, L, 8 + payload.length)), L.l4 + 6);
  const vh = Buffer.alloc(10);
  vh[0] = 1;
  vh[1] = 5; // UDP_L4
  vh.writeUInt16LE(L.hdrLen, 2);
  vh.writeUInt16LE(s.mss, 4);
  vh.writeUInt16LE(L.l4, 6);
  vh.writeUInt16LE(6, 8);
  return Buffer.concat([vh, frame]);
}

/** What coalescing wrote, segmented again: the frames a receiver sees. */
function resegment(outputs: Buffer[]): Buffer[] {
  const frames: Buffer[] = [];
  for (const o of outputs) {
    if (o[1] === 0) frames.push(o.subarray(10));
    else frames.push(...n.testSegment(o));
  }
  return frames;
}

const RUNS = { numRuns: 300 };

describe('TCP segmentation and coalescing (native/gso.c)', () => {
  it('splits any super-frame into valid segments and coalesces them back byte for byte', () => {
    fc.assert(
      fc.property(spec, (s) => {
        const sup = tcpSuper(s);
        const segs = n.testSegment(sup);
        const L = layout(sup.subarray(10));
        const payload = sup.length - 10 - L.hdrLen;
        expect(segs.length).toBe(Math.ceil(payload / s.mss));
        let seq = s.seq;
        segs.forEach((f, i) => {
          const last = i === segs.length - 1;
          expect(ip4Valid(f), `IPv4 header checksum of segment ${i}`).toBe(true);
          expect(l4Valid(f), `TCP checksum of segment ${i}`).toBe(true);
          expect(f.length - L.hdrLen).toBe(last ? payload - s.mss * (segs.length - 1) : s.mss);
          if (L.v6) expect(f.readUInt16BE(L.l3 + 4)).toBe(f.length - L.l3 - 40);
          else {
            expect(f.readUInt16BE(L.l3 + 2)).toBe(f.length - L.l3);
            expect(f.readUInt16BE(L.l3 + 4)).toBe((s.id + i) & 0xffff);
          }
          expect(f.readUInt32BE(L.l4 + 4)).toBe(seq);
          seq = (seq + f.length - L.hdrLen) >>> 0;
          const fl = f[L.l4 + 13]!;
          expect(fl & 0x09, `FIN/PSH on segment ${i}`).toBe(last ? s.flags & 0x09 : 0);
          expect(fl & 0x80, `CWR on segment ${i}`).toBe(i === 0 ? s.flags & 0x80 : 0);
          expect(fl & 0x50).toBe(0x10 | (s.flags & 0x40));
        });
        const back = n.testCoalesce(segs);
        expect(back.length).toBe(1);
        expect(back[0]!.equals(sup)).toBe(true);
      }),
      RUNS,
    );
  });

  it('never merges what it cannot give back: segment(coalesce(train)) is the train, for disturbed TCP and UDP trains', () => {
    const disturb = fc.record({
      kind: fc.constantFrom('gap', 'swap', 'ack', 'win', 'ttl', 'psh', 'cwr', 'short', 'syn', 'tos', 'opt', 'none'),
      at: fc.nat(),
    });
    fc.assert(
      fc.property(spec, fc.array(disturb, { maxLength: 4 }), fc.boolean(), (s, ds, isUdp) => {
        const segs = n.testSegment(isUdp ? udpSuper(s) : tcpSuper(s)).map((b) => Buffer.from(b));
        for (const d of ds) {
          const i = d.at % segs.length;
          const f = segs[i]!;
          const L = layout(f);
          switch (d.kind) {
            case 'gap':
              if (segs.length > 2) segs.splice(i, 1);
              continue;
            case 'swap':
              if (i + 1 < segs.length) [segs[i], segs[i + 1]] = [segs[i + 1]!, segs[i]!];
              continue;
            case 'ack':
              if (isUdp) {
                f.writeUInt16BE(f.readUInt16BE(L.l4) ^ 1, L.l4);
                break;
              } // UDP: another source port
              f.writeUInt32BE((f.readUInt32BE(L.l4 + 8) + 1) >>> 0, L.l4 + 8);
              break;
            case 'win':
              if (isUdp) break;
              f.writeUInt16BE(f.readUInt16BE(L.l4 + 14) ^ 1, L.l4 + 14);
              break;
            case 'ttl':
              f[L.v6 ? L.l3 + 7 : L.l3 + 8] ^= 1;
              break;
            case 'psh':
              if (!isUdp) f[L.l4 + 13] |= 0x08;
              break;
            case 'cwr':
              if (!isUdp) f[L.l4 + 13] |= 0x80;
              break;
            case 'syn':
              if (!isUdp) f[L.l4 + 13] |= 0x02;
              break;
            case 'tos':
              if (!L.v6) f[L.l3 + 1] ^= 4;
              break;
            case 'opt':
              if (!isUdp && L.hdrLen > L.l4 + 20) f[L.l4 + 20] ^= 1;
              break;
            case 'short': {
              if (f.length - L.hdrLen < 2) break;
              const g = Buffer.from(f.subarray(0, f.length - 1));
              if (L.v6) g.writeUInt16BE(g.readUInt16BE(L.l3 + 4) - 1, L.l3 + 4);
              else g.writeUInt16BE(g.readUInt16BE(L.l3 + 2) - 1, L.l3 + 2);
              if (isUdp) g.writeUInt16BE(g.readUInt16BE(L.l4 + 4) - 1, L.l4 + 4);
              segs[i] = g;
              break;
            }
          }
          fixChecksums(segs[i]!);
        }
        const out = n.testCoalesce(segs);
        const again = resegment(out);
        expect(again.length).toBe(segs.length);
        again.forEach((f, i) => expect(f.equals(segs[i]!), `frame ${i} of ${segs.length}`).toBe(true));
      }),
      RUNS,
    );
  });

  it('writes a super-frame the kernel takes: NEEDS_CSUM, gso_size = MSS, csum_start at TCP', () => {
    const s: Spec = {
      v6: false,
      vlan: false,
      mss: 1398,
      segs: 5,
      lastShort: 100,
      tos: 0,
      id: 7,
      df: true,
      ttl: 64,
      seq: 0xfffff000,
      ack: 1,
      win: 512,
      flags: 0x08,
      opts: [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
      seed: 3,
    };
    const [out] = n.testCoalesce(n.testSegment(tcpSuper(s)));
    expect(out![0]).toBe(1);
    expect(out![1]).toBe(1);
    expect(out!.readUInt16LE(2)).toBe(14 + 20 + 32);
    expect(out!.readUInt16LE(4)).toBe(1398);
    expect(out!.readUInt16LE(6)).toBe(34);
    expect(out!.readUInt16LE(8)).toBe(16);
  });

  it('refuses super-frames whose headers lie (length, gso_type, offsets)', () => {
    const s: Spec = {
      v6: false,
      vlan: false,
      mss: 500,
      segs: 3,
      lastShort: 1,
      tos: 0,
      id: 1,
      df: true,
      ttl: 64,
      seq: 1,
      ack: 1,
      win: 1,
      flags: 0,
      opts: [],
      seed: 1,
    };
    const good = tcpSuper(s);
    const badLen = Buffer.from(good);
    badLen.writeUInt16BE(badLen.readUInt16BE(10 + 16) + 1, 10 + 16);
    expect(() => n.testSegment(badLen)).toThrow(/bad header/);
    const badType = Buffer.from(good);
    badType[1] = 4; // TCPV6 on an IPv4 frame
    expect(() => n.testSegment(badType)).toThrow(/bad header/);
    const badOff = Buffer.from(good);
    badOff.writeUInt16LE(6, 8); // csum_offset of UDP on TCP
    expect(() => n.testSegment(badOff)).toThrow(/bad header/);
    const noMss = Buffer.from(good);
    noMss.writeUInt16LE(0, 4);
    expect(() => n.testSegment(noMss)).toThrow(/bad header/);
  });

  it('splits UDP super-frames (USO) into datagrams with valid UDP checksums and lengths, and coalesces them back byte for byte', () => {
    fc.assert(
      fc.property(spec, (s) => {
        const sup = udpSuper(s);
        const segs = n.testSegment(sup);
        const L = layout(sup.subarray(10));
        const payload = sup.length - 10 - L.hdrLen;
        expect(segs.length).toBe(Math.ceil(payload / s.mss));
        let total = 0;
        segs.forEach((f, i) => {
          expect(ip4Valid(f)).toBe(true);
          expect(l4Valid(f), `UDP checksum of datagram ${i}`).toBe(true);
          expect(f.readUInt16BE(L.l4 + 4)).toBe(f.length - L.l4);
          expect(f.subarray(L.hdrLen).equals(sup.subarray(10 + L.hdrLen + total, 10 + L.hdrLen + total + f.length - L.hdrLen))).toBe(true);
          total += f.length - L.hdrLen;
        });
        expect(total).toBe(payload);
        const back = n.testCoalesce(segs);
        expect(back.length).toBe(1);
        expect(back[0]!.equals(sup)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
