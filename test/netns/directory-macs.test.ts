/**
 * Forwarding from the etcd directory (#13): three hosts, no flood list in any config, two
 * tenants whose VMs have identical MACs and IPs.
 *
 *   [et] etcd 10.0.0.9 ─┐
 *   [h1] 10.0.0.1 ──────┤            blue (VNI 5001): ns blueN, 10.1.0.N, MAC 02:00:00:01:00:0N
 *   [h2] 10.0.0.2 ──────┼── br0 [sw] red  (VNI 5002): ns redN,  10.1.0.N, MAC 02:00:00:01:00:0N
 *   [h3] 10.0.0.3 ──────┘
 *
 * Checked as a user would: pings in each tenant and nothing reaching the other; remote MACs
 * in every FDB from the directory; an ARP request for a known IP answered on the host (no
 * ARP on the underlay, the counter moves); a VM moving between hosts converging everywhere
 * with seq + 1 (time printed); six flaps freezing the MAC; etcd stopped for 30 s with no
 * ping lost and a MAC learned meanwhile published after; a SIGKILLed owner's MACs leaving
 * the others after its lease. Every wait polls with a deadline; times are printed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, parsePing } from '../../lab/netns.js';
import type { EtcdMember } from '../../lab/etcd.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import { request } from '../../src/daemon/control.js';
import { whereText, type FdbRow } from '../../src/core/fdb.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { directoryLab } from '../../lab/directory-lab.js';
import { vtepd } from '../support/ops.js';
import { tcpdump } from '../support/pcap.js';

const HOSTS = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
const SPOOF = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'spoof.py');
const ETCD = '10.0.0.9';
const TTL = 3;
const macOf = (n: number) => `02:00:00:01:00:0${n}`;

interface Rec {
  mac: string;
  owner: string;
  seq: number;
  ips: string[];
  frozen: boolean;
}
interface DirStatus {
  directory: { connected: boolean; macs: { frozen: number; claimsRefusedFrozen: number; moves: number } } | null;
}

/** A frame with a chosen source MAC out of `iface` (AF_PACKET): what a VM that moved says first. */
const SEND = `
import socket, sys
iface, src = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
s.send(b'\\xff' * 6 + src + b'\\x88\\xb5' + b'vtepd move test'.ljust(46, b'\\0'))
`;

