/**
 * A profile of one round trip (#18): where the microseconds of a ping through each overlay
 * go, hand-off by hand-off (`npm run bench:latency-profile`, `node dist/bench/latency-profile.js`).
 *
 * The lab is bench/latency.ts's (mainLab: two hosts over veth, an endpoint namespace behind
 * each side) with the kernel's VXLAN, vtepd, tinc switch mode and OpenVPN TAP, the last two
 * without crypto. For each overlay, `ping -c N -i 0.2` (BENCH_PROFILE_PINGS, default 100)
 * and `ping -c M -i 0.01` (BENCH_PROFILE_FAST_PINGS, default 1000; 0 skips it) run under
 *
 *   perf record -a -e sched:sched_waking --filter 'pid == TID || ... || comm == "ping"'
 *                  -e sched:sched_switch --filter 'prev_pid == TID || next_pid == TID || ...'
 *
 * for the threads of the overlay's daemons (h1's and h2's, /proc/PID/task) and ping (the
 * workload; its PID is the one the shell says before it execs ping, so other pings on the
 * machine are left out). sched_waking is traced in the waker's context, so it says who woke
 * whom, when, and on which CPU; sched_switch says when the woken thread got a CPU (and what
 * that CPU ran before: idle or another task) and when it slept again.
 *
 * A round starts when ping's send wakes one of the daemon's data-path threads (the TAP's
 * reader) and ends when ping is woken by the reply (or, when ping had not slept yet, when
 * h1's thread that handed the reply over slept: "ping awake"). Every wake-up of a data-path
 * thread in between is a hand-off: its scheduling delay (sched_waking to running), its work
 * until the next hand-off's sched_waking (the critical path: delay + work over all hand-offs
 * = the span from ping's send to ping's wake-up), its run time until it slept again (on-CPU,
 * the daemon's own work including its system calls; summed per round: "CPU / round"),
 * whether it ran on another CPU than its waker's, whether that CPU was idle, and whether it
 * was preempted before it slept. "data-path sleeps / ping" counts the voluntary switches of
 * those threads over the whole run, as bench/latency.ts counts them from /proc. ping's RTT is
 * measured from its SO_TIMESTAMP receive time, so it ends before ping's own wake-up.
 *
 * The kernel's VXLAN has no daemon: no rounds, only the RTT and ping's own wake-ups.
 * One table per rate, one row per thread, and the median round of each overlay step by step.
 * JSON to bench/results/latency-profile-<date>.json. BENCH_PROFILE_KEEP=DIR keeps the
 * perf.data files there (`perf sched timehist -i FILE`, `perf script -i FILE`).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { untilPings } from '../lab/wait.js';
import { mainLab, type Overlay } from './latency.js';
import { progress, silent, type Progress } from './progress.js';
import { markdownTable } from './table.js';
import { statFields } from '../src/util/proc.js';

const execFileP = promisify(execFile);

/** One scheduler event of `perf script`. Times in µs. */
export type SchedEvent =
  /** `tid`/`comm`: the task running on `cpu` (the waker); `pid`: the task woken. */
  | { kind: 'waking'; t: number; cpu: number; tid: number; comm: string; pid: number }
  | { kind: 'switch'; t: number; cpu: number; prevPid: number; prevComm: string; prevState: string; nextPid: number; nextComm: string };

const LINE = /^\s*(.*?)\s+(\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+sched:(sched_waking|sched_switch):\s+(.*?)\s*$/;
const WAKING = / pid=(\d+) prio=-?\d+ target_cpu=\d+$/;
const SWITCH = /^prev_comm=(.*) prev_pid=(\d+) prev_prio=-?\d+ prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+) next_prio=-?\d+$/;

