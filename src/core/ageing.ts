/**
 * FDB ageing: read how long each cached MAC has been idle (the data path measures it) and
 * let each tenant's bridge remove the learned entries idle longer than its ageing time.
 * The cadence follows the tables: a quarter of the shortest ageing time of any tenant,
 * between 100 ms and 1 s, recomputed whenever a tenant comes, goes or changes its ageing
 * time. It is the shortest gap between two sweeps, not a period: after each sweep the next
 * is due when the first learned entry would age if nothing refreshed it, or after the
 * shortest ageing time when none is learned, so an idle daemon does not wake every second
 * (an entry still ages at most one cadence late, as before).
 */
import type { Bridge } from './bridge.js';
import type { Datapath } from '../native/datapath.js';
import type { Logger } from '../util/log.js';

/** How often to age tables whose ageing times are `ageingMs`: a quarter of the shortest (at most 5 min counted), 100 ms..1 s. */
export function ageingCadenceMs(ageingMs: Iterable<number>): number {
  const shortest = Math.min(300_000, ...ageingMs);
  return Math.max(100, Math.min(1000, shortest / 4));
}

export class Ageing {
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 0;
  /** The delay the last sweep chose for the next (ms; 0 before the first). */
  private nextMs = 0;

  constructor(
    private readonly dp: Pick<Datapath, 'fdbIdle'>,
    private readonly bridges: () => Iterable<Bridge>,
    private readonly log?: Logger,
  ) {}

  /** The cadence it runs at now (0: stopped). */
  get cadenceMs(): number {
    return this.timer ? this.intervalMs : 0;
  }

  /** When the sweep after the last one is due (ms after it; 0 before the first). */
  get nextSweepMs(): number {
    return this.nextMs;
  }

  start(): void {
    this.intervalMs = ageingCadenceMs([...this.bridges()].map((b) => b.ageingMs));
    this.schedule(this.intervalMs);
  }

  /** Tenants or their ageing times changed: follow the shortest, and sweep one cadence from now (if running). */
  reschedule(): void {
    if (this.timer) this.start();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      // A sweep that fails (the data path's process gone or not answering: the daemon's
      // periodic check acts on that) is logged and tried again a cadence later, not thrown
      // out of the timer, which would end the daemon without its last words.
      try {
        this.nextMs = this.sweep();
      } catch (e) {
        this.log?.warn({ err: (e as Error).message }, 'ageing sweep failed');
        this.nextMs = this.intervalMs;
      }
      this.schedule(this.nextMs);
    }, ms);
  }

  /** One sweep; the delay until the next: when the first learned entry would age, at least one cadence. */
  private sweep(): number {
    const idle = this.tick();
    const shortest = Math.min(300_000, ...[...this.bridges()].map((b) => b.ageingMs));
    let due = shortest;
    for (const b of this.bridges()) due = Math.min(due, b.untilAged(idle.get(b.tenantId) ?? new Map()));
    return Math.max(this.intervalMs, due);
  }

  /** Remove learned entries idle longer than their tenant's ageing time; the idle times read, by tenant. */
  tick(): Map<number, Map<string, number>> {
    const idle = new Map<number, Map<string, number>>();
    for (const r of this.dp.fdbIdle()) {
      let m = idle.get(r.tenantId);
      if (!m) idle.set(r.tenantId, (m = new Map()));
      m.set(r.mac, r.idleMs);
    }
    const byId = new Map([...this.bridges()].map((b) => [b.tenantId, b]));
    for (const [tenantId, m] of idle) {
      const aged = byId.get(tenantId)?.age(m);
      if (aged?.length) this.log?.debug({ tenantId, aged: aged.length }, 'aged out');
    }
    return idle;
  }
}
