/**
 * The key exchange (src/secure/handshake.ts): Noise IK in WireGuard's framing with mac1,
 * mac2, cookies and TAI64N timestamps. Whole handshakes both ways, each refusal with its
 * error value, the cookie path under load, timestamps, and a seeded fuzz of random and
 * mutated messages: nothing throws, nothing mutated is accepted.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AcceptedInitiation,
  COOKIE,
  COOKIE_LEN,
  CookieJar,
  compareTimestamps,
  consumeCookieReply,
  handshakeType,
  INIT,
  INIT_LEN,
  Initiation,
  type InitiationResult,
  type KnownPeer,
  mac1Key,
  RESPONSE,
  RESPONSE_LEN,
  Responder,
  readIndices,
  Tai64nClock,
  tai64n,
} from '../../src/secure/handshake.js';
import { generatePrivateKey, type Identity, identityOf } from '../../src/secure/keys.js';
import { prng } from '../support/prng.js';

const SPOKE = { address: '198.51.100.7', port: 40000 };

function node(): Identity {
  return identityOf(generatePrivateKey());
}

/** A responder that knows the given initiators. */
function hub(id: Identity, known: Identity[], clockMs?: () => number) {
  const peers = new Map<string, KnownPeer>(known.map((k) => [k.publicKey.toString('hex'), { lastTimestamp: null }]));
  const lookups: string[] = [];
  const responder = new Responder(id, {
    peers: (pub) => {
      lookups.push(pub.toString('hex'));
      return peers.get(pub.toString('hex'));
    },
    clockMs,
  });
  return { responder, peers, lookups };
}

function accepted(r: InitiationResult): AcceptedInitiation {
  if (!('respond' in r)) throw new Error(`expected an accepted initiation, got ${JSON.stringify('error' in r ? r : { cookieReply: r.cookieReply.length })}`);
  return r;
}

function errorOf(r: unknown): string | undefined {
  return r && typeof r === 'object' && 'error' in r ? (r as { error: string }).error : undefined;
}

/** Recompute a message's mac1 at `at` for the receiver's public key (what anyone who knows that key can do). */
function remac(m: Buffer, at: number, receiverPublic: Buffer): Buffer {
  const b = Buffer.from(m);
  if (b.length >= at + 16) createHmac('sha256', mac1Key(receiverPublic)).update(b.subarray(0, at)).digest().subarray(0, 16).copy(b, at);
  return b;
}

function remac1(m: Buffer, responderPublic: Buffer): Buffer {
  return remac(m, 116, responderPublic);
}