/** The events of `perf script --ns -F comm,tid,cpu,time,event,trace` (other lines are skipped). */
export function parsePerfScript(text: string): SchedEvent[] {
  const out: SchedEvent[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, comm, tid, cpu, time, event, trace] = m as unknown as string[];
    const t = Number(time) * 1e6;
    if (event === 'sched_waking') {
      const w = WAKING.exec(trace!);
      if (w) out.push({ kind: 'waking', t, cpu: Number(cpu), tid: Number(tid), comm: comm!, pid: Number(w[1]) });
    } else {
      const s = SWITCH.exec(trace!);
      if (s)
        out.push({ kind: 'switch', t, cpu: Number(cpu), prevComm: s[1]!, prevPid: Number(s[2]), prevState: s[3]!, nextComm: s[4]!, nextPid: Number(s[5]) });
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

/** A wake-up of one of the traced threads, and what it did until it slept again. Times in µs. */
export interface Wake {
  tid: number;
  /** "h1 vtepd-encap", "ping". */
  thread: string;
  /** sched_waking. */
  t: number;
  /** The waker: its label, or its comm when it is no thread of the lab's ("swapper/1": an interrupt on an idle CPU). */
  waker: string;
  wakerTid: number;
  wakerCpu: number;
  /** When it got a CPU, which one, and whether that CPU was idle before. */
  on?: number;
  onCpu?: number;
  fromIdle?: boolean;
  /** On-CPU time until it slept (its own work, system calls included). */
  ran: number;
  /** When it slept again (a voluntary switch). */
  sleep?: number;
  /** Times it was switched out runnable (preempted) before it slept. */
  preempted: number;
}

/**
 * The wake-ups of the threads in `threads` (TID → label) from the events, each with its
 * scheduling and run times; and the voluntary sleeps of each thread.
 */
export function trackWakes(events: SchedEvent[], threads: Map<number, string>): { wakes: Wake[]; sleeps: Map<number, number> } {
  const wakes: Wake[] = [];
  const sleeps = new Map<number, number>();
  const latest = new Map<number, Wake>();
  const on = new Map<number, { t: number; cpu: number }>();
  for (const e of events) {
    if (e.kind === 'waking') {
      const thread = threads.get(e.pid);
      if (thread === undefined) continue;
      const w: Wake = { tid: e.pid, thread, t: e.t, waker: threads.get(e.tid) ?? e.comm, wakerTid: e.tid, wakerCpu: e.cpu, ran: 0, preempted: 0 };
      const running = on.get(e.pid);
      if (running) {
        // Woken before it was off the CPU (it was about to sleep): no switch, no delay; the
        // previous wake-up's run ends here.
        const prev = latest.get(e.pid);
        if (prev) {
          prev.ran += e.t - running.t;
          prev.sleep ??= e.t;
        }
        w.on = e.t;
        w.onCpu = running.cpu;
        w.fromIdle = false;
        on.set(e.pid, { t: e.t, cpu: running.cpu });
      }
      wakes.push(w);
      latest.set(e.pid, w);
      continue;
    }
    if (threads.has(e.prevPid)) {
      const w = latest.get(e.prevPid);
      const since = on.get(e.prevPid);
      on.delete(e.prevPid);
      if (w && since) w.ran += e.t - since.t;
      if (e.prevState.startsWith('R')) {
        if (w && w.sleep === undefined) w.preempted++;
      } else {
        sleeps.set(e.prevPid, (sleeps.get(e.prevPid) ?? 0) + 1);
        if (w && w.sleep === undefined) w.sleep = e.t;
      }
    }
    if (threads.has(e.nextPid)) {
      on.set(e.nextPid, { t: e.t, cpu: e.cpu });
      const w = latest.get(e.nextPid);
      if (w && w.on === undefined) {
        w.on = e.t;
        w.onCpu = e.cpu;
        w.fromIdle = e.prevPid === 0;
      }
    }
  }
  return { wakes, sleeps };
}

/**
 * A round trip: from ping's send (its wake-up of the daemon's first thread) to the reply
 * handed to ping: ping's wake-up by it, or, when ping had not slept yet (it was preempted,
 * still runnable, and found the reply waiting), the moment h1's daemon thread that handed
 * it over slept.
 */
export interface Round {
  /** The data path's hand-offs, in order; the first is the one ping's send made. */
  hops: Wake[];
  /** ping's wake-up by the reply; none when ping had not slept. */
  reply?: Wake;
  end: number;
  /** Wake-ups of the daemons' other threads (timers, V8's workers) meanwhile. */
  others: number;
}

/** The data-path threads: vtepd's encap and decap threads, tincd, openvpn (labels "h1 <comm>"). */
export const DATA_PATH = /^h\d (vtepd-(encap|decap)\d*|tincd|openvpn)$/;

/**
 * The rounds among `wakes` (in time order) for ping's TID. A round starts when ping wakes a
 * data-path thread (its send). A hand-off is a wake-up of a data-path thread by a thread of
 * the round so far, or by a task that is not the lab's (softirq in ksoftirqd, an interrupt).
 * The round ends when one of its threads (or ksoftirqd) wakes ping: the reply. When ping is
 * woken otherwise first (its interval timer), ping had not slept for the reply: the round
 * ends when the last of its h1 threads slept, if that was after every h2 hand-off ran
 * (`awake` counts those). Dropped: a round cut by the next send (`cut`), and one that is
 * neither (`dropped`; `droppedBy`: who woke ping).
 */
export function findRounds(
  wakes: Wake[],
  ping: number,
  threads: Map<number, string>,
): { rounds: Round[]; cut: number; awake: number; dropped: number; droppedBy: Record<string, number> } {
  const rounds: Round[] = [];
  let cut = 0;
  let awake = 0;
  let dropped = 0;
  const droppedBy: Record<string, number> = {};
  let cur: { hops: Wake[]; tids: Set<number>; others: number } | null = null;
  const dataPath = (w: Wake) => DATA_PATH.test(w.thread);
  const near = (w: Wake) => w.thread.startsWith('h1 ');
  for (const w of wakes) {
    if (w.tid !== ping && w.wakerTid === ping && dataPath(w)) {
      if (cur) cut++;
      cur = { hops: [w], tids: new Set([w.tid]), others: 0 };
      continue;
    }
    if (!cur) continue;
    const byRound = cur.tids.has(w.wakerTid) || w.waker.startsWith('ksoftirqd');
    if (w.tid === ping) {
      const ran = cur.hops.every((h) => h.on !== undefined);
      const end = Math.max(...cur.hops.filter((h) => near(h) && h.sleep !== undefined).map((h) => h.sleep!));
      const far = cur.hops.filter((h) => !near(h));
      if (byRound && ran && w.on !== undefined) rounds.push({ hops: cur.hops, reply: w, end: w.t, others: cur.others });
      else if (!byRound && ran && far.length && far.every((h) => h.on! < end) && end <= w.t) {
        rounds.push({ hops: cur.hops, end, others: cur.others });
        awake++;
      } else {
        dropped++;
        droppedBy[w.waker] = (droppedBy[w.waker] ?? 0) + 1;
      }
      cur = null;
    } else if (dataPath(w) && (byRound || !threads.has(w.wakerTid))) {
      cur.hops.push(w);
      cur.tids.add(w.tid);
    } else cur.others++;
  }
  return { rounds, cut, awake, dropped, droppedBy };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = s.length >> 1;
  return s.length % 2 ? s[i]! : (s[i - 1]! + s[i]!) / 2;
};
const share = (xs: boolean[]) => (xs.length ? xs.filter(Boolean).length / xs.length : NaN);

/** Scheduling delay of a wake-up (µs), and its work until the next hand-off's sched_waking. */
const delay = (w: Wake) => w.on! - w.t;
const work = (r: Round, i: number) => (r.hops[i + 1]?.t ?? r.end) - r.hops[i]!.on!;

/** One thread's hand-offs over all rounds. Times in µs; shares 0–1. */
export interface ThreadFigure {
  /** "h1 tincd"; "h1 tincd, again": its second wake-up in a round. */
  thread: string;
  perRound: number;
  delayMean: number;
  delayMedian: number;
  /** Work until the next hand-off's wake-up (the critical path). */
  workMean: number;
  workMedian: number;
  /** On-CPU time from its wake-up until it slept. */
  runMean: number;
  runMedian: number;
  crossCpu: number;
  fromIdle: number;
  preempted: number;
}

/** One step of a round, for the median round's timeline. Times in µs from the round's start. */
export interface RoundStep {
  at: number;
  thread: string;
  waker: string;
  wakerCpu: number;
  cpu: number;
  delay: number;
  fromIdle: boolean;
  /** Until the next step's wake-up (undefined for ping). */
  work?: number;
  run: number;
}

export interface ProfileFigure {
  overlay: string;
  interval: number;
  sent: number;
  received: number;
  /** ping's RTT, µs. */
  rttMean: number;
  rttMedian: number;
  rounds: number;
  /** Rounds where ping had not slept for the reply; rounds dropped (see findRounds). */
  awake: number;
  cut: number;
  dropped: number;
  droppedBy: Record<string, number>;
  /** From the send's wake-up to the round's end (ping's wake-up by the reply, see Round), µs. */
  spanMean: number;
  spanMedian: number;
  /**
   * The data path's wake-ups per round; its threads' voluntary sleeps over the whole run per
   * ping answered (the count bench/latency.ts makes from /proc); the daemons' other threads'
   * wake-ups per round.
   */
  wakeupsPerRound: number;
  sleepsPerPing: number;
  othersPerRound: number;
  /** ping's voluntary sleeps per ping (1: only its interval timer; 2: also the reply). */
  pingSleepsPerPing: number;
  /** Per round, µs: the hand-offs' scheduling delays, their work until the next hand-off. */
  delayPerRound: number;
  workPerRound: number;
  delayPerRoundMedian: number;
  workPerRoundMedian: number;
  /** The data path's on-CPU time per round (its hand-offs' runs until they slept), µs. */
  cpuPerRound: number;
  cpuPerRoundMedian: number;
  /** Over the daemon's hand-offs: median delay, mean on-CPU run until sleep (µs); shares. */
  delayMedian: number;
  runMean: number;
  runMedian: number;
  crossCpu: number;
  fromIdle: number;
  preempted: number;
  /** ping's wake-up by the reply (after the RTT's end), where it slept: its mean delay, µs. */
  pingDelayMean: number;
  threads: ThreadFigure[];
  /** The round whose span is the median, step by step. */
  medianRound: RoundStep[];
  /** What perf said on stderr (lost events). */
  perfWarnings: string;
}

/** The figures of one traced ping run. */
export function profileFigure(
  overlay: string,
  interval: number,
  sent: number,
  rtts: number[],
  events: SchedEvent[],
  threads: Map<number, string>,
  ping: number,
  perfWarnings = '',
): ProfileFigure {
  const all = new Map(threads);
  all.set(ping, 'ping');
  const { wakes, sleeps } = trackWakes(events, all);
  const { rounds, cut, awake, dropped, droppedBy } = findRounds(wakes, ping, threads);
  // A thread's second wake-up in a round (a one-thread peer's near-host thread, woken by the reply) is a row of its own.
  const hops = rounds.flatMap((r) =>
    r.hops.map((h, i) => ({ h, work: work(r, i), key: r.hops.slice(0, i).some((p) => p.tid === h.tid) ? `${h.thread}, again` : h.thread })),
  );
  const span = (r: Round) => r.end - r.hops[0]!.t;
  const names = [...new Set(hops.map((x) => x.key))].sort();
  const answered = Math.max(1, rtts.length);
  const bySpan = [...rounds].sort((a, b) => span(a) - span(b));
  const mid = bySpan[(bySpan.length - 1) >> 1];
  const delays = rounds.map((r) => r.hops.reduce((a, h) => a + delay(h), 0));
  const works = rounds.map((r) => r.hops.reduce((a, _, i) => a + work(r, i), 0));
  const cpus = rounds.map((r) => r.hops.reduce((a, h) => a + h.ran, 0));
  const dataPathSleeps = [...sleeps].filter(([tid]) => DATA_PATH.test(threads.get(tid) ?? '')).reduce((a, [, n]) => a + n, 0);
  return {
    overlay,
    interval,
    sent,
    received: rtts.length,
    rttMean: mean(rtts),
    rttMedian: median(rtts),
    rounds: rounds.length,
    awake,
    cut,
    dropped,
    droppedBy,
    spanMean: mean(rounds.map(span)),
    spanMedian: median(rounds.map(span)),
    wakeupsPerRound: rounds.length ? hops.length / rounds.length : 0,
    sleepsPerPing: dataPathSleeps / answered,
    othersPerRound: mean(rounds.map((r) => r.others)),
    pingSleepsPerPing: (sleeps.get(ping) ?? 0) / sent,
    delayPerRound: mean(delays),
    workPerRound: mean(works),
    delayPerRoundMedian: median(delays),
    workPerRoundMedian: median(works),
    cpuPerRound: mean(cpus),
    cpuPerRoundMedian: median(cpus),
    delayMedian: median(hops.map((x) => delay(x.h))),
    runMean: mean(hops.map((x) => x.h.ran)),
    runMedian: median(hops.map((x) => x.h.ran)),
    crossCpu: share(hops.map((x) => x.h.onCpu !== x.h.wakerCpu)),
    fromIdle: share(hops.map((x) => x.h.fromIdle === true)),
    preempted: share(hops.map((x) => x.h.preempted > 0)),
    pingDelayMean: mean(rounds.flatMap((r) => (r.reply ? [delay(r.reply)] : []))),
    threads: names.map((thread) => {
      const mine = hops.filter((x) => x.key === thread);
      return {
        thread,
        perRound: mine.length / rounds.length,
        delayMean: mean(mine.map((x) => delay(x.h))),
        delayMedian: median(mine.map((x) => delay(x.h))),
        workMean: mean(mine.map((x) => x.work)),
        workMedian: median(mine.map((x) => x.work)),
        runMean: mean(mine.map((x) => x.h.ran)),
        runMedian: median(mine.map((x) => x.h.ran)),
        crossCpu: share(mine.map((x) => x.h.onCpu !== x.h.wakerCpu)),
        fromIdle: share(mine.map((x) => x.h.fromIdle === true)),
        preempted: share(mine.map((x) => x.h.preempted > 0)),
      };
    }),
    medianRound: mid
      ? [...mid.hops, ...(mid.reply ? [mid.reply] : [])].map((h, i) => ({
          at: h.t - mid.hops[0]!.t,
          thread: h.thread,
          waker: h.waker,
          wakerCpu: h.wakerCpu,
          cpu: h.onCpu!,
          delay: delay(h),
          fromIdle: h.fromIdle === true,
          work: i < mid.hops.length ? work(mid, i) : undefined,
          run: h.ran,
        }))
      : [],
    perfWarnings,
  };
}

/**
 * The threads of an overlay's daemons: TID → "h1 <comm>" (pids: h1's daemon first). A
 * daemon's data path process (vtepd-dp, after its daemon in pids) is on its daemon's host.
 */
function threadsOf(pids: number[]): Map<number, string> {
  const m = new Map<number, string>();
  const host = new Map<number, number>();
  for (const pid of pids) {
    const ppid = Number(statFields(pid)?.[1]);
    host.set(pid, host.get(ppid) ?? new Set(host.values()).size + 1);
  }
  pids.forEach((pid) => {
    const i = host.get(pid)! - 1;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let comm = '?';
      try {
        comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      m.set(Number(tid), `h${i + 1} ${comm}`);
    }
  });
  return m;
}

/** `ping -c count -i interval` from the overlay's client under perf record; the figures. */
async function traced(o: Overlay, interval: number, count: number, dir: string, keep?: string): Promise<ProfileFigure> {
  const threads = threadsOf(o.pids);
  const file = keep ? join(keep, `${o.name.replace(/\W+/g, '-')}-i${interval}.data`) : join(dir, 'perf.data');
  const tids = [...threads.keys()];
  const wakingFilter = [...tids.map((t) => `pid == ${t}`), 'comm == "ping"'].join(' || ');
  const switchFilter = [...tids.flatMap((t) => [`prev_pid == ${t}`, `next_pid == ${t}`]), 'prev_comm == "ping"', 'next_comm == "ping"'].join(' || ');
  const shell = `echo "pid $$"; exec ip netns exec ${o.lab.ns(o.client)} ping -c ${count} -i ${interval} -W 1 ${o.addr}`;
  const rec = await execFileP(
    'perf',
    [
      'record',
      '-q',
      '-a',
      '-m',
      '1024',
      '-o',
      file,
      '-e',
      'sched:sched_waking',
      '--filter',
      wakingFilter,
      '-e',
      'sched:sched_switch',
      '--filter',
      switchFilter,
      '--',
      'sh',
      '-c',
      shell,
    ],
    { timeout: (count * interval + 60) * 1000, maxBuffer: 64 << 20 },
  );
  const ping = Number(/^pid (\d+)/m.exec(rec.stdout)?.[1]);
  if (!ping) throw new Error(`no ping PID in: ${rec.stdout.slice(0, 200)}`);
  const rtts = [...rec.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  const script = await execFileP('perf', ['script', '-i', file, '--ns', '-F', 'comm,tid,cpu,time,event,trace'], { maxBuffer: 1 << 30 });
  if (!keep) rmSync(file, { force: true });
  const warnings = `${rec.stderr}\n${script.stderr}`
    .split('\n')
    .filter((l) => /lost|warning/i.test(l))
    .join('; ');
  return profileFigure(o.name, interval, count, rtts, parsePerfScript(script.stdout), threads, ping, warnings);
}

export const PROFILE_OVERLAYS = ['kernel VXLAN', 'vtepd VXLAN', 'tinc switch, no crypto', 'OpenVPN TAP, no crypto'] as const;

export interface ProfileOptions {
  /** Pings at -i 0.2 and at -i 0.01 (0: none). */
  slow: number;
  fast: number;
  /** A directory to keep the perf.data files in (`perf sched timehist -i FILE`); none: removed. */
  keep?: string;
}

/** BENCH_PROFILE_PINGS, BENCH_PROFILE_FAST_PINGS, BENCH_PROFILE_KEEP. */
export function profileOptions(env: NodeJS.ProcessEnv = process.env): ProfileOptions {
  return {
    slow: Math.max(1, Number(env.BENCH_PROFILE_PINGS ?? 100)),
    fast: Math.max(0, Number(env.BENCH_PROFILE_FAST_PINGS ?? 1000)),
    keep: env.BENCH_PROFILE_KEEP || undefined,
  };
}

/** The runs: every overlay at -i 0.2, then at -i 0.01 in the reverse order. */
export async function profileRuns(opts: ProfileOptions, report: Progress = silent, cleanups: (() => Promise<void>)[] = []): Promise<ProfileFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-prof-'));
  if (opts.keep) mkdirSync(opts.keep, { recursive: true });
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  report.note('latency-profile: kernel VXLAN, vtepd, tinc and OpenVPN (no crypto) on one two-host lab');
  const main = await mainLab(dir, { crypto: false, ownProcess: false });
  cleanups.push(main.cleanup);
  const overlays = main.overlays.filter((x) => (PROFILE_OVERLAYS as readonly string[]).includes(x.name));
  for (const x of overlays) {
    await untilPings(x.lab, x.client, x.addr);
    await x.lab.exec(x.client, 'ping', ['-c', '5', '-i', '0.2', '-W', '1', x.addr]);
  }
  const figures: ProfileFigure[] = [];
  const rates = [[0.2, opts.slow] as const, ...(opts.fast > 0 ? [[0.01, opts.fast] as const] : [])];
  for (const [i, [interval, count]] of rates.entries())
    for (const x of i % 2 ? [...overlays].reverse() : overlays)
      figures.push(
        await report.step(
          `${x.name} ping -i ${interval}`,
          () => traced(x, interval, count, dir, opts.keep),
          (f) =>
            `RTT mean ${us(f.rttMean)} µs, ${f.rounds} rounds, ${f.wakeupsPerRound.toFixed(2)} wake-ups per round, delay ${us(f.delayPerRound)} + work ${us(f.workPerRound)} µs per round`,
          `${count} pings under perf record`,
        ),
      );
  return figures;
}

const us = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)} %` : '-');

/** The tables of one rate: per overlay, per thread, and each overlay's median round. */
export function profileTables(figures: ProfileFigure[], interval: number): string {
  const fs = figures.filter((f) => f.interval === interval);
  if (!fs.length) return '';
  const out = [
    `Round trip profile (#18), ping -i ${interval}, ${fs[0]!.sent} pings; times in µs; "hand-off": a wake-up of a daemon thread between ping's send and ping's wake-up by the reply:`,
    ...markdownTable(
      [
        'overlay',
        'RTT mean / median',
        'rounds',
        'ping awake',
        'span mean / median',
        'hand-offs / round',
        'data-path sleeps / ping',
        'delay / round mean / median',
        'work / round mean / median',
        'CPU / round mean / median',
        'delay median',
        'run mean / median',
        'cross-CPU',
        'CPU idle',
        'preempted',
        'ping wake delay',
      ],
      fs.map((f) => [
        f.overlay,
        `${us(f.rttMean)} / ${us(f.rttMedian)}`,
        `${f.rounds}/${f.sent}`,
        pct(f.awake / f.rounds),
        `${us(f.spanMean)} / ${us(f.spanMedian)}`,
        f.wakeupsPerRound.toFixed(2),
        f.sleepsPerPing.toFixed(2),
        `${us(f.delayPerRound)} / ${us(f.delayPerRoundMedian)}`,
        `${us(f.workPerRound)} / ${us(f.workPerRoundMedian)}`,
        `${us(f.cpuPerRound)} / ${us(f.cpuPerRoundMedian)}`,
        us(f.delayMedian),
        `${us(f.runMean)} / ${us(f.runMedian)}`,
        pct(f.crossCpu),
        pct(f.fromIdle),
        pct(f.preempted),
        us(f.pingDelayMean),
      ]),
    ),
    '',
    'Per thread (mean per round; delay: sched_waking → on a CPU; work: on a CPU → the next hand-off; run: on-CPU time until it slept):',
    ...markdownTable(
      ['overlay', 'thread', 'wake-ups / round', 'delay mean / median', 'work mean / median', 'run mean / median', 'cross-CPU', 'CPU idle', 'preempted'],
      fs.flatMap((f) =>
        f.threads.map((t) => [
          f.overlay,
          t.thread,
          t.perRound.toFixed(2),
          `${us(t.delayMean)} / ${us(t.delayMedian)}`,
          `${us(t.workMean)} / ${us(t.workMedian)}`,
          `${us(t.runMean)} / ${us(t.runMedian)}`,
          pct(t.crossCpu),
          pct(t.fromIdle),
          pct(t.preempted),
        ]),
      ),
    ),
  ];
  for (const f of fs.filter((x) => x.medianRound.length)) {
    out.push('', `${f.overlay}, the median round (span ${us(f.spanMedian)} µs):`);
    out.push(
      ...markdownTable(
        ['at', 'woken', 'by', 'CPU', 'delay', 'CPU was', 'work', 'run'],
        f.medianRound.map((s) => [
          us(s.at),
          s.thread,
          s.waker,
          `${s.wakerCpu} → ${s.cpu}`,
          us(s.delay),
          s.fromIdle ? 'idle' : 'busy',
          s.work === undefined ? '-' : us(s.work),
          us(s.run),
        ]),
      ),
    );
  }
  const warn = fs.filter((f) => f.perfWarnings);
  if (warn.length) out.push('', ...warn.map((f) => `perf (${f.overlay}): ${f.perfWarnings}`));
  return out.join('\n');
}

