/**
 * `vtepd demo` as a user types it, without building anything: -t for the seconds (-s is
 * --socket on every verb), --clean of a demo that was never kept, and the iperf3 interval
 * lines the demo prints while it measures; a tool missing from PATH is said as the last line.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { iperfInterval } from '../../lab/demo.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';

/** The built CLI with a PATH that has only node, ip and ping (no iperf3, no etcd). */
async function withOnly(args: string[]) {
  const bin = mkdtempSync(join(tmpdir(), 'vtepd-path-'));
  try {
    for (const [name, target] of [
      ['node', process.execPath],
      ['ip', '/usr/sbin/ip'],
      ['ping', '/usr/bin/ping'],
    ])
      symlinkSync(target!, join(bin, name!));
    return await vtepd(args, '', { ...process.env, PATH: bin });
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

describe('vtepd demo options', () => {
  beforeAll(() => ensureBuilt(['src/cli/cli.ts', 'lab/demo.ts', 'lab/demo-keep.ts']), 120_000);

  it('takes the iperf3 seconds as -t or --seconds, checked as an integer; -s is not the seconds', async () => {
    const t = await vtepd(['demo', '-t', 'abc']);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/--seconds: must be an integer 1\.\.3600, not "abc"/);
    const s = await vtepd(['demo', '-s', '3']);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("unknown option '-s'");
  });

  it('--clean of an id that was never kept says so and touches nothing', async () => {
    const r = await vtepd(['demo', '--clean', 'vd000000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vtepd: demo --clean: no demo kept as "vd000000" \((kept here: vd[0-9a-f]{6}.*|none is kept here)\)\n$/);
    const bad = await vtepd(['demo', '--clean', '../../etc/passwd']);
    expect(bad.stderr).toContain('no demo kept as "../../etc/passwd"');
  });

  it('without iperf3 on PATH says so and how to install it as its last line, before building anything', async () => {
    const r = await withOnly(['demo']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('demo: FAILED: iperf3 not found (install it: apt-get install iperf3)\n');
  });

  it('--directory without etcd on PATH says so and how to install it, before building anything', async () => {
    const r = await withOnly(['demo', '--directory']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('demo --directory: FAILED: etcd not found (install it: apt-get install etcd-server)\n');
  });

  it('--keep is for the two-host demo only', async () => {
    const r = await vtepd(['demo', '--directory', '--keep']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--directory has no --keep');
  });
});

describe('iperf3 interval lines', () => {
  it('reads an interval in any unit and skips the summary lines', () => {
    expect(iperfInterval('[  5]   1.00-2.00   sec  1.09 GBytes  9.36 Gbits/sec')).toEqual({ from: 1, to: 2, gbps: 9.36 });
    expect(iperfInterval('[  5]   0.00-1.00   sec  58.8 MBytes   493 Mbits/sec')).toEqual({ from: 0, to: 1, gbps: 0.493 });
    expect(iperfInterval('[  5]   3.00-3.04   sec  0.00 Bytes  0.00 bits/sec')).toEqual({ from: 3, to: 3.04, gbps: 0 });
    expect(iperfInterval('[  5]   0.00-3.00   sec  3.12 GBytes  8.93 Gbits/sec                  receiver')).toBeNull();
    expect(iperfInterval('[ ID] Interval           Transfer     Bitrate')).toBeNull();
    expect(iperfInterval('Accepted connection from 10.1.0.1, port 40000')).toBeNull();
  });
});