describe('handshake', () => {
  it('completes both ways with matching session keys', () => {
    const a = node();
    const b = node();
    for (const [ini, res] of [
      [a, b],
      [b, a],
    ]) {
      const clock = new Tai64nClock();
      const { responder } = hub(res, [ini]);
      const init = Initiation.create(ini, res.publicKey, 0x11223344, { timestamps: clock });
      expect(init.message.length).toBe(INIT_LEN);
      expect(handshakeType(init.message)).toBe(INIT);
      expect(readIndices(init.message)).toEqual({ sender: 0x11223344 });
      const got = accepted(responder.consumeInitiation(init.message, SPOKE, false));
      expect(got.peerPublic).toEqual(ini.publicKey);
      expect(got.senderIndex).toBe(0x11223344);
      expect(got.timestamp).toEqual(init.timestamp);
      const { message, keys: rk } = got.respond(0xaabbccdd);
      expect(message.length).toBe(RESPONSE_LEN);
      expect(handshakeType(message)).toBe(RESPONSE);
      expect(readIndices(message)).toEqual({ sender: 0xaabbccdd, receiver: 0x11223344 });
      const done = init.consumeResponse(message);
      if ('error' in done) throw new Error(done.error);
      expect(done.remoteIndex).toBe(0xaabbccdd);
      expect(done.keys.send).toEqual(rk.recv);
      expect(done.keys.recv).toEqual(rk.send);
      expect(done.keys.send.length).toBe(32);
      expect(done.keys.send.equals(done.keys.recv)).toBe(false);
      // Once answered, nothing more (a replayed response cannot make keys twice).
      expect(init.consumeResponse(message)).toEqual({ error: 'initiation already answered' });
      expect(() => got.respond(1)).toThrow('respond() called twice');
    }
  });

  it('two handshakes make different keys', () => {
    const a = node();
    const b = node();
    const clock = new Tai64nClock();
    const { responder } = hub(b, [a]);
    const keys = [1, 2].map((i) => {
      const init = Initiation.create(a, b.publicKey, i, { timestamps: clock });
      const r = accepted(responder.consumeInitiation(init.message, SPOKE, false)).respond(i);
      return r.keys.send.toString('hex');
    });
    expect(keys[0]).not.toBe(keys[1]);
  });

  it('refuses an initiation made for another responder key (bad mac1), also with mac1 forged for ours', () => {
    const a = node();
    const b = node();
    const c = node();
    const { responder, lookups } = hub(b, [a]);
    const init = Initiation.create(a, c.publicKey, 1, { timestamps: new Tai64nClock() });
    expect(responder.consumeInitiation(init.message, SPOKE, false)).toEqual({ error: 'bad mac1' });
    expect(responder.consumeInitiation(remac1(init.message, b.publicKey), SPOKE, false)).toEqual({ error: 'initiation: static key does not decrypt' });
    expect(lookups).toEqual([]);
  });

  it('refuses an initiator it does not know', () => {
    const a = node();
    const b = node();
    const stranger = node();
    const { responder, lookups } = hub(b, [a]);
    const init = Initiation.create(stranger, b.publicKey, 1, { timestamps: new Tai64nClock() });
    expect(responder.consumeInitiation(init.message, SPOKE, false)).toEqual({ error: 'initiation: unknown peer' });
    expect(lookups).toEqual([stranger.publicKey.toString('hex')]);
  });

  it('refuses a bad mac1', () => {
    const a = node();
    const b = node();
    const { responder } = hub(b, [a]);
    const m = Buffer.from(Initiation.create(a, b.publicKey, 1, { timestamps: new Tai64nClock() }).message);
    m[120] ^= 1;
    expect(responder.consumeInitiation(m, SPOKE, false)).toEqual({ error: 'bad mac1' });
  });

  it('refuses a replayed initiation and an older one', () => {
    const a = node();
    const b = node();
    const { responder, peers } = hub(b, [a]);
    const clock = new Tai64nClock(() => 5_000_000_000n); // frozen: the clock must still count up
    const i1 = Initiation.create(a, b.publicKey, 1, { timestamps: clock });
    const i2 = Initiation.create(a, b.publicKey, 2, { timestamps: clock });
    expect(compareTimestamps(i2.timestamp, i1.timestamp)).toBe(1);
    accepted(responder.consumeInitiation(i2.message, SPOKE, false));
    expect(peers.get(a.publicKey.toString('hex'))?.lastTimestamp).toEqual(i2.timestamp);
    expect(responder.consumeInitiation(i2.message, SPOKE, false)).toEqual({ error: 'initiation: replayed (timestamp not newer)' });
    expect(responder.consumeInitiation(i1.message, SPOKE, false)).toEqual({ error: 'initiation: replayed (timestamp not newer)' });
    accepted(responder.consumeInitiation(Initiation.create(a, b.publicKey, 3, { timestamps: clock }).message, SPOKE, false));
  });

  it('refuses every single-byte change of an initiation and of a response', () => {
    const a = node();
    const b = node();
    const { responder } = hub(b, [a]);
    const clock = new Tai64nClock();
    const init = Initiation.create(a, b.publicKey, 7, { timestamps: clock });
    for (let i = 0; i < 132; i++) {
      const m = Buffer.from(init.message);
      m[i] ^= 0x80;
      expect(errorOf(responder.consumeInitiation(m, SPOKE, false)), `byte ${i}`).toBeDefined();
      if (i >= 8 && i < 116) expect(errorOf(responder.consumeInitiation(remac1(m, b.publicKey), SPOKE, false)), `byte ${i} re-MACed`).toMatch(/^initiation: /);
    }
    const { message } = accepted(responder.consumeInitiation(init.message, SPOKE, false)).respond(9);
    for (let i = 0; i < RESPONSE_LEN; i++) {
      const m = Buffer.from(message);
      m[i] ^= 0x01;
      expect(errorOf(init.consumeResponse(m)), `byte ${i}`).toBeDefined();
    }
    expect(init.consumeResponse(message.subarray(0, 91))).toEqual({ error: 'not a handshake response' });
    expect('keys' in init.consumeResponse(message)).toBe(true); // the failures did not spoil the state
  });

  it("covers the response's sender index by mac1 only, as WireGuard does (documented, not a secret)", () => {
    const a = node();
    const b = node();
    const { responder } = hub(b, [a]);
    const init = Initiation.create(a, b.publicKey, 1, { timestamps: new Tai64nClock() });
    const m = Buffer.from(accepted(responder.consumeInitiation(init.message, SPOKE, false)).respond(5).message);
    m.writeUInt32LE(6, 4);
    expect(init.consumeResponse(m)).toEqual({ error: 'bad mac1' });
    const r = init.consumeResponse(remac(m, 60, a.publicKey));
    expect('keys' in r && r.remoteIndex).toBe(6);
  });

  it('refuses a response to another index or from another responder', () => {
    const a = node();
    const b = node();
    const { responder } = hub(b, [a]);
    const clock = new Tai64nClock();
    const i1 = Initiation.create(a, b.publicKey, 1, { timestamps: clock });
    const i2 = Initiation.create(a, b.publicKey, 2, { timestamps: clock });
    const r1 = accepted(responder.consumeInitiation(i1.message, SPOKE, false)).respond(5).message;
    expect(i2.consumeResponse(r1)).toEqual({ error: 'response for another index' });
    const forged = Buffer.from(r1);
    forged.writeUInt32LE(2, 8);
    expect(i2.consumeResponse(forged)).toEqual({ error: 'bad mac1' });
  });
});

