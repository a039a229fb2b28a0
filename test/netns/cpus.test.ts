/**
 * underlay.cpus pins the fast path (#18): with `queues: 2, cpus: [1, 0]`, queue 0's threads
 * (vtepd-encap, vtepd-decap) run on CPU 1 only and queue 1's (vtepd-encap1, vtepd-decap1)
 * on CPU 0 only, as `taskset -p` on their thread ids says (names from pthread_setname_np,
 * /proc/PID/task/TID/comm; in the daemon, or in its data path process when the status names
 * one: VTEPD_DP_PROCESS=1). A CPU this process may not run on stops the start with an error
 * naming underlay.cpus.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus as hostCpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../lab/netns.js';
import { CLI, startDaemon, type Daemonised } from '../../lab/topology.js';
import type { StatusResult } from '../../src/cli/table.js';
import { request } from '../../src/daemon/control.js';

const yaml = (local: string, underlay: string) =>
  `underlay: { local: ${local}, ${underlay} }\ntenants:\n  - { name: blue, vni: 5001, ports: [ { tap: blue0 } ] }\n`;

describe.skipIf(hostCpus().length < 2)('underlay.cpus', () => {
  const lab = new Lab('fast');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-cpus-'));
  let d: Daemonised;

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.link('h1', 'ul0', '10.0.0.1/24', 'h2', 'ul0', '10.0.0.2/24');
    d = await startDaemon(lab, 'h1', yaml('10.0.0.1', 'queues: 2, cpus: [1, 0]'), dir);
  });
  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("pins queue q's encap and decap threads to cpus[q % length]", async () => {
    const pid = (await request<StatusResult>(d.socket, 'status')).datapath?.process ?? d.child.pid!;
    const affinity: Record<string, string> = {};
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      if (!/^vtepd-(en|de)cap/.test(name)) continue;
      const out = (await lab.exec('h1', 'taskset', ['-pc', tid])).stdout;
      affinity[name] = /current affinity list: (\S+)/.exec(out)?.[1] ?? out;
    }
    expect(affinity).toEqual({ 'vtepd-encap': '1', 'vtepd-decap': '1', 'vtepd-encap1': '0', 'vtepd-decap1': '0' });
  });

  it('refuses a CPU this process may not run on, naming underlay.cpus', async () => {
    const cpu = hostCpus().length + 7;
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, `control: { socket: ${join(dir, 'bad.sock')} }\n${yaml('10.0.0.2', `cpus: [${cpu}]`)}`);
    const r = await lab.exec('h2', process.execPath, [CLI, 'run', '--config', path], 60_000).then(
      (x) => ({ code: 0, err: x.stderr }),
      (e: Error & { stderr?: string }) => ({ code: 1, err: `${e.stderr ?? ''}${e.message}` }),
    );
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(new RegExp(`underlay\\.cpus: cannot pin queue 0's threads to CPU ${cpu}`));
  });
});
