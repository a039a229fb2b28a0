/**
 * The config speaks seconds; the bridge, ageing and the role agent run on milliseconds.
 * The daemon converts once (tenantPolicy, roleOptions), and what runs follows a reload.
 */
import { describe, expect, it } from 'vitest';
import { Daemon, roleOptions, tenantPolicy } from '../../src/daemon/daemon.js';
import { parseConfig } from '../../src/config/load.js';
import type { PortBackend } from '../../src/ports/tap.js';
import { FakeDatapath } from '../support/fake-datapath.js';

const ports: PortBackend = {
  open: async () => ({ fd: -1, ifindex: 1, mac: '02:00:00:00:00:01' }),
  close: () => {},
  change: async () => {},
};

function config(tenant: string, extra = '') {
  const r = parseConfig(`underlay: { local: 10.0.0.1 }\n${extra}tenants:\n  - ${tenant}\n`);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

describe('policy units', () => {
  it('converts a tenant policy and the role timers from seconds to milliseconds', () => {
    const c = config(
      '{ name: blue, vni: 5001, ageing: 60, stormControl: off, moveDampening: { moves: 3, window: 5, hold: 30 } }',
      'keepalive: 10\ndeadInterval: 2\n',
    );
    expect(tenantPolicy(c.tenants[0]!)).toEqual({
      learning: true,
      learnFromUnderlay: true,
      ageingMs: 60_000,
      maxMacs: c.tenants[0]!.maxMacs,
      acceptFrom: 'known',
      stormControl: null,
      moveDampening: { maxMoves: 3, windowMs: 5000, holdMs: 30_000 },
    });
    const o = roleOptions(c);
    expect([o.keepaliveMs, o.deadIntervalMs]).toEqual([10_000, 2000]);
  });

  it('runs a tenant on the converted ageing time, and ages at its cadence after a reload', async () => {
    const d = await Daemon.start(config('{ name: blue, vni: 5001, ageing: 300 }'), { dp: new FakeDatapath(), ports, maxMacsTotal: 100 });
    try {
      expect(d.sw.tenant('blue')!.ageingMs).toBe(300_000);
      expect(d.sw.ageing.cadenceMs).toBe(1000);
      const r = await d.reload(config('{ name: blue, vni: 5001, ageing: 2 }'));
      expect(r.ok).toBe(true);
      expect(d.sw.tenant('blue')!.ageingMs).toBe(2000);
      expect(d.sw.ageing.cadenceMs).toBe(500);
      expect(d.status().overlay.deadInterval).toBe(3);
    } finally {
      d.close();
    }
  });
});
