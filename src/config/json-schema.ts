/**
 * The JSON Schema of a config file, derived from the zod schema (src/config/schema.ts), for
 * editors: contrib/vtepd.schema.json is this, printed by `vtepd schema` and written by
 * `npm run schema`; a unit test keeps the shipped file equal to it. It describes what a
 * config may hold, key by key (types, ranges, enums, defaults, no unknown keys); the checks
 * across fields (unique names, address families, roles) are vtepd check's.
 */
import { z } from 'zod';
import { ONE_OF, Root, STRING_OR } from './schema.js';

type JsonSchema = Record<string, unknown>;

/** The JSON Schema (draft 7) of what a config file may hold. */
export function configJsonSchema(): JsonSchema {
  const schema = z.toJSONSchema(Root, {
    // Draft 7: what yaml-language-server (editors' YAML support) reads.
    target: 'draft-7',
    io: 'input',
    // Strings that are parsed (addresses, MACs, keys) are strings to an editor.
    unrepresentable: 'any',
    override: (ctx) => {
      const alt = STRING_OR.get(ctx.zodSchema as unknown as z.core.$ZodType);
      if (alt) ctx.jsonSchema.anyOf = alt.anyOf.map((s) => part(s as z.ZodType));
      const one = ONE_OF.get(ctx.zodSchema as unknown as z.core.$ZodType);
      if (one) ctx.jsonSchema.oneOf = [...one.oneOf];
    },
  }) as JsonSchema;
  return {
    $schema: schema.$schema,
    title: 'vtepd configuration (vtepd.yaml)',
    description: 'The config file of vtepd run and vtepd check; every key is in docs/configuration.md.',
    ...schema,
  };
}

/** One alternative of a stringOr, without its own $schema. */
function part(s: z.ZodType): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** As shipped in contrib/vtepd.schema.json: two-space JSON and a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
