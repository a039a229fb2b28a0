/**
 * The pure parts of the directory's MAC layer (issue #13, step 4), apart from etcd so they are
 * tested alone: IP and MAC normalization, the JSON of a MAC record and of a pin, the freeze
 * (duplicate detection) counter, and the operator's `pinMac` / `unpinMac` helpers.
 *
 * Keys, under the prefix: `macs/<vni>/<mac>` (a host's claim, under its lease) and
 * `pins/<vni>/<mac>` (an operator's pin, no lease). `<vni>` decimal, `<mac>` lower case with colons.
 */
import { isIP } from 'node:net';
import { Address6 } from 'ip-address';
import { parseMac } from '../config/schema.js';
import type { EtcdClient } from './etcd.js';
import { MoveDampener } from '../core/policy.js';
import type { MacRecord } from './directory.js';

/** An IPv4 or IPv6 address in its canonical text (IPv6: RFC 5952, lower case), or null. */
export function normalizeIp(text: string): string | null {
  if (text.includes('%')) return null; // a zone index means nothing to another host
  const family = isIP(text);
  if (family === 4) return text; // node:net takes only the canonical dotted quad (no leading zeros)
  if (family === 6) return new Address6(text).correctForm();
  return null;
}

/** Normalized, deduplicated and sorted (IPv4 first); what is not an address is left out. */
export function normalizeIps(ips: readonly string[]): string[] {
  const out = new Set<string>();
  for (const ip of ips) {
    const n = normalizeIp(ip);
    if (n) out.add(n);
  }
  return [...out].sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')) || (a < b ? -1 : a > b ? 1 : 0));
}

/** A unicast MAC in lower-case colon form, or null. */
export function normalizeMac(text: string): string | null {
  const r = parseMac(text);
  return 'value' in r ? (r.value ?? null) : null;
}

export const isVni = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 16777215;

/** `<vni>/<mac>` after a `macs/` or `pins/` prefix: parsed, or null when it is not one. */
export function parseMacKey(rest: string): { vni: number; mac: string } | null {
  const [v, mac, ...more] = rest.split('/');
  const vni = Number(v);
  if (more.length || !mac || !isVni(vni) || !/^[1-9]\d*$/.test(v) || normalizeMac(mac) !== mac) return null;
  return { vni, mac };
}

/** What a record or pin says, as stored in etcd (pins have no seq). */
export interface MacValue {
  owner: string;
  port: number;
  ips: string[];
  seq?: number;
  publicKey?: string;
}

export function encodeMacValue(v: MacValue): string {
  return JSON.stringify({
    owner: v.owner,
    port: v.port,
    ips: v.ips,
    ...(v.seq !== undefined ? { seq: v.seq } : {}),
    ...(v.publicKey ? { publicKey: v.publicKey } : {}),
  });
}

/** The record a stored value makes (`pinned`: from `pins/`, seq 0 when absent); null when malformed. */
export function decodeMacValue(vni: number, mac: string, json: string, pinned: boolean): MacRecord | null {
  let v: Partial<MacValue>;
  try {
    v = JSON.parse(json) as Partial<MacValue>;
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const owner = typeof v.owner === 'string' ? normalizeIp(v.owner) : null;
  if (!owner) return null;
  const port = Number.isInteger(v.port) && (v.port as number) > 0 && (v.port as number) < 65536 ? (v.port as number) : 4789;
  const ips = Array.isArray(v.ips) ? normalizeIps(v.ips.filter((x): x is string => typeof x === 'string')) : [];
  const seq = Number.isInteger(v.seq) && (v.seq as number) >= 0 ? (v.seq as number) : pinned ? 0 : null;
  if (seq === null) return null;
  return {
    vni,
    mac,
    owner,
    port,
    ips,
    seq,
    ...(pinned ? { pinned: true } : {}),
    ...(typeof v.publicKey === 'string' ? { publicKey: v.publicKey } : {}),
  };
}

/** Same owner, port, IPs, seq, pin and key: nothing a listener would want to hear about. */
export function sameRecord(a: MacRecord, b: MacRecord): boolean {
  return (
    a.owner === b.owner &&
    a.port === b.port &&
    a.seq === b.seq &&
    a.pinned === b.pinned &&
    a.publicKey === b.publicKey &&
    a.ips.length === b.ips.length &&
    a.ips.every((ip, i) => ip === b.ips[i])
  );
}

// ---- duplicate detection ---------------------------------------------------------------------

export interface FreezeOptions {
  /** More moves than this inside `windowMs` freeze the MAC. Default 5. */
  moves: number;
  /** Default 10 000 ms. */
  windowMs: number;
  /** How long a frozen MAC stays frozen. Default 60 000 ms. */
  holdMs: number;
}

export const DEFAULT_FREEZE: FreezeOptions = { moves: 5, windowMs: 10_000, holdMs: 60_000 };

/**
 * Counts the moves (owner changes) of each key and freezes a key that moved more than
 * `moves` times within `windowMs`, for `holdMs`: the bridges' move dampening
 * (src/core/policy.ts, MoveDampener), fed with the moves the directory's event stream shows.
 * Time is passed in, so it is tested without clocks.
 */
export class FreezeCounter {
  private readonly dampener: MoveDampener;

  constructor(readonly opts: FreezeOptions = DEFAULT_FREEZE) {
    this.dampener = new MoveDampener({ maxMoves: opts.moves, windowMs: opts.windowMs, holdMs: opts.holdMs });
  }

  /** Count a move of `key` at `now`; true when this move freezes it (it was not frozen). */
  move(key: string, now: number): boolean {
    return this.dampener.allowMove(key, now) === 'flapping';
  }

  isFrozen(key: string, now: number): boolean {
    return this.dampener.isPinned(key, now);
  }

  /** Keys tracked now (moving or frozen), for tests. */
  get size(): number {
    return this.dampener.size;
  }
}

// ---- pins (an operator's, no lease) ------------------------------------------------------------

export interface PinValue {
  owner: string;
  port: number;
  ips: string[];
  publicKey?: string;
}

function pinKey(prefix: string, vni: number, mac: string): string {
  const m = normalizeMac(mac);
  if (!isVni(vni) || !m) throw new Error(`pin: bad VNI ${vni} or MAC ${mac}`);
  return `${prefix}/pins/${vni}/${m}`;
}

/** Pin `mac` of `vni` to `owner`: no claim moves it while the pin stays. No lease: until unpinMac. */
export async function pinMac(client: EtcdClient, prefix: string, vni: number, mac: string, v: PinValue): Promise<void> {
  const owner = normalizeIp(v.owner);
  if (!owner) throw new Error(`pin: bad owner address ${v.owner}`);
  await client.put(pinKey(prefix, vni, mac), encodeMacValue({ owner, port: v.port, ips: normalizeIps(v.ips), publicKey: v.publicKey }));
}

/** Remove a pin; true when there was one. */
export async function unpinMac(client: EtcdClient, prefix: string, vni: number, mac: string): Promise<boolean> {
  return (await client.delete(pinKey(prefix, vni, mac))).deleted > 0;
}
