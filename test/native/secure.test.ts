/**
 * Encrypted tunnels in the C fast path (native/secure.h) against the real addon over
 * loopback, judged by Node's own crypto (createCipheriv / createDecipheriv), not by the
 * addon's encoder: a frame of an encrypted tenant leaves sealed (and its plaintext never
 * appears on the wire), packets Node seals are opened and delivered, a bad tag, an unknown
 * index, a replayed counter and plain VXLAN each deliver nothing and move exactly their
 * counter; sealed liveness messages, key confirmation and roaming come up as events; a
 * super-frame is sealed one tag per segment; both ciphers.
 */
import dgram from 'node:dgram';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeDatapath, type DpEvent } from '../../src/native/datapath.js';
import { EV_ENDPOINT, EV_KEY_USED, EV_SECURE, IN_VTEP, native, type Cipher } from '../../src/native/addon.js';
import { decodeEvents } from '../../src/native/datapath.js';
import { testAddon } from '../support/test-addon.js';
import { frame, mac } from '../support/frames.js';
import { until, untilSteady } from '../../lab/wait.js';

const n = native();
const t = testAddon();
const VNI = 5001;
const TENANT = 1;
const VTEP = 1;
const PORT = 1;
const M1 = mac(0x101); // behind the port
const R1 = mac(0x201); // behind the VTEP
const RX_INDEX = 0x11223344; // ours: the VTEP seals toward it
const TX_INDEX = 0xa1b2c3d4; // the VTEP's: we seal toward it
const CIPHERS: Cipher[] = ['aes-256-gcm', 'chacha20-poly1305'];

interface Remote {
  sock: dgram.Socket;
  address: string;
  port: number;
  got: Buffer[];
}

