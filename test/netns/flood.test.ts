/**
 * MAC flood: 100 000 frames with random source MACs sent into one tenant (blue) from its
 * endpoint on h1, toward blue's MAC on h2 (known unicast: the fast path forwards them, so
 * both daemons see every new source, h1 from its port and h2 from VTEP h1). Blue's table
 * on each host stops at its maxMacs and the refusals are counted; tenant red keeps
 * forwarding (a ping runs through the flood); the daemons' memory stays bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, parsePing, waitForLine } from '../../lab/netns.js';
import { CLI } from '../../lab/topology.js';
import { request } from '../../src/daemon/control.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import type { FdbRow } from '../../src/core/fdb.js';
import { untilSteady } from '../../lab/wait.js';

const MACFLOOD = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'macflood.py');
const FRAMES = 100_000;
const MAX_MACS = 1000;
/** Frames a second: paced so that the TAP's queue (500 frames) does not overflow while the daemon reads. */
const RATE = 25_000;
const mac = (tenant: number, host: number) => `02:00:00:00:${tenant.toString(16).padStart(2, '0')}:0${host}`;

/** Resident set size of a process, from /proc/PID/status (kB -> MB). */
function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe('100 000 random source MACs into one tenant', () => {
  const lab = new Lab('vf');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-flood-'));
  const sock = (i: number) => join(dir, `h${i}.sock`);
  const pids: number[] = [];

  const config = (i: number, peer: string) => `underlay: { local: 10.0.0.${i}, port: 4789 }
control: { socket: ${sock(i)} }
tenants:
  - name: blue
    vni: 5001
    maxMacs: ${MAX_MACS}
    flood: [ ${peer} ]
    ports: [ { tap: blue0, netns: ${lab.ns(`blue${i}`)}, address: 10.1.0.${i}/24, mac: "${mac(1, i)}" } ]
  - name: red
    vni: 5002
    flood: [ ${peer} ]
    ports: [ { tap: red0, netns: ${lab.ns(`red${i}`)}, address: 10.2.0.${i}/24, mac: "${mac(2, i)}" } ]
`;

  beforeAll(async () => {
    for (const h of ['h1', 'h2']) await lab.addHost(h);
    for (const h of ['blue1', 'blue2', 'red1', 'red2']) await lab.addHost(h, { ipv6: false });
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    for (const [i, peer] of [
      [1, '10.0.0.2'],
      [2, '10.0.0.1'],
    ] as const) {
      const f = join(dir, `h${i}.yaml`);
      writeFileSync(f, config(i, peer));
      const child = lab.spawn(`h${i}`, process.execPath, [CLI, 'run', '--config', f]);
      await waitForLine(child, /^vtepd: running/);
      pids.push(child.pid!);
    }
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops each table at maxMacs, counts the refusals, keeps red forwarding, and keeps RSS bounded', async () => {
    for (const t of ['blue', 'red']) {
      const warm = parsePing((await lab.exec(`${t}1`, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', t === 'blue' ? '10.1.0.2' : '10.2.0.2'])).stdout);
      expect(warm.received).toBe(2);
    }
    const rssBefore = pids.map(rssMb);
    const before = await Promise.all([1, 2].map((i) => request<StatsSnapshot>(sock(i), 'stats')));

    const ping = lab.exec('red1', 'ping', ['-c', '200', '-i', '0.02', '-W', '2', '10.2.0.2'], 60_000);
    const sent = await lab.exec('blue1', '/usr/bin/python3', [MACFLOOD, 'blue0', String(FRAMES), mac(1, 2), '7', String(RATE)], 120_000);
    expect(sent.stdout).toMatch(new RegExp(`^sent ${FRAMES} `));
    console.log(sent.stdout.trim());
    const redPing = parsePing((await ping).stdout, 200);
    // Let the daemons drain what the flood queued (their tables and counters stop moving), then look.
    const drained = () =>
      Promise.all(
        [1, 2].map(async (i) => {
          const s = await request<StatsSnapshot>(sock(i), 'stats');
          return [s.tenants, s.drops, s.ports.map((p) => p.rxPackets), s.datapath.underlay_rx_packets];
        }),
      );
    await untilSteady('the daemons to drain the flood', drained);

    const after = await Promise.all([1, 2].map((i) => request<StatsSnapshot>(sock(i), 'stats')));
    const tables = await Promise.all([1, 2].map((i) => request<FdbRow[]>(sock(i), 'fdb.show', { tenant: 'blue' })));
    const blue = (s: StatsSnapshot) => s.tenants.find((t) => t.tenant === 'blue')!;
    const rows = [0, 1].map((k) => ({
      host: `h${k + 1}`,
      table: tables[k]!.length,
      learned: blue(after[k]!).learned - blue(before[k]!).learned,
      refused: blue(after[k]!).limitRefused - blue(before[k]!).limitRefused,
      framesIn:
        k === 0
          ? after[k]!.ports.find((p) => p.port === 'blue0')!.rxPackets - before[k]!.ports.find((p) => p.port === 'blue0')!.rxPackets
          : (after[k]!.datapath.underlay_rx_packets ?? 0) - (before[k]!.datapath.underlay_rx_packets ?? 0),
      eventQueueFull: (after[k]!.drops.event_queue_full ?? 0) - (before[k]!.drops.event_queue_full ?? 0),
      rssBeforeMb: Math.round(rssBefore[k]!),
      rssAfterMb: Math.round(rssMb(pids[k]!)),
    }));
    console.table(rows);
    for (const r of rows) {
      expect(r.table, r.host).toBe(MAX_MACS);
      // How many of the frames the TAP queue let through depends on how busy the machine is
      // (that is throughput, not what this test is about); what matters is that far more
      // new sources than the limit reached the daemon, and that every one of them beyond the
      // limit was refused and counted, not allocated (a few may be lost with the events the
      // queue could not hold, and are counted there). On h2 framesIn also holds the red
      // ping and the liveness traffic: 2 % of slack covers them.
      expect(r.framesIn, r.host).toBeGreaterThan(10 * MAX_MACS);
      expect(r.refused, r.host).toBeGreaterThanOrEqual(0.98 * (r.framesIn - MAX_MACS - r.eventQueueFull));
      // A generous absolute bound: the daemon with a full 1000-entry table, not 100 000 entries.
      expect(r.rssAfterMb, r.host).toBeLessThan(300);
      expect(r.rssAfterMb - r.rssBeforeMb, r.host).toBeLessThan(100);
    }
    expect(redPing.received, 'red kept forwarding through the flood').toBeGreaterThanOrEqual(redPing.sent - 2);
    const redAfter = parsePing((await lab.exec('red1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.2.0.2'])).stdout);
    expect(redAfter.received).toBe(3);
    const blueAfter = parsePing((await lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(blueAfter.received, 'blue itself still forwards between the MACs it knows').toBe(3);
    for (const pid of pids) process.kill(pid, 0); // both still running (throws if not)
  });
});
