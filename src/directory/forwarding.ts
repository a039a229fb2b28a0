/**
 * Forwarding from the directory (issue #13): the MAC records of a `Directory` become the
 * bridges' entries for remote MACs, and what the bridges learn on local ports becomes this
 * host's records.
 *
 * - A record owned by another host is programmed into its tenant's table (and the C cache)
 *   at the owner's VTEP: unicast to a MAC the directory knows is never flooded. Removed when
 *   the record goes (withdrawn, or its owner's lease expired).
 * - A MAC learned on a local port is claimed (a new record, or a move: compare-and-swap with
 *   seq + 1, done by the directory). When a MAC comes to this host from another, this host
 *   announces it with a RARP (as QEMU does after a migration) so that any bridge behind the
 *   tenant's ports and VTEPs moves it at once. A MAC that ages out or whose port goes is
 *   withdrawn.
 * - A record of this host that another host took (the MAC moved away) replaces the local
 *   entry: the bridge forwards to its new owner.
 * - ARP requests and neighbour solicitations from local ports are gleaned (the sender's
 *   IP joins its MAC's record, unless the directory has that IP for another MAC) and, for
 *   an IP the directory knows, answered here and not flooded (src/core/arp.ts builds the
 *   replies).
 *
 * The record key is per VNI, so a MAC never moves across tenants: a tenant on this host
 * is programmed only from its own VNI's records.
 */
import type { Bridge, NeighborVerdict } from '../core/bridge.js';
import type { Switch } from '../core/switch.js';
import type { Datapath } from '../native/datapath.js';
import { logger } from '../util/log.js';
import type { Directory, MacChange, MacRecord } from './directory.js';
import { arpReply, glean, neighborAdvertisement, parseArpRequest, parseNeighborSolicitation, rarp } from '../core/arp.js';

const log = logger('directory');

export interface DirectoryForwardingCounters {
  /** Remote MACs programmed from the directory, and removed again. */
  programmed: number;
  unprogrammed: number;
  /** Records that could not be programmed (a static entry holds the MAC, or the table is full). */
  refused: number;
  /** Local MACs claimed and withdrawn. */
  claimed: number;
  withdrawn: number;
  /** MACs that came to this host from another (a move), and the RARPs sent for them. */
  movedHere: number;
  announced: number;
  /** MACs of this host another host took (moved away). */
  movedAway: number;
  /** IP addresses gleaned from local ARP and ND. */
  gleaned: number;
  /** Addresses a local port's ARP/ND claimed while the directory has them for another MAC: not taken (an IP is not stolen by a gratuitous ARP). */
  gleanRefused: number;
}

export interface DirectoryForwardingOptions {
  directory: Directory;
  sw: Switch;
  dp: Datapath;
  /** This host's underlay addresses: records it owns are its own. */
  self: string[];
}

