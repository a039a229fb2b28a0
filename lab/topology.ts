/**
 * Built-in topologies of network namespaces, shared by `vtepd demo`, the integration
 * tests and the benchmarks.
 *
 *   two hosts:   [h1] --veth ul0 (10.0.0.1/24 <-> 10.0.0.2/24)-- [h2]
 *                (or, with an IPv6 underlay, 2001:db8::1/64 <-> 2001:db8::2/64)
 *   endpoints:   an endpoint namespace per tenant per host (a "VM"), holding the
 *                tenant's TAP (vtepd) or the kernel's VXLAN device (reference).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, waitForLine } from './netns.js';
import { until } from './wait.js';
import { request } from '../src/daemon/control.js';
import { packageRoot } from '../src/util/paths.js';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';
import type { Encap, Family } from '../src/core/encap.js';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../src/secure/keys.js';

/** The compiled CLI (dist/src/cli/cli.js), whether we run from dist/ or from source under vitest. */
export const CLI = join(packageRoot, 'dist', 'src', 'cli', 'cli.js');

/** node's arguments for `vtepd run --config FILE`, with the daemon's node flags (src/daemon/node-flags.ts). */
export const daemonArgv = (configPath: string): string[] => [...DAEMON_NODE_FLAGS, CLI, 'run', '--config', configPath];

export const UNDERLAY = { h1: '10.0.0.1', h2: '10.0.0.2', h3: '10.0.0.3', prefix: 24 };
/** The IPv6 underlay of the same hosts (documentation prefix, RFC 3849). */
export const UNDERLAY6 = { h1: '2001:db8::1', h2: '2001:db8::2', h3: '2001:db8::3', prefix: 64 };
export type UnderlayFamily = Family;

/** Underlay address of host i (0-based) of a lab, by family. */
export function underlayAddress(i: number, family: UnderlayFamily = 4): string {
  return family === 4 ? `10.0.0.${i + 1}` : `2001:db8::${i + 1}`;
}

export interface TenantPlan {
  name: string;
  vni: number;
  /** Overlay address of the endpoint on host N (index 0 = h1), e.g. ["10.1.0.1/24", "10.1.0.2/24"]. */
  addresses: string[];
  macs?: string[];
  ageing?: number;
  /** How the tenant reaches the other hosts (default vxlan). */
  encap?: Encap;
  /** With keys (meshVtepd's `secure`): the tenant's encryption (default required). */
  encryption?: 'required' | 'off';
}

/** A YAML config for one host of a mesh: every other host is in the flood list. */
export function meshConfig(
  lab: Lab,
  host: number,
  hosts: string[],
  tenants: TenantPlan[],
  extra: { port?: number; log?: string; queues?: number; sourcePorts?: number; keys?: LabKey[] } = {},
): string {
  const local = hosts[host];
  // Addresses are quoted: an IPv6 address is not a safe plain scalar in a YAML flow mapping.
  const q = (a: string) => JSON.stringify(a);
  const lines = [
    `underlay: { local: ${q(local)}, port: ${extra.port ?? 4789}, mtu: 1500${extra.queues ? `, queues: ${extra.queues}` : ''}${extra.sourcePorts ? `, sourcePorts: ${extra.sourcePorts}` : ''} }`,
    `log: { level: ${extra.log ?? 'warn'} }`,
    ...(extra.keys ? [`identity: { privateKeyFile: ${extra.keys[host]!.file} }`] : []),
    'tenants:',
  ];
  // With keys, every flood entry names its VTEP's key.
  const peer = (a: string, i: number) => (extra.keys ? `{ vtep: ${q(a)}, publicKey: "${extra.keys[i]!.publicKey}" }` : q(a));
  for (const t of tenants) {
    lines.push(
      `  - name: ${t.name}`,
      `    vni: ${t.vni}`,
      ...(t.encap ? [`    encap: ${t.encap}`] : []),
      ...(t.encryption ? [`    encryption: ${t.encryption}`] : []),
      '    ports:',
    );
    const mac = t.macs?.[host] ? `, mac: "${t.macs[host]}"` : '';
    lines.push(`      - { tap: ${t.name}0, netns: ${lab.ns(`${t.name}${host + 1}`)}, address: ${t.addresses[host]}${mac} }`);
    lines.push(
      `    flood: [ ${hosts
        .map((a, i) => (i === host ? null : peer(a, i)))
        .filter((x) => x !== null)
        .join(', ')} ]`,
    );
    if (t.ageing) lines.push(`    ageing: ${t.ageing}`);
  }
  return lines.join('\n') + '\n';
}

