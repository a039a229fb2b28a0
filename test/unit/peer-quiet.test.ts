/**
 * `peer quiet: nothing received from it for 10 s`: a warning where the VTEP is expected to keep
 * talking (a spoke's hub, a hub's spoke, a peer with a key), info for a plain mesh VTEP whose
 * VMs went quiet (the default log level, warn, then says nothing).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { quietLevel, Telemetry, type TelemetrySource } from '../../src/daemon/stats.js';

interface FakeVtep {
  id: number;
  key: string;
  roleRefs: number;
}

/** A telemetry over `vteps` whose rx counters the test moves, logging into `lines`. */
function telemetry(vteps: FakeVtep[], keyed: string[] = []) {
  const rx = new Map<number, number>(vteps.map((v) => [v.id, 0]));
  const lines: { level: string; msg: string; vtep: string }[] = [];
  const logAt = (level: string) => (o: { vtep: string }, msg: string) => lines.push({ level, msg, vtep: o.vtep });
  const src = {
    sw: { vteps: { all: () => vteps, find: (k: string) => vteps.find((v) => v.key === k) } },
    dp: { stats: () => ({ counters: {}, vteps: Object.fromEntries([...rx].map(([id, n]) => [id, { rxPackets: n }])) }) },
    roles: { status: () => ({ secure: { peers: keyed.map((vtep) => ({ vtep })) } }) },
    startedAt: 0,
    log: { warn: logAt('warn'), info: logAt('info') },
  } as unknown as TelemetrySource;
  return { t: new Telemetry(src), rx, lines };
}

afterEach(() => vi.useRealTimers());

describe('peer quiet', () => {
  it('is info for a mesh VTEP, warn for a hub, a spoke or a keyed peer', () => {
    expect(quietLevel({ roleRefs: 0 }, false)).toBe('info');
    expect(quietLevel({ roleRefs: 1 }, false)).toBe('warn');
    expect(quietLevel({ roleRefs: 0 }, true)).toBe('warn');
    expect(quietLevel(undefined, false)).toBe('info');
  });

  it('is logged once when traffic stops, at the level of the VTEP', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const vteps = [
      { id: 1, key: '10.0.0.2', roleRefs: 0 },
      { id: 2, key: '10.0.0.3', roleRefs: 1 },
      { id: 3, key: '10.0.0.4', roleRefs: 0 },
    ];
    const { t, rx, lines } = telemetry(vteps, ['10.0.0.4']);
    t.tick();
    for (const id of [1, 2, 3]) rx.set(id, 5);
    t.tick();
    vi.advanceTimersByTime(11_000);
    t.tick();
    t.tick();
    const quiet = lines.filter((l) => l.msg.startsWith('peer quiet'));
    expect(quiet).toEqual([
      { level: 'info', msg: 'peer quiet: nothing received from it for 10 s', vtep: '10.0.0.2' },
      { level: 'warn', msg: 'peer quiet: nothing received from it for 10 s', vtep: '10.0.0.3' },
      { level: 'warn', msg: 'peer quiet: nothing received from it for 10 s', vtep: '10.0.0.4' },
    ]);
  });
});
