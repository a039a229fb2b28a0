/**
 * BGP EVPN as vtepd's directory (#17, step 2): two vtepd hosts peered over iBGP (AS 65000,
 * each names the other), no flood list in either config. h2's vtepd starts and supervises its
 * gobgpd; h1's uses a gobgpd the test runs (`gobgp.api`), which vtepd gives the neighbor.
 *
 *   [h1] vtepd + gobgpd 10.0.0.1 ── veth ── [h2] vtepd + gobgpd 10.0.0.2
 *        blue (VNI 5001): ns blue1, 10.1.0.1        blue (VNI 5001): ns blue2, 10.1.0.2
 *
 * Checked as a user would: `vtepd status --json` says the backend is evpn with the neighbor
 * established; each host's flood list of blue holds the other VTEP (type-3 routes); `vtepd fdb
 * show` lists the other VM's MAC behind the other VTEP (a type-2 route); the VMs ping each
 * other; h2's gobgpd SIGKILLed comes back with its routes; a MAC learned on h2 moving to h1 and
 * back is advertised with sequence 1 then 2 and the loser withdraws its route (VM 2's own MAC,
 * given in the config, is sticky: test/netns/evpn-mobility.test.ts); removing h2's port (reload)
 * withdraws its MAC and its membership on h1; h2's vtepd SIGKILLed takes its gobgpd along.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import { Gobgpd } from '../../src/evpn/gobgpd.js';
import { sendFrom, vtepd, vtepdJson } from '../support/ops.js';
import { evpnPair, HOSTS, macOf, pairCli } from '../support/evpn-pair.js';

/** A MAC no port's config gives (learned, not sticky): the one that moves. */
const MOVER = '02:00:00:01:00:09';
interface Rec {
  mac: string;
  owner: string;
  seq: number;
}

interface Status {
  directory: {
    backend: string;
    connected: boolean;
    evpn: {
      asn: number;
      routerId: string;
      api: string;
      gobgpd: { pid: number | null; restarts: number } | null;
      neighbors: { address: string; state: string }[];
      routes: { in: number; out: number };
    };
    macs: { macs: number; owned: number };
  } | null;
  tenants: { name: string; flood: string[] }[];
}

