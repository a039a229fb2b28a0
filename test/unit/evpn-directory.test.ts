/**
 * BGP EVPN as a directory (#17, step 2), without gobgpd: the config's `directory.evpn`, the
 * import of routes (src/evpn/rib.ts: members, MAC records, the RFC 7432 §15 rules) and the
 * EvpnDirectory over a fake gobgpd client that records what it is asked to advertise.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EvpnDirectory, type EvpnClient, type EvpnDirectoryOptions } from '../../src/directory/evpn-directory.js';
import type { MacChange, MacRecord } from '../../src/directory/directory.js';
import type { EvpnRoute, ImetRouteSpec, MacRouteSpec, PeerInfo, WatchHandlers } from '../../src/evpn/gobgp.js';
import { PIPELINE_DEPTH } from '../../src/evpn/pipeline.js';
import { bestOwner, claimSeq, EvpnRib, type OwnerClaim, outbid, rdNumber } from '../../src/evpn/rib.js';
import { errors, ok } from '../support/config-text.js';

const SELF = '10.0.0.1';
const H2 = '10.0.0.2';
const H3 = '10.0.0.3';
const MAC = '02:00:00:01:00:05';

const route = (o: Partial<EvpnRoute> & Pick<EvpnRoute, 'type' | 'nexthop'>): EvpnRoute => ({
  rd: `${o.nexthop}:5001`,
  vni: 5001,
  mac: o.type === 2 ? MAC : null,
  ip: o.type === 3 ? o.nexthop : null,
  seq: null,
  sticky: false,
  rts: ['65000:5001'],
  pmsi: o.type === 3 ? 6 : null,
  encap: 8,
  withdrawal: false,
  neighbor: o.nexthop,
  ...o,
});
const imet = (nexthop: string, withdrawal = false) => route({ type: 3, nexthop, withdrawal });
const macRoute = (nexthop: string, o: Partial<EvpnRoute> = {}) => route({ type: 2, nexthop, ...o });

describe('directory.evpn in the config', () => {
  const cfg = (evpn: string, local = '10.0.0.1') =>
    `underlay: { local: ${local} }\ntenants: [ { name: blue, vni: 5001, ports: [ { tap: blue0 } ] } ]\ndirectory: { evpn: ${evpn} }\n`;
  it('takes asn and neighbors; the router id defaults to the IPv4 underlay address; learning from the underlay is off', () => {
    const c = ok(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.2 } ] }', '[ "2001:db8::1", 10.0.0.1 ]'));
    expect(c.directory).toEqual({
      etcd: null,
      evpn: { asn: 65000, neighbors: [{ address: '10.0.0.2' }], routerId: '10.0.0.1', gobgp: { api: null }, gracefulRestart: 120 },
      freeze: { moves: 5, window: 10, hold: 60 },
    });
    expect(c.tenants[0]!.learnFromUnderlay).toBe(false);
    const d = ok(cfg('{ asn: 4200000000, neighbors: [ { address: 10.0.0.2 } ], routerId: 192.0.2.7, gobgp: { api: "unix:///run/gobgpd.sock" } }')).directory;
    expect(d?.evpn).toEqual({
      asn: 4200000000,
      neighbors: [{ address: '10.0.0.2' }],
      routerId: '192.0.2.7',
      gobgp: { api: 'unix:///run/gobgpd.sock' },
      gracefulRestart: 120,
    });
    expect(ok(cfg('{ asn: 1, neighbors: [ { address: 10.0.0.2 } ], gracefulRestart: 0 }')).directory?.evpn?.gracefulRestart).toBe(0);
    expect(ok(cfg('{ asn: 1, neighbors: [ { address: 10.0.0.2 } ], gobgp: { api: "127.0.0.1:50051" } }')).directory?.evpn?.gobgp.api).toBe('127.0.0.1:50051');
  });
  it('names the bad field', () => {
    expect(errors(cfg('{ asn: 0, neighbors: [ { address: 10.0.0.2 } ] }'))).toEqual(['directory.evpn.asn: must be an AS number, an integer 1..4294967295']);
    expect(errors(cfg('{ asn: 4294967296, neighbors: [ { address: 10.0.0.2 } ] }'))).toEqual([
      'directory.evpn.asn: must be an AS number, an integer 1..4294967295',
    ]);
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.300 } ] }'))).toEqual([
      'directory.evpn.neighbors[0].address: must be an IPv4 or IPv6 address',
    ]);
    expect(errors(cfg('{ asn: 65000, neighbors: [] }'))).toEqual(['directory.evpn.neighbors: must list at least one BGP neighbor like { address: 10.0.0.2 }']);
    expect(errors(cfg('{ asn: 65000 }'))).toEqual(['directory.evpn.neighbors: is required']);
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.2 } ], gracefulRestart: -1 }'))).toEqual([
      'directory.evpn.gracefulRestart: must be an integer 0..3600',
    ]);
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.2, port: 179 } ] }'))).toEqual(['directory.evpn.neighbors[0].port: unknown key']);
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.2 } ], routerId: "2001:db8::1" }'))).toEqual([
      'directory.evpn.routerId: must be an IPv4 address like 10.0.0.1 (the BGP router id)',
    ]);
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.2 } ], gobgp: { api: /run/gobgpd.sock } }'))).toEqual([
      'directory.evpn.gobgp.api: must be unix:///PATH (an absolute path) or HOST:PORT like 127.0.0.1:50051: the gRPC API of a running gobgpd',
    ]);
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: 10.0.0.2 } ], gobgp: { api: "localhost:99999" } }'))).toEqual([
      'directory.evpn.gobgp.api: must be unix:///PATH (an absolute path) or HOST:PORT like 127.0.0.1:50051: the gRPC API of a running gobgpd',
    ]);
  });
  it('says routerId is needed without an IPv4 underlay address, and that etcd and evpn are exclusive', () => {
    expect(errors(cfg('{ asn: 65000, neighbors: [ { address: "2001:db8::2" } ] }', '"2001:db8::1"'))).toEqual([
      'directory.evpn: needs an IPv4 underlay.local: the routes carry the VTEP address, and IPv6 VTEPs are not built yet',
      'directory.evpn.routerId: is required when underlay.local has no IPv4 address: set the BGP router id, an IPv4 address like 10.0.0.1',
    ]);
    const both =
      'underlay: { local: 10.0.0.1 }\ntenants: []\ndirectory: { etcd: { endpoints: [ "http://e:2379" ] }, evpn: { asn: 65000, neighbors: [ { address: 10.0.0.2 } ] } }\n';
    expect(errors(both)).toEqual([
      'directory.evpn: directory.etcd and directory.evpn are exclusive: the members and MACs come from etcd or from BGP EVPN, not both',
    ]);
  });
});

describe('EVPN routes imported (src/evpn/rib.ts)', () => {
  it('type-3 routes of other routers are the members of their VNI; own routes and withdrawals', () => {
    const rib = new EvpnRib(SELF);
    expect(rib.apply(imet(H2))).toEqual({ kind: 'members', vni: 5001 });
    rib.apply(imet(H3));
    expect(rib.apply({ ...imet(SELF), neighbor: '' })).toBeNull(); // this gobgpd's own
    expect(rib.apply(imet(SELF))).toBeNull(); // reflected back to us
    expect(rib.members(5001)).toEqual([H2, H3]);
    expect(rib.members(5002)).toEqual([]);
    expect(rib.apply(imet(H2, true))).toEqual({ kind: 'members', vni: 5001 });
    expect(rib.members(5001)).toEqual([H3]);
    expect(rib.apply(imet('10.0.0.9', true))).toBeNull();
  });
  it('type-2 routes are each owner’s claim: highest sequence, IPs of its MAC+IP routes', () => {
    const rib = new EvpnRib(SELF);
    rib.apply(macRoute(H2));
    rib.apply(macRoute(H2, { ip: '10.1.0.5' }));
    rib.apply(macRoute(H3, { seq: 2 }));
    expect(rib.owners(5001, MAC)).toEqual(
      new Map([
        [H2, { seq: 0, ips: ['10.1.0.5'] }],
        [H3, { seq: 2, ips: [] }],
      ]),
    );
    expect(rib.macs(5001)).toEqual([MAC]);
    rib.apply(macRoute(H3, { seq: 2, withdrawal: true }));
    expect([...rib.owners(5001, MAC).keys()]).toEqual([H2]);
    expect(rib.size).toBe(2);
  });
  it('a re-watch sweeps what was withdrawn meanwhile', () => {
    const rib = new EvpnRib(SELF);
    rib.apply(imet(H2), 1);
    rib.apply(macRoute(H2), 1);
    rib.apply(imet(H3), 1);
    rib.apply(imet(H3), 2); // reported again by the new watch
    expect(rib.sweep(2, [])).toEqual([
      { kind: 'members', vni: 5001 },
      { kind: 'mac', vni: 5001, mac: MAC },
    ]);
    expect(rib.members(5001)).toEqual([H3]);
  });
  it('RFC 7432 §15: the highest sequence wins, then the lowest VTEP IP; a claim goes past every other', () => {
    const claims = new Map<string, OwnerClaim>([
      [H3, { seq: 1, ips: [] }],
      [H2, { seq: 1, ips: [] }],
    ]);
    expect(bestOwner(claims)?.owner).toBe(H2);
    claims.set(H3, { seq: 4, ips: [] });
    expect(bestOwner(claims)?.owner).toBe(H3);
    expect(bestOwner(new Map())).toBeNull();
    expect(claimSeq(new Map())).toBe(0);
    expect(claimSeq(claims)).toBe(5);
    expect(outbid(4, claims)).toBeNull();
    expect(outbid(3, claims)).toBe(H3);
    // RFC 7432 §15.2: a sticky claim wins over any sequence, and outbids a local non-sticky one.
    claims.set(H2, { seq: 0, ips: [], sticky: true });
    expect(bestOwner(claims)?.owner).toBe(H2);
    expect(outbid(9, new Map([[H2, { seq: 0, ips: [], sticky: true }]]))).toBe(H2);
    expect([rdNumber(5001), rdNumber(65535), rdNumber(65536), rdNumber(16777215)]).toEqual([5001, 65535, 2, 256]);
  });
});

/** gobgpd's API in memory: what was advertised (by route key), the watch to push routes into. */
class FakeClient implements EvpnClient {
  readonly adj = new Map<string, MacRouteSpec | ImetRouteSpec>();
  readonly calls: string[] = [];
  handlers: WatchHandlers | null = null;
  peers: PeerInfo[] = [{ address: H2, asn: 65000, state: 'established', routerId: H2 }];
  async addPeer(): Promise<void> {}
  async listPeers(): Promise<PeerInfo[]> {
    return this.peers;
  }
  private k(r: MacRouteSpec | ImetRouteSpec): string {
    return 'mac' in r ? `2 ${r.rd} ${r.mac} ${r.ip ?? '-'}` : `3 ${r.rd}`;
  }
  async addMacRoute(r: MacRouteSpec): Promise<void> {
    this.calls.push(`add ${this.k(r)} seq ${r.seq ?? '-'}`);
    this.adj.set(this.k(r), r);
  }
  async deleteMacRoute(r: MacRouteSpec): Promise<void> {
    // gobgpd refuses a withdrawal whose sequence is below another VTEP's: vtepd sends none.
    if (r.seq !== undefined) throw new Error('gobgpd deletePath: invalid MAC mobility sequence number');
    this.calls.push(`del ${this.k(r)}`);
    this.adj.delete(this.k(r));
  }
  async addImetRoute(r: ImetRouteSpec): Promise<void> {
    this.calls.push(`add ${this.k(r)}`);
    this.adj.set(this.k(r), r);
  }
  async deleteImetRoute(r: ImetRouteSpec): Promise<void> {
    this.calls.push(`del ${this.k(r)}`);
    this.adj.delete(this.k(r));
  }
  async listEvpn(): Promise<EvpnRoute[]> {
    return [];
  }
  watch(h: WatchHandlers): () => void {
    this.handlers = h;
    return () => {
      this.handlers = null;
    };
  }
  close(): void {}
  push(r: EvpnRoute): void {
    this.handlers!.route!(r);
  }
}

