/**
 * The data path in a process of its own (#18): VTEPD_DP_PROCESS=1 opts in (0 or unset: in the daemon's); the
 * status names its PID (null: in the daemon's process), and the once-a-second check that finds
 * it dead says so once, through the hook the runtime exits on. Over the fake data path, which
 * plays the child's PID and death (the real one: test/netns/dp-process.test.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Daemon, datapathOptions, dpInOwnProcess } from '../../src/daemon/daemon.js';
import type { DpProcessInfo } from '../../src/native/addon.js';
import { formatStatus, type StatusResult } from '../../src/cli/table.js';
import { packageRoot } from '../../src/util/paths.js';
import { FakeDatapath } from '../support/fake-datapath.js';
import { cfg, MemPorts } from '../support/fake-ports.js';

const YAML = 'underlay: { local: 10.0.0.1 }\nlog: { level: fatal }\ntenants:\n  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ], flood: [ 10.0.0.2 ] }\n';
const EXECUTABLE = join(packageRoot, 'build', 'Release', 'vtepd-dp');

afterEach(() => vi.useRealTimers());

describe('VTEPD_DP_PROCESS', () => {
  it('is on at 1, off unset or at 0, and refuses anything else, naming it', () => {
    expect(dpInOwnProcess({})).toBe(false);
    expect(dpInOwnProcess({ VTEPD_DP_PROCESS: '' })).toBe(false);
    expect(dpInOwnProcess({ VTEPD_DP_PROCESS: '0' })).toBe(false);
    expect(dpInOwnProcess({ VTEPD_DP_PROCESS: '1' })).toBe(true);
    expect(() => dpInOwnProcess({ VTEPD_DP_PROCESS: 'yes' })).toThrow(/^VTEPD_DP_PROCESS=yes: 0 .* or 1 /);
    expect(datapathOptions(cfg(YAML), undefined, {}).process).toBeUndefined();
  });

  it.skipIf(!existsSync(EXECUTABLE))('gives the data path vtepd-dp, beside the addon, at 1', () => {
    expect(datapathOptions(cfg(YAML), undefined, { VTEPD_DP_PROCESS: '1' }).process).toBe(EXECUTABLE);
  });
});

describe('the data path process, as the daemon watches it', () => {
  async function start(proc: DpProcessInfo | null) {
    vi.useFakeTimers();
    const dp = new FakeDatapath();
    dp.dpProcess = proc;
    const lost: DpProcessInfo[] = [];
    const d = await Daemon.start(cfg(YAML), { dp, ports: new MemPorts(), maxMacsTotal: 1000, hooks: { dataPathLost: (p) => lost.push(p) } });
    return { d, dp, lost };
  }

  it('is null in the status when the data path runs in the daemon', async () => {
    const { d } = await start(null);
    expect(d.status().datapath).toEqual({ process: null });
    d.close();
  });

  it("puts the child's PID in the status, in JSON and in the human output", async () => {
    const { d } = await start({ pid: 4242, alive: true });
    const s = d.status();
    expect(s.datapath).toEqual({ process: 4242 });
    const text = (datapath: StatusResult['datapath']) => formatStatus({ ...s, config: '/etc/vtepd/vtepd.yaml', datapath } as StatusResult).split('\n');
    expect(text({ process: 4242 })[2]).toBe('data path: process 4242');
    expect(text({ process: null })[2]).toBe('data path: in process');
    // A daemon from before the field: no line.
    expect(text(undefined)[2]).toBe('');
    d.close();
  });

  it('tells the hook once, at the next periodic check, when the child died', async () => {
    const { d, dp, lost } = await start({ pid: 4242, alive: true });
    vi.advanceTimersByTime(3000);
    expect(lost).toEqual([]);
    dp.dpProcess = { pid: 4242, alive: false, exit: 'killed by signal 9' };
    vi.advanceTimersByTime(1000);
    expect(lost).toEqual([{ pid: 4242, alive: false, exit: 'killed by signal 9' }]);
    vi.advanceTimersByTime(5000);
    expect(lost).toHaveLength(1);
    d.close();
  });
});
