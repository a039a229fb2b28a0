/**
 * vtepd next to FRR (#17, the interop tests): two FRR 8.4 hosts with the kernel's VXLAN
 * (lab/frr.ts), A the route reflector of everyone, and two vtepd hosts V and W whose only
 * neighbor is A (V and W learn each other through A). VNI 100 everywhere; no flood list anywhere.
 *
 *   [vma] 10.100.0.1 -- br100/vx100 [a] FRR, RR 10.0.0.1 --+
 *   [vmb] 10.100.0.2 -- br100/vx100 [b] FRR     10.0.0.2 --+-- br0 [sw]
 *   [vmv] 10.100.0.3 -- tap v1      [v] vtepd   10.0.0.3 --+
 *   [vmw] 10.100.0.4 -- tap w1      [w] vtepd   10.0.0.4 --+
 *   [vmm] (VM B after its move) -- tap v2 on v
 *
 * Checked as a user would: pings between every pair of VMs; `bridge fdb show dev vx100` and
 * `show evpn mac vni 100` on the FRR hosts name vtepd's VTEP; `vtepd fdb show` and `vtepd
 * status` name FRR's; VM B's MAC moves from b to v and back with rising MAC Mobility sequence
 * numbers on both sides, the loser's route withdrawn, and the convergence printed (two
 * moves: under FRR's duplicate detection, 5 moves in 180 s); with an address on a's br100,
 * FRR's MAC+IP route lets vtepd answer its VM's ARP for VM A itself (ARP suppression).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { addFrrVtep, fdbMonitor, underlaySwitch, type FrrVtep } from '../../lab/frr.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import { whereText, type FdbRow } from '../../src/core/fdb.js';
import { request } from '../../src/daemon/control.js';
import { vtepdJson } from '../support/ops.js';

const [A, B, V, W] = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'];
const MAC_A = '02:00:00:0a:00:01';
const MAC_B = '02:00:00:0b:00:01';
const MAC_V = '02:00:00:0c:00:01';
const MAC_W = '02:00:00:0d:00:01';
const VM_IP = { vma: '10.100.0.1', vmb: '10.100.0.2', vmv: '10.100.0.3', vmw: '10.100.0.4' };
/** The vtepd hosts: their VTEP and their VM's MAC. */
const VTEPD = { v: { ip: V, mac: MAC_V, vm: 'vmv' }, w: { ip: W, mac: MAC_W, vm: 'vmw' } } as const;
type Vh = keyof typeof VTEPD;
/** A frame with VM B's MAC out of `iface` (what a migrated VM says first); prints when it was sent (ms since the epoch). */
const SEND = `
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(b'\\xff' * 6 + bytes.fromhex('${MAC_B.replaceAll(':', '')}') + b'\\x88\\xb5' + b'vtepd move test'.ljust(46, b'\\0'))
print(time.time() * 1000)
`;

interface Status {
  directory: { evpn: { neighbors: { address: string; state: string }[] } } | null;
  tenants: { name: string; flood: string[] }[];
}

