/**
 * Operator UX bugs of #14, as a user meets them with the built command: a version, numbers
 * that are checked (never NaN), and VTEPD_LOG winning over the config's log.level.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { rootLogger, setLogLevel } from '../../src/util/log.js';
import { VERSION } from '../../src/util/paths.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';

describe('vtepd command line: version and numbers', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'src/util/log.ts']), 120_000);

  it('vtepd --version, -V and vtepd version print the package version', async () => {
    for (const args of [['--version'], ['-V']]) expect(await vtepd(args)).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    expect(await vtepd(['version'])).toMatchObject({ code: 0, stdout: `vtepd ${VERSION}\n` });
  });

  it('a non-numeric count or duration is refused by name before anything runs', async () => {
    const cap = await vtepd(['capture', '-t', 'blue', '-w', '/tmp/never.pcap', '--count', 'abc', '-s', '/nonexistent.sock']);
    expect(cap.code).toBe(1);
    expect(cap.stderr).toMatch(/--count: must be an integer 1\.\.2147483648, not "abc"/);
    const secs = await vtepd(['capture', '-t', 'blue', '-w', '/tmp/never.pcap', '--seconds', '1.5', '-s', '/nonexistent.sock']);
    expect(secs.stderr).toMatch(/--seconds: must be an integer 1\.\.86400, not "1\.5"/);
    const demo = await vtepd(['demo', '--seconds', 'abc']);
    expect(demo.code).toBe(1);
    expect(demo.stderr).toMatch(/--seconds: must be an integer 1\.\.3600, not "abc"/);
  });
});

describe('VTEPD_LOG', () => {
  it('wins over the config’s log.level; a bad value is ignored', () => {
    const saved = process.env.VTEPD_LOG;
    try {
      process.env.VTEPD_LOG = 'debug';
      setLogLevel('warn');
      expect(rootLogger.level).toBe('debug');
      delete process.env.VTEPD_LOG;
      setLogLevel('warn');
      expect(rootLogger.level).toBe('warn');
      process.env.VTEPD_LOG = 'loud';
      setLogLevel('info');
      expect(rootLogger.level).toBe('info');
    } finally {
      if (saved === undefined) delete process.env.VTEPD_LOG;
      else process.env.VTEPD_LOG = saved;
      setLogLevel('warn');
    }
  });
});