/** Let the fake client's promises run (with fake timers: without moving the clock). */
const settle = () => (vi.isFakeTimers() ? vi.advanceTimersByTimeAsync(0) : new Promise((r) => setTimeout(r, 0)));

/** A started directory over `client`; `before` runs first (what a takeover claims before the directory starts). */
async function directory(client = new FakeClient(), extra: Partial<EvpnDirectoryOptions> = {}, before?: (d: EvpnDirectory) => void) {
  const d = new EvpnDirectory({
    asn: 65000,
    routerId: SELF,
    neighbors: [{ address: H2 }],
    vtep: SELF,
    port: 4789,
    api: null,
    stateDir: '/nonexistent',
    client,
    ...extra,
  });
  before?.(d);
  const events: [string, MacChange, string | null, number | null][] = [];
  d.subscribeMacs((_vni, mac, rec: MacRecord | null, why) => events.push([mac, why, rec?.owner ?? null, rec?.seq ?? null]));
  const members: string[][] = [];
  d.subscribe((_vni, ms) => members.push(ms.map((m) => m.address)));
  await d.start();
  await settle();
  return { d, client, events, members };
}

describe('EvpnDirectory over a fake gobgpd', () => {
  it('exports join and claims as type-3 and type-2 routes (RD router-id:VNI, RT asn:VNI, next hop the VTEP), and withdraws them', async () => {
    const { d, client } = await directory();
    d.join(5001);
    d.claimMac(5001, MAC, ['10.1.0.5']);
    await settle();
    expect(client.calls).toEqual([`add 3 ${SELF}:5001`, `add 2 ${SELF}:5001 ${MAC} - seq -`, `add 2 ${SELF}:5001 ${MAC} 10.1.0.5 seq -`]);
    expect(client.adj.get(`3 ${SELF}:5001`)).toEqual({ rd: `${SELF}:5001`, rts: ['65000:5001'], vni: 5001, nexthop: SELF });
    expect(d.status()).toMatchObject({
      backend: 'evpn',
      connected: true,
      joined: [5001],
      evpn: { asn: 65000, routerId: SELF, neighbors: [{ address: H2, state: 'established' }], routes: { in: 0, out: 3 } },
    });
    d.withdrawMac(5001, MAC);
    d.leave(5001);
    await settle();
    expect(client.adj.size).toBe(0);
    expect(d.macStats()).toMatchObject({ macs: 0, owned: 0, claims: 1, withdrawn: 1, moves: 0, frozen: 0 });
    expect(d.isFrozen(5001, MAC)).toBe(false);
  });

  it('imports members and MAC records; a withdrawal removes them', async () => {
    const { d, client, events, members } = await directory();
    client.push(imet(H2));
    client.push(macRoute(H2, { ip: '10.1.0.5', seq: null }));
    expect(members.at(-1)).toEqual([H2]);
    expect(d.mac(5001, MAC)).toEqual({ vni: 5001, mac: MAC, owner: H2, port: 4789, ips: ['10.1.0.5'], seq: 0 });
    expect(d.lookupIp(5001, '10.1.0.5')?.mac).toBe(MAC);
    client.push(macRoute(H2, { ip: '10.1.0.5', withdrawal: true }));
    client.push(imet(H2, true));
    expect(d.mac(5001, MAC)).toBeNull();
    expect(members.at(-1)).toEqual([]);
    expect(events).toEqual([
      [MAC, 'add', H2, 0],
      [MAC, 'remove', null, null],
    ]);
  });

  it('a MAC that comes here from another VTEP is advertised with its sequence + 1; a higher sequence elsewhere withdraws ours', async () => {
    const { d, client, events } = await directory();
    client.push(macRoute(H2, { seq: 3 }));
    d.claimMac(5001, MAC);
    await settle();
    expect(client.calls).toEqual([`add 2 ${SELF}:5001 ${MAC} - seq 4`]);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: SELF, seq: 4 });
    // H2 withdraws its stale route; then the MAC moves on to H3, which advertises seq 5.
    client.push(macRoute(H2, { seq: 3, withdrawal: true }));
    client.push(macRoute(H3, { seq: 5 }));
    await settle();
    expect(client.calls.at(-1)).toBe(`del 2 ${SELF}:5001 ${MAC} -`);
    expect(client.adj.size).toBe(0);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: H3, seq: 5 });
    expect(events.map(([, why, owner, seq]) => `${why} ${owner} ${seq}`)).toEqual([`add ${H2} 3`, `move ${SELF} 4`, `move ${H3} 5`]);
    expect(d.macStats()).toMatchObject({ moves: 2, owned: 0, claims: 1 });
  });

  it('everything is advertised again when the watch comes back (gobgpd restarted)', async () => {
    const { d, client } = await directory();
    d.join(5001);
    d.claimMac(5001, MAC);
    await settle();
    client.calls.length = 0;
    client.handlers!.end!(new Error('gobgpd gone'));
    expect(d.status().connected).toBe(false);
    await new Promise((r) => setTimeout(r, 400));
    expect(client.calls).toEqual([`add 3 ${SELF}:5001`, `add 2 ${SELF}:5001 ${MAC} - seq -`]);
    expect(d.status()).toMatchObject({ connected: true, errors: 1 });
    await d.stop();
  });

  it('a gobgpd adopted at a takeover: the others’ routes imported at start, ours kept with their sequence, the stale ones withdrawn', async () => {
    const client = new FakeClient();
    const MAC2 = '02:00:00:01:00:06';
    const own = { nexthop: SELF, neighbor: '', rd: `${SELF}:5001` };
    const held = [
      route({ type: 3, ...own }),
      route({ type: 3, ...own, vni: 5002, rd: `${SELF}:5002`, rts: ['65000:5002'] }),
      route({ type: 2, ...own, seq: 2 }),
      route({ type: 2, ...own, mac: MAC2 }),
      imet(H2),
    ];
    client.listEvpn = async () => held;
    // The restored FDB and the ports claim before the directory starts.
    const { d } = await directory(client, { adopt: { pid: 1, lifeline: -1 } }, (x) => {
      x.join(5001);
      x.claimMac(5001, MAC);
    });
    expect(d.members(5001).map((m) => m.address)).toEqual([SELF, H2]);
    expect(client.calls).toEqual([`del 3 ${SELF}:5002`, `del 2 ${SELF}:5001 ${MAC2} -`, `add 3 ${SELF}:5001`, `add 2 ${SELF}:5001 ${MAC} - seq 2`]);
    await d.stop();
  });
});

