/**
 * The data path in a process of its own (#18, step 1): two hosts whose daemons run with
 * VTEPD_DP_PROCESS=1. Tenant traffic (ping, TCP both ways) goes through and the counters
 * move; the status names the data path's process, a child of the daemon running vtepd-dp,
 * small (VmRSS under 32 MB) where the daemon is not, and holding the fast-path threads
 * (vtepd-encap, vtepd-decap: none left in the daemon). `vtepd restart` hands over to a
 * successor with a data path process of its own, the old one gone. Killing that process makes
 * the daemon log it by PID and exit 1, its TAP gone with it (step 1: no respawn yet); so does
 * stopping it (SIGSTOP): the daemon's next request to it waits 5 s, ends it, and exits 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { parsePing } from '../../lab/netns.js';
import { twoHostsVtepd, type Mesh } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import type { StatusResult } from '../../src/cli/table.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { stopPids, vtepd, vtepdJson } from '../support/ops.js';

const BLUE = { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] };
const kB = (pid: number, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
/** The process is gone, or a zombie waiting to be reaped (state Z in /proc/PID/stat). */
const ended = (pid: number) => !existsSync(`/proc/${pid}`) || / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ')'));
/** The fast-path threads of a process, by the names the C gives them (pthread_setname_np). */
const fastPathThreads = (pid: number) =>
  readdirSync(`/proc/${pid}/task`)
    .map((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim())
    .filter((name) => /^vtepd-(en|de)cap/.test(name))
    .sort();

/** The lab daemon's exit status once it has exited (or the signal that ended it). */
const exitCode = (d: Mesh['daemons'][number]) =>
  until(
    'the daemon to exit',
    async () => d.child.exitCode ?? (d.child.signalCode ? `signal ${d.child.signalCode}` : null),
    (c) => c !== null,
  );
/** h1's TAP blue0, gone with its daemon. */
const tapGone = (m: Mesh) =>
  until(
    'the TAP blue0 of h1 to be gone',
    async () => (await m.lab.exec('blue1', 'ip', ['-o', 'link', 'show']).catch((e: Error) => ({ stdout: e.message }))).stdout,
    (out) => !/ blue0[:@]/.test(out),
  );

describe('VTEPD_DP_PROCESS=1: the data path in a process of its own', () => {
  let m: Mesh;
  /** Daemons a restart started (not children of the lab): stopped by PID at the end. */
  const successors: number[] = [];
  const sock = (h: number) => m.daemons[h]!.socket;
  const status = (h: number) => vtepdJson<StatusResult>(m.lab, `h${h + 1}`, ['status', '--socket', sock(h)]);
  const stats = (h: number) => vtepdJson<StatsSnapshot>(m.lab, `h${h + 1}`, ['stats', '--socket', sock(h)]);

  beforeAll(async () => {
    m = await twoHostsVtepd([BLUE], { tag: 'vdp', env: { VTEPD_DP_PROCESS: '1' } });
    await untilPings(m.lab, 'blue1', '10.1.0.2');
  });
  afterAll(async () => {
    await stopPids(successors);
    await m?.cleanup();
  });

  it('carries tenant traffic, and the counters move', async () => {
    const before = await Promise.all([stats(0), stats(1)]);
    expect(parsePing((await m.lab.exec('blue1', 'ping', ['-c', '5', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(5);
    const r = await m.lab.iperfBothWays('blue1', 'blue2', '10.1.0.2', 1);
    console.log(`VTEPD_DP_PROCESS=1: iperf3 1 s: ${r.up.toFixed(2)} Gbit/s up, ${r.down.toFixed(2)} down`);
    expect(r.up).toBeGreaterThan(0);
    expect(r.down).toBeGreaterThan(0);
    const after = await Promise.all([stats(0), stats(1)]);
    for (const h of [0, 1]) {
      for (const k of ['tap_rx_frames', 'tap_tx_frames', 'underlay_rx_packets', 'underlay_tx_packets'])
        expect(after[h]!.datapath[k], `h${h + 1} ${k}`).toBeGreaterThan(before[h]!.datapath[k] ?? 0);
      expect(after[h]!.peers[0]!.rxPackets, `h${h + 1} peer rx`).toBeGreaterThan(before[h]!.peers[0]!.rxPackets);
    }
  });

  it("names the data path's process in the status: a small child of the daemon, holding the fast-path threads", async () => {
    for (const h of [0, 1]) {
      const daemon = m.daemons[h]!.child.pid!;
      const s = await status(h);
      expect(s.pid).toBe(daemon);
      const child = s.datapath?.process;
      expect(typeof child, `h${h + 1} datapath.process`).toBe('number');
      expect(child).not.toBe(daemon);
      const pid = child!;
      expect(readlinkSync(`/proc/${pid}/exe`)).toMatch(/\/vtepd-dp$/);
      expect(Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])).toBe(daemon);
      const rss = { child: kB(pid, 'VmRSS'), daemon: kB(daemon, 'VmRSS') };
      console.log(`h${h + 1}: data path process ${pid} VmRSS ${rss.child} kB, daemon ${daemon} ${rss.daemon} kB`);
      expect(rss.child).toBeLessThan(32 * 1024);
      expect(rss.daemon).toBeGreaterThan(rss.child);
      expect(fastPathThreads(pid)).toEqual(['vtepd-decap', 'vtepd-encap']);
      expect(fastPathThreads(daemon)).toEqual([]);
      expect((await vtepd(m.lab, `h${h + 1}`, ['status', '--socket', sock(h)])).stdout).toMatch(new RegExp(`^data path: process ${pid}$`, 'm'));
    }
  });

  it('hands over on vtepd restart: the successor has a data path process of its own, the old one ends', async () => {
    const old = (await status(1)).datapath!.process!;
    const r = await vtepdJson<{ oldPid: number; newPid: number; gapMs: number }>(m.lab, 'h2', ['restart', '--socket', sock(1)]);
    successors.push(r.newPid);
    const s = await until(
      "h2's successor to answer",
      () => status(1),
      (x) => x.pid === r.newPid,
    );
    const child = s.datapath?.process;
    expect(typeof child).toBe('number');
    expect(child).not.toBe(old);
    expect(Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1])).toBe(r.newPid);
    expect(fastPathThreads(child!)).toEqual(['vtepd-decap', 'vtepd-encap']);
    await until(`the old data path process ${old} to end`, async () => ended(old));
    expect(parsePing((await m.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(3);
  });

  it('exits 1 when the data path process dies, saying which, and its TAP goes', async () => {
    const d = m.daemons[0]!;
    const pid = (await status(0)).datapath!.process!;
    process.kill(pid, 'SIGKILL');
    expect(await exitCode(d)).toBe(1);
    expect(d.stderr()).toMatch(new RegExp(`data path process ${pid} killed by signal 9`));
    await tapGone(m);
  });
});

describe('VTEPD_DP_PROCESS=1: a data path process that stops answering', () => {
  let m: Mesh;
  beforeAll(async () => {
    m = await twoHostsVtepd([BLUE], { tag: 'vdps', env: { VTEPD_DP_PROCESS: '1' } });
    await untilPings(m.lab, 'blue1', '10.1.0.2');
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('is ended after 5 s by the daemon, which says so and exits 1, its TAP gone', async () => {
    const d = m.daemons[0]!;
    const pid = (await vtepdJson<StatusResult>(m.lab, 'h1', ['status', '--socket', d.socket])).datapath!.process!;
    process.kill(pid, 'SIGSTOP');
    expect(await exitCode(d)).toBe(1);
    expect(d.stderr()).toMatch(new RegExp(`data path process ${pid} did not answer for 5 s and was ended \\(SIGKILL\\)`));
    await until(`the stopped data path process ${pid} to end`, async () => ended(pid));
    await tapGone(m);
  });
});
