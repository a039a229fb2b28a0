/**
 * FRR 8.4 (Debian's frr package) as a BGP EVPN VTEP inside one lab host, the interop peer
 * of the EVPN tests (#17): its own zebra and bgpd, started directly inside the host's
 * network namespace, with their configs, pidfiles, vty sockets, zserv socket and logs in a
 * temporary directory of their own (`-f`, `-i`, `--vty_socket`, `-z`, `--log file:`; `-P 0`:
 * no TCP vty). No systemd, nothing read or written under /etc/frr or /var/run/frr, so a
 * system FRR, if one runs, is never touched. The daemons run in the foreground (no `-d`):
 * the process `lab.spawn` tracks is the daemon itself (`ip netns exec` execs it), stopped
 * by PID. They drop to user and group frr (`-u frr -g frr`), so the directory is theirs.
 *
 * The kernel side (`addFrrVtep`), as FRR's EVPN documentation has it for a traditional
 * (not VLAN-aware) bridge, per VNI N:
 *
 *   [vm ns] eth0 (tenant IP, MTU 1450) --veth-- vmN --+
 *                                                     br N (no IP) -- vxN (vxlan id N local <underlay> dstport 4789 nolearning,
 *                                                                          bridge-port learning off)
 *
 * zebra reads the VNI from vxN, the local MACs from brN's FDB; bgpd advertises them as
 * type-2 routes (MAC only: the bridge has no IP) and the VNI as a type-3 route; routes from
 * other VTEPs come back as FDB entries on vxN with `extern_learn` (MACs) and `00:00:00:00:00:00`
 * flood entries (ingress replication). There is no static flood list anywhere.
 */
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab } from './netns.js';
import { READY_MS, until, untilText } from './wait.js';

const SBIN = '/usr/lib/frr';

/** A BGP neighbor: an address (iBGP, the VTEP's own ASN) or an address and its ASN (eBGP). */
export type FrrNeighbor = string | { address: string; asn: number };

export interface FrrVtepOptions {
  asn: number;
  routerId: string;
  /** The VTEP address (vxlan `local`, the type-3 route's next hop and tunnel id); already on an interface of the host. */
  underlayIp: string;
  neighbors: FrrNeighbor[];
  /** Neighbors that are route-reflector clients of this host (it is then the reflector). */
  rrClients?: string[];
  /** Extra lines for `address-family l2vpn evpn`, e.g. 'dup-addr-detection max-moves 10 time 60'. */
  evpnConfig?: string[];
  /** One bridge brN + vxlan vxN per VNI, with a "VM" namespace `vm.ns` (created here) on a veth vmN. */
  vnis: { vni: number; vm: { ns: string; ip: string; mac?: string } }[];
}

/** One EVPN route of `show bgp l2vpn evpn json`: one path of one prefix. */
export interface EvpnRoute {
  rd: string;
  prefix: string;
  /** 2 (MAC/IP advertisement), 3 (inclusive multicast Ethernet tag), … */
  type: number;
  mac?: string;
  ip?: string;
  nextHop?: string;
  /** Route targets, "ASN:VNI". */
  rts: string[];
  /** The extended communities as FRR prints them, e.g. "RT:65000:100 ET:8". */
  extCommunity: string;
  best: boolean;
  /** Where it came from: "internal"/"external" (a peer) or undefined (local). */
  from?: string;
  /** The peer it came from (an address), for received routes. */
  peer?: string;
}

/** One entry of `bridge -j fdb show`. */
export interface FdbEntry {
  mac: string;
  dst?: string;
  vlan?: number;
  flags: string[];
  state?: string;
  master?: string;
}

type Json = Record<string, unknown>;

/** Flatten `show bgp l2vpn evpn json` (RD -> prefix -> paths) into one row per path. */
export function routes(json: unknown): EvpnRoute[] {
  const out: EvpnRoute[] = [];
  for (const [rd, v] of Object.entries((json ?? {}) as Json)) {
    if (typeof v !== 'object' || v === null) continue;
    for (const [prefix, p] of Object.entries(v as Json)) {
      const paths = (p as { paths?: unknown[] })?.paths;
      if (!Array.isArray(paths)) continue;
      for (const path of paths.flat() as Json[]) out.push(routeOf(rd, prefix, path));
    }
  }
  return out;
}

function routeOf(rd: string, prefix: string, path: Json): EvpnRoute {
  const ext = String((path.extendedCommunity as { string?: string } | undefined)?.string ?? '');
  const hops = (path.nexthops as { ip?: string }[] | undefined) ?? [];
  const peer = path.peerId as string | undefined;
  return {
    rd,
    prefix,
    type: Number(path.routeType ?? /^\[(\d+)\]/.exec(prefix)?.[1] ?? 0),
    mac: path.mac as string | undefined,
    ip: path.ip as string | undefined,
    nextHop: hops[0]?.ip,
    rts: [...ext.matchAll(/RT:(\S+)/g)].map((m) => m[1]!),
    extCommunity: ext,
    best: path.bestpath === true,
    from: path.pathFrom as string | undefined,
    peer: peer && peer !== '(unspec)' ? peer : undefined,
  };
}

