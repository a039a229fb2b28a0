/**
 * The test addon (native/addon_test.cc, built by node-gyp into build/Release/vtepd_test.node
 * next to the product's vtepd.node, which never loads it): socketpair ports, the GSO
 * helpers, event and idle records encoded by the data path's own C encoders, and the VXLAN
 * parser. fds are process-wide: a socketpair made here is handed to the product addon's
 * dpPortSet as it is.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';

/** What one event record says besides its frame (struct dp_event, native/fastpath.h). */
export interface TestEvent {
  type: number;
  inKind: number;
  tenantId: number;
  inId: number;
  outId?: number;
  family?: number;
  encap?: number;
  /** 16 bytes; an IPv4 address in the first 4. */
  outerAddr?: Buffer;
  outerPort?: number;
}

export interface TestAddon {
  /** A SOCK_SEQPACKET socketpair (non-blocking, close-on-exec), one frame per message. */
  testSocketPair(): [number, number];
  /** One message from fd, waiting up to timeoutMs; null on timeout. */
  testRead(fd: number, timeoutMs: number): Buffer | null;
  /** Write one message whole. */
  testWrite(fd: number, frame: Buffer): void;
  /**
   * native/gso.c. testSegment: a 10-byte virtio_net_hdr followed by a GSO super-frame ->
   * its segments (whole frames, checksums final); EINVAL if the headers are bad.
   * testCoalesce: frames in arrival order -> what the decap path writes to a TAP, each
   * behind its virtio_net_hdr (a super-frame per run of coalescable segments).
   */
  testSegment(frame: Buffer): Buffer[];
  testCoalesce(frames: Buffer[]): Buffer[];
  /** One event record as the fast path queues it (dp_event_encode). */
  encodeEvent(ev: TestEvent, frame: Buffer): Buffer;
  /** The dpFdbIdle records of an FDB holding these entries (fdb_idle_dump), in its order. */
  encodeIdle(entries: { tenantId: number; mac: Buffer; idleMs: number }[]): Buffer;
  /** native/vxlan.c's vxlan_pop over a UDP payload, the parser the decap path calls. */
  vxlanPop(packet: Buffer): { result: 'ok' | 'truncated' | 'bad_flags'; vni?: number };
}

let cached: TestAddon | undefined;

/** Load the test addon once. */
export function testAddon(): TestAddon {
  if (!cached) {
    const p = join(packageRoot, 'build', 'Release', 'vtepd_test.node');
    if (!existsSync(p)) throw new Error('vtepd test addon not built: run `npm ci` (or `npx node-gyp rebuild`)');
    cached = createRequire(import.meta.url)(p) as TestAddon;
  }
  return cached;
}
