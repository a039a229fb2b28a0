/**
 * The userspace overlays a user would pick instead of vtepd, as lab peers for the latency
 * bench (bench/latency.ts): tinc 1.0 in switch mode and OpenVPN in TAP mode, each between the
 * two hosts of a lab (h1, h2 on one veth) with an endpoint namespace behind each side.
 *
 *   [ep1] tap ── daemon in h1 ══ UDP over the veth underlay ══ daemon in h2 ── tap [ep2]
 *
 * Each daemon opens its TAP in its host; the TAP is then moved into the endpoint namespace
 * (its fd stays the daemon's), given the address and an MTU of 1400 (room for each one's
 * overhead with crypto), as vtepd's TAP and the kernel's VXLAN device live in theirs. The
 * daemons are children of the lab (stopped by PID on cleanup); their config lives in `dir`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { type Lab, waitForLine } from './netns.js';
import { until } from './wait.js';

/** The TAP MTU of the tinc and OpenVPN endpoints. */
export const VPN_MTU = 1400;

export interface VpnPlan {
  /** A short name: the network, the TAP's name ("<name>0") and the config directory. */
  name: string;
  /** The two hosts and their underlay addresses. */
  hosts: [string, string];
  underlay: [string, string];
  /** The endpoint namespaces (created here) and their addresses ("10.21.0.1/24"). */
  endpoints: [string, string];
  addresses: [string, string];
  /** UDP (and for tinc TCP) port of both daemons. */
  port: number;
  /** false: no encryption and no authentication; true: the daemon's default crypto. */
  crypto: boolean;
  /** A directory of the caller's, for the configs and keys. */
  dir: string;
}

export interface VpnPeer {
  /** The daemons (h1's, h2's). */
  children: ChildProcess[];
  /** What the daemons say they encrypt with ("none", "AES-256-GCM", ...). */
  cipher: string;
}

/** Read a daemon's output as it comes (a full pipe would block it), keeping the tail for an error. */
function drained(child: ChildProcess): ChildProcess & { tail: () => string } {
  let tail = '';
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return Object.assign(child, { tail: () => tail });
}

/**
 * Wait until the daemon has made `dev` in `host` (or failed: its output in the error), then
 * move it into `endpoint` with `address`, MTU and link up.
 */
async function tapIntoEndpoint(lab: Lab, daemon: ReturnType<typeof drained>, host: string, dev: string, endpoint: string, address: string): Promise<void> {
  await until(`${dev} in ${host}`, async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) throw new Error(`the daemon exited: ${daemon.tail()}`);
    return (await lab.exec(host, 'ip', ['-o', 'link', 'show', 'dev', dev])).stdout;
  });
  await lab.exec(host, 'ip', ['link', 'set', dev, 'netns', lab.ns(endpoint)]);
  await lab.exec(endpoint, 'ip', ['addr', 'add', address, 'dev', dev]);
  await lab.exec(endpoint, 'ip', ['link', 'set', dev, 'mtu', String(VPN_MTU), 'up']);
}

/**
 * tinc 1.0 in switch mode on both hosts: `tincd -n NAME -c DIR -D`, a TAP, each host
 * connecting to the other. Without crypto, `Cipher = none` and `Digest = none` in both host
 * files; with it, tinc's defaults (tinc.conf(5): blowfish CBC, SHA1, a 4-byte MAC).
 */
