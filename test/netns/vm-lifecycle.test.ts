/**
 * A real QEMU guest's TAP coming and going under vtepd, and `vtepd restart` under its pings
 * (#16, lifecycle and restart). h1 runs vtepd with TAP containers c1 (blue, VNI 5001) and r1
 * (red, 5002); h2 runs vtepd with blue (no port of its config) and red (a TAP container r2).
 *
 * vtepd runs before the guest: `vtepd port add --tenant blue --attach vnet0` waits for the
 * interface and attaches it when QEMU makes it; the guest pings c1. QEMU stops (vnet0
 * vanishes) while r1 pings r2 every 10 ms: the detach is counted, the port waits, red loses
 * no ping; a new QEMU on the same ifname is attached again, with no vtepd restart. Then
 * `vtepd restart` on h2 while the guest pings c1 every 10 ms (busybox ping takes -i 0.01):
 * the loss is printed, the same packet socket carries on in the new daemon.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuest, startGuest, type Guest, type GuestImage } from '../../lab/guest.js';
import { Lab, run } from '../../lab/netns.js';
import { CLI, UNDERLAY, startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings, untilText } from '../../lab/wait.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import type { StatusResult } from '../../src/cli/table.js';
import { packetSockets } from '../support/links.js';
import { stopPids } from '../support/ops.js';

const lab = new Lab('vl');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-vmlife-'));
const GUEST = { tap: 'vnet0', mac: '52:54:00:16:00:12', ip: '10.1.0.2/24', mtu: 1450 };
const C1 = '10.1.0.1';
let image: GuestImage;
let h2: Daemonised;
let guest: Guest;
/** The daemon `vtepd restart` started (not a child of the lab): stopped by PID. */
let successor = 0;

function config(local: string, peer: string, blue: string, red: string): string {
  return [
    `underlay: { local: ${local} }`,
    'log: { level: info }',
    'tenants:',
    `  - { name: blue, vni: 5001, flood: [ ${peer} ], ports: [ ${blue} ] }`,
    `  - { name: red, vni: 5002, flood: [ ${peer} ], ports: [ ${red} ] }`,
    '',
  ].join('\n');
}
const tap = (name: string, host: string, address: string) => `{ tap: ${name}, netns: ${lab.ns(host)}, address: ${address} }`;

/** The built CLI against h2's daemon. */
function vtepd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args, '--socket', h2.socket], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
async function json<T>(args: string[]): Promise<T> {
  return JSON.parse((await run(process.execPath, [CLI, ...args, '--socket', h2.socket, '--json'])).stdout) as T;
}
// The attached port (a waiting one is listed too, with waiting: true).
const vnet0 = async () => (await json<StatusResult>(['status'])).ports.find((p) => p.tap === GUEST.tap && !p.waiting);
const switchCounters = async () => (await json<StatsSnapshot>(['stats'])).switch;
const portList = () => json<{ tap: string; waiting: boolean }[]>(['port', 'list']);

/** QEMU makes vnet0 in h2; like libvirt's <mtu size='1450'/>, the TAP takes the guest's MTU. */
async function bootGuest(): Promise<Guest> {
  const g = await startGuest(lab, 'h2', GUEST, image);
  console.log(`guest ready after ${g.bootSeconds.toFixed(1)} s: ${g.ready}`);
  await lab.exec('h2', 'ip', ['link', 'set', GUEST.tap, 'mtu', String(GUEST.mtu)]);
  return g;
}

/** Until the guest gets an answer from c1 (ARP and learning done), then 3 of 3. */
async function guestPingsC1(): Promise<void> {
  await until(
    'the guest to get an answer from c1',
    async () => (await guest.run(`ping -c 1 -W 1 ${C1}`)).code,
    (c) => c === 0,
  );
  const r = await guest.run(`ping -c 3 -i 0.2 -W 2 ${C1}`);
  expect(r.output).toMatch(/3 packets transmitted, 3 packets received/);
}

/**
 * A ping's replies by sequence number (iputils' icmp_seq=N counts from 1, busybox's seq=N
 * from 0): what was sent, received, the sequence numbers missing up to the last one
 * answered, their runs (first+count) and the longest.
 */
function replies(out: string, first: number): { sent: number; received: number; missing: number[]; longestRun: number; runs: string[] } {
  const seqs = [...out.matchAll(/bytes from .*?\bseq=(\d+)/g)].map((m) => Number(m[1]));
  const total = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const got = new Set(seqs);
  const missing: number[] = [];
  for (let s = first; s <= Math.max(first - 1, ...seqs); s++) if (!got.has(s)) missing.push(s);
  const runs: number[][] = [];
  for (const s of missing) {
    const last = runs.at(-1);
    if (last && last.at(-1) === s - 1) last.push(s);
    else runs.push([s]);
  }
  const longestRun = Math.max(0, ...runs.map((r) => r.length));
  return { sent: Number(total?.[1] ?? 0), received: Number(total?.[2] ?? 0), missing, longestRun, runs: runs.map((r) => `${r[0]}+${r.length}`) };
}

beforeAll(async () => {
  image = buildGuest(); // cached in ~/.cache/vtepd-guest
  for (const h of ['h1', 'h2', 'c1', 'r1', 'r2']) await lab.addHost(h, { ipv6: false });
  await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
  await startDaemon(lab, 'h1', config(UNDERLAY.h1, UNDERLAY.h2, tap('blue0', 'c1', `${C1}/24`), tap('red0', 'r1', '10.2.0.1/24')), dir);
  h2 = await startDaemon(lab, 'h2', config(UNDERLAY.h2, UNDERLAY.h1, '', tap('red0', 'r2', '10.2.0.2/24')), dir);
}, 60_000);

