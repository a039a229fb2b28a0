/**
 * Helpers for the operations tests: run the `vtepd` CLI against a daemon in a lab, scrape
 * its metrics from inside the daemon's namespace, pin neighbour entries so a ping count
 * is exact (no ARP), and build two-host labs with the config each test needs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { Lab } from '../../lab/netns.js';
import { CLI, meshConfig, startDaemon, type Daemonised, type TenantPlan } from '../../lab/topology.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `vtepd ARGS` inside a lab host (the client needs no namespace, but capture files and sockets are shared). */
export function vtepd(lab: Lab, host: string, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', lab.ns(host), process.execPath, CLI, ...args], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `vtepd ARGS --json`, parsed; throws with stderr if it failed. */
export async function vtepdJson<T>(lab: Lab, host: string, args: string[]): Promise<T> {
  const r = await vtepd(lab, host, [...args, '--json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** GET /metrics from inside the daemon's namespace (a node one-liner: no curl needed). */
export async function scrape(lab: Lab, host: string, listen: string): Promise<string> {
  const js = `fetch('http://${listen}/metrics').then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); })`;
  return (await lab.exec(host, process.execPath, ['-e', js])).stdout;
}

/** One sample's value by metric name and labels ("" for none); NaN if absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^(\S+?)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[4]);
  }
  return NaN;
}

export interface Pair {
  lab: Lab;
  dir: string;
  daemons: Daemonised[];
  yaml: (host: number, tenants: TenantPlan[], extra?: string) => string;
  cleanup(): Promise<void>;
}

export const MAC_1 = '02:00:00:00:aa:01';
export const MAC_2 = '02:00:00:00:aa:02';

/**
 * Two hosts (10.0.0.1, 10.0.0.2 over a veth) running vtepd with `tenants`, one endpoint
 * namespace per tenant per host; `extra(host)` is prepended to a host's YAML.
 */
export async function pair(
  tag: string,
  tenants: TenantPlan[],
  extra: (host: number) => string = () => '',
  underlay: { queues?: number; sourcePorts?: number } = {},
): Promise<Pair> {
  const lab = new Lab(tag);
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-ops-'));
  const hosts = ['10.0.0.1', '10.0.0.2'];
  const cleanup = async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  const yaml = (host: number, ts: TenantPlan[], more = '') =>
    `control: { socket: ${join(dir, `h${host + 1}.sock`)} }\n${more}${meshConfig(lab, host, hosts, ts, underlay)}`;
  try {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    for (const t of tenants) for (const i of [1, 2]) await lab.addHost(`${t.name}${i}`, { ipv6: false });
    const daemons: Daemonised[] = [];
    for (const i of [0, 1]) daemons.push(await startDaemon(lab, `h${i + 1}`, yaml(i, tenants, extra(i)), dir));
    return { lab, dir, daemons, yaml, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Rewrite a host's config file (for a reload). */
export function rewrite(p: Pair, host: number, yaml: string): void {
  writeFileSync(p.daemons[host]!.configPath, yaml);
}

/**
 * Permanent neighbour entries between two endpoints (10.1.0.1 <-> 10.1.0.2), so pings are
 * the only frames: no ARP, and counters move by exactly the number of pings.
 */
export async function pinNeighbours(lab: Lab, tenant: string, tap: string, macs = [MAC_1, MAC_2]): Promise<void> {
  await lab.exec(`${tenant}1`, 'ip', ['neigh', 'replace', '10.1.0.2', 'lladdr', macs[1]!, 'dev', tap, 'nud', 'permanent']);
  await lab.exec(`${tenant}2`, 'ip', ['neigh', 'replace', '10.1.0.1', 'lladdr', macs[0]!, 'dev', tap, 'nud', 'permanent']);
}

/** SIGTERM daemons this test started outside the lab (a restart's successors), by PID, and wait up to 5 s for each to go. */
export async function stopPids(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  for (const pid of pids) {
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A frame with a chosen source MAC out of `iface` (AF_PACKET): what a VM that moved says first. */
const SEND = `
import socket, sys
iface, src = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
s.send(b'\\xff' * 6 + src + b'\\x88\\xb5' + b'vtepd move test'.ljust(46, b'\\0'))
`;

/** One broadcast frame from `mac` out of `iface` in lab host `host` (a VM that moved, or a duplicate). */
export async function sendFrom(lab: Lab, host: string, iface: string, mac: string): Promise<void> {
  await lab.exec(host, 'python3', ['-c', SEND, iface, mac]);
}
