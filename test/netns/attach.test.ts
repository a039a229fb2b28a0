/**
 * Attached ports (#15, step 1): vtepd on h2 attaches an interface that exists (veth bm0,
 * whose peer is the NIC of a "bare-metal" namespace bm) as an access port of tenant blue,
 * beside a TAP VM (vm2); vtepd on h1 has a TAP VM (vm1). The bare-metal host and the VM
 * ping each other both ways and run iperf3 both ways (reported next to TAP <-> TAP of the
 * same run, no thresholds); bm0 is brought up, is promiscuous while vtepd holds it and not
 * after it stops; vtepd's own transmits on bm0 are not learned back (the FDB keeps the
 * bare-metal MAC at bm0 and the VM's behind its VTEP, no moves); `vtepd restart` hands the
 * packet socket over; bm0 going down and up keeps the port, bm0 deleted and made again is
 * attached again while the TAP goes on. An interface that holds the underlay address is
 * refused by run and warned of by check, at its config path; a missing one is waited for (check
 * says so) and attached when it appears, as a switch port: its IPv4 addresses removed, IPv6 off. Step 2: frames that came tagged (802.1Q, or 802.1ad with an
 * 802.1Q inside) are dropped at the access port as vlan_on_access, exactly counted, and flood
 * nowhere, while untagged traffic flows.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, parsePing, run } from '../../lab/netns.js';
import { CLI, UNDERLAY, startDaemon, type Daemonised } from '../../lab/topology.js';
import { until } from '../../lab/wait.js';
import type { FdbRow } from '../../src/core/fdb.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import type { StatusResult } from '../../src/cli/table.js';

const VLAN_FRAMES = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'vlan-frames.py');
const lab = new Lab('va');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-attach-'));
let h1: Daemonised;
let h2: Daemonised;
/** The daemon `vtepd restart` started (not a child of the lab): stopped by PID. */
let successor = 0;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function config(local: string, peer: string, ports: string[]): string {
  return [
    `underlay: { local: ${local} }`,
    'log: { level: info }',
    'tenants:',
    '  - name: blue',
    '    vni: 5001',
    '    ports:',
    ...ports.map((p) => `      - ${p}`),
    `    flood: [ ${peer} ]`,
    '',
  ].join('\n');
}

async function cli<T>(d: Daemonised, args: string[]): Promise<T> {
  const r = await run(process.execPath, [CLI, ...args, '--socket', d.socket, '--json']);
  return JSON.parse(r.stdout) as T;
}

async function counters(): Promise<Record<string, number>> {
  const j = await cli<{ datapath: Record<string, unknown> }>(h2, ['stats']);
  return (j.datapath.counters ?? j.datapath) as Record<string, number>;
}

/** The interface's promiscuity count (the kernel's, which `ip -d link` shows). */
async function promiscuity(host: string, dev: string): Promise<number> {
  const j = JSON.parse((await lab.exec(host, 'ip', ['-d', '-j', 'link', 'show', 'dev', dev])).stdout) as { promiscuity: number }[];
  return j[0]!.promiscuity;
}

async function macOf(host: string, dev: string): Promise<string> {
  return (JSON.parse((await lab.exec(host, 'ip', ['-j', 'link', 'show', 'dev', dev])).stdout) as { address: string }[])[0]!.address;
}

