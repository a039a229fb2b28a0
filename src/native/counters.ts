/**
 * The data path's global counters as the API and metrics show them: names in the addon's
 * order (`counterNames()`), each with its help text and whether it counts drops, read
 * once from the same list the C code is built from (native/counters.def). A counter the
 * file does not describe (an addon newer than the file) still shows, as traffic.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from './addon.js';
import { packageRoot } from '../util/paths.js';

export interface CounterInfo {
  name: string;
  help: string;
  /** Counted in the "Drops" section of counters.def (a drop or error reason). */
  drop: boolean;
}

let cached: CounterInfo[] | undefined;

/** Parse counters.def text: C(name, "help") lines; those after the "Drops" heading are drops. */
export function parseCountersDef(text: string): Map<string, { help: string; drop: boolean }> {
  const out = new Map<string, { help: string; drop: boolean }>();
  let drop = false;
  for (const line of text.split('\n')) {
    if (/^\s*\/\*\s*Drops\b/i.test(line)) drop = true;
    else if (/^\s*\/\*\s*[A-Z]/.test(line) && !/^\s*\/\*\s*Drops\b/i.test(line) && out.size > 0) drop = false;
    const m = /^\s*C\(\s*(\w+)\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)/.exec(line);
    if (m) out.set(m[1]!, { help: m[2]!, drop });
  }
  return out;
}

function defFile(): string | undefined {
  const p = join(packageRoot, 'native', 'counters.def');
  return existsSync(p) ? p : undefined;
}

/** Every global counter of the addon, in its order, with help and drop flag. */
export function counterInfo(): CounterInfo[] {
  if (cached) return cached;
  const file = defFile();
  const def = file ? parseCountersDef(readFileSync(file, 'utf8')) : new Map<string, { help: string; drop: boolean }>();
  cached = native().counterNames().map((name) => ({ name, help: def.get(name)?.help ?? name, drop: def.get(name)?.drop ?? false }));
  return cached;
}
