/**
 * BGP EVPN mobility and ARP/ND suppression (#17): two vtepd hosts peered over iBGP (AS 65000),
 * each supervising its gobgpd, `directory.freeze` small (more than 2 moves in 300 s freeze a
 * MAC for 600 s).
 *
 *   [h1] vtepd + gobgpd 10.0.0.1 ── veth ── [h2] vtepd + gobgpd 10.0.0.2
 *        blue (VNI 5001): ns blue1, 10.1.0.1, fd00:1::1      ns blue2, 10.1.0.2, fd00:1::2
 *                         ns blue1m (no address)             ns blue2m (no address)
 *
 * Checked as a user would: VM 1's ARP request and neighbour solicitation for VM 2's addresses
 * are answered on h1 from h2's MAC+IP routes (h1's suppressed counters rise, VM 2 hears no
 * request for its address); a MAC sent from blue1m and blue2m in turn is frozen after its
 * third move (status `macs.frozen` 1 on both hosts, the log line, `fdb directory` marks it,
 * gobgpd's routes keep sequence 3 when it speaks again); VM 2's MAC, given in h2's config, is
 * sticky: sent from h1 it is not taken over (h1 refuses and counts, the route stays h2's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import type { TenantStats } from '../../src/daemon/stats.js';
import { GobgpClient } from '../../src/evpn/gobgp.js';
import { sendFrom, vtepdJson } from '../support/ops.js';
import { evpnPair, HOSTS, macOf } from '../support/evpn-pair.js';
import { readPcapFrames, tcpdump } from '../support/pcap.js';

const V6 = ['fd00:1::1', 'fd00:1::2'];
/** A MAC no port owns: sent from blue1m and blue2m in turn, it moves between the hosts. */
const FLAP = '02:00:00:01:00:09';

interface Rec {
  mac: string;
  owner: string;
  seq: number;
  ips: string[];
  pinned?: boolean;
  frozen: boolean;
}
interface Status {
  directory: {
    evpn: { api: string; neighbors: { address: string; state: string }[] };
    macs: { frozen: number; claimsRefusedFrozen: number; claimsRefusedPinned: number; moves: number };
  } | null;
}

