/**
 * Forwarding from the directory (src/directory/forwarding.ts), two and three daemons over the
 * fake data path sharing one in-memory directory: remote MACs come from the records (and
 * reach the cache), local MACs are claimed and withdrawn, moves converge with seq + 1 and a
 * RARP, underlay learning is off, and a port that changes tenants leaves nothing behind in
 * its old tenant, here or on the other hosts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon/daemon.js';
import { whereText } from '../../src/core/fdb.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { cfg, MemPorts } from '../support/fake-ports.js';
import { frame } from '../support/frames.js';
import { MemDirectory, MemStore } from '../support/mem-directory.js';

const VM = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:0b';
const host = (i: number, ports: string) => `underlay: { local: 10.0.0.${i} }
directory: { etcd: { endpoints: [ "http://127.0.0.1:1" ] } }
tenants:
  - { name: blue, vni: 5001, ports: [ ${ports} ] }
  - { name: red, vni: 5002, ports: [] }
`;

interface Host {
  d: Daemon;
  dp: FakeDatapath;
  dir: MemDirectory;
}
const running: Host[] = [];
async function start(store: MemStore, i: number, ports: string): Promise<Host> {
  const dp = new FakeDatapath();
  const dir = new MemDirectory(store, `10.0.0.${i}`);
  const d = await Daemon.start(cfg(host(i, ports)), { dp, ports: new MemPorts(), maxMacsTotal: 1000, directory: dir });
  const h = { d, dp, dir };
  running.push(h);
  return h;
}
const row = (h: Host, tenant: string, mac: string) => {
  const r = h.d.fdb({ tenant }).find((x) => x.mac === mac);
  return r && { ...r, where: whereText(r.where) };
};
const portId = (h: Host, tap: string) => h.d.sw.portId(tap)!;

afterEach(() => {
  for (const h of running.splice(0)) h.d.close();
});

describe('forwarding from the directory (fake data path)', () => {
  it('a record that cannot be programmed (the data path gone) is logged, not thrown into the directory; later ones are programmed', async () => {
    const store = new MemStore();
    const h2 = await start(store, 2, '{ tap: blue0 }');
    const fdbSet = h2.dp.fdbSet.bind(h2.dp);
    h2.dp.fdbSet = () => {
      throw Object.assign(new Error('dpFdbSet: the data path process (pid 1) is gone'), { code: 'EPIPE' });
    };
    // h1 publishes VM: h2's listener runs inside h1's write to the shared store.
    await start(store, 1, `{ tap: blue0, mac: "${VM}", address: 10.1.0.1/24 }`);
    expect(store.macs.get(`5001/${VM}`)).toMatchObject({ owner: '10.0.0.1' });
    h2.dp.fdbSet = fdbSet;
    await start(store, 3, `{ tap: blue0, mac: "${PEER}", address: 10.1.0.3/24 }`);
    expect(row(h2, 'blue', PEER)).toMatchObject({ where: 'vtep 10.0.0.3', type: 'directory' });
  });
  it('a port with an address is published before it speaks; the other hosts program it at its VTEP, in the cache', async () => {
    const store = new MemStore();
    const h1 = await start(store, 1, `{ tap: blue0, mac: "${VM}", address: 10.1.0.1/24 }`);
    const h2 = await start(store, 2, '{ tap: blue0 }');
    expect(store.macs.get(`5001/${VM}`)).toMatchObject({ owner: '10.0.0.1', ips: ['10.1.0.1'], seq: 1 });
    expect(row(h2, 'blue', VM)).toMatchObject({ where: 'vtep 10.0.0.1', type: 'directory', ageSeconds: null });
    const b2 = h2.d.sw.tenant('blue')!;
    expect(h2.dp.cached(b2.tenantId, VM)).toMatchObject({ kind: 'vtep' });
    // Known unicast from h2's VM goes straight to h1: no flooding.
    h2.dp.fromPort(portId(h2, 'blue0'), frame(VM, PEER));
    expect(h2.dp.wire.map((w) => w.to)).toEqual(['10.0.0.1']);
    expect(b2.counters.flooded).toBe(0);
    // h2's VM is learned and claimed; h1 programs it.
    expect(store.macs.get(`5001/${PEER}`)).toMatchObject({ owner: '10.0.0.2', seq: 1 });
    expect(row(h1, 'blue', PEER)).toMatchObject({ where: 'vtep 10.0.0.2', type: 'directory' });
    // A record of another VNI never lands in blue.
    expect(row(h1, 'red', PEER)).toBeUndefined();
    expect(h1.d.status().directory).toMatchObject({ forwarding: { programmed: 1 } });
  });

  it('does not learn from the underlay in directory mode', async () => {
    const store = new MemStore();
    const h1 = await start(store, 1, '{ tap: blue0 }');
    await start(store, 2, '{ tap: blue0 }');
    expect(h1.d.sw.tenant('blue')!.learnFromUnderlay).toBe(false);
    h1.dp.fromUnderlay('10.0.0.2', 5001, frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:99'));
    expect(row(h1, 'blue', '02:00:00:00:00:99')).toBeUndefined();
    expect(store.macs.has('5001/02:00:00:00:00:99')).toBe(false);
  });

  it('a move converges with seq + 1, the new owner announces it with a RARP, the old host forwards to it', async () => {
    const store = new MemStore();
    const h1 = await start(store, 1, `{ tap: blue0, mac: "${VM}", address: 10.1.0.1/24 }`);
    const h2 = await start(store, 2, '{ tap: blue0 }');
    const h3 = await start(store, 3, '{ tap: blue0 }');
    // The VM shows up on h2 (migrated): its first frame there.
    h2.dp.fromPort(portId(h2, 'blue0'), frame('ff:ff:ff:ff:ff:ff', VM));
    expect(store.macs.get(`5001/${VM}`)).toMatchObject({ owner: '10.0.0.2', seq: 2 });
    expect(row(h1, 'blue', VM)).toMatchObject({ where: 'vtep 10.0.0.2', type: 'directory' });
    expect(row(h3, 'blue', VM)).toMatchObject({ where: 'vtep 10.0.0.2', type: 'directory' });
    expect(row(h2, 'blue', VM)).toMatchObject({ where: 'port blue0', type: 'learned' });
    const f2 = h2.d.forwarding!.counters;
    expect(f2.movedHere).toBe(1);
    expect(f2.announced).toBe(1);
    const rarps = h2.dp.wire.filter((w) => w.frame.readUInt16BE(12) === 0x8035);
    expect(rarps.map((w) => w.to).sort()).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(h1.d.forwarding!.counters.movedAway).toBe(1);
    // The old host's learned entry became the directory's: it does not withdraw the new owner's record.
    expect(store.log.filter((l) => l.startsWith('withdraw'))).toEqual([]);
  });

  it('a port that goes withdraws its MACs everywhere', async () => {
    const store = new MemStore();
    const h1 = await start(store, 1, `{ tap: blue0, mac: "${VM}", address: 10.1.0.1/24 }`);
    const h2 = await start(store, 2, '{ tap: blue0 }');
    expect(row(h2, 'blue', VM)).toBeDefined();
    h1.d.removePort('blue', 'blue0');
    expect(store.macs.has(`5001/${VM}`)).toBe(false);
    expect(row(h2, 'blue', VM)).toBeUndefined();
  });

  it('a port moving from one tenant to another: the old tenant has no entry for it, here or elsewhere, before its first frame in the new one', async () => {
    const store = new MemStore();
    const h1 = await start(store, 1, `{ tap: vm0, mac: "${VM}", address: 10.1.0.1/24 }`);
    const h2 = await start(store, 2, '{ tap: blue0 }');
    expect(row(h2, 'blue', VM)).toBeDefined();
    const next = cfg(
      host(1, '').replace('- { name: red, vni: 5002, ports: [] }', `- { name: red, vni: 5002, ports: [ { tap: vm0, mac: "${VM}", address: 10.1.0.1/24 } ] }`),
    );
    let blueLeftFirst: boolean | null = null;
    // Watch the store: when red's record appears, blue's must be gone already on every host.
    const unsub = h2.dir.subscribeMacs((vni, mac, rec) => {
      if (vni === 5002 && mac === VM && rec && blueLeftFirst === null)
        blueLeftFirst = !store.macs.has(`5001/${VM}`) && row(h1, 'blue', VM) === undefined && row(h2, 'blue', VM) === undefined;
    });
    const r = await h1.d.reload(next);
    unsub();
    expect(r.ok).toBe(true);
    expect(blueLeftFirst).toBe(true);
    expect(row(h2, 'red', VM)).toMatchObject({ where: 'vtep 10.0.0.1' });
    expect(row(h2, 'blue', VM)).toBeUndefined();
    // A frame from the VM now enters red only.
    const red1 = h1.d.sw.tenant('red')!;
    h1.dp.fromPort(portId(h1, 'vm0'), frame('ff:ff:ff:ff:ff:ff', VM));
    expect(row(h1, 'red', VM)).toMatchObject({ where: 'port vm0' });
    expect(row(h1, 'blue', VM)).toBeUndefined();
    expect(h1.dp.wire.every((w) => w.vni === 5002)).toBe(true);
    expect(red1.counters.flooded).toBe(1);
  });

  it('answers an ARP request for an IP the directory knows from the port it came in, floods one for an unknown IP, gleans the sender', async () => {
    const store = new MemStore();
    await start(store, 1, `{ tap: blue0, mac: "${VM}", address: 10.1.0.1/24 }`);
    const h2 = await start(store, 2, '{ tap: blue0 }');
    const b2 = h2.d.sw.tenant('blue')!;
    const p2 = portId(h2, 'blue0');
    // An ARP request written by hand (an encoder independent of src/core/arp.ts).
    const request = (target: string, sender = PEER, senderIp = '10.1.0.2') => {
      const f = Buffer.alloc(60);
      Buffer.from('ffffffffffff', 'hex').copy(f, 0);
      Buffer.from(sender.replaceAll(':', ''), 'hex').copy(f, 6);
      f.writeUInt16BE(0x0806, 12);
      Buffer.from('0001080006040001', 'hex').copy(f, 14);
      Buffer.from(sender.replaceAll(':', ''), 'hex').copy(f, 22);
      Buffer.from(senderIp.split('.').map(Number)).copy(f, 28);
      Buffer.from(target.split('.').map(Number)).copy(f, 38);
      return f;
    };
    h2.dp.fromPort(p2, request('10.1.0.1'));
    const out = h2.dp.portOut.get(p2) ?? [];
    expect(out.length).toBe(1);
    const reply = out[0]!;
    expect(reply.subarray(0, 6).toString('hex')).toBe(PEER.replaceAll(':', ''));
    expect(reply.readUInt16BE(20)).toBe(2); // op reply
    expect(reply.subarray(22, 28).toString('hex')).toBe(VM.replaceAll(':', '')); // sender: the owner's MAC
    expect([...reply.subarray(28, 32)].join('.')).toBe('10.1.0.1');
    expect(h2.dp.wire.length).toBe(0); // not flooded
    expect(b2.counters).toMatchObject({ arpSuppressed: 1, arpFlooded: 0, flooded: 0 });
    // The sender's own address was gleaned: its record now answers for 10.1.0.2.
    expect(store.macs.get(`5001/${PEER}`)).toMatchObject({ owner: '10.0.0.2', ips: ['10.1.0.2'] });
    h2.dp.fromPort(p2, request('10.1.0.77'));
    expect(h2.dp.wire.map((w) => w.to)).toEqual(['10.0.0.1']);
    expect(b2.counters).toMatchObject({ arpSuppressed: 1, arpFlooded: 1, flooded: 1 });
    // An attacker on h2's port claims the VM's address in its ARP (spoofing): not gleaned, and
    // every host still answers 10.1.0.1 with the VM's MAC.
    const THIEF = '02:00:00:00:00:66';
    h2.dp.fromPort(p2, request('10.1.0.9', THIEF, '10.1.0.1'));
    expect(h2.d.forwarding!.counters.gleanRefused).toBe(1);
    expect(store.macs.get(`5001/${THIEF}`)).toMatchObject({ owner: '10.0.0.2', ips: [] });
    expect(h2.dir.lookupIp(5001, '10.1.0.1')).toMatchObject({ mac: VM });
    // What Prometheus scrapes.
    const text = await new Metrics(() => h2.d).render();
    expect(text).toMatch(/vtepd_tenant_neighbor_requests_total\{tenant="blue",protocol="arp",result="suppressed"\} 1/);
    expect(text).toMatch(/vtepd_tenant_neighbor_requests_total\{tenant="blue",protocol="arp",result="flooded"\} 2/);
    expect(text).toMatch(/vtepd_fdb_entries\{tenant="blue",type="directory"\} 1/);
    expect(text).toMatch(/vtepd_directory_connected 1/);
    expect(text).toMatch(/vtepd_directory_macs\{owner="self"\} 2/);
  });

  it('an owner that dies leaves the others once its records expire', async () => {
    const store = new MemStore();
    await start(store, 1, `{ tap: blue0, mac: "${VM}", address: 10.1.0.1/24 }`);
    const h2 = await start(store, 2, '{ tap: blue0 }');
    expect(row(h2, 'blue', VM)).toBeDefined();
    store.expire('10.0.0.1');
    expect(row(h2, 'blue', VM)).toBeUndefined();
    expect(h2.d.status().tenants.find((t) => t.name === 'blue')!.flood).toEqual([]);
  });
});
