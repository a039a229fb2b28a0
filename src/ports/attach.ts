/**
 * Attached ports (`{ attach: eth1, netns: NS }`): an interface that exists (a NIC, a bond, a
 * veth toward a switch or a bare-metal host), read and written by the fast path through an
 * AF_PACKET socket (native/attach.c) like a TAP with offloads. vtepd does not create, address
 * or resize such an interface: it brings it up if it is down, holds it in promiscuous mode
 * while the socket is open (the kernel ends that when the socket closes, also when vtepd is
 * killed) and leaves the rest to whoever owns it.
 *
 * Which tenant the port belongs to is the caller's (Switch.addPort); this file only opens
 * and closes the interface, so a trunk (one interface, several tenants) can reuse it.
 */
import { type PortConfig, portKind } from '../config/config.js';
import { attachIfindex, attachOpen, fdClose } from '../native/system.js';
import { logger } from '../util/log.js';
import type { PortBackend, PortHandle, RunningPort } from './tap.js';

const log = logger('daemon');

/** Attached interfaces through the addon's packet sockets. */
export class AttachPorts implements PortBackend {
  async open(tenant: string, p: PortConfig): Promise<PortHandle> {
    const a = attachOpen({ name: p.tap, netns: p.netns ?? undefined, up: true });
    if (a.broughtUp) log.warn({ tenant, attach: p.tap, netns: p.netns }, 'attached interface was down: brought it up (vtepd leaves it up)');
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
