/**
 * The Noise IK core (src/secure/noise.ts) against published test vectors for
 * Noise_IK_25519_ChaChaPoly_SHA256: cacophony's and snow's, as snow ships them
 * (test/fixtures/noise-ik-25519-chachapoly-sha256.json says where from). Each vector:
 * both messages of the handshake byte for byte, the payloads each side reads, the
 * handshake hash where given, then the transport messages with the Split() keys.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../src/secure/keys.js';
import { aeadNonce, type CipherState, hkdf2, IkHandshake, PROTOCOL_NAME } from '../../src/secure/noise.js';

interface Vector {
  protocol_name: string;
  _file: string;
  init_prologue: string;
  init_static: string;
  init_ephemeral: string;
  init_remote_static: string;
  resp_prologue: string;
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash?: string;
  messages: { payload: string; ciphertext: string }[];
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/noise-ik-25519-chachapoly-sha256.json', import.meta.url), 'utf8')) as { vectors: Vector[] };
const hex = (s: string) => Buffer.from(s, 'hex');

describe('Noise_IK_25519_ChaChaPoly_SHA256 test vectors', () => {
  it('has the vectors of both sources', () => {
    expect(fixture.vectors.map((v) => v._file)).toEqual(['tests/vectors/cacophony.txt', 'tests/vectors/snow.txt']);
  });

  for (const v of fixture.vectors) {
    it(`matches ${v._file}`, () => {
      expect(v.protocol_name).toBe(PROTOCOL_NAME);
      expect(publicKeyOf(hex(v.resp_static))).toEqual(hex(v.init_remote_static));
      const ini = IkHandshake.initiator(hex(v.init_prologue), hex(v.init_static), hex(v.init_remote_static));
      const res = IkHandshake.responder(hex(v.resp_prologue), hex(v.resp_static));

      const [m1, m2, ...transport] = v.messages;
      const c1 = ini.writeMessage1(hex(v.init_ephemeral), hex(m1.payload));
      expect(Buffer.isBuffer(c1) && c1.toString('hex')).toBe(m1.ciphertext);
      const r1 = res.readMessage1(hex(m1.ciphertext));
      expect('payload' in r1 && r1.payload.toString('hex')).toBe(m1.payload);
      expect(res.rs).toEqual(publicKeyOf(hex(v.init_static)));

      const c2 = res.writeMessage2(hex(v.resp_ephemeral), hex(m2.payload));
      expect(Buffer.isBuffer(c2) && c2.toString('hex')).toBe(m2.ciphertext);
      const r2 = ini.readMessage2(hex(m2.ciphertext));
      expect('payload' in r2 && r2.payload.toString('hex')).toBe(m2.payload);

      expect(ini.handshakeHash).toEqual(res.handshakeHash);
      if (v.handshake_hash) expect(ini.handshakeHash.toString('hex')).toBe(v.handshake_hash);

      const i = ini.split();
      const r = res.split();
      transport.forEach((m, n) => {
        // Messages alternate: initiator, responder, initiator, ...
        const [send, recv]: CipherState[] = n % 2 === 0 ? [i.i2r, r.i2r] : [r.r2i, i.r2i];
        expect(send.encryptWithAd(Buffer.alloc(0), hex(m.payload)).toString('hex')).toBe(m.ciphertext);
        expect(recv.decryptWithAd(Buffer.alloc(0), hex(m.ciphertext))?.toString('hex')).toBe(m.payload);
      });
    });
  }
});

describe('Noise primitives as the spec states them', () => {
  it('HKDF is the HMAC chain of the Noise spec', async () => {
    const { createHmac } = await import('node:crypto');
    const ck = Buffer.alloc(32, 7);
    const ikm = Buffer.from('input key material');
    const temp = createHmac('sha256', ck).update(ikm).digest();
    const o1 = createHmac('sha256', temp)
      .update(Buffer.from([1]))
      .digest();
    const o2 = createHmac('sha256', temp)
      .update(Buffer.concat([o1, Buffer.from([2])]))
      .digest();
    expect(hkdf2(ck, ikm)).toEqual([o1, o2]);
  });

  it('the nonce is 4 zero bytes then the counter little endian', () => {
    expect(aeadNonce(0x0102030405060708n).toString('hex')).toBe('000000000807060504030201');
  });
});
