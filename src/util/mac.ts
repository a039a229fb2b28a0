/** MAC addresses: kept as lower-case "aa:bb:cc:dd:ee:ff" strings in tables, 6-byte Buffers on the wire. */

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function isMacString(s: string): boolean {
  return MAC_RE.test(s.toLowerCase());
}

/**
 * A MAC written in any common form, as "aa:bb:cc:dd:ee:ff"; null if it is none of them:
 * colons or dashes between bytes (02:00:00:00:09:09, 02-00-00-00-09-09), Cisco's dotted
 * groups of four (0200.0000.0909), or twelve hex digits; either case.
 */
export function normalizeMac(s: string): string | null {
  const t = s.trim().toLowerCase();
  const hex = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/.test(t)
    ? t.replace(/[:-]/g, '')
    : /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/.test(t)
      ? t.replaceAll('.', '')
      : /^[0-9a-f]{12}$/.test(t)
        ? t
        : null;
  return hex === null ? null : hex.match(/../g)!.join(':');
}

export function macToBuffer(mac: string): Buffer {
  if (!isMacString(mac)) throw new Error(`not a MAC address: "${mac}"`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

export function macFromBuffer(buf: Buffer, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[offset + i].toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** Group bit set: broadcast or multicast. */
export function isMulticastMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

export function isZeroMac(mac: string): boolean {
  return mac === '00:00:00:00:00:00';
}

/** A source MAC that may be learned: unicast and not all-zero. */
export function isLearnableMac(mac: string): boolean {
  return !isMulticastMac(mac) && !isZeroMac(mac);
}

/** Destination and source MAC of an Ethernet frame. */
export function frameMacs(frame: Buffer): { dst: string; src: string } {
  return { dst: macFromBuffer(frame, 0), src: macFromBuffer(frame, 6) };
}