function remote(address: string): Promise<Remote> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const r: Remote = { sock, address, port: 0, got: [] };
    sock.on('message', (msg) => r.got.push(Buffer.from(msg)));
    sock.once('error', reject);
    sock.bind(0, address, () => {
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

/** The transport format, written here from the spec: header, AEAD of P with the header as AAD, tag. */
function seal(cipher: Cipher, key: Buffer, index: number, counter: bigint, p: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h[0] = cipher === 'aes-256-gcm' ? 4 : 5;
  h.writeUInt32LE(index, 4);
  h.writeBigUInt64LE(counter, 8);
  const nonce = Buffer.alloc(12);
  h.copy(nonce, 4, 8, 16);
  const c = createCipheriv(cipher as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(h);
  return Buffer.concat([h, c.update(p), c.final(), c.getAuthTag()]);
}

/** Open a transport datagram with Node's crypto: header fields and plaintext (throws on a bad tag). */
function open(key: Buffer, d: Buffer): { type: number; index: number; counter: bigint; p: Buffer } {
  const h = d.subarray(0, 16);
  const cipher = h[0] === 4 ? 'aes-256-gcm' : h[0] === 5 ? 'chacha20-poly1305' : undefined;
  if (!cipher || h[1] !== 0 || h[2] !== 0 || h[3] !== 0) throw new Error(`not a transport datagram: ${h.toString('hex')}`);
  const nonce = Buffer.alloc(12);
  h.copy(nonce, 4, 8, 16);
  const dc = createDecipheriv(cipher as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
  dc.setAAD(h);
  dc.setAuthTag(d.subarray(d.length - 16));
  const p = Buffer.concat([dc.update(d.subarray(16, d.length - 16)), dc.final()]);
  return { type: h[0]!, index: h.readUInt32LE(4), counter: h.readBigUInt64LE(8), p };
}

/** A liveness-looking payload ("\0VTP" then bytes). */
const liveness = (s: string) => Buffer.concat([Buffer.from([0, 0x56, 0x54, 0x50]), Buffer.from(s)]);

/** An IPv4 TCP super-frame M1 -> R1 behind a virtio_net_hdr (TSO, checksum partial). */
function tcpSuper(payload: Buffer, mss: number): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 20 + payload.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  ip.set([10, 1, 0, 1], 12);
  ip.set([10, 1, 0, 2], 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += ip.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  ip.writeUInt16BE(~s & 0xffff, 10);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(1000, 4);
  tcp[12] = 5 << 4;
  tcp[13] = 0x18; // ACK PSH
  tcp.writeUInt16BE(65535, 14);
  // checksum partial: the folded pseudo-header sum
  let ps = 0x0a01 + 0x0001 + 0x0a01 + 0x0002 + 6 + 20 + payload.length;
  while (ps > 0xffff) ps = (ps & 0xffff) + (ps >>> 16);
  tcp.writeUInt16BE(ps, 16);
  const f = frame(R1, M1, Buffer.concat([ip, tcp, payload]));
  const vh = Buffer.alloc(10);
  vh[0] = 1; // NEEDS_CSUM
  vh[1] = 1; // TCPV4
  vh.writeUInt16LE(14 + 40, 2);
  vh.writeUInt16LE(mss, 4);
  vh.writeUInt16LE(14 + 20, 6);
  vh.writeUInt16LE(16, 8);
  return Buffer.concat([vh, f]);
}

interface Env {
  dp: NativeDatapath;
  port: number;
  events: DpEvent[];
  peer: number;
  r: Remote;
  txKey: Buffer;
  rxKey: Buffer;
}

const fds: number[] = [];
const socks: Remote[] = [];
const dps: NativeDatapath[] = [];

afterEach(async () => {
  for (const dp of dps.splice(0)) dp.stop();
  for (const r of socks.splice(0)) await new Promise<void>((res) => r.sock.close(() => res()));
  for (const fd of fds.splice(0)) n.fdClose(fd);
});

/** A data path with one tenant (encryption required), one port, one VTEP with both keys. */
async function make(cipher: Cipher, vtepAddress = '127.0.0.21'): Promise<Env> {
  let dp: NativeDatapath | undefined;
  let port = 0;
  for (let i = 0; !dp; i++) {
    port = 20000 + Math.floor(Math.random() * 20000);
    try {
      dp = new NativeDatapath({ local: '127.0.0.1', port, sourcePorts: 2, cipher });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i > 20) throw e;
    }
  }
  dps.push(dp);
  const events: DpEvent[] = [];
  dp.start((evs) => events.push(...evs));
  dp.tenantSet(TENANT, VNI);
  const [a, b] = t.testSocketPair();
  fds.push(a, b);
  dp.portSet(PORT, TENANT, a);
  const r = await remote(vtepAddress);
  socks.push(r);
  dp.vtepSet(VTEP, vtepAddress, r.port, { fixedSourcePort: true });
  dp.tenantAccept(TENANT, VTEP, true);
  dp.fdbSet(TENANT, R1, { kind: 'vtep', vtepId: VTEP });
  dp.fdbSet(TENANT, M1, { kind: 'port', portId: PORT });
  dp.tenantEncrypt(TENANT, true);
  const txKey = randomBytes(32);
  const rxKey = randomBytes(32);
  dp.keyTxSet(VTEP, TX_INDEX, txKey);
  dp.keyRxSet(RX_INDEX, VTEP, rxKey);
  expect(dp.cipherName()).toBe(cipher);
  return { dp, port, events, peer: b, r, txKey, rxKey };
}

const counters = (e: Env) => e.dp.stats().counters;

/** Wait until the data path has read `total` underlay datagrams in all and is quiet. */
async function settleRx(e: Env, total: number): Promise<void> {
  await until(
    `${total} datagrams read`,
    async () => counters(e).underlay_rx_packets ?? 0,
    (v) => v >= total,
    10_000,
    5,
  );
  // The counters move in the worker; its events reach JS later (the notify, then the loop):
  // every key-used and endpoint record the data path counted must have arrived.
  const arrived = (ty: DpEvent['type']) => e.events.filter((ev) => ev.type === ty).length;
  await until(
    'the counted key-used and endpoint events to reach JS',
    async () => counters(e),
    (c) => arrived('key-used') === (c.key_used_events ?? 0) && arrived('endpoint') === (c.endpoint_events ?? 0),
    10_000,
    5,
  );
  await untilSteady('the data path to go quiet', async () => [counters(e), e.events.length, e.r.got.length], 10_000, 10);
}

function readPort(e: Env): Buffer[] {
  const out: Buffer[] = [];
  for (let f = t.testRead(e.peer, 0); f; f = t.testRead(e.peer, 0)) out.push(f);
  return out;
}

/** The `code` of what fn throws (undefined if it does not). */
function codeOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
  return undefined;
}

const send = (from: Remote, e: Env, d: Buffer) => from.sock.send(d, e.port, '127.0.0.1');

describe.each(CIPHERS)('encrypted tunnels, sealing with %s', (cipher) => {
  it('seals a frame of an encrypted tenant toward the VTEP: Node opens it to VXLAN + the frame; no plaintext on the wire', async () => {
    const e = await make(cipher);
    const frames = [0, 1, 2].map((i) => frame(R1, M1, `top-secret-payload-${i}-${'x'.repeat(100 * i)}`));
    for (const f of frames) t.testWrite(e.peer, f);
    await until(
      'three datagrams at the VTEP',
      async () => e.r.got.length,
      (v) => v >= 3,
      10_000,
      5,
    );
    await untilSteady('the data path to go quiet', async () => [counters(e), e.r.got.length], 10_000, 10);
    expect(e.r.got).toHaveLength(3);
    const opened = e.r.got.map((d) => open(e.txKey, d));
    expect(opened.map((o) => [o.type, o.index, o.counter])).toEqual([0n, 1n, 2n].map((c) => [cipher === 'aes-256-gcm' ? 4 : 5, TX_INDEX, c]));
    expect(opened.map((o) => o.p)).toEqual(frames.map((f) => vxlan(VNI, f)));
    for (const d of e.r.got) {
      expect(d.includes(Buffer.from('top-secret'))).toBe(false);
      expect(d.length).toBe(32 + 8 + frames[e.r.got.indexOf(d)]!.length);
    }
    const c = counters(e);
    expect(c.secure_tx_packets).toBe(3);
    expect(c.underlay_tx_packets).toBe(3);
    // The tenant's inner bytes do not count the 40 bytes of tunnel around each frame.
    expect(e.dp.stats().tenants![TENANT]!.txBytes).toBe(frames.reduce((s, f) => s + f.length, 0));
  });

  it('opens packets Node sealed with the receive key and delivers the frame; bad tag, unknown index, replay and plain VXLAN deliver nothing', async () => {
    const e = await make(cipher);
    const f0 = frame(M1, R1, 'sealed-by-node-0');
    send(e.r, e, seal(cipher, e.rxKey, RX_INDEX, 0n, vxlan(VNI, f0)));
    await settleRx(e, 1);
    expect(readPort(e)).toEqual([f0]);

    const before = counters(e);
    const good = seal(cipher, e.rxKey, RX_INDEX, 1n, vxlan(VNI, frame(M1, R1, 'one')));
    const bad = Buffer.from(good);
    bad[bad.length - 20] = bad[bad.length - 20]! ^ 1; // a ciphertext byte
    const badTag = Buffer.from(good);
    badTag[badTag.length - 1] = badTag[badTag.length - 1]! ^ 0x80;
    const wrongKey = seal(cipher, randomBytes(32), RX_INDEX, 2n, vxlan(VNI, frame(M1, R1, 'forged')));
    const unknown = seal(cipher, e.rxKey, RX_INDEX + 1, 3n, vxlan(VNI, frame(M1, R1, 'unknown')));
    const replay = seal(cipher, e.rxKey, RX_INDEX, 0n, vxlan(VNI, f0));
    const plain = vxlan(VNI, frame(M1, R1, 'in the clear'));
    const sent: [Buffer, number][] = [
      [bad, 1],
      [badTag, 2],
      [wrongKey, 3],
      [unknown, 2],
      [replay, 3],
      [plain, 2],
    ];
    let total = 1;
    for (const [d, times] of sent) {
      for (let i = 0; i < times; i++) send(e.r, e, d);
      total += times;
    }
    await settleRx(e, total);
    expect(readPort(e)).toEqual([]);
    const after = counters(e);
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    expect({
      secure_bad_tag: delta('secure_bad_tag'),
      secure_unknown_index: delta('secure_unknown_index'),
      secure_replay: delta('secure_replay'),
      plaintext_refused: delta('plaintext_refused'),
      secure_rx_packets: delta('secure_rx_packets'),
    }).toEqual({ secure_bad_tag: 6, secure_unknown_index: 2, secure_replay: 3, plaintext_refused: 2, secure_rx_packets: 0 });

    // The window was not moved by any of them: counter 1 still goes through, once.
    send(e.r, e, good);
    send(e.r, e, good);
    await settleRx(e, total + 2);
    expect(readPort(e)).toEqual([frame(M1, R1, 'one')]);
    expect(counters(e).secure_replay! - (before.secure_replay ?? 0)).toBe(4);
    // Out of order inside the window is fine; far behind the top is not.
    send(e.r, e, seal(cipher, e.rxKey, RX_INDEX, 5000n, vxlan(VNI, frame(M1, R1, 'top'))));
    send(e.r, e, seal(cipher, e.rxKey, RX_INDEX, 4000n, vxlan(VNI, frame(M1, R1, 'in-window'))));
    send(e.r, e, seal(cipher, e.rxKey, RX_INDEX, 10n, vxlan(VNI, frame(M1, R1, 'too-old'))));
    await settleRx(e, total + 5);
    expect(readPort(e).map((f) => f.subarray(14, 14 + 9).toString())).toEqual(['top\0\0\0\0\0\0', 'in-window']);
    expect(counters(e).secure_replay! - (before.secure_replay ?? 0)).toBe(5);
  });

  it('raises secure (sealed liveness), key-used once per key, and endpoint only for authenticated packets from a new source', async () => {
    const e = await make(cipher);
    const msg = liveness('probe-42');
    send(e.r, e, seal(cipher, e.rxKey, RX_INDEX, 0n, msg));
    send(e.r, e, seal(cipher, e.rxKey, RX_INDEX, 1n, vxlan(VNI, frame(M1, R1, 'x'))));
    await settleRx(e, 2);
    const byType = (ty: DpEvent['type']) => e.events.filter((ev) => ev.type === ty);
    expect(byType('secure')).toEqual([
      {
        type: 'secure',
        tenantId: 0,
        ingress: { kind: 'vtep', vtepId: VTEP },
        srcMac: '00:00:00:00:00:00',
        frame: msg,
        outer: { address: '127.0.0.21', port: e.r.port },
      },
    ]);
    expect(byType('key-used')).toEqual([
      {
        type: 'key-used',
        tenantId: 0,
        ingress: { kind: 'vtep', vtepId: VTEP },
        srcMac: '00:00:00:00:00:00',
        keyIndex: RX_INDEX,
        outer: { address: '127.0.0.21', port: e.r.port },
      },
    ]);
    expect(byType('endpoint')).toEqual([]);
    expect(counters(e).secure_control_rx).toBe(1);

    // Forged packets from elsewhere move nothing; authenticated ones from elsewhere do.
    const other = await remote('127.0.0.22');
    socks.push(other);
    send(other, e, seal(cipher, randomBytes(32), RX_INDEX, 7n, vxlan(VNI, frame(M1, R1, 'forged'))));
    send(other, e, seal(cipher, e.rxKey, RX_INDEX + 9, 8n, vxlan(VNI, frame(M1, R1, 'unknown'))));
    await settleRx(e, 4);
    expect(byType('endpoint')).toEqual([]);
    for (let i = 0; i < 5; i++) send(other, e, seal(cipher, e.rxKey, RX_INDEX, BigInt(10 + i), vxlan(VNI, frame(M1, R1, `moved-${i}`))));
    await settleRx(e, 9);
    const moved = byType('endpoint');
    expect(moved.length).toBeGreaterThanOrEqual(1);
    expect(moved.length).toBeLessThanOrEqual(5);
    for (const ev of moved) expect(ev).toMatchObject({ ingress: { kind: 'vtep', vtepId: VTEP }, outer: { address: '127.0.0.22', port: other.port } });
    // The packets are the VTEP's (the key's), delivered, whatever their outer source.
    expect(readPort(e).length).toBe(6);
    expect(byType('key-used')).toHaveLength(1);
    // A new key under a new index is confirmed once again; replacing an index resets it.
    const next = randomBytes(32);
    e.dp.keyRxSet(RX_INDEX + 1, VTEP, next);
    send(e.r, e, seal(cipher, next, RX_INDEX + 1, 0n, msg));
    send(e.r, e, seal(cipher, next, RX_INDEX + 1, 1n, msg));
    await settleRx(e, 11);
    expect(byType('key-used').map((ev) => ev.keyIndex)).toEqual([RX_INDEX, RX_INDEX + 1]);
  });

  it('seals liveness messages with sendSecure (ENOKEY without a send key)', async () => {
    const e = await make(cipher);
    const msg = liveness('reply-7');
    e.dp.sendSecure(VTEP, msg);
    e.dp.sendSecure(VTEP, msg, { df: false });
    await until(
      'two sealed messages at the VTEP',
      async () => e.r.got.length,
      (v) => v >= 2,
      10_000,
      5,
    );
    expect(e.r.got.map((d) => open(e.txKey, d)).map((o) => [o.index, o.counter, o.p.equals(msg)])).toEqual([
      [TX_INDEX, 0n, true],
      [TX_INDEX, 1n, true],
    ]);
    expect(counters(e).secure_control_tx).toBe(2);
    e.dp.keyTxDel(VTEP);
    expect(codeOf(() => e.dp.sendSecure(VTEP, msg))).toBe('ENOKEY');
    expect(codeOf(() => e.dp.sendSecure(2, msg))).toBe('ENOENT');
  });

  it('seals a super-frame one tag per segment, equal-sized segments in one train', async () => {
    const e = await make(cipher);
    const [a, b] = t.testSocketPair();
    fds.push(a, b);
    e.dp.portSet(2, TENANT, a, { vnetHdr: true });
    const payload = Buffer.alloc(4500);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
    const sf = tcpSuper(payload, 1000);
    const segments = t.testSegment(sf);
    expect(segments).toHaveLength(5);
    t.testWrite(b, sf);
    await until(
      'five datagrams at the VTEP',
      async () => e.r.got.length,
      (v) => v >= 5,
      10_000,
      5,
    );
    await untilSteady('the data path to go quiet', async () => [counters(e), e.r.got.length], 10_000, 10);
    const opened = e.r.got.map((d) => open(e.txKey, d));
    expect(opened.map((o) => o.counter)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(opened.map((o) => o.p)).toEqual(segments.map((s) => vxlan(VNI, s)));
    expect(e.r.got.map((d) => d.length)).toEqual([1, 1, 1, 1, 0.5].map((k) => 32 + 8 + 54 + 1000 * k));
    const c = counters(e);
    expect(c.secure_tx_packets).toBe(5);
    expect(c.gso_segments).toBe(5);
    expect(c.underlay_gso_sends).toBe(1); // one UDP_SEGMENT train: the receiver's GRO split still works
  });
});

describe('encrypted tunnels: policy and keys', () => {
  it('a tenant with encryption off sends plain VXLAN (even with a send key) and takes plain and sealed frames', async () => {
    const e = await make('aes-256-gcm');
    e.dp.tenantEncrypt(TENANT, false);
    t.testWrite(e.peer, frame(R1, M1, 'plain-out'));
    await until(
      'the frame at the VTEP',
      async () => e.r.got.length,
      (v) => v >= 1,
      10_000,
      5,
    );
    expect(e.r.got[0]).toEqual(vxlan(VNI, frame(R1, M1, 'plain-out')));
    send(e.r, e, vxlan(VNI, frame(M1, R1, 'plain-in')));
    send(e.r, e, seal('chacha20-poly1305', e.rxKey, RX_INDEX, 0n, vxlan(VNI, frame(M1, R1, 'sealed-in'))));
    await settleRx(e, 2);
    expect(readPort(e)).toEqual([frame(M1, R1, 'plain-in'), frame(M1, R1, 'sealed-in')]);
  });

  it('required without a send key: nothing leaves in clear (secure_no_key), flooding included', async () => {
    const e = await make('chacha20-poly1305');
    e.dp.keyTxDel(VTEP);
    t.testWrite(e.peer, frame(R1, M1, 'no-key'));
    expect(e.dp.transmit(TENANT, frame('ff:ff:ff:ff:ff:ff', M1, 'flood'), [], [VTEP])).toBe(0);
    await until(
      'the drops',
      async () => counters(e).secure_no_key ?? 0,
      (v) => v >= 2,
      10_000,
      5,
    );
    await untilSteady('the data path to go quiet', async () => [counters(e), e.r.got.length], 10_000, 10);
    expect(e.r.got).toEqual([]);
    expect(counters(e).secure_no_key).toBe(2);
    // With the key, flooding seals too.
    e.dp.keyTxSet(VTEP, TX_INDEX, e.txKey);
    const bc = frame('ff:ff:ff:ff:ff:ff', M1, 'flood');
    expect(e.dp.transmit(TENANT, bc, [], [VTEP])).toBe(1);
    await until(
      'the flood at the VTEP',
      async () => e.r.got.length,
      (v) => v >= 1,
      10_000,
      5,
    );
    expect(open(e.txKey, e.r.got[0]!).p).toEqual(vxlan(VNI, bc));
  });

  it('handshake messages go up as control events; malformed ones are dropped and counted', async () => {
    const e = await make('aes-256-gcm');
    const hs = [Buffer.alloc(148), Buffer.alloc(92), Buffer.alloc(52)];
    hs.forEach((b, i) => {
      b[0] = i + 1;
      b.fill(0xab, 4);
    });
    for (const b of hs) send(e.r, e, b);
    const bad = [Buffer.concat([hs[0]!, Buffer.alloc(1)]), hs[1]!.subarray(0, 91), Buffer.from([3, 1, 0, 0, ...Buffer.alloc(48)])];
    for (const b of bad) send(e.r, e, b);
    await settleRx(e, 6);
    expect(e.events.filter((ev) => ev.type === 'control').map((ev) => ev.frame)).toEqual(hs);
    expect(e.events.filter((ev) => ev.type === 'control').map((ev) => ev.ingress)).toEqual(hs.map(() => ({ kind: 'vtep', vtepId: VTEP })));
    expect([counters(e).handshake_rx, counters(e).handshake_malformed]).toEqual([3, 3]);
  });

  it('key tables: bounds, validation and deletion with the VTEP', async () => {
    const e = await make('aes-256-gcm');
    const k = randomBytes(32);
    e.dp.keyRxSet(2, VTEP, k);
    e.dp.keyRxSet(3, VTEP, k);
    expect(codeOf(() => e.dp.keyRxSet(4, VTEP, k))).toBe('ENOSPC');
    e.dp.keyRxSet(3, VTEP, randomBytes(32)); // replacing is fine
    e.dp.keyRxDel(2);
    e.dp.keyRxDel(2); // absent: not an error
    e.dp.keyRxSet(4, VTEP, k);
    expect(() => e.dp.keyRxSet(0, VTEP, k)).toThrow(/index/);
    expect(codeOf(() => e.dp.keyRxSet(5, 99, k))).toBe('ENOENT');
    expect(() => e.dp.keyRxSet(5, VTEP, Buffer.alloc(16))).toThrow(/32 bytes/);
    expect(codeOf(() => e.dp.keyTxSet(99, 1, k))).toBe('ENOENT');
    expect(codeOf(() => e.dp.tenantEncrypt(7, true))).toBe('ENOENT');
    // Deleting the VTEP takes its keys: its old index is unknown afterwards.
    e.dp.vtepDel(VTEP);
    e.dp.vtepSet(VTEP, '127.0.0.21', e.r.port, { fixedSourcePort: true });
    e.dp.keyRxSet(2, VTEP, k);
    e.dp.keyRxSet(3, VTEP, k);
    e.dp.keyRxSet(5, VTEP, k); // three again: the old ones went with the VTEP
    send(e.r, e, seal('aes-256-gcm', e.rxKey, RX_INDEX, 0n, vxlan(VNI, frame(M1, R1, 'old'))));
    await settleRx(e, 1);
    expect(counters(e).secure_unknown_index).toBe(1);
    expect(codeOf(() => e.dp.sendSecure(VTEP, liveness('x')))).toBe('ENOKEY');
  });

  it('the event records of the new types decode (C encoder -> decodeEvents)', () => {
    const addr = Buffer.alloc(16);
    addr.set([10, 0, 0, 7]);
    const base = { inKind: IN_VTEP, tenantId: 0, inId: 42, family: 4, encap: 1, outerAddr: addr, outerPort: 51820 };
    const p = liveness('payload');
    const buf = Buffer.concat([
      t.encodeEvent({ ...base, type: EV_SECURE }, p),
      t.encodeEvent({ ...base, type: EV_KEY_USED, outId: 0xfedcba98 }, Buffer.alloc(0)),
      t.encodeEvent({ ...base, type: EV_ENDPOINT }, Buffer.alloc(0)),
    ]);
    const common = { tenantId: 0, ingress: { kind: 'vtep', vtepId: 42 }, srcMac: '00:00:00:00:00:00', outer: { address: '10.0.0.7', port: 51820 } };
    expect(decodeEvents(buf)).toEqual([
      { type: 'secure', ...common, frame: p },
      { type: 'key-used', ...common, keyIndex: 0xfedcba98 },
      { type: 'endpoint', ...common },
    ]);
  });
});
