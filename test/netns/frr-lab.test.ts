/**
 * The test world of the EVPN issue (#17) without vtepd: two FRR 8.4 hosts with the kernel's
 * VXLAN (lab/frr.ts) on one underlay switch, A the route reflector, B its client, each with
 * VNI 100 and a VM. No flood list is configured anywhere: B's VM reaches A's only because
 * FRR turns B's type-3 route into A's flood entry and its type-2 route into A's FDB.
 *
 *   [vma] eth0 10.100.0.1 -- vm100 br100 vx100 [a] ul0 10.0.0.1 --+
 *                                                                  br0 [sw]
 *   [vmb] eth0 10.100.0.2 -- vm100 br100 vx100 [b] ul0 10.0.0.2 --+
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { Lab, parsePing } from '../../lab/netns.js';
import { addFrrVtep, type FrrVtep, underlaySwitch } from '../../lab/frr.js';
import { until, untilPings, untilText } from '../../lab/wait.js';

const A = '10.0.0.1';
const B = '10.0.0.2';
const ASN = 65000;
const MAC_A = '02:00:00:0a:00:01';
const MAC_B = '02:00:00:0b:00:01';

/** `bridge -timestamp monitor fdb` in a host: the time (ms since the epoch) of the first event line matching `re`. */
function fdbMonitor(lab: Lab, host: string): { child: ChildProcess; text: () => string; at: (re: RegExp) => number | undefined } {
  const child = lab.spawn(host, 'bridge', ['-timestamp', 'monitor', 'fdb']);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const at = (re: RegExp) => {
    let stamp: number | undefined;
    for (const line of out.split('\n')) {
      const t = /^Timestamp: (.*\d{4}) (\d+) usec/.exec(line);
      if (t) stamp = Date.parse(t[1]!) + Number(t[2]) / 1000;
      else if (re.test(line)) return stamp;
    }
    return undefined;
  };
  return { child, text: () => out, at };
}