describe('vtepd next to FRR: a route reflector, kernel VXLAN VTEPs and a vtepd VTEP in VNI 100', () => {
  const lab = new Lab('frr');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-frr-'));
  const frr: Record<'a' | 'b', FrrVtep | undefined> = { a: undefined, b: undefined };
  const vd: Partial<Record<Vh, Daemonised>> = {};

  const yaml = (h: Vh) =>
    [
      `underlay: { local: ${VTEPD[h].ip}, port: 4789 }`,
      `directory: { evpn: { asn: 65000, neighbors: [ { address: ${A} } ] } }`,
      'tenants:',
      '  - name: blue',
      '    vni: 100',
      `    ports: [ { tap: ${h}1, netns: ${lab.ns(VTEPD[h].vm)}, mac: "${VTEPD[h].mac}", address: ${VM_IP[VTEPD[h].vm]}/24 }${h === 'v' ? `, { tap: v2, netns: ${lab.ns('vmm')} }` : ''} ]`,
      '',
    ].join('\n');
  const sock = (h: Vh = 'v') => vd[h]!.socket;
  const status = (h: Vh = 'v') => vtepdJson<Status>(lab, h, ['status', '--socket', sock(h)]);
  const where = async (mac: string, h: Vh = 'v') => {
    const r = (await vtepdJson<FdbRow[]>(lab, h, ['fdb', 'show', '--tenant', 'blue', '--socket', sock(h)])).find((x) => x.mac === mac);
    return r ? `${r.type} ${whereText(r.where)}` : null;
  };
  /** The same answer over the API socket, cheap enough to poll every 10 ms for a convergence time. */
  const whereFast = async (mac: string) => {
    const r = (await request<FdbRow[]>(sock(), 'fdb.show', { tenant: 'blue', mac }))[0];
    return r ? `${r.type} ${whereText(r.where)}` : null;
  };
  /** Zebra's entry of one MAC (`show evpn mac vni 100 mac M json`: { M: {...} }). */
  const evpnMac = async (h: 'a' | 'b', mac: string) =>
    (await frr[h]!.frr.json<Record<string, Record<string, unknown>>>(`show evpn mac vni 100 mac ${mac} json`))[mac] ?? {};
  const logs = async () => `${await frr.a!.frr.logTail()}\n${await frr.b!.frr.logTail()}\n${vd.v?.stderr().slice(-3000)}\n${vd.w?.stderr().slice(-3000)}`;

  beforeAll(async () => {
    await underlaySwitch(lab, [
      ['a', A],
      ['b', B],
      ['v', V],
      ['w', W],
    ]);
    await lab.addHost('vmv', { ipv6: false });
    await lab.addHost('vmw', { ipv6: false });
    await lab.addHost('vmm', { ipv6: false });
    // A reflects for everyone, and a reflector needs every neighbor configured.
    frr.a = await addFrrVtep(lab, 'a', {
      asn: 65000,
      routerId: A,
      underlayIp: A,
      neighbors: [B, V, W],
      rrClients: [B, V, W],
      vnis: [{ vni: 100, vm: { ns: 'vma', ip: `${VM_IP.vma}/24`, mac: MAC_A } }],
    });
    frr.b = await addFrrVtep(lab, 'b', {
      asn: 65000,
      routerId: B,
      underlayIp: B,
      neighbors: [A],
      vnis: [{ vni: 100, vm: { ns: 'vmb', ip: `${VM_IP.vmb}/24`, mac: MAC_B } }],
    });
    for (const h of ['v', 'w'] as const) vd[h] = await startDaemon(lab, h, `control: { socket: ${join(dir, `${h}.sock`)} }\n${yaml(h)}`, dir);
  }, 60_000);

  afterAll(async () => {
    await frr.b?.stop();
    await frr.a?.stop();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the sessions come up and every VM pings every other, both ways', async () => {
    await frr.a!.frr.untilEstablished(B, V, W);
    for (const h of ['v', 'w'] as const)
      await until(
        `${h}'s vtepd session to the reflector to be established`,
        () => status(h),
        (s) => s.directory?.evpn.neighbors.some((n) => n.address === A && n.state === 'established') ?? false,
        30_000,
        200,
      );
    const vms = ['vma', 'vmb', 'vmv', 'vmw'] as const;
    for (const [i, x] of vms.entries())
      for (const y of vms.slice(i + 1)) {
        await untilPings(lab, x, VM_IP[y]);
        await untilPings(lab, y, VM_IP[x]);
      }
  }, 60_000);

  it("FRR sees vtepd as a VTEP: its MAC and a flood entry to it on vx100, zebra names it the MAC's remote VTEP", async () => {
    for (const h of ['a', 'b'] as const)
      for (const { ip, mac, vm } of Object.values(VTEPD)) {
        const entry = await frr[h]!.untilExternMac('vx100', mac, ip);
        expect(entry.dst).toBe(ip);
        // The port's configured MAC is a static one: advertised sticky (RFC 7432 §15.2), and zebra installs it so.
        expect(entry).toMatchObject({ state: 'static', flags: expect.arrayContaining(['sticky']) });
        await frr[h]!.untilFlood('vx100', ip);
        const macs = await frr[h]!.evpnMacs(100);
        expect(macs[mac], await logs()).toMatchObject({ type: 'remote', remoteVtep: ip });
        // vtepd's MAC+IP route (the port's address) is FRR's neighbour entry too.
        const arp = await until(
          `zebra in ${h} to have ${VM_IP[vm]}`,
          () => frr[h]!.frr.json<Record<string, unknown>>('show evpn arp-cache vni 100 json'),
          (j) => VM_IP[vm] in j,
        );
        expect(arp[VM_IP[vm]]).toMatchObject({ type: 'remote', mac, remoteVtep: ip });
        const floods = (await frr[h]!.bridgeFdb('vx100')).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst);
        expect(floods.sort()).toEqual([h === 'a' ? B : A, V, W].sort());
      }
  });

  it("vtepd learns from FRR: `vtepd fdb show` has FRR's VMs (and the other vtepd's, reflected by A) behind their VTEPs, its flood list those VTEPs", async () => {
    for (const [h, other] of [
      ['v', 'w'],
      ['w', 'v'],
    ] as const) {
      const want: [string, string][] = [
        [MAC_A, A],
        [MAC_B, B],
        [VTEPD[other].mac, VTEPD[other].ip],
      ];
      for (const [mac, vtep] of want)
        await until(
          `${h}'s FDB to have ${mac} behind ${vtep}`,
          () => where(mac, h),
          (x) => x === `directory vtep ${vtep}`,
          20_000,
          100,
        );
      const flood = await until(
        `${h}'s blue flood list to hold the three other VTEPs`,
        async () => (await status(h)).tenants.find((t) => t.name === 'blue')?.flood ?? [],
        (f) => f.length === 3,
        20_000,
        100,
      );
      expect([...flood].sort()).toEqual(want.map(([, vtep]) => vtep).sort());
    }
  });

  it("VM B's MAC moves from FRR host b to vtepd and back: sequences rise, the loser withdraws, convergence printed", async () => {
    const monA = await fdbMonitor(lab, 'a');
    const monB = await fdbMonitor(lab, 'b');
    /**
     * A moved VM's old copy must keep quiet (a paused VM): after the pings the VMs' kernels
     * still probe their neighbours (DELAY, then unicast ARP 5 s later), and one probe from the
     * old copy takes the MAC back. Forget the neighbours in every VM before each move.
     */
    const quiet = async () => {
      for (const vm of ['vma', 'vmb', 'vmv', 'vmw', 'vmm']) await lab.exec(vm, 'ip', ['neigh', 'flush', 'all']);
    };
    /** The other vtepd host (w) follows the move through the reflector: its FDB points VM B's MAC at `vtep`. */
    const wAt = (vtep: string) =>
      until(
        `w's FDB to point ${MAC_B} at ${vtep}`,
        () => where(MAC_B, 'w'),
        (x) => x === `directory vtep ${vtep}`,
        20_000,
        100,
      );
    /** The losing route withdrawn: a's vx100 no longer sends VM B's MAC to `dst`. */
    const aDrops = (dst: string) =>
      until(
        `a's FDB to drop ${MAC_B} dst ${dst}`,
        () => frr.a!.bridgeFdb('vx100'),
        (f) => !f.some((e) => e.mac === MAC_B && e.dst === dst),
        20_000,
        100,
      );
    const macRe = (dst: string) => new RegExp(`^${MAC_B} dev vx100 .*dst ${dst.replaceAll('.', '\\.')}`);

    // To vtepd: VM B resumes on v's port v2 (its MAC and IP) and speaks first; b's VM then goes away.
    await lab.exec('vmm', 'ip', ['link', 'set', 'v2', 'down']);
    await lab.exec('vmm', 'ip', ['link', 'set', 'v2', 'address', MAC_B, 'up']);
    await lab.exec('vmm', 'ip', ['addr', 'add', `${VM_IP.vmb}/24`, 'dev', 'v2']);
    await quiet();
    const sent1 = Number((await lab.exec('vmm', 'python3', ['-c', SEND, 'v2'])).stdout);
    for (const h of ['a', 'b'] as const) await frr[h]!.untilExternMac('vx100', MAC_B, V);
    const atB = await until(
      `zebra in b to see ${MAC_B} move to ${V}`,
      () => evpnMac('b', MAC_B),
      (m) => m.remoteVtep === V,
      20_000,
      100,
    );
    expect(atB, await logs()).toMatchObject({ type: 'remote', remoteVtep: V, remoteSequence: 1 });
    expect(await evpnMac('a', MAC_B)).toMatchObject({ type: 'remote', remoteVtep: V, remoteSequence: 1 });
    // b withdrew its route: no FDB of a points at b for the MAC any more.
    await aDrops(B);
    expect(await where(MAC_B)).toBe('learned port v2');
    await wAt(V);
    const conv1 = [monA, monB].map((m) => (m.at(macRe(V)) ?? Number.NaN) - sent1);
    console.log(
      `evpn-frr: MAC moved b -> vtepd: a's FDB at ${V} after ${conv1[0]!.toFixed(1)} ms, b's after ${conv1[1]!.toFixed(1)} ms (from the first frame)`,
    );
    await lab.exec('vmb', 'ip', ['link', 'set', 'eth0', 'down']);
    await untilPings(lab, 'vma', VM_IP.vmb);
    await untilPings(lab, 'vmm', VM_IP.vma);

    // Back to b: VM B resumes there and speaks first; v's copy then goes away.
    await quiet();
    await lab.exec('vmb', 'ip', ['link', 'set', 'eth0', 'up']);
    const sent2 = Number((await lab.exec('vmb', 'python3', ['-c', SEND, 'eth0'])).stdout);
    const back = await until(
      `vtepd's FDB to point ${MAC_B} at ${B}`,
      () => whereFast(MAC_B),
      (w) => w === `directory vtep ${B}`,
      20_000,
      10,
    );
    const vtepdMs = (Date.now() - sent2).toFixed(0);
    expect(back).toBe(`directory vtep ${B}`);
    const local = await until(
      `zebra in b to take ${MAC_B} back`,
      () => evpnMac('b', MAC_B),
      (m) => m.type === 'local',
      20_000,
      100,
    );
    expect(local, await logs()).toMatchObject({ type: 'local', localSequence: 2 });
    const recs = await vtepdJson<{ mac: string; owner: string; seq: number }[]>(lab, 'v', ['fdb', 'directory', '--tenant', 'blue', '--socket', sock()]);
    expect(recs.find((r) => r.mac === MAC_B)).toMatchObject({ owner: B, seq: 2 });
    // vtepd withdrew its route: a's FDB points at b again, nothing at v.
    await frr.a!.untilExternMac('vx100', MAC_B, B);
    await aDrops(V);
    expect(await evpnMac('a', MAC_B)).toMatchObject({ type: 'remote', remoteVtep: B, remoteSequence: 2 });
    expect(await where(MAC_B)).toBe(`directory vtep ${B}`);
    await wAt(B);
    const aMs = (monA.at(macRe(B)) ?? Number.NaN) - sent2;
    console.log(
      `evpn-frr: MAC moved vtepd -> b: vtepd's FDB at ${B} after ${vtepdMs} ms (polled every 10 ms), a's FDB after ${aMs.toFixed(1)} ms (from the first frame)`,
    );
    for (const m of [monA, monB]) await lab.stop(m.child);
    await lab.exec('vmm', 'ip', ['link', 'set', 'v2', 'down']);
    await untilPings(lab, 'vmv', VM_IP.vmb);
    await untilPings(lab, 'vmb', VM_IP.vma);
  }, 60_000);

  it("answers vtepd's VM's ARP for an FRR VM locally, from FRR's MAC+IP route (ARP suppression)", async () => {
    // FRR sends MAC+IP only for neighbours its bridge knows: give a's br100 an address and let it meet VM A.
    await lab.exec('a', 'ip', ['addr', 'add', '10.100.0.254/24', 'dev', 'br100']);
    await untilPings(lab, 'a', VM_IP.vma);
    const recs = () => vtepdJson<{ mac: string; ips: string[] }[]>(lab, 'v', ['fdb', 'directory', '--tenant', 'blue', '--socket', sock()]);
    await until(
      `vtepd to know ${VM_IP.vma} for ${MAC_A} (FRR's MAC+IP route)`,
      recs,
      (r) => r.some((x) => x.mac === MAC_A && x.ips.includes(VM_IP.vma)),
      20_000,
      100,
    );
    const arp = async () => {
      const t = (await vtepdJson<{ tenants: { tenant: string; arpSuppressed: number; arpFlooded: number }[] }>(lab, 'v', ['stats', '--socket', sock()]))
        .tenants;
      return t.find((x) => x.tenant === 'blue')!;
    };
    const before = await arp();
    await lab.exec('vmv', 'ip', ['neigh', 'flush', 'all']);
    await untilPings(lab, 'vmv', VM_IP.vma);
    const after = await arp();
    expect(after.arpSuppressed).toBeGreaterThan(before.arpSuppressed);
    expect(after.arpFlooded).toBe(before.arpFlooded);
  });
});
