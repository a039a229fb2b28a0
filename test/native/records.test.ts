/**
 * Event and idle records round trip: encoded by the data path's own C encoders
 * (dp_event_encode, fdb_idle_dump, through the test addon) and decoded by the TypeScript
 * decoders the daemon uses (decodeEvents, decodeFdbIdle in src/native/datapath.ts), for
 * every record type and ingress kind, both address families and edge values.
 */
import { describe, expect, it } from 'vitest';
import { EV_CONTROL, EV_LEARN, EV_MISS, EV_TOO_BIG, IN_PORT, IN_UNKNOWN_VTEP, IN_VTEP } from '../../src/native/addon.js';
import { decodeEvents, decodeFdbIdle, type DpEvent } from '../../src/native/datapath.js';
import { testAddon, type TestEvent } from '../support/test-addon.js';

const t = testAddon();
const U32 = 0xffffffff;
const SRC = '02:aa:bb:cc:dd:ee';

/** An Ethernet frame of len bytes (at least 14) from SRC. */
function frame(len: number): Buffer {
  const f = Buffer.alloc(len);
  for (let i = 0; i < len; i++) f[i] = (i * 37 + 11) & 0xff;
  Buffer.from('ffffffffffff', 'hex').copy(f, 0);
  Buffer.from(SRC.replaceAll(':', ''), 'hex').copy(f, 6);
  return f;
}

const v4 = (a: string): Buffer => {
  const b = Buffer.alloc(16);
  a.split('.').forEach((x, i) => {
    b[i] = Number(x);
  });
  return b;
};
const v6 = (hex: string): Buffer => Buffer.from(hex, 'hex');

