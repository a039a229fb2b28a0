/**
 * FDB ageing's cadence (src/core/ageing.ts) follows the tenants' ageing times: set when
 * ageing starts, and again whenever a tenant comes, goes or changes its ageing time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/util/log.js';
import { Ageing, ageingCadenceMs } from '../../src/core/ageing.js';
import { Switch } from '../../src/core/switch.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { FakeHarness, tenantSpec } from '../support/harness.js';
import { BCAST, frame, mac } from '../support/frames.js';

describe('ageing cadence', () => {
  it('is a quarter of the shortest ageing time, between 100 ms and 1 s', () => {
    expect(ageingCadenceMs([])).toBe(1000);
    expect(ageingCadenceMs([300_000, 10_000])).toBe(1000);
    expect(ageingCadenceMs([300_000, 2000])).toBe(500);
    expect(ageingCadenceMs([1000])).toBe(250);
    expect(ageingCadenceMs([100])).toBe(100);
  });

  let sw: Switch | undefined;
  afterEach(() => sw?.stop());

  it('follows the tenants of a running switch', () => {
    sw = new Switch(new FakeDatapath(), { vxlanPort: 4789, maxMacsTotal: 100 });
    sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    expect(sw.ageing.cadenceMs).toBe(0); // not started
    sw.ageing.start();
    expect(sw.ageing.cadenceMs).toBe(1000);
    sw.addTenant(tenantSpec({ name: 'red', vni: 5002, ageingMs: 2000 }));
    expect(sw.ageing.cadenceMs).toBe(500);
    sw.setPolicy('blue', { learning: true, ageingMs: 1000, maxMacs: 10 });
    expect(sw.ageing.cadenceMs).toBe(250);
    sw.removeTenant('blue');
    expect(sw.ageing.cadenceMs).toBe(500);
    sw.removeTenant('red');
    expect(sw.ageing.cadenceMs).toBe(1000);
    sw.ageing.stop();
    expect(sw.ageing.cadenceMs).toBe(0);
  });
});

describe('ageing sweeps', () => {
  afterEach(() => vi.useRealTimers());

  /** Tenant blue (ageing 10 s) with ports tap0 and tap1, over the fake data path. */
  function blueWithTwoPorts(): FakeHarness {
    const h = new FakeHarness();
    h.addTenant({ name: 'blue', vni: 5001, ageingMs: 10_000 });
    h.addPort('blue', 'tap0');
    h.addPort('blue', 'tap1');
    return h;
  }

  it('sweep when the first learned entry would age, after the shortest ageing time when none is learned, and still age it', () => {
    vi.useFakeTimers();
    const h = blueWithTwoPorts();
    h.sw.ageing.start();
    vi.advanceTimersByTime(1000); // the first sweep, one cadence after the start
    expect(h.sw.ageing.nextSweepMs).toBe(10_000); // nothing learned
    h.fromPort('tap0', frame(BCAST, mac(1), 'hello'));
    expect(h.sw.tenant('blue')!.table.has(mac(1))).toBe(true);
    h.dp.now += 4000;
    vi.advanceTimersByTime(10_000);
    expect(h.sw.ageing.nextSweepMs).toBe(6000); // idle 4 s of 10
    h.dp.now += 6000;
    vi.advanceTimersByTime(6000);
    expect(h.sw.tenant('blue')!.table.has(mac(1))).toBe(false);
    expect(h.sw.ageing.nextSweepMs).toBe(10_000);
    h.sw.stop();
  });

  it('a sweep that fails (the data path gone or not answering) is logged, not thrown, and the next one still ages', () => {
    vi.useFakeTimers();
    const h = blueWithTwoPorts();
    const warnings: string[] = [];
    const log = { warn: (o: { err: string }, msg: string) => warnings.push(`${msg}: ${o.err}`), debug: () => {} };
    const ageing = new Ageing(h.dp, () => [h.sw.tenant('blue')!], log as unknown as Logger);
    h.fromPort('tap0', frame(BCAST, mac(1), 'hello'));
    const real = h.dp.fdbIdle.bind(h.dp);
    h.dp.fdbIdle = () => {
      throw Object.assign(new Error('dpFdbIdle: the data path process (pid 1) did not answer for 5 s and was ended (SIGKILL)'), { code: 'ETIMEDOUT' });
    };
    ageing.start();
    expect(() => vi.advanceTimersByTime(1000)).not.toThrow();
    expect(warnings).toEqual(['ageing sweep failed: dpFdbIdle: the data path process (pid 1) did not answer for 5 s and was ended (SIGKILL)']);
    expect(ageing.nextSweepMs).toBe(1000); // tried again a cadence later
    h.dp.fdbIdle = real;
    h.dp.now += 11_000;
    vi.advanceTimersByTime(1000);
    expect(h.sw.tenant('blue')!.table.has(mac(1))).toBe(false);
    ageing.stop();
    h.sw.stop();
  });
});
