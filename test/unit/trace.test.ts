/**
 * `vtepd trace` and forwarding cannot disagree: for random MAC tables and random frames
 * (unicast known and unknown, broadcast, multicast, bad sources, from ports and from
 * VTEPs configured or not), the path Switch.trace predicts is exactly where the frame goes
 * when it is then really sent through the (fake) data path — and trace itself sends
 * nothing and learns nothing.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Switch, type Where } from '../../src/core/switch.js';
import { traceFrame } from '../../src/core/trace.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { tenantSpec, VTEP_A, VTEP_B, VTEP_C } from '../support/harness.js';
import { BCAST, frame, mac } from '../support/frames.js';

const PORTS = ['p1', 'p2', 'p3'];
const VTEPS = [VTEP_A, VTEP_B, VTEP_C]; // C is in no flood list: dropped, or learned as a dynamic VTEP with acceptFrom: any
const MACS = [mac(1), mac(2), mac(3), mac(4)];
const DSTS = [...MACS, BCAST, '01:00:5e:00:00:05', '33:33:00:00:00:01'];
const SRCS = [...MACS, '01:00:5e:00:00:09', '00:00:00:00:00:00'];

const ingress = fc.oneof(
  fc.constantFrom(...PORTS).map((port): Where => ({ port })),
  fc.constantFrom(...VTEPS).map((vtep): Where => ({ vtep })),
);
const sent = fc.record({ at: ingress, src: fc.constantFrom(...SRCS), dst: fc.constantFrom(...DSTS) });

function setup(staticAt?: string) {
  const dp = new FakeDatapath();
  const sw = new Switch(dp, { vxlanPort: 4789, maxMacsTotal: 100 });
  sw.start();
  sw.addTenant(tenantSpec({ name: 'blue', vni: 5001, flood: [VTEP_A, VTEP_B], fdb: staticAt ? [{ mac: mac(4), vtep: staticAt }] : [] }));
  for (const p of PORTS) sw.addPort('blue', p, -1);
  const send = (at: Where, src: string, dst: string) => {
    const f = frame(dst, src, 'x');
    if ('port' in at) dp.fromPort(sw.portId(at.port)!, f);
    else dp.fromUnderlay(at.vtep, 5001, f);
  };
  const take = () => {
    const ports = PORTS.filter((p) => (dp.portOut.get(sw.portId(p)!)?.length ?? 0) > 0).sort();
    for (const q of dp.portOut.values()) q.length = 0;
    const vteps = dp.wire
      .splice(0)
      .map((w) => w.to)
      .sort();
    return { ports, vteps };
  };
  return { dp, sw, send, take };
}

describe('trace agrees with forwarding', () => {
  it('for random tables and frames', () => {
    fc.assert(
      fc.property(fc.array(sent, { maxLength: 8 }), sent, fc.boolean(), fc.boolean(), (history, probe, withStatic, acceptAny) => {
        const { sw, send, take } = setup(withStatic ? VTEP_B : undefined);
        if (acceptAny) sw.setPolicy('blue', { learning: true, ageingMs: 300_000, maxMacs: 8192, acceptFrom: 'any' });
        for (const h of history) send(h.at, h.src, h.dst);
        take();
        const tableBefore = JSON.stringify([...sw.tenant('blue')!.table.values()]);
        const t = traceFrame(sw, 'blue', probe.at, probe.src, probe.dst);
        // Trace sent and learned nothing.
        expect(take()).toEqual({ ports: [], vteps: [] });
        expect(JSON.stringify([...sw.tenant('blue')!.table.values()])).toBe(tableBefore);
        send(probe.at, probe.src, probe.dst);
        const got = take();
        const predicted =
          t.action === 'drop'
            ? { ports: [], vteps: [] }
            : { ports: [...t.outputs.ports].sort(), vteps: t.outputs.vteps.map((v) => (v.kind === 'vtep' ? v.vtep : v.port)).sort() };
        expect(got, JSON.stringify({ history, probe, t })).toEqual(predicted);
      }),
      { numRuns: 500 },
    );
  });

  it('explains each kind of path in words', () => {
    const { sw, send } = setup(VTEP_B);
    send({ port: 'p1' }, MACS[0]!, BCAST);
    send({ vtep: VTEP_A }, MACS[1]!, BCAST);
    const known = traceFrame(sw, 'blue', { port: 'p2' }, MACS[2]!, MACS[1]!);
    expect(known).toMatchObject({
      action: 'forward',
      handledBy: 'fast-path',
      learn: 'new',
      outputs: { ports: [], vteps: [{ kind: 'vtep', vtep: VTEP_A, encap: 'vxlan' }] },
    });
    expect(known.steps).toEqual([
      `source ${MACS[2]}: not in the table: learned at port p2`,
      `destination ${MACS[1]}: learned entry at vtep ${VTEP_A} (idle 0 s)`,
      'fast path: cache hit, forwarded in C without the bridge (VXLAN, VNI 5001)',
    ]);
    expect(traceFrame(sw, 'blue', { port: 'p2' }, MACS[2]!, MACS[3]!).steps[1]).toBe(`destination ${MACS[3]}: static entry at vtep ${VTEP_B}`);
    const split = traceFrame(sw, 'blue', { vtep: VTEP_B }, MACS[2]!, MACS[1]!);
    expect(split).toMatchObject({ action: 'drop', reason: 'split-horizon' });
    // acceptFrom: known (the default): a VTEP the tenant does not know is dropped in C.
    const spoof = traceFrame(sw, 'blue', { vtep: VTEP_C }, MACS[2]!, BCAST);
    expect(spoof).toMatchObject({ action: 'drop', reason: 'vtep_not_accepted', handledBy: 'none' });
    sw.setPolicy('blue', { learning: true, ageingMs: 300_000, maxMacs: 8192, acceptFrom: 'any' });
    const flood = traceFrame(sw, 'blue', { vtep: VTEP_C }, MACS[2]!, BCAST);
    expect(flood.ingress).toEqual({ kind: 'vtep', vtep: VTEP_C, encap: 'vxlan', known: false });
    expect(flood.steps[0]).toContain('not known yet');
    expect(flood).toMatchObject({ action: 'flood', reason: 'broadcast', handledBy: 'bridge', outputs: { ports: ['p1', 'p2', 'p3'], vteps: [] } });
    expect(traceFrame(sw, 'blue', { port: 'p1' }, MACS[1]!, MACS[0]!).steps[0]).toBe(`source ${MACS[1]}: known elsewhere (vtep ${VTEP_A}): moves to port p1`);
    expect(traceFrame(sw, 'blue', { port: 'p1' }, MACS[3]!, MACS[0]!).steps[0]).toContain('static entry at vtep 127.0.0.3: not moved');
    expect(() => traceFrame(sw, 'blue', { port: 'nope' }, MACS[0]!, MACS[1]!)).toThrow('no port "nope" in tenant "blue"');
  });
});
