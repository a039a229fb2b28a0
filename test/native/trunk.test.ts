/**
 * Trunks in the fast path (#15), on a socketpair: a reader that leaves the 802.1Q tag in the
 * frame (a packet socket gets it from the kernel as PACKET_AUXDATA instead; test/netns/
 * trunk.test.ts covers that with real interfaces). A frame tagged 100 enters tenant blue and
 * goes over VXLAN with blue's VNI and no tag inside; one tagged 200 enters red; frames from
 * the tunnel come out with their tenant's tag. An unmapped VLAN, an untagged frame without a
 * native tenant and a double tag are dropped, each counted by name on the trunk.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { BCAST, frame, mac } from '../support/frames.js';
import { NativeHarness, VTEP_A, VTEP_B } from '../support/harness.js';
import { testAddon } from '../support/test-addon.js';
import type { WirePacket } from '../support/fake-datapath.js';
import { native } from '../../src/native/addon.js';
import { until as waitUntil } from '../../lab/wait.js';

const BLUE = 5001;
const RED = 5002;
const M1 = mac(1);
const M2 = mac(2);
const R1 = mac(0x91);

let h: NativeHarness;
let sw: number; /* our end of the trunk's socketpair: the switch on the other side of the wire */
const t = testAddon();
const fds: number[] = [];

/** Poll `probe` (every 10 ms, 10 s at most) until it gives something truthy. */
const until = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false) =>
  waitUntil(what, async () => await probe(), Boolean, 10_000, 10) as Promise<T>;

/** `f` with 802.1Q tags (TPID, VID) put in after its MACs, outermost first. */
function tagged(f: Buffer, ...tags: [number, number][]): Buffer {
  const t = tags.map(([tpid, vid]) => {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(tpid, 0);
    b.writeUInt16BE(vid, 2);
    return b;
  });
  return Buffer.concat([f.subarray(0, 12), ...t, f.subarray(12)]);
}

/** Frames the trunk wrote toward the wire since the last read. */
function fromTrunk(): Buffer[] {
  const out: Buffer[] = [];
  for (let f = t.testRead(sw, 0); f; f = t.testRead(sw, 0)) out.push(f);
  return out;
}

const drops = (reason: string) => h.dp.stats().counters[reason] ?? 0;
const trunkIo = () => h.dp.stats().ports[h.sw.trunkList()[0]!.id];

beforeEach(async () => {
  h = await NativeHarness.create();
  h.addTenant({ name: 'blue', vni: BLUE, flood: [VTEP_A] });
  h.addTenant({ name: 'red', vni: RED, flood: [VTEP_B] });
  const [a, b] = t.testSocketPair();
  fds.push(a, b);
  sw = b;
  h.sw.setTrunk('eth1', a);
  expect(h.sw.addVlanPort('blue', 'eth1', 100)).toBe('eth1.100');
  expect(h.sw.addVlanPort('red', 'eth1', 200)).toBe('eth1.200');
});

afterEach(async () => {
  await h.close();
  for (const fd of fds.splice(0)) native().fdClose(fd);
});

it('a frame tagged 100 goes over VXLAN as blue (VNI 5001), untagged inside; one tagged 200 as red', async () => {
  const f1 = frame(R1, M1, 'blue frame');
  const f2 = frame(R1, M2, 'red frame');
  t.testWrite(sw, tagged(f1, [0x8100, 100]));
  t.testWrite(sw, tagged(f2, [0x8100, 200]));
  const wire: WirePacket[] = [];
  await until('both frames on the underlay', async () => {
    wire.push(...(await h.takeWire()));
    return wire.length >= 2;
  });
  const byVni = new Map(wire.map((w) => [w.vni, w]));
  expect(byVni.get(BLUE)?.to).toBe(VTEP_A);
  expect(byVni.get(BLUE)?.frame.equals(f1)).toBe(true);
  expect(byVni.get(RED)?.to).toBe(VTEP_B);
  expect(byVni.get(RED)?.frame.equals(f2)).toBe(true);
  /* Learned per VLAN port: blue's M1 at eth1 VLAN 100, red's M2 at VLAN 200. */
  await until('M1 and M2 learned', () => h.sw.tenant('blue')!.table.get(M1) && h.sw.tenant('red')!.table.get(M2));
  expect(h.sw.whereOf(h.sw.tenant('blue')!.table.get(M1)!.place)).toEqual({ port: 'eth1', vlan: 100 });
  expect(h.sw.whereOf(h.sw.tenant('red')!.table.get(M2)!.place)).toEqual({ port: 'eth1', vlan: 200 });
});

