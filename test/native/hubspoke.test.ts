/**
 * The fast path's hub-and-spoke surface against the real addon, over loopback: liveness
 * messages punted and sent from the underlay port, VTEPs identified by address and port,
 * the fixed source port, relay in C (and hairpin), per-VTEP path MTU with ICMP too-big,
 * and MSS clamping both ways with checksums that verify.
 */
import dgram from 'node:dgram';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NativeDatapath } from '../../src/native/datapath.js';
import { native } from '../../src/native/addon.js';
import { testAddon } from '../support/test-addon.js';
import { Switch, type ControlHandler } from '../../src/core/switch.js';
import { csum16 } from '../../src/util/checksum.js';
import { encodeLiveness, PROBE } from '../../src/overlay/liveness.js';
import { tenantSpec } from '../support/harness.js';
import { BCAST, frame, mac, payloadOf } from '../support/frames.js';
import { until, untilSteady } from '../../lab/wait.js';

const M1 = mac(0x101);
const R1 = mac(0x201);
const R2 = mac(0x202);

interface Remote {
  sock: dgram.Socket;
  address: string;
  port: number;
  got: { msg: Buffer; from: number }[];
}

function remote(address: string, port = 0): Promise<Remote> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const r: Remote = { sock, address, port, got: [] };
    sock.on('message', (msg, rinfo) => r.got.push({ msg: Buffer.from(msg), from: rinfo.port }));
    sock.once('error', reject);
    sock.bind(port, address, () => {
      r.port = sock.address().port;
      resolve(r);
    });
  });
}

function vxlan(vni: number, f: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, f]);
}

/** An IPv4 TCP SYN with options: MSS 1460 (optionally after a NOP: a misaligned value), window scale. */
function syn(dst: string, src: string, misaligned = false): Buffer {
  const opts = misaligned ? [1, 2, 4, 0x05, 0xb4, 3, 3, 7] : [2, 4, 0x05, 0xb4, 1, 3, 3, 7];
  const tcpLen = 20 + opts.length;
  const ip = Buffer.alloc(20 + tcpLen);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  ip.set([10, 1, 0, 1], 12);
  ip.set([10, 1, 0, 2], 16);
  ip.writeUInt16BE(~csum16(ip, 0, 20) & 0xffff, 10);
  const t = 20;
  ip.writeUInt16BE(40000, t);
  ip.writeUInt16BE(5201, t + 2);
  ip.writeUInt32BE(12345, t + 4);
  ip[t + 12] = (tcpLen / 4) << 4;
  ip[t + 13] = 0x02; // SYN
  ip.writeUInt16BE(64240, t + 14);
  Buffer.from(opts).copy(ip, t + 20);
  ip.writeUInt16BE(tcpChecksum(ip), t + 16);
  return frame(dst, src, ip);
}

function tcpChecksum(ip: Buffer): number {
  const t = (ip[0] & 15) * 4;
  const len = ip.readUInt16BE(2) - t;
  const pseudo = csum16(ip, 12, 20) + 6 + len;
  const save = ip.readUInt16BE(t + 16);
  ip.writeUInt16BE(0, t + 16);
  const c = ~csum16(ip, t, t + len, pseudo) & 0xffff;
  ip.writeUInt16BE(save, t + 16);
  return c;
}

/** The MSS option value and whether the TCP checksum verifies, of a frame's SYN. */
function synInfo(f: Buffer): { mss: number; csumOk: boolean } {
  const ip = f.subarray(14, 14 + f.readUInt16BE(16));
  const t = 20;
  let o = t + 20;
  while (ip[o] === 1) o++;
  return { mss: ip.readUInt16BE(o + 2), csumOk: tcpChecksum(ip) === ip.readUInt16BE(t + 16) };
}

