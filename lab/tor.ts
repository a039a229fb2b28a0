/**
 * Bare metal and VLANs for the #15 tests (the VLAN-to-VNI gateway), on a kernel without
 * 802.1Q sub-interfaces, VLAN-filtering bridges or openvswitch.ko: Open vSwitch's userspace
 * datapath (lab/ovs.ts, a private instance per lab host) plays the switches.
 *
 * `tor()`: a top-of-rack switch. Host "tor" runs OVS with bridge br-tor; each "bare-metal"
 * server is a namespace whose eth0 sits on an access port (OVS `tag=VLAN`, the port named
 * after the server), and the trunk is a veth whose switch end trunk0 is an OVS trunk port
 * and whose other end is an interface of the gateway host, where vtepd attaches its trunk:
 *
 *   bm100 eth0 --veth-- [bm100 tag=100]
 *   bm200 eth0 --veth-- [bm200 tag=200]   tor: br-tor   [trunk0 vlan_mode] --veth-- eth1 (gateway host)
 *   bm10  eth0 --veth-- [bm10  tag=10 ]   (10 the trunk's native VLAN: untagged on the trunk)
 *
 * `ovsVtep()`: Open vSwitch as the *other* VTEP (issue test 7), VLAN 100 mapped to VNI 5001
 * with OpenFlow:
 *
 *   bm eth0 --veth-- [bm tag=100] br-acc (NORMAL) [to-vtep trunk] ==patch== [to-acc] br-vtep [vxlan0] ~~ underlay
 *
 * br-vtep holds only the flows of the map: `in_port=to-acc,dl_vlan=100 -> strip_vlan,
 * set_tunnel:5001, output:vxlan0` and `in_port=vxlan0,tun_id=5001, untagged -> mod_vlan_vid:100,
 * output:to-acc`; anything else (another VLAN, an unmapped VNI, an inner 802.1Q tag) is
 * dropped. The VXLAN port has key=flow and the underlay address on br-phy
 * (`Ovs.underlayBridge`).
 *
 * Offloads (why TCP needs a choice here, see `OffloadMode`): OVS userspace reads and writes
 * a veth with an AF_PACKET socket. A Linux sender over veth hands the peer its skb as it is:
 * with TX checksum offload on, TCP/UDP checksums are left unfinished (CHECKSUM_PARTIAL, only
 * the pseudo-header sum in the field), and with TSO, up to 64 KB super-frames. A packet
 * socket without PACKET_VNET_HDR reads neither fact: OVS forwards the frame with its
 * unfinished checksum, and the receiving kernel drops it (tshark on the far side shows every
 * TCP SYN with a bad checksum: ping works, TCP never connects). Two ways out, both here.
 */
import type { Lab } from './netns.js';
import { Ovs } from './ovs.js';

/**
 * How frames cross the veths of an OVS switch:
 * - 'finished' (default): every interface that sends into the switch finishes its own
 *   frames, `ethtool -K DEV tx off` (see `finishOwnFrames`). TSO depends on TX checksum,
 *   so it goes off with it, and the kernel cuts GSO super-frames (the stack's, and those a
 *   packet socket writes with a virtio_net_hdr, as vtepd does) and fills in checksums in
 *   software before the veth (validate_xmit_skb). The trunk then carries what a wire
 *   carries: frames of at most MTU + 14 (+4 for a tag), checksums complete. About
 *   1 Gbit/s of TCP through the switch on this machine kind.
 * - 'tso': OVS opens its packet sockets with PACKET_VNET_HDR
 *   (other_config:userspace-tso-enable), reads each frame with its virtio_net_hdr and writes
 *   it on with it; no ethtool change. Super-frames and unfinished checksums cross the switch
 *   and the trunk as they are (several Gbit/s), so vtepd's trunk reads and writes GSO
 *   frames. OVS 3.1's userspace TSO is for flat and VLAN networks only, with no software
 *   segmentation to fall back on (its Documentation/topics/userspace-tso.rst): not for
 *   `ovsVtep()`.
 */