const outers: { family: 4 | 6; addr: Buffer; text: string; port: number }[] = [
  { family: 4, addr: v4('255.255.255.255'), text: '255.255.255.255', port: 65535 },
  { family: 4, addr: v4('10.0.0.1'), text: '10.0.0.1', port: 4789 },
  { family: 6, addr: v6('fe800000000000000000000000000001'), text: 'fe80::1', port: 4789 },
  { family: 6, addr: v6('00000000000000000000000000000000'), text: '::', port: 0 },
  { family: 6, addr: v6('20010db8000000000000ff0000428329'), text: '2001:db8::ff00:42:8329', port: 1 },
  { family: 6, addr: v6('ffffffffffffffffffffffffffffffff'), text: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
];
const encaps = [
  { code: 1, name: 'vxlan' },
  { code: 2, name: 'gre' },
  { code: 3, name: 'nvgre' },
] as const;
const types = [
  { code: EV_LEARN, name: 'learn', len: 64 },
  { code: EV_MISS, name: 'miss', len: 14 },
  { code: EV_MISS, name: 'miss', len: 9234 },
  { code: EV_TOO_BIG, name: 'too-big', len: 1294 },
  { code: EV_CONTROL, name: 'control', len: 4 },
  { code: EV_CONTROL, name: 'control', len: 9216 },
] as const;

/** What decodeEvents must make of one encoded event. */
function expected(ev: TestEvent, f: Buffer, outer?: (typeof outers)[number], encap?: (typeof encaps)[number]): DpEvent {
  const kind = types.find((x) => x.code === ev.type)!.name;
  const ingress: DpEvent['ingress'] =
    ev.inKind === IN_PORT
      ? { kind: 'port', portId: ev.inId }
      : ev.inKind === IN_VTEP
        ? { kind: 'vtep', vtepId: ev.inId }
        : { kind: 'unknown-vtep', address: outer!.text, port: outer!.port, ...(encap && encap.name !== 'vxlan' ? { encap: encap.name } : {}) };
  const out: DpEvent = { type: kind, tenantId: ev.tenantId, ingress, srcMac: ev.type === EV_CONTROL ? '00:00:00:00:00:00' : SRC };
  if (ev.type !== EV_LEARN) out.frame = f;
  if (ev.type === EV_TOO_BIG) out.outVtep = ev.outId ?? 0;
  if (outer) out.outer = { address: outer.text, port: outer.port };
  if (encap && encap.name !== 'vxlan') out.encap = encap.name;
  return out;
}

describe('event records: C encoder -> TypeScript decoder', () => {
  it('every type, from a port, with edge ids', () => {
    for (const ty of types) {
      for (const [tenantId, inId, outId] of [
        [1, 1, 1],
        [4095, 4095, 16383],
        [U32, U32, U32],
      ]) {
        const f = ty.code === EV_CONTROL ? Buffer.from('\0VTP' + 'x'.repeat(ty.len - 4)) : frame(ty.len);
        const ev: TestEvent = { type: ty.code, inKind: IN_PORT, tenantId: tenantId!, inId: inId!, outId: outId! };
        const rec = t.encodeEvent(ev, f);
        expect(rec.length % 8).toBe(0);
        expect(decodeEvents(rec)).toEqual([expected(ev, f)]);
      }
    }
  });

  it('every type from the underlay: both families, every encapsulation, known and unknown VTEPs', () => {
    for (const ty of types) {
      for (const outer of outers) {
        for (const encap of encaps) {
          for (const inKind of [IN_VTEP, IN_UNKNOWN_VTEP]) {
            const f = ty.code === EV_CONTROL ? Buffer.from('\0VTP' + 'y'.repeat(ty.len - 4)) : frame(ty.len);
            const ev: TestEvent = {
              type: ty.code,
              inKind,
              tenantId: ty.code === EV_CONTROL ? 0 : 4095,
              inId: inKind === IN_VTEP ? 16383 : 0,
              outId: 16383,
              family: outer.family,
              encap: encap.code,
              outerAddr: outer.addr,
              outerPort: outer.port,
            };
            expect(decodeEvents(t.encodeEvent(ev, f))).toEqual([expected(ev, f, outer, encap)]);
          }
        }
      }
    }
  });

  it('a buffer of many records decodes in order (padding between records skipped)', () => {
    const evs: { ev: TestEvent; f: Buffer }[] = [];
    for (let i = 0; i < 50; i++) {
      const ty = types[i % types.length]!;
      const f = ty.code === EV_CONTROL ? Buffer.from('\0VTP' + 'z'.repeat(i)) : frame(14 + i * 7);
      evs.push({ ev: { type: ty.code, inKind: IN_PORT, tenantId: i + 1, inId: 100 + i, outId: i }, f });
    }
    const buf = Buffer.concat(evs.map(({ ev, f }) => t.encodeEvent(ev, f)));
    expect(decodeEvents(buf)).toEqual(evs.map(({ ev, f }) => expected(ev, f)));
  });
});

describe('idle records: fdb_idle_dump -> decodeFdbIdle', () => {
  it('edge tenants, MACs and idle times', () => {
    const entries = [
      { tenantId: 1, mac: '02:00:00:00:00:01', idleMs: 0 },
      { tenantId: 4095, mac: 'fe:ff:ff:ff:ff:ff', idleMs: 0x7fffffff },
      { tenantId: 0xffff, mac: '00:00:00:00:00:01', idleMs: 1 },
      ...Array.from({ length: 200 }, (_, i) => ({
        tenantId: 1 + (i % 7),
        mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
        idleMs: i * 1000,
      })),
    ];
    const buf = t.encodeIdle(entries.map((e) => ({ tenantId: e.tenantId, mac: Buffer.from(e.mac.replaceAll(':', ''), 'hex'), idleMs: e.idleMs })));
    expect(buf.length).toBe(16 * entries.length);
    const key = (e: { tenantId: number; mac: string }): string => `${e.tenantId}/${e.mac}`;
    const sort = <T extends { tenantId: number; mac: string }>(a: T[]): T[] => [...a].sort((x, y) => key(x).localeCompare(key(y)));
    expect(sort(decodeFdbIdle(buf))).toEqual(sort(entries));
  });

  it('an empty FDB: no records', () => {
    expect(decodeFdbIdle(t.encodeIdle([]))).toEqual([]);
  });
});
