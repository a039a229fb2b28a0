/**
 * underlay.queues: 2 on both hosts of a pair. Each daemon runs two encap/decap thread
 * pairs; every TAP is multi-queue (one fd per queue) and the underlay has two receive
 * sockets in one SO_REUSEPORT group. What a user checks: the TAP says "multi_queue
 * numqueues 2", TCP with many streams goes through both ways with nothing dropped, the
 * per-queue counters show both queues carrying traffic in both directions, and a
 * `vtepd restart` hands every queue of the TAP over (the TAP keeps its queues and its
 * ifindex, and the new daemon's queues carry traffic again).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { parsePing } from '../../lab/netns.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { MAC_1, MAC_2, pair, pinNeighbours, stopPids, vtepd, vtepdJson, type Pair } from '../support/ops.js';

const BLUE = { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
/** Enough streams (and source ports) that neither the TAP's queue choice nor the reuseport
 * hash puts every flow on one queue, short of a 1-in-30000 draw. */
const STREAMS = 16;

describe('underlay.queues: 2 (multi-queue TAPs, a reuseport group, two thread pairs)', () => {
  let p: Pair;
  const successors: number[] = [];
  const sock = (h: number) => p.daemons[h]!.socket;
  const stats = (h: number) => vtepdJson<StatsSnapshot>(p.lab, `h${h + 1}`, ['stats', '--socket', sock(h)]);
  const link = async () => (await p.lab.exec('blue1', 'ip', ['-d', '-o', 'link', 'show', 'blue0'])).stdout;

  beforeAll(async () => {
    p = await pair('vq', [BLUE], () => '', { queues: 2, sourcePorts: STREAMS });
    await pinNeighbours(p.lab, 'blue', 'blue0');
    expect(parsePing((await p.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(3);
  });
  afterAll(async () => {
    await stopPids(successors);
    await p?.cleanup();
  });

  /** iperf3 both ways with many streams; then both queues of both daemons have carried frames. */
  async function bothQueuesCarry(): Promise<void> {
    const before = await Promise.all([stats(0), stats(1)]);
    const r = await p.lab.iperfBothWays('blue1', 'blue2', '10.1.0.2', 2, STREAMS);
    console.log(`queues: 2: iperf3 -P ${STREAMS}: ${r.up.toFixed(2)} Gbit/s up, ${r.down.toFixed(2)} down`);
    expect(r.up).toBeGreaterThan(0);
    expect(r.down).toBeGreaterThan(0);
    const after = await Promise.all([stats(0), stats(1)]);
    for (const h of [0, 1]) {
      const q0 = before[h]!.queues,
        q1 = after[h]!.queues;
      expect(q1.map((q) => q.queue)).toEqual([0, 1]);
      for (const q of [0, 1]) {
        // Frames this queue's encap thread read from the TAP, packets its decap thread took
        // from its own receive socket, during the run.
        expect(q1[q]!.encapFrames - (q0[q]?.encapFrames ?? 0), `h${h + 1} queue ${q} encap`).toBeGreaterThan(0);
        expect(q1[q]!.decapPackets - (q0[q]?.decapPackets ?? 0), `h${h + 1} queue ${q} decap`).toBeGreaterThan(0);
      }
      // Both queues' numbers add up to the daemon's totals.
      expect(q1.reduce((a, q) => a + q.encapFrames, 0)).toBe(after[h]!.datapath.tap_rx_frames);
      expect(q1.reduce((a, q) => a + q.decapPackets, 0)).toBe(after[h]!.datapath.underlay_rx_packets);
      // The send sockets are shared by both encap threads: every UDP_SEGMENT train must have
      // been taken (a socket left with checksums off would refuse them), nothing malformed.
      const d = after[h]!;
      expect(d.datapath.underlay_gso_fallback, `h${h + 1} trains refused`).toBe(0);
      expect(d.datapath.underlay_gso_sends).toBeGreaterThan(before[h]!.datapath.underlay_gso_sends);
      for (const k of ['tap_rx_error', 'tap_tx_error', 'underlay_rx_error', 'underlay_tx_error', 'gso_bad', 'gro_csum_bad', 'vxlan_unknown_vni'])
        expect(d.drops[k] ?? d.datapath[k], `h${h + 1} ${k}`).toBe(0);
    }
  }

  it('opens each TAP with two queues and spreads flows over both thread pairs, both ways', async () => {
    expect(await link()).toMatch(/multi_queue numqueues 2 /);
    await bothQueuesCarry();
    const table = (await vtepd(p.lab, 'h1', ['stats', '--socket', sock(0)])).stdout;
    expect(table).toMatch(/^QUEUE\s+FRAMES FROM PORTS\s+PACKETS FROM UNDERLAY$/m);
    expect((await vtepd(p.lab, 'h1', ['status', '--socket', sock(0)])).stdout).toMatch(/^vtepd .* underlay 10\.0\.0\.1 udp\/4789 \(MTU 1500, 2 queues\)$/m);
  });

  it('hands every queue of the TAP over on vtepd restart', async () => {
    const idx = Number(/^(\d+):/.exec(await link())?.[1]);
    const r = await vtepdJson<{ oldPid: number; newPid: number; gapMs: number }>(p.lab, 'h1', ['restart', '--socket', sock(0)]);
    successors.push(r.newPid);
    const l = await link();
    expect(Number(/^(\d+):/.exec(l)?.[1])).toBe(idx);
    expect(l).toMatch(/multi_queue numqueues 2 /);
    expect(parsePing((await p.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(3);
    await bothQueuesCarry();
  });

  it('applies a changed underlay.queues on vtepd restart (a reload refuses it)', async () => {
    const file = p.daemons[0]!.configPath;
    writeFileSync(file, readFileSync(file, 'utf8').replace('queues: 2', 'queues: 1'));
    const refused = await vtepd(p.lab, 'h1', ['reload', '--socket', sock(0)]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/underlay\.queues: is 2 in the running daemon; changing the underlay needs a restart/);
    const idx = Number(/^(\d+):/.exec(await link())?.[1]);
    const r = await vtepdJson<{ newPid: number }>(p.lab, 'h1', ['restart', '--socket', sock(0)]);
    successors.push(r.newPid);
    const s = await stats(0);
    expect(s.queues.map((q) => q.queue)).toEqual([0]);
    // Same TAP; the queue the new daemon does not read was let go.
    const l = await link();
    expect(Number(/^(\d+):/.exec(l)?.[1])).toBe(idx);
    expect(l).toMatch(/multi_queue numqueues 1 /);
    expect(parsePing((await p.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(3);
    const t = await p.lab.iperfBothWays('blue1', 'blue2', '10.1.0.2', 1, 4);
    expect(t.up).toBeGreaterThan(0);
    expect(t.down).toBeGreaterThan(0);
  });
});