describe('etcd directory: forwarding, ARP suppression, moves', () => {
  const lab = new Lab('dm');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-dm-'));
  let etcd: EtcdMember;
  const daemons: Daemonised[] = [];
  const prefix = `/vtepd-test/${lab.prefix}`;
  /** Per host: its blue VMs (VM number, namespace, TAP). VM 3 moves from h3 to h1 (another namespace, same MAC and IP). */
  type Vm = { n: number; ns: string; tap: string };
  const bluePorts: Vm[][] = [1, 2, 3].map((n) => [{ n, ns: `blue${n}`, tap: `b${n}` }]);

  const config = (i: number) =>
    [
      `control: { socket: ${join(dir, `h${i + 1}.sock`)} }`,
      `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
      'log: { level: info }',
      `directory: { etcd: { endpoints: [ "http://${ETCD}:2379" ], prefix: ${prefix}, leaseTtl: ${TTL} } }`,
      'tenants:',
      '  - name: blue',
      '    vni: 5001',
      `    ports: [ ${bluePorts[i]!.map((v) => `{ tap: ${v.tap}, netns: ${lab.ns(v.ns)}, mac: "${macOf(v.n)}", address: 10.1.0.${v.n}/24 }`).join(', ')} ]`,
      '  - name: red',
      '    vni: 5002',
      `    ports: [ { tap: r${i + 1}, netns: ${lab.ns(`red${i + 1}`)}, mac: "${macOf(i + 1)}", address: 10.1.0.${i + 1}/24 } ]`,
      '',
    ].join('\n');
  const call = <T>(i: number, method: string, params: Record<string, unknown> = {}) => request<T>(daemons[i]!.socket, method, params, { timeoutMs: 3000 });
  const fdb = (i: number, tenant: string) => call<FdbRow[]>(i, 'fdb.show', { tenant });
  const records = (i: number, tenant: string) => call<Rec[]>(i, 'directory.macs', { tenant });
  const where = async (i: number, tenant: string, mac: string) => {
    const r = (await fdb(i, tenant)).find((x) => x.mac === mac);
    return r ? whereText(r.where) : null;
  };
  const reload = async (i: number) => {
    writeFileSync(daemons[i]!.configPath, config(i));
    await call(i, 'reload');
  };
  const rx = async (ns: string, dev: string) => Number((await lab.exec(ns, 'cat', [`/sys/class/net/${dev}/statistics/rx_packets`])).stdout.trim());

  beforeAll(async () => {
    etcd = await directoryLab(lab, HOSTS, ETCD);
    for (let n = 1; n <= 3; n++) {
      await lab.addHost(`blue${n}`, { ipv6: false });
      await lab.addHost(`red${n}`, { ipv6: false });
    }
    await lab.addHost('blue3m', { ipv6: false });
    for (let i = 0; i < 3; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, config(i), dir));
  }, 120_000);

  afterAll(async () => {
    await lab.cleanup();
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every host has the others’ VMs from the directory; pings work in each tenant and nothing crosses', async () => {
    const t0 = Date.now();
    for (let i = 0; i < 3; i++)
      for (let n = 1; n <= 3; n++) {
        if (n === i + 1) continue;
        await until(
          `h${i + 1} to have blue VM ${n} at 10.0.0.${n}`,
          () => where(i, 'blue', macOf(n)),
          (w) => w === `vtep 10.0.0.${n}`,
          30_000,
          100,
        );
        await until(
          `h${i + 1} to have red VM ${n} at 10.0.0.${n}`,
          () => where(i, 'red', macOf(n)),
          (w) => w === `vtep 10.0.0.${n}`,
          30_000,
          100,
        );
      }
    console.log(`directory-macs: every host had the 4 remote VMs of each tenant ${Date.now() - t0} ms after the last daemon started`);
    const rows = await fdb(0, 'blue');
    expect(rows.filter((r) => r.type === 'directory').map((r) => r.mac)).toEqual([macOf(2), macOf(3)]);
    // The records as an operator reads them.
    const cli = await vtepd(lab, 'h1', ['fdb', 'directory', '--tenant', 'blue', '--socket', daemons[0]!.socket]);
    expect(cli.stdout).toMatch(new RegExp(`${macOf(2)}\\s+10\\.0\\.0\\.2\\s+10\\.1\\.0\\.2\\s+1\\s+-`));
    // Operator UX (#14): status ends its last line; trace names what "--in" may be.
    expect((await vtepd(lab, 'h1', ['status', '--socket', daemons[0]!.socket])).stdout).toMatch(/\n$/);
    const bad = await vtepd(lab, 'h1', ['trace', '--socket', daemons[0]!.socket, '-t', 'blue', '--in', 'nosuchport', '--src', macOf(1), '--dst', macOf(2)]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/in: "nosuchport" is neither a port of this daemon \(b1, r1\) nor a VTEP address/);
    // Red's VMs on h2 and h3 must not hear blue's traffic.
    const before = [await rx('red2', 'r2'), await rx('red3', 'r3')];
    for (let a = 1; a <= 3; a++) for (let b = 1; b <= 3; b++) if (a !== b) await untilPings(lab, `blue${a}`, `10.1.0.${b}`, ['-c', '1', '-W', '1']);
    const r = await lab.exec('blue1', 'ping', ['-c', '20', '-i', '0.05', '-W', '1', '10.1.0.2']);
    expect(parsePing(r.stdout).received).toBe(20);
    expect([await rx('red2', 'r2'), await rx('red3', 'r3')]).toEqual(before);
    for (let a = 1; a <= 3; a++) for (let b = 1; b <= 3; b++) if (a !== b) await untilPings(lab, `red${a}`, `10.1.0.${b}`, ['-c', '1', '-W', '1']);
  }, 120_000);

  it('an ARP request for an IP the directory knows is answered on the host: no ARP on the underlay, the counter moves', async () => {
    const stats = () => call<StatsSnapshot>(0, 'stats');
    const blue = async () => (await stats()).tenants.find((t) => t.tenant === 'blue')!;
    const before = await blue();
    const cap = await tcpdump(lab, 'h1', 'ul0', join(dir, 'arp.pcap'), 'udp port 4789', async () => {
      await lab.exec('blue1', 'ping', ['-c', '1', '-W', '1', '10.1.0.2']);
    });
    await lab.exec('blue1', 'ip', ['neigh', 'flush', 'dev', 'b1']);
    await lab.exec('blue1', 'ping', ['-c', '1', '-W', '2', '10.1.0.3']);
    // An IP nobody has: its request is flooded (and proves the capture sees flooded ARP).
    await lab.exec('blue1', 'ping', ['-c', '1', '-W', '1', '10.1.0.99']).catch(() => undefined);
    await until('the flooded ARP for 10.1.0.99 to be counted', blue, (t) => t.arpFlooded > before.arpFlooded, 10_000, 100);
    const got = await cap.stop();
    // VXLAN (8 bytes) + inner Ethernet: ARP (0x0806) requests, by target IP.
    const arpTargets = got
      .map((d) => d.payload.subarray(8))
      .filter((f) => f.length >= 42 && f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1)
      .map((f) => [...f.subarray(38, 42)].join('.'));
    expect(arpTargets).toContain('10.1.0.99');
    expect(arpTargets).not.toContain('10.1.0.3');
    const after = await blue();
    expect(after.arpSuppressed).toBeGreaterThan(before.arpSuppressed);
    console.log(
      `directory-macs: ARP suppressed ${after.arpSuppressed - before.arpSuppressed}, flooded ${after.arpFlooded - before.arpFlooded}; ARP requests seen on h1's underlay: [${arpTargets.join(', ')}]`,
    );
  }, 60_000);

  it('a VM that moves to another host converges everywhere with seq + 1; six flaps freeze it', async () => {
    const M = macOf(3);
    const seq0 = (await records(0, 'blue')).find((r) => r.mac === M)!.seq;
    // The VM migrates from h3 to h1: its port comes up on h1 first (the new copy speaks), then goes from h3.
    bluePorts[0]!.push({ n: 3, ns: 'blue3m', tap: 'b3m' });
    bluePorts[2] = [];
    const t0 = Date.now();
    await reload(0);
    await reload(2);
    for (const i of [1, 2])
      await until(
        `h${i + 1} to forward ${M} to h1`,
        () => where(i, 'blue', M),
        (w) => w === 'vtep 10.0.0.1',
        30_000,
        50,
      );
    await until(
      `h1 to have ${M} on its port`,
      () => where(0, 'blue', M),
      (w) => w === 'port b3m',
      30_000,
      50,
    );
    const ms = Date.now() - t0;
    for (let i = 0; i < 3; i++) expect((await records(i, 'blue')).find((r) => r.mac === M)).toMatchObject({ owner: '10.0.0.1', seq: seq0 + 1 });
    console.log(`directory-macs: VM ${M} moved h3 -> h1, every host converged in ${ms} ms (seq ${seq0} -> ${seq0 + 1})`);
    await untilPings(lab, 'blue2', '10.1.0.3', ['-c', '1', '-W', '1']);

    // Flaps: the same MAC speaks alternately behind h2 and h1 (a duplicate, or a loop).
    const before = (await call<DirStatus>(0, 'status')).directory!.macs;
    for (let k = 0; k < 6; k++) {
      const [ns, dev, owner] = k % 2 === 0 ? ['blue2', 'b2', '10.0.0.2'] : ['blue3m', 'b3m', '10.0.0.1'];
      await lab.exec(ns, 'python3', ['-c', SEND, dev, M]);
      await until(
        `flap ${k + 1}: ${M} owned by ${owner}`,
        () => records(1, 'blue'),
        (rs) => rs.some((r) => r.mac === M && (r.owner === owner || r.frozen)),
        20_000,
        50,
      );
    }
    for (let i = 0; i < 3; i++)
      await until(
        `h${i + 1} to freeze ${M}`,
        () => records(i, 'blue'),
        (rs) => rs.some((r) => r.mac === M && r.frozen),
        20_000,
        100,
      );
    const pinned = (await records(0, 'blue')).find((r) => r.mac === M)!;
    // A seventh claim is refused: the record stays where it is.
    const [ns, dev] = pinned.owner === '10.0.0.2' ? ['blue3m', 'b3m'] : ['blue2', 'b2'];
    await lab.exec(ns, 'python3', ['-c', SEND, dev, M]);
    await until(
      'the seventh claim to be refused',
      async () => (await call<DirStatus>(pinned.owner === '10.0.0.2' ? 0 : 1, 'status')).directory!.macs,
      (m) => m.claimsRefusedFrozen > 0,
      20_000,
      100,
    );
    expect((await records(2, 'blue')).find((r) => r.mac === M)).toMatchObject({ owner: pinned.owner, frozen: true });
    const after = (await call<DirStatus>(0, 'status')).directory!.macs;
    expect(after.frozen).toBeGreaterThan(before.frozen);
    console.log(`directory-macs: 6 flaps of ${M} froze it on every host at ${pinned.owner} (seq ${pinned.seq}); the 7th claim was refused`);
  }, 120_000);

  it('etcd stopped for 30 s: known flows lose nothing, a MAC learned meanwhile is published when it returns', async () => {
    const ping = lab.spawn('blue1', 'ping', ['-i', '0.2', '-w', '40', '-c', '150', '10.1.0.2']);
    let out = '';
    ping.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = new Promise<number | null>((r) => ping.once('exit', r));
    await etcd.stop();
    const down = Date.now();
    await until(
      'h1 to see the directory unreachable',
      () => call<DirStatus>(0, 'status'),
      (s) => s.directory?.connected === false,
      20_000,
      200,
    );
    // A new VM speaks on h2 while etcd is away (its own MAC, a new address in blue2).
    const NEW = '02:00:00:01:00:42';
    await lab.exec('blue2', 'python3', ['-c', SEND, 'b2', NEW]);
    await until(
      'h2 to learn the new VM locally',
      () => where(1, 'blue', NEW),
      (w) => w === 'port b2',
      10_000,
      100,
    );
    // The outage lasts 30 s (the scenario itself, not a wait for readiness).
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - down))));
    await etcd.start();
    const up = Date.now();
    await until(
      'h1 to have the VM learned during the outage',
      () => where(0, 'blue', NEW),
      (w) => w === 'vtep 10.0.0.2',
      60_000,
      200,
    );
    console.log(`directory-macs: etcd back after ${up - down} ms; the MAC learned during the outage reached h1 ${Date.now() - up} ms later`);
    expect(await done).toBe(0);
    expect(out).toMatch(/150 packets transmitted, 150 received/);
  }, 120_000);

  it('a member VTEP that forges an inner source MAC moves nothing: where a MAC lives is its record, not the last frame', async () => {
    const victim = macOf(1);
    expect(await where(2, 'blue', victim)).toBe('vtep 10.0.0.1');
    const blueRx = async () => (await call<StatsSnapshot>(2, 'stats')).tenants.find((t) => t.tenant === 'blue')!.tunnel.rxPackets;
    const before = await blueRx();
    // From h2's underlay (a member of VNI 5001, so its datagrams are accepted): VXLAN to h3 with
    // blue's VNI and the victim's MAC as the inner source, 20 times.
    const vxlan = Buffer.from(`08000000${(5001).toString(16).padStart(6, '0')}00`, 'hex');
    const inner = Buffer.concat([Buffer.alloc(6, 0xff), Buffer.from(victim.replaceAll(':', ''), 'hex'), Buffer.from('88b5', 'hex'), Buffer.alloc(46)]);
    await lab.exec('h2', '/usr/bin/python3', [SPOOF, 'ul0', HOSTS[1]!, '4789', HOSTS[2]!, '4789', '20', Buffer.concat([vxlan, inner]).toString('hex')]);
    await until('h3 to take the forged frames into blue', blueRx, (n) => n >= before + 20, 10_000, 100);
    expect(await where(2, 'blue', victim)).toBe('vtep 10.0.0.1');
    expect((await fdb(2, 'blue')).find((r) => r.mac === victim)?.type).toBe('directory');
    expect((await records(2, 'blue')).find((r) => r.mac === victim)).toMatchObject({ owner: '10.0.0.1' });
    await untilPings(lab, 'blue3m', '10.1.0.1', ['-c', '1', '-W', '1']);
  }, 60_000);

  it("a SIGKILLed owner's MACs leave the other hosts after its lease", async () => {
    await until(
      'h3 to have h2’s red VM',
      () => where(2, 'red', macOf(2)),
      (w) => w === 'vtep 10.0.0.2',
      20_000,
      100,
    );
    await lab.stop(daemons[1]!.child, 'SIGKILL');
    const t0 = Date.now();
    for (const i of [0, 2]) {
      await until(
        `h${i + 1} to drop h2's MACs`,
        () => fdb(i, 'red'),
        (rows) => !rows.some((r) => whereText(r.where) === 'vtep 10.0.0.2'),
        30_000,
        100,
      );
    }
    const ms = Date.now() - t0;
    console.log(`directory-macs: h2 SIGKILLed; its MACs left h1 and h3 after ${ms} ms (lease TTL ${TTL} s)`);
    expect((await fdb(0, 'blue')).some((r) => whereText(r.where) === 'vtep 10.0.0.2')).toBe(false);
  }, 60_000);
});
