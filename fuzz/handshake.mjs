#!/usr/bin/env node
// Mutation fuzzer of the key exchange (src/secure/handshake.ts), run from the built dist/:
//
//   npm run build:ts && node fuzz/handshake.mjs
//   FUZZ_SECONDS=60        how long (default 10)
//   FUZZ_SEED=1234         the PRNG seed (default: from the clock; printed)
//   FUZZ_ITERATIONS=n      stop after n messages instead (reproduces a failure exactly)
//
// Everything is deterministic for a seed: keys, ephemerals, nonces, cookie secrets and the
// clocks come from one seeded PRNG, so a failure reruns with the FUZZ_SEED and
// FUZZ_ITERATIONS it prints. Each round makes genuine messages (an initiation the
// responder accepts, its response, a cookie reply to a second initiation), then feeds
// mutants of them (bit flips, bytes, interesting integers, low-order X25519 points,
// splices across messages, truncation, extension, mac1 recomputed as anyone who knows the
// receiver's public key can) to every parser: the responder (under load or not), the
// initiator waiting for a response, the cookie-reply readers, handshakeType and
// readIndices. Exit 1 if anything throws, 2 if a mutant is accepted (except a response whose
// only change is the responder's index with mac1 recomputed: indices are outside the Noise
// transcript, as in WireGuard, so an on-path attacker can change them; a denial of service
// at most); the message is
// printed in hex and written to build/fuzz/artifacts/handshake-<seed>-<n>.hex.
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'src', 'secure');
if (!existsSync(join(dist, 'handshake.js'))) {
  console.error('fuzz/handshake: dist/src/secure/handshake.js is missing; build first: npm run build:ts');
  process.exit(1);
}
const hs = await import(pathToFileURL(join(dist, 'handshake.js')).href);
const keys = await import(pathToFileURL(join(dist, 'keys.js')).href);

const seconds = Number(process.env.FUZZ_SECONDS ?? 10);
if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`FUZZ_SECONDS must be a positive number, not ${process.env.FUZZ_SECONDS}`);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 0x1_0000_0000) >>> 0;
const maxIterations = process.env.FUZZ_ITERATIONS ? Number(process.env.FUZZ_ITERATIONS) : Number.POSITIVE_INFINITY;

// mulberry32: a seeded PRNG (test input and, here only, the keys; never for real keys).
let state = seed;
const u32 = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
};
const below = (n) => (n > 0 ? u32() % n : 0);
const bytes = (n) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = u32() & 0xff;
  return b;
};

// Low-order and edge points of Curve25519 (u-coordinates, little endian): DH with them must fail cleanly.
const POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
].map((h) => Buffer.from(h, 'hex'));
const U32S = [0, 1, 2, 3, 4, 5, 0x7fffffff, 0x80000000, 0xffffffff, 148, 92, 52];
// Where the 32-byte keys are: initiation ephemeral at 8, response ephemeral at 12.
const KEY_AT = { 1: [8], 2: [12], 3: [] };
const MAC1_AT = { 1: 116, 2: 60 };

let ms = 1_000_000;
let ns = 1_700_000_000_000_000_000n;
const clockMs = () => ms;
const a = keys.identityOf(keys.generatePrivateKey(bytes));
const b = keys.identityOf(keys.generatePrivateKey(bytes));
const peers = new Map([[a.publicKey.toString('hex'), { lastTimestamp: null }]]);
const responder = new hs.Responder(b, { peers: (k) => peers.get(k.toString('hex')), clockMs, random: bytes });
const timestamps = new hs.Tai64nClock(() => ns);
const from = { address: '192.0.2.1', port: 51820 };

function remac(m, receiverPublic) {
  const at = MAC1_AT[m[0]];
  if (!at || m.length < at + 16) return m;
  const k = hs.mac1Key(receiverPublic);
  createHmac('sha256', k).update(m.subarray(0, at)).digest().subarray(0, 16).copy(m, at);
  return m;
}

function mutate(src, seeds) {
  let m = Buffer.from(src);
  for (let k = 1 + below(4); k > 0; k--) {
    const op = below(24);
    if (m.length === 0) m = bytes(1 + below(160));
    if (op < 6) m[below(m.length)] ^= 1 << below(8);
    else if (op < 9) m[below(m.length)] = [0, 0xff, 0x7f, 0x80, u32() & 0xff][below(5)];
    else if (op < 12 && m.length >= 4) m.writeUInt32LE(U32S[below(U32S.length)], 4 * below(m.length >> 2));
    else if (op < 14) {
      const at = KEY_AT[src[0]] ?? [];
      if (at.length) POINTS[below(POINTS.length)].copy(m, at[below(at.length)]);
    } else if (op < 18) {
      const other = seeds[below(seeds.length)];
      const start = below(other.length);
      other.copy(m, below(m.length), start, start + 1 + below(48));
    } else if (op < 20) m = m.subarray(0, below(m.length));
    else if (op < 21) m = Buffer.concat([m, bytes(1 + below(16))]);
    else if (op < 22) {
      const at = below(m.length);
      m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]);
    } else {
      const at = below(m.length);
      m = Buffer.concat([m.subarray(0, at), bytes(1), m.subarray(at)]);
    }
  }
  return m;
}

