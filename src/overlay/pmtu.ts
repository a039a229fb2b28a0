/**
 * Path-MTU feedback for frames too large for their tunnel.
 *
 * An overlay is one layer-2 hop, so there is no router to say "too big". Like the kernel's
 * bridged VXLAN (iptunnel_pmtud), vtepd answers in the destination's name: an ICMPv4
 * "fragmentation needed" (type 3 code 4, RFC 792/1191) for an IPv4 packet with DF set, or
 * an ICMPv6 "packet too big" (type 2, RFC 4443) for any IPv6 packet, with the Ethernet and
 * IP addresses swapped, written back into the port the frame came from. The sender's TCP
 * then lowers its MSS instead of retransmitting into a black hole.
 *
 * Never answers an ICMP error with an ICMP error, a non-first fragment, or a broadcast.
 */

import type { Datapath, Place } from '../native/datapath.js';
import { TokenBucket } from '../core/policy.js';
import { outerBytes, type VtepRegistry } from '../core/vteps.js';
import { csum16, csumFinish as finish, ipv6PseudoSum } from '../util/checksum.js';
import type { Logger } from '../util/log.js';

const ETH = 14;
const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;

function swapEthernet(out: Buffer, frame: Buffer, ethertype: number): void {
  frame.copy(out, 0, 6, 12); // dst = the sender
  frame.copy(out, 6, 0, 6); // src = whom it was sent to
  out.writeUInt16BE(ethertype, 12);
}

/**
 * The ICMP reply telling the sender of `frame` that at most `mtu` bytes of IP packet fit,
 * or null when none should be sent.
 */
export function tooBigReply(frame: Buffer, mtu: number): Buffer | null {
  if (frame.length < ETH + 20 || (frame[0] & 1) === 1) return null;
  const type = frame.readUInt16BE(12);
  if (type === ETH_IPV4) return fragNeeded(frame, mtu);
  if (type === ETH_IPV6) return packetTooBig(frame, mtu);
  return null;
}

function fragNeeded(frame: Buffer, mtu: number): Buffer | null {
  const ip = ETH;
  if (frame[ip] >> 4 !== 4) return null;
  const ihl = (frame[ip] & 0x0f) * 4;
  if (ihl < 20 || frame.length < ip + ihl) return null;
  const frag = frame.readUInt16BE(ip + 6);
  if (!(frag & 0x4000)) return null; // no DF: not ours to answer
  if (frag & 0x1fff) return null; // a non-first fragment
  if (frame[ip + 9] === 1 && frame.length >= ip + ihl + 1) {
    const t = frame[ip + ihl];
    if (t !== 0 && t !== 8 && t !== 13 && t !== 14) return null; // an ICMP error
  }
  // RFC 1812 4.3.2.3: as much of the original as fits in 576 bytes.
  const quote = Math.min(frame.length - ip, 576 - 20 - 8);
  const out = Buffer.alloc(ETH + 20 + 8 + quote);
  swapEthernet(out, frame, ETH_IPV4);
  const o = ETH;
  out[o] = 0x45;
  out.writeUInt16BE(20 + 8 + quote, o + 2);
  out[o + 8] = 64; // TTL
  out[o + 9] = 1; // ICMP
  frame.copy(out, o + 12, ip + 16, ip + 20); // src = original destination
  frame.copy(out, o + 16, ip + 12, ip + 16); // dst = original source
  out.writeUInt16BE(finish(csum16(out, o, o + 20)), o + 10);
  const c = o + 20;
  out[c] = 3; // destination unreachable
  out[c + 1] = 4; // fragmentation needed and DF set
  out.writeUInt16BE(Math.min(mtu, 0xffff), c + 6);
  frame.copy(out, c + 8, ip, ip + quote);
  out.writeUInt16BE(finish(csum16(out, c, out.length)), c + 2);
  return out;
}

function packetTooBig(frame: Buffer, mtu: number): Buffer | null {
  const ip = ETH;
  if (frame.length < ip + 40 || frame[ip] >> 4 !== 6) return null;
  if (frame[ip + 6] === 58 && frame.length > ip + 40 && frame[ip + 40] < 128) return null; // an ICMPv6 error
  if (frame[ip + 24] === 0xff) return null; // to a multicast group
  // RFC 4443 2.4(c): as much as fits without exceeding the minimum IPv6 MTU.
  const quote = Math.min(frame.length - ip, 1280 - 40 - 8);
  const out = Buffer.alloc(ETH + 40 + 8 + quote);
  swapEthernet(out, frame, ETH_IPV6);
  const o = ETH;
  out[o] = 0x60;
  out.writeUInt16BE(8 + quote, o + 4);
  out[o + 6] = 58; // ICMPv6
  out[o + 7] = 64; // hop limit
  frame.copy(out, o + 8, ip + 24, ip + 40); // src = original destination
  frame.copy(out, o + 24, ip + 8, ip + 24); // dst = original source
  const c = o + 40;
  out[c] = 2; // packet too big
  out.writeUInt32BE(Math.max(1280, mtu), c + 4);
  frame.copy(out, c + 8, ip, ip + quote);
  // Pseudo-header: addresses, upper-layer length, next header.
  out.writeUInt16BE(finish(csum16(out, c, out.length, ipv6PseudoSum(out, o, 8 + quote, 58))), c + 2);
  return out;
}

