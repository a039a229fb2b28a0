/**
 * BGP EVPN, step 1 of #17: the gobgpd supervisor (src/evpn/gobgpd.ts) and the gRPC client
 * (src/evpn/gobgp.ts) against Debian's real gobgpd, one in each of two lab namespaces:
 *
 *   [a] gobgpd AS 65000, 10.77.0.1 ── veth ── [b] gobgpd AS 65000, 10.77.0.2
 *
 * A names B in its generated config; B adds A over the API (AddPeer). iBGP, l2vpn-evpn only.
 * A originates a type-2 route with an IP and MAC mobility sequence 1, a MAC-only type-2 and a
 * type-3; B's WatchEvent and ListPath decode them exactly, and the attributes B received are
 * the RFC bytes (src/evpn/codec.ts). A DeletePath on A reaches B as a withdrawal. gobgpd A
 * SIGKILLed by its PID: the supervisor notices, restarts it, and the session comes back.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { until } from '../../lab/wait.js';
import {
  encapBytes,
  imetNlriBytes,
  macIpNlriBytes,
  mobilityBytes,
  parseAttribute,
  parseRd,
  parseRt,
  pmsiBytes,
  rtBytes,
  splitCommunities,
} from '../../src/evpn/codec.js';
import { type EvpnRoute, type ImetRouteSpec, type MacRouteSpec, PROTO_DIR, type PeerInfo } from '../../src/evpn/gobgp.js';
import { Gobgpd } from '../../src/evpn/gobgpd.js';

const A = '10.77.0.1';
const B = '10.77.0.2';
const RD = `${A}:100`;
const RT = '65000:100';
const mac1: MacRouteSpec = { rd: RD, rts: [RT], vni: 100, mac: '02:00:00:0a:00:01', ip: '10.1.0.1', nexthop: A, seq: 1 };
const mac2: MacRouteSpec = { rd: RD, rts: [RT], vni: 100, mac: '02:00:00:0a:00:02', nexthop: A };
const imet: ImetRouteSpec = { rd: RD, rts: [RT], vni: 100, nexthop: A };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** What B must decode for each route A sends. */
const expected = (extra: Partial<EvpnRoute>[]): EvpnRoute[] => {
  const base = { rd: RD, vni: 100, nexthop: A, sticky: false, rts: [RT], encap: 8, withdrawal: false, neighbor: A };
  const all: EvpnRoute[] = [
    { type: 2, mac: mac1.mac, ip: '10.1.0.1', seq: 1, pmsi: null, ...base },
    { type: 2, mac: mac2.mac, ip: null, seq: null, pmsi: null, ...base },
    { type: 3, mac: null, ip: A, seq: null, pmsi: 6, ...base },
  ];
  return all.map((r, i) => ({ ...r, ...extra[i] }));
};
const byKey = (r: EvpnRoute) => `${r.type}/${r.mac ?? ''}`;
const sorted = (rs: EvpnRoute[]) => [...rs].sort((x, y) => (byKey(x) < byKey(y) ? -1 : 1));

describe('gobgpd: the vendored protos', () => {
  it('are pinned to the installed gobgpd (gobgpd --version against proto/gobgp/VERSION)', () => {
    const pinned = readFileSync(join(PROTO_DIR, 'VERSION'), 'utf8').trim();
    const installed = execFileSync('gobgpd', ['--version'], { encoding: 'utf8' }).trim();
    expect(installed).toBe(`gobgpd version ${pinned}`);
  });
});

