/** The terminal line format of the logger (JSON elsewhere is pino's own). */
import { describe, expect, it } from 'vitest';
import { prettyLine } from '../../src/util/log.js';

describe('prettyLine', () => {
  it('writes time, level, namespace, message and the other fields', () => {
    const time = new Date(2026, 0, 2, 3, 4, 5, 67).getTime();
    const line = prettyLine(
      JSON.stringify({ level: 40, time, pid: 1, name: 'vtepd', ns: 'daemon', tenant: 'blue', err: 'two words', n: 3, msg: 'reload refused' }),
    );
    expect(line).toBe('03:04:05.067 WARN  daemon: reload refused tenant=blue err="two words" n=3\n');
  });
  it('passes through what is not JSON', () => {
    expect(prettyLine('plain')).toBe('plain\n');
  });
});
