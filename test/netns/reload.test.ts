/**
 * Reload under traffic: while a ping (0.01 s interval) runs in tenant blue, both hosts
 * reload a config that removes tenant red and adds tenant green (h1 by `vtepd reload`, h2
 * by SIGHUP). Blue loses no ping and keeps its learned MACs (not one learn event after
 * the reload); red's TAPs are gone; green works at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePing } from '../../lab/netns.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';
import { whereText, type FdbRow } from '../../src/core/fdb.js';
import { MAC_1, MAC_2, pair, pinNeighbours, rewrite, vtepd, vtepdJson, type Pair } from '../support/ops.js';
import { untilText } from '../../lab/wait.js';

const BLUE = { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
const RED = { name: 'red', vni: 5002, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
const GREEN = { name: 'green', vni: 5003, addresses: ['10.3.0.1/24', '10.3.0.2/24'] };

describe('reload under a running ping', () => {
  let p: Pair;
  beforeAll(async () => {
    p = await pair('vl', [BLUE, RED]);
    await p.lab.addHost('green1', { ipv6: false });
    await p.lab.addHost('green2', { ipv6: false });
    await pinNeighbours(p.lab, 'blue', 'blue0');
    expect(parsePing((await p.lab.exec('blue1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.1.0.2'])).stdout).received).toBe(3);
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('adds a tenant and removes one without losing a ping or a learned MAC of the unchanged one', async () => {
    const json = <T>(host: number, args: string[]) => vtepdJson<T>(p.lab, `h${host + 1}`, [...args, '--socket', p.daemons[host]!.socket]);
    const fdbBefore = [await json<FdbRow[]>(0, ['fdb', 'show', '--tenant', 'blue']), await json<FdbRow[]>(1, ['fdb', 'show', '--tenant', 'blue'])];
    const statsBefore = [await json<StatsSnapshot>(0, ['stats']), await json<StatsSnapshot>(1, ['stats'])];
    expect(fdbBefore[0]!.map((r) => r.mac).sort()).toEqual([MAC_1, MAC_2]);

    const ping = p.lab.spawn('blue1', 'ping', ['-i', '0.01', '-c', '300', '-W', '1', '10.1.0.2']);
    let out = '';
    ping.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = new Promise((r) => ping.once('exit', r));
    // Reload under traffic: wait until the ping is being answered.
    await untilText('the ping to be answered', () => out, /bytes from/);

    for (const h of [0, 1]) rewrite(p, h, p.yaml(h, [BLUE, GREEN]));
    const r = await vtepd(p.lab, 'h1', ['reload', '--socket', p.daemons[0]!.socket]);
    expect(r.stdout).toBe(
      'reloaded: 3 change(s)\n  tenant red: removed (not in the new config)\n  tenant green: added (VNI 5003)\n  port green0 (tenant green): added\n',
    );
    const said = new Promise<string>((resolve) => {
      let err = '';
      const child = p.daemons[1]!.child;
      const on = (d: Buffer) => {
        err += d.toString();
        if (/vtepd: reload/.test(err)) {
          child.stderr!.off('data', on);
          resolve(err);
        }
      };
      child.stderr!.on('data', on);
    });
    process.kill(p.daemons[1]!.child.pid!, 'SIGHUP');
    expect(await said).toContain('tenant green: added (VNI 5003)');

    await done;
    const result = parsePing(out, 300);
    expect(result.sent).toBe(300);
    expect(result.received).toBe(300);

    // Blue's MACs are where they were, and no learn event happened for them since.
    for (const h of [0, 1]) {
      const rows = await json<FdbRow[]>(h, ['fdb', 'show', '--tenant', 'blue']);
      expect(rows.map((x) => `${x.mac} ${whereText(x.where)}`)).toEqual(fdbBefore[h]!.map((x) => `${x.mac} ${whereText(x.where)}`));
      const st = await json<StatsSnapshot>(h, ['stats']);
      const blue = (s: StatsSnapshot) => s.tenants.find((t) => t.tenant === 'blue')!;
      expect(blue(st).learned).toBe(blue(statsBefore[h]!).learned);
      expect(blue(st).moves).toBe(0);
      expect(st.tenants.map((t) => t.tenant)).toEqual(['blue', 'green']);
    }
    // Red's TAPs are gone; green forwards.
    await expect(p.lab.exec('red1', 'ip', ['link', 'show', 'red0'])).rejects.toThrow(/does not exist/);
    await expect(p.lab.exec('red2', 'ip', ['link', 'show', 'red0'])).rejects.toThrow(/does not exist/);
    expect(parsePing((await p.lab.exec('green1', 'ping', ['-c', '3', '-i', '0.05', '-W', '2', '10.3.0.2'])).stdout).received).toBe(3);
  });
});
