#!/usr/bin/env node
// Maintainers: run after `npm install` changes package-lock.json.
//
// The registry this project's machines reach serves only this platform's builds of
// packages with per-platform binaries (rollup, esbuild, …); the others answer 404, so npm
// leaves them out of package-lock.json, and `npm ci` then refuses the lock ("Missing: …
// from lock file"). This records each missing optional dependency as an optional entry with
// its exact version. `npm ci` skips optional packages it cannot install on this platform,
// so nothing else changes.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const [key, entry] of Object.entries(pkgs)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    // Resolution looks in this package's own node_modules, then upwards.
    const candidates = [];
    let base = key;
    for (;;) {
      candidates.push(`${base ? `${base}/` : ''}node_modules/${name}`);
      const i = base.lastIndexOf('node_modules/');
      if (i < 0) break;
      base = base.slice(0, i).replace(/\/$/, '');
      if (!base) {
        candidates.push(`node_modules/${name}`);
        break;
      }
    }
    if (candidates.some((c) => pkgs[c])) continue;
    if (!/^\d+\.\d+\.\d+/.test(spec)) continue;
    pkgs[`node_modules/${name}`] = { version: spec, dev: entry.dev || undefined, optional: true };
    added++;
  }
}
const sorted = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
lock.packages = sorted;
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
console.log(`lock-optional: recorded ${added} optional platform package(s)`);