describe('FRR EVPN VTEPs with the kernel VXLAN (lab/frr.ts)', () => {
  const lab = new Lab('fr');
  let a: FrrVtep | undefined;
  let b: FrrVtep | undefined;

  beforeAll(async () => {
    await underlaySwitch(lab, [
      ['a', A],
      ['b', B],
    ]);
    a = await addFrrVtep(lab, 'a', {
      asn: ASN,
      routerId: A,
      underlayIp: A,
      neighbors: [B],
      rrClients: [B],
      evpnConfig: ['dup-addr-detection max-moves 10 time 60'],
      vnis: [{ vni: 100, vm: { ns: 'vma', ip: '10.100.0.1/24', mac: MAC_A } }],
    });
    b = await addFrrVtep(lab, 'b', {
      asn: ASN,
      routerId: B,
      underlayIp: B,
      neighbors: [A],
      vnis: [{ vni: 100, vm: { ns: 'vmb', ip: '10.100.0.2/24', mac: MAC_B } }],
    });
  }, 60_000);

  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await lab.cleanup();
  });

  const logs = async () => `${await a!.frr.logTail()}\n${await b!.frr.logTail()}`;

  it('brings up the BGP session, and type-3 routes alone make the flood entries', async () => {
    await a!.frr.untilEstablished(B);
    await b!.frr.untilEstablished(A);
    const flood = await a!.untilFlood('vx100', B);
    expect(flood.dst).toBe(B);
    await b!.untilFlood('vx100', A);
    // Nothing but FRR's entry floods: no static list.
    const floods = (await a!.bridgeFdb('vx100')).filter((e) => e.mac === '00:00:00:00:00:00');
    expect(floods.map((e) => e.dst)).toEqual([B]);
  });

  it("lets B's VM ping A's VM, A learning B's MAC from a type-2 route", async () => {
    await a!.untilFlood('vx100', B);
    const monA = fdbMonitor(lab, 'a');
    const monB = fdbMonitor(lab, 'b');
    // The monitors are live once they print an entry added after they started (on a bridge
    // of their own, which FRR does not serve).
    for (const [h, mon] of [
      ['a', monA],
      ['b', monB],
    ] as const) {
      await lab.exec(h, 'ip', ['link', 'add', 'brmon', 'type', 'bridge']);
      await lab.exec(h, 'bridge', ['fdb', 'add', '02:00:00:00:00:99', 'dev', 'brmon', 'self', 'permanent']);
      await untilText(`the FDB monitor in ${h}`, mon.text, /02:00:00:00:00:99/);
      await lab.exec(h, 'ip', ['link', 'del', 'brmon']);
    }

    // B's VM's first frames: ARP flooded to A by the type-3 entry, A's answer flooded back
    // the same way until B's type-2 route arrives.
    await untilPings(lab, 'vmb', '10.100.0.1');
    const entry = await a!.untilExternMac('vx100', MAC_B, B);
    expect(entry, await logs()).toMatchObject({ dst: B, flags: expect.arrayContaining(['extern_learn']) });

    // From B's VM's first frame (B's bridge learns its MAC on vm100) to A's FDB holding it.
    const learnt = monB.at(new RegExp(`^${MAC_B} dev vm100`));
    const installed = await until(
      'the extern_learn event in a',
      async () => monA.at(new RegExp(`^${MAC_B} dev vx100 .*extern_learn`)),
      (t) => t !== undefined,
    );
    if (learnt !== undefined && installed !== undefined)
      console.log(`FRR -> FRR: B's VM's first frame to A's FDB entry: ${(installed - learnt).toFixed(1)} ms`);
    for (const m of [monA, monB]) await lab.stop(m.child);

    const again = parsePing((await lab.exec('vmb', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.100.0.1'])).stdout);
    expect(again.received).toBe(3);
    const back = parsePing((await lab.exec('vma', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.100.0.2'])).stdout);
    expect(back.received).toBe(3);
  });

  it("names B as the remote VTEP of B's MAC in zebra, and A's own MAC as local", async () => {
    const macs = await until(
      "zebra in a to know B's MAC",
      () => a!.evpnMacs(100),
      (m) => m[MAC_B] !== undefined,
    );
    expect(macs[MAC_B]).toMatchObject({ type: 'remote', remoteVtep: B });
    expect(macs[MAC_A]).toMatchObject({ type: 'local', intf: 'vm100' });
  });

  it("holds B's type-2 and type-3 routes with RD routerId:N and RT ASN:100", async () => {
    const fromB = (await a!.frr.routes()).filter((r) => r.nextHop === B && r.from !== undefined);
    const t2 = fromB.find((r) => r.type === 2 && r.mac === MAC_B);
    const t3 = fromB.find((r) => r.type === 3);
    expect(t2, JSON.stringify(fromB)).toBeDefined();
    expect(t3, JSON.stringify(fromB)).toBeDefined();
    for (const r of [t2!, t3!]) {
      expect(r.rd).toMatch(new RegExp(`^${B.replaceAll('.', '\\.')}:\\d+$`));
      expect(r.rts).toContain(`${ASN}:100`);
      expect(r.extCommunity).toContain('ET:8');
    }
  });

  it('takes extra EVPN config at start and a new route-reflector client at run time', async () => {
    expect(await a!.frr.json('show evpn json')).toMatchObject({ isDuplicateAddrDetection: true, maxMoves: 10, detectionTime: 60 });
    await a!.frr.configure(
      'router bgp 65000',
      'neighbor 10.0.0.3 remote-as 65000',
      'address-family l2vpn evpn',
      'neighbor 10.0.0.3 activate',
      'neighbor 10.0.0.3 route-reflector-client',
    );
    expect(await a!.frr.sessionState('10.0.0.3')).toMatch(/^(Idle|Connect|Active)$/);
    await expect(a!.frr.configure('router bgp 65000', 'no such command')).rejects.toThrow(/no such command failed/);
  });
});