export async function addTinc(lab: Lab, p: VpnPlan): Promise<VpnPeer> {
  const names = ['a', 'b'];
  for (const e of p.endpoints) await lab.addHost(e, { ipv6: false });
  const dirs = p.hosts.map((h) => join(p.dir, `${p.name}-${h}`));
  for (const [i, d] of dirs.entries()) {
    mkdirSync(join(d, 'hosts'), { recursive: true });
    const conf = [`Name = ${names[i]}`, 'Mode = switch', 'DeviceType = tap', `Interface = ${p.name}0`, `Port = ${p.port}`, `ConnectTo = ${names[1 - i]}`];
    writeFileSync(join(d, 'tinc.conf'), `${conf.join('\n')}\n`);
    const host = [`Address = ${p.underlay[i]}`, `Port = ${p.port}`, ...(p.crypto ? [] : ['Cipher = none', 'Digest = none'])];
    writeFileSync(join(d, 'hosts', names[i]!), `${host.join('\n')}\n`);
    // -K appends the public key to hosts/<name> (no prompt: stdin is not a terminal).
    await lab.exec(p.hosts[i]!, 'tincd', ['-n', p.name, '-c', d, '-K']);
  }
  // Each side knows the other's host file (address and public key).
  for (const [i, d] of dirs.entries()) writeFileSync(join(dirs[1 - i]!, 'hosts', names[i]!), readFileSync(join(d, 'hosts', names[i]!)));
  const children = dirs.map((d, i) => drained(lab.spawn(p.hosts[i]!, 'tincd', ['-n', p.name, '-c', d, '-D', `--pidfile=${join(d, 'pid')}`])));
  for (const [i, h] of p.hosts.entries()) await tapIntoEndpoint(lab, children[i]!, h, `${p.name}0`, p.endpoints[i]!, p.addresses[i]!);
  return { children, cipher: p.crypto ? 'blowfish-CBC + SHA1' : 'none' };
}

/**
 * A CA and one certificate signed by it (ECDSA P-256), with `openssl`: both OpenVPN peers
 * present the same one. Returns the files.
 */
async function pki(lab: Lab, host: string, dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string) => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await lab.exec(host, 'openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=vtepd-lab-ca']);
  await lab.exec(host, 'openssl', ['req', ...ec, '-keyout', f('peer.key'), '-out', f('peer.csr'), '-subj', '/CN=vtepd-lab-peer']);
  await lab.exec(host, 'openssl', [
    'x509',
    '-req',
    '-in',
    f('peer.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('peer.crt'),
    '-days',
    '2',
  ]);
  return { ca: f('ca.crt'), cert: f('peer.crt'), key: f('peer.key') };
}

/**
 * OpenVPN 2.6 in TAP mode, point to point over UDP, on both hosts. Without crypto, `--cipher
 * none --auth none` and no TLS (OpenVPN warns that 2.7 drops it); with it, its default:
 * TLS between the two (h1 --tls-server, h2 --tls-client, certificates from a lab CA), and the
 * data channel cipher they negotiate (AES-256-GCM), as its log says.
 */
export async function addOpenVpn(lab: Lab, p: VpnPlan): Promise<VpnPeer> {
  const pkiDir = join(p.dir, `${p.name}-pki`);
  mkdirSync(pkiDir, { recursive: true });
  const certs = p.crypto ? await pki(lab, p.hosts[0], pkiDir) : undefined;
  for (const e of p.endpoints) await lab.addHost(e, { ipv6: false });
  const children = p.hosts.map((h, i) => {
    const common = ['--dev', `${p.name}0`, '--dev-type', 'tap', '--proto', 'udp', '--local', p.underlay[i]!, '--remote', p.underlay[1 - i]!];
    const crypto = certs
      ? [i === 0 ? '--tls-server' : '--tls-client', '--dh', 'none', '--ca', certs.ca, '--cert', certs.cert, '--key', certs.key]
      : ['--cipher', 'none', '--auth', 'none'];
    return lab.spawn(h, 'openvpn', [...common, '--port', String(p.port), ...crypto, '--verb', '3']);
  });
  const lines = await Promise.all(children.map((c) => waitForLine(c, /Data Channel: cipher/, 30_000)));
  const daemons = children.map(drained);
  for (const [i, h] of p.hosts.entries()) await tapIntoEndpoint(lab, daemons[i]!, h, `${p.name}0`, p.endpoints[i]!, p.addresses[i]!);
  const cipher = /cipher '([^']+)'/.exec(lines[0]!)?.[1] ?? '?';
  return { children, cipher: cipher === '[null-cipher]' ? 'none' : cipher };
}