describe('graceful restart (directory.evpn.gracefulRestart) over a fake gobgpd', () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const GR = 120_000;
  const down = { address: H2, asn: 65000, state: 'active' as const, routerId: '' };
  const up = { ...down, state: 'established' as const, routerId: H2 };
  /** What gobgpd does when H2's session drops: its state first, then its routes withdrawn, then the peer event. */
  const lose = (client: FakeClient, routes: EvpnRoute[]) => {
    client.peers = [down];
    for (const r of routes) client.push({ ...r, withdrawal: true });
    client.handlers!.peer!(down);
  };
  const imported = async () => {
    vi.useFakeTimers();
    const x = await directory(new FakeClient(), { gracefulRestartMs: GR });
    x.client.push(imet(H2));
    x.client.push(macRoute(H2, { ip: '10.1.0.5' }));
    x.client.push(macRoute(H2));
    x.client.handlers!.peer!(up);
    await settle();
    return x;
  };

  it('a lost session keeps its routes (stale); re-sent ones are fresh again and nothing is swept', async () => {
    const { d, client, events, members } = await imported();
    lose(client, [imet(H2), macRoute(H2, { ip: '10.1.0.5' }), macRoute(H2)]);
    await settle();
    expect(d.mac(5001, MAC)).toMatchObject({ owner: H2, ips: ['10.1.0.5'] });
    expect(members.at(-1)).toEqual([H2]);
    expect(d.status().evpn).toMatchObject({ neighbors: [{ address: H2, state: 'active' }], routes: { in: 3 }, stale: 3, swept: 0 });
    await vi.advanceTimersByTimeAsync(GR / 2);
    client.peers = [up];
    client.handlers!.peer!(up);
    client.push(imet(H2));
    client.push(macRoute(H2, { ip: '10.1.0.5' }));
    client.push(macRoute(H2));
    await settle();
    expect(d.status().evpn).toMatchObject({ stale: 0, swept: 0 });
    await vi.advanceTimersByTimeAsync(GR);
    expect(d.status().evpn).toMatchObject({ routes: { in: 3 }, stale: 0, swept: 0 });
    expect(events).toEqual([[MAC, 'add', H2, 0]]); // no flap
    await d.stop();
  });

  it('what the neighbor did not send again within the restart time is swept at its end', async () => {
    const { d, client, events, members } = await imported();
    lose(client, [imet(H2), macRoute(H2, { ip: '10.1.0.5' }), macRoute(H2)]);
    await vi.advanceTimersByTimeAsync(GR - 1000);
    expect(d.mac(5001, MAC)?.owner).toBe(H2);
    client.peers = [up];
    client.handlers!.peer!(up);
    client.push(imet(H2)); // the MAC is gone from H2 meanwhile
    await vi.advanceTimersByTimeAsync(1000);
    expect(d.mac(5001, MAC)).toBeNull();
    expect(members.at(-1)).toEqual([H2]);
    expect(events.at(-1)).toEqual([MAC, 'remove', null, null]);
    expect(d.status().evpn).toMatchObject({ routes: { in: 1 }, stale: 0, swept: 2 });
    await d.stop();
  });

  it('a withdrawal while the session is established removes the route at once', async () => {
    const { d, client } = await imported();
    client.push(macRoute(H2, { withdrawal: true }));
    client.push(macRoute(H2, { ip: '10.1.0.5', withdrawal: true }));
    await settle();
    expect(d.mac(5001, MAC)).toBeNull();
    expect(d.status().evpn).toMatchObject({ routes: { in: 1 }, stale: 0, swept: 0 });
    await d.stop();
  });

  it('a restarted gobgpd: the routes it no longer lists stay until the restart time, the ones it reports again stay on', async () => {
    vi.useFakeTimers();
    const { d, client, events } = await directory(new FakeClient(), { gracefulRestartMs: GR, rewatchMs: [10, 10] });
    client.push(imet(H2));
    client.push(macRoute(H2));
    client.push(macRoute(H3, { mac: '02:00:00:01:00:06', rd: `${H3}:5001`, neighbor: H3 }));
    client.handlers!.peer!(up);
    await settle();
    client.handlers!.end!(new Error('gobgpd gone'));
    client.peers = [down];
    await vi.advanceTimersByTimeAsync(10); // watched again: gobgpd lists nothing yet
    expect(d.status()).toMatchObject({ connected: true, evpn: { stale: 3, swept: 0 } });
    expect(d.mac(5001, MAC)?.owner).toBe(H2);
    client.peers = [up];
    client.handlers!.peer!(up);
    client.push(imet(H2));
    client.push(macRoute(H2));
    await vi.advanceTimersByTimeAsync(GR);
    expect(d.mac(5001, MAC)?.owner).toBe(H2);
    expect(d.mac(5001, '02:00:00:01:00:06')).toBeNull();
    expect(d.status().evpn).toMatchObject({ routes: { in: 2 }, stale: 0, swept: 1 });
    expect(events.map(([mac, why]) => `${why} ${mac}`)).toEqual([`add ${MAC}`, 'add 02:00:00:01:00:06', 'remove 02:00:00:01:00:06']);
    await d.stop();
  });
});

