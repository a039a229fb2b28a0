#!/usr/bin/env node
// Install the Debian tools the tests and benchmarks drive, where they are missing:
// `apt-get update` once, then one non-interactive `apt-get install`. Needs root.
import { execFileSync, spawnSync } from 'node:child_process';

const TOOLS = {
  ip: 'iproute2',
  ping: 'iputils-ping',
  iperf3: 'iperf3',
  tshark: 'tshark',
  ethtool: 'ethtool',
  // `vtepd capture` runs tcpdump where the traffic is (a TAP's namespace, the underlay).
  tcpdump: 'tcpdump',
  // Open vSwitch: the userspace GRE/VXLAN peer of the interop tests (never the system's OVS:
  // the tests run their own ovsdb-server/ovs-vswitchd inside a lab namespace, see lab/ovs.ts).
  'ovs-vsctl': 'openvswitch-switch',
  // nftables: the NAT (masquerade) namespace between a spoke and its hub in the hub-and-spoke tests.
  nft: 'nftables',
  // conntrack: the NAT-rebinding test flushes the NAT's mappings (conntrack -F).
  conntrack: 'conntrack',
  // WireGuard's wg: the reference for the key text form (`vtepd genkey`/`pubkey` against `wg genkey`/`pubkey`).
  wg: 'wireguard-tools',
  // etcd 3.4 (/usr/bin/etcd): the directory's store; tests run private members (lab/etcd.ts).
  etcd: 'etcd-server',
  // etcdctl: the three-member cluster test checks `etcdctl endpoint health` (docs/directory.md).
  etcdctl: 'etcd-client',
  // QEMU (TCG, no KVM needed) and a static busybox: the virtio-net guest of the VM tests (lab/guest.ts).
  'qemu-system-x86_64': 'qemu-system-x86',
  // GoBGP's daemon (Debian's 3.10, the version proto/gobgp/ is pinned to): the BGP EVPN speaker
  // vtepd supervises (src/evpn/gobgpd.ts); tests run their own in lab namespaces.
  gobgpd: 'gobgpd',
  // FRR 8.4 with the kernel's VXLAN: the EVPN interop peer (#17); its daemons run per lab
  // namespace, started directly, never the system's (lab/frr.ts). vtysh comes with the frr package.
  vtysh: 'frr',
  // The userspace peers of the latency bench (bench/latency.ts): tinc 1.0 in switch mode and OpenVPN TAP.
  tincd: 'tinc',
  openvpn: 'openvpn',
};

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = Object.entries(TOOLS)
  .filter(([cmd]) => !has(cmd))
  .map(([, pkg]) => pkg);
// scapy crafts the hostile and malformed packets of the barrage tests. Debian's python3
// (/usr/bin/python3, which the tests call by path: a pyenv python may shadow it on PATH).
if (spawnSync('/usr/bin/python3', ['-c', 'import scapy.all'], { stdio: 'ignore' }).status !== 0) missing.push('python3-scapy');
// busybox-static: the guest's userland, a /bin/busybox that needs no library (`ldd` says so;
// Debian's dynamic busybox package would not do inside the initramfs).
if (spawnSync('sh', ['-c', '[ -x /bin/busybox ] && ! ldd /bin/busybox'], { stdio: 'ignore' }).status !== 0) missing.push('busybox-static');
if (missing.length === 0) process.exit(0);
if (process.getuid?.() !== 0) {
  console.error(`test-deps: missing ${missing.join(', ')} and not root; install them with apt-get`);
  process.exit(1);
}
console.log(`test-deps: installing ${missing.join(' ')}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
