/**
 * The bench's progress lines (bench/progress.ts): a numbered line as each step starts and
 * one as it ends with what it measured, or with the error, on stderr.
 */
import { describe, expect, it } from 'vitest';
import { gbps, progress } from '../../bench/progress.js';

function recorder() {
  const lines: string[] = [];
  let t = 0;
  const p = progress(
    'bench',
    3,
    (s) => lines.push(s),
    () => t,
  );
  return { lines, p, advance: (ms: number) => (t += ms) };
}

describe('bench progress', () => {
  it('says each step as it starts and what it measured as it ends, numbered, with the time since the start', async () => {
    const { lines, p, advance } = recorder();
    p.note('building the lab');
    const got = await p.step(
      'vtepd TCP 1 stream',
      async () => {
        advance(65_000);
        return 7.406;
      },
      (g) => `${gbps(g)} (vtepd 0.48× kernel)`,
      'round 1/3, 5 s',
    );
    expect(got).toBe(7.406);
    expect(lines).toEqual([
      'bench: [0:00] building the lab\n',
      'bench: [1/3 0:00] vtepd TCP 1 stream, round 1/3, 5 s ...\n',
      'bench: [1/3 1:05] vtepd TCP 1 stream: 7.41 Gbit/s (vtepd 0.48× kernel)\n',
    ]);
  });

  it('says a failed step and passes its error on', async () => {
    const { lines, p } = recorder();
    await expect(
      p.step(
        'kernel UDP 64 B',
        async () => {
          throw new Error('iperf3 -c 10.9.0.2 failed: unable to connect\nmore');
        },
        () => 'never',
      ),
    ).rejects.toThrow('unable to connect');
    expect(lines[1]).toBe('bench: [1/3 0:00] kernel UDP 64 B: failed: iperf3 -c 10.9.0.2 failed: unable to connect\n');
  });

  it('counts on past the planned total rather than print 4/3', async () => {
    const { lines, p } = recorder();
    for (let i = 0; i < 4; i++) await p.step(`step ${i + 1}`, async () => i, String);
    expect(lines[lines.length - 1]).toBe('bench: [4/4 0:00] step 4: 3\n');
  });
});
