/**
 * The frames of ARP and IPv6 neighbour-discovery suppression, address gleaning and move
 * announcements: pure functions over Ethernet frames (no I/O, no daemon state). The Bridge
 * decides what to do with them; this module only reads and writes the wire formats.
 *
 * Frames are whole Ethernet frames without an 802.1Q tag (the data path drops inner tags
 * before a frame reaches TypeScript). Parsers never throw: anything malformed, truncated or
 * not exactly what the function reads is null. Encoders throw only on a bad argument
 * (a MAC or IP that is not one), which is a caller's bug, never network input.
 *
 * What is answered on the host, in the owner's name (when the directory knows the target):
 * - an ARP request (RFC 826) for an IPv4 address: `parseArpRequest` gives kind 'request',
 *   `arpReply` writes the reply the owner would send;
 * - a neighbour solicitation (RFC 4861 4.3) from a node with an address: `parseNeighborSolicitation`
 *   gives dad false, `neighborAdvertisement` writes the solicited advertisement (S and O set).
 *
 * What is never answered, and why (the types make `arpReply`/`neighborAdvertisement` accept
 * only the answerable kinds, so the integration cannot answer them by mistake):
 * - an ARP probe (sender IP 0.0.0.0, RFC 5227 2.1.1): the prober is checking that nobody
 *   uses the address. A reply is the "address in use" signal, so answering from the
 *   directory would make the host give up an address that may be legitimately its own
 *   (after a move, a re-plug, a DHCP lease the directory has not caught up with).
 * - a gratuitous ARP (sender IP == target IP, RFC 5227 2.3 announcement, or the Linux and
 *   arping -U form): an announcement by the owner itself, expecting no answer; a reply
 *   from someone else reads as an address conflict. It is flooded (other hosts update
 *   their caches from it) and gleaned.
 * - duplicate address detection (an NS from the unspecified address ::, RFC 4862 5.4):
 *   the same reasoning as the probe. An advertisement would make the node mark its
 *   tentative address duplicate and never use it.
 *
 * Gleaning (`glean`): a local port's own ARP and ND frames say which IPs its MAC has.
 * It believes a frame only when the claimed link-layer address is the Ethernet source
 * (see `glean`), and never a probe's or a DAD's address: that one is not owned yet.
 *
 * Announcements (`gratuitousArp`, `rarp`, `unsolicitedNeighborAdvertisement`): what a host
 * sends when a MAC moved, so that switches relearn its port and neighbours refresh their
 * caches (Linux's gratuitous ARP on an address change, QEMU's RARP after a migration,
 * Linux's unsolicited NA, RFC 4861 7.2.6).
 *
 * Addresses are strings: MACs as src/util/mac.ts keeps them ("02:00:00:00:00:01"), IPv4
 * dotted quads, IPv6 in RFC 5952 form (lower case, longest zero run as ::): the form
 * ip-address's correctForm() gives, which the API and the directory store (see `ipv6At`).
 * Strings given to the encoders are checked by Node's isIPv4 and by ip-address.
 */
import { isIPv4 } from 'node:net';
import { Address6 } from 'ip-address';
import { csum16, csumFinish, ipv6PseudoSum } from '../util/checksum.js';
import { isLearnableMac, macFromBuffer, macToBuffer } from '../util/mac.js';

export const ETH_ARP = 0x0806;
export const ETH_RARP = 0x8035;
export const ETH_IPV6 = 0x86dd;
const ETH_IPV4 = 0x0800;

const ETH = 14;
/** Ethernet's minimum frame size without the FCS: shorter frames are padded with zeros. */
export const MIN_FRAME = 60;
/** An Ethernet/IPv4 ARP packet: 8 bytes of header, two (MAC, IPv4) pairs. */
const ARP_LEN = 28;
const IPV6_HDR = 40;
const ICMPV6 = 58;

export const ICMPV6_RS = 133;
export const ICMPV6_NS = 135;
export const ICMPV6_NA = 136;
/** NA flags (RFC 4861 4.4), in the first byte after the checksum. */
const NA_ROUTER = 0x80;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;
/** ND options (RFC 4861 4.6.1). */
const OPT_SLLA = 1;
const OPT_TLLA = 2;

const BROADCAST = Buffer.alloc(6, 0xff);
const ALL_NODES = Buffer.from('ff020000000000000000000000000001', 'hex');

