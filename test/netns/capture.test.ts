/**
 * `vtepd capture` of GRE-TAP and NVGRE tenants, over an IPv4 and an IPv6 underlay, as a
 * user runs it: two hosts running vtepd with three tenants side by side (blue GRE-TAP
 * key 5001, green NVGRE VSID 0x12345, red VXLAN 5002), all pinging at once, and what the
 * built CLI writes or prints for one of them.
 *  - `--peer VTEP --outer -w`: tshark reads back only that tenant's GRE packets (its key,
 *    or its VSID in the key's upper 24 bits), request and reply, never another tenant's;
 *  - `--peer VTEP -w`: the inner frames of the NVGRE tenant;
 *  - no -w: the live view, one line per frame with the port or VTEP and the direction,
 *    `--port` without `--tenant`, `-c` naming the config; Ctrl-C ends it with a count;
 *    with --json one object per frame, `where` structured as fdb show's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { parsePing } from '../../lab/netns.js';
import { CLI, twoHostsVtepd, type Mesh } from '../../lab/topology.js';
import { untilText } from '../../lab/wait.js';
import { MAC_1, MAC_2, pinNeighbours, vtepd } from '../support/ops.js';

const TENANTS = [
  { name: 'blue', vni: 5001, encap: 'gre' as const },
  { name: 'green', vni: 0x12345, encap: 'nvgre' as const },
  { name: 'red', vni: 5002, encap: 'vxlan' as const },
].map((t) => ({ ...t, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] }));

const TIME = String.raw`\d\d:\d\d:\d\d\.\d{6}`;

describe.each([4, 6] as const)('vtepd capture of GRE-TAP and NVGRE tenants, IPv%s underlay', (family) => {
  let m: Mesh;
  const [h1, h2] = family === 4 ? ['10.0.0.1', '10.0.0.2'] : ['2001:db8::1', '2001:db8::2'];
  const ip = family === 4 ? 'ip' : 'ipv6';
  const sock = () => m.daemons[0]!.socket;

  beforeAll(async () => {
    m = await twoHostsVtepd(TENANTS, { tag: `cp${family}`, family });
    for (const t of TENANTS) await pinNeighbours(m.lab, t.name, `${t.name}0`);
    for (const t of TENANTS) expect(parsePing((await m.lab.exec(`${t.name}1`, 'ping', ['-c', '1', '-W', '2', '10.1.0.2'])).stdout).received, t.name).toBe(1);
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  /** Start `vtepd capture ARGS` on h1; resolves once it says it captures. */
  const capture = async (args: string[]) => {
    const child: ChildProcess = m.lab.spawn('h1', process.execPath, [CLI, 'capture', ...args]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const done = new Promise<number | null>((r) => child.once('exit', r));
    await untilText('capture to start', () => err, /capturing on|vtepd: /);
    expect(err).toContain('capturing on');
    return { child, done, out: () => out, err: () => err };
  };
  /** Three pings in `tenant`, 10.1.0.1 -> 10.1.0.2, every one answered. */
  const ping = async (tenant: string, n = 3) => {
    const p = parsePing((await m.lab.exec(`${tenant}1`, 'ping', ['-c', String(n), '-i', '0.2', '-W', '2', '10.1.0.2'])).stdout);
    expect(p.received, tenant).toBe(n);
  };
  /** Pings in the other tenants while `fn` runs: what the capture must leave out. */
  const withNoise = async (tenants: string[], fn: () => Promise<void>) => {
    const noise = tenants.map((t) => m.lab.spawn(`${t}1`, 'ping', ['-i', '0.05', '10.1.0.2']));
    try {
      await fn();
    } finally {
      for (const c of noise) await m.lab.stop(c);
    }
  };
  const tshark = async (file: string, fields: string[]) =>
    (await m.lab.exec('h1', 'tshark', ['-r', file, '-n', '-T', 'fields', '-E', 'occurrence=f', ...fields.flatMap((f) => ['-e', f])])).stdout
      .trim()
      .split('\n')
      .filter(Boolean);

  it('--peer --outer -w: only the GRE-TAP tenant’s packets with that VTEP, key 5001, both ways', async () => {
    const file = join(m.dir, 'blue-outer.pcap');
    const c = await capture(['--socket', sock(), '--tenant', 'blue', '--peer', h2, '--outer', '--count', '6', '-w', file]);
    await withNoise(['green', 'red'], () => ping('blue'));
    expect(await c.done).toBe(0);
    expect(c.err()).toContain('6 packets captured to');
    const rows = await tshark(file, [`${ip}.src`, `${ip}.dst`, 'gre.key', 'gre.proto', 'icmp.type', 'frame.protocols']);
    const there = `${h1}\t${h2}\t0x00001389\t0x6558\t8`;
    const back = `${h2}\t${h1}\t0x00001389\t0x6558\t0`;
    expect(rows.map((r) => r.split('\t').slice(0, 5).join('\t'))).toEqual([there, back, there, back, there, back]);
    for (const r of rows) expect(r).toMatch(/:gre:eth:ethertype:ip:icmp/);
  });

  it('the tenant alone, --outer -w: only the NVGRE tenant’s packets, VSID 0x12345 in the key', async () => {
    const file = join(m.dir, 'green-outer.pcap');
    const c = await capture(['--socket', sock(), '--tenant', 'green', '--outer', '--count', '6', '-w', file]);
    await withNoise(['blue', 'red'], () => ping('green'));
    expect(await c.done).toBe(0);
    const rows = (await tshark(file, ['gre.key', 'gre.flags_and_version', 'icmp.type'])).map((r) => r.split('\t'));
    expect(rows.map(([key]) => Number(key) >>> 8)).toEqual(Array(6).fill(0x12345));
    expect(rows.map(([, flags, icmp]) => `${flags} ${icmp}`)).toEqual(['0x2000 8', '0x2000 0', '0x2000 8', '0x2000 0', '0x2000 8', '0x2000 0']);
  });

  it('--peer -w: the NVGRE tenant’s inner frames exchanged with that VTEP', async () => {
    const file = join(m.dir, 'green-inner.pcap');
    const c = await capture(['--socket', sock(), '--tenant', 'green', '--peer', h2, '--count', '6', '-w', file]);
    await withNoise(['blue', 'red'], () => ping('green'));
    expect(await c.done).toBe(0);
    const there = `${MAC_1}\t${MAC_2}\t8`;
    const back = `${MAC_2}\t${MAC_1}\t0`;
    expect(await tshark(file, ['eth.src', 'eth.dst', 'icmp.type'])).toEqual([there, back, there, back, there, back]);
  });

  it('live view of a port (no -w, no --tenant, -c CONFIG): one line per frame, rx into the switch, tx out of it', async () => {
    const c = await capture(['-c', m.daemons[0]!.configPath, '--port', 'blue0', '--count', '4']);
    await withNoise(['green', 'red'], () => ping('blue', 2));
    expect(await c.done).toBe(0);
    const there = new RegExp(`^${TIME} port blue0 rx ${MAC_1} > ${MAC_2}, IPv4, 10\\.1\\.0\\.1 > 10\\.1\\.0\\.2: ICMP echo request, length 98$`);
    const back = new RegExp(`^${TIME} port blue0 tx ${MAC_2} > ${MAC_1}, IPv4, 10\\.1\\.0\\.2 > 10\\.1\\.0\\.1: ICMP echo reply, length 98$`);
    const lines = c.out().trimEnd().split('\n');
    expect(lines, c.out()).toHaveLength(4);
    lines.forEach((l, i) => expect(l).toMatch(i % 2 ? back : there));
    expect(c.err()).toMatch(/vtepd: 4 packets captured\n$/);
  });

  it('live view of the underlay (--outer): the VTEP, the direction and the NVGRE VSID of each packet', async () => {
    const c = await capture(['--socket', sock(), '--tenant', 'green', '--peer', h2, '--outer', '--count', '2']);
    await withNoise(['blue', 'red'], () => ping('green', 1));
    expect(await c.done).toBe(0);
    const outer = 98 + 14 + (family === 4 ? 20 : 40) + 8;
    const peer = h2.replace(/\./g, '\\.');
    expect(c.out()).toMatch(
      new RegExp(
        `^${TIME} vtep ${peer} tx NVGRE vsid 74565 flowid \\d+: ${MAC_1} > ${MAC_2}, IPv4, 10\\.1\\.0\\.1 > 10\\.1\\.0\\.2: ICMP echo request, length ${outer}\n` +
          `${TIME} vtep ${peer} rx NVGRE vsid 74565 flowid \\d+: ${MAC_2} > ${MAC_1}, IPv4, 10\\.1\\.0\\.2 > 10\\.1\\.0\\.1: ICMP echo reply, length ${outer}\n$`,
      ),
    );
  });

  it('live view --json: one object per frame, where as fdb show has it (a port, or a VTEP with its encapsulation)', async () => {
    const lines = async (args: string[], tenant: string) => {
      const c = await capture(['--socket', sock(), ...args, '--count', '2', '--json']);
      await withNoise(
        ['blue', 'green', 'red'].filter((t) => t !== tenant),
        () => ping(tenant, 1),
      );
      expect(await c.done).toBe(0);
      return c
        .out()
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    };
    const port = await lines(['--port', 'blue0'], 'blue');
    expect(port.map((o) => [o.where, o.dir])).toEqual([
      [{ kind: 'port', port: 'blue0' }, 'rx'],
      [{ kind: 'port', port: 'blue0' }, 'tx'],
    ]);
    const outer = await lines(['--tenant', 'green', '--peer', h2, '--outer'], 'green');
    expect(outer.map((o) => [o.where, o.dir, Number(o.key) >>> 8])).toEqual([
      [{ kind: 'vtep', vtep: h2, encap: 'nvgre' }, 'tx', 0x12345],
      [{ kind: 'vtep', vtep: h2, encap: 'nvgre' }, 'rx', 0x12345],
    ]);
    expect(outer[0]).not.toHaveProperty('source');
  });

  it('live view until Ctrl-C, and errors that say what to give', async () => {
    const c = await capture(['--socket', sock(), '--tenant', 'blue', '--peer', h2]);
    await ping('blue', 1);
    await untilText('the reply to be printed', c.out, /ICMP echo reply/);
    await m.lab.stop(c.child, 'SIGINT');
    expect(await c.done).toBe(0);
    expect(c.out()).toMatch(
      new RegExp(`^${TIME} vtep ${h2.replace(/\./g, '\\.')} tx ${MAC_1} > ${MAC_2}, IPv4, 10\\.1\\.0\\.1 > 10\\.1\\.0\\.2: ICMP echo request, length 98\n`),
    );
    expect(c.err()).toMatch(/vtepd: 2 packets captured\n$/);
    const none = await vtepd(m.lab, 'h1', ['capture', '--socket', sock()]);
    expect(none).toMatchObject({ code: 1, stderr: 'vtepd: capture: give --tenant NAME, or --port TAP (the port names its tenant)\n' });
    const nosuch = await vtepd(m.lab, 'h1', ['capture', '--socket', sock(), '--port', 'nosuch0']);
    expect(nosuch.stderr).toBe('vtepd: no port "nosuch0" on this daemon (its ports: blue0, green0, red0)\n');
  });
});