describe('evpn directory: two vtepd hosts over gobgpd (h2 supervises its own, h1 is given one)', () => {
  const lab = new Lab('ev');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-ev-'));
  const daemons: Daemonised[] = [];
  /** h1's gobgpd, run by the test (no neighbor in its config: h1's vtepd adds it over the API). */
  let external: Gobgpd | null = null;

  const config = (i: number, withPort = true) =>
    [
      // Named here so that a reload with this text keeps it (startDaemon adds one only to the first file).
      `control: { socket: ${join(dir, `h${i + 1}.sock`)} }`,
      `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
      'log: { level: info }',
      // h1 withdraws at once when the session goes (gracefulRestart: 0); evpn-restart-gr.test.ts holds the routes instead.
      `directory: { evpn: { asn: 65000, neighbors: [ { address: ${HOSTS[1 - i]} } ]${i === 0 ? `, gobgp: { api: "${external!.api}" }, gracefulRestart: 0` : ''} } }`,
      'tenants:',
      '  - name: blue',
      '    vni: 5001',
      withPort
        ? `    ports: [ { tap: b${i + 1}, netns: ${lab.ns(`blue${i + 1}`)}, mac: "${macOf(i + 1)}", address: 10.1.0.${i + 1}/24 }${i === 0 ? `, { tap: b1m, netns: ${lab.ns('blue1m')} }` : ''} ]`
        : '    ports: []',
      '',
    ].join('\n');
  const sock = (i: number) => daemons[i]!.socket;
  const cli = pairCli(lab, sock);
  const status = (i: number) => cli.status<Status>(i);
  const { where, untilWhere, untilGobgpdRestarted } = cli;
  const floodOf = async (i: number) => (await status(i)).tenants.find((t) => t.name === 'blue')?.flood ?? [];

  beforeAll(async () => {
    await evpnPair(lab, ['blue1', 'blue2', 'blue1m']);
    external = new Gobgpd({ asn: 65000, routerId: HOSTS[0], listenAddresses: [HOSTS[0]], dir: join(dir, 'gobgpd-h1'), netns: lab.ns('h1') });
    await external.start();
    for (let i = 0; i < 2; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, config(i), dir));
  }, 60_000);

  afterAll(async () => {
    await external?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the session comes up, each flood list holds the other VTEP, each FDB the other VM, and the VMs ping', async () => {
    const t0 = Date.now();
    for (let i = 0; i < 2; i++) {
      const s = await until(
        `h${i + 1}'s BGP session to ${HOSTS[1 - i]} to be established`,
        () => status(i),
        (x) => x.directory?.evpn.neighbors.some((n) => n.address === HOSTS[1 - i] && n.state === 'established') ?? false,
        30_000,
        200,
      );
      expect(s.directory).toMatchObject({ backend: 'evpn', connected: true, evpn: { asn: 65000, routerId: HOSTS[i] } });
    }
    // h1 uses the test's gobgpd (no supervision), h2 its own.
    expect((await status(0)).directory!.evpn).toMatchObject({ api: external!.api, gobgpd: null });
    expect((await status(1)).directory!.evpn.gobgpd).toMatchObject({ restarts: 0 });
    for (let i = 0; i < 2; i++) {
      await until(
        `h${i + 1}'s blue flood list to hold ${HOSTS[1 - i]}`,
        () => floodOf(i),
        (f) => f.includes(HOSTS[1 - i]!),
        20_000,
        100,
      );
      await untilWhere(`h${i + 1}'s FDB to have VM ${2 - i} behind ${HOSTS[1 - i]}`, i, macOf(2 - i), `directory vtep ${HOSTS[1 - i]}`, 20_000);
    }
    console.log(`evpn-vtepd: sessions up, flood lists and FDBs from the routes ${Date.now() - t0} ms after both daemons ran`);
    expect(await floodOf(0)).toEqual([HOSTS[1]]);
    // Each host advertises a type-3 route and the MAC+IP and MAC-only type-2 routes of its VM, and imports the other's.
    expect((await status(0)).directory!.evpn.routes).toEqual({ in: 3, out: 3 });
    const text = (await vtepd(lab, 'h1', ['status', '--socket', sock(0)])).stdout;
    expect(text).toMatch(/directory evpn AS 65000 router-id 10\.0\.0\.1, neighbors 10\.0\.0\.2 established, routes in 3 out 3: connected/);
    await untilPings(lab, 'blue1', '10.1.0.2');
    await untilPings(lab, 'blue2', '10.1.0.1');
  });

  it('h2’s gobgpd SIGKILLed: vtepd restarts it and advertises its routes again; h1 has VM 2 back', async () => {
    const pid = (await status(1)).directory!.evpn.gobgpd!.pid!;
    process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    await untilWhere("h1's FDB to drop VM 2 (the session went down)", 0, macOf(2), null, 20_000);
    expect(await untilGobgpdRestarted(1)).not.toBe(pid);
    await untilWhere("h1's FDB to have VM 2 again", 0, macOf(2), `directory vtep ${HOSTS[1]}`);
    expect(await floodOf(0)).toEqual([HOSTS[1]]);
    expect((await status(1)).directory!.evpn.routes).toEqual({ in: 3, out: 3 });
    console.log(`evpn-vtepd: gobgpd killed on h2; h1 had VM 2 back after ${Date.now() - t0} ms`);
    await untilPings(lab, 'blue1', '10.1.0.2');
  });

  it('a MAC learned on h2 moves to h1 and back: sequence 1 then 2, the losing host withdraws its route each time', async () => {
    const records = (i: number) => vtepdJson<Rec[]>(lab, `h${i + 1}`, ['fdb', 'directory', '--tenant', 'blue', '--socket', sock(i)]);
    const rec = async (i: number) => (await records(i)).find((r) => r.mac === MOVER);
    /** MOVER speaks on host `to` (0 or 1): the other host converges on it with `seq` and imports `routesIn` routes once the loser withdrew. */
    const move = async (to: number, ns: string, tap: string, seq: number, routesIn: number) => {
      const t0 = Date.now();
      const from = 1 - to;
      await sendFrom(lab, ns, tap, MOVER);
      const at = `h${from + 1}`;
      await until(
        `${at} to have ${MOVER} behind ${HOSTS[to]} with sequence ${seq}`,
        () => rec(from),
        (r) => r?.owner === HOSTS[to] && r.seq === seq,
        20_000,
        100,
      );
      await untilWhere(`${at}'s FDB to point ${MOVER} at ${HOSTS[to]}`, from, MOVER, `directory vtep ${HOSTS[to]}`, 20_000);
      await until(
        `h${to + 1} to import ${routesIn} routes (the loser's withdrawn)`,
        async () => (await status(to)).directory!.evpn.routes.in,
        (n) => n === routesIn,
        20_000,
        100,
      );
      expect(await where(to, MOVER)).toBe(`learned port ${tap}`);
      console.log(`evpn-vtepd: ${MOVER} moved to h${to + 1}: converged with seq ${seq}, the other route withdrawn, in ${Date.now() - t0} ms`);
    };
    // It appears on h2 (a MAC-only route, sequence 0).
    await sendFrom(lab, 'blue2', 'b2', MOVER);
    await until(
      `h1 to have ${MOVER} behind ${HOSTS[1]}`,
      () => rec(0),
      (r) => r?.owner === HOSTS[1] && r.seq === 0,
      20_000,
      100,
    );
    // h2 withdraws its route of the MAC: h1 imports h2's type-3 route and VM 2's two routes.
    await move(0, 'blue1m', 'b1m', 1, 3);
    // h1 withdraws its MAC-only route: h2 imports h1's type-3 and VM 1's two routes.
    await move(1, 'blue2', 'b2', 2, 3);
    expect((await status(0)).directory!.macs).toMatchObject({ owned: 1 });
    await untilPings(lab, 'blue1', '10.1.0.2');
  });

  it('removing h2’s port (reload) withdraws its MAC and its membership on h1', async () => {
    writeFileSync(daemons[1]!.configPath, config(1, false));
    const r = await vtepd(lab, 'h2', ['reload', '--socket', sock(1)]);
    expect(r.code, r.stderr).toBe(0);
    const t0 = Date.now();
    await untilWhere("h1's FDB to drop VM 2", 0, macOf(2), null, 20_000);
    await until(
      "h1's blue flood list to drop 10.0.0.2",
      () => floodOf(0),
      (f) => f.length === 0,
      20_000,
      100,
    );
    console.log(`evpn-vtepd: withdrawal seen on h1 ${Date.now() - t0} ms after the reload`);
    expect((await status(0)).directory!.evpn.routes.in).toBe(0);
  });

  it('h2’s vtepd SIGKILLed: its gobgpd dies with it, and h1 sees the session go down', async () => {
    const pid = (await status(1)).directory!.evpn.gobgpd!.pid!;
    daemons[1]!.child.kill('SIGKILL');
    await until(
      `h2's gobgpd (pid ${pid}) to be gone`,
      async () => existsSync(`/proc/${pid}`),
      (alive) => !alive,
      10_000,
      50,
    );
    await until(
      "h1's session to 10.0.0.2 to leave established",
      () => status(0),
      (x) => x.directory?.evpn.neighbors[0]?.state !== 'established',
      20_000,
      100,
    );
  });
});
