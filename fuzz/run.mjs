#!/usr/bin/env node
// `npm run fuzz`: build the libFuzzer targets in fuzz/ (clang, -fsanitize=fuzzer,address,
// undefined) and run each for a bounded time, then print a summary and fail on any crash.
//
//   FUZZ_SECONDS=60      seconds per target (default 60)
//   FUZZ_TARGETS=a,b     only these targets (default: every fuzz/fuzz_*.c, and the TypeScript
//                        ones: handshake, fuzz/handshake.mjs, run from dist/)
//   node fuzz/run.mjs --build-only
//   build/fuzz/fuzz_decap CRASHFILE      reproduce one input (the run prints the path)
//
// Installs clang and its sanitizer runtimes (Debian: clang, libclang-rt-dev) when they are
// missing, like scripts/test-deps.mjs does for the tests' tools. Seeds come from
// fuzz/corpus/<target>/ (read only); new inputs go to build/fuzz/corpus/<target>/, crash
// reproducers to build/fuzz/artifacts/.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const native = join(root, 'native');
const out = join(root, 'build', 'fuzz');
const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`FUZZ_SECONDS must be a positive number, not ${process.env.FUZZ_SECONDS}`);

// The native objects each target links (besides its own harness), compiled once each from
// native/*.c. The fast-path targets link every C file of native/: the data path's per-batch
// functions (native/dp_private.h) are called without threads, the shipped code as it is.
const FASTPATH = readdirSync(native).filter((f) => f.endsWith('.c'));
const TARGETS = {
  fuzz_vxlan: ['vxlan.c'],
  fuzz_gre: ['gre.c'],
  fuzz_csum: ['csum.c'],
  fuzz_gso: ['gso.c', 'csum.c'],
  fuzz_gro: ['gso.c', 'csum.c'],
  fuzz_decap: FASTPATH,
  fuzz_encap: FASTPATH,
  fuzz_secure: FASTPATH,
};
// native/secure.c seals and opens with OpenSSL's EVP: libcrypto 3 (always there: Node's
// libssl3 dependency; the headers from libssl-dev, else the copy Node ships).
const CRYPTO = ['-l:libcrypto.so.3'];
const OPENSSL_INC = existsSync('/usr/include/openssl/evp.h') ? [] : ['-idirafter', '/usr/include/node'];

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** A clang that links -fsanitize=fuzzer,address,undefined; installs one if none does. */
function findClang() {
  const probe = (cc) => {
    const src = join(out, 'probe.c');
    writeFileSync(src, '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n');
    return spawnSync(cc, ['-fsanitize=fuzzer,address,undefined', src, '-o', join(out, 'probe')], { stdio: 'ignore' }).status === 0;
  };
  mkdirSync(out, { recursive: true });
  const candidates = () => [process.env.CC, 'clang', ...[19, 18, 17, 16, 15, 14].map((v) => `clang-${v}`)].filter((c) => c && has(c));
  for (const cc of candidates()) if (probe(cc)) return cc;
  if (process.getuid?.() !== 0) throw new Error('fuzz: no clang with libFuzzer and not root; apt-get install clang libclang-rt-dev');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  console.log('fuzz: installing clang libclang-rt-dev');
  execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'clang', 'libclang-rt-dev'], { stdio: 'inherit', env });
  for (const cc of candidates()) if (probe(cc)) return cc;
  throw new Error('fuzz: clang installed but cannot link -fsanitize=fuzzer,address,undefined');
}

