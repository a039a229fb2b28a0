/**
 * docs/configuration.md is the one YAML reference: its block under "Configuration
 * reference" names every key the schema accepts and no other, and where it states a
 * default ("default 300", "known (default)", "the default shown"), it is the schema's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';

const ROOT = join(import.meta.dirname, '..', '..');

interface Node {
  properties?: Record<string, Node>;
  items?: Node;
  anyOf?: Node[];
  default?: unknown;
  /** A mapping of any keys of a pattern (a trunk's vlans: { 100: blue }): its keys are values, not config keys. */
  propertyNames?: unknown;
}

/** Every key path the schema accepts (`tenants[].ports[].tap`), with its default if any. */
function schemaKeys(node: Node, path = '', out = new Map<string, Node>()): Map<string, Node> {
  for (const [k, child] of Object.entries(node.properties ?? {})) {
    const p = path ? `${path}.${k}` : k;
    out.set(p, child);
    schemaKeys(child, p, out);
  }
  if (node.items) schemaKeys(node.items, `${path}[]`, out);
  for (const alt of node.anyOf ?? []) schemaKeys(alt, path, out);
  return out;
}

/** Every key path of a parsed YAML value, with the value at it. */
function docKeys(value: unknown, path = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (Array.isArray(value)) for (const item of value) docKeys(item, `${path}[]`, out);
  else if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      out.set(p, v);
      docKeys(v, p, out);
    }
  return out;
}

/** The comment of each key written on a line of its own (with its continuation lines). */
function lineComments(block: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack: { col: number; seg: string }[] = [];
  let last: string | undefined;
  for (const line of block.split('\n')) {
    const m = /^(\s*)(- )?([A-Za-z]+):(.*)$/.exec(line);
    if (!m) {
      const more = /^\s*#(.*)$/.exec(line);
      if (more && last !== undefined) out.set(last, `${out.get(last)} ${more[1]!.trim()}`);
      continue;
    }
    const dash = m[2] ? m[1]!.length : -1;
    const col = m[1]!.length + (m[2]?.length ?? 0);
    while (stack.length > 0 && stack[stack.length - 1]!.col >= (dash >= 0 ? dash : col)) stack.pop();
    if (dash >= 0) stack.push({ col: dash, seg: '[]' });
    stack.push({ col, seg: m[3]! });
    last = stack.map((s, i) => (s.seg === '[]' || i === 0 ? s.seg : `.${s.seg}`)).join('');
    out.set(last, /\s#\s?(.*)$/.exec(m[4]!)?.[1] ?? '');
  }
  return out;
}

/** The default a comment states: `default X`, `X (default)`, or the value shown (`default shown`, `the defaults shown`). */
function statedDefault(comment: string, shown: unknown): { value: unknown } | undefined {
  if (/defaults? shown/.test(comment)) return { value: shown };
  const after = /\bdefault:? ([^\s,;:)]+)/.exec(comment);
  const before = /(\S+) \(default[),]/.exec(comment);
  const m = [after && { at: after.index, text: after[1]! }, before && { at: before.index, text: before[1]! }]
    .filter((x) => x !== null)
    .sort((a, b) => a.at - b.at)[0];
  if (!m) return undefined;
  return { value: parse(m.text.replace(/\.$/, '')) };
}

describe('docs/configuration.md, the YAML reference', () => {
  const text = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const block = /## Configuration reference[\s\S]*?```yaml\n([\s\S]*?)```/.exec(text)?.[1] ?? '';
  const schema = schemaKeys(configJsonSchema() as Node);
  const doc = docKeys(parse(block));
  const comments = lineComments(block);

  it('documents every key the schema accepts', () => {
    expect([...schema.keys()].filter((k) => !doc.has(k))).toEqual([]);
  });

  it('documents no key the schema does not accept', () => {
    const inMapping = (k: string) => [...schema].some(([p, node]) => node.propertyNames !== undefined && k.startsWith(`${p}.`));
    expect([...doc.keys()].filter((k) => !schema.has(k) && !inMapping(k))).toEqual([]);
  });

  it('states every default the schema has, and states it right', () => {
    const wrong: string[] = [];
    for (const [key, node] of schema) {
      if (node.default === undefined) continue;
      const d = node.default;
      // An object default whose every field has its own default is checked field by field.
      const fields = Object.values(node.properties ?? {});
      if (fields.length > 0 && fields.every((f) => f.default !== undefined)) continue;
      // A key inside a flow mapping ({ moves: 5, ... }) has the comment of the line's key.
      const own = comments.get(key);
      const parent = key.replace(/\.[A-Za-z]+$/, '');
      const stated = statedDefault(own ?? comments.get(parent) ?? '', doc.get(key));
      if (!stated) wrong.push(`${key}: states no default (the schema's is ${JSON.stringify(d)})`);
      else if (JSON.stringify(stated.value) !== JSON.stringify(d))
        wrong.push(`${key}: states ${JSON.stringify(stated.value)}, the schema's is ${JSON.stringify(d)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('says what ageing does as the code does it (idle since the last frame, swept every ageing/4)', () => {
    expect(comments.get('tenants[].ageing')).toMatch(/after the last frame from it.*every ageing\/4, 100 ms\.\.1 s.*Static and directory entries never age/);
  });
});
