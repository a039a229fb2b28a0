/**
 * `vtepd restart` with the gobgpd vtepd supervises (#17): the successor adopts the running
 * gobgpd (its lifeline comes with the TAPs over SCM_RIGHTS) instead of starting one that could
 * not listen on port 179. Two vtepd hosts over iBGP as in evpn-vtepd.test.ts: h1 uses a gobgpd
 * the test runs (`gobgp.api`, whose peer events the test records), h2 supervises its own.
 *
 *   [h1] vtepd + gobgpd 10.0.0.1 ── veth ── [h2] vtepd + gobgpd 10.0.0.2
 *        blue (VNI 5001): ns blue1, 10.1.0.1        blue (VNI 5001): ns blue2, 10.1.0.2
 *
 * Checked as a user would: h2 restarted with the built CLI while its VM pings h1's every 10 ms:
 * the ping loses what the other takeover tests allow, the old vtepd exits 0, gobgpd's PID is the
 * same, h1's gobgpd never saw the session leave established, the routes are all there; the
 * adopted gobgpd SIGKILLed is restarted by the new vtepd; then the new vtepd SIGKILLed still
 * takes its gobgpd along and h1 drops h2's routes.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, parsePing } from '../../lab/netns.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings, untilText } from '../../lab/wait.js';
import { Gobgpd } from '../../src/evpn/gobgpd.js';
import { stopPids, vtepd } from '../support/ops.js';
import { evpnPair, HOSTS, macOf, pairCli } from '../support/evpn-pair.js';

interface Status {
  pid: number;
  directory: {
    evpn: { gobgpd: { pid: number | null; restarts: number } | null; neighbors: { address: string; state: string }[]; routes: { in: number; out: number } };
  } | null;
  tenants: { name: string; flood: string[] }[];
}

describe('vtepd restart with a supervised gobgpd: the successor adopts it', () => {
  const lab = new Lab('restart');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-restart-'));
  const daemons: Daemonised[] = [];
  const successors: number[] = [];
  let external: Gobgpd | null = null;
  /** h1's gobgpd's peer events, as they came. */
  const sessions: string[] = [];
  let unwatch: (() => void) | null = null;

  // h1 withdraws at once what a lost session brought (gracefulRestart: 0): the last test sees h2's routes go.
  const config = (i: number) =>
    [
      `control: { socket: ${join(dir, `h${i + 1}.sock`)} }`,
      `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
      'log: { level: info }',
      `directory: { evpn: { asn: 65000, neighbors: [ { address: ${HOSTS[1 - i]} } ]${i === 0 ? `, gobgp: { api: "${external!.api}" }, gracefulRestart: 0` : ''} } }`,
      'tenants:',
      `  - { name: blue, vni: 5001, ports: [ { tap: b${i + 1}, netns: ${lab.ns(`blue${i + 1}`)}, mac: "${macOf(i + 1)}", address: 10.1.0.${i + 1}/24 } ] }`,
      '',
    ].join('\n');
  const sock = (i: number) => daemons[i]!.socket;
  const cli = pairCli(lab, sock);
  const status = (i: number) => cli.status<Status>(i);
  const { where, untilWhere, untilGobgpdRestarted } = cli;

  beforeAll(async () => {
    await evpnPair(lab, ['blue1', 'blue2']);
    external = new Gobgpd({ asn: 65000, routerId: HOSTS[0], listenAddresses: [HOSTS[0]], dir: join(dir, 'gobgpd-h1'), netns: lab.ns('h1') });
    await external.start();
    unwatch = external.client.watch({ peer: (p) => sessions.push(`${p.address} ${p.state}`) });
    for (let i = 0; i < 2; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, config(i), dir));
  }, 60_000);

  afterAll(async () => {
    unwatch?.();
    await stopPids(successors);
    await external?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('restarted under a ping: same gobgpd, the session never went down, the routes stay', async () => {
    await until(
      "h2's BGP session to 10.0.0.1 to be established",
      () => status(1),
      (x) => x.directory?.evpn.neighbors[0]?.state === 'established',
      30_000,
      200,
    );
    await untilWhere("h1's FDB to have VM 2 behind h2", 0, macOf(2), `directory vtep ${HOSTS[1]}`, 20_000);
    await untilPings(lab, 'blue2', '10.1.0.1');
    const before = await status(1);
    const gobgpdPid = before.directory!.evpn.gobgpd!.pid!;
    const mark = sessions.length;
    const old = daemons[1]!.child;
    const oldExit = new Promise<number | null>((r) => (old.exitCode !== null ? r(old.exitCode) : old.once('exit', r)));

    const ping = lab.spawn('blue2', 'ping', ['-i', '0.01', '-c', '300', '-W', '1', '10.1.0.1']);
    let pingOut = '';
    ping.stdout!.on('data', (d: Buffer) => {
      pingOut += d.toString();
    });
    const pingDone = new Promise((r) => ping.once('exit', r));
    await untilText('the ping to be answered', () => pingOut, /bytes from/);
    const r = await vtepd(lab, 'h2', ['restart', '--socket', sock(1)]);
    const m = /^restarted: pid (\d+) -> (\d+), forwarding paused (\d+) ms\n$/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    const newPid = Number(m![2]);
    successors.push(newPid);
    await pingDone;
    const p = parsePing(pingOut, 300);
    console.log(`evpn-takeover: forwarding paused ${m![3]} ms; ping ${p.sent} sent, ${p.received} received (${p.sent - p.received} lost)`);
    expect(p.sent).toBe(300);
    expect(p.sent - p.received).toBeLessThan(100);
    expect(await oldExit).toBe(0);

    const after = await status(1);
    expect(after.pid).toBe(newPid);
    expect(after.directory!.evpn.gobgpd).toEqual({ pid: gobgpdPid, restarts: 0 });
    expect(after.directory!.evpn.neighbors).toMatchObject([{ address: HOSTS[0], state: 'established' }]);
    // h1's gobgpd saw no session change, and still has the session up.
    expect(sessions.slice(mark).filter((s) => s !== `${HOSTS[1]} established`)).toEqual([]);
    expect((await external!.client.listPeers()).map((x) => x.state)).toEqual(['established']);
    // The successor read the routes at once: its flood list and FDB, and it advertises its own again.
    await until(
      'h2 to import and advertise 3 routes',
      async () => (await status(1)).directory!.evpn.routes,
      (x) => x.in === 3 && x.out === 3,
      10_000,
      100,
    );
    expect(after.tenants.find((t) => t.name === 'blue')?.flood).toEqual([HOSTS[0]]);
    expect(await where(1, macOf(1))).toBe(`directory vtep ${HOSTS[0]}`);
    expect(await where(0, macOf(2))).toBe(`directory vtep ${HOSTS[1]}`);
  });

  it('the adopted gobgpd SIGKILLed: the new vtepd notices (it is not its child), restarts it and advertises its routes again', async () => {
    const pid = (await status(1)).directory!.evpn.gobgpd!.pid!;
    process.kill(pid, 'SIGKILL');
    expect(await untilGobgpdRestarted(1)).not.toBe(pid);
    await untilWhere("h1's FDB to have VM 2 behind h2 again", 0, macOf(2), `directory vtep ${HOSTS[1]}`);
  });

  it('the new vtepd SIGKILLed: the adopted gobgpd dies with it (its lifeline), and h1 drops h2’s routes', async () => {
    const pid = (await status(1)).directory!.evpn.gobgpd!.pid!;
    process.kill(successors[0]!, 'SIGKILL');
    await until(
      `h2's gobgpd (pid ${pid}) to be gone`,
      async () => existsSync(`/proc/${pid}`),
      (alive) => !alive,
      10_000,
      50,
    );
    await untilWhere("h1's FDB to drop VM 2", 0, macOf(2), null, 20_000);
    await until(
      "h1's blue flood list to drop 10.0.0.2",
      () => status(0),
      (x) => x.tenants[0]?.flood.length === 0,
      20_000,
      100,
    );
    expect(sessions.at(-1)).not.toBe(`${HOSTS[1]} established`);
  });
});
