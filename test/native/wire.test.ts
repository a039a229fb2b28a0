/**
 * What the fast path puts on the wire is what the protocol says: a frame switched from a
 * port to a VTEP (encap_frame -> tunnel_push -> vxlan_push, in C) is taken off the
 * underlay by a remote VTEP socket, then decoded by tshark's VXLAN dissector (a pcap
 * around the UDP payload) and by the module's own parser (vxlan_pop, the one decap uses).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { NativeHarness, VTEP_A } from '../support/harness.js';
import { BCAST, frame, mac, payloadOf } from '../support/frames.js';
import { testAddon } from '../support/test-addon.js';
import type { WirePacket } from '../support/fake-datapath.js';

const VNI = 0x123456;
const M1 = mac(1);
const R1 = mac(0x99);

/** Poll `probe` until it returns something truthy, or fail after `ms`. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One Ethernet/IPv4/UDP packet around a UDP payload, in a pcap, dissected by tshark. */
function tsharkFields(udpPayload: Buffer, dstPort: number, fields: string[]): string[] {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(8 + udpPayload.length, 4); /* checksum 0: none (RFC 7348 §5) */
  const ip = Buffer.from([0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2]);
  ip.writeUInt16BE(20 + 8 + udpPayload.length, 2);
  const eth = Buffer.from('020000000002020000000001' + '0800', 'hex');
  const pkt = Buffer.concat([eth, ip, udp, udpPayload]);
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeUInt32LE(65535, 16);
  hdr.writeUInt32LE(1, 20); /* Ethernet */
  const rec = Buffer.alloc(16);
  rec.writeUInt32LE(pkt.length, 8);
  rec.writeUInt32LE(pkt.length, 12);
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-wire-'));
  try {
    const file = join(dir, 'x.pcap');
    writeFileSync(file, Buffer.concat([hdr, rec, pkt]));
    const out = execFileSync(
      'tshark',
      ['-r', file, '-d', `udp.port==${dstPort},vxlan`, '-T', 'fields', '-E', 'occurrence=l', ...fields.flatMap((f) => ['-e', f])],
      { encoding: 'utf8' },
    );
    return out.trim().split('\t');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it('a frame the fast path encapsulates in VXLAN decodes with tshark and with vxlan_pop', async () => {
  const h = await NativeHarness.create();
  try {
    h.addTenant({ name: 'blue', vni: VNI, flood: [VTEP_A] });
    h.addPort('blue', 'p1');
    /* R1 learned behind VTEP A, so a frame to it is unicast by the fast path. */
    h.fromVtep(VTEP_A, VNI, frame(BCAST, R1, 'who'));
    await until('the broadcast at p1', async () => (await h.takePort('p1')).length > 0);
    await until('R1 learned', async () => h.sw.tenant('blue')!.table.get(R1)?.place.kind === 'vtep');
    const punted = h.dp.stats().counters.punted_frames;
    h.fromPort('p1', frame(R1, M1, 'over the wire'));
    const [w] = await until<WirePacket[]>('the VXLAN packet at VTEP A', async () => {
      const got = await h.takeWire();
      return got.length > 0 && got;
    });
    expect(h.dp.stats().counters.punted_frames).toBe(punted); /* the fast path, not a flood */
    expect(w!.to).toBe(VTEP_A);
    const udp = Buffer.concat([w!.header!, w!.frame]);

    expect(testAddon().vxlanPop(udp)).toEqual({ result: 'ok', vni: VNI });
    expect(payloadOf(udp.subarray(8))).toBe('over the wire');

    const [vni, flagsI, dst, src] = tsharkFields(udp, h.port, ['vxlan.vni', 'vxlan.flag_i', 'eth.dst', 'eth.src']);
    expect(Number(vni)).toBe(VNI);
    expect(flagsI).toMatch(/^(1|True)$/);
    expect([dst, src]).toEqual([R1, M1]);
  } finally {
    await h.close();
  }
});
