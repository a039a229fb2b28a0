/**
 * The README's "Two hosts" as a user follows it: its two YAML blocks, taken from README.md
 * as written, run on two hosts (network namespaces joined by a veth carrying the blocks'
 * own underlay addresses) with the built CLI: check, run, status, fdb show, peers, and a
 * ping across. Only the control socket is added (two daemons share this machine's /run);
 * nothing else is rewritten. Also the README's word on VMs: another opener of vtepd's TAP
 * (as QEMU and libvirt do) is refused with "Device or resource busy".
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { CLI, type Daemonised, startDaemon } from '../../lab/topology.js';
import { untilPings } from '../../lab/wait.js';
import { ROOT } from '../support/built-cli.js';

/** The README's yaml blocks whose first line is `# host X: ...`, by X. */
function readmeHosts(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const hosts = new Map<string, string>();
  for (const m of readme.matchAll(/```yaml\n(# host (\w+):[^\n]*\n[\s\S]*?)```/g)) hosts.set(m[2]!, m[1]!);
  return hosts;
}

describe('README: two hosts', () => {
  const lab = new Lab('rd');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-readme-'));
  const hosts = readmeHosts();
  const daemons = new Map<string, Daemonised>();
  const local = (h: string) => (parse(hosts.get(h)!) as { underlay: { local: string } }).underlay.local;
  /** `vtepd ARGS` inside host h, as the README has the user type it (the socket found by --config). */
  const vtepd = (h: string, args: string[]) => lab.exec(h, process.execPath, [CLI, ...args, '--config', daemons.get(h)!.configPath]);

  beforeAll(async () => {
    expect([...hosts.keys()]).toEqual(['A', 'B']);
    await lab.addHost('A');
    await lab.addHost('B');
    await lab.link('A', 'eth0', `${local('A')}/24`, 'B', 'eth0', `${local('B')}/24`);
    for (const h of ['A', 'B']) {
      const f = join(dir, `check-${h}.yaml`);
      writeFileSync(f, hosts.get(h)!);
      const check = await lab.exec(h, process.execPath, [CLI, 'check', '-c', f]);
      expect(check.stdout).toBe(`${f}: ok (1 tenant(s), 1 port(s))\n`);
      daemons.set(h, await startDaemon(lab, h, hosts.get(h)!, dir));
    }
  });
  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pings from host A to host B across the overlay', async () => {
    await untilPings(lab, 'A', '10.1.0.2');
    const ping = await lab.exec('A', 'ping', ['-c', '3', '-i', '0.2', '10.1.0.2']);
    expect(ping.stdout).toContain('3 received');
  });

  it('status, fdb show and peers say what the README says', async () => {
    const status = (await vtepd('A', ['status'])).stdout;
    expect(status).toContain('blue');
    expect(status).toContain('blue0');
    const bMac = (await lab.exec('B', 'cat', ['/sys/class/net/blue0/address'])).stdout.trim();
    const fdb = (await vtepd('A', ['fdb', 'show'])).stdout;
    expect(fdb.split('\n').find((l) => l.includes(bMac))).toContain(local('B'));
    const peers = (await vtepd('A', ['peers'])).stdout;
    expect(peers).toContain(local('B'));
  });

  it('another opener of vtepd’s TAP (as QEMU’s -netdev tap,ifname=blue0) is refused: busy', async () => {
    const other = await lab.exec('A', 'ip', ['tuntap', 'add', 'dev', 'blue0', 'mode', 'tap']).then(
      () => 'opened',
      (e: Error) => e.message,
    );
    expect(other).toMatch(/Device or resource busy/);
  });
});