it('frames from the tunnel leave the trunk with their tenant tag: unicast and flooded', async () => {
  t.testWrite(sw, tagged(frame(R1, M1, 'hello'), [0x8100, 100]));
  await until('M1 learned at VLAN 100', () => h.sw.tenant('blue')!.table.get(M1));
  const uni = frame(M1, R1, 'back to M1');
  h.fromVtep(VTEP_A, BLUE, uni);
  const got = await until('the unicast on the trunk', () => fromTrunk()[0]);
  expect(got.equals(tagged(uni, [0x8100, 100]))).toBe(true);
  const bc = frame(BCAST, mac(0x92), 'red broadcast');
  h.fromVtep(VTEP_B, RED, bc);
  const flood = await until('the red broadcast on the trunk', () => fromTrunk()[0]);
  expect(flood.equals(tagged(bc, [0x8100, 200]))).toBe(true);
  await h.settle();
  expect(fromTrunk()).toEqual([]); /* once, with red's tag only */
});

it('drops an unmapped VLAN, an untagged frame (no native tenant) and a double tag, each by name, on the trunk', async () => {
  const before = { u: drops('vlan_unmapped'), n: drops('untagged_no_native'), d: drops('vlan_double'), io: trunkIo()?.drops ?? 0 };
  for (let i = 0; i < 3; i++) t.testWrite(sw, tagged(frame(BCAST, M1, `300 ${i}`), [0x8100, 300]));
  for (let i = 0; i < 2; i++) t.testWrite(sw, frame(BCAST, M1, `untagged ${i}`));
  t.testWrite(sw, tagged(frame(BCAST, M1, 'qinq'), [0x88a8, 100], [0x8100, 200]));
  t.testWrite(sw, tagged(frame(BCAST, M1, 'two C-tags'), [0x8100, 100], [0x8100, 100]));
  await until('7 drops counted', () => drops('vlan_unmapped') + drops('untagged_no_native') + drops('vlan_double') - before.u - before.n - before.d >= 7);
  expect(drops('vlan_unmapped') - before.u).toBe(3);
  expect(drops('untagged_no_native') - before.n).toBe(2);
  expect(drops('vlan_double') - before.d).toBe(2);
  expect((trunkIo()?.drops ?? 0) - before.io).toBe(7);
  expect(await h.takeWire()).toEqual([]);
});

it('a native tenant takes untagged and priority-tagged (VID 0) frames, and its frames leave untagged', async () => {
  h.addTenant({ name: 'green', vni: 5003, flood: [VTEP_A] });
  expect(h.sw.addVlanPort('green', 'eth1', 0)).toBe('eth1.native');
  const f = frame(R1, mac(3), 'untagged');
  const p = frame(R1, mac(4), 'prio');
  t.testWrite(sw, f);
  t.testWrite(sw, tagged(p, [0x8100, 5 << 13])); /* PCP 5, VID 0 */
  const wire: WirePacket[] = [];
  await until('both on the underlay', async () => {
    wire.push(...(await h.takeWire()));
    return wire.length >= 2;
  });
  expect(wire.map((w) => w.vni)).toEqual([5003, 5003]);
  expect(wire.map((w) => w.frame.toString('hex')).sort()).toEqual([f, p].map((x) => x.toString('hex')).sort());
  const back = frame(mac(3), R1, 'to the native');
  h.fromVtep(VTEP_A, 5003, back);
  expect((await until('on the trunk', () => fromTrunk()[0])).equals(back)).toBe(true);
});

it('a VLAN port is removed cleanly; the trunk refuses to go before its VLAN ports', async () => {
  expect(() => h.dp.portDel(h.sw.trunkList()[0]!.id)).toThrow(/VLAN port/);
  h.sw.removePort('eth1.200');
  const u = drops('vlan_unmapped');
  t.testWrite(sw, tagged(frame(BCAST, M2, 'now unmapped'), [0x8100, 200]));
  await until('VLAN 200 counted as unmapped', () => drops('vlan_unmapped') === u + 1);
  expect(await h.takeWire()).toEqual([]);
  h.sw.removeTrunk('eth1');
  expect(h.sw.portList()).toEqual([]);
  expect(h.sw.trunkList()).toEqual([]);
});

it('innerVlan: a tagged frame from a VTEP is dropped (inner_vlan) unless the tenant allows it', async () => {
  h.addPort('blue', 'p1');
  const f = tagged(frame(BCAST, R1, 'tagged inside VXLAN'), [0x8100, 42]);
  const before = drops('inner_vlan');
  h.fromVtep(VTEP_A, BLUE, f);
  await until('counted as inner_vlan', () => drops('inner_vlan') === before + 1);
  expect(await h.takePort('p1')).toEqual([]);
  h.sw.setInnerVlan('blue', true);
  h.fromVtep(VTEP_A, BLUE, f);
  const got = await until('the tagged frame at p1', async () => (await h.takePort('p1'))[0]);
  expect(got.equals(f)).toBe(true);
  expect(drops('inner_vlan')).toBe(before + 1);
});
