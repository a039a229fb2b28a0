/**
 * The bridge behaviours, written once and run against both data paths
 * (test/bridge.fake.test.ts and test/native/bridge.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, VTEP_A, VTEP_B, VTEP_C } from './harness.js';
import { BCAST, frame, mac, payloadOf } from './frames.js';

const M1 = mac(0x101);
const M2 = mac(0x102);
const M3 = mac(0x103);
const R1 = mac(0x201);

export function bridgeBehaviours(label: string, make: () => Promise<Harness>): void {
  describe(`bridge behaviours (${label} data path)`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await make();
    });
    afterEach(async () => {
      await h.close();
    });

    function blueWith3Ports(extra: Record<string, unknown> = {}): void {
      h.addTenant({ name: 'blue', vni: 5001, flood: [VTEP_A, VTEP_B], ...extra });
      h.addPort('blue', 'p1');
      h.addPort('blue', 'p2');
      h.addPort('blue', 'p3');
    }

    it('floods a broadcast to the other local ports and every flood-list VTEP, with the tenant VNI', async () => {
      blueWith3Ports();
      h.fromPort('p1', frame(BCAST, M1, 'arp?'));
      expect((await h.takePort('p2')).map(payloadOf)).toEqual(['arp?']);
      expect((await h.takePort('p3')).map(payloadOf)).toEqual(['arp?']);
      expect(await h.takePort('p1')).toEqual([]);
      const wire = await h.takeWire();
      expect(wire.map((w) => w.to).sort()).toEqual([VTEP_A, VTEP_B]);
      for (const w of wire) {
        expect(w.vni).toBe(5001);
        expect(payloadOf(w.frame)).toBe('arp?');
        if (w.header) expect([...w.header]).toEqual([0x08, 0, 0, 0, 0x00, 0x13, 0x89, 0]);
      }
    });

    it('learns a local source and sends the reply from a VTEP to that port only', async () => {
      blueWith3Ports();
      h.fromPort('p2', frame(BCAST, M2, 'hi'));
      await h.settle();
      await h.takePort('p1');
      await h.takePort('p3');
      await h.takeWire();
      h.fromVtep(VTEP_A, 5001, frame(M2, R1, 'reply'));
      expect((await h.takePort('p2')).map(payloadOf)).toEqual(['reply']);
      expect(await h.takePort('p1')).toEqual([]);
      expect(await h.takePort('p3')).toEqual([]);
      expect(h.sw.tenant('blue')!.table.get(M2)?.place).toEqual({ kind: 'port', portId: h.sw.portId('p2') });
    });

    it('learns inner source MAC -> outer source VTEP, then unicasts to that VTEP only', async () => {
      blueWith3Ports();
      h.fromVtep(VTEP_B, 5001, frame(BCAST, R1, 'who'));
      await h.settle();
      expect((await h.takePort('p1')).length).toBe(1);
      await h.takePort('p2');
      await h.takePort('p3');
      h.fromPort('p1', frame(R1, M1, 'to-r1'));
      const wire = await h.takeWire();
      expect(wire.map((w) => [w.to, payloadOf(w.frame)])).toEqual([[VTEP_B, 'to-r1']]);
    });

    it('never sends a frame from a VTEP back to VTEPs (split horizon)', async () => {
      blueWith3Ports();
      h.fromVtep(VTEP_A, 5001, frame(BCAST, R1, 'bum'));
      expect((await h.takePort('p1')).map(payloadOf)).toEqual(['bum']);
      expect((await h.takePort('p2')).map(payloadOf)).toEqual(['bum']);
      expect(await h.takeWire()).toEqual([]);
      // A unicast from one VTEP to a MAC learned behind another is dropped, not relayed.
      h.fromVtep(VTEP_B, 5001, frame(BCAST, M3, 'learn-m3'));
      await h.settle();
      h.fromVtep(VTEP_A, 5001, frame(M3, R1, 'relay?'));
      await h.settle();
      expect(await h.takeWire()).toEqual([]);
      expect(h.dropCount('split_horizon')).toBeGreaterThanOrEqual(1);
    });

    it('floods unknown unicast like broadcast', async () => {
      blueWith3Ports();
      h.fromPort('p1', frame(mac(0x999), M1, 'unknown'));
      expect((await h.takePort('p2')).map(payloadOf)).toEqual(['unknown']);
      expect((await h.takeWire()).length).toBe(2);
    });

    it('keeps tenants apart: identical MACs in two tenants, each sees only its own frames', async () => {
      h.addTenant({ name: 'blue', vni: 5001, flood: [VTEP_A] });
      h.addTenant({ name: 'red', vni: 5002, flood: [VTEP_A] });
      h.addPort('blue', 'b1');
      h.addPort('blue', 'b2');
      h.addPort('red', 'r1');
      h.addPort('red', 'r2');
      h.fromPort('b1', frame(BCAST, M1, 'blue-bcast'));
      h.fromPort('r1', frame(BCAST, M1, 'red-bcast'));
      expect((await h.takePort('b2')).map(payloadOf)).toEqual(['blue-bcast']);
      expect((await h.takePort('r2')).map(payloadOf)).toEqual(['red-bcast']);
      const wire = await h.takeWire();
      expect(wire.map((w) => `${w.vni}:${payloadOf(w.frame)}`).sort()).toEqual(['5001:blue-bcast', '5002:red-bcast']);
      // From the underlay, the VNI decides the tenant.
      h.fromVtep(VTEP_A, 5002, frame(M1, R1, 'for-red'));
      expect((await h.takePort('r1')).map(payloadOf)).toEqual(['for-red']);
      expect(await h.takePort('b1')).toEqual([]);
      expect(await h.takePort('b2')).toEqual([]);
      expect(h.sw.tenant('blue')!.table.has(R1)).toBe(false);
      expect(h.sw.tenant('red')!.table.has(R1)).toBe(true);
    });

    it('drops and counts a packet for an unknown VNI', async () => {
      blueWith3Ports();
      h.fromVtep(VTEP_A, 7777, frame(BCAST, R1, 'nobody'));
      await h.settle();
      expect(await h.takePort('p1')).toEqual([]);
      expect(h.dropCount('vxlan_unknown_vni')).toBe(1);
    });

    it('never learns a multicast or all-zero source MAC', async () => {
      blueWith3Ports();
      h.fromPort('p1', frame(BCAST, '01:00:5e:00:00:01', 'mc-src'));
      h.fromPort('p1', frame(BCAST, '00:00:00:00:00:00', 'zero-src'));
      await h.settle();
      expect(h.sw.tenant('blue')!.table.size).toBe(0);
      expect(h.dropCount('bad_src_mac')).toBe(2);
      expect(await h.takePort('p2')).toEqual([]);
    });

    it('stops learning at maxMacs and counts the refusals', async () => {
      blueWith3Ports({ maxMacs: 3 });
      for (let i = 0; i < 6; i++) h.fromPort('p1', frame(BCAST, mac(0x500 + i), `f${i}`));
      await h.settle();
      const b = h.sw.tenant('blue')!;
      expect(b.table.size).toBe(3);
      expect(b.counters.limitRefused).toBe(3); // once per refused MAC, not per event
    });

    it('moves a MAC from a port to a VTEP and from one VTEP to another', async () => {
      blueWith3Ports({ acceptFrom: 'any' });
      const b = h.sw.tenant('blue')!;
      h.fromPort('p1', frame(BCAST, M1, 'at-p1'));
      await h.settle();
      expect(b.table.get(M1)?.place.kind).toBe('port');
      h.fromVtep(VTEP_A, 5001, frame(BCAST, M1, 'now-at-a'));
      await h.settle();
      expect(b.table.get(M1)?.place).toEqual({ kind: 'vtep', vtepId: h.sw.vteps.find(VTEP_A)!.id });
      h.fromVtep(VTEP_C, 5001, frame(BCAST, M1, 'now-at-c'));
      await h.settle();
      expect(b.table.get(M1)?.place).toEqual({ kind: 'vtep', vtepId: h.sw.vteps.find(VTEP_C)!.id });
      expect(b.counters.moves).toBe(2);
      await h.takeWire();
      h.fromPort('p2', frame(M1, M2, 'follow'));
      expect((await h.takeWire()).map((w) => w.to)).toEqual([VTEP_C]);
    });

    it('uses static entries and never moves them by learning', async () => {
      blueWith3Ports({ fdb: [{ mac: R1, vtep: VTEP_C }] });
      h.fromPort('p1', frame(R1, M1, 'to-static'));
      expect((await h.takeWire()).map((w) => w.to)).toEqual([VTEP_C]);
      h.fromVtep(VTEP_A, 5001, frame(BCAST, R1, 'spoof'));
      await h.settle();
      const b = h.sw.tenant('blue')!;
      expect(b.table.get(R1)?.static).toBe(true);
      expect(b.counters.staticConflicts).toBeGreaterThanOrEqual(1);
      h.fromPort('p1', frame(R1, M1, 'still-static'));
      expect((await h.takeWire()).map((w) => w.to)).toEqual([VTEP_C]);
    });

    it('ages out idle learned entries and keeps active ones', async () => {
      blueWith3Ports({ ageingMs: 1000 });
      const b = h.sw.tenant('blue')!;
      h.fromPort('p1', frame(BCAST, M1, 'idle'));
      h.fromPort('p2', frame(BCAST, M2, 'busy'));
      await h.settle();
      expect(b.table.size).toBe(2);
      await h.advance(600);
      h.fromPort('p2', frame(M1, M2, 'keepalive'));
      await h.advance(600);
      h.sw.ageing.tick();
      expect([...b.table.keys()]).toEqual([M2]);
      expect(b.counters.aged).toBe(1);
      // Aged out means flooded again.
      await h.takeWire();
      await h.takePort('p3');
      h.fromPort('p3', frame(M1, M3, 'after-age'));
      expect((await h.takeWire()).length).toBe(2);
    });

    it('with acceptFrom: any, learns a VTEP that is not in the flood list and answers it', async () => {
      blueWith3Ports({ acceptFrom: 'any' });
      h.fromVtep(VTEP_C, 5001, frame(BCAST, R1, 'from-c'));
      await h.settle();
      expect(h.sw.vteps.find(VTEP_C)?.dynamic).toBe(true);
      h.fromPort('p1', frame(R1, M1, 'back-to-c'));
      expect((await h.takeWire()).map((w) => w.to)).toEqual([VTEP_C]);
    });

    it('by default takes frames only from VTEPs it knows: unknown ones are dropped, counted, never learned', async () => {
      blueWith3Ports();
      h.fromPort('p1', frame(BCAST, M1, 'learn-m1'));
      await h.settle();
      await h.takePort('p2');
      await h.takePort('p3');
      await h.takeWire();
      h.fromVtep(VTEP_C, 5001, frame(BCAST, R1, 'spoofed-bcast'));
      h.fromVtep(VTEP_C, 5001, frame(M1, R1, 'spoofed-unicast'));
      await h.settle();
      expect(await h.takePort('p1')).toEqual([]);
      expect(await h.takePort('p2')).toEqual([]);
      expect(h.dropCount('vtep_not_accepted')).toBe(2);
      expect(h.sw.tenant('blue')!.table.has(R1)).toBe(false);
      expect(h.sw.vteps.find(VTEP_C)).toBeUndefined();
    });

    it("does not accept a VTEP that only another tenant knows, but accepts a static entry's VTEP", async () => {
      h.addTenant({ name: 'blue', vni: 5001, flood: [VTEP_A], fdb: [{ mac: R1, vtep: VTEP_C }] });
      h.addTenant({ name: 'red', vni: 5002, flood: [VTEP_B] });
      h.addPort('blue', 'b1');
      h.addPort('red', 'r1');
      h.fromVtep(VTEP_B, 5001, frame(BCAST, M2, 'b-into-blue'));
      h.fromVtep(VTEP_A, 5002, frame(BCAST, M2, 'a-into-red'));
      h.fromVtep(VTEP_C, 5001, frame(BCAST, M3, 'c-static-vtep'));
      expect((await h.takePort('b1')).map(payloadOf)).toEqual(['c-static-vtep']);
      expect(await h.takePort('r1')).toEqual([]);
      expect(h.dropCount('vtep_not_accepted')).toBe(2);
    });

    it('storm control: floods beyond the burst are dropped and counted', async () => {
      blueWith3Ports({ stormControl: { pps: 1, burst: 5 } });
      for (let i = 0; i < 20; i++) h.fromPort('p1', frame(BCAST, M1, `storm${i}`));
      await h.settle();
      expect((await h.takePort('p2')).map(payloadOf)).toEqual(['storm0', 'storm1', 'storm2', 'storm3', 'storm4']);
      expect(h.sw.tenant('blue')!.counters.stormDrops).toBe(15);
      // Known unicast is not flooding: storm control does not touch it.
      h.fromPort('p2', frame(BCAST, M2, 'learn-m2'));
      await h.settle();
      await h.takePort('p2');
      for (let i = 0; i < 10; i++) h.fromPort('p1', frame(M2, M1, `uni${i}`));
      expect((await h.takePort('p2')).length).toBe(10);
    });

    it('move dampening: a MAC flapping between two VTEPs is pinned and reported, not bounced', async () => {
      blueWith3Ports({ moveDampening: { maxMoves: 2, windowMs: 60_000, holdMs: 60_000 } });
      const b = h.sw.tenant('blue')!;
      const at = (v: string) => ({ kind: 'vtep', vtepId: h.sw.vteps.find(v)!.id });
      // Learned at A, then A -> B, B -> A (two moves allowed), then the third move flaps.
      for (const [i, v] of [VTEP_A, VTEP_B, VTEP_A, VTEP_B, VTEP_A, VTEP_B].entries()) {
        h.fromVtep(v, 5001, frame(BCAST, M3, `flap${i}`));
        await h.advance(600); // past the fast path's 500 ms learn-report damping
      }
      expect(b.counters.moves).toBe(2);
      expect(b.counters.flapping).toBe(1);
      expect(b.counters.movesDampened).toBeGreaterThanOrEqual(2);
      expect(b.table.get(M3)?.place).toEqual(at(VTEP_A));
    });

    it('drops a frame whose destination is the port it came from (hairpin)', async () => {
      blueWith3Ports();
      h.fromPort('p1', frame(BCAST, M1, 'learn'));
      h.fromPort('p1', frame(BCAST, M2, 'learn2'));
      await h.settle();
      await h.takePort('p2');
      await h.takePort('p3');
      await h.takeWire();
      h.fromPort('p1', frame(M2, M1, 'hairpin'));
      await h.settle();
      expect(await h.takePort('p1')).toEqual([]);
      expect(await h.takePort('p2')).toEqual([]);
      expect(await h.takeWire()).toEqual([]);
      expect(h.dropCount('hairpin')).toBe(1);
    });

    it('as a hub, relays VTEP to VTEP (known unicast and flooding), never back to the VTEP a frame came from', async () => {
      blueWith3Ports();
      h.sw.setRelay(h.sw.tenant('blue')!, true);
      h.fromVtep(VTEP_A, 5001, frame(BCAST, R1, 'bcast-from-a'));
      expect((await h.takeWire()).map((w) => [w.to, payloadOf(w.frame)])).toEqual([[VTEP_B, 'bcast-from-a']]);
      expect((await h.takePort('p1')).map(payloadOf)).toEqual(['bcast-from-a']);
      h.fromVtep(VTEP_B, 5001, frame(R1, M3, 'b-to-a'));
      expect((await h.takeWire()).map((w) => [w.to, payloadOf(w.frame)])).toEqual([[VTEP_A, 'b-to-a']]);
      h.fromVtep(VTEP_A, 5001, frame(R1, mac(0x299), 'back-to-a'));
      await h.settle();
      expect(await h.takeWire()).toEqual([]);
      expect(h.dropCount('hairpin')).toBe(1);
      expect(h.dropCount('split_horizon')).toBe(0);
    });
  });
}
