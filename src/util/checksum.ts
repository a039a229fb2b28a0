/** The Internet checksum (RFC 1071) and the IPv6 pseudo-header (RFC 8200 section 8.1). */

/** One's-complement sum of 16-bit words (RFC 1071), folded. */
export function csum16(buf: Buffer, start = 0, end = buf.length, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The checksum field's value for a folded sum. */
export function csumFinish(sum: number): number {
  return ~sum & 0xffff;
}

/**
 * Sum of the IPv6 pseudo-header (source, destination, upper-layer length, next header) of
 * the IPv6 header at `ip` in `buf`; the start value for the upper-layer checksum.
 */
export function ipv6PseudoSum(buf: Buffer, ip: number, upperLength: number, nextHeader: number): number {
  return csum16(buf, ip + 8, ip + 40) + (upperLength >>> 16) + (upperLength & 0xffff) + nextHeader;
}
