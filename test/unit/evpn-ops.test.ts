/**
 * The operator's side of BGP EVPN (#17) without gobgpd: the neighbor password in the config
 * and in gobgpd's generated config, the session changes counted, and `vtepd evpn routes` /
 * `vtepd evpn neighbors` as the directory answers them and as the CLI prints them.
 */
import { describe, expect, it } from 'vitest';
import { formatEvpnNeighbors, formatEvpnRoutes } from '../../src/cli/table.js';
import { type ApiHost, apiHandlers } from '../../src/daemon/api.js';
import { type EvpnClient, EvpnDirectory } from '../../src/directory/evpn-directory.js';
import type { EvpnRoute, NeighborInfo, PeerInfo, WatchHandlers } from '../../src/evpn/gobgp.js';
import { gobgpdConfig } from '../../src/evpn/gobgpd.js';
import { errors, ok } from '../support/config-text.js';

const cfg = (neighbors: string) => `underlay: { local: 10.0.0.1 }\ntenants: []\ndirectory: { evpn: { asn: 65000, neighbors: ${neighbors} } }\n`;

describe('directory.evpn.neighbors[].password', () => {
  it('is the TCP MD5 key: taken as given, absent without one', () => {
    const c = ok(cfg('[ { address: 10.0.0.2, password: "s3cret!x" }, { address: 10.0.0.3 } ]'));
    expect(c.directory?.evpn?.neighbors).toEqual([{ address: '10.0.0.2', password: 's3cret!x' }, { address: '10.0.0.3' }]);
  });
  it('names the field when it is empty, too long, or has spaces', () => {
    const msg =
      'directory.evpn.neighbors[0].password: must be 1..80 printable ASCII characters without spaces (the TCP MD5 key of the session, RFC 2385; the same on the neighbor)';
    for (const bad of ['""', `"${'x'.repeat(81)}"`, '"two words"']) expect(errors(cfg(`[ { address: 10.0.0.2, password: ${bad} } ]`)), bad).toEqual([msg]);
    expect(errors(cfg('[ { address: 10.0.0.2, password: 42 } ]'))).toEqual([`${msg} (received the number 42; quote it)`]);
  });
  it("is gobgpd's auth-password in the generated config", () => {
    const c = gobgpdConfig({ asn: 65000, routerId: '10.0.0.1', dir: '/x', neighbors: [{ address: '10.0.0.2', password: 'k' }, { address: '10.0.0.3' }] }) as {
      neighbors: { config: Record<string, unknown> }[];
    };
    expect(c.neighbors.map((n) => n.config)).toEqual([
      { 'neighbor-address': '10.0.0.2', 'peer-as': 65000, 'auth-password': 'k' },
      { 'neighbor-address': '10.0.0.3', 'peer-as': 65000 },
    ]);
  });
});

const H2 = '10.0.0.2';
const route = (o: Partial<EvpnRoute> & Pick<EvpnRoute, 'type' | 'vni'>): EvpnRoute => ({
  rd: '10.0.0.2:1',
  mac: null,
  ip: null,
  nexthop: H2,
  seq: null,
  sticky: false,
  rts: [],
  pmsi: null,
  encap: 8,
  withdrawal: false,
  neighbor: H2,
  ...o,
});

/** A gobgpd that holds `routes`, knows `neighbors`, and reports peer states through the watch. */
class FakeClient implements EvpnClient {
  handlers: WatchHandlers | null = null;
  constructor(
    readonly routes: EvpnRoute[],
    readonly neighbors: NeighborInfo[],
  ) {}
  async addPeer(): Promise<void> {}
  async listPeers(): Promise<PeerInfo[]> {
    return [];
  }
  async listNeighbors(): Promise<NeighborInfo[]> {
    return this.neighbors;
  }
  async addMacRoute(): Promise<void> {}
  async deleteMacRoute(): Promise<void> {}
  async addImetRoute(): Promise<void> {}
  async deleteImetRoute(): Promise<void> {}
  async listEvpn(): Promise<EvpnRoute[]> {
    return this.routes;
  }
  watch(h: WatchHandlers): () => void {
    this.handlers = h;
    return () => {};
  }
  close(): void {}
}

async function directory(routes: EvpnRoute[] = [], neighbors: NeighborInfo[] = []) {
  const client = new FakeClient(routes, neighbors);
  const d = new EvpnDirectory({
    asn: 65000,
    routerId: '10.0.0.1',
    neighbors: [{ address: H2 }],
    vtep: '10.0.0.1',
    port: 4789,
    api: null,
    stateDir: '/x',
    client,
  });
  await d.start();
  return { d, client };
}

