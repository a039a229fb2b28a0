/**
 * Local ports: the TAP devices a tenant's VMs, containers or the host itself plug into.
 * A PortBackend opens, changes and closes them; TapPorts is the real one (the addon makes
 * the TAP, `ip` sets IPv6 addresses and in-place changes), the unit tests bring a fake.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { PortConfig } from '../config/config.js';
import { closeQuietly, fdClose, tapOpen } from '../native/system.js';
import { logger } from '../util/log.js';

const execFileP = promisify(execFile);
const log = logger('daemon');

/** A port that runs: its config, the device's fds and what the kernel says about it. */
export interface RunningPort {
  tenant: string;
  tap: string;
  netns: string | null;
  fd: number;
  /** A multi-queue TAP's other queues (underlay.queues > 1); [] for a plain one. */
  queueFds: number[];
  ifindex: number;
  mac: string;
  mtu: number;
  config: PortConfig;
}

/** An open port device. */
export interface PortHandle {
  fd: number;
  /** A multi-queue TAP's other queues, in queue order. */
  queueFds?: number[];
  ifindex: number;
  mac: string;
  /** Frames carry a virtio_net_hdr (a TAP with offloads); absent: the data path asks the fd. */
  vnetHdr?: boolean;
  /** The interface's MTU when it is not the config's (an attached interface keeps its own). */
  mtu?: number;
}

/** Where ports come from: TAP devices (default), or a fake in tests. */
export interface PortBackend {
  open(tenant: string, p: PortConfig): Promise<PortHandle>;
  close(p: RunningPort): void;
  /** Change MTU, MAC or address in place; the device stays. */
  change(p: RunningPort, to: PortConfig): Promise<void>;
}

/** Close a TAP's queue fds, queue 0's last (the device goes with the last one). */
export function closePortFds(fd: number, queueFds: readonly number[] = []): void {
  closeQuietly(queueFds);
  fdClose(fd);
}

async function ip(netns: string | null, args: string[]): Promise<void> {
  await execFileP('ip', netns ? ['-n', netns, ...args] : args);
}

/** TAP devices through the addon; IPv6 addresses and in-place changes through `ip`. */
export class TapPorts implements PortBackend {
  /** queues: TAP queues per port (underlay.queues); 1 is a plain TAP. */
  constructor(private readonly queues = 1) {}

  async open(_tenant: string, p: PortConfig): Promise<PortHandle> {
    const tap = tapOpen({
      queues: this.queues,
      name: p.tap,
      netns: p.netns ?? undefined,
      mtu: p.mtu,
      mac: p.mac ?? undefined,
      ipv4: p.address?.family === 4 ? { address: p.address.address, prefixLength: p.address.prefixLength } : undefined,
      up: true,
    });
    try {
      if (p.address?.family === 6) await ip(p.netns, ['addr', 'add', `${p.address.address}/${p.address.prefixLength}`, 'dev', p.tap, 'nodad']);
    } catch (e) {
      closePortFds(tap.fd, tap.queueFds);
      throw e;
    }
    log.debug({ tap: p.tap, offloads: tap.offloads, queues: 1 + tap.queueFds.length }, 'TAP offloads');
    return { fd: tap.fd, queueFds: tap.queueFds, ifindex: tap.ifindex, mac: tap.mac, vnetHdr: tap.vnetHdr };
  }
  close(p: RunningPort): void {
    closePortFds(p.fd, p.queueFds);
  }
  async change(p: RunningPort, to: PortConfig): Promise<void> {
    const from = p.config;
    if (from.mtu !== to.mtu) await ip(p.netns, ['link', 'set', 'dev', p.tap, 'mtu', String(to.mtu)]);
    if (to.mac && from.mac !== to.mac) await ip(p.netns, ['link', 'set', 'dev', p.tap, 'address', to.mac]);
    if (JSON.stringify(from.address) !== JSON.stringify(to.address)) {
      if (from.address) await ip(p.netns, ['addr', 'del', `${from.address.address}/${from.address.prefixLength}`, 'dev', p.tap]);
      if (to.address)
        await ip(p.netns, ['addr', 'add', `${to.address.address}/${to.address.prefixLength}`, 'dev', p.tap, ...(to.address.family === 6 ? ['nodad'] : [])]);
    }
  }
}

/**
 * Whether a TAP fd has lost its device (deleted under the daemon: `ip link del`): its
 * fdinfo names the interface ("iff:"), empty once detached. False if the fd is unknown.
 */
export function tapDetached(fd: number): boolean {
  let info: string;
  try {
    info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    return false;
  }
  return /^iff:\s*$/m.test(info);
}