describe('cookies under load', () => {
  it('answers an initiation without mac2 with a cookie reply only; the initiation with the cookie is accepted', () => {
    const a = node();
    const b = node();
    let now = 1_000_000;
    const { responder, lookups, peers } = hub(b, [a], () => now);
    const clock = new Tai64nClock();
    const i1 = Initiation.create(a, b.publicKey, 0x0badcafe, { timestamps: clock });
    const r = responder.consumeInitiation(i1.message, SPOKE, true);
    if (!('cookieReply' in r)) throw new Error('expected a cookie reply');
    expect(r.cookieReply.length).toBe(COOKIE_LEN);
    expect(r.cookieReply.length).toBeLessThanOrEqual(i1.message.length); // no amplification
    expect(handshakeType(r.cookieReply)).toBe(COOKIE);
    expect(readIndices(r.cookieReply)).toEqual({ receiver: 0x0badcafe });
    // No DH, no peer lookup, no timestamp taken: the work is all after the cookie.
    expect(lookups).toEqual([]);
    expect(peers.get(a.publicKey.toString('hex'))?.lastTimestamp).toBeNull();

    const cookie = i1.consumeCookieReply(r.cookieReply);
    if (!Buffer.isBuffer(cookie)) throw new Error(cookie.error);
    expect(cookie.length).toBe(16);
    const jar = new CookieJar(() => now);
    jar.store(cookie);
    const i2 = Initiation.create(a, b.publicKey, 0x0badcaff, { timestamps: clock, cookie: jar.current() });
    accepted(responder.consumeInitiation(i2.message, SPOKE, true));

    // The cookie is the source's: from another address or port, another cookie reply.
    const i3 = Initiation.create(a, b.publicKey, 3, { timestamps: clock, cookie: jar.current() });
    expect('cookieReply' in responder.consumeInitiation(i3.message, { ...SPOKE, port: 40001 }, true)).toBe(true);
    expect('cookieReply' in responder.consumeInitiation(i3.message, { ...SPOKE, address: '198.51.100.8' }, true)).toBe(true);
    // Not under load, mac2 is not looked at.
    accepted(responder.consumeInitiation(i3.message, { ...SPOKE, port: 40001 }, false));

    // 120 s later the jar is empty and the responder's secret renewed: the old cookie no longer works.
    now += 120_000;
    expect(jar.current()).toBeNull();
    const i4 = Initiation.create(a, b.publicKey, 4, { timestamps: clock, cookie });
    expect('cookieReply' in responder.consumeInitiation(i4.message, SPOKE, true)).toBe(true);
  });

  it('refuses a forged or misdirected cookie reply', () => {
    const a = node();
    const b = node();
    const { responder } = hub(b, [a]);
    const clock = new Tai64nClock();
    const i1 = Initiation.create(a, b.publicKey, 1, { timestamps: clock });
    const i2 = Initiation.create(a, b.publicKey, 2, { timestamps: clock });
    const r = responder.consumeInitiation(i1.message, SPOKE, true);
    if (!('cookieReply' in r)) throw new Error('expected a cookie reply');
    // Sealed with i1's mac1: useless for i2 even with the index patched.
    const other = Buffer.from(r.cookieReply);
    other.writeUInt32LE(2, 4);
    expect(i2.consumeCookieReply(r.cookieReply)).toEqual({ error: 'cookie reply for another index' });
    expect(i2.consumeCookieReply(other)).toEqual({ error: 'cookie reply does not decrypt' });
    expect(consumeCookieReply(r.cookieReply, node().publicKey, i1.mac1)).toEqual({ error: 'cookie reply does not decrypt' });
    for (let i = 8; i < COOKIE_LEN; i++) {
      const m = Buffer.from(r.cookieReply);
      m[i] ^= 0x10;
      expect(i1.consumeCookieReply(m)).toEqual({ error: 'cookie reply does not decrypt' });
    }
    expect(i1.consumeCookieReply(i1.message)).toEqual({ error: 'not a cookie reply' });
  });
});

