/**
 * The FDB by name: rows for `vtepd fdb` and a takeover's snapshot of every entry, and
 * putting a snapshot back. Places are named (a port's name, a VTEP's key) so they mean
 * the same in another process.
 */
import type { Bridge, FdbEntry } from './bridge.js';
import type { Place } from '../native/datapath.js';
import { isLearnableMac } from '../util/mac.js';
import { portNameOf, type Switch, type Where } from './switch.js';
import { encapKey, vtepKey, type Vtep } from './vteps.js';
import type { Encap } from './encap.js';

/**
 * Where an FDB entry sends its MAC, as the API answers it (no string to parse): a local port,
 * or a remote VTEP by address and encapsulation (udpPort: a spoke behind NAT, matched by port too).
 */
export type FdbWhere = { kind: 'port'; port: string; vlan?: number } | { kind: 'vtep'; vtep: string; encap: Encap; udpPort?: number };

/** A place as the tables show it: "port blue0", "port eth1 vlan 100", "port eth1 untagged", "vtep 10.0.0.2", "vtep gre:10.0.0.3". */
export function whereText(w: FdbWhere): string {
  if (w.kind === 'port') return `port ${w.port}${w.vlan === undefined ? '' : w.vlan ? ` vlan ${w.vlan}` : ' untagged'}`;
  return `vtep ${w.udpPort !== undefined ? vtepKey(w.vtep, w.udpPort) : encapKey(w.vtep, w.encap)}`;
}

export interface FdbRow {
  tenant: string;
  vni: number;
  mac: string;
  /** The port or VTEP; whereText() writes it "port blue0" or "vtep 10.0.0.2". */
  where: FdbWhere;
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
  const where = fdbWhere(sw, e.place);
  return {
    tenant: b.name,
    vni: b.vni,
    mac: e.mac,
    where,
    type: e.static ? 'static' : e.directory ? 'directory' : 'learned',
    ageSeconds: e.static || e.directory || idleMs === undefined ? null : Math.floor(idleMs / 1000),
  };
}

/** A place of the data path as the API names it. */
export function fdbWhere(sw: Switch, place: Place): FdbWhere {
  if (place.kind === 'port') {
    const w = sw.whereOf(place);
    return w && 'port' in w ? { kind: 'port', ...w } : { kind: 'port', port: String(place.portId) };
  }
  const v = sw.vteps.get(place.vtepId);
  if (!v) return { kind: 'vtep', vtep: `?${place.vtepId}`, encap: 'vxlan' };
  return { kind: 'vtep', vtep: v.address, encap: v.encap, ...(v.matchPort ? { udpPort: v.port } : {}) };
}

/** What `fdb show` may filter on; every one given must match. `vtep` is an address (any encapsulation). */
export interface FdbFilter {
  tenant?: string;
  vni?: number;
  mac?: string;
  port?: string;
  vtep?: string;
  /** With `port`: entries on that VLAN of a trunk (0: untagged). */
  vlan?: number;
}

/** The rows that match every field of `f`. */
export function filterFdb(rows: FdbRow[], f: FdbFilter): FdbRow[] {
  return rows.filter(
    (r) =>
      (f.tenant === undefined || r.tenant === f.tenant) &&
      (f.vni === undefined || r.vni === f.vni) &&
      (f.mac === undefined || r.mac === f.mac) &&
      (f.port === undefined || (r.where.kind === 'port' && r.where.port === f.port)) &&
      (f.vlan === undefined || (r.where.kind === 'port' && (r.where.vlan ?? -1) === f.vlan)) &&
      (f.vtep === undefined || (r.where.kind === 'vtep' && r.where.vtep === f.vtep)),
  );
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
      place = sw.portPlace(e.tenant, portNameOf(e.where));
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
