/**
 * VM ports plugged in at runtime (#16, step 2): vtepd on h2 runs tenants blue (no port of its
 * config) and red (a TAP container r2); vtepd on h1 has a TAP container in each (vm1, r1). A
 * hypervisor's vnet7 is stood in for by a veth whose peer is the "VM" namespace's eth0 (a TAP
 * made with `ip tuntap` stays down without a reader; QEMU's vnet0 is a netdev like this one).
 *
 * `vtepd port add --tenant blue --attach vnet7` before vnet7 exists waits (said, listed as
 * waiting) and attaches it when it appears: the VM pings the container on h1. vnet7 deleted
 * (the VM stopped) is detached, counted and logged while red goes on; made again (a new
 * ifindex, the same name: QEMU re-creating its TAP) it is attached again without a restart.
 * A reload says it keeps the port; `vtepd restart` hands its packet socket over (the same inode); a stop and run with vnet7 missing
 * waits for it from the state file; `port del --attach` detaches it (no longer promiscuous).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, parsePing, run } from '../../lab/netns.js';
import { CLI, UNDERLAY, startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import type { StatusResult } from '../../src/cli/table.js';
import { packetSockets, promiscuity } from '../support/links.js';

const lab = new Lab('vp');
const dir = mkdtempSync(join(tmpdir(), 'vtepd-vmport-'));
let h1: Daemonised;
let h2: Daemonised;
/** The daemon `vtepd restart` started (not a child of the lab): stopped by PID. */
let successor = 0;

const HOOK = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'contrib', 'libvirt', 'qemu');

interface PortRow {
  tap: string;
  kind: string;
  waiting: boolean;
  tenant: string | null;
  ifindex: number | null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function config(local: string, peer: string, blue: string[], red: string): string {
  return [
    `underlay: { local: ${local} }`,
    'log: { level: info }',
    'tenants:',
    `  - { name: blue, vni: 5001, flood: [ ${peer} ], ports: [ ${blue.join(', ')} ] }`,
    `  - { name: red, vni: 5002, flood: [ ${peer} ], ports: [ ${red} ] }`,
    '',
  ].join('\n');
}
const H2 = config(UNDERLAY.h2, UNDERLAY.h1, [], `{ tap: red0, netns: ${lab.ns('r2')}, address: 10.2.0.2/24 }`);

async function vtepd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args, '--socket', h2.socket], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
async function json<T>(args: string[]): Promise<T> {
  const r = await run(process.execPath, [CLI, ...args, '--socket', h2.socket, '--json']);
  return JSON.parse(r.stdout) as T;
}
const portList = () => json<PortRow[]>(['port', 'list']);
// The attached port (a waiting one is listed too, with waiting: true).
const vnet7 = async () => (await json<StatusResult>(['status'])).ports.find((p) => p.tap === 'vnet7' && !p.waiting);
const switchCounters = async () => (await json<StatsSnapshot>(['stats'])).switch;

