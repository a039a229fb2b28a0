/**
 * Property tests over the bridge logic (fake data path): for any sequence of frames from
 * ports and VTEPs of two tenants, and clock steps with ageing,
 *   - no frame of one tenant is delivered to another tenant's port or VNI,
 *   - no table exceeds its maxMacs, and the cache mirrors the table exactly,
 *   - ageing removes exactly the learned entries idle for at least the ageing time.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FakeHarness, VTEP_A, VTEP_B } from '../support/harness.js';
import { frame, mac } from '../support/frames.js';
import { BCAST } from '../support/frames.js';

type Step =
  | { kind: 'port'; tenant: 0 | 1; port: 0 | 1; src: number; dst: number | 'bcast' }
  | { kind: 'vtep'; tenant: 0 | 1; vtep: 0 | 1; src: number; dst: number | 'bcast' }
  | { kind: 'tick'; ms: number };

const macIdx = fc.integer({ min: 1, max: 12 });
const dst = fc.oneof(macIdx, fc.constant('bcast' as const));
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('port' as const),
    tenant: fc.constantFrom(0 as const, 1 as const),
    port: fc.constantFrom(0 as const, 1 as const),
    src: macIdx,
    dst,
  }),
  fc.record({
    kind: fc.constant('vtep' as const),
    tenant: fc.constantFrom(0 as const, 1 as const),
    vtep: fc.constantFrom(0 as const, 1 as const),
    src: macIdx,
    dst,
  }),
  fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 4000 }) }),
);

const TENANTS = [
  { name: 't0', vni: 100, ports: ['a0', 'a1'] },
  { name: 't1', vni: 200, ports: ['b0', 'b1'] },
];

describe('bridge properties (fake data path)', () => {
  it('never leaks frames between tenants, never exceeds maxMacs, ages exactly the idle entries', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), fc.integer({ min: 1, max: 6 }), (steps, maxMacs) => {
        const h = new FakeHarness();
        for (const t of TENANTS) {
          h.addTenant({ name: t.name, vni: t.vni, flood: [VTEP_A, VTEP_B], maxMacs, ageingMs: 3000 });
          for (const p of t.ports) h.addPort(t.name, p);
        }
        // Each tenant's frames carry its own tag in the payload; MACs overlap on purpose.
        const lastSeen = new Map<string, number>();
        for (const s of steps) {
          if (s.kind === 'tick') {
            h.dp.now += s.ms;
            // Entries idle >= ageing must go; others must stay.
            const before = TENANTS.map((t) => new Map(h.sw.tenant(t.name)!.table));
            h.sw.ageing.tick();
            TENANTS.forEach((t, i) => {
              for (const [m, e] of before[i]) {
                const idle = h.dp.now - (lastSeen.get(`${t.name}/${m}`) ?? -Infinity);
                const present = h.sw.tenant(t.name)!.table.has(m);
                if (!e.static) expect(present, `${t.name} ${m} idle ${idle}`).toBe(idle < 3000);
              }
            });
            continue;
          }
          const t = TENANTS[s.tenant];
          const f = frame(s.dst === 'bcast' ? BCAST : mac(s.dst), mac(s.src), `tenant=${t.name}`);
          if (s.kind === 'port') h.fromPort(t.ports[s.port], f);
          else h.fromVtep(s.vtep === 0 ? VTEP_A : VTEP_B, t.vni, f);
          // A source is "seen" when it is (or becomes) cached at the place it came from.
          const b = h.sw.tenant(t.name)!;
          const e = b.table.get(mac(s.src));
          const place =
            s.kind === 'port'
              ? { kind: 'port', portId: h.sw.portId(t.ports[s.port]) }
              : { kind: 'vtep', vtepId: h.sw.vteps.find(s.vtep === 0 ? VTEP_A : VTEP_B)!.id };
          if (e && JSON.stringify(e.place) === JSON.stringify(place)) lastSeen.set(`${t.name}/${mac(s.src)}`, h.dp.now);
        }
        // Isolation: every frame on a port or on the wire belongs to that port's / VNI's tenant.
        for (const t of TENANTS) {
          for (const p of t.ports) {
            for (const f of h.dp.portOut.get(h.sw.portId(p)!) ?? []) expect(f.toString()).toContain(`tenant=${t.name}`);
          }
        }
        for (const w of h.dp.wire) {
          const t = TENANTS.find((x) => x.vni === w.vni)!;
          expect(w.frame.toString()).toContain(`tenant=${t.name}`);
        }
        // Limits, and the cache mirrors the tables.
        let total = 0;
        for (const t of TENANTS) {
          const b = h.sw.tenant(t.name)!;
          expect(b.table.size).toBeLessThanOrEqual(maxMacs);
          for (const [m, e] of b.table) expect(h.dp.cached(b.tenantId, m)).toEqual(e.place);
          total += b.table.size;
        }
        expect(h.dp.cacheSize()).toBe(total);
      }),
      { numRuns: 300 },
    );
  });
});
