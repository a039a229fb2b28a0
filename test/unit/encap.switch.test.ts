/**
 * The Switch's side of the encapsulations, over the fake data path: a VTEP is address +
 * encapsulation; each tenant programs the encapsulations it takes; flood and static
 * entries follow the per-VTEP choice; a VTEP learned from traffic keeps the encapsulation
 * its frames came in.
 */
import { describe, expect, it } from 'vitest';
import { Switch } from '../../src/core/switch.js';
import { encapKey, outerBytes, parseEncapKey } from '../../src/core/vteps.js';
import { decodeEvents } from '../../src/native/datapath.js';
import { EVENT_HEADER, EV_LEARN, IN_UNKNOWN_VTEP } from '../../src/native/addon.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { tenantSpec } from '../support/harness.js';
import { mac } from '../support/frames.js';

function setup() {
  const dp = new FakeDatapath();
  const sw = new Switch(dp, { vxlanPort: 4789, maxMacsTotal: 1000 });
  return { dp, sw };
}

describe('encapsulations in the Switch', () => {
  it('keys VTEPs by address and encapsulation, and reads keys back', () => {
    expect(encapKey('10.0.0.2', 'vxlan')).toBe('10.0.0.2');
    expect(encapKey('10.0.0.2', 'gre')).toBe('gre:10.0.0.2');
    expect(parseEncapKey('nvgre:2001:db8::2')).toEqual({ encap: 'nvgre', address: '2001:db8::2' });
    expect(parseEncapKey('10.0.0.2')).toBeNull();
    expect(outerBytes({ address: '10.0.0.2', encap: 'gre' })).toBe(28);
    expect(outerBytes({ address: '2001:db8::2', encap: 'vxlan' })).toBe(56);
  });

  it("programs the tenant's encapsulations and one VTEP per (address, encap)", () => {
    const { dp, sw } = setup();
    const a = sw.addTenant(
      tenantSpec({
        name: 'a',
        vni: 5001,
        encap: 'gre',
        flood: ['10.0.0.2', '10.0.0.3'],
        vtepEncap: { '10.0.0.3': 'vxlan' },
        fdb: [{ mac: mac(1), vtep: '10.0.0.3' }],
      }),
    );
    sw.addTenant(tenantSpec({ name: 'b', vni: 5002, flood: ['10.0.0.2'] }));
    expect(dp.encapsOf.get(a.tenantId)?.sort()).toEqual(['gre', 'vxlan']);
    const keys = sw.vteps
      .all()
      .map((v) => `${v.key}/${v.encap}`)
      .sort();
    expect(keys).toEqual(['10.0.0.2/vxlan', '10.0.0.3/vxlan', 'gre:10.0.0.2/gre']);
    const gre = sw.vteps.find('gre:10.0.0.2')!;
    expect(dp.vtepOpts.get(gre.id)?.encap).toBe('gre');
    // The static entry sits at the VXLAN VTEP its tenant reaches 10.0.0.3 by.
    expect(a.table.get(mac(1))?.place).toEqual({ kind: 'vtep', vtepId: sw.vteps.find('10.0.0.3')!.id });
  });

  it('refuses a tenant the data path cannot carry, leaving nothing behind', () => {
    const { dp, sw } = setup();
    dp.tenantEncaps = () => {
      throw Object.assign(new Error('no GRE socket'), { code: 'ENOPROTOOPT' });
    };
    expect(() => sw.addTenant(tenantSpec({ name: 'g', vni: 7, encap: 'gre', flood: ['10.0.0.2'] }))).toThrow(/no GRE socket/);
    expect(sw.tenants()).toEqual([]);
    expect(sw.vteps.all()).toEqual([]);
  });

  it('learns an unknown VTEP in the encapsulation its frame came in (event byte 33)', () => {
    const { dp, sw } = setup();
    const t = sw.addTenant(tenantSpec({ name: 'n', vni: 0x12345, encap: 'nvgre', acceptFrom: 'any' }));
    const rec = Buffer.alloc(EVENT_HEADER);
    rec.writeUInt32LE(EVENT_HEADER, 0);
    rec[4] = EV_LEARN;
    rec[5] = IN_UNKNOWN_VTEP;
    rec.writeUInt32LE(t.tenantId, 8);
    Buffer.from([10, 0, 0, 9]).copy(rec, 16);
    rec[32] = 4;
    rec[33] = 3; // NVGRE
    Buffer.from(
      mac(7)
        .split(':')
        .map((h) => parseInt(h, 16)),
    ).copy(rec, 40);
    const evs = decodeEvents(rec);
    expect(evs[0]?.ingress).toEqual({ kind: 'unknown-vtep', address: '10.0.0.9', port: 0, encap: 'nvgre' });
    sw.handleEvents(evs);
    const v = sw.vteps.find('nvgre:10.0.0.9');
    expect(v?.encap).toBe('nvgre');
    expect(v?.dynamic).toBe(true);
    expect(dp.vtepOpts.get(v!.id)?.encap).toBe('nvgre');
    expect(t.table.get(mac(7))?.place).toEqual({ kind: 'vtep', vtepId: v!.id });
  });
});