describe('EVPN mobility over a fake gobgpd: duplicate detection, sticky MACs', () => {
  it('RFC 7432 §15.1: more than freeze.moves moves in the window freeze a MAC: no more claims or sequence bumps, the record stays', async () => {
    const { d, client, events } = await directory(new FakeClient(), { freeze: { moves: 2, windowMs: 60_000, holdMs: 60_000 } });
    const adds = () => client.calls.filter((c) => c.startsWith('add 2'));
    client.push(macRoute(H2, { seq: 0 }));
    d.claimMac(5001, MAC); // move 1: here, seq 1
    client.push(macRoute(H2, { seq: 2 })); // move 2: back there, ours withdrawn
    d.claimMac(5001, MAC); // move 3: here again, seq 3: frozen
    await settle();
    expect(d.isFrozen(5001, MAC)).toBe(true);
    expect(events.map(([, why, owner, seq]) => `${why} ${owner} ${seq}`)).toEqual([
      `add ${H2} 0`,
      `move ${SELF} 1`,
      `move ${H2} 2`,
      `move ${SELF} 3`,
      `frozen ${SELF} 3`,
    ]);
    expect(adds()).toEqual([`add 2 ${SELF}:5001 ${MAC} - seq 1`, `add 2 ${SELF}:5001 ${MAC} - seq 3`]);
    // The other VTEP bumps again: our route stays, the record too (no ping-pong).
    client.push(macRoute(H2, { seq: 4 }));
    await settle();
    expect(client.calls.at(-1)).toBe(`add 2 ${SELF}:5001 ${MAC} - seq 3`);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: SELF, seq: 3 });
    // Gone here and back: the claim is refused, nothing advertised.
    d.withdrawMac(5001, MAC);
    d.claimMac(5001, MAC);
    await settle();
    expect(adds()).toHaveLength(2);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: H2, seq: 4 });
    expect(d.macStats()).toMatchObject({ moves: 4, frozen: 1, claimsRefusedFrozen: 1, owned: 0 });
  });

  it('a frozen MAC thaws after the hold: the refused claim is made, past the other VTEP’s sequence', async () => {
    const { d, client } = await directory(new FakeClient(), { freeze: { moves: 1, windowMs: 60_000, holdMs: 50 } });
    client.push(macRoute(H2, { seq: 0 }));
    d.claimMac(5001, MAC); // move 1
    client.push(macRoute(H2, { seq: 2 })); // move 2: frozen, there
    d.withdrawMac(5001, MAC);
    d.claimMac(5001, MAC);
    await settle();
    expect(d.isFrozen(5001, MAC)).toBe(true);
    expect(d.macStats()).toMatchObject({ frozen: 1, claimsRefusedFrozen: 1 });
    await vi.waitFor(() => expect(d.mac(5001, MAC)).toMatchObject({ owner: SELF, seq: 3 }), { timeout: 5000, interval: 10 });
    expect(d.isFrozen(5001, MAC)).toBe(false);
    await settle();
    expect(client.calls.at(-1)).toBe(`add 2 ${SELF}:5001 ${MAC} - seq 3`);
  });

  it('RFC 7432 §15.2: a static MAC is advertised sticky and stays on a higher sequence elsewhere', async () => {
    const { d, client } = await directory();
    d.claimMac(5001, MAC, ['10.1.0.5'], true);
    await settle();
    expect(client.adj.get(`2 ${SELF}:5001 ${MAC} -`)).toMatchObject({ seq: 0, sticky: true });
    expect(client.adj.get(`2 ${SELF}:5001 ${MAC} 10.1.0.5`)).toMatchObject({ seq: 0, sticky: true, ip: '10.1.0.5' });
    client.push(macRoute(H2, { seq: 7 }));
    await settle();
    expect(client.adj.size).toBe(2);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: SELF, seq: 0, pinned: true });
    // A learned claim of it later (a gleaned IP) keeps it sticky; a withdrawal carries no community.
    d.claimMac(5001, MAC, ['10.1.0.5']);
    d.withdrawMac(5001, MAC);
    await settle();
    expect(client.adj.size).toBe(0);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: H2, seq: 7 });
  });

  it('RFC 7432 §15.2: a MAC sticky at another VTEP is not taken over by learning here (refused, counted)', async () => {
    const { d, client } = await directory();
    client.push(macRoute(H2, { seq: 0, sticky: true }));
    d.claimMac(5001, MAC);
    d.claimMac(5001, MAC);
    await settle();
    expect(client.calls).toEqual([]);
    expect(d.mac(5001, MAC)).toMatchObject({ owner: H2, seq: 0, pinned: true });
    expect(d.macStats()).toMatchObject({ claims: 0, claimsRefusedPinned: 2, moves: 0, owned: 0 });
    // A claim that was learned before the sticky route came is withdrawn by it.
    const other = await directory();
    other.d.claimMac(5001, MAC);
    other.client.push(macRoute(H2, { seq: 0, sticky: true }));
    await settle();
    expect(other.client.adj.size).toBe(0);
    expect(other.d.mac(5001, MAC)).toMatchObject({ owner: H2, pinned: true });
  });
});

