import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HubSelector, PROBE, REPLY, decodeLiveness, encodeLiveness, type LivenessMessage } from '../../src/overlay/liveness.js';

const msg = (over: Partial<LivenessMessage> = {}) => ({
  type: PROBE as typeof PROBE,
  seq: 7,
  sender: 0xdeadbeef,
  timestamp: 1234,
  probedSize: 0,
  role: 'spoke' as const,
  nat: true,
  vnis: [5001, 5002],
  ...over,
});

describe('liveness wire format', () => {
  it('round-trips, pads PMTU probes, and starts with a byte VXLAN receivers drop', () => {
    const b = encodeLiveness({ ...msg(), padTo: 1400 });
    expect(b.length).toBe(1400);
    expect(b[0]).toBe(0x00); // VXLAN I flag clear
    expect(decodeLiveness(b)).toEqual({ ...msg(), length: 1400 });
  });

  it('decodes any encoded message, and never throws on any input', () => {
    fc.assert(
      fc.property(
        fc.record({
          type: fc.constantFrom(PROBE as typeof PROBE, REPLY as typeof REPLY),
          seq: fc.nat(0xffffffff),
          sender: fc.nat(0xffffffff),
          timestamp: fc.nat(),
          probedSize: fc.nat(0xffff),
          role: fc.constantFrom('mesh' as const, 'hub' as const, 'spoke' as const),
          nat: fc.boolean(),
          vnis: fc.array(fc.integer({ min: 1, max: 0xffffff }), { maxLength: 50 }),
        }),
        (m) => {
          const b = encodeLiveness(m);
          expect(decodeLiveness(b)).toEqual({ ...m, length: b.length });
        },
      ),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = decodeLiveness(Buffer.from(bytes));
        expect(typeof r).toBe('object');
      }),
    );
  });

  it('rejects truncated, wrong-length and wrong-magic input with a reason', () => {
    const b = encodeLiveness(msg());
    expect(decodeLiveness(b.subarray(0, 20))).toEqual({ error: 'truncated' });
    expect(decodeLiveness(Buffer.concat([b, Buffer.alloc(4)]))).toEqual({ error: 'length mismatch' });
    const bad = Buffer.from(b);
    bad[0] = 0x08;
    expect(decodeLiveness(bad)).toEqual({ error: 'bad magic' });
  });
});

describe('HubSelector', () => {
  const hubs = [
    { address: '10.0.0.10', port: 4789 },
    { address: '10.0.0.11', port: 4789 },
  ];
  const reply = (t: number, sender = 1) => ({ ...msg({ type: REPLY, timestamp: t, sender }), length: 40 });

  it('starts on the first hub and fails over once it is silent for the dead interval', () => {
    const s = new HubSelector(hubs, 3000, 0);
    expect(s.activeHub.address).toBe('10.0.0.10');
    for (let t = 0; t <= 2000; t += 1000) {
      s.onReply('10.0.0.10', 4789, reply(t), t + 1);
      s.onReply('10.0.0.11', 4789, reply(t), t + 1);
      expect(s.tick(t + 1)).toBeNull();
    }
    // 10.0.0.10 goes silent after t=2001; 10.0.0.11 keeps answering.
    for (let t = 3000; t <= 4000; t += 1000) {
      s.onReply('10.0.0.11', 4789, reply(t), t + 1);
      expect(s.tick(t + 1)).toBeNull();
    }
    s.onReply('10.0.0.11', 4789, reply(5000), 5001);
    expect(s.tick(5002)).toEqual({ kind: 'failover', from: '10.0.0.10', to: '10.0.0.11' });
    expect(s.activeHub.address).toBe('10.0.0.11');
  });

  it('does not fail back when the preferred hub returns, and notices a hub restart', () => {
    const s = new HubSelector(hubs, 3000, 0);
    s.onReply('10.0.0.11', 4789, reply(0), 1);
    s.onReply('10.0.0.11', 4789, reply(0), 2000);
    expect(s.tick(3001)?.kind).toBe('failover');
    s.onReply('10.0.0.10', 4789, reply(3100, 9), 3100);
    s.onReply('10.0.0.11', 4789, reply(3100), 3100);
    expect(s.tick(3200)).toBeNull();
    expect(s.activeHub.address).toBe('10.0.0.11');
    expect(s.onReply('10.0.0.10', 4789, reply(3300, 10), 3300)).toEqual({ kind: 'restarted', hub: '10.0.0.10' });
  });

  it('with no hub answering, walks the list each dead interval', () => {
    const s = new HubSelector(hubs, 3000, 0);
    expect(s.tick(3000)).toEqual({ kind: 'failover', from: '10.0.0.10', to: '10.0.0.11' });
    expect(s.tick(4000)).toBeNull();
    expect(s.tick(6000)).toEqual({ kind: 'failover', from: '10.0.0.11', to: '10.0.0.10' });
  });
});
