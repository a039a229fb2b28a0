/**
 * The directory: which VTEPs are members of which VNI, for the flood lists.
 *
 * A `Directory` is a control-plane backend behind one interface, free of any store's types:
 * static (the config's flood lists, below), etcd (src/directory/etcd-directory.ts) and
 * BGP EVPN (src/directory/evpn-directory.ts: type-3 routes say the same thing). This host publishes its VTEP record, joins a VNI
 * while it has a port in it and leaves it when it has none, and learns every VNI's members as
 * they change. `Membership` (src/directory/membership.ts) turns that into each tenant's flood list.
 */
import type { Role } from '../config/config.js';

/** This host as the directory shows it to the others. */
export interface VtepRecord {
  /** Underlay address (normalized), the key of the record. */
  address: string;
  /** UDP port VXLAN is received on. */
  port: number;
  role: Role;
  /** The node's public key (base64) when it has an identity. */
  publicKey?: string;
}

/** A member VTEP of a VNI. */
export interface Member {
  address: string;
  port: number;
  publicKey?: string;
}

export interface DirectoryStatus {
  backend: 'static' | 'etcd' | 'evpn';
  /** Whether the backend is reachable now (static: always). */
  connected: boolean;
  /** Failed requests, broken watches, lost leases since start. */
  errors: number;
  /** etcd: the endpoints and the prefix. */
  endpoints?: string[];
  prefix?: string;
  /** The VNIs this host is a member of. */
  joined: number[];
  /** Lease re-grants (etcd) and full re-reads after a compaction or a reconnect. */
  regrants?: number;
  resyncs?: number;
  /** The MAC layer's counters (etcd). */
  macs?: MacDirectoryStats;
  /** evpn: the BGP side (src/directory/evpn-directory.ts). */
  evpn?: {
    asn: number;
    routerId: string;
    /** gobgpd's gRPC API. */
    api: string;
    /** The gobgpd vtepd supervises (its PID, null while it is down, and its restarts); null: a running gobgpd (`gobgp.api`). */
    gobgpd: { pid: number | null; restarts: number } | null;
    /** `changes`: times the session came up or went down since vtepd started. */
    neighbors: { address: string; state: string; changes?: number }[];
    /** Routes imported (other routers' type 2 and 3) and advertised by this host. */
    routes: { in: number; out: number };
    /** Graceful restart: imported routes kept stale now (their session is down or gobgpd restarted), and swept at a deadline since start. */
    stale: number;
    swept: number;
  };
}

/** Called with the whole member list of a VNI whenever it changes (this host included). */
export type MembersListener = (vni: number, members: Member[]) => void;

/**
 * Where a MAC of a VNI lives (like an EVPN type-2 route): its owner VTEP and the IP addresses
 * it answers for. A record belongs to one VNI, so a MAC never moves across tenants.
 */
export interface MacRecord {
  vni: number;
  /** Lower case, colon separated. */
  mac: string;
  /** The owner VTEP's underlay address (normalized). */
  owner: string;
  /** The owner's VXLAN UDP port. */
  port: number;
  /** IPv4 and IPv6 addresses (normalized, sorted) the MAC answers for: ARP/ND suppression. */
  ips: string[];
  /** +1 on every move to another owner. */
  seq: number;
  /** A static pin (`${prefix}/pins/`): no claim moves it. */
  pinned?: boolean;
  publicKey?: string;
}

/**
 * Why a MAC listener is called: a new record, a move to another owner, new IPs (same owner),
 * removed (withdrawn or its owner's lease expired), or frozen (it moved too often; it stays
 * where it is and claims are refused until the hold ends).
 */
export type MacChange = 'add' | 'move' | 'update' | 'remove' | 'frozen';

/** A MAC record changed (`rec` null: removed). Records this host owns are reported too. */
export type MacListener = (vni: number, mac: string, rec: MacRecord | null, why: MacChange) => void;

/** The MAC layer's counters, for status and metrics. */
export interface MacDirectoryStats {
  /** Records known (all VNIs, all owners). */
  macs: number;
  /** Records this host owns. */
  owned: number;
  /** Claims written (new MACs and moves to this host). */
  claims: number;
  /** Claims lost to a concurrent writer (compare failed), retried after a re-read. */
  claimConflicts: number;
  /** Moves seen (any owner to another). */
  moves: number;
  /** MACs frozen by duplicate detection, and claims refused because a MAC was frozen. */
  frozen: number;
  claimsRefusedFrozen: number;
  /** Claims refused because the MAC is pinned elsewhere. */
  claimsRefusedPinned: number;
  /** Withdrawals (aged out, port removed, moved away). */
  withdrawn: number;
  /** etcd: transactions written for MAC records (a burst of claims is batched, at most 128 a txn). */
  txns?: number;
}

