/**
 * Port 179 on a hostile underlay (#17): two vtepd hosts peered with a TCP MD5 password
 * (RFC 2385, `directory.evpn.neighbors[].password`), and an attacker on the same segment.
 * h1's vtepd is given a gobgpd the test runs (`gobgp.api`: the password goes through AddPeer),
 * h2's vtepd supervises its own (the password is in its generated config).
 *
 *   [h1] vtepd 10.0.0.1 ──┐
 *   [h2] vtepd 10.0.0.2 ──┼── bridge [sw]
 *   [mal] 10.0.0.3 ───────┘   (later also sends from 10.0.0.2, without answering ARP for it)
 *
 * Checked as a user would: `vtepd evpn neighbors` shows the session established and counted,
 * `vtepd evpn routes` the routes, the metrics say so; then the attacker (a) opens a BGP session
 * from an address that is no neighbor (gobgpd closes it without an OPEN) and (b) sends a BGP
 * OPEN from the neighbor's address without the password (the kernel drops its SYN:
 * TcpExtTCPMD5NotFound rises in h1's namespace); neither gets a session or a route in.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { startDaemon } from '../../lab/topology.js';
import { until } from '../../lab/wait.js';
import { type FdbRow, whereText } from '../../src/core/fdb.js';
import type { EvpnNeighborRow, EvpnRouteRow } from '../../src/directory/evpn-directory.js';
import { Gobgpd } from '../../src/evpn/gobgpd.js';
import { sample, scrape, vtepd, vtepdJson } from '../support/ops.js';

const H1 = '10.0.0.1';
const H2 = '10.0.0.2';
const MAL = '10.0.0.3';
const PASSWORD = 'vtepd-evpn-Md5!';
const METRICS = '127.0.0.1:9477';
/** A BGP speaker in a few lines: connect from SRC to DST:179, send an OPEN (AS 65000, l2vpn-evpn), say what came back. */
const ATTACK = `
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
s = socket.socket()
s.settimeout(4)
s.bind((src, 0))
try:
    s.connect((dst, 179))
except OSError as e:
    print('no connection:', type(e).__name__)
    sys.exit(0)
cap = bytes([2, 6, 1, 4, 0, 25, 0, 70])
body = struct.pack('!BHH4sB', 4, 65000, 90, socket.inet_aton(src), len(cap)) + cap
s.sendall(b'\\xff' * 16 + struct.pack('!HB', 19 + len(body), 1) + body)
got = b''
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    end = 'closed'
except socket.timeout:
    end = 'open'
except OSError as e:
    end = type(e).__name__
print('connected; %s; %d bytes back%s' % (end, len(got), '; an OPEN' if len(got) > 18 and got[18] == 1 else ''))
`;

