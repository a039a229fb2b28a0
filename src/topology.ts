/**
 * Built-in topologies of network namespaces, shared by `vtepd demo`, the integration
 * tests and the benchmarks.
 *
 *   two hosts:   [h1] --veth ul0 (10.0.0.1/24 <-> 10.0.0.2/24)-- [h2]
 *                (or, with an IPv6 underlay, 2001:db8::1/64 <-> 2001:db8::2/64)
 *   endpoints:   an endpoint namespace per tenant per host (a "VM"), holding the
 *                tenant's TAP (vtepd) or the kernel's VXLAN device (reference).
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Lab, waitForLine } from './netns.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled CLI (dist/src/cli.js), whether we run from dist/ or from src/ under vitest. */
export const CLI = here.endsWith(join('dist', 'src')) ? join(here, 'cli.js') : join(here, '..', 'dist', 'src', 'cli.js');

export const UNDERLAY = { h1: '10.0.0.1', h2: '10.0.0.2', h3: '10.0.0.3', prefix: 24 };
/** The IPv6 underlay of the same hosts (documentation prefix, RFC 3849). */
export const UNDERLAY6 = { h1: '2001:db8::1', h2: '2001:db8::2', h3: '2001:db8::3', prefix: 64 };
export type UnderlayFamily = 4 | 6;

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
}

/** A YAML config for one host of a mesh: every other host is in the flood list. */
export function meshConfig(lab: Lab, host: number, hosts: string[], tenants: TenantPlan[], extra: { port?: number; log?: string } = {}): string {
  const local = hosts[host];
  // Addresses are quoted: an IPv6 address is not a safe plain scalar in a YAML flow mapping.
  const q = (a: string) => JSON.stringify(a);
  const lines = [
    `underlay: { local: ${q(local)}, port: ${extra.port ?? 4789}, mtu: 1500 }`,
    `log: { level: ${extra.log ?? 'warn'} }`,
    'tenants:',
  ];
  for (const t of tenants) {
    lines.push(`  - name: ${t.name}`, `    vni: ${t.vni}`, '    ports:');
    const mac = t.macs?.[host] ? `, mac: "${t.macs[host]}"` : '';
    lines.push(`      - { tap: ${t.name}0, netns: ${lab.ns(`${t.name}${host + 1}`)}, address: ${t.addresses[host]}${mac} }`);
    lines.push(`    flood: [ ${hosts.filter((_, i) => i !== host).map(q).join(', ')} ]`);
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

/**
 * Start `vtepd run` inside a lab host and wait until it says it is running. Unless the
 * YAML says otherwise, its control socket is `<dir>/<host>.sock`, so daemons of different
 * labs (and a real vtepd on /run/vtepd/vtepd.sock) never meet.
 */
export async function startDaemon(lab: Lab, host: string, yaml: string, dir: string): Promise<Daemonised> {
  const configPath = join(dir, `${host}.yaml`);
  const named = /^control:\s*\{\s*socket:\s*(\S+?)\s*\}/m.exec(yaml);
  const socket = named ? named[1]! : join(dir, `${host}.sock`);
  writeFileSync(configPath, named ? yaml : `control: { socket: ${socket} }\n${yaml}`);
  const child = lab.spawn(host, process.execPath, [CLI, 'run', '--config', configPath]);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-20000); });
  await waitForLine(child, /^vtepd: running/);
  return { child, configPath, socket, stderr: () => err };
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

/**
 * `n` hosts running vtepd in a full mesh (each floods to all others), one endpoint
 * namespace per tenant per host. Two hosts share a veth; three or more hang off a Linux
 * bridge in an underlay-switch namespace "sw".
 */
export async function meshVtepd(n: number, tenants: TenantPlan[], opts: { log?: string; tag?: string; family?: UnderlayFamily } = {}): Promise<Mesh> {
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
    for (let i = 0; i < n; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, meshConfig(lab, i, hosts, tenants, { log: opts.log }), dir));
    return { lab, dir, hosts, daemons, endpoint: (name, host) => lab.ns(`${name}${host}`), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Two hosts over one veth, vtepd on both. */
export function twoHostsVtepd(tenants: TenantPlan[], opts: { log?: string; tag?: string; family?: UnderlayFamily } = {}): Promise<Mesh> {
  return meshVtepd(2, tenants, opts);
}

/**
 * The reference: the kernel's VXLAN device on the same two hosts and veth, one endpoint
 * namespace per host ("k1", "k2") holding a VXLAN device whose underlay socket stays in
 * the host (the device is moved into the endpoint after creation).
 */
export async function addKernelVxlan(lab: Lab, opts: { vni: number; port: number; addresses: [string, string]; mtu?: number; family?: UnderlayFamily }): Promise<void> {
  const u = opts.family === 6 ? UNDERLAY6 : UNDERLAY;
  const locals = [u.h1, u.h2];
  for (const i of [0, 1]) {
    const host = `h${i + 1}`;
    const ep = `k${i + 1}`;
    await lab.addHost(ep, { ipv6: false });
    const dev = 'vxk';
    await lab.exec(host, 'ip', ['link', 'add', dev, 'type', 'vxlan', 'id', String(opts.vni), 'local', locals[i],
      'remote', locals[1 - i], 'dstport', String(opts.port), 'nolearning']);
    await lab.exec(host, 'ip', ['link', 'set', dev, 'mtu', String(opts.mtu ?? 1450), 'netns', lab.ns(ep)]);
    await lab.exec(ep, 'ip', ['addr', 'add', opts.addresses[i], 'dev', dev]);
    await lab.exec(ep, 'ip', ['link', 'set', dev, 'up']);
  }
}
