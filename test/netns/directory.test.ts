/**
 * The etcd directory (#13, step 2): flood lists from membership, no flood list in any config.
 *
 *   [et] etcd 10.0.0.9 ─┐
 *   [h1] 10.0.0.1 ──────┤
 *   [h2] 10.0.0.2 ──────┼── br0 in [sw]
 *   [h3] 10.0.0.3 ──────┘
 *
 * etcd runs inside its own lab host (lab/etcd.ts with netns), three vtepd daemons whose
 * configs name only the directory (leaseTtl 3 s); tenant blue (VNI 5001) has a port on each
 * host. All pairs ping; h3's port removed by reload → h3 leaves VNI 5001 on h1 and h2;
 * h2 SIGKILLed → it leaves h1's flood list once its lease expires. Every wait polls status
 * with a deadline; the times are printed, not asserted.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import type { EtcdMember } from '../../lab/etcd.js';
import { directoryLab } from '../../lab/directory-lab.js';
import { startDaemon, type Daemonised } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import { request } from '../../src/daemon/control.js';
import { vtepd } from '../support/ops.js';

const HOSTS = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
const ETCD = '10.0.0.9';
const TTL = 3;

interface DirStatus {
  tenants: { name: string; flood: string[] }[];
  directory: { backend: string; connected: boolean; errors: number; joined: number[]; tenants: Record<string, string[]> } | null;
}

describe('etcd directory: membership instead of flood lists', () => {
  const lab = new Lab('dr');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-dir-'));
  let etcd: EtcdMember;
  const daemons: Daemonised[] = [];
  const prefix = `/vtepd-test/${lab.prefix}`;

  const config = (i: number, withPort = true) =>
    [
      `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
      'log: { level: info }',
      `directory: { etcd: { endpoints: [ "http://${ETCD}:2379" ], prefix: ${prefix}, leaseTtl: ${TTL} } }`,
      'tenants:',
      '  - name: blue',
      '    vni: 5001',
      withPort ? `    ports: [ { tap: blue0, netns: ${lab.ns(`blue${i + 1}`)}, address: 10.1.0.${i + 1}/24 } ]` : '    ports: []',
      '',
    ].join('\n');
  const status = (i: number) => request<DirStatus>(daemons[i]!.socket, 'status', {}, { timeoutMs: 2000 });
  const members = async (i: number) => {
    const s = await status(i);
    return {
      flood: [...(s.tenants.find((t) => t.name === 'blue')?.flood ?? [])].sort(),
      dir: [...(s.directory?.tenants.blue ?? [])].sort(),
      connected: s.directory?.connected,
    };
  };
  /** Poll host i until blue floods to exactly `want`; returns the milliseconds it took. */
  const untilFlood = async (i: number, want: string[], since = Date.now()) => {
    await until(
      `h${i + 1} to flood blue to [${want.join(', ')}]`,
      () => members(i),
      (m) => JSON.stringify(m.flood) === JSON.stringify(want) && JSON.stringify(m.dir) === JSON.stringify(want),
      30_000,
      100,
    );
    return Date.now() - since;
  };

  beforeAll(async () => {
    etcd = await directoryLab(lab, HOSTS, ETCD);
    for (let i = 1; i <= 3; i++) await lab.addHost(`blue${i}`, { ipv6: false });
    for (let i = 0; i < 3; i++) daemons.push(await startDaemon(lab, `h${i + 1}`, config(i), dir));
  }, 120_000);

  afterAll(async () => {
    await lab.cleanup();
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every host floods to the two others, learned from the directory, and all pairs ping', async () => {
    const t0 = Date.now();
    for (let i = 0; i < 3; i++)
      await untilFlood(
        i,
        HOSTS.filter((_, j) => j !== i),
        t0,
      );
    console.log(`directory: three hosts joined VNI 5001 and every flood list complete ${Date.now() - t0} ms after the last daemon started`);
    for (let i = 0; i < 3; i++) {
      const s = await status(i);
      expect(s.directory).toMatchObject({ backend: 'etcd', connected: true, joined: [5001] });
    }
    const text = await vtepd(lab, 'h1', ['status', '--socket', daemons[0]!.socket]);
    expect(text.stdout).toMatch(new RegExp(`directory etcd http://${ETCD}:2379 prefix ${prefix}: connected, errors \\d+`));
    expect(text.stdout).toMatch(/blue\s+10\.0\.0\.2,10\.0\.0\.3/);
    for (let a = 1; a <= 3; a++) for (let b = 1; b <= 3; b++) if (a !== b) await untilPings(lab, `blue${a}`, `10.1.0.${b}`, ['-c', '1', '-W', '1']);
  }, 60_000);

  it("a host whose tenant loses its last port (reload) leaves the others' flood lists", async () => {
    writeFileSync(daemons[2]!.configPath, `control: { socket: ${daemons[2]!.socket} }\n${config(2, false)}`);
    const t0 = Date.now();
    process.kill(daemons[2]!.child.pid!, 'SIGHUP');
    await untilFlood(0, [HOSTS[1]!], t0);
    await untilFlood(1, [HOSTS[0]!], t0);
    console.log(`directory: h3 left VNI 5001 (reload, no port) and left h1's and h2's flood lists in ${Date.now() - t0} ms`);
    // h3 still hears the others (it keeps the tenant) but is no member itself.
    expect((await status(2)).directory?.joined).toEqual([]);
    expect(await members(2)).toMatchObject({ flood: [HOSTS[0], HOSTS[1]] });
    await untilPings(lab, 'blue1', '10.1.0.2', ['-c', '1', '-W', '1']);
  }, 60_000);

  it("a daemon killed with SIGKILL leaves the others' flood lists when its lease expires", async () => {
    const t0 = Date.now();
    await lab.stop(daemons[1]!.child, 'SIGKILL');
    // Killed, nothing revoked: h2 is still a member until its lease runs out (at least TTL/3 s away).
    expect((await members(0)).dir).toEqual([HOSTS[1]]);
    const ms = await untilFlood(0, [], t0);
    await untilFlood(2, [HOSTS[0]!]);
    console.log(`directory: h2 SIGKILLed, gone from h1's flood list after ${ms} ms (lease TTL ${TTL} s)`);
    expect((await status(0)).directory?.connected).toBe(true);
  }, 60_000);
});
