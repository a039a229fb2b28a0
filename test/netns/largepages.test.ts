/**
 * The daemon runs with node's code on 2 MB pages (#18, src/daemon/node-flags.ts): a daemon
 * started the way the lab and contrib/vtepd.service start it has AnonHugePages in
 * /proc/PID/smaps_rollup (a node process without the flag has none), where transparent huge
 * pages are on.
 * The unit file sets the same flag.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../lab/netns.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';
import { packageRoot } from '../../src/util/paths.js';

const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
const thpOn = existsSync(THP) && !/\[never\]/.test(readFileSync(THP, 'utf8'));

const kB = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);

describe('node flags of the daemon', () => {
  it('contrib/vtepd.service starts node with the same flags as the lab', () => {
    const unit = readFileSync(join(packageRoot, 'contrib', 'vtepd.service'), 'utf8');
    expect(unit).toMatch(new RegExp(`^Environment=NODE_OPTIONS=${DAEMON_NODE_FLAGS.join(' ')}$`, 'm'));
  });
});

describe.skipIf(!thpOn)("the daemon's code on 2 MB pages", () => {
  const lab = new Lab('lpg');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-lpg-'));
  let d: Daemonised;

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    d = await startDaemon(lab, 'h1', 'underlay: { local: 10.0.0.1 }\ntenants:\n  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ] }\n', dir);
  });
  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has code in AnonHugePages', () => {
    const rollup = readFileSync(`/proc/${d.child.pid}/smaps_rollup`, 'utf8');
    // A node process without the flag has none (0 kB); with it, up to node's 36 MB of code,
    // less where the kernel found no free 2 MB page (it falls back to 4 KB pages silently).
    expect(kB(rollup, 'AnonHugePages')).toBeGreaterThanOrEqual(2048);
  });
});
