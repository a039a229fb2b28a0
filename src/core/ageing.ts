/**
 * FDB ageing: every so often, read how long each cached MAC has been idle (the data path
 * measures it) and let each tenant's bridge remove the learned entries idle longer than
 * its ageing time. The cadence follows the tables: a quarter of the shortest ageing time
 * of any tenant, between 100 ms and 1 s, recomputed whenever a tenant comes, goes or
 * changes its ageing time.
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

  constructor(
    private readonly dp: Pick<Datapath, 'fdbIdle'>,
    private readonly bridges: () => Iterable<Bridge>,
    private readonly log?: Logger,
  ) {}

  /** The cadence it runs at now (0: stopped). */
  get cadenceMs(): number {
    return this.timer ? this.intervalMs : 0;
  }

  start(): void {
    this.intervalMs = ageingCadenceMs([...this.bridges()].map((b) => b.ageingMs));
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), this.intervalMs);
  }

  /** Tenants or their ageing times changed: follow the shortest (if running). */
  reschedule(): void {
    if (this.timer && ageingCadenceMs([...this.bridges()].map((b) => b.ageingMs)) !== this.intervalMs) this.start();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Remove learned entries idle longer than their tenant's ageing time. */
  tick(): void {
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
  }
}