export interface Daemonised {
  child: ChildProcess;
  configPath: string;
  /** The daemon's control socket (in the lab's directory unless the YAML names one). */
  socket: string;
  stderr: () => string;
}

/** How a lab daemon is started: `detached` (it may outlive this process), `env` (added to this process's environment, e.g. VTEPD_DP_PROCESS). */
export interface DaemonStart {
  detached?: boolean;
  env?: Record<string, string>;
}

/**
 * Start `vtepd run` inside a lab host and wait until it says it is running. Unless the
 * YAML says otherwise, its control socket is `<dir>/<host>.sock`, so daemons of different
 * labs (and a real vtepd on /run/vtepd/vtepd.sock) never meet.
 */
export async function startDaemon(lab: Lab, host: string, yaml: string, dir: string, opts: DaemonStart = {}): Promise<Daemonised> {
  const configPath = join(dir, `${host}.yaml`);
  const named = /^control:\s*\{\s*socket:\s*(\S+?)\s*\}/m.exec(yaml);
  const socket = named ? named[1]! : join(dir, `${host}.sock`);
  writeFileSync(configPath, named ? yaml : `control: { socket: ${socket} }\n${yaml}`);
  const env = opts.env ? { env: { ...process.env, ...opts.env } } : {};
  if (opts.detached) return startDetached(lab, host, configPath, socket, join(dir, `${host}.log`), env);
  const child = lab.spawn(host, process.execPath, daemonArgv(configPath), env);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-20000);
  });
  await waitForLine(child, /^vtepd: running/);
  return { child, configPath, socket, stderr: () => err };
}

/**
 * A daemon that outlives this process (`vtepd demo --keep`): its own session, its output to
 * `log`; running once the log says so.
 */
