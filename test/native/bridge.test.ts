import { expect, it } from 'vitest';
import { bridgeBehaviours } from '../support/bridge-behaviour.js';
import { NativeHarness, VTEP_A } from '../support/harness.js';
import { frame, mac } from '../support/frames.js';

bridgeBehaviours('C fast path', () => NativeHarness.create());
bridgeBehaviours('C fast path in its own process', () => NativeHarness.create({ ownProcess: true }));

it('counts fast-path batches, so frames per batch can be read from the counters', async () => {
  const h = await NativeHarness.create();
  try {
    h.addTenant({ name: 'blue', vni: 5001, flood: [VTEP_A], fdb: [{ mac: mac(0x77), vtep: VTEP_A }] });
    h.addPort('blue', 'p1');
    // 64 frames written before the encap thread wakes: they are read in far fewer batches.
    for (let i = 0; i < 64; i++) h.fromPort('p1', frame(mac(0x77), mac(0x11), `b${i}`));
    for (let i = 0; i < 16; i++) h.fromVtep(VTEP_A, 5001, frame(mac(0x11), mac(0x77), `r${i}`));
    expect((await h.takeWire()).length).toBe(64);
    const c = h.dp.stats().counters;
    expect(c.tap_rx_frames).toBe(64);
    expect(c.encap_batches).toBeGreaterThanOrEqual(1);
    expect(c.encap_batches).toBeLessThanOrEqual(64);
    expect(c.decap_batches).toBeGreaterThanOrEqual(1);
    expect(c.decap_batches).toBeLessThanOrEqual(c.underlay_rx_packets);
  } finally {
    await h.close();
  }
});
