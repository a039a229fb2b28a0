/**
 * The FDB by name: rows for `vtepd fdb` and a takeover's snapshot of every entry, and
 * putting a snapshot back. Places are named (a port's name, a VTEP's key) so they mean
 * the same in another process.
 */
import type { Bridge, FdbEntry } from './bridge.js';
import type { Place } from '../native/datapath.js';
import { isLearnableMac } from '../util/mac.js';
import type { Switch, Where } from './switch.js';
import type { Vtep } from './vteps.js';

export interface FdbRow {
  tenant: string;
  vni: number;
  mac: string;
  /** "port blue0" or "vtep 10.0.0.2". */
  where: string;
  /** static: config or API; learned: from traffic; directory: a remote MAC's record in the directory. */
  type: 'static' | 'learned' | 'directory';
  ageSeconds: number | null;
}

/** One FDB entry in a takeover snapshot. */
export interface SnapshotEntry {
  tenant: string;
  mac: string;
  where: Where;
  static: boolean;
  /** Put there by the directory: restored as such, so the successor forwards before its own directory has caught up. */
  directory?: boolean;
  since: number;
  moves: number;
}

/** The FDB as `vtepd fdb` shows it: every entry of one tenant or of all. */
export function fdbRows(sw: Switch, tenant?: string): FdbRow[] {
  const rows: FdbRow[] = [];
  const idle = sw.idleTimes();
  for (const b of sw.tenants()) {
    if (tenant && b.name !== tenant) continue;
    for (const e of b.table.values()) rows.push(fdbRow(sw, b, e, idle.get(`${b.tenantId}/${e.mac}`)));
  }
  return rows;
}

/** One FDB entry as a row; `idleMs` from the data path (learned entries show their age). */
export function fdbRow(sw: Switch, b: Bridge, e: FdbEntry, idleMs: number | undefined): FdbRow {
  const where =
    e.place.kind === 'port' ? `port ${sw.portName(e.place.portId) ?? e.place.portId}` : `vtep ${sw.vteps.get(e.place.vtepId)?.key ?? e.place.vtepId}`;
  return {
    tenant: b.name,
    vni: b.vni,
    mac: e.mac,
    where,
    type: e.static ? 'static' : e.directory ? 'directory' : 'learned',
    ageSeconds: e.static || e.directory || idleMs === undefined ? null : Math.floor(idleMs / 1000),
  };
}

/** Every FDB entry, places by name, for a takeover snapshot. */
export function snapshotFdb(sw: Switch): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  for (const b of sw.tenants()) {
    for (const e of b.table.values()) {
      const where = sw.whereOf(e.place);
      if (where) out.push({ tenant: b.name, mac: e.mac, where, static: e.static, ...(e.directory ? { directory: true } : {}), since: e.since, moves: e.moves });
    }
  }
  return out;
}

/** Put back an entry from a snapshot. False if its tenant, port or MAC no longer fits. */
export function restoreEntry(sw: Switch, e: SnapshotEntry): boolean {
  const b = sw.tenant(e.tenant);
  if (!b || !isLearnableMac(e.mac)) return false;
  if (e.static) {
    try {
      sw.setStatic(e.tenant, e.mac, e.where);
    } catch {
      return false;
    }
    return true;
  }
  if (e.directory) {
    if (!('vtep' in e.where)) return false;
    try {
      return sw.setDirectoryEntry(e.tenant, e.mac, e.where.vtep);
    } catch {
      return false;
    }
  }
  let place: Place;
  let created: Vtep | undefined;
  if ('port' in e.where) {
    try {
      place = sw.portPlace(e.tenant, e.where.port);
    } catch {
      return false;
    }
  } else {
    const known = sw.vteps.find(e.where.vtep);
    if (!known) {
      // A spoke learned behind NAT ("address:port") comes back with its next probe, not from here.
      try {
        created = sw.vteps.acquire(e.where.vtep, true);
      } catch {
        return false;
      }
    }
    place = { kind: 'vtep', vtepId: (known ?? created)!.id };
  }
  const r = b.learn(e.mac, place);
  const cur = b.table.get(e.mac);
  if (cur && !cur.static && (r === 'new' || r === 'move' || r === 'refresh')) {
    cur.since = e.since;
    cur.moves = e.moves;
  }
  if (created) sw.vteps.gc(created);
  return r === 'new' || r === 'move' || r === 'refresh';
}
