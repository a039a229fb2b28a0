/**
 * Errors of the host said in the config's words: what the addon or Node reports (tapOpen:
 * TUNSETIFF ... Invalid argument, bind ... Address already in use, listen EADDRINUSE) becomes
 * the config path it is about and what to do, e.g.
 * `tenants[0].ports[0].netns: namespace vmA does not exist (create it with ip netns add vmA,
 * or drop netns)`. `vtepd run` throws these; `vtepd check` warns of the same (hostWarnings),
 * where it can see them, in the same words.
 */
import { type Config, type MetricsConfig, type PortConfig, portKind } from '../config/config.js';
import { switchPortAddresses, underlayHeld } from '../ports/attach.js';
import { addressesOf } from '../util/iproute.js';
import { answers } from './control.js';
import { linkOf, netnsExists, probeTcp, probeUdp, socketHolder, tapHolder, vxlanDevicesOn, type BindProbe } from './host.js';

/** The sentences, one per case, shared by run's errors and check's warnings. */
export const say = {
  noNetns: (ns: string) => `namespace ${ns} does not exist (create it with ip netns add ${ns}, or drop netns)`,
  /** `kind` as linkOf names it; "device": hardware or loopback, which is not to be deleted. */
  notTap: (tap: string, kind: string, netns: string | null) =>
    kind === 'device'
      ? `${tap} is already a network device, not a TAP (pick another tap name)`
      : `${tap} is already a ${kind} device, not a TAP (pick another tap name, or delete it with ip ${netns ? `-n ${netns} ` : ''}link del ${tap})`,
  tapBusy: (tap: string, holder: string | undefined) => `TAP ${tap} is in use by ${holder ?? 'another process'} (stop it, or pick another tap name)`,
  udpInUse: (address: string, port: number, holder: string | undefined, vxlan: string[]) =>
    holder || !vxlan[0]
      ? `UDP port ${port} on ${address} is in use by ${holder ?? 'another process or a kernel VXLAN device'} (stop it, or pick another underlay.port)`
      : `UDP port ${port} is in use by the kernel VXLAN device ${vxlan[0]} (delete it with ip link del ${vxlan[0]}, or pick another underlay.port)`,
  notLocal: (address: string, key: string) =>
    `${address} is not an address of this host (add it with ip addr add, or set ${key} to one of this host's addresses)`,
  tcpInUse: (listen: string, holder: string | undefined) => `${listen} is in use by ${holder ?? 'another process'} (stop it, or pick another port)`,
  noInterface: (name: string, netns: string | null, trunk = false) =>
    trunk
      ? `interface ${name} does not exist${netns ? ` in namespace ${netns}` : ''} (a trunk attaches an interface that exists: check the name with ip ${netns ? `-n ${netns} ` : ''}link, or create it first)`
      : `interface ${name} does not exist${netns ? ` in namespace ${netns}` : ''} yet: vtepd attaches it when it appears, as a VM's TAP does when the VM starts (if it should exist now, check the name with ip ${netns ? `-n ${netns} ` : ''}link; write tap: ${name} to have vtepd create a TAP)`,
  hostAddresses: (name: string, v4: string[]) =>
    `${name} has the IPv4 address${v4.length > 1 ? 'es' : ''} ${v4.join(', ')}: vtepd removes ${v4.length > 1 ? 'them' : 'it'} and turns IPv6 off on it when it attaches it (a switch port carries no host address)`,
  notEthernet: (name: string) => `${name} is not an Ethernet interface (attach takes a NIC, a bond or a veth: it switches Ethernet frames)`,
  daemonAnswers: (socket: string) => `another vtepd answers on ${socket} (stop it, start with --takeover to replace it, or set another control.socket)`,
};

type Coded = Error & { code?: string };
const coded = (message: string, e: Coded): Coded => Object.assign(new Error(message), { code: e.code });

/**
 * A port's TAP that could not be made. `field` names the port, or a field of it, as the user
 * wrote it (`tenants[0].ports[1].tap`; for a port attached at runtime `tap of port blue9`).
 */
export function explainPortError(e: Coded, field: (key?: string) => string, p: PortConfig, trunk = false): Coded {
  if (p.netns && e.code === 'ENOENT' && e.message.includes(`/run/netns/${p.netns}`)) return coded(`${field('netns')}: ${say.noNetns(p.netns)}`, e);
  if (portKind(p) === 'attach') {
    if (e.code === 'ENODEV') return coded(`${field('attach')}: ${say.noInterface(p.tap, p.netns, trunk)}`, e);
    if (e.code === 'EPROTOTYPE') return coded(`${field('attach')}: ${say.notEthernet(p.tap)}`, e);
    return coded(`${field('attach')}: ${e.message}`, e);
  }
  if (e.message.includes('TUNSETIFF') && e.code === 'EINVAL') {
    const link = linkOf(p.tap, p.netns);
    if (link && link.kind !== 'tap') return coded(`${field('tap')}: ${say.notTap(p.tap, link.kind, p.netns)}`, e);
  }
  if (e.message.includes('TUNSETIFF') && e.code === 'EBUSY') return coded(`${field('tap')}: ${say.tapBusy(p.tap, tapHolder(p.tap))}`, e);
  return coded(`${field()}: ${e.message}`, e);
}

/** The key of underlay.local that holds `address` (underlay.local[1] for the second of two). */
function localKey(config: Pick<Config, 'underlay'>, address: string): string {
  const i = config.underlay.locals.findIndex((l) => l.address === address);
  return config.underlay.locals.length > 1 && i >= 0 ? `underlay.local[${i}]` : 'underlay.local';
}