/** 'request' is answerable; a 'gratuitous' ARP and a 'probe' are never answered (see the top). */
export type ArpKind = 'request' | 'gratuitous' | 'probe';

interface ArpFields {
  /** The ARP sender hardware address: whom a reply goes to. */
  senderMac: string;
  /** '0.0.0.0' for a probe. */
  senderIp: string;
  targetIp: string;
}

/** A parsed ARP request; a union on `kind`, so `if (r.kind === 'request')` narrows it to an `AnswerableArp`. */
export type ArpRequest = { [K in ArpKind]: ArpFields & { kind: K } }[ArpKind];
export type AnswerableArp = Extract<ArpRequest, { kind: 'request' }>;

interface NsFields {
  /** Ethernet source. */
  srcMac: string;
  /** IPv6 source, '::' during duplicate address detection. */
  srcIp: string;
  targetIp: string;
  /** The source link-layer address option, when present. */
  sourceLinkLayer?: string;
}

/** A parsed solicitation; a union on `dad` (duplicate address detection, source ::, never answered). */
export type NeighborSolicitation = (NsFields & { dad: false }) | (NsFields & { dad: true });
export type AnswerableSolicitation = Extract<NeighborSolicitation, { dad: false }>;

/** What a frame says about its sender: its MAC and the IPs it holds (at least one). */
export interface Gleaned {
  mac: string;
  ips: string[];
}

// ---- reading ----