afterAll(async () => {
  if (successor) await stopPids([successor]);
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('a QEMU guest comes and goes under vtepd, and vtepd restarts under its pings (#16)', () => {
  it('vtepd before the guest: port add --attach waits for vnet0 and attaches it when QEMU makes it; the guest pings c1', async () => {
    const r = await vtepd(['port', 'add', '--tenant', 'blue', '--attach', GUEST.tap]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('port vnet0 (attach) in tenant blue (VNI 5001): the interface does not exist yet, attached when it appears\n');
    expect((await portList()).map((p) => [p.tap, p.waiting])).toEqual([['vnet0', true]]);
    guest = await bootGuest();
    await until('vnet0 attached', switchCounters, (s) => s.portsAttached === 1);
    expect(await vnet0()).toMatchObject({ kind: 'attach', tenant: 'blue' });
    expect((await portList()).map((p) => [p.tap, p.waiting])).toEqual([['vnet0', false]]);
    expect(h2.stderr()).toMatch(/attached interface appeared: attached/);
    await guestPingsC1();
  });

  it('the guest stops and starts again while vtepd runs: detached and counted, red loses no ping, forwarding resumes with no restart', async () => {
    const before = (await vnet0())!.ifindex;
    await untilPings(lab, 'r1', '10.2.0.2'); // ARP and learning done before the count starts
    const red: ChildProcess = lab.spawn('r1', 'ping', ['-i', '0.01', '-W', '1', '10.2.0.2']);
    let redOut = '';
    red.stdout!.on('data', (d: Buffer) => {
      redOut += d.toString();
    });
    const redDone = new Promise((r) => red.once('exit', r));
    await untilText('red to be answered', () => redOut, /bytes from/);
    await guest.stop(); // QEMU exits: vnet0 vanishes
    await until('vnet0 detached and counted', switchCounters, (s) => s.portsDetached === 1);
    expect(h2.stderr()).toMatch(/attached interface gone \(deleted under the daemon\); re-attaching it when it is back/);
    expect((await portList()).map((p) => [p.tap, p.waiting])).toEqual([['vnet0', true]]);
    expect(await vnet0()).toBeUndefined();
    guest = await bootGuest(); // a new QEMU, the same ifname: a new vnet0
    await until('vnet0 attached again', vnet0, (p) => p !== undefined && p.ifindex !== before);
    expect(await switchCounters()).toMatchObject({ portsAttached: 2, portsDetached: 1 });
    await guestPingsC1();
    process.kill(red.pid!, 'SIGINT');
    await redDone;
    const r = replies(redOut, 1);
    console.log(
      `red r1 -> r2 at 10 ms through the guest's stop and start: ${r.sent} sent, ${r.received} received; missing up to the last answered: [${r.missing}]`,
    );
    expect(r.received).toBeGreaterThan(100);
    expect(r.missing).toEqual([]);
  });

  it('vtepd restart while the guest pings c1 every 10 ms: the loss, the same packet socket, still pinging', async () => {
    const { ifindex } = (await vnet0())!;
    const sockets = await packetSockets(lab, 'h2', ifindex);
    expect(sockets).toHaveLength(1);
    const old = h2.child;
    const oldExit = new Promise<number | null>((r) => (old.exitCode !== null ? r(old.exitCode) : old.once('exit', r)));
    // In the background, so that it runs until the restart has answered, whatever it takes;
    // written to a file in the guest, read back once stopped (SIGINT: busybox ping's summary).
    await guest.run(`ping -i 0.01 -W 1 ${C1} > /tmp/ping 2>&1 & echo $! > /tmp/ping.pid`);
    await until(
      'the guest ping to be answered',
      async () => (await guest.run('cat /tmp/ping')).output,
      (o) => /bytes from/.test(o),
    );
    const t0 = Date.now();
    const r = await vtepd(['restart', '--json']);
    const restartMs = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    const { oldPid, newPid, gapMs } = JSON.parse(r.stdout) as { oldPid: number; newPid: number; gapMs: number };
    successor = newPid;
    const stopped = await guest.run('kill -INT $(cat /tmp/ping.pid); while kill -0 $(cat /tmp/ping.pid) 2>/dev/null; do sleep 0.1; done; cat /tmp/ping');
    const loss = replies(stopped.output, 0);
    console.log(
      `vtepd restart (pid ${oldPid} -> ${newPid}, forwarding paused ${gapMs} ms, the command took ${restartMs} ms) under the guest's ping -i 0.01: ` +
        `${loss.sent} sent, ${loss.received} received: ${loss.missing.length} lost up to the last answered, ` +
        `${loss.sent - loss.received - loss.missing.length} unanswered when it was stopped (in flight); ` +
        `longest run of missing replies ${loss.longestRun} (~${loss.longestRun * 10} ms); runs (first seq+count): ${loss.runs.join(' ') || 'none'}; ${/round-trip.*/.exec(stopped.output)?.[0]}`,
    );
    expect(loss.received).toBeGreaterThan(0);
    expect(loss.sent - loss.received).toBeLessThan(100);
    const status = await json<StatusResult>(['status']);
    expect(status.pid).toBe(newPid);
    expect(status.takeover?.fromPid).toBe(oldPid);
    expect(await vnet0()).toMatchObject({ kind: 'attach', tenant: 'blue', ifindex });
    expect(await packetSockets(lab, 'h2', ifindex)).toEqual(sockets);
    expect(await oldExit).toBe(0);
    const after = await guest.run(`ping -c 3 -i 0.2 -W 2 ${C1}`);
    expect(after.output).toMatch(/3 packets transmitted, 3 packets received/);
  });
});
