import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MoveDampener, TokenBucket } from '../../src/core/policy.js';

describe('TokenBucket (storm control)', () => {
  it('passes a burst, then exactly `rate` a second', () => {
    const b = new TokenBucket(100, 10, 0);
    let passed = 0;
    for (let i = 0; i < 50; i++) if (b.take(0)) passed++;
    expect(passed).toBe(10);
    expect(b.exceeded).toBe(40);
    // One second later, 100 more tokens, capped at the burst of 10.
    passed = 0;
    for (let i = 0; i < 50; i++) if (b.take(1000)) passed++;
    expect(passed).toBe(10);
    // Spread evenly: 1000 frames over 10 s at 100/s all pass.
    const c = new TokenBucket(100, 10, 0);
    let ok = 0;
    for (let i = 0; i < 1000; i++) if (c.take(i * 10)) ok++;
    expect(ok).toBe(1000);
  });

  it('never passes more than burst + rate * elapsed, for any arrival pattern', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 300 }),
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 50 }),
        (gaps, rate, burst) => {
          const b = new TokenBucket(rate, burst, 0);
          let now = 0;
          let passed = 0;
          for (const g of gaps) {
            now += g;
            if (b.take(now)) passed++;
          }
          expect(passed).toBeLessThanOrEqual(burst + (rate * now) / 1000 + 1e-9);
          expect(passed + b.exceeded).toBe(gaps.length);
        },
      ),
    );
  });
});

describe('MoveDampener', () => {
  it('lets a MAC move maxMoves times in the window, pins it on the next, releases it after holdMs', () => {
    const d = new MoveDampener({ maxMoves: 3, windowMs: 1000, holdMs: 5000 });
    expect([d.allowMove('m', 0), d.allowMove('m', 100), d.allowMove('m', 200)]).toEqual(['ok', 'ok', 'ok']);
    expect(d.allowMove('m', 300)).toBe('flapping');
    expect(d.allowMove('m', 400)).toBe('pinned');
    expect(d.pinned(400)).toEqual(['m']);
    expect(d.allowMove('other', 400)).toBe('ok');
    expect(d.allowMove('m', 5301)).toBe('ok');
    expect(d.pinned(5301)).toEqual([]);
  });

  it('does not pin a MAC that moves slowly', () => {
    const d = new MoveDampener({ maxMoves: 3, windowMs: 1000, holdMs: 5000 });
    for (let i = 0; i < 20; i++) expect(d.allowMove('m', i * 400)).toBe('ok');
  });
});
