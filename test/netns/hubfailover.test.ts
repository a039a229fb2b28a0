/**
 * Two hubs, spokes A and B: the active hub is killed under a running ping; the spokes move
 * to the other hub and the ping resumes within deadInterval + 1 s (measured from ping -D
 * timestamps); the killed hub comes back, nothing is stuck, and killing the other one
 * moves the spokes back. Twice: without keys, and with identities (every hub and spoke has a
 * key, tenants encrypted): the restarted hub has lost its sessions, and the spokes
 * handshake with it again before it can take over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../lab/wait.js';
import { longestGap, ping, sleep, status } from '../support/hubspoke.js';
import { hubAndSpoke, type HubSpoke } from '../../lab/topology.js';
import { untilText } from '../../lab/wait.js';

describe.each([
  { name: 'plain', secure: false },
  { name: 'authenticated and encrypted', secure: true },
])('two hubs ($name): failover under a running ping', ({ secure }) => {
  let hs: HubSpoke;
  const DEAD = 3;
  beforeAll(async () => {
    hs = await hubAndSpoke({ tag: secure ? 'hsk' : 'hsf', hubs: 2, deadInterval: DEAD, ...(secure ? { secure: {} } : {}) });
  });
  afterAll(async () => {
    await hs?.cleanup();
  });

  async function outage(kill: string, restartAfterMs: number | null): Promise<{ gapMs: number; replies: number }> {
    const p = hs.lab.spawn(hs.endpoint('blue', 'a'), 'ping', ['-D', '-i', '0.1', '-W', '1', '-w', '11', hs.overlay('blue', 'b')]);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = new Promise((r) => p.once('exit', r));
    // Kill the hub under traffic: wait until the ping is being answered.
    await untilText('the ping to be answered', () => out, /bytes from/);
    await hs.lab.stop(hs.daemons.get(kill)!.child, 'SIGKILL');
    if (restartAfterMs !== null) {
      await sleep(restartAfterMs);
      await hs.start(kill);
    }
    await done;
    return longestGap(out);
  }

  it(`the spokes move to the surviving hub and the ping resumes within deadInterval + 1 s; the restarted hub takes over again later`, async () => {
    expect(await ping(hs, 'blue', 'a', 'b')).toBe(3);
    const first = await outage('hub1', 6000);
    console.log(`failover hub1 -> hub2: longest ping gap ${first.gapMs.toFixed(0)} ms (deadInterval ${DEAD} s), ${first.replies} replies`);
    expect(first.gapMs).toBeLessThanOrEqual((DEAD + 1) * 1000);
    for (const s of ['a', 'b']) {
      const st = await status(hs, s);
      expect(st.overlay.hubs.map((h) => [h.address, h.active])).toEqual([
        ['10.0.0.10', false],
        ['10.0.0.11', true],
      ]);
    }
    // Nothing stuck: hub1 is back and alive for both spokes; when hub2 dies, traffic moves back.
    for (const s of ['a', 'b'])
      await until(
        `hub1 alive at ${s}`,
        () => status(hs, s),
        (st) => st.overlay.hubs[0]!.alive,
        10_000,
        200,
      );
    // With keys, hub1 came back without its sessions: the spokes handshook with it again.
    if (secure) for (const s of ['a', 'b']) expect((await status(hs, s)).overlay.secure!.peers[0]!.handshakes).toBeGreaterThanOrEqual(2);
    const second = await outage('hub2', null);
    console.log(`failover hub2 -> hub1 (restarted): longest ping gap ${second.gapMs.toFixed(0)} ms`);
    expect(second.gapMs).toBeLessThanOrEqual((DEAD + 1) * 1000);
    expect(await ping(hs, 'blue', 'b', 'a')).toBe(3);
  });
});
