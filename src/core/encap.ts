/**
 * The encapsulations vtepd speaks, declared once: their names, and the bytes each adds in
 * front of a frame. The config validates against this list, the Switch keys its VTEPs by
 * it, the native surface passes it to C.
 */

export type Family = 4 | 6;
/** How a tenant's frames travel to a VTEP: VXLAN (RFC 7348), GRE-TAP (RFC 2784/2890), NVGRE (RFC 7637). */
export const ENCAPS = ['vxlan', 'gre', 'nvgre'] as const;
export type Encap = (typeof ENCAPS)[number];
/** Their names in messages and docs. */
export const ENCAP_NAMES: Record<Encap, string> = { vxlan: 'VXLAN', gre: 'GRE-TAP', nvgre: 'NVGRE' };
/** NVGRE VSIDs 0..0xFFF are reserved (RFC 7637 §3.2). */
export const NVGRE_VSID_MIN = 0x1000;

/**
 * Bytes encryption adds to a VXLAN datagram (src/secure, native/secure.h): a 16-byte
 * transport header (type, receiver index, counter) in front and a 16-byte AEAD tag behind.
 */
export const SECURE_OVERHEAD = 32;

/**
 * Bytes an encapsulation adds to a frame beyond the TAP MTU (the inner IP packet): the inner
 * Ethernet header (14), the tunnel header and the outer IP header (20 IPv4 / 40 IPv6).
 *   VXLAN    14 + 8 VXLAN + 8 UDP + IP        = 50 / 70
 *   GRE-TAP  14 + 8 GRE (4 + the 4-byte key)  = 42 / 62  (vtepd always sends the key:
 *            it names the tenant; keyless GRE-TAP would be 38 / 58)
 *   NVGRE    14 + 8 GRE (key = VSID + FlowID) = 42 / 62
 *   encrypted VXLAN: 32 more (SECURE_OVERHEAD) = 82 / 102
 */
export function encapOverhead(family: Family, encap: Encap = 'vxlan', encrypted = false): number {
  const tunnel = encap === 'vxlan' ? 8 + 8 : 8;
  return 14 + tunnel + (family === 4 ? 20 : 40) + (encrypted ? SECURE_OVERHEAD : 0);
}

/** The TAP MTU that keeps encapsulated frames within the underlay MTU. */
export function defaultTapMtu(underlayMtu: number, family: Family, encap: Encap = 'vxlan', encrypted = false): number {
  return underlayMtu - encapOverhead(family, encap, encrypted);
}

/** The largest overhead over every family and encapsulation given, and which pair it is. */
export function worstOverhead(families: Iterable<Family>, encaps: Iterable<Encap>, encrypted = false): { overhead: number; family: Family; encap: Encap } {
  let worst = { overhead: -1, family: 4 as Family, encap: 'vxlan' as Encap };
  for (const family of families) {
    for (const encap of encaps) {
      const overhead = encapOverhead(family, encap, encrypted);
      if (overhead > worst.overhead) worst = { overhead, family, encap };
    }
  }
  return worst;
}
