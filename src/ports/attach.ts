/**
 * Attached ports (`{ attach: eth1, netns: NS }`): an interface that exists (a NIC, a bond, a
 * veth toward a switch or a bare-metal host, a hypervisor's vnet0), read and written by the
 * fast path through an AF_PACKET socket (native/attach.c) like a TAP with offloads. vtepd
 * does not create or resize such an interface: it brings it up if it is down, holds it in
 * promiscuous mode while the socket is open (the kernel ends that when the socket closes,
 * also when vtepd is killed) and makes it a switch port, not a host interface: IPv6 off and
 * its IPv4 addresses removed (each logged), so the host takes no part in the tenant's
 * segment. One that holds an underlay address is refused before anything changes.
 *
 * Which tenant the port belongs to is the caller's (Switch.addPort); this file only opens
 * and closes the interface, so a trunk (one interface, several tenants) can reuse it.
 */
import { type PortConfig, portKind } from '../config/config.js';
import { type AttachInfo, attachIfindex, attachOpen, fdClose } from '../native/system.js';
import { addressesOf, flushIpv4, type IfAddress } from '../util/iproute.js';
import { logger } from '../util/log.js';
import type { PortBackend, PortHandle, RunningPort } from './tap.js';

const log = logger('daemon');

/** Why an interface that holds an underlay address is not attached. */
export const underlayHeld = (name: string, address: string) =>
  `${name} holds the underlay address ${address} (an attached interface is a switch port: vtepd would take its addresses away; attach another interface, or move the address)`;

/** What attaching an interface with addresses `held` does to them: the underlay address it holds (refused), the IPv4 ones removed. */
export function switchPortAddresses(held: readonly IfAddress[], underlay: readonly string[]): { underlay?: string; v4: string[] } {
  return {
    underlay: held.find((a) => underlay.includes(a.address))?.address,
    v4: held.filter((a) => a.family === 'inet').map((a) => `${a.address}/${a.prefix}`),
  };
}

/**
 * Open interface `name` (in `netns`) as a switch port: refused (EADDRINUSE) if it holds one of
 * the `underlay` addresses; else attached (native/attach.c) with IPv6 turned off, then its
 * IPv4 addresses removed. `who` goes into the log lines. A missing interface is ENODEV.
 */
export function openSwitchPort(name: string, netns: string | null, underlay: readonly string[], who: Record<string, unknown>): AttachInfo {
  const { underlay: u, v4 } = switchPortAddresses(addressesOf(name, netns) ?? [], underlay);
  if (u) throw Object.assign(new Error(underlayHeld(name, u)), { code: 'EADDRINUSE' });
  const a = attachOpen({ name, netns: netns ?? undefined, up: true, ipv6Off: true });
  if (a.broughtUp) log.warn(who, 'attached interface was down: brought it up (vtepd leaves it up)');
  if (a.ipv6TurnedOff) log.info(who, 'attached interface: IPv6 turned off (a switch port: no link-local address, no ND from this host)');
  if (v4.length === 0) return a;
  try {
    flushIpv4(name, netns);
  } catch (e) {
    fdClose(a.fd);
    throw new Error(
      `removing the IPv4 addresses of ${name} (${v4.join(', ')}) failed: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`,
    );
  }
  log.warn({ ...who, removed: v4 }, 'attached interface: its IPv4 addresses removed (a switch port carries no host address)');
  return a;
}

/** Attached interfaces through the addon's packet sockets. */
export class AttachPorts implements PortBackend {
  /** underlay: this host's underlay addresses (an interface holding one is refused). */
  constructor(private readonly underlay: readonly string[] = []) {}

  async open(tenant: string, p: PortConfig): Promise<PortHandle> {
    const a = openSwitchPort(p.tap, p.netns, this.underlay, { tenant, attach: p.tap, netns: p.netns });
    warnMtu(tenant, p, a.mtu);
    return { fd: a.fd, ifindex: a.ifindex, mac: a.mac, vnetHdr: true, mtu: a.mtu };
  }
  close(p: RunningPort): void {
    fdClose(p.fd);
  }
  /** Nothing of an attached interface is changed in place (its MTU, MAC and addresses are its owner's). */
  async change(p: RunningPort, to: PortConfig): Promise<void> {
    warnMtu(p.tenant, to, p.mtu);
  }
}

/** The interface carries larger frames than the tunnel: they will be answered with ICMP too-big. */
function warnMtu(tenant: string, p: PortConfig, mtu: number): void {
  if (mtu > p.mtu)
    log.warn(
      { tenant, attach: p.tap, mtu, tunnelMtu: p.mtu },
      'attached interface MTU exceeds what the tunnel carries: set it (and the hosts behind it) to at most tunnelMtu, or larger frames get ICMP too-big',
    );
}

/** Whether an attached port's interface was deleted under the daemon: its socket is bound to no interface any more. */
export function attachDetached(fd: number): boolean {
  try {
    return attachIfindex(fd) < 0;
  } catch {
    return false;
  }
}

/** TAP ports and attached ports, each by its own backend (a port's kind says which). */
export class PortsByKind implements PortBackend {
  constructor(
    private readonly taps: PortBackend,
    private readonly attached: PortBackend = new AttachPorts(),
  ) {}
  private of(c: PortConfig): PortBackend {
    return portKind(c) === 'attach' ? this.attached : this.taps;
  }
  open(tenant: string, p: PortConfig): Promise<PortHandle> {
    return this.of(p).open(tenant, p);
  }
  close(p: RunningPort): void {
    this.of(p.config).close(p);
  }
  change(p: RunningPort, to: PortConfig): Promise<void> {
    return this.of(p.config).change(p, to);
  }
}
