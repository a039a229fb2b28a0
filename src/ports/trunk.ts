/**
 * Trunks (#15): one attached interface (a NIC, a bond, a veth toward a top-of-rack switch)
 * carrying several tenants, each by its 802.1Q VLAN ID. The interface is opened once (an
 * AF_PACKET socket, as an attached port: native/attach.c) and becomes a trunk of the data
 * path, a port with no tenant; each tenant on it gets a VLAN port (eth1.100, eth1.native)
 * in its bridge. The fast path reads a frame's tag (PACKET_AUXDATA), takes it off and
 * switches the frame in the VLAN port's tenant; frames toward a VLAN port go out on the
 * interface with its tag put back. MAC learning, limits, storm control and anti-spoofing
 * work per VLAN port exactly as on a TAP: to the bridge it is a port like any other.
 *
 * What this file keeps: which trunks run, their sockets, and which VLAN ports each has.
 * `set` makes a trunk what its config says (pool IDs resolved by the caller's `assign`),
 * adding and removing VLAN ports as a diff, so a reload touches nothing that did not change.
 * An interface deleted under the daemon is noticed by `check` (once a second): its VLAN
 * ports stay (their MACs go with the frames), and the interface is attached again under
 * the same trunk as soon as it is back.
 */
import type { TrunkConfig } from '../config/config.js';
import { type Switch, vlanPortName } from '../core/switch.js';
import { attachDetached, openSwitchPort } from './attach.js';
import { fdClose, type AttachInfo } from '../native/system.js';
import { logger } from '../util/log.js';
import { poolRequestOf, type VlanPoolStore } from './vlan-pool.js';

const log = logger('daemon');

/** A VLAN ID (1..4094), or 0 for the untagged frames (the native tenant). */
export type VlanId = number;

export interface RunningTrunk {
  config: TrunkConfig;
  /** The packet socket; -1 while the interface is gone. */
  fd: number;
  ifindex: number;
  mac: string;
  mtu: number;
  /** Its VLAN ports: VLAN ID (0: native) to tenant. */
  vlans: Map<VlanId, string>;
  /** The IDs of `vlans` that came from the pool. */
  pooled: Set<VlanId>;
  /** The interface went away: re-attached by `check`; failures counted (the first logged). */
  lost?: { failures: number };
}

/** A trunk's packet socket handed over by the previous daemon (vtepd restart). */
export interface AdoptedTrunk {
  fd: number;
  ifindex: number;
  mac: string;
  mtu: number;
}

export interface TrunksDeps {
  sw: Switch;
  /** Sockets the previous daemon handed over, by interface: used instead of attaching again; the unused ones closed at the first `set`. */
  adopted?: Map<string, AdoptedTrunk>;
  /** Open the interface (tests give a fake); default: openSwitchPort (IPv6 off, IPv4 addresses removed). */
  open?: (t: TrunkConfig) => AttachInfo;
  /** This host's underlay addresses: an interface holding one is not attached. */
  underlay?: readonly string[];
  /** Where a pool's IDs are kept (a state file, or etcd with a directory); made when the first pool needs it. */
  pools?: () => VlanPoolStore;
  /** Whether a socket's interface was deleted under the daemon. */
  detached?: (fd: number) => boolean;
}

export class Trunks {
  private readonly running = new Map<string, RunningTrunk>();
  private store: VlanPoolStore | undefined;
  /** Interfaces re-attached after they went away. */
  reattached = 0;

  constructor(private readonly deps: TrunksDeps) {}

  list(): RunningTrunk[] {
    return [...this.running.values()];
  }
  get(attach: string): RunningTrunk | undefined {
    return this.running.get(attach);
  }

  /** The VLAN ports a trunk's config asks for: VLAN ID to tenant (pool IDs from `assign`). */
  private async wanted(t: TrunkConfig): Promise<{ vlans: Map<VlanId, string>; pooled: Set<VlanId> }> {
    const vlans = new Map<VlanId, string>(t.vlans.map((v) => [v.vlan, v.tenant]));
    if (t.native) vlans.set(0, t.native);
    const pooled = new Set<VlanId>();
    const req = poolRequestOf(t);
    if (req && (req.tenants.length || this.running.get(t.attach)?.pooled.size)) {
      const r = await this.pools().assign(req);
      // A full pool refuses the tenants that do not fit; the others still get theirs.
      for (const e of r.refused) log.error({ trunk: t.attach, tenant: e.tenant, err: e.message }, 'trunk: no VLAN from the pool');
      for (const [tenant, vlan] of r.vlans) {
        vlans.set(vlan, tenant);
        pooled.add(vlan);
      }
    }
    return { vlans, pooled };
  }

  private pools(): VlanPoolStore {
    if (!this.deps.pools) throw new Error('a trunk pool needs a VLAN pool store');
    this.store ??= this.deps.pools();
    return this.store;
  }

  /** A trunk left the config: its pool IDs go back (not on a stop or a takeover: the successor keeps them). */
  private async releasePool(t: TrunkConfig): Promise<void> {
    const req = poolRequestOf(t);
    if (!req) return;
    try {
      await this.pools().assign({ ...req, tenants: [] });
    } catch (e) {
      log.warn({ trunk: t.attach, err: (e as Error).message }, 'trunk: giving its pool IDs back failed (they stay taken)');
    }
  }

