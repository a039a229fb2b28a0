/**
 * `npm run soak`: a bounded soak of two vtepd hosts with three things at once —
 *   - iperf3 TCP load through tenant blue (blue1 -> blue2) the whole time;
 *   - MAC churn in tenant red: frames with ever new random source MACs (AF_PACKET sender,
 *     test/support/macflood.py) toward red2, with a small maxMacs and a short ageing time,
 *     so the table fills, refuses, ages out and learns again all the while;
 *   - reloads of h1 (SIGHUP) every few seconds, alternating between two configs: A, and B
 *     which adds tenant green with its own TAP and changes red's maxMacs (TAPs created and
 *     deleted, policies changed in place).
 * Every SAMPLE_SECONDS it samples each daemon's RSS (/proc/PID/status VmRSS) and open file
 * descriptors (/proc/PID/fd), and prints a table. It fails (exit 1) unless, at the end:
 *   - each daemon's fd count is what it was at the start (h1 is back on config A first);
 *   - each daemon's RSS is within RSS_SLACK_MB of its highest sample in the first third
 *     (after warm-up), i.e. no growth over the last two thirds beyond that bound;
 *   - both daemons still run, every reload was applied, and blue and red still forward.
 *
 *   SOAK_SECONDS=180   length of the soak (default 180)
 *   SOAK_RELOAD_SECONDS=5, SOAK_CHURN_RATE=5000 (frames/s), SOAK_RSS_SLACK_MB=40
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, parsePing, waitForLine } from '../lab/netns.js';
import { daemonArgv } from '../lab/topology.js';
import { request } from '../src/daemon/control.js';
import type { StatsSnapshot } from '../src/daemon/stats.js';
import { untilListening } from '../lab/wait.js';
import { daemonMB, daemonProcesses } from '../lab/proc.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
const SAMPLE_SECONDS = 5;
const RELOAD_SECONDS = Number(process.env.SOAK_RELOAD_SECONDS ?? 5);
const CHURN_RATE = Number(process.env.SOAK_CHURN_RATE ?? 5000);
const RSS_SLACK_MB = Number(process.env.SOAK_RSS_SLACK_MB ?? 40);
const MACFLOOD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'support', 'macflood.py');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mac = (tenant: number, host: number) => `02:00:00:00:${tenant.toString(16).padStart(2, '0')}:0${host}`;

/** A daemon's VmRSS with its data path process's (lab/proc.ts). */
const rssMb = (pid: number) => daemonMB(pid, 'VmRSS');
/** A daemon's open fds with its data path process's (which holds the ports' and the underlay's). */
const fds = (pid: number) => daemonProcesses(pid).reduce((n, p) => n + readdirSync(`/proc/${p}/fd`).length, 0);

interface Sample {
  t: number;
  rss: number[];
  fds: number[];
  reloads: number;
  redTable: number;
  redRefused: number;
  redAged: number;
}

