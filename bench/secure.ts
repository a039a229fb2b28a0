/**
 * The encrypted rows of the throughput benchmark (issue #12): one TCP stream (iperf3)
 * between two hosts, and spoke -> hub -> spoke, each three ways in one run: the kernel's
 * plaintext VXLAN, vtepd plaintext (a tenant with `encryption: off`) and vtepd encrypted (a
 * tenant with `encryption: required`, the same daemons and keys). The rounds alternate the
 * three, so the machine's load falls on each alike.
 *
 *   direct: h1 ── veth ── h2   vtepd on both (identities, keys in the flood lists), tenants
 *           plain (10.1.0.0/24) and enc (10.2.0.0/24); kernel VXLAN k1/k2 (VNI 9001, 8472)
 *   relay:  spokes a, b and hub1 with identities (lab/topology.ts hubAndSpoke), tenants
 *           plain and enc; the kernel's hub: VXLAN devices on a Linux bridge (bench/hubspoke.ts)
 */
import { iperfGbps, type Lab } from '../lab/netns.js';
import { addKernelVxlan, hubAndSpoke, twoHostsVtepd } from '../lab/topology.js';
import { untilListening } from '../lab/wait.js';
import { addKernelHub } from './hubspoke.js';
import { gbps, type Progress } from './progress.js';
import { request } from '../src/daemon/control.js';
import type { RoleStatus } from '../src/overlay/roles.js';

export interface SecureRow {
  kernel: number;
  plain: number;
  encrypted: number;
}
export interface SecureFigures {
  direct: SecureRow;
  relay: SecureRow;
  /** The cipher the daemons seal with (each picks its own: AES-256-GCM with AES-NI). */
  cipher: string;
}

async function tcp(lab: Lab, client: string, server: string, addr: string, seconds: number): Promise<number> {
  const srv = lab.spawn(server, 'iperf3', ['-s', '-1', '-B', addr]);
  await untilListening(lab, server, 5201);
  try {
    const r = await lab.exec(client, 'iperf3', ['-c', addr, '-t', String(seconds), '-J'], (seconds + 60) * 1000);
    return iperfGbps(r.stdout);
  } finally {
    await lab.stop(srv);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Each of the sides `rounds` times, in a rotating order; the median of each. */
async function rotate(rounds: number, sides: (() => Promise<number>)[], report: Progress, what: string, seconds: number): Promise<number[]> {
  const got: number[][] = sides.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (k + r) % sides.length;
      const name = ['kernel', 'vtepd plaintext', 'vtepd encrypted'][i];
      got[i]!.push(await report.step(`${name} TCP ${what}`, sides[i]!, gbps, `round ${r + 1}/${rounds}, ${seconds} s`));
    }
  }
  return got.map(median);
}

/** Progress steps of secureThroughput: three sides, two labs, `rounds` each. */
export const secureSteps = (rounds: number) => 6 * rounds;

export async function secureThroughput(seconds: number, rounds: number, report: Progress): Promise<SecureFigures> {
  let direct: SecureRow;
  let cipher = '';
  const m = await twoHostsVtepd(
    [
      { name: 'plain', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], encryption: 'off' },
      { name: 'enc', vni: 5002, addresses: ['10.2.0.1/24', '10.2.0.2/24'], encryption: 'required' },
    ],
    { tag: 'bs', secure: true },
  );
  try {
    await addKernelVxlan(m.lab, { vni: 9001, port: 8472, addresses: ['10.9.0.1/24', '10.9.0.2/24'] });
    for (const [c, a] of [
      ['k1', '10.9.0.2'],
      ['plain1', '10.1.0.2'],
      ['enc1', '10.2.0.2'],
    ] as const)
      await m.lab.exec(c, 'ping', ['-c', '3', '-i', '0.2', '-w', '20', a]);
    const [kernel, plain, encrypted] = await rotate(
      rounds,
      [
        () => tcp(m.lab, 'k1', 'k2', '10.9.0.2', seconds),
        () => tcp(m.lab, 'plain1', 'plain2', '10.1.0.2', seconds),
        () => tcp(m.lab, 'enc1', 'enc2', '10.2.0.2', seconds),
      ],
      report,
      'host to host',
      seconds,
    );
    direct = { kernel: kernel!, plain: plain!, encrypted: encrypted! };
    cipher = (await request<{ overlay: RoleStatus }>(m.daemons[0]!.socket, 'status', {}, { timeoutMs: 5000 })).overlay.secure?.cipher ?? '?';
  } finally {
    await m.cleanup();
  }

  const hs = await hubAndSpoke({
    tag: 'bsh',
    tenants: [
      { name: 'plain', vni: 5001, subnet: '10.1.0', encryption: 'off' },
      { name: 'enc', vni: 5002, subnet: '10.2.0' },
    ],
    secure: {},
  });
  try {
    await addKernelHub(hs);
    await hs.lab.exec('kx1', 'ping', ['-c', '2', '-i', '0.2', '10.9.0.2']);
    for (const t of ['plain', 'enc']) await hs.lab.exec(hs.endpoint(t, 'a'), 'ping', ['-c', '3', '-i', '0.2', '-w', '20', hs.overlay(t, 'b')]);
    const side = (t: string) => () => tcp(hs.lab, hs.endpoint(t, 'a'), hs.endpoint(t, 'b'), hs.overlay(t, 'b'), seconds);
    const [kernel, plain, encrypted] = await rotate(
      rounds,
      [() => tcp(hs.lab, 'kx1', 'kx2', '10.9.0.2', seconds), side('plain'), side('enc')],
      report,
      'spoke→hub→spoke',
      seconds,
    );
    return { direct, relay: { kernel: kernel!, plain: plain!, encrypted: encrypted! }, cipher };
  } finally {
    await hs.cleanup();
  }
}