describe('gobgpd: supervisor and EVPN client against real gobgpd in two namespaces', () => {
  const lab = new Lab('eb');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-evpn-'));
  let ga: Gobgpd;
  let gb: Gobgpd;
  const seen: EvpnRoute[] = [];
  const peerEvents: PeerInfo[] = [];
  let unwatch = () => {};

  const established = async (g: Gobgpd, peer: string) =>
    until(
      `${peer} established on ${g.api}`,
      () => g.client.listPeers(),
      (ps) => ps.some((p) => p.address === peer && p.state === 'established'),
    );

  beforeAll(async () => {
    await lab.addHost('a');
    await lab.addHost('b');
    await lab.link('a', 'eth0', `${A}/24`, 'b', 'eth0', `${B}/24`);
    const common = { asn: 65000, connectRetry: 1, backoffMs: [100, 2000] as [number, number] };
    ga = new Gobgpd({ ...common, routerId: A, listenAddresses: [A], neighbors: [{ address: B }], dir: join(dir, 'a'), netns: lab.ns('a') });
    gb = new Gobgpd({ ...common, routerId: B, listenAddresses: [B], dir: join(dir, 'b'), netns: lab.ns('b') });
    await Promise.all([ga.start(), gb.start()]);
    await gb.client.addPeer({ address: A, asn: 65000, connectRetry: 1 });
    unwatch = gb.client.watch({ route: (r) => seen.push(r), peer: (p) => peerEvents.push(p) });
  }, 60_000);

  afterAll(async () => {
    unwatch();
    await Promise.all([ga?.stop(), gb?.stop()]);
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts gobgpd from a generated config, API on a unix socket; GetBgp answers', async () => {
    expect(await ga.client.getBgp()).toMatchObject({ asn: 65000, routerId: A, listenPort: 179, listenAddresses: [A] });
    expect(ga.status()).toMatchObject({ running: true, restarts: 0, api: `unix://${join(dir, 'a', 'gobgpd.sock')}` });
  });

  it('peers over the veth in l2vpn-evpn: the session is established on both sides', async () => {
    await established(ga, B);
    const [p] = await gb.client.listPeers(A);
    expect(p).toEqual({ address: A, asn: 65000, state: 'established', routerId: A });
  });

  it("A's type-2 (with IP and mobility seq 1, and MAC-only) and type-3 routes reach B decoded exactly", async () => {
    await ga.client.addMacRoute(mac1);
    await ga.client.addMacRoute(mac2);
    await ga.client.addImetRoute(imet);
    await until(
      'B to watch three routes from A',
      async () => seen.filter((r) => r.neighbor === A).length,
      (n) => n >= 3,
    );
    expect(sorted(seen.filter((r) => r.neighbor === A))).toEqual(expected([]));
    expect(sorted(await gb.client.listEvpn('adj-in', A))).toEqual(expected([]));
    expect(sorted(await gb.client.listEvpn('global'))).toEqual(expected([]));
  });

  it('B received the RFC bytes: RT, VXLAN encapsulation, mobility, PMSI, Label1 = VNI', async () => {
    const paths = await gb.client.listEvpnRaw('adj-in', A, true);
    const attrs = (p: { pattrsBinary?: Buffer[] } | undefined) => (p?.pattrsBinary ?? []).map(parseAttribute);
    const withMac = paths.find((p) => p.nlri.macAddress === mac1.mac);
    expect(withMac).toBeDefined();
    const comms = attrs(withMac).find((a) => a.type === 16);
    expect(splitCommunities(comms?.value ?? Buffer.alloc(0)).map(hex)).toEqual([rtBytes(parseRt(RT)), encapBytes(), mobilityBytes(1)].map(hex));
    const reach = attrs(withMac).find((a) => a.type === 14);
    expect(hex(reach?.value ?? Buffer.alloc(0))).toContain(hex(macIpNlriBytes(parseRd(RD), mac1.mac, '10.1.0.1', 100)));
    const im = paths.find((p) => p.nlri['@type'].endsWith('EVPNInclusiveMulticastEthernetTagRoute'));
    expect(im).toBeDefined();
    expect(attrs(im).find((a) => a.type === 22)?.value).toEqual(pmsiBytes(100, A));
    expect(hex(attrs(im).find((a) => a.type === 14)?.value ?? Buffer.alloc(0))).toContain(hex(imetNlriBytes(parseRd(RD), A)));
  });

  it('a DeletePath on A reaches B as a withdrawal', async () => {
    await ga.client.deleteMacRoute(mac1);
    const w = await until('B to watch the withdrawal', async () => seen.find((r) => r.withdrawal && r.mac === mac1.mac), Boolean);
    expect(w).toMatchObject({ type: 2, mac: mac1.mac, vni: 100, rd: RD, withdrawal: true });
    // gobgpd lists a table in no set order: the MAC-only type-2 left and the type-3 (mac null).
    expect((await gb.client.listEvpn('adj-in', A)).map((r) => r.mac).sort()).toEqual([mac2.mac, null].sort());
  });

  it('type-2 calls made together (one AddPathStream request): each settles on its own, the one gobgpd refuses names its reason', async () => {
    const x = (i: number, nexthop = A): MacRouteSpec => ({ ...mac2, mac: `02:00:00:0b:00:0${i}`, nexthop });
    const results = await Promise.allSettled([
      ga.client.addMacRoute(x(1)),
      ga.client.addMacRoute(x(2, '10.77.0')),
      ga.client.addMacRoute(x(3)),
      ga.client.deleteMacRoute(mac2),
    ]);
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))).toEqual([
      'ok',
      'gobgpd addPath: invalid nexthop address: 10.77.0',
      'ok',
      'ok',
    ]);
    await until(
      'B to hold x1 and x3 from A, and no longer mac2',
      async () => (await gb.client.listEvpn('adj-in', A)).map((r) => r.mac).sort(),
      (macs) => JSON.stringify(macs) === JSON.stringify([x(1).mac, x(3).mac, null].sort()),
    );
  });

  it("A's gobgpd SIGKILLed by PID: noticed, restarted, the session and re-added routes come back", async () => {
    const pid = ga.pid as number;
    const restarted = new Promise<void>((r) => ga.once('restart', () => r()));
    ga.once('restart', () => void ga.client.addImetRoute(imet));
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    await restarted;
    console.log(`gobgpd restarted in ${Date.now() - t0} ms`);
    expect(ga.status()).toMatchObject({ running: true, restarts: 1 });
    expect(ga.pid).not.toBe(pid);
    await until('B to see the session to A go down', async () => peerEvents.some((p) => p.address === A && p.state !== 'established'));
    await established(gb, A);
    await until(
      'B to get the type-3 route again, and no type-2',
      () => gb.client.listEvpn('adj-in', A),
      (rs) => rs.length === 1 && rs[0].type === 3,
    );
  });
});
