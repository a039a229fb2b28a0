/** A metrics endpoint on every address is worth a warning; one on a given address is not. */
import { expect, it } from 'vitest';
import { parseListen } from '../../src/config/schema.js';
import { wildcardWarning } from '../../src/daemon/metrics.js';

const listen = (text: string) => {
  const p = parseListen(text);
  if (!('value' in p) || !p.value) throw new Error(`bad listen ${text}`);
  return p.value;
};

it('warns for 0.0.0.0 and [::], not for a loopback or a management address', () => {
  expect(wildcardWarning(listen('0.0.0.0:9477'))).toMatch(/every address \(0\.0\.0\.0:9477\)/);
  expect(wildcardWarning(listen('[::]:9477'))).toMatch(/every address \(\[::\]:9477\)/);
  expect(wildcardWarning(listen('[0:0::0]:9477'))).toMatch(/every address/);
  expect(wildcardWarning(listen('127.0.0.1:9477'))).toBeUndefined();
  expect(wildcardWarning(listen('[::1]:9477'))).toBeUndefined();
  expect(wildcardWarning(listen('192.0.2.10:9477'))).toBeUndefined();
});