/** A response that differs from the genuine one only in the sender index (bytes 4-7) and the mac1 over it. */
function indexOnlyChange(m, genuine) {
  return (
    m.length === genuine.length &&
    m.subarray(0, 4).equals(genuine.subarray(0, 4)) &&
    m.subarray(8, 60).equals(genuine.subarray(8, 60)) &&
    m.subarray(76).equals(genuine.subarray(76))
  );
}

let indexOnly = 0;
let iterations = 0;
let rounds = 0;
const counts = new Map();
const count = (r) => {
  const k = r && typeof r === 'object' ? (r.error ?? (r.cookieReply ? 'cookie reply' : Buffer.isBuffer(r) ? 'buffer' : 'accepted')) : String(r);
  counts.set(k, (counts.get(k) ?? 0) + 1);
};

function fail(code, what, m, err) {
  const dir = join(root, 'build', 'fuzz', 'artifacts');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `handshake-${seed}-${iterations}.hex`);
  writeFileSync(file, `${m.toString('hex')}\n`);
  console.error(`fuzz/handshake: ${what} at message ${iterations} (seed ${seed})`);
  console.error(`  message ${m.length} bytes: ${m.toString('hex')}`);
  if (err) console.error(err.stack ?? err);
  console.error(`  written to ${file}\n  reproduce: FUZZ_SEED=${seed} FUZZ_ITERATIONS=${iterations} node fuzz/handshake.mjs`);
  process.exit(code);
}

const deadline = Date.now() + seconds * 1000;
console.log(`fuzz/handshake: seed ${seed}, ${Number.isFinite(maxIterations) ? `${maxIterations} messages` : `${seconds} s`}`);
while (iterations < maxIterations && Date.now() < deadline) {
  // A round: genuine messages, each accepted once, then mutants.
  rounds++;
  ns += 1_000_000_000n;
  ms += 1000;
  const init = hs.Initiation.create(a, b.publicKey, u32(), { timestamps, random: bytes });
  const ok = responder.consumeInitiation(init.message, from, false);
  if (!ok.respond) fail(3, `a genuine initiation was refused (${ok.error})`, init.message);
  const response = ok.respond(u32()).message;
  const waiting = hs.Initiation.create(a, b.publicKey, init.senderIndex, { timestamps, random: bytes });
  const lr = responder.consumeInitiation(waiting.message, from, true);
  if (!lr.cookieReply) fail(3, 'no cookie reply under load', waiting.message);
  const cookieReply = Buffer.from(lr.cookieReply);
  const seeds = [init.message, response, cookieReply];
  let answered = false;

  for (let i = 0; i < 500 && iterations < maxIterations; i++) {
    iterations++;
    const src = seeds[below(3)];
    let m = below(40) === 0 ? bytes([148, 92, 52, below(200)][below(4)]) : mutate(src, seeds);
    if (below(3)) m = remac(Buffer.from(m), m[0] === 2 ? a.publicKey : b.publicKey);
    if (seeds.some((s) => s.equals(m))) continue;
    let r;
    try {
      r = responder.consumeInitiation(m, from, below(4) === 0);
      count(r);
      if (r.respond) fail(2, 'a mutant was accepted as an initiation', m);
      r = init.consumeResponse(m);
      count(r);
      if (r.keys) {
        // Outside Noise, the indices are covered by mac1 alone (as in WireGuard): anyone who
        // knows the initiator's public key may change the responder's index, and that is a
        // denial of service at most. Anything else accepted is a failure.
        if (!indexOnlyChange(m, response)) fail(2, 'a mutant was accepted as a response', m);
        indexOnly++;
        answered = true;
      }
      r = waiting.consumeResponse(m);
      if (r.keys) fail(2, 'a mutant was accepted as a response (by another initiation with the same index)', m);
      r = waiting.consumeCookieReply(m);
      count(r);
      if (Buffer.isBuffer(r)) fail(2, 'a mutant was accepted as a cookie reply (index-checked)', m);
      r = hs.consumeCookieReply(m, b.publicKey, waiting.mac1);
      if (Buffer.isBuffer(r) && !m.subarray(8).equals(cookieReply.subarray(8))) fail(2, 'a mutant was accepted as a cookie reply', m);
      hs.handshakeType(m);
      hs.readIndices(m);
    } catch (e) {
      fail(1, 'a parser threw', m, e);
    }
    if (answered) break; // the initiation is spent: a new round
  }
  // The genuine messages still work after their mutants.
  if (!Buffer.isBuffer(waiting.consumeCookieReply(cookieReply))) fail(3, 'the genuine cookie reply was refused after the mutants', cookieReply);
  if (!answered && !init.consumeResponse(response).keys) fail(3, 'the genuine response was refused after the mutants', response);
}
const top = [...counts].sort((x, y) => y[1] - x[1]);
console.log(`fuzz/handshake: ok, ${iterations} messages in ${rounds} rounds, nothing thrown, nothing accepted`);
if (indexOnly)
  console.log(
    `  (${indexOnly} responses with only the sender index changed and mac1 recomputed were accepted, as WireGuard accepts them: indices are not in the Noise transcript)`,
  );
for (const [k, n] of top) console.log(`  ${String(n).padStart(8)}  ${k}`);