async function ping(from: string, to: string): Promise<number> {
  return parsePing((await lab.exec(from, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', to])).stdout).received;
}
/** The hypervisor starts the VM: vnet7 on h2, its peer the VM's NIC (MTU of the overlay). */
const startVm = () => lab.link('h2', 'vnet7', null, 'vm', 'eth0', '10.1.0.3/24', 1450);
/** The VM stops: vnet7 goes (and the VM's end with it). */
const stopVm = () => lab.exec('h2', 'ip', ['link', 'del', 'vnet7']);

beforeAll(async () => {
  for (const h of ['h1', 'h2', 'vm1', 'r1', 'r2', 'vm']) await lab.addHost(h, { ipv6: false });
  await lab.link('h1', 'ul0', `${UNDERLAY.h1}/24`, 'h2', 'ul0', `${UNDERLAY.h2}/24`);
  h1 = await startDaemon(
    lab,
    'h1',
    config(
      UNDERLAY.h1,
      UNDERLAY.h2,
      [`{ tap: blue0, netns: ${lab.ns('vm1')}, address: 10.1.0.1/24 }`],
      `{ tap: red0, netns: ${lab.ns('r1')}, address: 10.2.0.1/24 }`,
    ),
    dir,
  );
  h2 = await startDaemon(lab, 'h2', H2, dir);
}, 120_000);

afterAll(async () => {
  if (successor && alive(successor)) process.kill(successor, 'SIGTERM');
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('a VM plugged in at runtime (port add --tenant --attach, #16)', () => {
  it('port add before the interface exists waits for it, and attaches it when it appears: the VM reaches the container on h1', async () => {
    const r = await vtepd(['port', 'add', '--tenant', 'blue', '--attach', 'vnet7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('port vnet7 (attach) in tenant blue (VNI 5001): the interface does not exist yet, attached when it appears\n');
    expect((await vtepd(['port', 'list'])).stdout).toMatch(/^vnet7\s+-\s+5001\s+blue\s+-\s+-\s+-\s+-\s+attach \(waiting for it\)$/m);
    expect(h2.stderr()).toMatch(/attached interface does not exist yet: attaching it when it appears/);
    await startVm();
    await until('vnet7 attached', vnet7, (p) => p !== undefined);
    expect(await vnet7()).toMatchObject({ kind: 'attach', tenant: 'blue', net: 'tenant blue' });
    expect((await vtepd(['status'])).stdout).toMatch(/^vnet7\s+blue\s+-\s+\d+\s+\S+\s+1450\s+port add tenant blue\s+attach$/m);
    expect(h2.stderr()).toMatch(/attached interface appeared: attached/);
    expect(await promiscuity(lab, 'h2', 'vnet7')).toBe(1);
    await untilPings(lab, 'vm', '10.1.0.1');
    expect(await ping('vm1', '10.1.0.3')).toBe(3);
    expect(await switchCounters()).toMatchObject({ portsAttached: 1, portsDetached: 0 });
  });

  it('refuses a tenant that does not exist and a name that is taken, saying so', async () => {
    const none = await vtepd(['port', 'add', '--tenant', 'green', '--attach', 'vnet9']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('tenant: no tenant green in the config (it has blue, red)');
    const twice = await vtepd(['port', 'add', '--tenant', 'red', '--attach', 'vnet7']);
    expect(twice.stderr).toContain('attach: vnet7 is already a port (tenant blue)');
    const tap = await vtepd(['port', 'add', '--tenant', 'blue', '--attach', 'red0']);
    expect(tap.stderr).toContain('attach: red0 is already a port (tenant red)');
    const both = await vtepd(['port', 'add', '--tenant', 'blue', '--tap', 'x0', '--attach', 'x1']);
    expect(both.stderr).toContain('give --tap (a TAP vtepd creates) or --attach (an interface that exists)');
  });

  it('the VM stops: vnet7 is detached, counted and logged, red goes on; started again (a new ifindex) it is attached again', async () => {
    const before = (await vnet7())!.ifindex;
    await stopVm();
    await until('vnet7 detached and counted', switchCounters, (s) => s.portsDetached === 1);
    expect(h2.stderr()).toMatch(/attached interface gone \(deleted under the daemon\); re-attaching it when it is back/);
    expect((await portList()).map((p) => [p.tap, p.waiting])).toEqual([['vnet7', true]]);
    expect(await ping('r2', '10.2.0.1')).toBe(3); // the other tenant forwards
    await startVm();
    await until('vnet7 attached again', vnet7, (p) => p !== undefined && p.ifindex !== before);
    await untilPings(lab, 'vm', '10.1.0.1');
    expect(await switchCounters()).toMatchObject({ portsAttached: 2, portsDetached: 1 });
    expect(await promiscuity(lab, 'h2', 'vnet7')).toBe(1);
  });

  it('a reload keeps the port and says so', async () => {
    const r = await vtepd(['reload']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('reloaded: no change\nports attached at runtime kept: vnet7 (tenant blue)\n');
    expect(await ping('vm', '10.1.0.1')).toBe(3);
  });

  it('vtepd restart hands the packet socket over: the same socket, still forwarding', async () => {
    const { ifindex } = (await vnet7())!;
    const sockets = await packetSockets(lab, 'h2', ifindex);
    expect(sockets).toHaveLength(1);
    const r = await vtepd(['restart', '--json']);
    expect(r.code, r.stderr).toBe(0);
    successor = (JSON.parse(r.stdout) as { newPid: number }).newPid;
    expect((await json<StatusResult>(['status'])).pid).toBe(successor);
    expect(await vnet7()).toMatchObject({ kind: 'attach', tenant: 'blue', net: 'tenant blue', ifindex });
    expect(await packetSockets(lab, 'h2', ifindex)).toEqual(sockets);
    expect(await promiscuity(lab, 'h2', 'vnet7')).toBe(1);
    expect(await ping('vm', '10.1.0.1')).toBe(3);
  });

  it('stopped, and run again while the VM is down: the port waits from the state file, and is attached when the VM starts', async () => {
    process.kill(successor, 'SIGTERM');
    await until('the successor to exit', async () => !alive(successor), Boolean);
    await stopVm();
    h2 = await startDaemon(lab, 'h2', H2, dir);
    expect((await portList()).map((p) => [p.tap, p.kind, p.waiting, p.tenant])).toEqual([['vnet7', 'attach', true, 'blue']]);
    expect(h2.stderr()).toMatch(/attached interface does not exist yet: attaching it when it appears/);
    expect(await ping('r2', '10.2.0.1')).toBe(3);
    await startVm();
    await until('vnet7 attached', vnet7, (p) => p !== undefined);
    await untilPings(lab, 'vm', '10.1.0.1');
  });

  it('port del --attach detaches it: no longer promiscuous, no longer listed, the interface stays', async () => {
    const r = await vtepd(['port', 'del', '--attach', 'vnet7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('port vnet7 removed from tenant blue (VNI 5001)\n');
    expect(await promiscuity(lab, 'h2', 'vnet7')).toBe(0);
    expect((await vtepd(['port', 'list'])).stdout).toBe('no ports attached by port add\n');
    expect(await vnet7()).toBeUndefined();
    expect(await ping('r2', '10.2.0.1')).toBe(3);
    expect(h1).toBeDefined();
  });

  it('the libvirt hook (contrib/libvirt/qemu) puts the domain on its tenant when it starts and takes it off when it stops', async () => {
    const wrapper = join(dir, 'vtepd-cli');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    const xml = `<domain><name>vm</name><metadata><vtepd:ports xmlns:vtepd="urn:vtepd:libvirt:1"><vtepd:port dev="vnet7" tenant="blue"/></vtepd:ports></metadata>
      <devices><interface type="ethernet"><target dev="vnet7"/><model type="virtio"/><mtu size="1450"/></interface></devices></domain>`;
    const hook = (op: string) =>
      spawnSync('/usr/bin/python3', [HOOK, 'vm', op, 'begin', '-'], {
        input: xml,
        encoding: 'utf8',
        env: { ...process.env, VTEPD: wrapper, VTEPD_SOCKET: h2.socket },
      });
    const started = hook('started');
    expect(started.status, started.stderr).toBe(0);
    expect(started.stderr).toBe('');
    expect((await portList()).map((p) => [p.tap, p.tenant])).toEqual([['vnet7', 'blue']]);
    expect(await ping('vm', '10.1.0.1')).toBe(3);
    const stopped = hook('stopped');
    expect(stopped.status, stopped.stderr).toBe(0);
    expect(await portList()).toEqual([]);
  });
});
