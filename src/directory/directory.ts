/**
 * The directory: which VTEPs are members of which VNI, for the flood lists.
 *
 * A `Directory` is a control-plane backend behind one interface, free of any store's types:
 * static (the config's flood lists, below), etcd (src/directory/etcd-directory.ts) and, later,
 * BGP EVPN (type-3 routes say the same thing). This host publishes its VTEP record, joins a VNI
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
  backend: 'static' | 'etcd';
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
}

/** Called with the whole member list of a VNI whenever it changes (this host included). */
export type MembersListener = (vni: number, members: Member[]) => void;

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
}