describe('hub-and-spoke fast path (C addon over loopback)', () => {
  let sw: Switch;
  /** Where the switch hands liveness messages (a test sets it). */
  let onControl: ControlHandler = () => {};
  let dp: NativeDatapath;
  let port: number;
  const fds: number[] = [];
  const remotes: Remote[] = [];
  let peer: number;
  const n = native();
  const t = testAddon();

  beforeEach(async () => {
    onControl = () => {};
    for (let i = 0; ; i++) {
      port = 20000 + Math.floor(Math.random() * 20000);
      try {
        dp = new NativeDatapath({ local: '127.0.0.1', port, sourcePorts: 2 });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i > 20) throw e;
      }
    }
    sw = new Switch(dp, { vxlanPort: port, maxMacsTotal: 10000, defaultVtepMtu: 1500, onControl: (...args) => onControl(...args) });
    sw.start();
    sw.addTenant(tenantSpec({ name: 'blue', vni: 5001 }));
    const [a, b] = t.testSocketPair();
    fds.push(a, b);
    sw.addPort('blue', 'p0', a);
    peer = b;
  });

  afterEach(async () => {
    sw.stop();
    for (const r of remotes.splice(0)) await new Promise<void>((res) => r.sock.close(() => res()));
    for (const fd of fds.splice(0)) n.fdClose(fd);
  });

  /** Wait until `ok()` holds, then until the data path and the remote VTEPs are quiet. */
  async function settled(what: string, ok: () => boolean): Promise<void> {
    await until(what, async () => ok(), Boolean, 10_000, 5);
    await untilSteady('the data path to go quiet', async () => [dp.stats().counters, remotes.map((r) => r.got.length)], 10_000, 10);
  }

  /** The frames written to the port, once at least `min` have come and nothing more moves. */
  async function readPort(min = 1): Promise<Buffer[]> {
    const out: Buffer[] = [];
    const drain = () => {
      for (let f = t.testRead(peer, 0); f; f = t.testRead(peer, 0)) out.push(f);
    };
    await settled(`${min} frame(s) on the port`, () => {
      drain();
      return out.length >= min;
    });
    drain();
    return out;
  }

  it('hands liveness messages to the control plane with the outer address and port, and sends them from the underlay port', async () => {
    const r = await remote('127.0.0.5');
    remotes.push(r);
    const seen: { payload: Buffer; from: { address: string; port: number } }[] = [];
    onControl = (payload, from) => seen.push({ payload, from });
    const probe = encodeLiveness({ type: PROBE, seq: 9, sender: 1, timestamp: 2, probedSize: 0, role: 'spoke', nat: true, vnis: [5001], padTo: 1000 });
    r.sock.send(probe, port, '127.0.0.1');
    await settled('the probe handed to the control plane', () => seen.length >= 1);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.payload.equals(probe)).toBe(true);
    expect(seen[0]!.from).toEqual({ address: '127.0.0.5', port: r.port });
    expect(dp.stats().counters.control_rx).toBe(1);
    expect(dp.stats().counters.vxlan_bad_flags).toBe(0);
    dp.sendControl('127.0.0.5', r.port, probe);
    await settled('the probe at the remote', () => r.got.length >= 1);
    expect(r.got.map((g) => [g.msg.equals(probe), g.from])).toEqual([[true, port]]);
    expect(() => dp.sendControl('127.0.0.5', r.port, Buffer.alloc(70000))).toThrow(/EMSGSIZE|1\.\.65507/);
  });

  it('tells VTEPs on one address apart by port (matchPort), answers each from the underlay port (fixedSourcePort)', async () => {
    const one = await remote('127.0.0.6');
    const two = await remote('127.0.0.6');
    remotes.push(one, two);
    const v1 = sw.vteps.role('127.0.0.6', one.port, { matchPort: true, fixedSourcePort: true });
    const v2 = sw.vteps.role('127.0.0.6', two.port, { matchPort: true, fixedSourcePort: true });
    const b = sw.tenant('blue')!;
    sw.trust(b, v1.id, true);
    sw.trust(b, v2.id, true);
    one.sock.send(vxlan(5001, frame(BCAST, R1, 'from-one')), port, '127.0.0.1');
    two.sock.send(vxlan(5001, frame(BCAST, R2, 'from-two')), port, '127.0.0.1');
    const flooded = await readPort(2);
    expect(b.table.get(R1)?.place).toEqual({ kind: 'vtep', vtepId: v1.id });
    expect(b.table.get(R2)?.place).toEqual({ kind: 'vtep', vtepId: v2.id });
    expect(flooded.map(payloadOf).sort()).toEqual(['from-one', 'from-two']);
    t.testWrite(peer, frame(R2, M1, 'to-two'));
    await settled('to-two at the second VTEP', () => two.got.length >= 1);
    expect(two.got.map((g) => [payloadOf(g.msg.subarray(8)), g.from])).toEqual([['to-two', port]]);
    expect(one.got.filter((g) => payloadOf(g.msg.subarray(8)) === 'to-two')).toEqual([]);
  });

  it('relays VTEP to VTEP in C on a hub tenant, never back to the VTEP a frame came from', async () => {
    const a = await remote('127.0.0.7');
    const c = await remote('127.0.0.8');
    remotes.push(a, c);
    const va = sw.vteps.role('127.0.0.7', a.port, { matchPort: true, fixedSourcePort: true });
    const vc = sw.vteps.role('127.0.0.8', c.port, { matchPort: true, fixedSourcePort: true });
    const b = sw.tenant('blue')!;
    sw.trust(b, va.id, true);
    sw.trust(b, vc.id, true);
    sw.setRelay(b, true);
    a.sock.send(vxlan(5001, frame(BCAST, R1, 'hello-from-a')), port, '127.0.0.1');
    c.sock.send(vxlan(5001, frame(BCAST, R2, 'hello-from-c')), port, '127.0.0.1');
    await settled("each spoke to get the other one's broadcast", () => a.got.length >= 1 && c.got.length >= 1);
    // Flooded by the bridge to the other spoke and the port, not back.
    expect(c.got.map((g) => payloadOf(g.msg.subarray(8)))).toEqual(['hello-from-a']);
    expect(a.got.map((g) => payloadOf(g.msg.subarray(8)))).toEqual(['hello-from-c']);
    a.got.length = 0;
    c.got.length = 0;
    for (let i = 0; i < 5; i++) a.sock.send(vxlan(5001, frame(R2, R1, `unicast-${i}`)), port, '127.0.0.1');
    a.sock.send(vxlan(5001, frame(R1, mac(0x299), 'hairpin')), port, '127.0.0.1');
    await settled('five unicasts relayed and the hairpin dropped', () => c.got.length >= 5 && (dp.stats().counters.hairpin ?? 0) >= 1);
    expect(c.got.map((g) => [payloadOf(g.msg.subarray(8)), g.from, g.msg[0]])).toEqual([0, 1, 2, 3, 4].map((i) => [`unicast-${i}`, port, 0x08]));
    expect(a.got).toEqual([]);
    const s = dp.stats().counters;
    expect(s.relayed_frames).toBeGreaterThanOrEqual(4);
    expect(s.hairpin).toBe(1);
  });

  it('answers a frame too big for the VTEP path MTU with ICMP fragmentation-needed into the port', async () => {
    const r = await remote('127.0.0.9');
    remotes.push(r);
    const v = sw.vteps.role('127.0.0.9', r.port, {});
    const b = sw.tenant('blue')!;
    sw.trust(b, v.id, true);
    sw.vteps.setMtu(v, 600);
    r.sock.send(vxlan(5001, frame(BCAST, R1, 'learn')), port, '127.0.0.1');
    await readPort();
    const ip = Buffer.alloc(600);
    ip[0] = 0x45;
    ip.writeUInt16BE(600, 2);
    ip.writeUInt16BE(0x4000, 6);
    ip[8] = 64;
    ip[9] = 17;
    ip.set([10, 1, 0, 1], 12);
    ip.set([10, 1, 0, 2], 16);
    t.testWrite(peer, frame(R1, M1, ip));
    const back = await readPort();
    expect(back).toHaveLength(1);
    expect([back[0]![23], back[0]![34], back[0]![35], back[0]!.readUInt16BE(40)]).toEqual([1, 3, 4, 600 - 50]);
    expect(r.got.filter((g) => g.msg.length > 500)).toEqual([]);
    expect(dp.stats().counters.too_big).toBe(1);
    expect(sw.counters.icmpTooBigSent).toBe(1);
  });

  it('clamps the MSS of SYNs both ways, aligned or not, with a TCP checksum that still verifies', async () => {
    const r = await remote('127.0.0.10');
    remotes.push(r);
    const v = sw.vteps.role('127.0.0.10', r.port, {});
    const b = sw.tenant('blue')!;
    sw.trust(b, v.id, true);
    sw.setMss(b, 1360, 1340);
    r.sock.send(vxlan(5001, frame(BCAST, R1, 'learn')), port, '127.0.0.1');
    t.testWrite(peer, frame(BCAST, M1, 'learn'));
    await readPort();
    await settled("the port's broadcast at the VTEP", () => r.got.length >= 1);
    r.got.length = 0;
    for (const mis of [false, true]) {
      t.testWrite(peer, syn(R1, M1, mis));
      await settled('the SYN at the VTEP', () => r.got.length >= 1);
      const out = r.got.splice(0).map((g) => synInfo(g.msg.subarray(8)));
      expect(out, `port -> VTEP, misaligned ${mis}`).toEqual([{ mss: 1360, csumOk: true }]);
      r.sock.send(vxlan(5001, syn(M1, R1, mis)), port, '127.0.0.1');
      const got = (await readPort()).map(synInfo);
      expect(got, `VTEP -> port, misaligned ${mis}`).toEqual([{ mss: 1360, csumOk: true }]);
    }
    // A smaller MSS stays as it is.
    sw.setMss(b, 1460, 1440);
    t.testWrite(peer, syn(R1, M1));
    await settled('the SYN at the VTEP', () => r.got.length >= 1);
    expect(r.got.splice(0).map((g) => synInfo(g.msg.subarray(8)))).toEqual([{ mss: 1460, csumOk: true }]);
    expect(dp.stats().counters.mss_clamped).toBe(4);
  });
});
