/**
 * The VTEP registry (src/core/vteps.ts) on its own: keys, references, deletion when the
 * last reference goes, what the data path is told, and id reuse.
 */
import { describe, expect, it } from 'vitest';
import { VtepRegistry } from '../../src/core/vteps.js';
import type { VtepOptions } from '../../src/native/addon.js';

function rig(defaultMtu = 0) {
  const calls: string[] = [];
  const deleted: string[] = [];
  const dp = {
    vtepSet: (id: number, address: string, port: number, opts?: VtepOptions) => {
      calls.push(`set ${id} ${address}:${port}${opts ? ` ${JSON.stringify(opts)}` : ''}`);
    },
    vtepDel: (id: number) => {
      calls.push(`del ${id}`);
    },
  };
  const reg = new VtepRegistry(dp, { vxlanPort: 4789, defaultMtu, onDelete: (v) => deleted.push(v.key) });
  return { reg, calls, deleted };
}

describe('VtepRegistry', () => {
  it('creates a VTEP once per key, programs it, and deletes it when the last reference goes', () => {
    const { reg, calls, deleted } = rig();
    const v = reg.configured('10.0.0.2', 'vxlan');
    v.configRefs++;
    expect(reg.configured('10.0.0.2', 'vxlan')).toBe(v);
    reg.entryRef(v.id, 1);
    expect(calls).toEqual([`set ${v.id} 10.0.0.2:4789`]);
    reg.releaseConfig(v.id);
    expect(reg.find('10.0.0.2')).toBe(v); // an FDB entry still points at it
    reg.entryRef(v.id, -1);
    expect(reg.find('10.0.0.2')).toBeUndefined();
    expect(reg.has(v.id)).toBe(false);
    expect(deleted).toEqual(['10.0.0.2']);
    expect(calls).toEqual([`set ${v.id} 10.0.0.2:4789`, `del ${v.id}`]);
  });

  it('keys a VTEP by encapsulation: the same address is a VXLAN and a GRE-TAP VTEP', () => {
    const { reg, calls } = rig();
    const a = reg.configured('10.0.0.2', 'vxlan');
    const g = reg.configured('gre:10.0.0.2', 'vxlan'); // a key wins over the tenant's encap
    const g2 = reg.configured('10.0.0.2', 'gre');
    expect(g).toBe(g2);
    expect([a.key, g.key, g.address, g.encap]).toEqual(['10.0.0.2', 'gre:10.0.0.2', '10.0.0.2', 'gre']);
    expect(calls[1]).toBe(`set ${g.id} 10.0.0.2:4789 {"mtu":0,"fixedSourcePort":false,"matchPort":false,"encap":"gre"}`);
  });

  it('gives role VTEPs the default path MTU, keys a NAT spoke by address and port, and reprograms only on change', () => {
    const { reg, calls } = rig(1500);
    const s1 = reg.role('198.51.100.7', 40001, { matchPort: true, fixedSourcePort: true });
    const s2 = reg.role('198.51.100.7', 40002, { matchPort: true, fixedSourcePort: true });
    expect([s1.key, s2.key, s1.mtu]).toEqual(['198.51.100.7:40001', '198.51.100.7:40002', 1500]);
    const n = calls.length;
    expect(reg.role('198.51.100.7', 40001, { matchPort: true })).toBe(s1);
    expect(calls.length).toBe(n);
    reg.setMtu(s1, 1400);
    expect(calls.at(-1)).toBe(`set ${s1.id} 198.51.100.7:40001 {"mtu":1400,"fixedSourcePort":true,"matchPort":true}`);
    expect(reg.fits(s1.id, 1400 - 36)).toBe(true);
    expect(reg.fits(s1.id, 1400 - 35)).toBe(false);
    reg.releaseRole(s1);
    expect(reg.find(s1.key)).toBe(s1); // referenced twice by the role
    reg.releaseRole(s1);
    expect(reg.find(s1.key)).toBeUndefined();
  });

  it('counts VTEPs learned from traffic, makes a learned one configured when configured, and reuses freed ids', () => {
    const { reg } = rig();
    const d = reg.acquire('10.0.0.9', true);
    expect([d.dynamic, reg.learned]).toEqual([true, 1]);
    expect(reg.configured('10.0.0.9', 'vxlan').dynamic).toBe(false);
    const id = d.id;
    reg.gc(d);
    expect(reg.all()).toEqual([]);
    expect(reg.acquire('10.0.0.10', false).id).toBe(id);
  });
});