function build(cc, targets) {
  const flags = [
    '-std=gnu11',
    '-g',
    '-O1',
    '-D_GNU_SOURCE',
    '-fno-omit-frame-pointer',
    '-fsanitize=fuzzer,address,undefined',
    '-fno-sanitize-recover=all',
    '-fno-strict-aliasing',
    '-Wall',
    '-Wno-unused-parameter',
    '-Wno-unused-function',
    `-I${native}`,
    ...OPENSSL_INC,
    '-pthread',
  ];
  // native/*.c: one object each (-fsanitize=fuzzer-no-link: instrumented, no second main).
  const objs = join(out, 'obj');
  mkdirSync(objs, { recursive: true });
  const obj = (s) => join(objs, s.replace(/\.c$/, '.o'));
  const t0 = Date.now();
  for (const s of new Set(targets.flatMap((t) => TARGETS[t]))) {
    const cflags = flags.map((f) => (f === '-fsanitize=fuzzer,address,undefined' ? '-fsanitize=fuzzer-no-link,address,undefined' : f));
    execFileSync(cc, [...cflags, '-c', join(native, s), '-o', obj(s)], { stdio: 'inherit' });
  }
  console.log(`fuzz: compiled native/*.c (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  for (const t of targets) {
    const t1 = Date.now();
    const libs = TARGETS[t].includes('secure.c') ? CRYPTO : [];
    execFileSync(cc, [...flags, join(here, `${t}.c`), ...TARGETS[t].map(obj), ...libs, '-o', join(out, t)], { stdio: 'inherit' });
    console.log(`fuzz: built ${t} (${((Date.now() - t1) / 1000).toFixed(1)} s)`);
  }
}

/** Run one target for `seconds`; its execs, coverage and whether it crashed. */
function runTarget(t) {
  const work = join(out, 'corpus', t);
  const seeds = join(here, 'corpus', t);
  const artifacts = join(out, 'artifacts');
  mkdirSync(work, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  const args = [
    work,
    ...(existsSync(seeds) ? [seeds] : []),
    `-max_total_time=${seconds}`,
    '-print_final_stats=1',
    `-artifact_prefix=${artifacts}/${t}-`,
    '-rss_limit_mb=4096',
    '-timeout=10',
    '-max_len=70000',
  ];
  return new Promise((resolve) => {
    const child = spawn(join(out, t), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d) => {
      log = (log + d.toString()).slice(-200_000);
    });
    child.on('exit', (code, signal) => {
      const execs = Number(/stat::number_of_executed_units:\s+(\d+)/.exec(log)?.[1] ?? 0);
      const last = [...log.matchAll(/#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/g)].pop();
      const crash = /Test unit written to (\S+)/.exec(log)?.[1] ?? null;
      const failed = code !== 0 || signal !== null;
      if (failed) process.stderr.write(`\n==== ${t}: exit ${code ?? signal}\n${log.slice(-8000)}\n`);
      resolve({
        t,
        execs,
        cov: Number(last?.[1] ?? 0),
        ft: Number(last?.[2] ?? 0),
        corpus: Number(last?.[3] ?? 0),
        crash,
        failed,
        seeds: existsSync(seeds) ? readdirSync(seeds).length : 0,
      });
    });
  });
}

/**
 * The TypeScript targets: Node scripts run from the built dist/ for FUZZ_SECONDS, failing
 * with a non-zero exit. handshake: the key exchange's parsers (fuzz/handshake.mjs).
 */
const JS_TARGETS = { handshake: 'handshake.mjs' };

/** Run one TypeScript target for `seconds`; it prints its own summary. */
function runJsTarget(t) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, JS_TARGETS[t])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FUZZ_SECONDS: String(seconds) },
    });
    let log = '';
    const keep = (d) => {
      log = (log + d.toString()).slice(-100_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code, signal) => {
      const failed = code !== 0 || signal !== null;
      if (failed) process.stderr.write(`\n==== ${t}: exit ${code ?? signal}\n${log.slice(-8000)}\n`);
      const execs = Number(/ok, (\d+) messages/.exec(log)?.[1] ?? 0);
      resolve({ t, execs, cov: 0, ft: 0, corpus: 0, crash: /written to (\S+)/.exec(log)?.[1] ?? null, failed, seeds: 0 });
    });
  });
}

const only = process.env.FUZZ_TARGETS
  ? process.env.FUZZ_TARGETS.split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  : [...Object.keys(TARGETS), ...Object.keys(JS_TARGETS)];
const known = [...Object.keys(TARGETS), ...Object.keys(JS_TARGETS)];
for (const t of only) if (!known.includes(t)) throw new Error(`fuzz: unknown target ${t} (known: ${known.join(', ')})`);
const cOnly = only.filter((t) => TARGETS[t]);
const cc = cOnly.length ? findClang() : null;
console.log(`fuzz: ${cc ?? 'node'}, ${only.length} target(s), ${seconds} s each`);
if (cc) build(cc, cOnly);
if (process.argv.includes('--build-only')) process.exit(0);

const results = [];
for (const t of only) {
  const r = JS_TARGETS[t] ? await runJsTarget(t) : await runTarget(t);
  results.push(r);
  console.log(`fuzz: ${t}: ${r.execs} execs, cov ${r.cov}, ft ${r.ft}${r.failed ? `, FAILED${r.crash ? ` (reproducer ${r.crash})` : ''}` : ''}`);
}
const pad = (s, n) => String(s).padEnd(n);
const rpad = (s, n) => String(s).padStart(n);
console.log(
  `\n${pad('target', 12)} ${rpad('seconds', 7)} ${rpad('execs', 11)} ${rpad('execs/s', 8)} ${rpad('cov', 6)} ${rpad('ft', 6)} ${rpad('seeds', 5)} ${rpad('corpus', 6)}  result`,
);
for (const r of results) {
  console.log(
    `${pad(r.t, 12)} ${rpad(seconds, 7)} ${rpad(r.execs, 11)} ${rpad(Math.round(r.execs / seconds), 8)} ${rpad(r.cov, 6)} ${rpad(r.ft, 6)} ${rpad(r.seeds, 5)} ${rpad(r.corpus, 6)}  ${r.failed ? `CRASH ${r.crash ?? ''}` : 'ok'}`,
  );
}
const bad = results.filter((r) => r.failed);
if (bad.length) {
  console.error(`\nfuzz: ${bad.length} target(s) failed; reproduce with: build/fuzz/<target> <reproducer>`);
  process.exit(1);
}
console.log(`\nfuzz: no crashes in ${results.length} target(s)`);