async function startDetached(lab: Lab, host: string, configPath: string, socket: string, log: string, env: { env?: NodeJS.ProcessEnv }): Promise<Daemonised> {
  const fd = openSync(log, 'a');
  const child = lab.spawn(host, process.execPath, daemonArgv(configPath), { detached: true, stdio: ['ignore', fd, fd], ...env });
  closeSync(fd);
  child.unref();
  const text = () => readFileSync(log, 'utf8');
  await until(`${host}'s vtepd to say it is running (${log})`, async () => {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${text().slice(-2000)}`);
    return /^vtepd: running/m.test(text());
  });
  return { child, configPath, socket, stderr: text };
}

export interface Mesh {
  lab: Lab;
  dir: string;
  /** Underlay addresses, index 0 = h1. */
  hosts: string[];
  daemons: Daemonised[];
  /** Namespace name of tenant `name`'s endpoint on host n (1-based). */
  endpoint(name: string, host: number): string;
  cleanup(): Promise<void>;
}

/** Options of meshVtepd and twoHostsVtepd: `env` reaches every daemon (startDaemon). */
export interface MeshOptions {
  log?: string;
  tag?: string;
  family?: UnderlayFamily;
  queues?: number;
  secure?: boolean;
  detached?: boolean;
  env?: Record<string, string>;
}

/**
 * `n` hosts running vtepd in a full mesh (each floods to all others), one endpoint
 * namespace per tenant per host. Two hosts share a veth; three or more hang off a Linux
 * bridge in an underlay-switch namespace "sw".
 */
export async function meshVtepd(n: number, tenants: TenantPlan[], opts: MeshOptions = {}): Promise<Mesh> {
  const lab = new Lab(opts.tag ?? 'vt');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-'));
  const family = opts.family ?? 4;
  const plen = family === 4 ? UNDERLAY.prefix : UNDERLAY6.prefix;
  const hosts = Array.from({ length: n }, (_, i) => underlayAddress(i, family));
  const cleanup = async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 1; i <= n; i++) await lab.addHost(`h${i}`);
    if (n === 2) {
      await lab.link('h1', 'ul0', `${hosts[0]}/${plen}`, 'h2', 'ul0', `${hosts[1]}/${plen}`);
    } else {
      await lab.addHost('sw');
      await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
      for (let i = 1; i <= n; i++) {
        await lab.link(`h${i}`, 'ul0', `${hosts[i - 1]}/${plen}`, 'sw', `p${i}`, null);
        await lab.exec('sw', 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
      }
    }
    for (const t of tenants) for (let i = 1; i <= n; i++) await lab.addHost(`${t.name}${i}`, { ipv6: false });
    const daemons: Daemonised[] = [];
    const keys = opts.secure ? hosts.map((_, i) => labKey(dir, `h${i + 1}`)) : undefined;
    for (let i = 0; i < n; i++)
      daemons.push(
        await startDaemon(lab, `h${i + 1}`, meshConfig(lab, i, hosts, tenants, { log: opts.log, queues: opts.queues, keys }), dir, {
          detached: opts.detached,
          env: opts.env,
        }),
      );
    return { lab, dir, hosts, daemons, endpoint: (name, host) => lab.ns(`${name}${host}`), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Two hosts over one veth, vtepd on both (`detached`: daemons that can outlive this process, logging to <dir>/<host>.log). */
export function twoHostsVtepd(tenants: TenantPlan[], opts: MeshOptions = {}): Promise<Mesh> {
  return meshVtepd(2, tenants, opts);
}

/**
 * The kernel's VXLAN device as vtepd's peer, the way a Linux hypervisor runs it: on `host`,
 * a VXLAN device (learning on, udp/4789) on a bridge, flooding to the VTEP `remote`, with
 * a veth to a new endpoint namespace `endpoint` whose eth0 has `address` and `mtu`.
 *
 * Over veth the kernel leaves the inner TCP checksum unfinished (CHECKSUM_PARTIAL) all the
 * way into the VXLAN packet; a real NIC would finish it, and vtepd's UDP socket cannot see
 * that it is partial. `finishChecksums` says who finishes it, as on real hardware:
 * 'endpoint' (tx checksum offload off on the endpoint's eth0) or 'vxlan' (off on the VXLAN
 * device: the kernel segments and finishes before it encapsulates, and the endpoint keeps
 * TSO). `devices` names the VXLAN device, the bridge and the host's veth end (default vx0,
 * br0, vm0), so that one host can hold several (one per VNI).
 */
export async function addKernelBridgePeer(
  lab: Lab,
  opts: {
    host: string;
    endpoint: string;
    vni: number;
    local: string;
    remote: string;
    address: string;
    mtu: number;
    finishChecksums: 'endpoint' | 'vxlan';
    devices?: { vxlan: string; bridge: string; veth: string };
  },
): Promise<void> {
  const { host } = opts;
  const { vxlan: vx0, bridge: br0, veth: vm0 } = opts.devices ?? { vxlan: 'vx0', bridge: 'br0', veth: 'vm0' };
  await lab.addHost(opts.endpoint, { ipv6: false });
  await lab.exec(host, 'ip', ['link', 'add', vx0, 'type', 'vxlan', 'id', String(opts.vni), 'local', opts.local, 'dstport', '4789']);
  await lab.exec(host, 'bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', vx0, 'dst', opts.remote]);
  await lab.exec(host, 'ip', ['link', 'add', br0, 'type', 'bridge']);
  await lab.exec(host, 'ip', ['link', 'set', vx0, 'master', br0, 'mtu', '1500']);
  await lab.link(host, vm0, null, opts.endpoint, 'eth0', opts.address, opts.mtu);
  await lab.exec(host, 'ip', ['link', 'set', vm0, 'master', br0]);
  if (opts.finishChecksums === 'endpoint') await lab.exec(opts.endpoint, 'ethtool', ['-K', 'eth0', 'tx', 'off']);
  else await lab.exec(host, 'ethtool', ['-K', vx0, 'tx', 'off']);
  for (const d of [vx0, br0]) await lab.exec(host, 'ip', ['link', 'set', d, 'up']);
}

/**
 * The reference: the kernel's VXLAN device on the same two hosts and veth, one endpoint
 * namespace per host ("k1", "k2") holding a VXLAN device whose underlay socket stays in
 * the host (the device is moved into the endpoint after creation).
 */
export async function addKernelVxlan(
  lab: Lab,
  opts: { vni: number; port: number; addresses: [string, string]; mtu?: number; family?: UnderlayFamily },
): Promise<void> {
  const u = opts.family === 6 ? UNDERLAY6 : UNDERLAY;
  const locals = [u.h1, u.h2];
  for (const i of [0, 1]) {
    const host = `h${i + 1}`;
    const ep = `k${i + 1}`;
    await lab.addHost(ep, { ipv6: false });
    const dev = 'vxk';
    await lab.exec(host, 'ip', [
      'link',
      'add',
      dev,
      'type',
      'vxlan',
      'id',
      String(opts.vni),
      'local',
      locals[i],
      'remote',
      locals[1 - i],
      'dstport',
      String(opts.port),
      'nolearning',
    ]);
    await lab.exec(host, 'ip', ['link', 'set', dev, 'mtu', String(opts.mtu ?? 1450), 'netns', lab.ns(ep)]);
    await lab.exec(ep, 'ip', ['addr', 'add', opts.addresses[i], 'dev', dev]);
    await lab.exec(ep, 'ip', ['link', 'set', dev, 'up']);
  }
}

// ---- hub and spoke ---------------------------------------------------------------------------

/**
 * A hub-and-spoke overlay: an underlay switch namespace "sw" (a Linux bridge, the
 * "Internet" 10.0.0.0/24), hubs hub1.. at 10.0.0.10, .11, …, spokes a, b, … at 10.0.0.1,
 * .2, … each with one endpoint namespace per tenant ("<tenant>-<spoke>"), and optionally:
 *   - spokes behind NAT: the spoke sits on 192.168.<n>.2 behind a namespace "nat<n>" that
 *     masquerades it to its own 10.0.0.(100+n) with ports in 40000..40999 (nftables), so
 *     the hub sees neither the spoke's address nor its port;
 *   - a kernel VXLAN spoke "k" (10.0.0.9): a plain `ip link add … type vxlan` whose only
 *     flood entry is the first hub, in an endpoint namespace "<tenant>-k".
 * Hubs run `role: hub` with no ports (pure relays); spokes `role: spoke` with every hub.
 *
 *        [a]──┐                      ┌──[hub1]
 *        [b]──┼── sw (br0) ──────────┼──[hub2]
 *  [b]─[nat1]─┘    10.0.0.0/24       └──[k] kernel VXLAN spoke
 */
export interface HubSpokeTenant {
  name: string;
  vni: number;
  /** Overlay subnet prefix "10.1.0": spoke i gets .(i+1)/24, the kernel spoke .9. */
  subnet: string;
  /** TAP MTU on the spokes (default: from underlay.mtu). */
  tapMtu?: number;
  mssClamp?: 'off' | 'auto' | number;
  /** With `secure`: this tenant's encryption (default: required). */
  encryption?: 'required' | 'off';
}

export interface HubSpokeOptions {
  tag?: string;
  hubs?: number;
  /** Spoke names (default ['a', 'b']). */
  spokes?: string[];
  /** Spokes behind NAT (by name). */
  natSpokes?: string[];
  kernelSpoke?: boolean;
  tenants?: HubSpokeTenant[];
  deadInterval?: number;
  log?: string;
  /** Extra top-level YAML for spokes / hubs. */
  spokeExtra?: string[];
  hubExtra?: string[];
  /**
   * Identities (docs/security.md): every hub and spoke gets a key pair (files in `dir`,
   * mode 0600), spokes pin their hubs by key, hubs list the spokes' keys, tenants are
   * encrypted (unless `encryption: off`). `spokeVnis` limits what a spoke's key may join
   * (default: every tenant).
   */
  secure?: { rekeyInterval?: number; encryption?: 'required' | 'off'; spokeVnis?: Record<string, number[]> };
  /** More hosts on the underlay switch (an attacker), by name: their address. */
  extraHosts?: Record<string, string>;
}

/** A node's key pair as the tests use it (base64) and where its private key file is. */
export interface LabKey {
  privateKey: string;
  publicKey: string;
  file: string;
}

/** A new key pair, its private key written to `dir/NAME.key` with mode 0600. */
export function labKey(dir: string, name: string): LabKey {
  const priv = generatePrivateKey();
  const file = join(dir, `${name}.key`);
  writeFileSync(file, `${encodeKey(priv)}\n`, { mode: 0o600 });
  return { privateKey: encodeKey(priv), publicKey: encodeKey(publicKeyOf(priv)), file };
}

export interface HubSpoke {
  lab: Lab;
  dir: string;
  /** Daemons by host name (hub1, hub2, a, b, …). */
  daemons: Map<string, Daemonised>;
  hubAddress(i: number): string;
  /** Underlay address of a spoke as configured on it (a NAT'd spoke's private one). */
  spokeLocal(name: string): string;
  /** The overlay address of a spoke (or "k") in a tenant, without prefix. */
  overlay(tenant: string, spoke: string): string;
  /** Host name of a tenant's endpoint behind a spoke. */
  endpoint(tenant: string, spoke: string): string;
  /** The YAML a host runs. */
  yaml: Map<string, string>;
  /** With `secure`: each hub's and spoke's key pair, by host name. */
  keys: Map<string, LabKey>;
  /** Start (again) the daemon of a host with its YAML. */
  start(host: string): Promise<Daemonised>;
  cleanup(): Promise<void>;
}

export async function hubAndSpoke(opts: HubSpokeOptions = {}): Promise<HubSpoke> {
  const lab = new Lab(opts.tag ?? 'hs');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-hs-'));
  const nHubs = opts.hubs ?? 1;
  const spokes = opts.spokes ?? ['a', 'b'];
  const nat = new Set(opts.natSpokes ?? []);
  const tenants = opts.tenants ?? [{ name: 'blue', vni: 5001, subnet: '10.1.0' }];
  const daemons = new Map<string, Daemonised>();
  const yaml = new Map<string, string>();
  const hubAddress = (i: number) => `10.0.0.${10 + i}`;
  const spokeIndex = (name: string) => spokes.indexOf(name);
  const natIndex = (name: string) => [...nat].indexOf(name) + 1;
  const spokeLocal = (name: string) => (nat.has(name) ? `192.168.${natIndex(name)}.2` : `10.0.0.${spokeIndex(name) + 1}`);
  const overlay = (tenant: string, spoke: string) => {
    const t = tenants.find((x) => x.name === tenant)!;
    return `${t.subnet}.${spoke === 'k' ? 9 : spokeIndex(spoke) + 1}`;
  };
  const endpoint = (tenant: string, spoke: string) => `${tenant}-${spoke}`;
  const cleanup = async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  const start = async (host: string) => {
    const d = await startDaemon(lab, host, yaml.get(host)!, dir);
    daemons.set(host, d);
    return d;
  };
  const dead = opts.deadInterval !== undefined ? [`deadInterval: ${opts.deadInterval}`] : [];
  const keys = new Map<string, LabKey>();
  const sec = opts.secure;
  const identity = (host: string) =>
    sec ? [`identity: { privateKeyFile: ${keys.get(host)!.file}${sec.rekeyInterval ? `, rekeyInterval: ${sec.rekeyInterval}` : ''} }`] : [];
  const encryptionOf = (t: HubSpokeTenant) => t.encryption ?? sec?.encryption;
  if (sec) {
    for (let i = 0; i < nHubs; i++) keys.set(`hub${i + 1}`, labKey(dir, `hub${i + 1}`));
    for (const s of spokes) keys.set(s, labKey(dir, s));
  }
  try {
    await lab.addHost('sw', { ipv6: false });
    await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
    let port = 0;
    const attach = async (host: string, addr: string) => {
      const p = `p${port++}`;
      await lab.link(host, 'ul0', `${addr}/24`, 'sw', p, null);
      await lab.exec('sw', 'ip', ['link', 'set', p, 'master', 'br0']);
    };
    for (let i = 0; i < nHubs; i++) {
      await lab.addHost(`hub${i + 1}`, { ipv6: false });
      await attach(`hub${i + 1}`, hubAddress(i));
    }
    for (const s of spokes) {
      await lab.addHost(s, { ipv6: false });
      if (!nat.has(s)) {
        await attach(s, spokeLocal(s));
        continue;
      }
      const n = natIndex(s);
      const gw = `nat${n}`;
      await lab.addHost(gw, { ipv6: false });
      await attach(gw, `10.0.0.${100 + n}`);
      await lab.link(s, 'ul0', `192.168.${n}.2/24`, gw, 'lan0', `192.168.${n}.1/24`);
      await lab.exec(s, 'ip', ['route', 'add', 'default', 'via', `192.168.${n}.1`]);
      await lab.exec(gw, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      const rules = [
        'add table ip nat',
        'add chain ip nat post { type nat hook postrouting priority 100 ; }',
        'add rule ip nat post oifname "ul0" meta l4proto udp masquerade to :40000-40999',
        'add rule ip nat post oifname "ul0" masquerade',
      ];
      for (const r of rules) await lab.exec(gw, 'nft', r.split(' '));
    }
    for (const t of tenants) for (const s of spokes) await lab.addHost(endpoint(t.name, s), { ipv6: false });
    for (const [name, addr] of Object.entries(opts.extraHosts ?? {})) {
      await lab.addHost(name, { ipv6: false });
      await attach(name, addr);
    }

    // Hubs: relays with no ports; a kernel spoke is a static spoke in the flood list.
    for (let i = 0; i < nHubs; i++) {
      const lines = [
        `underlay: { local: ${hubAddress(i)}, mtu: 1500 }`,
        `log: { level: ${opts.log ?? 'warn'} }`,
        'role: hub',
        ...dead,
        ...identity(`hub${i + 1}`),
        ...(sec
          ? [
              'spokes:',
              ...spokes.map(
                (s) => `  - { name: ${s}, publicKey: "${keys.get(s)!.publicKey}", vnis: [ ${(sec.spokeVnis?.[s] ?? tenants.map((t) => t.vni)).join(', ')} ] }`,
              ),
            ]
          : []),
        ...(opts.hubExtra ?? []),
        'tenants:',
      ];
      for (const t of tenants) {
        lines.push(
          `  - { name: ${t.name}, vni: ${t.vni}${opts.kernelSpoke && i === 0 ? ', flood: [ 10.0.0.9 ]' : ''}${t.mssClamp ? `, mssClamp: ${t.mssClamp}` : ''}${encryptionOf(t) ? `, encryption: ${encryptionOf(t)}` : ''} }`,
        );
      }
      yaml.set(`hub${i + 1}`, lines.join('\n') + '\n');
    }
    for (const s of spokes) {
      const hubs = Array.from(
        { length: nHubs },
        (_, i) => `{ address: ${hubAddress(i)}${sec ? `, publicKey: "${keys.get(`hub${i + 1}`)!.publicKey}"` : ''} }`,
      ).join(', ');
      const lines = [
        `underlay: { local: ${spokeLocal(s)}, mtu: 1500 }`,
        `log: { level: ${opts.log ?? 'warn'} }`,
        'role: spoke',
        `hubs: [ ${hubs} ]`,
        ...(nat.has(s) ? ['nat: true'] : []),
        ...dead,
        ...identity(s),
        ...(opts.spokeExtra ?? []),
        'tenants:',
      ];
      const i = spokeIndex(s);
      for (const t of tenants) {
        const mac = `02:00:00:${(t.vni & 0xff).toString(16).padStart(2, '0')}:00:${(i + 1).toString(16).padStart(2, '0')}`;
        lines.push(
          `  - name: ${t.name}`,
          `    vni: ${t.vni}`,
          ...(t.mssClamp ? [`    mssClamp: ${t.mssClamp}`] : []),
          ...(encryptionOf(t) ? [`    encryption: ${encryptionOf(t)}`] : []),
          `    ports: [ { tap: ${t.name}0, netns: ${lab.ns(endpoint(t.name, s))}, address: ${overlay(t.name, s)}/24, mac: "${mac}"${t.tapMtu ? `, mtu: ${t.tapMtu}` : ''} } ]`,
        );
      }
      yaml.set(s, lines.join('\n') + '\n');
    }
    for (let i = 0; i < nHubs; i++) await start(`hub${i + 1}`);
    for (const s of spokes) await start(s);
    // Ready when every spoke has chosen hub1 and hub1 has answered it (with keys: after the
    // handshake): until then a spoke's first frames may go to a hub that does not know the
    // other spokes yet, or the choice may still move (a first ping of a test lost under load).
    for (const s of spokes)
      await until(
        `spoke ${s}: hub1 alive and active`,
        () => request<{ overlay: { hubs: { alive: boolean; active: boolean }[] } }>(daemons.get(s)!.socket, 'status'),
        (st) => st.overlay.hubs[0]?.alive === true && st.overlay.hubs[0]?.active === true,
      );

    if (opts.kernelSpoke) {
      await lab.addHost('k', { ipv6: false });
      await attach('k', '10.0.0.9');
      for (const t of tenants) {
        const ep = endpoint(t.name, 'k');
        await lab.addHost(ep, { ipv6: false });
        const dev = `vx${t.vni}`;
        await lab.exec('k', 'ip', ['link', 'add', dev, 'type', 'vxlan', 'id', String(t.vni), 'local', '10.0.0.9', 'remote', hubAddress(0), 'dstport', '4789']);
        await lab.exec('k', 'ip', ['link', 'set', dev, 'mtu', '1450', 'netns', lab.ns(ep)]);
        await lab.exec(ep, 'ip', ['addr', 'add', `${overlay(t.name, 'k')}/24`, 'dev', dev]);
        await lab.exec(ep, 'ip', ['link', 'set', dev, 'up']);
      }
    }
    return { lab, dir, daemons, hubAddress, spokeLocal, overlay, endpoint, yaml, keys, start, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
