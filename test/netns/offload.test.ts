/**
 * The offloads (TSO/GSO super-frames from the TAP, UDP_SEGMENT trains, UDP GRO, coalesced
 * writes) against the kernel's own VXLAN device: h1 runs vtepd (tenant blue, TAP blue0 in
 * endpoint namespace blue1), h2 the kernel's VXLAN on a bridge with a veth to endpoint
 * kvm2. iperf3 TCP both ways with TSO on and off at both endpoints, pings around the MTU
 * with DF and larger ones without DF (fragmented inside the overlay), and the counters
 * that show which path carried the traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, iperfGbps, parsePing, run } from '../../lab/netns.js';
import { UNDERLAY, addKernelBridgePeer, meshConfig, startDaemon, type Daemonised } from '../../lab/topology.js';
import { CLI } from '../../lab/topology.js';
import { untilListening } from '../../lab/wait.js';

describe('offloads: vtepd <-> kernel VXLAN with TSO on and off', () => {
  const lab = new Lab('vo');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-o-'));
  let daemon: Daemonised;

  async function counters(): Promise<Record<string, number>> {
    const r = await run(process.execPath, [CLI, 'stats', '--socket', daemon.socket, '--json']);
    const j = JSON.parse(r.stdout) as { datapath: Record<string, unknown> };
    return (j.datapath.counters ?? j.datapath) as Record<string, number>;
  }

  /** TSO (and with it the checksum offload it needs) at both endpoints: vtepd's TAP and the kernel side's veth. */
  async function tso(on: boolean): Promise<void> {
    const v = on ? 'on' : 'off';
    await lab.exec('blue1', 'ethtool', ['-K', 'blue0', 'tso', v]);
    await lab.exec('kvm2', 'ethtool', ['-K', 'eth0', 'tx', 'on', 'tso', v]);
  }

  async function iperf(reverse: boolean): Promise<number> {
    const srv = lab.spawn('kvm2', 'iperf3', ['-s', '-1', '-B', '10.1.0.2']);
    await untilListening(lab, 'kvm2', 5201);
    try {
      const args = ['-c', '10.1.0.2', '-t', '2', '-J', ...(reverse ? ['-R'] : [])];
      return iperfGbps((await lab.exec('blue1', 'iperf3', args, 30_000)).stdout);
    } finally {
      await lab.stop(srv);
    }
  }

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.addHost('blue1', { ipv6: false });
    await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
    // The kernel finishes inner checksums on vx0, so the endpoint keeps its TSO and checksum offload.
    await addKernelBridgePeer(lab, {
      host: 'h2',
      endpoint: 'kvm2',
      vni: 5001,
      local: UNDERLAY.h2,
      remote: UNDERLAY.h1,
      address: '10.1.0.2/24',
      mtu: 1450,
      finishChecksums: 'vxlan',
    });
    daemon = await startDaemon(
      lab,
      'h1',
      meshConfig(lab, 0, [UNDERLAY.h1, UNDERLAY.h2], [{ name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'] }]),
      dir,
    );
    const a = parsePing((await lab.exec('blue1', 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(a.received).toBe(2);
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens the TAP with offloads: TSO and checksum offload on, gso_max_segs sized to one UDP_SEGMENT train', async () => {
    const k = (await lab.exec('blue1', 'ethtool', ['-k', 'blue0'])).stdout;
    expect(k).toMatch(/tcp-segmentation-offload: on/);
    expect(k).toMatch(/tx-checksumming: on/);
    const d = (await lab.exec('blue1', 'ip', ['-d', 'link', 'show', 'blue0'])).stdout;
    expect(d).toMatch(/gso_max_segs 44\b/); // 65507 / (8 + 14 + 1450)
  });

  for (const on of [true, false]) {
    it(`moves TCP both ways with TSO ${on ? 'on' : 'off'} at both endpoints`, async () => {
      await tso(on);
      const before = await counters();
      const up = await iperf(false);
      const mid = await counters();
      const down = await iperf(true);
      const after = await counters();
      expect(up).toBeGreaterThan(0.05);
      expect(down).toBeGreaterThan(0.05);
      const d = (k: string, a = before, b = mid) => (b[k] ?? 0) - (a[k] ?? 0);
      if (on) {
        // vtepd -> kernel: super-frames from the TAP, split into UDP_SEGMENT trains.
        expect(d('tap_rx_gso_frames')).toBeGreaterThan(100);
        expect(d('underlay_gso_sends')).toBeGreaterThan(100);
        expect(d('gso_segments')).toBeGreaterThan(d('tap_rx_gso_frames'));
      } else {
        expect(d('tap_rx_gso_frames')).toBe(0);
      }
      // kernel -> vtepd: every inner TCP checksum good (none written as they came) and,
      // where segments of a flow came back to back, coalesced into GSO writes.
      expect(d('gro_csum_bad', mid, after)).toBe(0);
      expect(d('gro_frames', mid, after)).toBeGreaterThan(0);
      for (const k of ['gso_bad', 'underlay_tx_error', 'underlay_tx_too_big', 'tap_tx_error']) expect(after[k] ?? 0, k).toBe(0);
    });
  }

  it('carries DF pings of 1420..1422 bytes (up to the 1450 MTU) both ways and refuses 1423 locally', async () => {
    await tso(true);
    for (const size of [1420, 1421, 1422]) {
      for (const [from, to] of [
        ['blue1', '10.1.0.2'],
        ['kvm2', '10.1.0.1'],
      ] as const) {
        const r = parsePing((await lab.exec(from, 'ping', ['-M', 'do', '-s', String(size), '-c', '2', '-i', '0.2', '-W', '2', to])).stdout);
        expect(r.received, `${from} -s ${size}`).toBe(2);
      }
    }
    await expect(lab.exec('blue1', 'ping', ['-M', 'do', '-s', '1423', '-c', '1', '-W', '1', '10.1.0.2'])).rejects.toThrow(/message too long|mtu/i);
  });

  it('carries larger pings without DF, fragmented inside the overlay (1423, 2000, 8000, 30000 bytes)', async () => {
    for (const size of [1423, 2000, 8000, 30000]) {
      for (const [from, to] of [
        ['blue1', '10.1.0.2'],
        ['kvm2', '10.1.0.1'],
      ] as const) {
        const r = parsePing((await lab.exec(from, 'ping', ['-M', 'dont', '-s', String(size), '-c', '2', '-i', '0.2', '-W', '2', to])).stdout);
        expect(r.received, `${from} -s ${size}`).toBe(2);
      }
    }
  });
});