/** The data path's underlay sockets could not be bound ("bind on 10.0.0.1:4789: ..."). */
export function explainUnderlayError(e: Coded, config: Pick<Config, 'underlay'>): Coded {
  const at = /bind on (\S+):(\d+)/.exec(e.message);
  const address = at?.[1]?.replace(/^\[|\]$/g, '') ?? config.underlay.local;
  const port = Number(at?.[2] ?? config.underlay.port);
  if (e.code === 'EADDRINUSE') return coded(`underlay.port: ${say.udpInUse(address, port, socketHolder('udp', port), vxlanDevicesOn(port))}`, e);
  if (e.code === 'EADDRNOTAVAIL') return coded(`${localKey(config, address)}: ${say.notLocal(address, 'underlay.local')}`, e);
  return coded(`underlay: ${e.message}`, e);
}

/** metrics.listen could not listen. */
export function explainMetricsError(e: Coded, m: MetricsConfig): Coded {
  if (e.code === 'EADDRINUSE') return coded(`metrics.listen: ${say.tcpInUse(m.listen, socketHolder('tcp', m.port))}`, e);
  if (e.code === 'EADDRNOTAVAIL') return coded(`metrics.listen: ${say.notLocal(m.host, 'metrics.listen')}`, e);
  return coded(`metrics.listen: ${e.message}`, e);
}

/** control.socket could not listen (a directory it may not write, a read-only file system). */
export function explainControlError(e: Coded, socket: string): Coded {
  if (e.message.startsWith('another vtepd answers')) return coded(`control.socket: ${say.daemonAnswers(socket)}`, e);
  if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS')
    return coded(`control.socket: cannot listen on ${socket} (${e.code}): run as root, or set control.socket to a path you may write`, e);
  return coded(`control.socket: ${e.message}`, e);
}

// ---- vtepd check: the same, seen before the start ---------------------------------------------

export interface HostWarning {
  path: (string | number)[];
  message: string;
}

/**
 * An attached interface (a trunk's: `trunk`) as `check` sees it: missing (a port's waited for,
 * a trunk's refused), holding an underlay address (refused), or addresses vtepd removes.
 */
function attachWarnings(name: string, netns: string | null, config: Config, path: (string | number)[], trunk = false): HostWarning[] {
  const held = addressesOf(name, netns);
  if (held === null) return [{ path, message: say.noInterface(name, netns, trunk) }];
  const { underlay: u, v4 } = switchPortAddresses(
    held ?? [],
    config.underlay.locals.map((l) => l.address),
  );
  if (u) return [{ path, message: underlayHeld(name, u) }];
  return v4.length ? [{ path, message: say.hostAddresses(name, v4) }] : [];
}

/**
 * What `run` would trip over on this host, where check can see it: a missing namespace, a
 * TAP name taken by another kind of device or a TAP another process holds, a missing trunk or
 * attached interface, the addresses an attached interface would lose, an underlay or
 * metrics address that is not this host's, a port already bound. With a vtepd answering on
 * control.socket (a check before a reload), what it holds is its own: not reported.
 */
export async function hostWarnings(config: Config): Promise<HostWarning[]> {
  const out: HostWarning[] = [];
  const running = await answers(config.control.socket).catch(() => false);
  if (running) out.push({ path: ['control', 'socket'], message: `a vtepd answers on ${config.control.socket}: the TAPs and ports it holds are not checked` });
  config.tenants.forEach((t, i) =>
    t.ports.forEach((p, j) => {
      const at = (key: string) => ['tenants', i, 'ports', j, key];
      if (p.netns && !netnsExists(p.netns)) return out.push({ path: at('netns'), message: say.noNetns(p.netns) });
      if (portKind(p) === 'attach') return out.push(...attachWarnings(p.tap, p.netns, config, at('attach')));
      const link = linkOf(p.tap, p.netns);
      if (link && link.kind !== 'tap') out.push({ path: at('tap'), message: say.notTap(p.tap, link.kind, p.netns) });
      else if (link && !running) {
        const holder = tapHolder(p.tap);
        if (holder || !link.persist) out.push({ path: at('tap'), message: say.tapBusy(p.tap, holder) });
      }
    }),
  );
  (config.trunks ?? []).forEach((t, i) => {
    if (t.netns && !netnsExists(t.netns)) return out.push({ path: ['trunks', i, 'netns'], message: say.noNetns(t.netns) });
    out.push(...attachWarnings(t.attach, t.netns, config, ['trunks', i, 'attach'], true));
  });
  const u = config.underlay;
  for (const [i, l] of u.locals.entries()) {
    const probe = await bindProbe(probeUdp, l.address, u.port);
    const key: (string | number)[] = u.locals.length > 1 ? ['underlay', 'local', i] : ['underlay', 'local'];
    if (probe === 'EADDRNOTAVAIL') out.push({ path: key, message: say.notLocal(l.address, 'underlay.local') });
    if (probe === 'EADDRINUSE' && !running)
      out.push({ path: ['underlay', 'port'], message: say.udpInUse(l.address, u.port, socketHolder('udp', u.port), vxlanDevicesOn(u.port)) });
  }
  const m = config.metrics;
  if (m) {
    const probe = await bindProbe(probeTcp, m.host, m.port);
    if (probe === 'EADDRNOTAVAIL') out.push({ path: ['metrics', 'listen'], message: say.notLocal(m.host, 'metrics.listen') });
    if (probe === 'EADDRINUSE' && !running) out.push({ path: ['metrics', 'listen'], message: say.tcpInUse(m.listen, socketHolder('tcp', m.port)) });
  }
  return out;
}

/** Bind there; a port this user may not bind (below 1024 without root) is tried as port 0, for the address alone. */
async function bindProbe(probe: (a: string, p: number) => Promise<BindProbe>, address: string, port: number): Promise<BindProbe> {
  const r = await probe(address, port);
  return r === 'EACCES' ? probe(address, 0) : r;
}