export type OffloadMode = 'finished' | 'tso';

/** A bare-metal server behind a switch: its own namespace, NIC eth0 on an access port. */
export interface BareMetal {
  /** Lab host name of the server (created here), e.g. "bm100"; also its switch port's name. */
  host: string;
  /** The VLAN of its access port (OVS `tag`), 1..4094. */
  vlan: number;
  /** Address of its eth0 ("10.1.0.3/24"), or null for none. */
  address: string | null;
  /** MAC of its eth0; two servers in different VLANs may share one (isolation tests). Default: the kernel's random one. */
  mac?: string;
}

/**
 * How the switch's trunk port treats VLANs (OVS Port `vlan_mode`):
 * - 'trunk': every VLAN leaves tagged; an untagged frame in is VLAN 0 (no access port has it).
 * - 'native-untagged': the native VLAN leaves untagged, untagged frames in join it, the rest tagged.
 * - 'native-tagged': like native-untagged, but the native VLAN leaves tagged too.
 */
export type TrunkMode = 'trunk' | 'native-untagged' | 'native-tagged';

export interface TorOptions {
  /** Lab host name of the switch (created here). Default "tor". */
  host?: string;
  /** The servers on access ports (their hosts are created here). */
  servers: BareMetal[];
  trunk: {
    /** The lab host (it must exist) that gets the trunk's far end: where vtepd attaches its trunk. */
    gateway: string;
    /** Name of the trunk interface in `gateway`, e.g. "eth1". */
    dev: string;
    /** Default 'trunk' without `native`, 'native-untagged' with it. */
    mode?: TrunkMode;
    /** The native VLAN (the trunk port's OVS `tag`); the native-* modes need one. */
    native?: number;
    /** The VLANs the trunk carries (OVS `trunks`); default all. */
    vlans?: number[];
    /** Address on the gateway's end, e.g. to reach the native VLAN's servers without vtepd. Default none. */
    address?: string | null;
  };
  /** MTU of the servers' NICs and the trunk. Default 1500; a tag rides in the 4 bytes veth allows beyond the MTU. */
  mtu?: number;
  /** Default 'finished'. */
  offloads?: OffloadMode;
}

export interface Tor {
  /** The switch's Open vSwitch. */
  readonly ovs: Ovs;
  /** The lab host of the switch. */
  readonly host: string;
  /** Its bridge, "br-tor". */
  readonly bridge: string;
  /** The switch end of the trunk veth in `host`, "trunk0": scapy there sends frames as if from the switch. */
  readonly trunkPort: string;
  /** Stop the switch's daemons by PID and remove their directory (the lab removes the namespaces). */
  stop(): Promise<void>;
}

const TOR_BRIDGE = 'br-tor';
const TRUNK_PORT = 'trunk0';

/**
 * A top-of-rack switch in `lab`: host `opts.host` ("tor") with OVS and bridge br-tor, one
 * access port per server (each server a new host with eth0), and the trunk toward
 * `opts.trunk.gateway` (which must exist) as `opts.trunk.dev`, left up and without an
 * address unless given one. Resolves once OVS has opened every port.
 */
export async function tor(lab: Lab, opts: TorOptions): Promise<Tor> {
  const host = opts.host ?? 'tor';
  const mtu = opts.mtu ?? 1500;
  const mode = opts.offloads ?? 'finished';
  const t = opts.trunk;
  const trunkCols = trunkSettings(t);
  await lab.addHost(host, { ipv6: false });
  const ovs = await Ovs.start(lab, host, { userspaceTso: mode === 'tso' });
  try {
    await ovs.addBridge(TOR_BRIDGE);
    for (const s of opts.servers) await addServer(lab, ovs, TOR_BRIDGE, s, mtu, mode);
    await lab.link(host, TRUNK_PORT, null, t.gateway, t.dev, t.address ?? null, mtu);
    if (mode === 'finished') await finishOwnFrames(lab, t.gateway, t.dev);
    await ovs.vsctl('add-port', TOR_BRIDGE, TRUNK_PORT, '--', 'set', 'Port', TRUNK_PORT, ...trunkCols);
    await lab.exec(host, 'ip', ['link', 'set', TOR_BRIDGE, 'up']);
    await ovs.untilPorts(...opts.servers.map((s) => s.host), TRUNK_PORT);
  } catch (e) {
    await ovs.stop();
    throw e;
  }
  return { ovs, host, bridge: TOR_BRIDGE, trunkPort: TRUNK_PORT, stop: () => ovs.stop() };
}