// Run alone: node dist/bench/latency-profile.js (npm run bench:latency-profile)
if (process.argv[1] && /bench[/\\]latency-profile\.js$/.test(process.argv[1])) {
  const opts = profileOptions();
  const load0 = loadavg();
  const t0 = Date.now();
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      void cleanup().then(() => process.exit(130));
    });
  profileRuns(opts, progress('bench:latency-profile', PROFILE_OVERLAYS.length * (opts.fast > 0 ? 2 : 1)), cleanups)
    .then(async (figures) => {
      await cleanup();
      const date = new Date().toISOString();
      const load1 = loadavg();
      console.log(
        `vtepd latency profile — ${date} — ${((Date.now() - t0) / 1000).toFixed(0)} s in all; load average ${load0.map((x) => x.toFixed(1)).join(' ')} at the start, ${load1.map((x) => x.toFixed(1)).join(' ')} at the end`,
      );
      console.log(profileTables(figures, 0.2));
      if (opts.fast > 0) console.log(`\n${profileTables(figures, 0.01)}`);
      const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
      const file = `latency-profile-${date.replace(/[:.]/g, '-')}.json`;
      mkdirSync(resultsDir, { recursive: true });
      writeFileSync(join(resultsDir, file), JSON.stringify({ date, ...opts, loadAverage: [load0, load1], figures }, null, 2));
      console.log(`results: bench/results/${file}`);
    })
    .catch(async (e) => {
      await cleanup();
      console.error(e);
      process.exit(1);
    });
}