  /**
   * Make a trunk what `t` says: attach its interface if it is not yet, then add and remove
   * VLAN ports as a diff. A VLAN port whose tenant does not run is skipped and logged.
   */
  async set(t: TrunkConfig): Promise<RunningTrunk> {
    const { vlans, pooled } = await this.wanted(t);
    let r = this.running.get(t.attach);
    if (r && r.config.netns !== t.netns) {
      await this.remove(t.attach, false);
      r = undefined;
    }
    if (!r) r = this.open(t);
    r.config = t;
    r.pooled = pooled;
    for (const [vlan, tenant] of [...r.vlans]) {
      if (vlans.get(vlan) === tenant && this.deps.sw.tenant(tenant)) continue;
      this.dropVlan(r, vlan);
    }
    for (const [vlan, tenant] of vlans) {
      if (r.vlans.has(vlan)) continue;
      if (!this.deps.sw.tenant(tenant)) {
        log.warn({ trunk: t.attach, vlan, tenant }, 'trunk: VLAN of a tenant that does not run: skipped');
        continue;
      }
      this.deps.sw.addVlanPort(tenant, t.attach, vlan);
      r.vlans.set(vlan, tenant);
    }
    log.info({ trunk: t.attach, netns: t.netns, vlans: Object.fromEntries(r.vlans) }, 'trunk up');
    return r;
  }

  /** The trunk's interface as a switch port (openSwitchPort logs what it changed), or the tests' fake. */
  private attach(t: TrunkConfig): AttachInfo {
    return this.deps.open ? this.deps.open(t) : openSwitchPort(t.attach, t.netns, this.deps.underlay ?? [], { trunk: t.attach, netns: t.netns });
  }

  private open(t: TrunkConfig): RunningTrunk {
    const handed = this.deps.adopted?.get(t.attach);
    this.deps.adopted?.delete(t.attach);
    const a = handed ? { ...handed, name: t.attach, broughtUp: false, ipv6TurnedOff: false } : this.attach(t);
    if (handed) log.info({ trunk: t.attach }, 'trunk socket taken over from the previous daemon');
    try {
      this.deps.sw.setTrunk(t.attach, a.fd);
    } catch (e) {
      fdClose(a.fd);
      throw e;
    }
    const r: RunningTrunk = { config: t, fd: a.fd, ifindex: a.ifindex, mac: a.mac, mtu: a.mtu, vlans: new Map(), pooled: new Set() };
    this.running.set(t.attach, r);
    return r;
  }

  private dropVlan(r: RunningTrunk, vlan: VlanId): void {
    const name = vlanPortName(r.config.attach, vlan);
    if (this.deps.sw.portId(name) !== undefined) this.deps.sw.removePort(name);
    r.vlans.delete(vlan);
  }

  /** A tenant went (its VLAN ports left the switch with it): forget them, so a later `set` adds them again. */
  tenantRemoved(tenant: string): void {
    for (const r of this.running.values()) for (const [vlan, t] of [...r.vlans]) if (t === tenant) r.vlans.delete(vlan);
  }

  /** Remove a trunk: its VLAN ports, then the interface (promiscuous mode ends with the socket); `release`: its pool IDs go back. */
  async remove(attach: string, release = true): Promise<void> {
    const r = this.running.get(attach);
    if (!r) throw new Error(`no trunk "${attach}"`);
    this.deps.sw.removeTrunk(attach);
    if (r.fd >= 0) fdClose(r.fd);
    this.running.delete(attach);
    log.info({ trunk: attach }, 'trunk removed');
    if (release) await this.releasePool(r.config);
  }

  /** Once a second: a trunk whose interface was deleted is attached again when it is back. */
  check(): void {
    const detached = this.deps.detached ?? attachDetached;
    for (const r of this.running.values()) {
      if (!r.lost && r.fd >= 0 && detached(r.fd)) {
        log.warn({ trunk: r.config.attach, netns: r.config.netns }, 'trunk interface gone (deleted under the daemon); re-attaching it when it is back');
        fdClose(r.fd);
        r.fd = -1;
        r.lost = { failures: 0 };
      }
      if (r.lost) this.reattach(r);
    }
  }

  private reattach(r: RunningTrunk): void {
    let a: AttachInfo;
    try {
      a = this.attach(r.config);
    } catch (e) {
      if (r.lost!.failures++ === 0) log.warn({ trunk: r.config.attach, err: (e as Error).message }, 'trunk interface not back yet; retrying once a second');
      return;
    }
    try {
      this.deps.sw.setTrunk(r.config.attach, a.fd); // same trunk id: its VLAN ports stay
    } catch (e) {
      fdClose(a.fd);
      log.warn({ trunk: r.config.attach, err: (e as Error).message }, 'trunk: re-attaching failed');
      return;
    }
    Object.assign(r, { fd: a.fd, ifindex: a.ifindex, mac: a.mac, mtu: a.mtu, lost: undefined });
    this.reattached++;
    log.info({ trunk: r.config.attach, netns: r.config.netns }, 'trunk interface back: attached again');
  }

  /** Handed-over sockets of trunks the config no longer has: closed (their interfaces leave promiscuous mode). */
  dropUnadopted(): void {
    for (const a of this.deps.adopted?.values() ?? []) fdClose(a.fd);
    this.deps.adopted?.clear();
  }

  /** Close every trunk's socket (the daemon is closing; the switch goes with the data path). Pool IDs stay taken. */
  close(): void {
    for (const r of this.running.values()) if (r.fd >= 0) fdClose(r.fd);
    this.running.clear();
    this.store?.close();
  }
}