/** The IPv4 address at `o`, dotted decimal. */
export function ipv4At(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/**
 * The IPv6 address at `o`, in RFC 5952 form: what ip-address's correctForm() writes (the
 * unit test checks that they agree), through the WHATWG URL host serializer (lower case, no
 * leading zeros, the first longest run of two or more zero groups as ::), which Node runs in
 * C++: about 30 times faster than ip-address here, and this runs for every punted frame.
 */
export function ipv6At(b: Buffer, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(o + i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function isZero(b: Buffer, o: number, n: number): boolean {
  for (let i = o; i < o + n; i++) if (b[i] !== 0) return false;
  return true;
}

/** An Ethernet/IPv4 ARP (or RARP) header at offset 14 with the lengths ARP over Ethernet has. */
function arpHeader(frame: Buffer, ethertype: number): number | null {
  if (frame.length < ETH + ARP_LEN || frame.readUInt16BE(12) !== ethertype) return null;
  if (frame.readUInt16BE(ETH) !== 1 || frame.readUInt16BE(ETH + 2) !== ETH_IPV4) return null;
  if (frame[ETH + 4] !== 6 || frame[ETH + 5] !== 4) return null;
  return frame.readUInt16BE(ETH + 6);
}

// Offsets in an Ethernet/IPv4 ARP packet, from the start of the frame.
const SHA = ETH + 8;
const SPA = ETH + 14;
const THA = ETH + 18;
const TPA = ETH + 24;

/**
 * An ARP request (op 1) over Ethernet for IPv4, or null for anything else (a reply, other
 * hardware or protocol types or lengths, a truncated frame, a sender hardware address that
 * is not a unicast MAC). Gratuitous ARPs and probes come back flagged by `kind`.
 */
export function parseArpRequest(frame: Buffer): ArpRequest | null {
  if (arpHeader(frame, ETH_ARP) !== 1) return null;
  const senderMac = macFromBuffer(frame, SHA);
  if (!isLearnableMac(senderMac)) return null; // a reply would go to a group or to nobody
  const probe = isZero(frame, SPA, 4);
  const gratuitous = !probe && frame.readUInt32BE(SPA) === frame.readUInt32BE(TPA);
  return {
    kind: probe ? 'probe' : gratuitous ? 'gratuitous' : 'request',
    senderMac,
    senderIp: ipv4At(frame, SPA),
    targetIp: ipv4At(frame, TPA),
  };
}

/**
 * The ICMPv6 message of an Ethernet/IPv6 frame, when the frame is a valid neighbour-discovery
 * packet by RFC 4861's receiver rules (6.1.1, 7.1.1, 7.1.2): ICMPv6 directly after the IPv6
 * header (no extension header), hop limit 255 (so it cannot have come through a router),
 * a good checksum, code 0, length from the IPv6 header inside the frame, and options that
 * are whole and non-empty. `icmp` is the offset of the ICMPv6 header, `end` its end.
 */
function ndMessage(frame: Buffer, minLen: number): { type: number; icmp: number; end: number } | null {
  if (frame.length < ETH + IPV6_HDR + minLen || frame.readUInt16BE(12) !== ETH_IPV6) return null;
  const ip = ETH;
  if (frame[ip] >> 4 !== 6 || frame[ip + 6] !== ICMPV6 || frame[ip + 7] !== 255) return null;
  const len = frame.readUInt16BE(ip + 4);
  const icmp = ip + IPV6_HDR;
  if (len < minLen || icmp + len > frame.length) return null;
  if (frame[icmp + 1] !== 0) return null;
  if (csum16(frame, icmp, icmp + len, ipv6PseudoSum(frame, ip, len, ICMPV6)) !== 0xffff) return null;
  return { type: frame[icmp], icmp, end: icmp + len };
}

/**
 * The link-layer address options from `start` to `end`: the first source and the first
 * target option, or null when an option is empty, runs past the end, or a link-layer
 * option is not one Ethernet address long (RFC 4861 4.6.1; the kernel drops these too).
 */
function ndOptions(frame: Buffer, start: number, end: number): { slla?: string; tlla?: string } | null {
  const out: { slla?: string; tlla?: string } = {};
  for (let o = start; o < end; ) {
    if (o + 2 > end) return null;
    const len = frame[o + 1] * 8;
    if (len === 0 || o + len > end) return null;
    const type = frame[o];
    if (type === OPT_SLLA || type === OPT_TLLA) {
      if (len !== 8) return null;
      const mac = macFromBuffer(frame, o + 2);
      if (type === OPT_SLLA) out.slla ??= mac;
      else out.tlla ??= mac;
    }
    o += len;
  }
  return out;
}

function isMulticast6(frame: Buffer, o: number): boolean {
  return frame[o] === 0xff;
}

/** ff02::1:ffXX:XXXX, the solicited-node group of an address (RFC 4291 2.7.1): this prefix, 104 bits. */
const SOLICITED_NODE = Buffer.from('ff0200000000000000000001ff', 'hex');

function isSolicitedNode(frame: Buffer, o: number): boolean {
  return frame.subarray(o, o + 13).equals(SOLICITED_NODE);
}

/**
 * A neighbour solicitation, or null when the frame is not a valid one (see `ndMessage`, plus
 * RFC 4861 7.1.1: the target is not multicast; a DAD solicitation goes to a solicited-node
 * group and carries no source link-layer option; the source is never multicast).
 */
export function parseNeighborSolicitation(frame: Buffer): NeighborSolicitation | null {
  const m = ndMessage(frame, 24);
  if (m === null || m.type !== ICMPV6_NS) return null;
  const ip = ETH;
  const target = m.icmp + 8;
  if (isMulticast6(frame, target) || isMulticast6(frame, ip + 8)) return null;
  const opts = ndOptions(frame, m.icmp + 24, m.end);
  if (opts === null) return null;
  const srcMac = macFromBuffer(frame, 6);
  if (!isLearnableMac(srcMac)) return null;
  const dad = isZero(frame, ip + 8, 16);
  if (dad && (opts.slla !== undefined || !isSolicitedNode(frame, ip + 24))) return null;
  if (opts.slla !== undefined && !isLearnableMac(opts.slla)) return null;
  const ns: NeighborSolicitation = { srcMac, srcIp: ipv6At(frame, ip + 8), targetIp: ipv6At(frame, target), dad } as NeighborSolicitation;
  if (opts.slla !== undefined) ns.sourceLinkLayer = opts.slla;
  return ns;
}

// ---- writing ----

/** A dotted quad's bytes, once Node's isIPv4 (four decimal bytes, no leading zeros) accepts it. */
function ipv4Bytes(ip: string): number[] {
  if (!isIPv4(ip)) throw new Error(`not an IPv4 address: "${ip}"`);
  return ip.split('.').map(Number);
}

/** An IPv6 address's bytes by ip-address, which throws on anything that is not one (a prefix or a zone is not one here). */
function ipv6Bytes(ip: string): number[] {
  try {
    if (!ip.includes('/') && !ip.includes('%')) return new Address6(ip).toUnsignedByteArray();
  } catch {
    /* said below */
  }
  throw new Error(`not an IPv6 address: "${ip}"`);
}

/** An Ethernet/IPv4 ARP (or RARP) frame, padded to the minimum frame size. */
function arpFrame(ethertype: number, ethDst: Buffer, ethSrc: Buffer, op: number, sha: Buffer, spa: number[], tha: Buffer, tpa: number[]): Buffer {
  const f = Buffer.alloc(MIN_FRAME);
  ethDst.copy(f, 0);
  ethSrc.copy(f, 6);
  f.writeUInt16BE(ethertype, 12);
  f.writeUInt16BE(1, ETH); // Ethernet
  f.writeUInt16BE(ETH_IPV4, ETH + 2);
  f[ETH + 4] = 6;
  f[ETH + 5] = 4;
  f.writeUInt16BE(op, ETH + 6);
  sha.copy(f, SHA);
  Buffer.from(spa).copy(f, SPA);
  tha.copy(f, THA);
  Buffer.from(tpa).copy(f, TPA);
  return f;
}

/**
 * The ARP reply the owner of `request.targetIp` would send (RFC 826): to the requester's
 * hardware address, from `answerMac`, op 2, sender (answerMac, targetIp), target (the
 * requester's MAC and IP). Only a plain request is answered: narrow on `kind` first.
 */
export function arpReply(request: AnswerableArp, answerMac: string): Buffer {
  const requester = macToBuffer(request.senderMac);
  const answer = macToBuffer(answerMac);
  return arpFrame(ETH_ARP, requester, answer, 2, answer, ipv4Bytes(request.targetIp), requester, ipv4Bytes(request.senderIp));
}

/**
 * A gratuitous ARP announcing that `ip` is at `mac`, in the form Linux sends on an address
 * change (inetdev's arp_send): a broadcast request with sender IP == target IP and a zero
 * target hardware address.
 */
export function gratuitousArp(mac: string, ip: string): Buffer {
  const m = macToBuffer(mac);
  const a = ipv4Bytes(ip);
  return arpFrame(ETH_ARP, BROADCAST, m, 1, m, a, Buffer.alloc(6), a);
}

/**
 * The RARP frame QEMU broadcasts after a migration (announce_self_create): ethertype 0x8035,
 * op 3 (reverse request), sender and target hardware address `mac`, both IPs 0.0.0.0. It
 * carries no IP, so switches relearn the MAC's port whatever the guest's addresses are.
 */
export function rarp(mac: string): Buffer {
  const m = macToBuffer(mac);
  return arpFrame(ETH_RARP, BROADCAST, m, 3, m, [0, 0, 0, 0], m, [0, 0, 0, 0]);
}

/** An Ethernet/IPv6 neighbour advertisement with a target link-layer address option. */
function naFrame(ethDst: Buffer, mac: Buffer, src: number[], dst: number[], flags: number, target: number[]): Buffer {
  const len = 24 + 8;
  const f = Buffer.alloc(ETH + IPV6_HDR + len);
  ethDst.copy(f, 0);
  mac.copy(f, 6);
  f.writeUInt16BE(ETH_IPV6, 12);
  const ip = ETH;
  f[ip] = 0x60;
  f.writeUInt16BE(len, ip + 4);
  f[ip + 6] = ICMPV6;
  f[ip + 7] = 255; // RFC 4861 7.1.2: receivers drop anything else
  Buffer.from(src).copy(f, ip + 8);
  Buffer.from(dst).copy(f, ip + 24);
  const c = ip + IPV6_HDR;
  f[c] = ICMPV6_NA;
  f[c + 4] = flags;
  Buffer.from(target).copy(f, c + 8);
  f[c + 24] = OPT_TLLA;
  f[c + 25] = 1; // 8 bytes
  mac.copy(f, c + 26);
  f.writeUInt16BE(csumFinish(csum16(f, c, c + len, ipv6PseudoSum(f, ip, len, ICMPV6))), c + 2);
  return f;
}

/**
 * The solicited neighbour advertisement the owner of `ns.targetIp` would send (RFC 4861
 * 7.2.4): unicast to the solicitor (Ethernet to its source link-layer option, else to the
 * frame's source), from the target IP and `answerMac`, Solicited and Override set, Router
 * clear, with a target link-layer option of `answerMac`. Never for DAD: narrow on `dad` first.
 */
export function neighborAdvertisement(ns: AnswerableSolicitation, answerMac: string): Buffer {
  const dst = macToBuffer(ns.sourceLinkLayer ?? ns.srcMac);
  return naFrame(dst, macToBuffer(answerMac), ipv6Bytes(ns.targetIp), ipv6Bytes(ns.srcIp), NA_SOLICITED | NA_OVERRIDE, ipv6Bytes(ns.targetIp));
}

/**
 * An unsolicited neighbour advertisement announcing that `ip` is at `mac` (RFC 4861 7.2.6),
 * as Linux sends one: to all nodes (ff02::1, Ethernet 33:33:00:00:00:01), from `ip`,
 * Override set, Solicited and Router clear, with a target link-layer option.
 */
export function unsolicitedNeighborAdvertisement(mac: string, ip: string): Buffer {
  const a = ipv6Bytes(ip);
  return naFrame(macToBuffer('33:33:00:00:00:01'), macToBuffer(mac), a, [...ALL_NODES], NA_OVERRIDE, a);
}

// ---- gleaning ----

/** An IPv4 address a host may hold on a link: not 0/8, loopback, multicast or 240/4 (incl. broadcast). */
function usableIpv4(frame: Buffer, o: number): boolean {
  const a = frame[o];
  return a !== 0 && a !== 127 && a < 224;
}

/** An IPv6 unicast source: not ::, not ::1, not multicast. */
function usableIpv6(frame: Buffer, o: number): boolean {
  if (isMulticast6(frame, o)) return false;
  return !isZero(frame, o, 15) || (frame[o + 15] !== 0 && frame[o + 15] !== 1);
}

/**
 * What a local port's own frame says about itself: its MAC and IPs, from
 * - an ARP request or reply (including a gratuitous one): the sender's (MAC, IP), not a
 *   probe's 0.0.0.0;
 * - a neighbour solicitation, advertisement or router solicitation with an address (not
 *   ::, so not DAD): the (Ethernet source, IPv6 source);
 * - an unsolicited advertisement with Override set (an announcement, Linux's form): also its
 *   target. A solicited one answers someone else's question and may come from a proxy (RFC
 *   4861 7.2.8, which sends Override clear), so its target is not taken.
 * Null when the frame says nothing (or is not a valid ARP/ND frame).
 *
 * Only when the Ethernet source MAC is the link-layer address the frame claims (ARP's sender
 * hardware address, ND's source or target link-layer option): the data path learns the
 * Ethernet source, and the two must name the same station. A frame whose body claims
 * another MAC is either a proxy speaking for someone else or a spoof; gleaning it would let
 * one port bind its IP to another port's MAC (or bind a victim's IP to its own), and the
 * directory would then answer every ARP and NS for that IP with the wrong MAC: traffic
 * stolen or black-holed across the whole network, not only on this port.
 */
export function glean(frame: Buffer): Gleaned | null {
  if (frame.length < ETH) return null;
  const mac = macFromBuffer(frame, 6);
  if (!isLearnableMac(mac)) return null;
  const type = frame.readUInt16BE(12);
  if (type === ETH_ARP) {
    const op = arpHeader(frame, ETH_ARP);
    if (op !== 1 && op !== 2) return null;
    if (macFromBuffer(frame, SHA) !== mac || !usableIpv4(frame, SPA)) return null;
    return { mac, ips: [ipv4At(frame, SPA)] };
  }
  if (type !== ETH_IPV6) return null;
  const m = ndMessage(frame, 8);
  if (m === null) return null;
  const ip = ETH;
  const optStart = m.type === ICMPV6_RS ? m.icmp + 8 : m.type === ICMPV6_NS || m.type === ICMPV6_NA ? m.icmp + 24 : -1;
  if (optStart < 0 || optStart > m.end) return null;
  const opts = ndOptions(frame, optStart, m.end);
  if (opts === null) return null;
  if ((opts.slla !== undefined && opts.slla !== mac) || (opts.tlla !== undefined && opts.tlla !== mac)) return null;
  const ips: string[] = [];
  if (usableIpv6(frame, ip + 8)) ips.push(ipv6At(frame, ip + 8));
  if (m.type === ICMPV6_NA) {
    const flags = frame[m.icmp + 4];
    const target = m.icmp + 8;
    const announced = (flags & (NA_SOLICITED | NA_OVERRIDE)) === NA_OVERRIDE && opts.tlla === mac;
    if (announced && usableIpv6(frame, target)) {
      const t = ipv6At(frame, target);
      if (!ips.includes(t)) ips.push(t);
    }
  }
  return ips.length > 0 ? { mac, ips } : null;
}

/** The NA flag bits, for tests and for anyone reading an advertisement. */
export const NA_FLAGS = { router: NA_ROUTER, solicited: NA_SOLICITED, override: NA_OVERRIDE } as const;
