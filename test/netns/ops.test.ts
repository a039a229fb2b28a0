/**
 * Operating a running daemon in network namespaces: every client verb of the CLI in both
 * output formats (status, fdb show/add/del/flush, peers, stats, trace, capture, reload),
 * metrics scraped over HTTP that move by exactly the number of pings sent, and captures
 * that tshark reads back with the expected frames.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePing } from '../../lab/netns.js';
import { CLI } from '../../lab/topology.js';
import type { PeerInfo, StatsSnapshot } from '../../src/daemon/stats.js';
import { whereText, type FdbRow } from '../../src/core/fdb.js';
import type { TraceResult } from '../../src/core/trace.js';
import type { StatusResult } from '../../src/cli/table.js';
import { MAC_1, MAC_2, pair, pinNeighbours, rewrite, sample, scrape, vtepd, vtepdJson, type Pair } from '../support/ops.js';

const LISTEN = '127.0.0.1:9477';
const BLUE = { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
const RED = { name: 'red', vni: 5002, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };

describe('vtepd operations against a running daemon', () => {
  let p: Pair;
  let sock: string;
  const cli = (args: string[]) => vtepd(p.lab, 'h1', [...args, '--socket', sock]);
  const json = <T>(args: string[]) => vtepdJson<T>(p.lab, 'h1', [...args, '--socket', sock]);
  const ping = async (n: number) => parsePing((await p.lab.exec('blue1', 'ping', ['-c', String(n), '-i', '0.01', '-W', '2', '10.1.0.2'])).stdout);

  beforeAll(async () => {
    p = await pair('vo', [BLUE, RED], (h) => (h === 0 ? `metrics: { listen: "${LISTEN}" }\n` : ''));
    sock = p.daemons[0]!.socket;
    await pinNeighbours(p.lab, 'blue', 'blue0');
    expect((await ping(3)).received).toBe(3);
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('status: tenants, ports, peers, uptime', async () => {
    const s = await json<StatusResult>(['status']);
    expect(s.tenants.map((t) => [t.name, t.vni, t.ports])).toEqual([
      ['blue', 5001, ['blue0']],
      ['red', 5002, ['red0']],
    ]);
    expect(s.peers).toEqual([{ vtep: '10.0.0.2', address: '10.0.0.2', encap: 'vxlan', udpPort: null, dynamic: false, pathMtu: 1500 }]);
    expect(s.metrics).toBe(LISTEN);
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(0);
    const t = await cli(['status']);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^vtepd \S+, pid \d+, up \d+s, underlay 10\.0\.0\.1 udp\/4789/);
    expect(t.stdout).toMatch(/^blue\s+5001\s+blue0\s+10\.0\.0\.2\s+2\s+on$/m);
    expect(t.stdout).toMatch(/^10\.0\.0\.2\s+configured\s+1500$/m);
    // Found by --config as well.
    const c = await vtepd(p.lab, 'h1', ['status', '--config', p.daemons[0]!.configPath, '--json']);
    expect(JSON.parse(c.stdout).pid).toBe(s.pid);
  });

  it('fdb show: learned entries at a port and at a VTEP, per tenant', async () => {
    const rows = await json<FdbRow[]>(['fdb', 'show', '--tenant', 'blue']);
    const by = Object.fromEntries(rows.map((r) => [r.mac, r]));
    expect(by[MAC_1]).toMatchObject({ tenant: 'blue', where: { kind: 'port', port: 'blue0' }, type: 'learned' });
    expect(by[MAC_2]).toMatchObject({ tenant: 'blue', where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' }, type: 'learned' });
    expect(by[MAC_2]!.ageSeconds).toBeGreaterThanOrEqual(0);
    const t = await cli(['fdb', 'show']);
    expect(t.stdout).toMatch(/^TENANT\s+VNI\s+MAC\s+WHERE\s+TYPE\s+AGE$/m);
    expect(t.stdout).toMatch(new RegExp(`^blue\\s+5001\\s+${MAC_2}\\s+vtep 10\\.0\\.0\\.2\\s+learned\\s+\\d+s$`, 'm'));
    expect((await cli(['fdb', 'show', '--tenant', 'nope'])).stderr).toContain('no tenant "nope"');
  });

  it('fdb add, del and flush at runtime', async () => {
    const M = '02:00:00:00:bb:01';
    expect(await json(['fdb', 'add', '--tenant', 'red', '--mac', M, '--vtep', '10.0.0.2'])).toEqual({
      tenant: 'red',
      mac: M,
      where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' },
      type: 'static',
      replaced: null,
    });
    expect((await cli(['fdb', 'add', '--tenant', 'red', '--mac', '02:00:00:00:bb:02', '--port', 'red0'])).stdout).toBe(
      'red: 02:00:00:00:bb:02 -> port red0 (static)\n',
    );
    let rows = await json<FdbRow[]>(['fdb', 'show', '--tenant', 'red']);
    expect(
      rows
        .filter((r) => r.type === 'static')
        .map((r) => `${r.mac} ${whereText(r.where)}`)
        .sort(),
    ).toEqual([`${M} vtep 10.0.0.2`, '02:00:00:00:bb:02 port red0']);
    expect((await cli(['fdb', 'add', '--tenant', 'red', '--mac', 'ff:ff:ff:ff:ff:ff', '--port', 'red0'])).stderr).toContain('mac: must be a unicast MAC');
    expect(await json(['fdb', 'del', '--tenant', 'red', '--mac', M])).toEqual({ tenant: 'red', mac: M });
    expect((await cli(['fdb', 'del', '--tenant', 'red', '--mac', '02:00:00:00:bb:02'])).stdout).toBe('red: 02:00:00:00:bb:02 deleted\n');
    expect((await cli(['fdb', 'del', '--tenant', 'red', '--mac', M])).stderr).toContain(`has no entry for ${M}`);
    // Flush: learned entries go, static ones stay.
    await json(['fdb', 'add', '--tenant', 'blue', '--mac', M, '--vtep', '10.0.0.2']);
    expect((await json<{ flushed: number }>(['fdb', 'flush', '--tenant', 'blue'])).flushed).toBe(2);
    rows = await json<FdbRow[]>(['fdb', 'show', '--tenant', 'blue']);
    expect(rows.map((r) => r.mac)).toEqual([M]);
    expect((await cli(['fdb', 'flush'])).stdout).toMatch(/^flushed \d+ learned entr(y|ies)\n$/);
    await json(['fdb', 'del', '--tenant', 'blue', '--mac', M]);
    expect((await ping(2)).received).toBe(2); // relearn
  });

  it('peers: liveness and counters of each VTEP', async () => {
    const peers = await json<PeerInfo[]>(['peers']);
    expect(peers).toHaveLength(1);
    expect(peers[0]).toMatchObject({ vtep: '10.0.0.2', dynamic: false, floodOf: ['blue', 'red'], state: 'active' });
    // Times are ISO 8601 everywhere in the JSON (stats.at, status.startedAt, a peer's lastSeenAt).
    expect(peers[0]!.lastSeenAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(peers[0]!.rxPackets).toBeGreaterThan(0);
    expect(peers[0]!.lastSeenSeconds).toBeLessThanOrEqual(10);
    const t = await cli(['peers']);
    expect(t.stdout).toMatch(/^VTEP\s+STATE\s+LAST SEEN/m);
    expect(t.stdout).toMatch(/^10\.0\.0\.2\s+active\s+\d+s ago\s+configured\s+blue,red\s+\d+/m);
  });

  it('stats: per tenant, port and peer, drops by named reason', async () => {
    const s = await json<StatsSnapshot>(['stats']);
    expect(s.ports.find((x) => x.port === 'blue0')!.rxPackets).toBeGreaterThan(0);
    expect(Object.keys(s.drops)).toContain('vxlan_unknown_vni');
    expect(Object.keys(s.datapath)).toContain('tap_rx_frames');
    expect(s.tenants.map((t) => t.tenant)).toEqual(['blue', 'red']);
    const t = await cli(['stats', '--all']);
    expect(t.stdout).toMatch(/^PORT\s+TENANT\s+RX PKTS\s+RX BYTES\s+TX PKTS\s+TX BYTES\s+DROPS\s+KIND$/m);
    expect(t.stdout).toMatch(/^blue0\s+blue\s+\d+/m);
    expect(t.stdout).toMatch(/^TENANT\s+TUNNEL RX PKTS\s+TUNNEL RX BYTES\s+TUNNEL TX PKTS\s+TUNNEL TX BYTES\s+TUNNEL DROPS$/m);
    const blue = s.tenants.find((x) => x.tenant === 'blue')!;
    expect(blue.tunnel.txPackets).toBeGreaterThan(0);
    expect(blue.tunnel.rxPackets).toBeGreaterThan(0);
    expect(t.stdout).toMatch(/^vxlan_unknown_vni\s+\d+$/m);
  });

  it('metrics over HTTP move by exactly the number of pings sent', async () => {
    const N = 25;
    const before = await scrape(p.lab, 'h1', LISTEN);
    expect((await ping(N)).received).toBe(N);
    const after = await scrape(p.lab, 'h1', LISTEN);
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    const port = { tenant: 'blue', port: 'blue0' };
    expect(delta('vtepd_port_rx_packets_total', port)).toBe(N);
    expect(delta('vtepd_port_tx_packets_total', port)).toBe(N);
    expect(delta('vtepd_port_rx_bytes_total', port)).toBe(N * 98); // 14 + 20 + 8 + 56
    expect(delta('vtepd_port_tx_bytes_total', port)).toBe(N * 98); // frames, without the TAP's virtio_net_hdr
    expect(delta('vtepd_peer_tx_packets_total', { vtep: '10.0.0.2', encap: 'vxlan' })).toBe(N);
    expect(delta('vtepd_peer_rx_packets_total', { vtep: '10.0.0.2', encap: 'vxlan' })).toBe(N);
    // Per tenant through tunnels, inner frames: blue's pings both ways, nothing of red's.
    expect(delta('vtepd_tenant_tunnel_tx_packets_total', { tenant: 'blue' })).toBe(N);
    expect(delta('vtepd_tenant_tunnel_rx_packets_total', { tenant: 'blue' })).toBe(N);
    expect(delta('vtepd_tenant_tunnel_tx_bytes_total', { tenant: 'blue' })).toBe(N * 98);
    expect(delta('vtepd_tenant_tunnel_rx_bytes_total', { tenant: 'blue' })).toBe(N * 98);
    expect(delta('vtepd_tenant_tunnel_tx_packets_total', { tenant: 'red' })).toBe(0);
    expect(delta('vtepd_tenant_tunnel_rx_packets_total', { tenant: 'red' })).toBe(0);
    expect(delta('vtepd_datapath_tap_rx_frames_total', {})).toBe(N);
    expect(delta('vtepd_tenant_flooded_total', { tenant: 'blue' })).toBe(0);
    expect(sample(after, 'vtepd_fdb_entries', { tenant: 'blue', type: 'learned' })).toBe(2);
    expect(sample(after, 'vtepd_drops_total', { reason: 'vxlan_unknown_vni' })).toBe(0);
    expect(sample(after, 'vtepd_peer_up', { vtep: '10.0.0.2', encap: 'vxlan' })).toBe(1);
    expect(sample(after, 'vtepd_info', { version: JSON.parse(readFileSync('package.json', 'utf8')).version })).toBe(1);
    expect(after).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(after).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(after).toMatch(/^vtepd_event_batch_size_count \d+/m);
  });

  it('trace: known unicast, flooding, hairpin and a bad source, without sending anything', async () => {
    const before = await json<StatsSnapshot>(['stats']);
    const known = await json<TraceResult>(['trace', '--tenant', 'blue', '--in', 'blue0', '--src', MAC_1, '--dst', MAC_2]);
    expect(known).toMatchObject({
      action: 'forward',
      reason: 'known-unicast',
      handledBy: 'fast-path',
      learn: 'refresh',
      ingress: { kind: 'port', port: 'blue0' },
      outputs: { ports: [], vteps: [{ kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' }] },
    });
    expect(known.entry).toMatchObject({ mac: MAC_2, where: { kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' }, type: 'learned' });
    const flood = await json<TraceResult>(['trace', '--tenant', 'blue', '--in', 'blue0', '--src', MAC_1, '--dst', '02:00:00:00:99:99']);
    expect(flood).toMatchObject({
      action: 'flood',
      reason: 'unknown-unicast',
      handledBy: 'bridge',
      outputs: { ports: [], vteps: [{ kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' }] },
    });
    const fromVtep = await json<TraceResult>(['trace', '--tenant', 'blue', '--in', '10.0.0.2', '--src', MAC_2, '--dst', 'ff:ff:ff:ff:ff:ff']);
    expect(fromVtep).toMatchObject({
      action: 'flood',
      reason: 'broadcast',
      ingress: { kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' },
      outputs: { ports: ['blue0'], vteps: [] },
    });
    const hairpin = await json<TraceResult>(['trace', '--tenant', 'blue', '--in', 'blue0', '--src', '02:00:00:00:99:98', '--dst', MAC_1]);
    expect(hairpin).toMatchObject({ action: 'drop', reason: 'hairpin', learn: 'new' });
    const bad = await json<TraceResult>(['trace', '--tenant', 'blue', '--in', 'blue0', '--src', '01:00:5e:00:00:01', '--dst', MAC_2]);
    expect(bad).toMatchObject({ action: 'drop', reason: 'bad_src_mac', handledBy: 'none' });
    const t = await cli(['trace', '--tenant', 'blue', '--in', 'blue0', '--src', MAC_1, '--dst', MAC_2]);
    expect(t.stdout).toContain(`trace tenant blue (VNI 5001): ${MAC_1} -> ${MAC_2}, in port blue0`);
    expect(t.stdout).toContain('result: forward to vtep 10.0.0.2 (known-unicast)');
    // Nothing was sent or learned.
    const after = await json<StatsSnapshot>(['stats']);
    expect(after.datapath.transmit_calls).toBe(before.datapath.transmit_calls);
    expect(after.tenants[0]!.fdbLearned).toBe(before.tenants[0]!.fdbLearned);
  });

  it('capture: a port, a peer (inner frames) and --outer, read back by tshark', async () => {
    const read = async (file: string, fields: string[], filter = '') =>
      (
        await p.lab.exec('h1', 'tshark', [
          '-r',
          file,
          '-n',
          '-T',
          'fields',
          '-E',
          'occurrence=f',
          ...(filter ? ['-Y', filter] : []),
          ...fields.flatMap((f) => ['-e', f]),
        ])
      ).stdout
        .trim()
        .split('\n')
        .filter(Boolean);
    const capture = async (args: string[], file: string) => {
      const child = p.lab.spawn('h1', process.execPath, [CLI, 'capture', '--socket', sock, '--tenant', 'blue', ...args, '-w', file]);
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const done = new Promise<number | null>((r) => child.once('exit', r));
      await new Promise<void>((resolve, reject) => {
        const t = setInterval(() => {
          if (/capturing on/.test(err)) {
            clearInterval(t);
            resolve();
          }
        }, 20);
        void done.then(() => {
          clearInterval(t);
          reject(new Error(err));
        });
      });
      return { done, err: () => err };
    };
    const portFile = join(p.dir, 'port.pcap');
    const peerFile = join(p.dir, 'peer.pcap');
    const outerFile = join(p.dir, 'outer.pcap');
    const c1 = await capture(['--port', 'blue0', '--count', '6'], portFile);
    const c2 = await capture(['--peer', '10.0.0.2', '--count', '6'], peerFile);
    const c3 = await capture(['--outer', '--count', '6'], outerFile);
    expect((await ping(3)).received).toBe(3);
    for (const c of [c1, c2, c3]) expect(await c.done).toBe(0);
    expect(c1.err()).toContain('6 packets captured to');
    const inner = ['eth.src', 'eth.dst', 'icmp.type'];
    const expected = [
      `${MAC_1}\t${MAC_2}\t8`,
      `${MAC_2}\t${MAC_1}\t0`,
      `${MAC_1}\t${MAC_2}\t8`,
      `${MAC_2}\t${MAC_1}\t0`,
      `${MAC_1}\t${MAC_2}\t8`,
      `${MAC_2}\t${MAC_1}\t0`,
    ];
    expect(await read(portFile, inner)).toEqual(expected);
    expect(await read(peerFile, inner)).toEqual(expected);
    const outer = await read(outerFile, ['ip.src', 'ip.dst', 'vxlan.vni', 'icmp.type']);
    expect(outer).toEqual([
      '10.0.0.1\t10.0.0.2\t5001\t8',
      '10.0.0.2\t10.0.0.1\t5001\t0',
      '10.0.0.1\t10.0.0.2\t5001\t8',
      '10.0.0.2\t10.0.0.1\t5001\t0',
      '10.0.0.1\t10.0.0.2\t5001\t8',
      '10.0.0.2\t10.0.0.1\t5001\t0',
    ]);
    // --json summary, and an error for a port of another tenant.
    const j = await vtepd(p.lab, 'h1', [
      'capture',
      '--socket',
      sock,
      '--tenant',
      'blue',
      '--port',
      'blue0',
      '--seconds',
      '1',
      '-w',
      join(p.dir, 'empty.pcap'),
      '--json',
    ]);
    expect(JSON.parse(j.stdout)).toMatchObject({ packets: 0, file: join(p.dir, 'empty.pcap') });
    expect(await read(join(p.dir, 'empty.pcap'), ['frame.number'])).toEqual([]);
    expect((await vtepd(p.lab, 'h1', ['capture', '--socket', sock, '--tenant', 'blue', '--port', 'red0', '-w', join(p.dir, 'x.pcap')])).stderr).toContain(
      'no port "red0" in tenant "blue"',
    );
  }, 120_000); // three captures, three tshark reads and two CLI runs: slow to start on a loaded machine

  it('reload: a good config is applied as a diff, a bad one refused with paths', async () => {
    const yaml = p.yaml(0, [BLUE, RED], `metrics: { listen: "${LISTEN}" }\n`);
    rewrite(p, 0, yaml.replace('tenants:\n', 'tenants:\n  - { name: green, vni: 5003 }\n'));
    expect(await json(['reload'])).toEqual({ changes: ['tenant green: added (VNI 5003)'], failed: [] });
    rewrite(p, 0, yaml);
    expect((await cli(['reload'])).stdout).toBe('reloaded: 1 change(s)\n  tenant green: removed (not in the new config)\n');
    expect((await cli(['reload'])).stdout).toBe('reloaded: no change\n');
    rewrite(p, 0, yaml.replace('vni: 5002', 'vni: 0').replace('underlay: { local: "10.0.0.1"', 'underlay: { local: "10.0.0.9"'));
    const bad = await cli(['reload']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('tenants[1].vni: must be an integer 1..16777215');
    const badJson = await vtepd(p.lab, 'h1', ['reload', '--socket', sock, '--json']);
    expect(badJson.code).toBe(1);
    const body = JSON.parse(badJson.stdout) as { ok: boolean; error: { code: string; errors: { path: string; message: string }[] } };
    expect(body.ok).toBe(false);
    // Each error also says where it is in the file (line, col).
    expect(body.error.errors).toContainEqual({
      path: 'tenants[1].vni',
      message: 'must be an integer 1..16777215',
      line: expect.any(Number),
      col: expect.any(Number),
    });
    rewrite(p, 0, yaml.replace('underlay: { local: "10.0.0.1"', 'underlay: { local: "10.0.0.9"'));
    expect((await cli(['reload'])).stderr).toContain('underlay.local: is 10.0.0.1 in the running daemon; changing the underlay needs a restart');
    // A port changed in place: the TAP stays (same ifindex), its MTU changes.
    const link = async () => (await p.lab.exec('blue1', 'ip', ['-o', 'link', 'show', 'blue0'])).stdout;
    const idx = /^(\d+):/.exec(await link())![1];
    rewrite(p, 0, yaml.replace(/(tap: blue0, [^}]*)\}/, '$1, mtu: 1400 }'));
    expect((await cli(['reload'])).stdout).toBe('reloaded: 1 change(s)\n  port blue0 (tenant blue): changed mtu\n');
    expect(await link()).toMatch(new RegExp(`^${idx}: blue0: .* mtu 1400 `));
    rewrite(p, 0, yaml);
    expect((await cli(['reload'])).stdout).toBe('reloaded: 1 change(s)\n  port blue0 (tenant blue): changed mtu\n');
    const s = await json<StatusResult>(['status']);
    expect(s.tenants.map((t) => t.name)).toEqual(['blue', 'red']);
    expect(s.reloads).toEqual({ ok: 5, failed: 3 });
    expect((await ping(2)).received).toBe(2);
  });

  it('SIGHUP reloads too', async () => {
    const yaml = p.yaml(0, [BLUE, RED], `metrics: { listen: "${LISTEN}" }\n`);
    rewrite(p, 0, yaml.replace('tenants:\n', 'tenants:\n  - { name: green, vni: 5003 }\n'));
    const said = new Promise<string>((resolve) => {
      const child = p.daemons[0]!.child;
      let err = '';
      const on = (d: Buffer) => {
        err += d.toString();
        if (/vtepd: reloaded/.test(err)) {
          child.stderr!.off('data', on);
          resolve(err);
        }
      };
      child.stderr!.on('data', on);
    });
    process.kill(p.daemons[0]!.child.pid!, 'SIGHUP');
    expect(await said).toContain('tenant green: added (VNI 5003)');
    expect((await json<StatusResult>(['status'])).tenants.map((t) => t.name)).toEqual(['blue', 'red', 'green']);
  });
});
