/**
 * A config from YAML text, for tests of the config reader: the config itself, or every
 * error as `path: message` (src/config/load.ts).
 */
import { expect } from 'vitest';
import { formatConfigError, type Config } from '../../src/config/config.js';
import { parseConfig } from '../../src/config/load.js';

/** The config, or a failure that shows every error. */
export function ok(text: string): Config {
  const r = parseConfig(text);
  if (!r.ok) expect.fail(r.errors.map(formatConfigError).join('\n'));
  return r.config;
}
/** Every error as `path: message`, in order. */
export function errors(text: string): string[] {
  const r = parseConfig(text);
  if (r.ok) expect.fail('config unexpectedly valid');
  return r.errors.map(formatConfigError);
}