describe('TAI64N timestamps', () => {
  it('encodes TAI64N: 2^62 + 10 + seconds, then nanoseconds, big endian', () => {
    expect(tai64n(1_700_000_000_123_456_789n).toString('hex')).toBe(`${(0x400000000000000an + 1_700_000_000n).toString(16)}075bcd15`);
  });

  it('increases strictly, also within one millisecond and when the clock steps back', () => {
    let t = 1_700_000_000_000_000_000n;
    const clock = new Tai64nClock(() => t);
    const seen: Buffer[] = [];
    for (let i = 0; i < 100; i++) seen.push(clock.next());
    t -= 5_000_000_000n;
    seen.push(clock.next());
    t += 60_000_000_000n;
    seen.push(clock.next());
    for (let i = 1; i < seen.length; i++) expect(compareTimestamps(seen[i], seen[i - 1])).toBe(1);
    expect(seen.at(-1)).toEqual(tai64n(t));
  });

  it('the default clock is the wall clock', () => {
    const ts = new Tai64nClock().next();
    const secs = ts.readBigUInt64BE(0) - 0x400000000000000an;
    expect(Math.abs(Number(secs) - Date.now() / 1000)).toBeLessThan(5);
  });
});

describe('message classification', () => {
  it('knows the three messages by type and exact length, nothing else', () => {
    const typed = (t: number, n: number) => {
      const b = Buffer.alloc(n);
      b[0] = t;
      return b;
    };
    expect(handshakeType(typed(1, 148))).toBe(1);
    expect(handshakeType(typed(2, 92))).toBe(2);
    expect(handshakeType(typed(3, 52))).toBe(3);
    for (const b of [typed(1, 147), typed(1, 149), typed(2, 148), typed(3, 92), typed(4, 148), Buffer.alloc(0), Buffer.from([1, 0, 0])]) {
      expect(handshakeType(b)).toBeNull();
      expect(readIndices(b)).toEqual({});
    }
    const b = typed(1, 148);
    b[2] = 1;
    expect(handshakeType(b)).toBeNull();
  });
});