/**
 * Path MTU discovery (src/overlay/roles.ts probes): DF liveness probes padded to candidate
 * sizes find the largest outer packet that arrives toward a peer.
 */
/** Path MTU discovery toward one peer: rounds of DF probes padded to candidate sizes. */
export class PmtuSearch {
  /** Largest outer packet size known to arrive. */
  lo: number;
  /** Smallest size known not to arrive (max + 1 while unknown). */
  hi: number;
  /** Sizes probed in the current round, and whether a reply came. */
  private round = new Map<number, boolean>();
  done = false;
  /** Rounds with the confirmed size lost in a row (a verify round). */
  private lost = 0;

  constructor(
    readonly min: number,
    readonly max: number,
  ) {
    this.lo = min;
    this.hi = max + 1;
  }

  /** A round of probes is out (close it with next()). */
  get pending(): boolean {
    return this.round.size > 0;
  }

  /** The size the path is believed to carry now. */
  get value(): number {
    return this.lo;
  }

  /** A reply to a probe of `size` arrived. */
  confirm(size: number): void {
    if (this.round.has(size)) this.round.set(size, true);
  }

  /** A probe of `size` was not sent this round (no byte budget for it): neither lost nor confirmed. */
  skip(size: number): void {
    this.round.delete(size);
  }

  /** A probe of `size` could not even leave this host (EMSGSIZE). */
  refuse(size: number): void {
    if (this.round.has(size)) this.round.delete(size);
    if (size < this.hi && size > this.lo) this.hi = size;
  }

  /**
   * Close the round that ran since the last call and say which sizes to probe next.
   * Returns [] when there is nothing to probe this tick.
   */
  next(): number[] {
    const wasVerify = this.done;
    let verifiedLost = false;
    for (const [size, ok] of this.round) {
      if (ok) this.lo = Math.max(this.lo, size);
      else if (size > this.lo) this.hi = Math.min(this.hi, size);
      else if (wasVerify && size === this.lo) verifiedLost = true;
    }
    if (this.hi <= this.lo) this.hi = this.lo + 1;
    this.round = new Map();
    if (wasVerify) {
      // Verify the confirmed size; two lost in a row: search again from the bottom.
      this.lost = verifiedLost ? this.lost + 1 : 0;
      if (this.lost >= 2) {
        this.hi = this.lo;
        this.lo = this.min;
        this.done = false;
        this.lost = 0;
      } else {
        return [];
      }
    }
    if (this.hi - this.lo <= 8) {
      this.done = true;
      return [];
    }
    // Up to 6 sizes spread over (lo, hi), the largest first.
    const sizes = new Set<number>();
    const span = this.hi - 1 - this.lo;
    for (let k = 6; k >= 1; k--) sizes.add(this.lo + Math.ceil((span * k) / 6));
    for (const s of sizes) this.round.set(s, false);
    return [...sizes];
  }

  /** Probe the confirmed size once (a verify round) — every minute or so once done. */
  verify(): number[] {
    if (!this.done) return [];
    this.round = new Map([[this.lo, false]]);
    return [this.lo];
  }
}

/**
 * Answers frames too big for their tunnel: a frame from `ingress` too big for VTEP
 * `vtepId` gets, as the kernel's bridged VXLAN does, an ICMP fragmentation-needed /
 * packet-too-big reply written back where it came from (a port; on a hub, the VTEP of
 * the spoke that sent it). At most 100 replies a second, bursts of 50, over all tenants.
 */
export class TooBigResponder {
  /** Frames too big for their tunnel (fast path and flooding). */
  frames = 0;
  /** ICMP too-big replies written back. */
  sent = 0;
  private readonly bucket = new TokenBucket(100, 50, Date.now());

  constructor(
    private readonly dp: Pick<Datapath, 'transmit'>,
    private readonly vteps: Pick<VtepRegistry, 'get'>,
    private readonly log: Logger,
  ) {}

  /** `extra`: bytes the tenant's datagrams carry beyond the encapsulation (32 when encrypted). */
  answer(tenantId: number, ingress: Place, frame: Buffer, vtepId: number, extra = 0): void {
    this.frames++;
    const v = this.vteps.get(vtepId);
    if (!v || v.mtu === 0) return;
    const reply = tooBigReply(frame, v.mtu - outerBytes(v) - 14 - extra);
    if (!reply || !this.bucket.take(Date.now())) return;
    try {
      const n = ingress.kind === 'port' ? this.dp.transmit(tenantId, reply, [ingress.portId], []) : this.dp.transmit(tenantId, reply, [], [ingress.vtepId]);
      if (n > 0) this.sent++;
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'ICMP too-big reply not sent');
    }
  }
}