describe('vtepd evpn routes / neighbors, from the directory', () => {
  it('counts each time a session comes up or goes down (not the states between)', async () => {
    const { d, client } = await directory();
    const peer = (state: PeerInfo['state']) => client.handlers!.peer!({ address: H2, asn: 65000, state, routerId: H2 });
    for (const s of ['active', 'opensent', 'established', 'idle', 'active', 'established'] as const) peer(s);
    peer('established'); // no change
    client.handlers!.peer!({ address: '192.0.2.9', asn: 1, state: 'established', routerId: '' }); // not a neighbor of the config
    expect(d.status().evpn!.neighbors).toEqual([{ address: H2, state: 'established', changes: 3 }]);
  });

  it('routes: sorted by VNI, type, MAC, IP; one VNI with vni; local ones said so', async () => {
    const m = '02:00:00:00:00:0';
    const { d } = await directory([
      route({ type: 3, vni: 20, ip: H2 }),
      route({ type: 2, vni: 10, mac: `${m}2`, ip: '10.1.0.10', seq: 2 }),
      route({ type: 2, vni: 10, mac: `${m}2` }),
      route({ type: 2, vni: 10, mac: `${m}1`, ip: '10.1.0.9', nexthop: '10.0.0.1', neighbor: '', sticky: true }),
      route({ type: 3, vni: 10, ip: H2 }),
    ]);
    const rows = await d.routes();
    expect(rows.map((r) => `${r.vni} ${r.type} ${r.mac} ${r.ip} ${r.from}`)).toEqual([
      `10 2 ${m}1 10.1.0.9 local`,
      `10 2 ${m}2 null ${H2}`,
      `10 2 ${m}2 10.1.0.10 ${H2}`,
      `10 3 null ${H2} ${H2}`,
      `20 3 null ${H2} ${H2}`,
    ]);
    expect((await d.routes(20)).length).toBe(1);
    expect(formatEvpnRoutes(rows).split('\n').slice(0, 3)).toEqual([
      'VNI  TYPE    MAC                IP         VTEP      SEQ  STICKY  FROM      RD',
      ` 10  2 mac   ${m}1  10.1.0.9   10.0.0.1  -    yes     local     10.0.0.2:1`,
      ` 10  2 mac   ${m}2  -          10.0.0.2  -    no      10.0.0.2  10.0.0.2:1`,
    ]);
    expect(formatEvpnRoutes([])).toBe('no EVPN routes\n');
  });

  it('neighbors: the state, since when, ups and downs, and the route counts gobgpd gives', async () => {
    const up = '2026-12-07T10:00:00.000Z';
    const { d, client } = await directory(
      [],
      [{ address: H2, asn: 65000, state: 'established', routerId: H2, uptime: up, downtime: null, received: 3, accepted: 3, advertised: 2 }],
    );
    client.handlers!.peer!({ address: H2, asn: 65000, state: 'established', routerId: H2 });
    const rows = await d.neighbors();
    expect(rows).toEqual([
      { address: H2, state: 'established', changes: 1, routerId: H2, uptime: up, downtime: null, received: 3, accepted: 3, advertised: 2 },
    ]);
    expect(formatEvpnNeighbors(rows, Date.parse(up) + 125_000)).toBe(
      'NEIGHBOR  STATE        FOR    ROUTER ID  UP/DOWNS  RECEIVED  ACCEPTED  ADVERTISED\n' +
        '10.0.0.2  established  2m 5s  10.0.0.2          1         3         3           2\n',
    );
    // gobgpd not answering: the state vtepd saw, without gobgpd's figures.
    client.listNeighbors = () => Promise.reject(new Error('gobgpd listPeer: unavailable'));
    expect(await d.neighbors()).toEqual([{ ...rows[0], uptime: null, downtime: null, routerId: null, received: null, accepted: null, advertised: null }]);
  });
});

describe('the evpn verbs on a daemon whose directory is not EVPN', () => {
  it('refuse with what its directory is', async () => {
    const handlers = (directory: unknown) => apiHandlers({ daemon: { directory } } as unknown as ApiHost);
    await expect(async () => handlers(null)['evpn.routes']!({}, {} as never)).rejects.toMatchObject({
      code: 'ENODIRECTORY',
      message: 'evpn routes: the directory is not evpn: this daemon has no directory (directory.evpn in its config, docs/evpn.md)',
    });
    await expect(async () => handlers({ backend: 'etcd' })['evpn.neighbors']!({}, {} as never)).rejects.toMatchObject({
      message: "evpn neighbors: the directory is not evpn: this daemon's directory is etcd (directory.evpn in its config, docs/evpn.md)",
    });
  });
});
