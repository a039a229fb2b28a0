/**
 * `vtepd demo --keep` and `vtepd demo --clean ID` with the built command: the demo leaves
 * its namespaces and daemons up and says how to use them; `status` and `fdb show` answer on
 * a kept daemon's socket after the demo has exited; --clean stops the recorded PIDs (and
 * the successor of one that `vtepd restart` replaced) and deletes the namespaces, and
 * nothing is left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { type KeptDemo, startTime, statePath } from '../../lab/demo-keep.js';
import { until } from '../../lab/wait.js';
import { ensureBuilt, vtepd } from '../support/built-cli.js';

describe('vtepd demo --keep, then --clean', () => {
  let kept: KeptDemo | undefined;
  let stdout = '';
  beforeAll(async () => {
    ensureBuilt(['src/cli/cli.ts', 'lab/demo.ts', 'lab/demo-keep.ts', 'lab/topology.ts', 'lab/netns.ts']);
    const r = await vtepd(['demo', '--keep', '-t', '1']);
    stdout = r.stdout;
    const id = /left up as (vd[0-9a-f]{6})/.exec(stdout)?.[1];
    if (id && existsSync(statePath(id))) kept = JSON.parse(readFileSync(statePath(id), 'utf8')) as KeptDemo;
    expect(r, r.stderr).toMatchObject({ code: 0 });
  }, 120_000);
  // Should a step fail, remove what the demo left, by its own recorded PIDs.
  afterAll(async () => {
    if (kept && existsSync(statePath(kept.id))) await vtepd(['demo', '--clean', kept.id]);
  }, 60_000);

  it('says what it measured while iperf3 runs, prints each host’s config, what to try and how to tear it down', () => {
    expect(stdout).toMatch(/^vtepd VXLAN \(blue\): iperf3 TCP, 1 stream, 1 s, blue1 -> blue2 \.\.\.$/m);
    expect(stdout).toMatch(/^ {2}0\.0-1\.0 s {2}[\d.]+ Gbit\/s$/m);
    expect(stdout).toMatch(/^vtepd VXLAN \(blue\): [\d.]+ Gbit\/s over 1 s$/m);
    expect(kept).toBeDefined();
    for (const d of kept!.daemons) {
      expect(stdout).toContain(`${d.host}: namespace ${d.namespace}, vtepd PID ${d.pid}, socket ${d.socket}`);
      expect(stdout).toContain(`--- ${d.config}\n${readFileSync(d.config, 'utf8')}`);
    }
    expect(stdout).toContain(`npx vtepd status -s ${kept!.daemons[0]!.socket}`);
    expect(stdout).toContain(`npx vtepd demo --clean ${kept!.id}`);
    expect(stdout).toMatch(/demo: OK \(left up: see above\)\n$/);
  });

  it('leaves the daemons running after the demo exits: status and fdb show answer on their sockets', async () => {
    for (const d of kept!.daemons) expect(startTime(d.pid)).toBe(d.startTime);
    const [h1, h2] = kept!.daemons;
    const status = await vtepd(['status', '-s', h1!.socket]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`pid ${h1!.pid}`);
    expect(status.stdout).toMatch(/^blue +5001 +blue0 +10\.0\.0\.2/m);
    const fdb = await vtepd(['fdb', 'show', '-s', h2!.socket, '--tenant', 'blue']);
    expect(fdb.stdout).toMatch(/^blue +5001 +02:00:00:00:01:01 +vtep 10\.0\.0\.1/m);
  });

  it('--clean stops the recorded daemons, and the successor of one restarted, and deletes the namespaces, the files and the state', async () => {
    const [h1, h2] = kept!.daemons;
    // h2 restarted (a takeover): a new PID that --clean did not record.
    const restart = await vtepd(['restart', '-s', h2!.socket]);
    const next = Number(/-> (\d+)/.exec(restart.stdout)?.[1]);
    expect(restart.code, restart.stderr).toBe(0);
    const nextStart = startTime(next);
    expect(nextStart).not.toBeNull();
    const r = await vtepd(['demo', '--clean', kept!.id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`h1: vtepd PID ${h1!.pid} stopped`);
    expect(r.stdout).toContain(`h2: vtepd PID ${next} (it took over from PID ${h2!.pid}: vtepd restart) stopped`);
    expect(r.stdout).toContain(`demo --clean: ${kept!.id} removed`);
    await until('the kept daemons to be gone', async () => kept!.daemons.every((d) => startTime(d.pid) !== d.startTime) && startTime(next) !== nextStart);
    for (const ns of kept!.namespaces) expect(existsSync(`/run/netns/${ns}`), ns).toBe(false);
    expect(kept!.namespaces).toHaveLength(6);
    expect(existsSync(kept!.dir)).toBe(false);
    expect(existsSync(statePath(kept!.id))).toBe(false);
  });
});