async function ping(from: string, to: string): Promise<number> {
  return parsePing((await lab.exec(from, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', to])).stdout).received;
}

beforeAll(async () => {
  for (const h of ['h1', 'h2', 'vm1', 'vm2', 'bm']) await lab.addHost(h, { ipv6: false });
  await lab.addHost('h3');
  await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
  // The bare-metal host's NIC (eth0, MTU of the overlay) and its switch port bm0 on h2, left down: vtepd brings it up.
  await lab.link('h2', 'bm0', null, 'bm', 'eth0', '10.1.0.3/24', 1450);
  await lab.exec('h2', 'ip', ['link', 'set', 'bm0', 'down']);
  h1 = await startDaemon(lab, 'h1', config(UNDERLAY.h1, UNDERLAY.h2, [`{ tap: blue0, netns: ${lab.ns('vm1')}, address: 10.1.0.1/24 }`]), dir);
  h2 = await startDaemon(
    lab,
    'h2',
    config(UNDERLAY.h2, UNDERLAY.h1, [`{ tap: blue0, netns: ${lab.ns('vm2')}, address: 10.1.0.2/24 }`, '{ attach: bm0 }']),
    dir,
  );
}, 120_000);

afterAll(async () => {
  if (successor && alive(successor)) process.kill(successor, 'SIGTERM');
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('an attached interface as an access port (#15)', () => {
  it('brings the interface up, holds it promiscuous, and shows the port with its kind', async () => {
    const link = JSON.parse((await lab.exec('h2', 'ip', ['-j', 'link', 'show', 'dev', 'bm0'])).stdout) as { flags: string[] }[];
    expect(link[0]!.flags).toContain('UP');
    expect(await promiscuity('h2', 'bm0')).toBe(1);
    expect(h2.stderr()).toMatch(/attached interface was down: brought it up/);
    const s = await cli<StatusResult>(h2, ['status']);
    expect(s.ports.map((p) => [p.tap, p.kind, p.mtu])).toEqual([
      ['blue0', 'tap', 1450],
      ['bm0', 'attach', 1450],
    ]);
    const t = await run(process.execPath, [CLI, 'status', '--socket', h2.socket]);
    expect(t.stdout).toMatch(/^bm0\s+blue\s+-\s+\d+\s+\S+\s+1450\s+config\s+attach$/m);
    const st = await run(process.execPath, [CLI, 'stats', '--socket', h2.socket]);
    expect(st.stdout).toMatch(/^bm0\s+blue\s+(\d+\s+\S+\s+){2}\d+\s+attach$/m);
  });

  it('the bare-metal host and the VM on the other host ping each other, both ways', async () => {
    expect(await ping('bm', '10.1.0.1')).toBe(3);
    expect(await ping('vm1', '10.1.0.3')).toBe(3);
    expect(await ping('vm2', '10.1.0.3')).toBe(3); // and the TAP VM beside it on h2
  });

  it('drops tagged frames at the access port, exactly counted, flooded nowhere; untagged ping goes on', async () => {
    const snap = async () => {
      const [a, b] = [await cli<StatsSnapshot>(h2, ['stats']), await cli<StatsSnapshot>(h1, ['stats'])];
      return { h2: a, h1: b, bm0: a.ports.find((p) => p.port === 'bm0')!, vm2: a.ports.find((p) => p.port === 'blue0')! };
    };
    const fdbMacs = async () => (await cli<FdbRow[]>(h2, ['fdb', 'show', '--tenant', 'blue'])).map((r) => r.mac);
    const send = async (kind: string, n: number, mac: string) =>
      expect((await lab.exec('bm', '/usr/bin/python3', [VLAN_FRAMES, 'eth0', kind, String(n), mac, '10.1.0.1'])).stdout).toContain(`sent ${n}`);
    const kinds = [
      ['dot1q', '02:15:00:00:00:01'],
      ['prio', '02:15:00:00:00:03'], // VLAN 0 (a priority tag) is a tag too
      // 802.1ad outside, 802.1Q inside: the kernel takes the outer tag off (its TPID 0x88a8 in
      // the auxdata), so the frame is dropped for that tag and never reaches a VTEP's inner_vlan.
      ['qinq', '02:15:00:00:00:02'],
    ] as const;
    // What reaches the TAP VM beside it from those MACs (not its own neighbours' unicast probes, which come and go).
    const atVm2 = await lab.capture('vm2', 'blue0', kinds.map(([, mac]) => `ether src ${mac}`).join(' or '), ['frame.len']);
    for (const [kind, mac] of kinds) {
      const before = await snap();
      await send(kind, 25, mac);
      const after = await until(`25 ${kind} frames counted at bm0`, snap, (s) => s.h2.drops.vlan_on_access! - before.h2.drops.vlan_on_access! >= 25);
      expect(after.h2.drops.vlan_on_access! - before.h2.drops.vlan_on_access!).toBe(25);
      expect(after.bm0.drops - before.bm0.drops).toBe(25);
      expect(after.h2.datapath.punted_frames).toBe(before.h2.datapath.punted_frames); // no broadcast flooded
      expect(after.h2.drops.inner_vlan).toBe(before.h2.drops.inner_vlan);
      expect(after.h1.drops.inner_vlan).toBe(before.h1.drops.inner_vlan); // nothing reached the other VTEP
      expect(await fdbMacs()).not.toContain(mac); // never learned
    }
    expect(await atVm2.stop()).toEqual([]); // the TAP VM beside it got none
    const st = await run(process.execPath, [CLI, 'stats', '--socket', h2.socket]);
    expect(st.stdout).toMatch(/vlan_on_access\s+75\b/);
    expect(await ping('bm', '10.1.0.1')).toBe(3);
  });

  it('iperf3 runs both ways, reported next to TAP <-> TAP of this run', async () => {
    const tap = await lab.iperfBothWays('vm1', 'vm2', '10.1.0.2');
    const before = await counters();
    const attached = await lab.iperfBothWays('bm', 'vm1', '10.1.0.1');
    const after = await counters();
    // Super-frames both ways through the packet socket: read with their virtio_net_hdr, and coalesced toward bm0.
    expect(after.tap_rx_gso_frames! - before.tap_rx_gso_frames!).toBeGreaterThan(0);
    expect(after.gro_frames! - before.gro_frames!).toBeGreaterThan(0);
    const f = (n: number) => n.toFixed(2);
    console.log(
      `iperf3 TCP, Gbit/s: TAP vm2 <- VXLAN <- TAP vm1 ${f(tap.up)}, back ${f(tap.down)}; ` +
        `bare metal bm -> attached bm0 -> VXLAN -> TAP vm1 ${f(attached.up)}, back ${f(attached.down)}`,
    );
    for (const g of [tap.up, tap.down, attached.up, attached.down]) expect(g).toBeGreaterThan(0);
    const st = await cli<StatsSnapshot>(h2, ['stats']);
    const bm0 = st.ports.find((p) => p.port === 'bm0')!;
    expect(bm0).toMatchObject({ kind: 'attach', tenant: 'blue' });
    expect(bm0.rxPackets).toBeGreaterThan(1000);
    expect(bm0.txPackets).toBeGreaterThan(1000);
  });

  it('learns the bare-metal MAC at bm0 and the VM behind its VTEP: its own transmits do not come back (no moves)', async () => {
    const bmMac = await macOf('bm', 'eth0');
    const vmMac = await macOf('vm1', 'blue0');
    const rows = await cli<FdbRow[]>(h2, ['fdb', 'show', '--tenant', 'blue']);
    const by = Object.fromEntries(rows.map((r) => [r.mac, r.where]));
    expect(by[bmMac]).toEqual({ kind: 'port', port: 'bm0' });
    expect(by[vmMac]).toMatchObject({ kind: 'vtep', vtep: UNDERLAY.h1 });
    const st = await cli<StatsSnapshot>(h2, ['stats']);
    expect(st.tenants.find((t) => t.tenant === 'blue')!.moves).toBe(0);
  });

  it('vtepd restart hands the packet socket over: still attached, still promiscuous, still forwarding', async () => {
    const r = await vtepdIn('h2', ['restart', '--socket', h2.socket, '--json']);
    expect(r.code, r.stderr).toBe(0);
    successor = (JSON.parse(r.stdout) as { newPid: number }).newPid;
    const s = await cli<StatusResult>(h2, ['status']);
    expect(s.pid).toBe(successor);
    expect(s.ports.find((p) => p.tap === 'bm0')).toMatchObject({ kind: 'attach' });
    expect(await promiscuity('h2', 'bm0')).toBe(1);
    expect(await ping('bm', '10.1.0.1')).toBe(3);
  });

  it('an interface that goes down and up keeps its port; one deleted and made again is attached again', async () => {
    await lab.exec('h2', 'ip', ['link', 'set', 'bm0', 'down']);
    await lab.exec('h2', 'ip', ['link', 'set', 'bm0', 'up']);
    await until(
      'bm to reach the VM after bm0 went down and up',
      () => ping('bm', '10.1.0.1'),
      (n) => n > 0,
    );
    const before = (await cli<StatusResult>(h2, ['status'])).ports.find((p) => p.tap === 'bm0')!.ifindex;
    await lab.exec('h2', 'ip', ['link', 'del', 'bm0']); // takes the bare-metal end with it
    expect(await ping('vm2', '10.1.0.1')).toBe(3); // the other ports go on
    await lab.link('h2', 'bm0', null, 'bm', 'eth0', '10.1.0.3/24', 1450);
    await until(
      'bm0 attached again',
      async () => (await cli<StatusResult>(h2, ['status'])).ports.find((p) => p.tap === 'bm0' && !p.waiting)?.ifindex,
      (i) => i !== undefined && i !== before,
    );
    expect(await promiscuity('h2', 'bm0')).toBe(1);
    await until(
      'bm to reach the VM through the new bm0',
      () => ping('bm', '10.1.0.1'),
      (n) => n > 0,
    );
    expect((await cli<StatsSnapshot>(h2, ['stats'])).switch.portsRecreated).toBe(1);
  });

  it('an interface holding the underlay address: run refuses it and check warns, at tenants[0].ports[0].attach', async () => {
    // h3 has IPv6 on (as a hypervisor has): its underlay address on a NIC, ul3.
    await lab.exec('h3', 'ip', ['link', 'add', 'ul3', 'type', 'veth', 'peer', 'name', 'ul3p']);
    await lab.exec('h3', 'ip', ['addr', 'add', '10.9.0.1/24', 'dev', 'ul3']);
    await lab.exec('h3', 'ip', ['link', 'set', 'ul3', 'up']);
    const file = join(dir, 'underlay.yaml');
    writeFileSync(file, `control: { socket: ${join(dir, 'h3.sock')} }\n${config('10.9.0.1', '10.9.0.2', ['{ attach: ul3 }'])}`);
    const say =
      'ul3 holds the underlay address 10.9.0.1 (an attached interface is a switch port: vtepd would take its addresses away; attach another interface, or move the address)';
    const c = await vtepdIn('h3', ['check', '--config', file]);
    expect(c.code).toBe(0);
    expect(c.stdout + c.stderr).toContain(`warning: tenants[0].ports[0].attach: ${say}`);
    const r = await vtepdIn('h3', ['run', '--config', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`tenants[0].ports[0].attach: ${say}`);
    expect(JSON.parse((await lab.exec('h3', 'ip', ['-j', 'addr', 'show', 'dev', 'ul3'])).stdout)[0].addr_info.length).toBeGreaterThan(0);
  });

  it("a missing interface is waited for (a VM's TAP before the VM starts); attached when it appears, its IPv4 address removed and IPv6 off", async () => {
    // addr3: an interface with host addresses, attached at start; vnet3: appears later.
    await lab.exec('h3', 'ip', ['link', 'add', 'addr3', 'type', 'veth', 'peer', 'name', 'addr3p']);
    await lab.exec('h3', 'ip', ['addr', 'add', '10.1.9.1/24', 'dev', 'addr3']);
    const yaml = config('10.9.0.1', '10.9.0.2', ['{ attach: addr3 }', '{ attach: vnet3 }']);
    writeFileSync(join(dir, 'h3.yaml'), `control: { socket: ${join(dir, 'h3.sock')} }\n${yaml}`);
    const c = await vtepdIn('h3', ['check', '--config', join(dir, 'h3.yaml')]);
    expect(c.code).toBe(0);
    const warned = c.stdout + c.stderr;
    expect(warned).toContain(
      'warning: tenants[0].ports[0].attach: addr3 has the IPv4 address 10.1.9.1/24: vtepd removes it and turns IPv6 off on it when it attaches it (a switch port carries no host address)',
    );
    expect(warned).toContain(
      "warning: tenants[0].ports[1].attach: interface vnet3 does not exist yet: vtepd attaches it when it appears, as a VM's TAP does when the VM starts (if it should exist now, check the name with ip link; write tap: vnet3 to have vtepd create a TAP)",
    );
    const h3 = await startDaemon(lab, 'h3', yaml, dir);
    try {
      expect(h3.stderr()).toMatch(/attached interface does not exist yet: attaching it when it appears/);
      expect(h3.stderr()).toMatch(/its IPv4 addresses removed \(a switch port carries no host address\)/);
      const addrs = async (dev: string) =>
        (JSON.parse((await lab.exec('h3', 'ip', ['-j', 'addr', 'show', 'dev', dev])).stdout) as { addr_info: unknown[] }[])[0]!.addr_info;
      const ipv6 = async (dev: string) => (await lab.exec('h3', 'sysctl', ['-n', `net.ipv6.conf.${dev}.disable_ipv6`])).stdout.trim();
      expect(await addrs('addr3')).toEqual([]);
      expect(await ipv6('addr3')).toBe('1');
      const waiting = (await cli<StatusResult>(h3, ['status'])).ports.find((p) => p.tap === 'vnet3');
      expect(waiting).toMatchObject({ kind: 'attach', waiting: true });
      const text = (await run(process.execPath, [CLI, 'status', '--socket', h3.socket])).stdout;
      expect(text).toMatch(/^vnet3\s+blue\s+-\s+-\s+-\s+-\s+config\s+attach \(waiting for it\)$/m);
      // The VM starts: its TAP appears, with host addresses on it. Made under another name and
      // renamed, so that it appears with both already there: the daemon attaches it (and turns
      // IPv6 off) as soon as it sees the name, faster than a second `ip addr add` under load.
      await lab.exec('h3', 'ip', ['link', 'add', 'tmp3', 'type', 'veth', 'peer', 'name', 'vnet3p']);
      await lab.exec('h3', 'ip', ['addr', 'add', '10.1.9.2/24', 'dev', 'tmp3']);
      await lab.exec('h3', 'ip', ['addr', 'add', '2001:db8:9::2/64', 'dev', 'tmp3', 'nodad']);
      await lab.exec('h3', 'ip', ['link', 'set', 'tmp3', 'name', 'vnet3']);
      await until(
        'vnet3 attached',
        async () => (await cli<StatusResult>(h3, ['status'])).ports.find((p) => p.tap === 'vnet3'),
        (p) => p !== undefined && !p.waiting && p.ifindex > 0,
      );
      expect(await addrs('vnet3')).toEqual([]);
      expect(await ipv6('vnet3')).toBe('1');
      expect((await cli<StatsSnapshot>(h3, ['stats'])).switch.portsAttached).toBe(1);
    } finally {
      await lab.stop(h3.child);
    }
  });

  it('after vtepd stops, the interface is no longer promiscuous', async () => {
    await lab.stop(h2.child); // gone already after the restart
    if (successor) process.kill(successor, 'SIGTERM');
    await until('the successor to exit', async () => !alive(successor), Boolean);
    await until(
      'bm0 to leave promiscuous mode',
      () => promiscuity('h2', 'bm0'),
      (n) => n === 0,
    );
  });
});

function vtepdIn(host: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', lab.ns(host), process.execPath, CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