const mmss = (t: number) => `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;

/** One line on stderr per sample (the table comes at the end, on stdout). */
function progressLine(s: Sample): void {
  const host = (k: number) => `h${k + 1} ${s.rss[k]!.toFixed(1)} MB ${s.fds[k]} fds`;
  process.stderr.write(
    `soak: [${mmss(s.t)}/${mmss(SECONDS)}] ${host(0)}, ${host(1)}; ${s.reloads} reloads; red ${s.redTable} MACs, ${s.redRefused} refused, ${s.redAged} aged\n`,
  );
}

async function main(): Promise<void> {
  const lab = new Lab('vs');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-soak-'));
  const sock = (i: number) => join(dir, `h${i}.sock`);
  const cfgPath = (i: number) => join(dir, `h${i}.yaml`);
  const config = (i: number, variant: 'A' | 'B') => {
    const peer = `10.0.0.${3 - i}`;
    const port = (name: string, t: number) => `ports: [ { tap: ${name}0, netns: ${lab.ns(`${name}${i}`)}, address: 10.${t}.0.${i}/24, mac: "${mac(t, i)}" } ]`;
    const lines = [
      `underlay: { local: 10.0.0.${i}, port: 4789 }`,
      `control: { socket: ${sock(i)} }`,
      'tenants:',
      `  - { name: blue, vni: 5001, flood: [ ${peer} ], ${port('blue', 1)} }`,
      `  - { name: red, vni: 5002, maxMacs: ${variant === 'A' ? 2000 : 1500}, ageing: 5, flood: [ ${peer} ], ${port('red', 2)} }`,
    ];
    if (variant === 'B') lines.push(`  - { name: green, vni: 5003, flood: [ ${peer} ], ${port('green', 3)} }`);
    return lines.join('\n') + '\n';
  };
  const failed: string[] = [];
  try {
    for (const h of ['h1', 'h2']) await lab.addHost(h);
    for (const h of ['blue1', 'blue2', 'red1', 'red2', 'green1', 'green2']) await lab.addHost(h, { ipv6: false });
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    const pids: number[] = [];
    const logs: string[] = ['', ''];
    for (const i of [1, 2]) {
      writeFileSync(cfgPath(i), config(i, 'A'));
      const child = lab.spawn(`h${i}`, process.execPath, daemonArgv(cfgPath(i)));
      child.stderr!.on('data', (d: Buffer) => {
        logs[i - 1] = (logs[i - 1] + d.toString()).slice(-100_000);
      });
      await waitForLine(child, /^vtepd: running/);
      pids.push(child.pid!);
    }
    for (const [name, t] of [
      ['blue', 1],
      ['red', 2],
    ] as const) {
      const p = parsePing((await lab.exec(`${name}1`, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', `10.${t}.0.2`])).stdout);
      if (p.received !== 3) throw new Error(`${name} does not forward before the soak`);
    }
    const stats = (i: number) => request<StatsSnapshot>(sock(i), 'stats');
    const red = (s: StatsSnapshot) => s.tenants.find((t) => t.tenant === 'red')!;
    const start = { rss: pids.map(rssMb), fds: pids.map(fds) };
    console.log(
      `soak: ${SECONDS} s; iperf3 through blue, ${CHURN_RATE} new source MACs/s into red (maxMacs 2000/1500, ageing 5 s), SIGHUP to h1 every ${RELOAD_SECONDS} s (configs A/B); sampling every ${SAMPLE_SECONDS} s`,
    );

    // Load: iperf3 for the whole soak; churn: random sources for the whole soak.
    const srv = lab.spawn('blue2', 'iperf3', ['-s', '-1', '-B', '10.1.0.2']);
    await untilListening(lab, 'blue2', 5201);
    const iperf = lab.exec('blue1', 'iperf3', ['-c', '10.1.0.2', '-t', String(SECONDS), '-J'], (SECONDS + 60) * 1000);
    const churn = lab.exec(
      'red1',
      '/usr/bin/python3',
      [MACFLOOD, 'red0', String(Math.floor(CHURN_RATE * SECONDS)), mac(2, 2), '11', String(CHURN_RATE)],
      (SECONDS + 120) * 1000,
    );

    const t0 = Date.now();
    let variant: 'A' | 'B' = 'A';
    let reloadsSent = 0;
    let nextReload = t0 + RELOAD_SECONDS * 1000;
    let nextSample = t0;
    const samples: Sample[] = [];
    while (Date.now() - t0 < SECONDS * 1000) {
      const now = Date.now();
      if (now >= nextReload) {
        variant = variant === 'A' ? 'B' : 'A';
        writeFileSync(cfgPath(1), config(1, variant));
        process.kill(pids[0]!, 'SIGHUP');
        reloadsSent++;
        nextReload += RELOAD_SECONDS * 1000;
      }
      if (now >= nextSample) {
        // Read /proc first: the stats request itself holds a control connection open for a moment.
        const rss = pids.map(rssMb),
          open = pids.map(fds);
        const s1 = await stats(1);
        samples.push({
          t: Math.round((now - t0) / 1000),
          rss,
          fds: open,
          reloads: reloadsSent,
          redTable: red(s1).fdbLearned,
          redRefused: red(s1).limitRefused,
          redAged: red(s1).aged,
        });
        progressLine(samples[samples.length - 1]!);
        nextSample += SAMPLE_SECONDS * 1000;
      }
      await sleep(100);
    }
    // Back to config A on h1, let the last reload and the churn settle, then the final sample.
    if (variant !== 'A') {
      writeFileSync(cfgPath(1), config(1, 'A'));
      process.kill(pids[0]!, 'SIGHUP');
      reloadsSent++;
    }
    const churnOut = await churn;
    const g = await iperf
      .then((r) => (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9)
      .catch((e: Error) => {
        failed.push(`iperf3: ${e.message.slice(0, 300)}`);
        return NaN;
      });
    await lab.stop(srv).catch(() => undefined);
    await sleep(2000);
    const end = { rss: pids.map(rssMb), fds: pids.map(fds) };
    const s1 = await stats(1);
    samples.push({
      t: Math.round((Date.now() - t0) / 1000),
      rss: end.rss,
      fds: end.fds,
      reloads: reloadsSent,
      redTable: red(s1).fdbLearned,
      redRefused: red(s1).limitRefused,
      redAged: red(s1).aged,
    });

    const w = [5, 9, 9, 7, 7, 8, 9, 10, 9];
    const row = (c: (string | number)[]) => c.map((x, i) => String(x).padStart(w[i]!)).join(' ');
    console.log(row(['t s', 'h1 RSS MB', 'h2 RSS MB', 'h1 fds', 'h2 fds', 'reloads', 'red MACs', 'red refused', 'red aged']));
    for (const s of samples)
      console.log(row([s.t, s.rss[0]!.toFixed(1), s.rss[1]!.toFixed(1), s.fds[0]!, s.fds[1]!, s.reloads, s.redTable, s.redRefused, s.redAged]));

    const warm = samples.filter((s) => s.t <= SECONDS / 3);
    for (const k of [0, 1]) {
      const host = `h${k + 1}`;
      const warmMax = Math.max(...warm.map((s) => s.rss[k]!));
      console.log(
        `${host}: RSS start ${start.rss[k]!.toFixed(1)} MB, highest in the first third ${warmMax.toFixed(1)} MB, end ${end.rss[k]!.toFixed(1)} MB (bound ${(warmMax + RSS_SLACK_MB).toFixed(1)}); fds start ${start.fds[k]}, end ${end.fds[k]}`,
      );
      if (end.rss[k]! > warmMax + RSS_SLACK_MB)
        failed.push(`${host}: RSS grew to ${end.rss[k]!.toFixed(1)} MB (bound ${(warmMax + RSS_SLACK_MB).toFixed(1)} MB)`);
      if (end.fds[k] !== start.fds[k]) failed.push(`${host}: ${end.fds[k]} open fds at the end, ${start.fds[k]} at the start`);
      try {
        process.kill(pids[k]!, 0);
      } catch {
        failed.push(`${host}: the daemon is gone`);
      }
    }
    const s2 = await stats(2);
    const ev = (s: StatsSnapshot) =>
      `${s.datapath.learn_events ?? 0} learn + ${s.datapath.punted_frames ?? 0} miss events, ${s.drops.event_queue_full ?? 0} dropped (event_queue_full)`;
    console.log(`events: h1 ${ev(s1)}; h2 ${ev(s2)}`);
    const st = await request<{ reloads: { ok: number; failed: number } }>(sock(1), 'status');
    console.log(
      `reloads: ${reloadsSent} sent, ${st.reloads.ok} applied, ${st.reloads.failed} failed; iperf3 ${g.toFixed(2)} Gbit/s over ${SECONDS} s; churn: ${churnOut.stdout.trim()}`,
    );
    if (st.reloads.ok !== reloadsSent || st.reloads.failed) failed.push(`reloads: ${st.reloads.ok} applied and ${st.reloads.failed} failed of ${reloadsSent}`);
    for (const [name, t] of [
      ['blue', 1],
      ['red', 2],
    ] as const) {
      const p = parsePing(
        (await lab.exec(`${name}1`, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', `10.${t}.0.2`]).catch((e: Error) => ({ stdout: e.message }))).stdout,
      );
      if (p.received !== 3) failed.push(`${name}: ${p.received}/3 pings after the soak`);
    }
    for (const k of [0, 1]) {
      const counts = new Map<string, number>();
      for (const l of logs[k]!.split('\n')) {
        if (!/"level":(40|50|60)/.test(l)) continue;
        const m = /"msg":"([^"]*)"/.exec(l)?.[1] ?? l.slice(0, 80);
        const c = /"counter":"(\w+)"/.exec(l)?.[1];
        const key = c ? `${m} (${c})` : m;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      console.log(`h${k + 1} warnings logged: ${[...counts].map(([m, n]) => `${n} x ${m}`).join('; ') || 'none'}`);
    }
  } catch (e) {
    failed.push((e as Error).stack ?? String(e));
  } finally {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  if (failed.length) {
    console.error(`soak: FAILED\n  ${failed.join('\n  ')}`);
    process.exit(1);
  }
  console.log('soak: ok (fds back to their start, RSS within its bound, every reload applied, both tenants forward)');
}

await main();
