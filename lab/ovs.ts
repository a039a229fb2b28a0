/**
 * A private Open vSwitch inside one lab host, as an interop peer for the tests and the
 * benchmarks: its own ovsdb-server and ovs-vswitchd, started inside the host's network
 * namespace, with their database, run directory, logs and sockets in a temporary
 * directory of their own (OVS_RUNDIR / OVS_DBDIR / OVS_LOGDIR / OVS_SYSCONFDIR all point
 * there, and every socket and pidfile is named explicitly). They are children of the
 * lab and stopped by PID. A system Open vSwitch, if one runs, is never touched: nothing
 * here uses the default /var/run/openvswitch paths.
 *
 * Bridges use the userspace datapath (datapath_type=netdev), the one that does VXLAN and
 * GRE on this machine's kernel (which has neither openvswitch.ko nor a GRE module).
 * Userspace tunnels need the underlay address on an OVS bridge: `underlayBridge()` moves
 * a veth into a "br-phy" bridge and puts the address on br-phy's internal port, as the
 * OVS userspace-tunnelling guide does.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab } from './netns.js';
import { until } from './wait.js';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export class Ovs {
  /** Temporary directory holding conf.db, sockets, pidfiles and logs. */
  readonly dir: string;
  private db: ChildProcess | undefined;
  private vswitchd: ChildProcess | undefined;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(
    private readonly lab: Lab,
    readonly host: string,
  ) {
    // Short path: the sockets' names must fit sun_path (108 bytes).
    this.dir = mkdtempSync(join(tmpdir(), 'vtovs-'));
    this.env = {
      ...process.env,
      OVS_RUNDIR: this.dir,
      OVS_DBDIR: this.dir,
      OVS_LOGDIR: this.dir,
      OVS_SYSCONFDIR: this.dir,
      OVS_PKGDATADIR: '/usr/share/openvswitch',
    };
  }

  /** ovs-vswitchd's PID (its threads do the userspace datapath's work). */
  get vswitchdPid(): number | undefined {
    return this.vswitchd?.pid;
  }

  get dbSocket(): string {
    return join(this.dir, 'db.sock');
  }
  private ctl(daemon: 'ovsdb-server' | 'ovs-vswitchd'): string {
    return join(this.dir, `${daemon}.ctl`);
  }

  /**
   * Create the database and start both daemons inside `host`; resolves once ovs-vswitchd is
   * connected. `userspaceTso`: OVS reads and writes its ports' packet sockets with a
   * virtio_net_hdr (other_config:userspace-tso-enable, read only at start), so TCP
   * super-frames and unfinished checksums cross it as they are; OVS 3.1 cannot send such a
   * frame into a tunnel, so leave it off on a VTEP (see lab/tor.ts).
   */
  static async start(lab: Lab, host: string, opts: { userspaceTso?: boolean } = {}): Promise<Ovs> {
    const o = new Ovs(lab, host);
    try {
      await o.startDaemons(opts.userspaceTso ?? false);
      return o;
    } catch (e) {
      await o.stop();
      throw e;
    }
  }

  private async startDaemons(userspaceTso: boolean): Promise<void> {
    const d = this.dir;
    await this.lab.exec(this.host, 'ovsdb-tool', ['create', join(d, 'conf.db'), SCHEMA]);
    const common = (name: string) => [
      '--no-chdir',
      `--pidfile=${join(d, `${name}.pid`)}`,
      `--unixctl=${this.ctl(name as 'ovs-vswitchd')}`,
      `--log-file=${join(d, `${name}.log`)}`,
      '-vconsole:off',
      '-vfile:info',
    ];
    // Foreground (no --detach): the process `lab.spawn` tracks is the daemon itself
    // (`ip netns exec` execs it), so stopping it by PID stops OVS.
    this.db = this.lab.spawn(this.host, 'ovsdb-server', [join(d, 'conf.db'), `--remote=punix:${this.dbSocket}`, ...common('ovsdb-server')], { env: this.env });
    await this.waitFor(() => existsSync(this.dbSocket), 'ovsdb-server socket', this.db);
    await this.vsctl('--no-wait', 'init');
    if (userspaceTso) await this.vsctl('--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:userspace-tso-enable=true');
    this.vswitchd = this.lab.spawn(this.host, 'ovs-vswitchd', [`unix:${this.dbSocket}`, ...common('ovs-vswitchd')], { env: this.env });
    await this.waitFor(() => existsSync(this.ctl('ovs-vswitchd')), 'ovs-vswitchd control socket', this.vswitchd);
    // A no-op transaction that waits for ovs-vswitchd to catch up proves it is connected.
    await this.vsctl('--timeout=20', 'set', 'Open_vSwitch', '.', 'other_config:vtepd-lab=true');
  }

  private async waitFor(ok: () => boolean, what: string, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!ok()) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: daemon exited (${child.exitCode ?? child.signalCode})`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** ovs-vsctl against this instance's database. Returns stdout, trimmed. */
  async vsctl(...args: string[]): Promise<string> {
    const r = await this.lab.exec(this.host, 'ovs-vsctl', [`--db=unix:${this.dbSocket}`, ...args]);
    return r.stdout.trim();
  }

  /** ovs-appctl against this instance's ovs-vswitchd. */
  async appctl(...args: string[]): Promise<string> {
    const r = await this.lab.exec(this.host, 'ovs-appctl', ['-t', this.ctl('ovs-vswitchd'), ...args]);
    return r.stdout.trim();
  }

  /** `ovs-ofctl COMMAND BRIDGE ARGS…` through the bridge's management socket in our run dir. */
  async ofctl(command: string, bridge: string, ...args: string[]): Promise<string> {
    const r = await this.lab.exec(this.host, 'ovs-ofctl', [command, `unix:${join(this.dir, `${bridge}.mgmt`)}`, ...args]);
    return r.stdout.trim();
  }

  /**
   * Wait until ovs-vswitchd has opened each interface (it has an OpenFlow port number; -1
   * means it failed, [] that it has not got to it yet).
   */
  async untilPorts(...names: string[]): Promise<void> {
    for (const n of names)
      await until(
        `OVS interface ${n} to get an OpenFlow port`,
        () => this.vsctl('get', 'Interface', n, 'ofport'),
        (v) => /^[1-9]\d*$/.test(v),
      );
  }

  /** Add a userspace-datapath bridge. */
  async addBridge(name: string): Promise<void> {
    await this.vsctl('--timeout=20', 'add-br', name, '--', 'set', 'Bridge', name, 'datapath_type=netdev');
  }

  /**
   * The underlay as OVS userspace tunnels want it: bridge `bridge` (netdev) holding the
   * veth `dev`, with `address` ("10.0.0.2/24" or "2001:db8::2/64") moved onto the bridge's
   * internal port. Tunnel packets then leave through `dev` and arrive through it.
   */
  async underlayBridge(bridge: string, dev: string, address: string): Promise<void> {
    await this.addBridge(bridge);
    await this.vsctl('--timeout=20', 'add-port', bridge, dev);
    await this.lab.exec(this.host, 'ip', ['addr', 'flush', 'dev', dev]);
    const nodad = address.includes(':') ? ['nodad'] : [];
    await this.lab.exec(this.host, 'ip', ['addr', 'add', address, 'dev', bridge, ...nodad]);
    await this.lab.exec(this.host, 'ip', ['link', 'set', bridge, 'up']);
  }

  /** The counters of `ovs-appctl coverage/show` as a map (name -> total). */
  async coverage(): Promise<Map<string, number>> {
    const out = await this.appctl('coverage/show');
    const m = new Map<string, number>();
    for (const line of out.split('\n')) {
      const r = /^(\S+)\s+.*total:\s*(\d+)/.exec(line.trim());
      if (r) m.set(r[1], Number(r[2]));
    }
    return m;
  }

  /** The tail of ovs-vswitchd's log, for a failing test's message. */
  async logTail(lines = 40): Promise<string> {
    try {
      return (await this.lab.exec(this.host, 'tail', ['-n', String(lines), join(this.dir, 'ovs-vswitchd.log')])).stdout;
    } catch {
      return '';
    }
  }

  /** Stop ovs-vswitchd, then ovsdb-server, by PID, and remove the directory. Idempotent. */
  async stop(): Promise<void> {
    for (const c of [this.vswitchd, this.db]) {
      if (c) {
        try {
          await this.lab.stop(c);
        } catch {
          /* already gone */
        }
      }
    }
    this.vswitchd = this.db = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Two hosts h1, h2 on one veth (ul0, 10.0.0.1 and 10.0.0.2/24), each with its own userspace
 * Open vSwitch: the underlay on br-phy, on br-int a `tunnel` port to the other host (key
 * 5001) and a veth vm0 to an endpoint namespace (e1 10.1.0.1/24, e2 10.1.0.2/24) whose MTU
 * leaves room for the tunnel's header (GRE with key: 1458; VXLAN: 1450).
 */
export async function twoHostsOvs(tag: string, tunnel: 'gre' | 'vxlan'): Promise<{ lab: Lab; ovs: Ovs[]; cleanup(): Promise<void> }> {
  const lab = new Lab(tag);
  const ovs: Ovs[] = [];
  const cleanup = async () => {
    for (const o of ovs) await o.stop();
    await lab.cleanup();
  };
  try {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    for (const [h, me, peer, ep, addr] of [
      ['h1', '10.0.0.1', '10.0.0.2', 'e1', '10.1.0.1/24'],
      ['h2', '10.0.0.2', '10.0.0.1', 'e2', '10.1.0.2/24'],
    ] as const) {
      // OVS userspace drops tunnel packets with unfinished checksums (AF_PACKET over veth).
      await lab.exec(h, 'ethtool', ['-K', 'ul0', 'tx', 'off']);
      const o = await Ovs.start(lab, h);
      ovs.push(o);
      await o.underlayBridge('br-phy', 'ul0', `${me}/24`);
      await o.addBridge('br-int');
      await o.vsctl(
        'add-port',
        'br-int',
        `${tunnel}0`,
        '--',
        'set',
        'Interface',
        `${tunnel}0`,
        `type=${tunnel}`,
        `options:remote_ip=${peer}`,
        'options:key=5001',
      );
      await lab.addHost(ep, { ipv6: false });
      await lab.link(h, 'vm0', null, ep, 'eth0', addr, tunnel === 'gre' ? 1458 : 1450);
      await lab.exec(ep, 'ethtool', ['-K', 'eth0', 'tx', 'off']);
      await o.vsctl('add-port', 'br-int', 'vm0');
      await lab.exec(h, 'ip', ['link', 'set', 'br-int', 'up']);
    }
    return { lab, ovs, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
