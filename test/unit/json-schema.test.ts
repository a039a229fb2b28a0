/**
 * The config's JSON Schema (contrib/vtepd.schema.json) and the bash completion, as a user
 * gets them: the shipped file is what `vtepd schema` prints (regenerate with
 * `npm run schema`), and `vtepd completion bash` is a script bash accepts that completes
 * the CLI's own verbs and flags.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { configJsonSchema, configJsonSchemaText } from '../../src/config/json-schema.js';
import { ensureBuilt, ROOT, vtepd } from '../support/built-cli.js';

const SHIPPED = join(ROOT, 'contrib', 'vtepd.schema.json');

describe('the JSON Schema of the config', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/config/json-schema.ts', 'src/config/schema.ts']), 120_000);

  it('contrib/vtepd.schema.json is the one generated from the zod schema (else: npm run schema)', () => {
    expect(readFileSync(SHIPPED, 'utf8')).toBe(configJsonSchemaText());
  });

  it('vtepd schema prints it', async () => {
    expect(await vtepd(['schema'])).toMatchObject({ code: 0, stdout: readFileSync(SHIPPED, 'utf8') });
  });

  it('says what an editor needs: required keys, no unknown keys, ranges, defaults, string-or-list keys', () => {
    type Node = { required: string[]; additionalProperties: boolean; properties: Record<string, Node>; items: Node; anyOf: Node[] };
    const s = configJsonSchema() as unknown as Node;
    expect(s.required).toEqual(['underlay', 'tenants']);
    expect(s.additionalProperties).toBe(false);
    const underlay = s.properties.underlay!.properties;
    expect(underlay.port).toMatchObject({ type: 'integer', minimum: 1, maximum: 65535, default: 4789 });
    expect(underlay.local!.anyOf).toEqual([{ type: 'string' }, expect.objectContaining({ type: 'array', maxItems: 2 })]);
    const tenant = s.properties.tenants!.items.properties;
    expect(tenant.ageing).toMatchObject({ type: 'integer', default: 300 });
    expect(tenant.flood!.items.anyOf[1]).toMatchObject({ type: 'object', required: ['vtep'], additionalProperties: false });
  });
});

describe('bash completion', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/cli/completion.ts']), 120_000);

  /** What bash completes after `vtepd WORDS...` (the last word is the one being typed). */
  const complete = (script: string, words: string[]) =>
    execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _vtepd; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', 'vtepd', ...words], {
      encoding: 'utf8',
      cwd: ROOT,
    })
      .split('\n')
      .filter(Boolean);

  it('completes verbs, subverbs, flags of the verb typed, and file names after --config', async () => {
    const r = await vtepd(['completion', 'bash']);
    expect(r.code).toBe(0);
    expect(complete(r.stdout, ['st'])).toEqual(['status', 'stats']);
    expect(complete(r.stdout, ['fdb', ''])).toEqual(['show', 'directory', 'add', 'del', 'flush']);
    expect(complete(r.stdout, ['--config', 'x.yaml', 'fdb', 'show', '--t'])).toEqual(['--tenant']);
    expect(complete(r.stdout, ['capture', '-c', '5', '--se'])).toEqual(['--seconds']);
    expect(complete(r.stdout, ['run', '--config', 'package.j'])).toEqual(['package.json']);
  });

  it('completes the values of log level and completion', async () => {
    const r = await vtepd(['completion', 'bash']);
    expect(complete(r.stdout, ['log', 'level', ''])).toEqual(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
    expect(complete(r.stdout, ['log', 'level', '-s', '/run/x.sock', 'de'])).toEqual(['debug']);
    expect(complete(r.stdout, ['completion', ''])).toEqual(['bash']);
    // Once the level is given, no second one is offered.
    expect(complete(r.stdout, ['log', 'level', 'debug', ''])).toEqual([]);
    expect(complete(r.stdout, ['completion', 'bash', ''])).toEqual([]);
  });

  it('refuses a shell it has no script for, by name', async () => {
    expect(await vtepd(['completion', 'zsh'])).toMatchObject({ code: 1, stderr: 'vtepd: completion: no completion for "zsh"; there is one for bash\n' });
  });
});
