/**
 * The round trip profile (bench/latency-profile.ts): perf script's sched events parsed, the
 * wake-ups tracked, rounds found from ping's send to the reply, and their figures.
 */
import { describe, expect, it } from 'vitest';
import { findRounds, parsePerfScript, profileFigure, trackWakes } from '../../bench/latency-profile.js';

const PING = 500;
const threads = new Map([
  [11, 'h1 vtepd-encap'],
  [12, 'h1 vtepd-decap'],
  [13, 'h1 node'],
  [21, 'h2 vtepd-decap'],
]);

// One round through vtepd: ping wakes h1's encap thread (same CPU), which wakes h2's decap
// thread (across), which wakes h1's decap thread, which wakes ping. Times in s, as perf prints them.
const wake = (comm: string, tid: number, cpu: number, t: number, wcomm: string, pid: number) =>
  `${comm.padStart(16)} ${tid} [00${cpu}] ${t.toFixed(9)}: sched:sched_waking: comm=${wcomm} pid=${pid} prio=120 target_cpu=00${cpu}`;
const sw = (comm: string, tid: number, cpu: number, t: number, state: string, ncomm: string, npid: number) =>
  `${comm.padStart(16)} ${tid} [00${cpu}] ${t.toFixed(9)}: sched:sched_switch: prev_comm=${comm} prev_pid=${tid} prev_prio=120 prev_state=${state} ==> next_comm=${ncomm} next_pid=${npid} next_prio=120`;
const ROUND = [
  wake('ping', PING, 0, 1.0, 'vtepd-encap', 11),
  sw('ping', PING, 0, 1.000005, 'S', 'vtepd-encap', 11),
  wake('vtepd-encap', 11, 0, 1.0001, 'vtepd-decap', 21),
  sw('swapper/1', 0, 1, 1.00013, 'R', 'vtepd-decap', 21),
  sw('vtepd-encap', 11, 0, 1.00011, 'S', 'swapper/0', 0),
  wake('vtepd-decap', 21, 1, 1.0002, 'vtepd-decap', 12),
  sw('swapper/0', 0, 0, 1.00021, 'R', 'vtepd-decap', 12),
  sw('vtepd-decap', 21, 1, 1.00022, 'S', 'swapper/1', 0),
  wake('vtepd-decap', 12, 0, 1.00025, 'ping', PING),
  sw('vtepd-decap', 12, 0, 1.00026, 'S', 'ping', PING),
  sw('ping', PING, 0, 1.0003, 'S', 'swapper/0', 0),
  // ping's interval timer, from an interrupt in some other task
  wake('node', 999, 0, 1.2, 'ping', PING),
].join('\n');

