/** Ethernet frames for tests. */
import { macToBuffer } from '../../src/util/mac.js';

export const BCAST = 'ff:ff:ff:ff:ff:ff';

/** An Ethernet frame dst/src/ethertype with a payload, padded to the 60-byte minimum. */
export function frame(dst: string, src: string, payload: string | Buffer = 'hello', ethertype = 0x0800): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const f = Buffer.alloc(Math.max(60, 14 + body.length));
  macToBuffer(dst).copy(f, 0);
  macToBuffer(src).copy(f, 6);
  f.writeUInt16BE(ethertype, 12);
  body.copy(f, 14);
  return f;
}

/** A deterministic unicast MAC from a number. */
export function mac(n: number): string {
  const b = Buffer.alloc(6);
  b[0] = 0x02;
  b.writeUIntBE(n, 1, 5);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function payloadOf(f: Buffer): string {
  return f.subarray(14).toString().replace(/\0+$/, '');
}