describe('fuzz (seeded)', () => {
  // A generous timeout: 3,000 messages take about 2.5 s on a quiet machine, and the suite must pass beside `npm run bench`.
  it('random and mutated messages never throw and are never accepted', { timeout: 60_000 }, () => {
    const rnd = prng(0x5eed1234);
    const a = node();
    const b = node();
    const { responder } = hub(b, [a]);
    const clock = new Tai64nClock();
    // One accepted initiation: its timestamp is now the newest, so a mutant that still
    // authenticates is a replay (a mac2-only change, legitimately ignored when not under load).
    const init = Initiation.create(a, b.publicKey, rnd.u32(), { timestamps: clock });
    const { message: response } = accepted(responder.consumeInitiation(init.message, SPOKE, false)).respond(rnd.u32());
    // Waiting for its response (mutants of `response`) and for a cookie reply.
    const fresh = Initiation.create(a, b.publicKey, init.senderIndex, { timestamps: clock });
    const lr = responder.consumeInitiation(fresh.message, SPOKE, true);
    if (!('cookieReply' in lr)) throw new Error('expected a cookie reply');
    const cookieReply = Buffer.from(lr.cookieReply);
    // The cookie reply answers `fresh`; make it look like one (the receiver index is not authenticated).
    cookieReply.writeUInt32LE(fresh.senderIndex, 4);
    const seeds = [init.message, response, cookieReply];
    const macs = [(m: Buffer) => remac(m, 116, b.publicKey), (m: Buffer) => remac(m, 60, a.publicKey), (m: Buffer) => m];
    const stats = new Map<string, number>();
    const count = (what: string) => stats.set(what, (stats.get(what) ?? 0) + 1);

    const mutate = (src: Buffer): Buffer => {
      let m: Buffer = Buffer.from(src);
      for (let k = 1 + rnd.below(3); k > 0; k--) {
        const op = rnd.below(20);
        if (op < 8) m[rnd.below(m.length)] ^= 1 << rnd.below(8);
        else if (op < 13) m[rnd.below(m.length)] = rnd.u32() & 0xff;
        else if (op < 16) {
          // Splice a run from another valid message (keys, macs, indices in the wrong place).
          const from = seeds[rnd.below(seeds.length)];
          const start = rnd.below(from.length);
          from.copy(m, rnd.below(m.length), start, start + 1 + rnd.below(32));
        } else if (op < 18 && m.length >= 4) m.writeUInt32LE(rnd.u32(), 4 * rnd.below(m.length >> 2));
        else if (op === 18) m = m.subarray(0, rnd.below(m.length));
        else m = Buffer.concat([m, rnd.bytes(1 + rnd.below(8))]);
        if (m.length === 0) m = rnd.bytes(1 + rnd.below(160));
      }
      return m;
    };

    const N = 3000;
    for (let i = 0; i < N; i++) {
      const kind = i % 3;
      const src = seeds[kind];
      let m = i % 50 === 0 ? rnd.bytes(src.length) : mutate(src);
      if (i % 50 === 0) m.writeUInt32LE(kind + 1, 0);
      if (rnd.below(3)) m = macs[kind](m); // an attacker who knows the receiver's public key makes mac1 right
      if (m.equals(src)) continue;
      const r = responder.consumeInitiation(m, SPOKE, rnd.below(4) === 0);
      expect('respond' in r, `mutant ${i} accepted as an initiation`).toBe(false);
      const rr = fresh.consumeResponse(m);
      expect('keys' in rr, `mutant ${i} accepted as a response`).toBe(false);
      const c = fresh.consumeCookieReply(m);
      expect(Buffer.isBuffer(c), `mutant ${i} accepted as a cookie reply`).toBe(false);
      count(
        kind === 0
          ? 'cookieReply' in r
            ? 'cookie'
            : (r as { error: string }).error
          : kind === 1
            ? (rr as { error: string }).error
            : (c as { error: string }).error,
      );
      expect(() => handshakeType(m)).not.toThrow();
      expect(() => readIndices(m)).not.toThrow();
    }
    if (process.env.SHOW_FUZZ_STATS) console.log(stats);
    // The mutants reached every layer: the Noise decryption, the replay check, the cookie path.
    for (const e of [
      'initiation: static key does not decrypt',
      'initiation: replayed (timestamp not newer)',
      'cookie',
      'response: payload does not decrypt',
      'cookie reply does not decrypt',
    ]) {
      expect(stats.get(e) ?? 0, `${e}: ${JSON.stringify([...stats])}`).toBeGreaterThan(5);
    }
    // The genuine messages still work after all that.
    expect(Buffer.isBuffer(fresh.consumeCookieReply(cookieReply))).toBe(true);
    expect('keys' in fresh.consumeResponse(accepted(responder.consumeInitiation(fresh.message, SPOKE, false)).respond(3).message)).toBe(true);
  });
});
