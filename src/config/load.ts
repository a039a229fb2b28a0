/**
 * Reading a config: YAML text or a file, parsed with source positions so every error says
 * where it is (line and column) and errors come in the order they appear, then checked by
 * validateConfig (src/config/schema.ts).
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { ConfigResult } from './config.js';
import { validateConfig, type Locate, type SourcePosition } from './schema.js';

/** Parse and validate YAML text; every error and warning carries its line and column. */
export function parseConfig(text: string): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return { ok: false, errors: problems.map((e) => ({ path: '(root)', message: e.message, ...lineCounter.linePos(e.pos[0]) })) };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, errors: [{ path: '(root)', message: (err as Error).message }] };
  }
  return validateConfig(data, locator(doc, lineCounter));
}

/** Read, parse and validate a YAML file. A file that cannot be read is one error that names it once. */
export function loadConfig(path: string): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ path: '(root)', message: `cannot read the config file: ${readError(err as NodeJS.ErrnoException)}` }] };
  }
  return parseConfig(text);
}

function readError(e: NodeJS.ErrnoException): string {
  if (e.code === 'ENOENT') return 'no such file (give its path with --config)';
  if (e.code === 'EACCES') return 'permission denied';
  if (e.code === 'EISDIR') return 'it is a directory';
  return e.code ?? e.message;
}

/**
 * Where a config path is in the source: the node's start (for `key`, the key's own start:
 * an unknown key). A missing node is placed at its nearest present parent: its start for
 * the line and column, its end for the order (after what the parent does hold).
 */
function locator(doc: Document, lc: LineCounter): Locate {
  const at = (offset: number, lineOf = offset): SourcePosition => ({ offset, ...lc.linePos(lineOf) });
  // A map key YAML read as a number (the 100 of `vlans: { 100: blue }`) is the string "100" in the path.
  const asRead = (path: readonly PropertyKey[]) => path.map((p) => (typeof p === 'string' && /^\d+$/.test(p) ? Number(p) : p));
  const rangeOf = (path: readonly PropertyKey[]) => {
    const node = path.length === 0 ? doc.contents : (doc.getIn(path, true) ?? doc.getIn(asRead(path), true));
    return (node as { range?: [number, number, number] } | null | undefined)?.range;
  };
  return (path, what) => {
    if (what === 'key' && path.length > 0) {
      const parent = doc.getIn(path.slice(0, -1), true) ?? doc.getIn(asRead(path.slice(0, -1)), true);
      const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(path.at(-1))) : undefined;
      const range = isScalar(pair?.key) ? pair.key.range : undefined;
      if (range) return at(range[0]);
    }
    const range = rangeOf(path);
    if (range) return at(range[0]);
    for (let p = path.slice(0, -1); ; p = p.slice(0, -1)) {
      const r = rangeOf(p);
      if (r) return at(r[1], r[0]);
      if (p.length === 0) return undefined;
    }
  };
}
