/**
 * TAPs deleted under the daemon (`ip link del`). Such a TAP's fd stays open but detached:
 * the fast path counts a read error and stops polling it. Checked once a second, such a
 * port is logged, taken down and made again from its config (same name, namespace,
 * address and MAC), retried once a second until that works.
 *
 * An attached interface deleted under the daemon is the same: its packet socket is bound to
 * nothing any more; the port is taken down and attached again once an interface of that
 * name is back (tried once a second; the first failure is logged, the others at debug).
 * Re-created by a hypervisor (QEMU makes vnet7 again: a new ifindex, the same name), it is
 * opened by name again. A port attached at runtime whose interface does not exist yet (the
 * VM is not started) waits here the same way (`wait`), logged once by the caller.
 * `portsDetached` and `portsAttached` count attached interfaces that went and that came (back).
 */
import { type PortConfig, portKind } from '../config/config.js';
import { logger } from '../util/log.js';
import { attachDetached } from './attach.js';
import { tapDetached, type RunningPort } from './tap.js';

const log = logger('daemon');

/** What the lost-port check works on (the Daemon). */
export interface LostPortsHost {
  /** The ports that run now. */
  ports(): readonly RunningPort[];
  /** Take a port out of the switch and close its fds. */
  takeDown(p: RunningPort): void;
  /** Open a port from its config and attach it (throws if that fails). */
  bringUp(tenant: string, config: PortConfig): Promise<void>;
  /** Shut down: nothing is recreated any more. */
  closed(): boolean;
}

/** Whether a port's interface went away under the daemon. */
export function portDetached(p: RunningPort): boolean {
  return portKind(p.config) === 'attach' ? attachDetached(p.fd) : tapDetached(p.fd);
}

const what = (c: PortConfig) => (c.kind === 'attach' ? 'attached interface' : 'TAP');

export class LostPorts {
  private readonly lost = new Map<string, { tenant: string; config: PortConfig; failures?: number; waiting?: boolean }>();
  private checking = false;
  /** Ports made again after their TAP went away. */
  recreated = 0;
  /** Attached interfaces that vanished under the daemon (VM stopped, migrated): detached. */
  portsDetached = 0;
  /** Attached interfaces attached when they appeared (back, or for the first time after waiting). */
  portsAttached = 0;

  constructor(
    private readonly host: LostPortsHost,
    private readonly detached: (p: RunningPort) => boolean = portDetached,
  ) {}

  /** A port whose interface does not exist yet: attached by `check` when it appears (the caller logged it). */
  wait(tenant: string, config: PortConfig): void {
    this.lost.set(config.tap, { tenant, config, failures: 1, waiting: true });
  }

  /** A tenant removed: its ports wait no more. */
  forgetTenant(tenant: string): void {
    for (const [tap, l] of this.lost) if (l.tenant === tenant) this.lost.delete(tap);
  }

  /** A reload changed a port that waits for its interface: bring it back as `config` says. False if it does not wait. */
  changed(tenant: string, config: PortConfig): boolean {
    const l = this.lost.get(config.tap);
    if (l?.tenant !== tenant) return false;
    this.lost.set(config.tap, { ...l, config });
    return true;
  }

  /** The ports that wait for their interface (gone, or not there yet). */
  list(): { tenant: string; config: PortConfig }[] {
    return [...this.lost.values()].map((l) => ({ tenant: l.tenant, config: l.config }));
  }

  /** Whether port `tap` waits for its interface (gone, or not there yet). */
  waiting(tap: string): boolean {
    return this.lost.has(tap);
  }

  /** A lost port that left the config: stop recreating it. False if it was not lost. */
  forget(tenant: string, tap: string): boolean {
    if (this.lost.get(tap)?.tenant !== tenant) return false;
    this.lost.delete(tap);
    return true;
  }

  /** Find ports whose TAP went away, and (re)create every lost one. One check at a time. */
  async check(): Promise<void> {
    if (this.host.closed() || this.checking) return;
    this.checking = true;
    try {
      await this.recreate();
    } finally {
      this.checking = false;
    }
  }

  private async recreate(): Promise<void> {
    for (const p of [...this.host.ports()]) {
      if (!this.detached(p)) continue;
      const again = p.config.kind === 'attach' ? 're-attaching it when it is back' : 'recreating it';
      log.warn({ tenant: p.tenant, tap: p.tap, netns: p.netns }, `${what(p.config)} gone (deleted under the daemon); ${again}`);
      this.host.takeDown(p);
      if (p.config.kind === 'attach') this.portsDetached++;
      this.lost.set(p.tap, { tenant: p.tenant, config: p.config });
    }
    const running = (tap: string) => this.host.ports().some((x) => x.tap === tap);
    for (const [tap, lost] of [...this.lost]) {
      if (this.host.closed() || running(tap)) {
        this.lost.delete(tap);
        continue;
      }
      try {
        this.lost.delete(tap);
        await this.host.bringUp(lost.tenant, lost.config);
        this.recreated++;
        if (lost.config.kind === 'attach') this.portsAttached++;
        const back = lost.waiting ? 'attached interface appeared: attached' : 'attached interface back: re-attached';
        log.warn({ tenant: lost.tenant, tap }, lost.config.kind === 'attach' ? back : 'TAP recreated');
      } catch (e) {
        const failures = (lost.failures ?? 0) + 1;
        if (!running(tap)) this.lost.set(tap, { ...lost, failures });
        if (lost.waiting) continue; // logged once when it started waiting
        const level = failures === 1 || lost.config.kind !== 'attach' ? 'warn' : 'debug';
        log[level](
          { tenant: lost.tenant, tap, err: (e as Error).message },
          `bringing back ${lost.config.kind === 'attach' ? 'an' : 'a'} ${what(lost.config)} failed; retrying every second`,
        );
      }
    }
  }
}
