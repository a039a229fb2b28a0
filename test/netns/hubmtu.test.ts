/**
 * TAPs at MTU 1500 over a 1500-byte underlay, spoke to spoke through a hub: TCP (iperf3)
 * completes through MSS clamping alone (no ICMP sent) and through ICMP too-big feedback
 * alone (no clamping), and a DF ping that does not fit is answered with the inner MTU.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iperf, ping, stats } from '../support/hubspoke.js';
import { hubAndSpoke, type HubSpoke } from '../../lab/topology.js';

describe('TAP MTU above what the tunnel carries (1500 over a 1500-byte underlay)', () => {
  let hs: HubSpoke;
  beforeAll(async () => {
    hs = await hubAndSpoke({
      tag: 'hsm',
      tenants: [
        { name: 'icmp', vni: 5101, subnet: '10.1.1', tapMtu: 1500 },
        { name: 'mss', vni: 5102, subnet: '10.1.2', tapMtu: 1500, mssClamp: 'auto' },
      ],
    });
  });
  afterAll(async () => {
    await hs?.cleanup();
  });
  const sent = async (host: string) => (await stats(hs, host)).switch as unknown as { icmpTooBigSent: number; tooBigFrames: number };

  it('TCP completes through MSS clamping alone (no ICMP needed)', async () => {
    expect(await ping(hs, 'mss', 'a', 'b')).toBe(3);
    const before = (await sent('a')).icmpTooBigSent + (await sent('b')).icmpTooBigSent;
    const g = await iperf(hs, 'mss', 'a', 'b');
    const r = await iperf(hs, 'mss', 'a', 'b', true);
    console.log(`MSS clamping alone: ${g.toFixed(2)} / ${r.toFixed(2)} Gbit/s`);
    expect(g).toBeGreaterThan(0.05);
    expect(r).toBeGreaterThan(0.05);
    expect((await sent('a')).icmpTooBigSent + (await sent('b')).icmpTooBigSent).toBe(before);
  });

  it('TCP completes through ICMP too-big feedback alone (no clamping), and a too-big ping is answered', async () => {
    expect(await ping(hs, 'icmp', 'a', 'b')).toBe(3);
    const g = await iperf(hs, 'icmp', 'a', 'b');
    const r = await iperf(hs, 'icmp', 'a', 'b', true);
    console.log(`ICMP feedback alone: ${g.toFixed(2)} / ${r.toFixed(2)} Gbit/s`);
    expect(g).toBeGreaterThan(0.05);
    expect(r).toBeGreaterThan(0.05);
    // A's TCP learned the path MTU from vtepd's ICMP; after that A's kernel also advertises
    // the lower MSS, so B's sends fit without ICMP of their own.
    expect((await sent('a')).icmpTooBigSent).toBeGreaterThan(0);
    // A DF ping of 1472 bytes (1500 of IP) does not fit: the sender hears "frag needed, mtu 1450".
    const p = await hs.lab
      .exec(hs.endpoint('icmp', 'a'), 'ping', ['-c', '1', '-W', '1', '-M', 'do', '-s', '1472', hs.overlay('icmp', 'b')])
      .catch((e: Error) => ({ stdout: e.message, stderr: '' }));
    expect(p.stdout).toMatch(/mtu = 1450|Frag needed and DF set \(mtu = 1450\)|message too long, mtu=1450/i);
  });
});