export class DirectoryForwarding {
  readonly counters: DirectoryForwardingCounters = {
    programmed: 0,
    unprogrammed: 0,
    refused: 0,
    claimed: 0,
    withdrawn: 0,
    movedHere: 0,
    announced: 0,
    movedAway: 0,
    gleaned: 0,
    gleanRefused: 0,
  };
  private readonly self: Set<string>;
  /** VNI -> the tenant on this host that carries it. */
  private readonly tenants = new Map<number, string>();
  /** tenant -> MAC -> IP addresses seen for it (gleaned or given with its port). */
  private readonly ips = new Map<string, Map<string, Set<string>>>();
  /** tenant -> the MACs its ports' config gives (static here: claimed sticky). */
  private readonly statics = new Map<string, Set<string>>();
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly opts: DirectoryForwardingOptions) {
    this.self = new Set(opts.self);
  }

  start(): void {
    // Called from the directory's watches and timers: a record that cannot be programmed (the
    // data path's process gone: the daemon's periodic check acts on that) is logged, not
    // thrown into the directory's stream.
    this.unsubscribe ??= this.opts.directory.subscribeMacs((vni, mac, rec, why) => {
      try {
        this.onRecord(vni, mac, rec, why);
      } catch (e) {
        log.warn({ vni, mac, err: (e as Error).message }, 'programming a MAC record from the directory failed');
      }
    });
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** A tenant came up: program its VNI's records. */
  addTenant(name: string, vni: number): void {
    this.tenants.set(vni, name);
    for (const rec of this.opts.directory.macs(vni)) this.onRecord(vni, rec.mac, rec, 'add');
  }

  removeTenant(name: string): void {
    for (const [vni, t] of this.tenants) if (t === name) this.tenants.delete(vni);
    this.ips.delete(name);
    this.statics.delete(name);
  }

  /** A local port's own MAC and addresses (port add --mac --address): known before it speaks. */
  announce(tenant: string, mac: string, ips: string[]): void {
    const b = this.opts.sw.tenant(tenant);
    if (!b) return;
    const set = this.ipsOf(tenant, mac);
    for (const ip of ips) set.add(ip);
    if (!this.statics.has(tenant)) this.statics.set(tenant, new Set());
    this.statics.get(tenant)!.add(mac);
    if (b.table.get(mac)?.place.kind === 'port') this.claim(b, mac);
  }

  /** Bridge hook: a learned MAC came to a local port, or left it. */
  localMac(b: Bridge, mac: string, _portId: number | null, present: boolean): void {
    const dir = this.opts.directory;
    if (!present) {
      dir.withdrawMac(b.vni, mac);
      this.counters.withdrawn++;
      return;
    }
    const prev = dir.mac(b.vni, mac);
    this.claim(b, mac);
    if (prev && !this.self.has(prev.owner) && !dir.isFrozen(b.vni, mac) && !prev.pinned) {
      this.counters.movedHere++;
      log.info({ tenant: b.name, vni: b.vni, mac, from: prev.owner, seq: prev.seq + 1 }, 'MAC moved to this host');
      this.announceMove(b, mac);
    }
  }

  /** Bridge hook: glean the sender's IP of local ARP/ND, and answer requests the directory can. */
  neighbor(b: Bridge, portId: number, frame: Buffer): NeighborVerdict {
    const g = glean(frame);
    if (g && b.table.get(g.mac)?.place.kind === 'port') {
      const set = this.ipsOf(b.name, g.mac);
      // An address the directory has for another MAC stays theirs until it is withdrawn: a
      // gratuitous ARP must not redirect every host's answers for it (ARP spoofing made global).
      const fresh = g.ips.filter((ip) => {
        if (set.has(ip)) return false;
        const holder = this.opts.directory.lookupIp(b.vni, ip);
        if (holder && holder.mac !== g.mac) {
          this.counters.gleanRefused++;
          return false;
        }
        return true;
      });
      if (fresh.length) {
        for (const ip of fresh) set.add(ip);
        this.counters.gleaned += fresh.length;
        this.claim(b, g.mac);
      }
    }
    const dir = this.opts.directory;
    const arp = parseArpRequest(frame);
    if (arp) {
      if (arp.kind !== 'request') return null;
      const rec = dir.lookupIp(b.vni, arp.targetIp);
      if (!rec || rec.mac === arp.senderMac) return 'arp-flood';
      this.opts.dp.transmit(b.tenantId, arpReply(arp, rec.mac), [portId], []);
      return 'arp-suppressed';
    }
    const ns = parseNeighborSolicitation(frame);
    if (ns) {
      if (ns.dad) return null;
      const rec = dir.lookupIp(b.vni, ns.targetIp);
      if (!rec || rec.mac === ns.srcMac) return 'nd-flood';
      this.opts.dp.transmit(b.tenantId, neighborAdvertisement(ns, rec.mac), [portId], []);
      return 'nd-suppressed';
    }
    return null;
  }

  private ipsOf(tenant: string, mac: string): Set<string> {
    let t = this.ips.get(tenant);
    if (!t) this.ips.set(tenant, (t = new Map()));
    let s = t.get(mac);
    if (!s) t.set(mac, (s = new Set()));
    return s;
  }

  private claim(b: Bridge, mac: string): void {
    this.opts.directory.claimMac(b.vni, mac, [...(this.ips.get(b.name)?.get(mac) ?? [])].sort(), this.statics.get(b.name)?.has(mac) ?? false);
    this.counters.claimed++;
  }

  /** A RARP from the MAC, flooded in its tenant (other local ports, the VNI's members). */
  private announceMove(b: Bridge, mac: string): void {
    const place = b.table.get(mac)?.place;
    if (place?.kind !== 'port') return;
    const vteps = b.dynFlood.size ? [...new Set([...b.flood, ...b.dynFlood])] : [...b.flood];
    const ports = [...b.ports].filter((p) => p !== place.portId);
    try {
      this.opts.dp.transmit(b.tenantId, rarp(mac), ports, vteps);
      this.counters.announced++;
    } catch (err) {
      log.warn({ tenant: b.name, mac, err: (err as Error).message }, 'announcing a moved MAC failed');
    }
  }

  private onRecord(vni: number, mac: string, rec: MacRecord | null, why: MacChange): void {
    const tenant = this.tenants.get(vni);
    if (!tenant) return;
    const b = this.opts.sw.tenant(tenant);
    if (!b) return;
    if (why === 'frozen') {
      log.warn({ tenant, vni, mac, owner: rec?.owner }, 'MAC frozen by the directory: it moved too often; it stays where it is');
      return;
    }
    if (!rec || this.self.has(rec.owner)) {
      // Gone, or ours: what the directory had put here goes (a local entry stays).
      if (this.opts.sw.removeDirectoryEntry(tenant, mac)) this.counters.unprogrammed++;
      return;
    }
    const cur = b.table.get(mac);
    if (cur?.place.kind === 'port' && !cur.static) {
      this.counters.movedAway++;
      log.info({ tenant, vni, mac, to: rec.owner, seq: rec.seq }, 'MAC moved to another host');
    }
    if (this.opts.sw.setDirectoryEntry(tenant, mac, rec.owner)) this.counters.programmed++;
    else this.counters.refused++;
  }
}