describe('latency profile', () => {
  it('parses waking and switch events, comm with spaces too', () => {
    const ev = parsePerfScript(`${ROUND}\n${wake('V8 DefaultWorke', 14, 1, 1.5, 'vtepd-decap', 21)}\nnoise`);
    expect(ev).toHaveLength(13);
    expect(ev[0]).toEqual({ kind: 'waking', t: 1e6, cpu: 0, tid: PING, comm: 'ping', pid: 11 });
    expect(ev.at(-1)).toMatchObject({ kind: 'waking', tid: 14, comm: 'V8 DefaultWorke', pid: 21 });
    expect(ev.find((e) => e.kind === 'switch')).toMatchObject({ prevPid: PING, prevState: 'S', nextPid: 11, nextComm: 'vtepd-encap' });
  });

  it('finds the round and its hand-offs: delay, work until the next, run, CPUs', () => {
    const all = new Map([...threads, [PING, 'ping']]);
    const { wakes, sleeps } = trackWakes(parsePerfScript(ROUND), all);
    const { rounds, awake, dropped } = findRounds(wakes, PING, threads);
    expect(rounds).toHaveLength(1);
    expect([awake, dropped]).toEqual([0, 0]);
    const r = rounds[0]!;
    expect(r.hops.map((h) => h.thread)).toEqual(['h1 vtepd-encap', 'h2 vtepd-decap', 'h1 vtepd-decap']);
    expect(r.reply?.waker).toBe('h1 vtepd-decap');
    expect(r.end - r.hops[0]!.t).toBeCloseTo(250, 3);
    expect(r.hops[1]!.on! - r.hops[1]!.t).toBeCloseTo(30, 3);
    expect(r.hops[1]!.ran).toBeCloseTo(90, 3);
    expect([r.hops[1]!.wakerCpu, r.hops[1]!.onCpu, r.hops[1]!.fromIdle]).toEqual([0, 1, true]);
    expect(sleeps.get(11)).toBe(1);
    const f = profileFigure('vtepd VXLAN', 0.2, 1, [260], parsePerfScript(ROUND), threads, PING);
    expect(f.rounds).toBe(1);
    expect(f.wakeupsPerRound).toBe(3);
    expect(f.sleepsPerPing).toBe(3);
    // delay + work over the hand-offs = the span
    expect(f.delayPerRound + f.workPerRound).toBeCloseTo(f.spanMean, 3);
    expect(f.crossCpu).toBeCloseTo(2 / 3, 5);
    expect(f.medianRound.map((s) => s.thread)).toEqual(['h1 vtepd-encap', 'h2 vtepd-decap', 'h1 vtepd-decap', 'ping']);
  });

  it('keeps a round where ping had not slept: it ends when h1 last slept', () => {
    // ping preempted (R) by the encap thread, never asleep; the next wake-up is its timer.
    const text = ROUND.replace(
      `${PING} [000] 1.000005000: sched:sched_switch: prev_comm=ping prev_pid=${PING} prev_prio=120 prev_state=S`,
      `${PING} [000] 1.000005000: sched:sched_switch: prev_comm=ping prev_pid=${PING} prev_prio=120 prev_state=R`,
    )
      .split('\n')
      .filter((l) => !/1\.000250000: sched:sched_waking/.test(l))
      .join('\n');
    const { wakes } = trackWakes(parsePerfScript(text), new Map([...threads, [PING, 'ping']]));
    const { rounds, awake } = findRounds(wakes, PING, threads);
    expect(awake).toBe(1);
    expect(rounds[0]!.reply).toBeUndefined();
    expect(rounds[0]!.end).toBeCloseTo(1.00026e6, 3);
  });

  it('counts a wake-up of another thread of the daemon as no hand-off', () => {
    const text = `${ROUND.split('\n').slice(0, 3).join('\n')}\n${wake('swapper/1', 0, 1, 1.00005, 'node', 13)}\n${ROUND.split('\n').slice(3).join('\n')}`;
    const { wakes } = trackWakes(parsePerfScript(text), new Map([...threads, [PING, 'ping']]));
    const { rounds } = findRounds(wakes, PING, threads);
    expect(rounds[0]!.hops).toHaveLength(3);
    expect(rounds[0]!.others).toBe(1);
  });

  it("gives a one-thread peer's second wake-up in a round a row of its own", () => {
    const peer = new Map([
      [31, 'h1 tincd'],
      [41, 'h2 tincd'],
    ]);
    const text = [
      wake('ping', PING, 0, 2.0, 'tincd', 31),
      sw('ping', PING, 0, 2.00001, 'S', 'tincd', 31),
      wake('tincd', 31, 0, 2.0001, 'tincd', 41),
      sw('tincd', 31, 0, 2.00011, 'S', 'tincd', 41),
      wake('tincd', 41, 0, 2.0002, 'tincd', 31),
      sw('tincd', 41, 0, 2.00021, 'S', 'tincd', 31),
      wake('tincd', 31, 0, 2.0003, 'ping', PING),
      sw('tincd', 31, 0, 2.00031, 'S', 'ping', PING),
    ].join('\n');
    const f = profileFigure('tinc', 0.01, 1, [300], parsePerfScript(text), peer, PING);
    expect(f.threads.map((t) => [t.thread, t.perRound])).toEqual([
      ['h1 tincd', 1],
      ['h1 tincd, again', 1],
      ['h2 tincd', 1],
    ]);
    expect(f.wakeupsPerRound).toBe(3);
  });
});