/** The OVS Port columns of the trunk: vlan_mode, tag (the native VLAN), trunks. */
function trunkSettings(t: TorOptions['trunk']): string[] {
  const mode = t.mode ?? (t.native === undefined ? 'trunk' : 'native-untagged');
  if (mode !== 'trunk' && t.native === undefined) throw new Error(`tor: trunk.mode ${mode} needs trunk.native (the native VLAN)`);
  const cols = [`vlan_mode=${mode}`];
  if (mode !== 'trunk') cols.push(`tag=${t.native}`);
  if (t.vlans?.length) cols.push(`trunks=${t.vlans.join(',')}`);
  return cols;
}

/** A server host with eth0 (MAC, address, MTU), its switch end `s.host` an access port of `bridge` (tag = its VLAN). */
async function addServer(lab: Lab, ovs: Ovs, bridge: string, s: BareMetal, mtu: number, mode: OffloadMode): Promise<void> {
  await lab.addHost(s.host, { ipv6: false });
  await lab.link(ovs.host, s.host, null, s.host, 'eth0', null, mtu);
  if (s.mac) await lab.exec(s.host, 'ip', ['link', 'set', 'eth0', 'address', s.mac]);
  if (s.address) await lab.exec(s.host, 'ip', ['addr', 'add', s.address, 'dev', 'eth0']);
  if (mode === 'finished') await finishOwnFrames(lab, s.host, 'eth0');
  await ovs.vsctl('add-port', bridge, s.host, '--', 'set', 'Port', s.host, `tag=${s.vlan}`);
}

/**
 * Make `dev` in `host` hand its peer finished frames: TX checksum offload off, which takes
 * TSO with it (`ethtool -K DEV tx off`). Needed on every interface that sends over veth
 * into an Open vSwitch userspace port that reads without a virtio_net_hdr (offloads
 * 'finished'): the kernel then segments and checksums in software before the veth. GSO and
 * the receive side can stay as they are: GSO is cut before the device for want of TSO, and
 * what OVS writes is finished already.
 */
export async function finishOwnFrames(lab: Lab, host: string, dev: string): Promise<void> {
  await lab.exec(host, 'ethtool', ['-K', dev, 'tx', 'off']);
}

export interface OvsVtepOptions {
  /** The lab host (it must exist) for the VTEP, holding the underlay veth `underlay.dev`. */
  host: string;
  underlay: {
    /** The underlay veth in `host` (its address, if any, is moved onto br-phy). */
    dev: string;
    /** This VTEP's underlay address with prefix, "10.0.0.2/24". */
    address: string;
    /** The other VTEP's underlay address, "10.0.0.1" (the VXLAN port's remote_ip). */
    remote: string;
  };
  /** VLAN ID -> VNI, e.g. { 100: 5001 }. */
  map: Record<number, number>;
  /** Bare-metal servers on access ports of br-acc (hosts created here). */
  servers: BareMetal[];
  /** The servers' MTU. Default 1450 (a 1500 underlay less VXLAN's 50 bytes). */
  mtu?: number;
  /** VXLAN UDP port. Default 4789. */
  port?: number;
}

export interface OvsVtep {
  readonly ovs: Ovs;
  readonly host: string;
  /** "br-acc": the servers' access ports and the patch trunk toward br-vtep (NORMAL switching). */
  readonly accessBridge: string;
  /** "br-vtep": the patch port, the VXLAN port and the map's flows. */
  readonly vtepBridge: string;
  /** "vxlan0". */
  readonly vxlanPort: string;
  /** `ovs-ofctl dump-flows br-vtep`, e.g. for a failing test's message (n_packets per flow). */
  flows(): Promise<string>;
  stop(): Promise<void>;
}

