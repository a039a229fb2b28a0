/**
 * The event path never ends the daemon: an event whose handling throws (here, the control
 * plane's hook) is counted and skipped, and the rest of the batch and later batches are
 * handled as before.
 */
import { expect, it } from 'vitest';
import { Switch } from '../../src/core/switch.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { BCAST, frame, mac } from '../support/frames.js';
import { tenantSpec } from '../support/harness.js';

it('counts an event whose handling throws, skips it, and handles the rest', () => {
  const dp = new FakeDatapath();
  let throws = true;
  const seen: string[] = [];
  const sw = new Switch(dp, {
    vxlanPort: 4789,
    maxMacsTotal: 1000,
    onControl: (_payload, from) => {
      if (throws) throw new Error('injected: the control plane failed');
      seen.push(from.address);
    },
  });
  sw.start();
  const blue = sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
  const p1 = sw.addPort('blue', 'p1', -1);
  sw.addPort('blue', 'p2', -1);

  expect(() => dp.fromControl('192.0.2.66', 4789, Buffer.from('\0VTPjunk'))).not.toThrow();
  expect(() => dp.fromControl('192.0.2.66', 4789, Buffer.from('\0VTPjunk'))).not.toThrow();
  expect(sw.counters.eventErrors).toBe(2);
  expect(sw.counters.controlMessages).toBe(2);

  // The switch goes on: a frame from a port is learned and flooded to the other port.
  dp.fromPort(p1, frame(BCAST, mac(0x101), 'after the errors'));
  expect(blue.table.get(mac(0x101))?.place).toEqual({ kind: 'port', portId: p1 });
  throws = false;
  dp.fromControl('192.0.2.67', 4789, Buffer.from('\0VTPjunk'));
  expect(seen).toEqual(['192.0.2.67']);
  expect(sw.counters.eventErrors).toBe(2);
  sw.stop();
});

it('a full VTEP table refuses new sources under acceptFrom: any, counted once per frame, and never throws', () => {
  // The daemon's table has the data path's 16,383 ids; the same code with 255 here.
  const dp = new FakeDatapath();
  const sw = new Switch(dp, { vxlanPort: 4789, maxMacsTotal: 100_000, maxVteps: 256 });
  sw.start();
  const open = sw.addTenant(tenantSpec({ name: 'open', vni: 7001, acceptFrom: 'any', maxMacs: 100_000 }));
  sw.addPort('open', 'p1', -1);
  const n = 1_000;
  for (let i = 0; i < n; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    expect(() => dp.fromUnderlay(src, 7001, frame(BCAST, mac(0x10000 + i), 'spoofed'))).not.toThrow();
  }
  const learned = sw.vteps.all().length;
  expect(learned).toBe(255);
  expect(sw.counters.vtepsRefused).toBe(n - learned);
  expect(sw.counters.eventErrors).toBe(0);
  // Still switching: a frame from the port is learned.
  dp.fromPort(1, frame(BCAST, mac(0x101), 'after'));
  expect(open.table.get(mac(0x101))?.place.kind).toBe('port');
  sw.stop();
});

it('an encrypted tenant counts its 32 bytes when it floods: a frame that fits plain but not sealed gets ICMP with the sealed MTU', () => {
  const dp = new FakeDatapath();
  const sw = new Switch(dp, { vxlanPort: 4789, maxMacsTotal: 1000 });
  sw.start();
  for (const [name, vni, encrypted] of [
    ['plain', 5001, false],
    ['sealed', 5002, true],
  ] as const) {
    sw.addTenant(tenantSpec({ name, vni, flood: ['10.0.0.2'], encrypted, keyed: encrypted ? ['10.0.0.2'] : [] }));
  }
  const pPlain = sw.addPort('plain', 'p0', -1);
  const pSealed = sw.addPort('sealed', 's0', -1);
  sw.vteps.setMtu(sw.vteps.find('10.0.0.2')!, 1400);
  // An IPv4 packet with DF of 1340 bytes to an unknown MAC (flooded): 1354 + 36 = 1390 fits a plain VXLAN datagram, + 32 does not.
  const f = Buffer.alloc(14 + 1340);
  Buffer.from(
    mac(0x999)
      .split(':')
      .map((h) => Number.parseInt(h, 16)),
  ).copy(f, 0);
  Buffer.from(
    mac(0x101)
      .split(':')
      .map((h) => Number.parseInt(h, 16)),
  ).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(1340, 16);
  f.writeUInt16BE(0x4000, 20);
  f[22] = 64;
  f[23] = 17;
  dp.fromPort(pPlain, f);
  expect(dp.wire.map((w) => w.to)).toEqual(['10.0.0.2']);
  dp.wire.length = 0;
  dp.fromPort(pSealed, f);
  expect(dp.wire).toEqual([]);
  const icmp = dp.portOut.get(pSealed)!.at(-1)!;
  expect(icmp[14 + 9]).toBe(1); // ICMP
  expect(icmp.readUInt16BE(14 + 20 + 6)).toBe(1400 - 36 - 14 - 32); // next-hop MTU: the sealed one
  sw.stop();
});
