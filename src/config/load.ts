/**
 * Reading a config: YAML text or a file, parsed with source positions so errors come in
 * the order they appear, then checked by validateConfig (src/config/schema.ts).
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { ConfigResult } from './config.js';
import { validateConfig } from './schema.js';

/** Parse and validate YAML text. `source` (a file name) is used in YAML syntax errors. */
export function parseConfig(text: string, source?: string): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return {
      ok: false,
      errors: problems.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        const where = source ? `${source}:${line}:${col}` : `line ${line}, column ${col}`;
        return { path: '(root)', message: `${where}: ${e.message}` };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, errors: [{ path: '(root)', message: (err as Error).message }] };
  }
  return validateConfig(data, (path) => offsetOf(doc, path));
}

/** Read, parse and validate a YAML file. */
export function loadConfig(path: string): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ path: '(root)', message: `cannot read ${path}: ${(err as Error).message}` }] };
  }
  return parseConfig(text, path);
}

/** Source offset of the node at `path`; for a missing key, the end of its parent. */
function offsetOf(doc: Document, path: PropertyKey[]): number {
  for (let p = path, missing = false; ; p = p.slice(0, -1), missing = true) {
    const node = p.length === 0 ? doc.contents : doc.getIn(p, true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return missing ? range[1] : range[0];
    if (p.length === 0) return 0;
  }
}