export class Frr {
  /** Temporary directory holding configs, sockets, pidfiles and logs. */
  readonly dir: string;
  private readonly daemons = new Map<'zebra' | 'bgpd', ChildProcess>();
  private readonly output = new Map<string, string>();

  private constructor(
    private readonly lab: Lab,
    readonly host: string,
  ) {
    // Short path: vty sockets must fit sun_path (108 bytes). The daemons run as frr.
    this.dir = mkdtempSync(join(tmpdir(), 'vtfrr-'));
    const [uid, gid] = ['-u', '-g'].map((f) => Number(execFileSync('id', [f, 'frr']).toString().trim()));
    chownSync(this.dir, uid!, gid!);
  }

  /** Write `bgpd.conf` (`bgpdConf`) and a minimal zebra.conf, start zebra then bgpd; resolves once bgpd answers on its vty. */
  static async start(lab: Lab, host: string, conf: string): Promise<Frr> {
    const f = new Frr(lab, host);
    try {
      writeFileSync(join(f.dir, 'zebra.conf'), `hostname ${host}\n`);
      writeFileSync(join(f.dir, 'bgpd.conf'), conf);
      await f.startDaemon('zebra');
      await f.startDaemon('bgpd');
      await until(
        `bgpd in ${host} to answer on its vty`,
        () => f.vtysh('show bgp summary json'),
        (s) => s.startsWith('{'),
      );
      return f;
    } catch (e) {
      const tail = await f.logTail();
      await f.stop();
      throw new Error(`${e instanceof Error ? e.message : e}\n${tail}`);
    }
  }