describe('evpn: TCP MD5 on port 179, and an attacker on the underlay', () => {
  const lab = new Lab('ops');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-ops-'));
  const sockets: string[] = [];
  let external: Gobgpd | null = null;

  const config = (i: number) =>
    [
      `underlay: { local: ${[H1, H2][i]}, port: 4789 }`,
      'log: { level: info }',
      ...(i === 0 ? [`metrics: { listen: "${METRICS}" }`] : []),
      `directory: { evpn: { asn: 65000, neighbors: [ { address: ${[H2, H1][i]}, password: "${PASSWORD}" } ]${i === 0 ? `, gobgp: { api: "${external!.api}" }` : ''} } }`,
      'tenants:',
      `  - { name: blue, vni: 5001, ports: [ { tap: b${i + 1}, netns: ${lab.ns(`blue${i + 1}`)}, mac: "02:00:00:01:00:0${i + 1}", address: 10.1.0.${i + 1}/24 } ] }`,
      '',
    ].join('\n');
  const cli = <T>(args: string[]) => vtepdJson<T>(lab, 'h1', [...args, '--socket', sockets[0]!]);
  const neighbors = () => cli<EvpnNeighborRow[]>(['evpn', 'neighbors']);
  /** The FDB without ages: each MAC, its type and where it is. */
  const fdb = async () => (await cli<FdbRow[]>(['fdb', 'show', '--tenant', 'blue'])).map((r) => `${r.mac} ${r.type} ${whereText(r.where)}`);
  const md5NotFound = async () => Number(/TcpExtTCPMD5NotFound\s+(\d+)/.exec((await lab.exec('h1', 'nstat', ['-asz', 'TcpExtTCPMD5NotFound'])).stdout)?.[1]);
  const attack = async (src: string) => (await lab.exec('mal', 'python3', ['-c', ATTACK, src, H1])).stdout.trim();

  beforeAll(async () => {
    for (const h of ['sw', 'h1', 'h2', 'mal']) await lab.addHost(h, { ipv6: false });
    for (const h of ['blue1', 'blue2']) await lab.addHost(h, { ipv6: false });
    await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
    for (const [h, a] of [
      ['h1', H1],
      ['h2', H2],
      ['mal', MAL],
    ] as const) {
      await lab.link(h, 'ul0', `${a}/24`, 'sw', `p-${h}`, null);
      await lab.exec('sw', 'ip', ['link', 'set', `p-${h}`, 'master', 'br0']);
    }
    external = new Gobgpd({ asn: 65000, routerId: H1, listenAddresses: [H1], dir: join(dir, 'gobgpd-h1'), netns: lab.ns('h1') });
    await external.start();
    for (let i = 0; i < 2; i++) sockets.push((await startDaemon(lab, `h${i + 1}`, config(i), dir)).socket);
  }, 60_000);

  afterAll(async () => {
    await external?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('with the password on both hosts the session comes up: evpn neighbors, evpn routes, fdb and the metrics say so', async () => {
    const [n] = await until(
      "h1's session to 10.0.0.2 to be established",
      neighbors,
      (ns) => ns[0]?.state === 'established' && ns[0].received === 3,
      30_000,
      200,
    );
    expect(n).toMatchObject({ address: H2, state: 'established', changes: 1, routerId: H2, received: 3, accepted: 3, advertised: 3 });
    expect(Date.parse(n!.uptime!)).toBeLessThanOrEqual(Date.now());
    const text = (await vtepd(lab, 'h1', ['evpn', 'neighbors', '--socket', sockets[0]!])).stdout;
    expect(text).toMatch(
      /^NEIGHBOR\s+STATE\s+FOR\s+ROUTER ID\s+UP\/DOWNS\s+RECEIVED\s+ACCEPTED\s+ADVERTISED\n10\.0\.0\.2\s+established\s+\S.*\s+1\s+3\s+3\s+3\n$/,
    );
    // h2's three routes (membership, MAC, MAC+IP) from 10.0.0.2 and h1's own three.
    const routes = await until(
      "h1's gobgpd to hold six routes",
      () => cli<EvpnRouteRow[]>(['evpn', 'routes', '--vni', '5001']),
      (r) => r.length === 6,
      10_000,
      100,
    );
    expect(routes.map((r) => `${r.type} ${r.mac ?? '-'} ${r.ip ?? '-'} ${r.nexthop} ${r.from}`)).toEqual([
      `2 02:00:00:01:00:01 - ${H1} local`,
      `2 02:00:00:01:00:01 10.1.0.1 ${H1} local`,
      `2 02:00:00:01:00:02 - ${H2} ${H2}`,
      `2 02:00:00:01:00:02 10.1.0.2 ${H2} ${H2}`,
      `3 - ${H1} ${H1} local`,
      `3 - ${H2} ${H2} ${H2}`,
    ]);
    expect(await cli<EvpnRouteRow[]>(['evpn', 'routes', '--vni', '5002'])).toEqual([]);
    expect(await fdb()).toContain(`02:00:00:01:00:02 directory vtep ${H2}`);
    const m = await scrape(lab, 'h1', METRICS);
    expect(sample(m, 'vtepd_bgp_session_up', { neighbor: H2 })).toBe(1);
    expect(sample(m, 'vtepd_bgp_session_changes_total', { neighbor: H2 })).toBe(1);
    expect(sample(m, 'vtepd_evpn_routes', { direction: 'in' })).toBe(3);
    expect(sample(m, 'vtepd_evpn_routes', { direction: 'out' })).toBe(3);
  });

  it('(a) a BGP session from an address that is no neighbor: closed without an OPEN, nothing imported', async () => {
    const fdbBefore = await fdb();
    const said = await attack(MAL);
    console.log(`evpn-security: BGP OPEN from ${MAL} (no neighbor): ${said}`);
    expect(said).toMatch(/^connected; (closed|ConnectionResetError); 0 bytes back$/);
    expect(await neighbors()).toMatchObject([{ address: H2, state: 'established', changes: 1 }]);
    expect(await fdb()).toEqual(fdbBefore);
  });

  it('(b) a BGP OPEN from the neighbor’s address without the password: the kernel drops its SYN (TcpExtTCPMD5NotFound)', async () => {
    // The attacker sends from 10.0.0.2 too, without answering ARP for it (h2 keeps its address).
    await lab.exec('mal', 'sysctl', ['-q', '-w', 'net.ipv4.conf.ul0.arp_ignore=8', 'net.ipv4.conf.ul0.arp_announce=2']);
    await lab.exec('mal', 'ip', ['addr', 'add', `${H2}/32`, 'dev', 'ul0']);
    const fdbBefore = await fdb();
    const before = await md5NotFound();
    const said = await attack(H2);
    const after = await md5NotFound();
    console.log(`evpn-security: BGP OPEN from ${H2} without the password: ${said}; TcpExtTCPMD5NotFound ${before} -> ${after}`);
    expect(said).toBe('no connection: TimeoutError');
    expect(after).toBeGreaterThan(before);
    expect(await neighbors()).toMatchObject([{ address: H2, state: 'established', changes: 1 }]);
    expect(await fdb()).toEqual(fdbBefore);
  });
});