const ACC_BRIDGE = 'br-acc';
const VTEP_BRIDGE = 'br-vtep';
const VXLAN_PORT = 'vxlan0';

/**
 * Open vSwitch as a VTEP in `opts.host`: underlay on br-phy, servers on access ports of
 * br-acc, VLANs mapped to VNIs by OpenFlow on br-vtep (see the top of this file). OVS reads
 * its ports without a virtio_net_hdr here (offloads 'finished': the servers' eth0 finish
 * their frames); the other VTEP must finish the checksums of what it sends over the
 * underlay veth too (`finishOwnFrames(lab, peer, 'ul0')`, as test/netns/ovs.test.ts does).
 */
export async function ovsVtep(lab: Lab, opts: OvsVtepOptions): Promise<OvsVtep> {
  const { host } = opts;
  const ovs = await Ovs.start(lab, host);
  try {
    await ovs.underlayBridge('br-phy', opts.underlay.dev, opts.underlay.address);
    await ovs.addBridge(ACC_BRIDGE);
    await ovs.addBridge(VTEP_BRIDGE);
    for (const s of opts.servers) await addServer(lab, ovs, ACC_BRIDGE, s, opts.mtu ?? 1450, 'finished');
    await patch(ovs, ACC_BRIDGE, 'to-vtep', 'to-acc', ['vlan_mode=trunk']);
    await patch(ovs, VTEP_BRIDGE, 'to-acc', 'to-vtep');
    const vxlan = [`options:remote_ip=${opts.underlay.remote}`, 'options:key=flow', `options:dst_port=${opts.port ?? 4789}`];
    await ovs.vsctl('add-port', VTEP_BRIDGE, VXLAN_PORT, '--', 'set', 'Interface', VXLAN_PORT, 'type=vxlan', ...vxlan);
    await ovs.ofctl('del-flows', VTEP_BRIDGE);
    await ovs.ofctl('add-flow', VTEP_BRIDGE, 'priority=0,actions=drop');
    for (const [vlan, vni] of Object.entries(opts.map)) {
      await ovs.ofctl('add-flow', VTEP_BRIDGE, `priority=10,in_port=to-acc,dl_vlan=${vlan},actions=strip_vlan,set_tunnel:${vni},output:${VXLAN_PORT}`);
      // vlan_tci=0/0x1000: no 802.1Q tag inside the tunnel; a tagged inner frame stays out.
      await ovs.ofctl('add-flow', VTEP_BRIDGE, `priority=10,in_port=${VXLAN_PORT},tun_id=${vni},vlan_tci=0/0x1000,actions=mod_vlan_vid:${vlan},output:to-acc`);
    }
    for (const b of [ACC_BRIDGE, VTEP_BRIDGE]) await lab.exec(host, 'ip', ['link', 'set', b, 'up']);
    await ovs.untilPorts(...opts.servers.map((s) => s.host), 'to-vtep', 'to-acc', VXLAN_PORT);
  } catch (e) {
    await ovs.stop();
    throw e;
  }
  return {
    ovs,
    host,
    accessBridge: ACC_BRIDGE,
    vtepBridge: VTEP_BRIDGE,
    vxlanPort: VXLAN_PORT,
    flows: () => ovs.ofctl('dump-flows', VTEP_BRIDGE),
    stop: () => ovs.stop(),
  };
}

/** A patch port `name` on `bridge` whose peer is `peer` (on the other bridge), with extra Port columns. */
async function patch(ovs: Ovs, bridge: string, name: string, peer: string, portCols: string[] = []): Promise<void> {
  const port = portCols.length ? ['--', 'set', 'Port', name, ...portCols] : [];
  await ovs.vsctl('add-port', bridge, name, '--', 'set', 'Interface', name, 'type=patch', `options:peer=${peer}`, ...port);
}