  private async startDaemon(name: 'zebra' | 'bgpd'): Promise<void> {
    const d = this.dir;
    // -F datacenter: FRR's data-centre defaults (3 s keepalive, 10 s connect retry, no eBGP policy needed).
    const args = ['-u', 'frr', '-g', 'frr', '-F', 'datacenter', '--vty_socket', d, '-P', '0'];
    args.push('-f', join(d, `${name}.conf`), '-i', join(d, `${name}.pid`), '--log', `file:${join(d, `${name}.log`)}`, '-z', join(d, 'zserv.api'));
    const child = this.lab.spawn(this.host, join(SBIN, name), args);
    this.daemons.set(name, child);
    this.output.set(name, '');
    const keep = (b: Buffer) => this.output.set(name, (this.output.get(name)! + b.toString()).slice(-4000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    await until(`${name} in ${this.host} to open its vty socket`, async () => exited() || existsSync(join(d, `${name}.vty`)), Boolean, READY_MS, 50);
    if (exited()) throw new Error(`${name} in ${this.host} exited (${child.exitCode ?? child.signalCode}): ${this.output.get(name)}`);
  }

  /** `vtysh -c COMMAND` against this instance's daemons; stdout. */
  async vtysh(command: string): Promise<string> {
    return (await this.lab.exec(this.host, 'vtysh', ['--vty_socket', this.dir, '-c', command])).stdout;
  }

  /**
   * Change the running config: `vtysh -c 'configure terminal' -c LINE …`, e.g.
   * `configure('router bgp 65000', 'neighbor 10.0.0.3 remote-as 65000', 'address-family l2vpn evpn', 'neighbor 10.0.0.3 activate')`.
   */
  async configure(...lines: string[]): Promise<void> {
    // vtysh exits non-zero on a line it rejects.
    await this.lab.exec(this.host, 'vtysh', ['--vty_socket', this.dir, '-c', 'configure terminal', ...lines.flatMap((l) => ['-c', l])]);
  }

  /** `vtysh -c COMMAND` parsed as JSON. */
  async json<T = unknown>(command: string): Promise<T> {
    return JSON.parse(await this.vtysh(command)) as T;
  }

  /** The EVPN routes in bgpd's table (`show bgp l2vpn evpn json`), one row per path. */
  async routes(): Promise<EvpnRoute[]> {
    return routes(await this.json('show bgp l2vpn evpn json'));
  }

  /** `show evpn mac vni N json`: MAC -> zebra's entry ({type: 'local'|'remote', remoteVtep, intf, localSequence, remoteSequence, …}). */
  async evpnMacs(vni: number): Promise<Record<string, Json>> {
    const j = await this.json<{ macs?: Record<string, Json> }>(`show evpn mac vni ${vni} json`);
    return j.macs ?? {};
  }

  /** The state of the BGP session with `neighbor` in the l2vpn evpn address family ("Established", "Active", …, or "" if unknown). */
  async sessionState(neighbor: string): Promise<string> {
    const s = await this.json<{ l2VpnEvpn?: { peers?: Record<string, { state?: string }> } }>('show bgp summary json');
    return s.l2VpnEvpn?.peers?.[neighbor]?.state ?? '';
  }

  /** Wait until the session with each neighbor is Established. */
  async untilEstablished(...neighbors: string[]): Promise<void> {
    for (const n of neighbors)
      await until(
        `${this.host}'s BGP session with ${n} to be Established`,
        () => this.sessionState(n),
        (s) => s === 'Established',
      );
  }

  /** The tail of bgpd's and zebra's logs (and what they printed), for a failing test's message. */
  async logTail(lines = 30): Promise<string> {
    const parts: string[] = [];
    for (const name of ['bgpd', 'zebra']) {
      let log = '';
      try {
        log = (await this.lab.exec(this.host, 'tail', ['-n', String(lines), join(this.dir, `${name}.log`)])).stdout;
      } catch {
        /* no log yet */
      }
      parts.push(`--- ${this.host} ${name}.log\n${log}${this.output.get(name) ?? ''}`);
    }
    return parts.join('\n');
  }

  /** Stop bgpd, then zebra, by PID, and remove the directory. Idempotent. */
  async stop(): Promise<void> {
    for (const name of ['bgpd', 'zebra'] as const) {
      const c = this.daemons.get(name);
      if (!c) continue;
      try {
        await this.lab.stop(c);
      } catch {
        /* already gone */
      }
      this.daemons.delete(name);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** bgpd.conf for an EVPN VTEP: iBGP/eBGP neighbors, l2vpn evpn activated on each, advertise-all-vni. */
export function bgpdConf(host: string, o: Pick<FrrVtepOptions, 'asn' | 'routerId' | 'neighbors' | 'rrClients' | 'evpnConfig'>): string {
  const ns = o.neighbors.map((n) => (typeof n === 'string' ? { address: n, asn: o.asn } : n));
  const lines = [`hostname ${host}`, '!', `router bgp ${o.asn}`, ` bgp router-id ${o.routerId}`, ' no bgp default ipv4-unicast'];
  // timers connect 1: retry a refused connection (the peer's bgpd not up yet) after 1 s, not 10.
  for (const n of ns) lines.push(` neighbor ${n.address} remote-as ${n.asn}`, ` neighbor ${n.address} timers connect 1`);
  lines.push(' !', ' address-family l2vpn evpn');
  for (const n of ns) {
    lines.push(`  neighbor ${n.address} activate`);
    if (o.rrClients?.includes(n.address)) lines.push(`  neighbor ${n.address} route-reflector-client`);
  }
  lines.push('  advertise-all-vni', ...(o.evpnConfig ?? []).map((l) => `  ${l}`), ' exit-address-family', 'exit', '');
  return lines.join('\n');
}

/** An FRR VTEP in a lab host, with its VMs. */
export interface FrrVtep {
  frr: Frr;
  host: string;
  opts: FrrVtepOptions;
  /** `show evpn mac vni N json`'s MACs. */
  evpnMacs(vni: number): Promise<Record<string, Json>>;
  /** `bridge -j fdb show dev DEV` (e.g. "vx100"). */
  bridgeFdb(dev: string): Promise<FdbEntry[]>;
  /** Wait until `dev`'s FDB has `mac` (lower case) from a remote route (extern_learn; static when sticky), pointing at `dst` when given; returns the entry. */
  untilExternMac(dev: string, mac: string, dst?: string): Promise<FdbEntry>;
  /** Wait until `dev`'s FDB floods to `dst` (a 00:00:00:00:00:00 entry from a type-3 route). */
  untilFlood(dev: string, dst: string): Promise<FdbEntry>;
  stop(): Promise<void>;
}

/** The bridge, VXLAN device and VM veth of one VNI in an FRR host (names brN, vxN, vmN). */
async function addVni(lab: Lab, host: string, underlayIp: string, vni: number, vm: { ns: string; ip: string; mac?: string }): Promise<void> {
  const [br, vx, veth] = [`br${vni}`, `vx${vni}`, `vm${vni}`];
  await lab.exec(host, 'ip', ['link', 'add', br, 'type', 'bridge']);
  await lab.exec(host, 'ip', ['link', 'add', vx, 'type', 'vxlan', 'id', String(vni), 'local', underlayIp, 'dstport', '4789', 'nolearning']);
  // No IPv6 link-local on either: nothing of the host's own goes over the overlay.
  for (const d of [br, vx]) await lab.exec(host, 'ip', ['link', 'set', d, 'addrgenmode', 'none']);
  await lab.exec(host, 'ip', ['link', 'set', vx, 'master', br]);
  await lab.exec(host, 'bridge', ['link', 'set', 'dev', vx, 'learning', 'off']);
  await lab.addHost(vm.ns, { ipv6: false });
  await lab.link(host, veth, null, vm.ns, 'eth0', vm.ip, 1450);
  if (vm.mac) {
    await lab.exec(vm.ns, 'ip', ['link', 'set', 'eth0', 'down']);
    await lab.exec(vm.ns, 'ip', ['link', 'set', 'eth0', 'address', vm.mac, 'up']);
  }
  await lab.exec(host, 'ip', ['link', 'set', veth, 'master', br]);
  for (const d of [vx, br]) await lab.exec(host, 'ip', ['link', 'set', d, 'up']);
}

/** The underlay of an EVPN lab: a switch host `sw` (bridge br0) and each host's ul0 (its address /24) on a port `p<host>` of it. */
export async function underlaySwitch(lab: Lab, hosts: [host: string, ip: string][]): Promise<void> {
  await lab.addHost('sw');
  await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
  for (const [h, ip] of hosts) {
    await lab.addHost(h);
    await lab.link(h, 'ul0', `${ip}/24`, 'sw', `p${h}`, null);
    await lab.exec('sw', 'ip', ['link', 'set', `p${h}`, 'master', 'br0']);
  }
}

/** `bridge -j fdb show dev DEV` in a host. */
export async function bridgeFdb(lab: Lab, host: string, dev: string): Promise<FdbEntry[]> {
  const out = (await lab.exec(host, 'bridge', ['-j', 'fdb', 'show', 'dev', dev])).stdout.trim();
  return out ? (JSON.parse(out) as FdbEntry[]).map((e) => ({ ...e, flags: e.flags ?? [] })) : [];
}

/**
 * Make `host` (a lab host whose underlay already holds `underlayIp`) an FRR EVPN VTEP: the
 * kernel devices and a VM namespace per VNI, then zebra and bgpd. `stop()` stops FRR (the
 * lab's cleanup removes the namespaces).
 */
export async function addFrrVtep(lab: Lab, host: string, opts: FrrVtepOptions): Promise<FrrVtep> {
  for (const { vni, vm } of opts.vnis) await addVni(lab, host, opts.underlayIp, vni, vm);
  const frr = await Frr.start(lab, host, bgpdConf(host, opts));
  const fdb = (dev: string) => bridgeFdb(lab, host, dev);
  const untilEntry = (what: string, dev: string, ok: (e: FdbEntry) => boolean) =>
    until(
      `${what} in ${host}'s FDB of ${dev}`,
      async () => (await fdb(dev)).find(ok),
      (e) => e !== undefined,
    ).then((e) => e!);
  return {
    frr,
    host,
    opts,
    evpnMacs: (vni) => frr.evpnMacs(vni),
    bridgeFdb: fdb,
    untilExternMac: (dev, mac, dst) =>
      untilEntry(
        `${mac} (extern_learn or static${dst ? `, dst ${dst}` : ''})`,
        dev,
        // zebra installs a remote MAC extern_learn, or static (NUD_NOARP) when its route is sticky (RFC 7432 §15.2).
        (e) => e.mac === mac && (e.flags.includes('extern_learn') || e.state === 'static') && (!dst || e.dst === dst),
      ),
    untilFlood: (dev, dst) => untilEntry(`a flood entry to ${dst}`, dev, (e) => e.mac === '00:00:00:00:00:00' && e.dst === dst),
    stop: () => frr.stop(),
  };
}

/** `bridge -timestamp monitor fdb` in a host, to time FDB changes. */
export interface FdbMonitor {
  child: ChildProcess;
  /** What it printed so far. */
  text(): string;
  /** The time (ms since the epoch) of the first event line matching `re`. */
  at(re: RegExp): number | undefined;
}

/**
 * Start `bridge -timestamp monitor fdb` in `host`; resolves once it is live (it printed an
 * entry added after it started, on a bridge of its own that FRR does not serve). Stop it
 * with `lab.stop(m.child)`.
 */
export async function fdbMonitor(lab: Lab, host: string): Promise<FdbMonitor> {
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
  await lab.exec(host, 'ip', ['link', 'add', 'brmon', 'type', 'bridge']);
  await lab.exec(host, 'bridge', ['fdb', 'add', '02:00:00:00:00:99', 'dev', 'brmon', 'self', 'permanent']);
  await untilText(`the FDB monitor in ${host}`, () => out, /02:00:00:00:00:99/);
  await lab.exec(host, 'ip', ['link', 'del', 'brmon']);
  return { child, text: () => out, at };
}
