/**
 * Liveness between vtepd nodes: probes and replies carried on the tunnel's own UDP port,
 * and the spoke's choice of hub.
 *
 * ## Wire format (UDP payload on the VXLAN port; all integers big endian)
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     0x00      |      'V'      |      'T'      |      'P'      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  version = 1  | type 1 PROBE  |      length of the message    |
 *   |               |      2 REPLY  |      (padding included)       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                           sequence                            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |             sender id (random at start: a restart is seen)    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |            timestamp (ms, the prober's; echoed in REPLY)      |
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  probed size (REPLY: length   | role 0 mesh   | flags         |
 *   |  of the PROBE answered)       | 1 hub 2 spoke | bit 0: NAT    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        number of VNIs         |          reserved (0)         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   VNI list: the sender's tenants, one 32-bit word each ...    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   zero padding up to `length` (a PMTU probe is padded to the  |
 *   |   size it tries, and sent with DF)                            |
 *
 * The first byte is 0x00, so a VXLAN receiver that is not vtepd sees the I flag clear and
 * drops the message (Linux counts it as a bad-flags drop); vtepd's fast path hands it to
 * the control plane instead.
 */

export const MAGIC = Buffer.from([0x00, 0x56, 0x54, 0x50]); // "\0VTP"
export const HEADER = 32;
export const PROBE = 1;
export const REPLY = 2;
export type Role = 'mesh' | 'hub' | 'spoke';
const ROLES: Role[] = ['mesh', 'hub', 'spoke'];

export interface LivenessMessage {
  type: typeof PROBE | typeof REPLY;
  seq: number;
  sender: number;
  timestamp: number;
  probedSize: number;
  role: Role;
  nat: boolean;
  vnis: number[];
  /** Total length on the wire (padding included). */
  length: number;
}

export function isLivenessMessage(payload: Buffer): boolean {
  return payload.length >= HEADER && payload.subarray(0, 4).equals(MAGIC);
}

export function encodeLiveness(m: Omit<LivenessMessage, 'length'> & { padTo?: number }): Buffer {
  const body = HEADER + 4 * m.vnis.length;
  const length = Math.max(body, m.padTo ?? 0);
  if (length > 0xffff) throw new Error(`liveness message of ${length} bytes is too long`);
  const b = Buffer.alloc(length);
  MAGIC.copy(b, 0);
  b[4] = 1;
  b[5] = m.type;
  b.writeUInt16BE(length, 6);
  b.writeUInt32BE(m.seq >>> 0, 8);
  b.writeUInt32BE(m.sender >>> 0, 12);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(m.timestamp))), 16);
  b.writeUInt16BE(m.probedSize & 0xffff, 24);
  b[26] = ROLES.indexOf(m.role);
  b[27] = m.nat ? 1 : 0;
  b.writeUInt16BE(m.vnis.length, 28);
  m.vnis.forEach((v, i) => b.writeUInt32BE(v, HEADER + 4 * i));
  return b;
}

/** Decode, or a reason it is not a valid message (counted by the caller, never thrown). */
export function decodeLiveness(b: Buffer): LivenessMessage | { error: string } {
  if (b.length < HEADER) return { error: 'truncated' };
  if (!b.subarray(0, 4).equals(MAGIC)) return { error: 'bad magic' };
  if (b[4] !== 1) return { error: 'unknown version' };
  const type = b[5];
  if (type !== PROBE && type !== REPLY) return { error: 'unknown type' };
  const length = b.readUInt16BE(6);
  if (length !== b.length) return { error: 'length mismatch' };
  const role = ROLES[b[26]];
  if (!role) return { error: 'unknown role' };
  const n = b.readUInt16BE(28);
  if (HEADER + 4 * n > b.length) return { error: 'truncated VNI list' };
  const vnis: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = b.readUInt32BE(HEADER + 4 * i);
    if (v < 1 || v > 0xffffff) return { error: 'bad VNI' };
    vnis.push(v);
  }
  return {
    type,
    length,
    role,
    vnis,
    seq: b.readUInt32BE(8),
    sender: b.readUInt32BE(12),
    timestamp: Number(b.readBigUInt64BE(16)),
    probedSize: b.readUInt16BE(24),
    nat: (b[27] & 1) === 1,
  };
}

export interface HubState {
  address: string;
  port: number;
  /** ms of the last reply heard, or null if never. */
  lastReply: number | null;
  /** Round-trip time of the last reply (ms). */
  rtt: number | null;
  /** The hub's sender id; a change means it restarted. */
  sender: number | null;
}

export type HubEvent = { kind: 'failover'; from: string; to: string } | { kind: 'restarted'; hub: string };

/**
 * A spoke's choice of hub: it probes every hub; the active hub is the first in the list
 * at start and stays active while it answers (no preemption, so a flapping preferred hub
 * does not drag traffic back and forth). When the active hub has not answered for
 * `deadMs`, the spoke moves to the first other hub that answered within `deadMs`, or
 * else to the next hub in the list.
 */
export class HubSelector {
  readonly hubs: HubState[];
  private active = 0;
  private since: number;

  /** deadMs may change while running (a reload of deadInterval). */
  constructor(
    hubs: { address: string; port: number }[],
    public deadMs: number,
    now: number,
  ) {
    if (hubs.length === 0) throw new Error('a spoke needs at least one hub');
    this.hubs = hubs.map((h) => ({ ...h, lastReply: null, rtt: null, sender: null }));
    this.since = now;
  }

  get activeHub(): HubState {
    return this.hubs[this.active];
  }

  alive(h: HubState, now: number): boolean {
    return h.lastReply !== null && now - h.lastReply < this.deadMs;
  }

  /** A REPLY from a hub. Returns 'restarted' if its sender id changed. */
  onReply(address: string, port: number, m: LivenessMessage, now: number): HubEvent | null {
    const h = this.hubs.find((x) => x.address === address && x.port === port) ?? this.hubs.find((x) => x.address === address);
    if (!h) return null;
    h.lastReply = now;
    h.rtt = Math.max(0, now - m.timestamp);
    const restarted = h.sender !== null && h.sender !== m.sender;
    h.sender = m.sender;
    return restarted ? { kind: 'restarted', hub: h.address } : null;
  }

  /** Called on every probe tick: fails over when the active hub is dead. */
  tick(now: number): HubEvent | null {
    const cur = this.hubs[this.active];
    const heardOrStarted = cur.lastReply ?? this.since;
    if (now - heardOrStarted < this.deadMs) return null;
    const n = this.hubs.length;
    if (n === 1) return null;
    let next = -1;
    for (let i = 1; i < n && next < 0; i++) {
      const j = (this.active + i) % n;
      if (this.alive(this.hubs[j], now)) next = j;
    }
    if (next < 0) next = (this.active + 1) % n;
    const from = cur.address;
    this.active = next;
    this.since = now;
    return { kind: 'failover', from, to: this.hubs[next].address };
  }
}