/** A fake gobgpd whose MAC route calls stay in flight until `answer` (the order in which they start is `calls`). */
class SlowClient extends FakeClient {
  readonly open: { call: string; done: () => void }[] = [];
  private hold(call: string, then: () => Promise<void>): Promise<void> {
    return new Promise((resolve) => this.open.push({ call, done: () => void then().then(resolve) }));
  }
  override addMacRoute(r: MacRouteSpec): Promise<void> {
    return this.hold(`add ${r.mac} ${r.ip ?? '-'}`, () => super.addMacRoute(r));
  }
  override deleteMacRoute(r: MacRouteSpec): Promise<void> {
    return this.hold(`del ${r.mac} ${r.ip ?? '-'}`, () => super.deleteMacRoute(r));
  }
  inFlight(): string[] {
    return this.open.map((o) => o.call);
  }
  answer(call: string): void {
    const i = this.open.findIndex((o) => o.call === call);
    this.open.splice(i, 1)[0]!.done();
  }
}

describe('EvpnDirectory: calls to gobgpd in flight', () => {
  const MAC2 = '02:00:00:01:00:06';
  it('different routes are in flight together; a withdrawal never starts before the advertisement of the same route is answered', async () => {
    const client = new SlowClient();
    const { d } = await directory(client);
    d.claimMac(5001, MAC, ['10.1.0.5']);
    d.withdrawMac(5001, MAC);
    d.claimMac(5001, MAC2);
    await settle();
    // MAC's two routes and MAC2's at once; MAC's withdrawals wait behind their adds.
    expect(client.inFlight()).toEqual([`add ${MAC} -`, `add ${MAC} 10.1.0.5`, `add ${MAC2} -`]);
    expect(d.status().evpn?.routes.out).toBe(1);
    client.answer(`add ${MAC2} -`);
    await settle();
    expect(client.inFlight()).toEqual([`add ${MAC} -`, `add ${MAC} 10.1.0.5`]);
    client.answer(`add ${MAC} 10.1.0.5`);
    await settle();
    expect(client.inFlight()).toEqual([`add ${MAC} -`, `del ${MAC} 10.1.0.5`]);
    client.answer(`add ${MAC} -`);
    await settle();
    expect(client.inFlight()).toEqual([`del ${MAC} 10.1.0.5`, `del ${MAC} -`]);
    client.answer(`del ${MAC} -`);
    client.answer(`del ${MAC} 10.1.0.5`);
    await settle();
    expect([...client.adj.keys()]).toEqual([`2 ${SELF}:5001 ${MAC2} -`]);
  });

  it(`at most ${PIPELINE_DEPTH} calls are in flight; the rest start as answers come, and a failure is counted`, async () => {
    const client = new SlowClient();
    const { d } = await directory(client);
    const n = PIPELINE_DEPTH + 8;
    const mac = (i: number) => `02:00:00:02:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    for (let i = 0; i < n; i++) d.claimMac(5001, mac(i));
    await settle();
    expect(client.inFlight()).toHaveLength(PIPELINE_DEPTH);
    expect(d.status().evpn?.routes.out).toBe(n);
    client.deleteMacRoute = () => Promise.reject(new Error('gobgpd deletePath: refused'));
    d.withdrawMac(5001, mac(n - 1));
    for (let i = 0; i < 10; i++) client.answer(`add ${mac(i)} -`);
    await settle();
    expect(client.inFlight()).toEqual([...Array(n - 10).keys()].map((i) => `add ${mac(i + 10)} -`));
    for (let i = 10; i < n; i++) client.answer(`add ${mac(i)} -`);
    await settle();
    await settle();
    expect(client.inFlight()).toEqual([]);
    // The refused withdrawal (after its add) left the route there.
    expect(client.adj.has(`2 ${SELF}:5001 ${mac(n - 1)} -`)).toBe(true);
    expect(d.status().errors).toBe(1);
  });
});