describe('evpn directory: ARP/ND suppression from MAC+IP routes, duplicate detection, sticky MACs', () => {
  const lab = new Lab('mob');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-mob-'));
  const daemons: Daemonised[] = [];
  const clients: GobgpClient[] = [];

  const config = (i: number) =>
    [
      `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
      'log: { level: info }',
      `directory: { evpn: { asn: 65000, neighbors: [ { address: ${HOSTS[1 - i]} } ] }, freeze: { moves: 2, window: 300, hold: 600 } }`,
      'tenants:',
      '  - name: blue',
      '    vni: 5001',
      `    ports: [ { tap: b${i + 1}, netns: ${lab.ns(`blue${i + 1}`)}, mac: "${macOf(i + 1)}", address: 10.1.0.${i + 1}/24 }, { tap: b${i + 1}m, netns: ${lab.ns(`blue${i + 1}m`)} } ]`,
      '',
    ].join('\n');
  const sock = (i: number) => daemons[i]!.socket;
  const status = (i: number) => vtepdJson<Status>(lab, `h${i + 1}`, ['status', '--socket', sock(i)]);
  const macs = async (i: number) => (await status(i)).directory!.macs;
  const rec = async (i: number, mac: string) =>
    (await vtepdJson<Rec[]>(lab, `h${i + 1}`, ['fdb', 'directory', '--tenant', 'blue', '--socket', sock(i)])).find((r) => r.mac === mac);
  const blue = async (i: number) =>
    (await vtepdJson<{ tenants: TenantStats[] }>(lab, `h${i + 1}`, ['stats', '--socket', sock(i)])).tenants.find((t) => t.tenant === 'blue')!;
  /** The type-2 routes of `mac` in h1's gobgpd (its own and h2's): next hop, sequence, sticky. */
  const routesOf = async (mac: string) =>
    (await clients[0]!.listEvpn('global'))
      .filter((r) => r.type === 2 && r.mac === mac && r.ip === null)
      .map((r) => ({ nexthop: r.nexthop, seq: r.seq ?? 0, sticky: r.sticky }))
      .sort((a, b) => (a.nexthop < b.nexthop ? -1 : 1));
  const send = (ns: string, tap: string, mac: string) => sendFrom(lab, ns, tap, mac);

  beforeAll(async () => {
    await evpnPair(lab, ['blue1', 'blue2', 'blue1m', 'blue2m'], ['blue1', 'blue2']);
    for (let i = 0; i < 2; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, config(i), dir));
    for (let i = 0; i < 2; i++) await lab.exec(`blue${i + 1}`, 'ip', ['-6', 'addr', 'add', `${V6[i]}/64`, 'dev', `b${i + 1}`, 'nodad']);
    for (let i = 0; i < 2; i++) clients.push(new GobgpClient((await status(i)).directory!.evpn.api));
    for (let i = 0; i < 2; i++)
      await until(
        `h${i + 1}'s BGP session to be established`,
        () => status(i),
        (x) => x.directory?.evpn.neighbors.some((n) => n.state === 'established') ?? false,
        30_000,
        200,
      );
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('VM 1’s ARP and ND for VM 2 are answered on h1 from h2’s MAC+IP routes; VM 2 hears no request for its address', async () => {
    // VM 2 solicits a neighbour: h2 gleans fd00:1::2 and advertises it in a MAC+IP route.
    await lab.exec('blue2', 'ping', ['-6', '-c', '1', '-W', '1', 'fd00:1::99']).catch(() => undefined);
    await until(
      "h1's record of VM 2 to hold its IPv4 and IPv6 addresses (MAC+IP routes)",
      () => rec(0, macOf(2)),
      (r) => r?.owner === HOSTS[1] && r.ips.includes('10.1.0.2') && r.ips.includes(V6[1]!),
      20_000,
      100,
    );
    const before = await blue(0);
    const file = join(dir, 'vm2.pcap');
    const cap = await tcpdump(lab, 'blue2', 'b2', file, 'arp or icmp6', async () => {
      // VM 2's own ARP request (for VM 1): a first packet in the file.
      await lab.exec('blue2', 'ip', ['neigh', 'flush', 'dev', 'b2']);
      await lab.exec('blue2', 'ping', ['-c', '1', '-W', '1', '10.1.0.1']).catch(() => undefined);
    });
    await lab.exec('blue1', 'ip', ['neigh', 'flush', 'dev', 'b1']);
    await untilPings(lab, 'blue1', '10.1.0.2', ['-c', '1', '-W', '1']);
    await untilPings(lab, 'blue1', V6[1]!, ['-c', '1', '-W', '1']);
    const after = await until(
      "h1's ARP and ND suppressed counters to rise",
      () => blue(0),
      (t) => t.arpSuppressed > before.arpSuppressed && t.ndSuppressed > before.ndSuppressed,
      10_000,
      100,
    );
    await cap.stop();
    const frames = readPcapFrames(file);
    // ARP requests (op 1) for 10.1.0.2; neighbour solicitations (ICMPv6 135) for fd00:1::2.
    const arpFor = frames.filter((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1).map((f) => [...f.subarray(38, 42)].join('.'));
    const nsFor = frames
      .filter((f) => f.readUInt16BE(12) === 0x86dd && f[20] === 58 && f[54] === 135)
      .map((f) =>
        f
          .subarray(62, 78)
          .toString('hex')
          .replace(/(.{4})(?!$)/g, '$1:'),
      );
    expect(frames.length).toBeGreaterThan(0);
    expect(arpFor).not.toContain('10.1.0.2');
    expect(nsFor).not.toContain('fd00:0001:0000:0000:0000:0000:0000:0002');
    console.log(
      `evpn-mobility: h1 suppressed ARP ${after.arpSuppressed - before.arpSuppressed}, ND ${after.ndSuppressed - before.ndSuppressed}; ` +
        `VM 2 heard ${frames.length} ARP/ICMPv6 frames, ARP requests for [${arpFor.join(', ')}]`,
    );
  });

  it('a MAC that moves more than freeze.moves times in the window is frozen: status, log, its sequence stops at 3', async () => {
    const t0 = Date.now();
    // It appears on h2 (seq 0), then moves h1 (1), h2 (2), h1 (3): the third move freezes it.
    const steps: [number, number][] = [
      [1, 0],
      [0, 1],
      [1, 2],
      [0, 3],
    ];
    for (const [at, seq] of steps) {
      await send(`blue${at + 1}m`, `b${at + 1}m`, FLAP);
      await until(
        `h${2 - at}'s record of ${FLAP} to be h${at + 1}'s with sequence ${seq}`,
        () => rec(1 - at, FLAP),
        (r) => r?.owner === HOSTS[at] && r.seq === seq,
        20_000,
        100,
      );
    }
    for (let i = 0; i < 2; i++)
      await until(
        `h${i + 1} to freeze ${FLAP}`,
        () => macs(i),
        (m) => m.frozen === 1,
        10_000,
        100,
      );
    console.log(`evpn-mobility: ${FLAP} frozen on both hosts after 3 moves, ${Date.now() - t0} ms`);
    expect(await rec(0, FLAP)).toMatchObject({ owner: HOSTS[0], seq: 3, frozen: true });
    for (const d of daemons) expect(d.stderr()).toMatch(/"mac":"02:00:00:01:00:09".*MAC moves too often \(a duplicate\?\): frozen where it is/);
    // It speaks on h2 again: the claim is refused, no sequence 4 anywhere.
    await send('blue2m', 'b2m', FLAP);
    await until(
      "h2 to refuse the frozen MAC's claim",
      () => macs(1),
      (m) => m.claimsRefusedFrozen >= 1,
      10_000,
      100,
    );
    expect(await routesOf(FLAP)).toEqual([{ nexthop: HOSTS[0], seq: 3, sticky: false }]);
    expect(await rec(0, FLAP)).toMatchObject({ owner: HOSTS[0], seq: 3 });
    expect(await rec(1, FLAP)).toMatchObject({ owner: HOSTS[0], seq: 3, frozen: true });
  });

  it('VM 2’s MAC (given in h2’s config) is sticky: seen on h1 it is not taken over', async () => {
    expect(await routesOf(macOf(2))).toEqual([{ nexthop: HOSTS[1], seq: 0, sticky: true }]);
    expect(await rec(0, macOf(2))).toMatchObject({ owner: HOSTS[1], seq: 0, pinned: true });
    await send('blue1m', 'b1m', macOf(2));
    await until(
      "h1 to refuse VM 2's MAC (sticky at h2)",
      () => macs(0),
      (m) => m.claimsRefusedPinned >= 1,
      10_000,
      100,
    );
    expect(daemons[0]!.stderr()).toMatch(/"owner":"10\.0\.0\.2".*MAC is sticky \(static\) at another VTEP: not claimed here/);
    expect(await routesOf(macOf(2))).toEqual([{ nexthop: HOSTS[1], seq: 0, sticky: true }]);
    expect(await rec(0, macOf(2))).toMatchObject({ owner: HOSTS[1], seq: 0 });
    expect(await rec(1, macOf(2))).toMatchObject({ owner: HOSTS[1], seq: 0 });
  });
});
