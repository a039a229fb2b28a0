/**
 * Restart without dropping traffic: `vtepd restart` starts a new process that takes the
 * TAPs (and, where the build can, the underlay sockets) and the FDB over from the running
 * one over SCM_RIGHTS. Under a running ping (0.01 s): less than one second's worth lost,
 * the TAP never disappears (same ifindex, no RTM_DELLINK), learned and runtime entries are
 * still there (the first frames after the pause are not flooded).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { parsePing } from '../../lab/netns.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { whereText, type FdbRow } from '../../src/core/fdb.js';
import type { StatusResult } from '../../src/cli/table.js';
import { MAC_1, MAC_2, pair, pinNeighbours, stopPids, vtepd, vtepdJson, type Pair } from '../support/ops.js';
import { untilText } from '../../lab/wait.js';

const BLUE = { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
const RUNTIME_MAC = '02:00:00:00:cc:01';

describe('vtepd restart (takeover) under a running ping', () => {
  let p: Pair;
  let sock: string;
  /** Daemons the restarts started (not children of the lab): stopped by PID at the end. */
  const successors: number[] = [];
  const json = <T>(args: string[]) => vtepdJson<T>(p.lab, 'h1', [...args, '--socket', sock]);
  const ifindex = async () => Number(/^(\d+):/.exec((await p.lab.exec('blue1', 'ip', ['-o', 'link', 'show', 'blue0'])).stdout)?.[1]);

  beforeAll(async () => {
    p = await pair('vk', [BLUE]);
    sock = p.daemons[0]!.socket;
    await pinNeighbours(p.lab, 'blue', 'blue0');
    expect(parsePing((await p.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(3);
    await json(['fdb', 'add', '--tenant', 'blue', '--mac', RUNTIME_MAC, '--vtep', '10.0.0.2']);
  });
  afterAll(async () => {
    await stopPids(successors);
    await p?.cleanup();
  });

  async function restartUnderPing(format: 'json' | 'table') {
    const before = await json<StatusResult>(['status']);
    const idx = await ifindex();
    const monitor: ChildProcess = p.lab.spawn('blue1', 'ip', ['-o', 'monitor', 'link']);
    let events = '';
    monitor.stdout!.on('data', (d: Buffer) => {
      events += d.toString();
    });
    const ping = p.lab.spawn('blue1', 'ping', ['-i', '0.01', '-c', '300', '-W', '1', '10.1.0.2']);
    let pingOut = '';
    ping.stdout!.on('data', (d: Buffer) => {
      pingOut += d.toString();
    });
    const pingDone = new Promise((r) => ping.once('exit', r));
    // Restart under traffic: wait until the ping is being answered.
    await untilText('the ping to be answered', () => pingOut, /bytes from/);
    let newPid: number;
    let gapMs: number | null;
    if (format === 'json') {
      const r = await json<{ oldPid: number; newPid: number; gapMs: number }>(['restart']);
      expect(r.oldPid).toBe(before.pid);
      ({ newPid, gapMs } = r);
    } else {
      const r = await vtepd(p.lab, 'h1', ['restart', '--socket', sock]);
      const m = /^restarted: pid (\d+) -> (\d+), forwarding paused (\d+) ms\n$/.exec(r.stdout);
      expect(m, r.stdout + r.stderr).not.toBeNull();
      expect(Number(m![1])).toBe(before.pid);
      newPid = Number(m![2]);
      gapMs = Number(m![3]);
    }
    successors.push(newPid);
    await pingDone;
    await p.lab.stop(monitor);
    const result = parsePing(pingOut, 300);
    const after = await json<StatusResult>(['status']);
    return { before, after, idx, events, result, newPid, gapMs };
  }

  it('keeps the TAP, loses under a second of pings, keeps the FDB (json output)', async () => {
    const old = p.daemons[0]!.child;
    const oldExit = new Promise<number | null>((r) => (old.exitCode !== null ? r(old.exitCode) : old.once('exit', r)));
    const r = await restartUnderPing('json');
    expect(r.after.pid).toBe(r.newPid);
    expect(r.after.takeover?.fromPid).toBe(r.before.pid);
    expect(r.gapMs).toBe(r.after.takeover?.gapMs);
    console.log(`takeover: forwarding paused ${r.gapMs} ms; ping ${r.result.sent} sent, ${r.result.received} received`);
    expect(r.result.sent).toBe(300);
    expect(r.result.sent - r.result.received).toBeLessThan(100);
    // The TAP never went away: same ifindex, no deletion seen by rtnetlink.
    expect(await ifindex()).toBe(r.idx);
    expect(r.after.ports.map((x) => [x.tap, x.ifindex])).toEqual(r.before.ports.map((x) => [x.tap, x.ifindex]));
    expect(r.events).not.toMatch(/Deleted.*blue0/);
    // The FDB came along: learned entries and the runtime static one.
    const rows = await json<FdbRow[]>(['fdb', 'show', '--tenant', 'blue']);
    const by = Object.fromEntries(rows.map((x) => [x.mac, `${whereText(x.where)} ${x.type}`]));
    expect(by).toEqual({ [MAC_1]: 'port blue0 learned', [MAC_2]: 'vtep 10.0.0.2 learned', [RUNTIME_MAC]: 'vtep 10.0.0.2 static' });
    // The new daemon found every destination in its cache: nothing was flooded.
    const stats = await json<StatsSnapshot>(['stats']);
    expect(stats.tenants[0]!.flooded).toBe(0);
    expect(await oldExit).toBe(0);
  });

  it('does it again from the new daemon (table output)', async () => {
    const r = await restartUnderPing('table');
    expect(r.after.pid).toBe(r.newPid);
    expect(r.result.sent - r.result.received).toBeLessThan(100);
    expect(await ifindex()).toBe(r.idx);
    expect(r.events).not.toMatch(/Deleted.*blue0/);
    expect(parsePing((await p.lab.exec('blue1', 'ping', ['-c', '2', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(2);
  });
});