export interface Directory {
  readonly backend: DirectoryStatus['backend'];
  /** Connect (a backend that cannot connect yet keeps trying; start does not wait for it). */
  start(): Promise<void>;
  /**
   * Disconnect. `withdraw` (default): take back what this host published at once (best
   * effort); without (a takeover: the successor publishes the same), let it expire.
   */
  stop(withdraw?: boolean): Promise<void>;
  /** This host's VTEP record; published now or once connected, and again after a lost lease. */
  publish(self: VtepRecord): void;
  /** This host is a member of `vni` (it has a port in it). Idempotent. */
  join(vni: number): void;
  /** This host is no longer a member of `vni`. Idempotent. */
  leave(vni: number): void;
  /** Every VNI's members as they change; returns an unsubscribe function. Current lists are reported at once. */
  subscribe(listener: MembersListener): () => void;
  /** The last-known members of `vni` (kept while the backend is unreachable). */
  members(vni: number): Member[];
  status(): DirectoryStatus;

  // ---- MACs (type-2 routes) -------------------------------------------------------------
  /**
   * A MAC seen on a local port of `vni`, with the IPs seen for it: claim it for this host.
   * New: written if no record exists. Elsewhere: a move, compare-and-swap with seq + 1.
   * Already ours: the IPs are updated if they changed. Refused (counted) when frozen or pinned
   * elsewhere. Queued while the backend is unreachable, written when it returns.
   * `sticky`: the MAC is static here (a port's configured MAC): EVPN advertises it sticky.
   */
  claimMac(vni: number, mac: string, ips?: string[], sticky?: boolean): void;
  /** This host no longer has `mac` (aged out, port gone): delete its record if it is still ours. */
  withdrawMac(vni: number, mac: string): void;
  /** Every MAC record as it changes; the current records are reported at once (why 'add'). */
  subscribeMacs(listener: MacListener): () => void;
  mac(vni: number, mac: string): MacRecord | null;
  macs(vni: number): MacRecord[];
  /** The record of the MAC that answers for `ip` (normalized or not) in `vni`, or null. */
  lookupIp(vni: number, ip: string): MacRecord | null;
  /** Is `mac` frozen by duplicate detection now? */
  isFrozen(vni: number, mac: string): boolean;
  macStats(): MacDirectoryStats;
}

export function emptyMacStats(): MacDirectoryStats {
  return { macs: 0, owned: 0, claims: 0, claimConflicts: 0, moves: 0, frozen: 0, claimsRefusedFrozen: 0, claimsRefusedPinned: 0, withdrawn: 0 };
}

/** Members sorted by address, for stable output and comparisons. */
export function sortMembers(ms: Iterable<Member>): Member[] {
  return [...ms].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/**
 * The static backend: the members of a VNI are the config's flood list (what vtepd did before
 * there was a directory). Joining and leaving change nothing others see: there is nobody to tell.
 */
export class StaticDirectory implements Directory {
  readonly backend = 'static' as const;
  private readonly lists = new Map<number, Member[]>();
  private readonly listeners = new Set<MembersListener>();
  private readonly joined = new Set<number>();

  constructor(private readonly port: number) {}

  /** The flood list of `vni` from the config (a reload calls it again). */
  setFlood(vni: number, addresses: string[]): void {
    const ms = sortMembers(addresses.map((address) => ({ address, port: this.port })));
    this.lists.set(vni, ms);
    for (const l of this.listeners) l(vni, ms);
  }

  async start(): Promise<void> {}
  async stop(_withdraw = true): Promise<void> {
    this.listeners.clear();
  }
  publish(_self: VtepRecord): void {}
  join(vni: number): void {
    this.joined.add(vni);
  }
  leave(vni: number): void {
    this.joined.delete(vni);
  }
  subscribe(listener: MembersListener): () => void {
    this.listeners.add(listener);
    for (const [vni, ms] of this.lists) listener(vni, ms);
    return () => this.listeners.delete(listener);
  }
  members(vni: number): Member[] {
    return this.lists.get(vni) ?? [];
  }
  status(): DirectoryStatus {
    return { backend: 'static', connected: true, errors: 0, joined: [...this.joined].sort((a, b) => a - b) };
  }
  /** Static YAML has no MAC directory: learning does the work, nothing is published. */
  claimMac(_vni: number, _mac: string, _ips?: string[]): void {}
  withdrawMac(_vni: number, _mac: string): void {}
  subscribeMacs(_listener: MacListener): () => void {
    return () => undefined;
  }
  mac(_vni: number, _mac: string): MacRecord | null {
    return null;
  }
  macs(_vni: number): MacRecord[] {
    return [];
  }
  lookupIp(_vni: number, _ip: string): MacRecord | null {
    return null;
  }
  isFrozen(_vni: number, _mac: string): boolean {
    return false;
  }
  macStats(): MacDirectoryStats {
    return emptyMacStats();
  }
}
