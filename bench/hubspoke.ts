/**
 * The hub-and-spoke row of the throughput benchmark: one TCP stream (iperf3) from spoke to
 * spoke through a hub, vtepd all the way (vtepd spokes, a vtepd hub relaying in its fast
 * path) against the kernel all the way (kernel VXLAN spokes, a hub made of two kernel VXLAN
 * devices on a Linux bridge), in one lab and one run.
 *
 *   vtepd:  [blue-a]─TAP─[a 10.0.0.1]──┐                 ┌──[hub1 10.0.0.10] role: hub
 *           [blue-b]─TAP─[b 10.0.0.2]──┼── sw (br0) ─────┤
 *   kernel: [kx1]─vxlan─[k1 10.0.0.30]─┤                 └──[khub 10.0.0.20, .21]
 *           [kx2]─vxlan─[k2 10.0.0.31]─┘                       vx1 (remote k1) ─ br0 ─ vx2 (remote k2)
 *
 * The kernel refuses two VXLAN devices with one VNI and port in a namespace, so its hub's
 * two legs carry VNI 7001 (k1) and 7002 (k2), joined by the bridge.
 */
import { iperfGbps } from '../lab/netns.js';
import { hubAndSpoke, type HubSpoke } from '../lab/topology.js';
import { untilListening } from '../lab/wait.js';
import { gbps, silent, type Progress } from './progress.js';

/** The kernel's hub beside the lab's vtepd one: two VXLAN devices on a Linux bridge, spokes k1/k2 (endpoints kx1/kx2, 10.9.0.1/.2). */
export async function addKernelHub(hs: HubSpoke): Promise<void> {
  const { lab } = hs;
  let n = 0;
  const attach = async (host: string, addrs: string[]) => {
    const p = `pk${n++}`;
    await lab.link(host, 'ul0', `${addrs[0]}/24`, 'sw', p, null);
    for (const a of addrs.slice(1)) await lab.exec(host, 'ip', ['addr', 'add', `${a}/24`, 'dev', 'ul0']);
    await lab.exec('sw', 'ip', ['link', 'set', p, 'master', 'br0']);
  };
  await lab.addHost('khub', { ipv6: false });
  await attach('khub', ['10.0.0.20', '10.0.0.21']);
  await lab.exec('khub', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  await lab.exec('khub', 'ip', ['link', 'set', 'br0', 'up']);
  const spokes = [
    { k: 'k1', addr: '10.0.0.30', hub: '10.0.0.20', ep: 'kx1', ip: '10.9.0.1/24', vni: '7001' },
    { k: 'k2', addr: '10.0.0.31', hub: '10.0.0.21', ep: 'kx2', ip: '10.9.0.2/24', vni: '7002' },
  ];
  for (const [i, s] of spokes.entries()) {
    // The hub: one VXLAN device per spoke (its own local address), bridged.
    await lab.exec('khub', 'ip', ['link', 'add', `vx${i + 1}`, 'type', 'vxlan', 'id', s.vni, 'local', s.hub, 'remote', s.addr, 'dstport', '4789']);
    await lab.exec('khub', 'ip', ['link', 'set', `vx${i + 1}`, 'master', 'br0', 'up']);
    // The spoke: a VXLAN device toward its hub address, in an endpoint namespace.
    await lab.addHost(s.k, { ipv6: false });
    await attach(s.k, [s.addr]);
    await lab.addHost(s.ep, { ipv6: false });
    await lab.exec(s.k, 'ip', ['link', 'add', 'vxk', 'type', 'vxlan', 'id', s.vni, 'local', s.addr, 'remote', s.hub, 'dstport', '4789']);
    await lab.exec(s.k, 'ip', ['link', 'set', 'vxk', 'mtu', '1450', 'netns', lab.ns(s.ep)]);
    await lab.exec(s.ep, 'ip', ['addr', 'add', s.ip, 'dev', 'vxk']);
    await lab.exec(s.ep, 'ip', ['link', 'set', 'vxk', 'up']);
  }
}

async function tcp(hs: HubSpoke, client: string, server: string, addr: string, seconds: number): Promise<number> {
  const srv = hs.lab.spawn(server, 'iperf3', ['-s', '-1', '-B', addr]);
  await untilListening(hs.lab, server, 5201);
  try {
    const r = await hs.lab.exec(client, 'iperf3', ['-c', addr, '-t', String(seconds), '-J'], (seconds + 60) * 1000);
    return iperfGbps(r.stdout);
  } finally {
    await hs.lab.stop(srv);
  }
}

/** Spoke-to-spoke TCP through a hub: { kernel, vtepd } in Gbit/s (2 progress steps). */
export async function hubSpokeThroughput(seconds: number, report: Progress = silent): Promise<{ kernel: number; vtepd: number }> {
  const hs = await hubAndSpoke({ tag: 'bh' });
  try {
    await addKernelHub(hs);
    await hs.lab.exec('kx1', 'ping', ['-c', '2', '-i', '0.2', '10.9.0.2']);
    await hs.lab.exec(hs.endpoint('blue', 'a'), 'ping', ['-c', '2', '-i', '0.2', hs.overlay('blue', 'b')]);
    const kernel = await report.step('kernel TCP spoke→hub→spoke', () => tcp(hs, 'kx1', 'kx2', '10.9.0.2', seconds), gbps, `${seconds} s`);
    const vtepd = await report.step(
      'vtepd TCP spoke→hub→spoke',
      () => tcp(hs, hs.endpoint('blue', 'a'), hs.endpoint('blue', 'b'), hs.overlay('blue', 'b'), seconds),
      (g) => `${gbps(g)} (vtepd ${(g / kernel).toFixed(2)}× kernel)`,
      `${seconds} s`,
    );
    return { kernel, vtepd };
  } finally {
    await hs.cleanup();
  }
}
