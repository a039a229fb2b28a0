/**
 * The CLI in the field's habits (#14), with the built command against a running daemon in
 * namespaces: fdb show filters and a positional tenant, MACs in Cisco and dashed forms,
 * places as structured JSON, "replaced" on fdb add, human byte counts (-h), stats.at in
 * ISO, the log level at runtime, reload printing what changed, -c on the client verbs,
 * refusals by the flag typed (and did-you-mean for a tenant), one newline after every table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePing } from '../../lab/netns.js';
import type { PeerInfo, StatsSnapshot } from '../../src/daemon/stats.js';
import type { FdbRow } from '../../src/core/fdb.js';
import { MAC_1, MAC_2, pair, pinNeighbours, rewrite, vtepd, vtepdJson, type Pair } from '../support/ops.js';

const BLUE = { name: 'blue', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
const RED = { name: 'red', vni: 5002, addresses: ['10.1.0.1/24', '10.1.0.2/24'], macs: [MAC_1, MAC_2] };
/** MAC_2 (02:00:00:00:aa:02) as Cisco and Windows write it. */
const MAC_2_CISCO = '0200.0000.AA02';
const MAC_2_DASHED = '02-00-00-00-AA-02';

describe('vtepd CLI habits against a running daemon', () => {
  let p: Pair;
  let sock: string;
  const cli = (args: string[]) => vtepd(p.lab, 'h1', [...args, '-s', sock]);
  const json = <T>(args: string[]) => vtepdJson<T>(p.lab, 'h1', [...args, '-s', sock]);
  const ping = async (n: number) => parsePing((await p.lab.exec('blue1', 'ping', ['-c', String(n), '-i', '0.01', '-W', '2', '10.1.0.2'])).stdout);

  beforeAll(async () => {
    p = await pair('vh', [BLUE, RED]);
    sock = p.daemons[0]!.socket;
    await pinNeighbours(p.lab, 'blue', 'blue0');
    expect((await ping(20)).received).toBe(20); // 20 x 98 bytes each way: past 1000
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('fdb show: a positional tenant, --vni, --mac in any form, --port, --vtep; places as structured JSON', async () => {
    const all = await json<FdbRow[]>(['fdb', 'show', 'blue']);
    expect(all.map((r) => [r.mac, r.where]).sort()).toEqual([
      [MAC_1, { kind: 'port', port: 'blue0' }],
      [MAC_2, { kind: 'vtep', vtep: '10.0.0.2', encap: 'vxlan' }],
    ]);
    expect((await json<FdbRow[]>(['fdb', 'show', '--vni', '5001'])).map((r) => r.tenant)).toEqual(['blue', 'blue']);
    expect(await json<FdbRow[]>(['fdb', 'show', '--vni', '5002'])).toEqual([]);
    expect((await json<FdbRow[]>(['fdb', 'show', '--mac', MAC_2_CISCO])).map((r) => r.mac)).toEqual([MAC_2]);
    expect((await json<FdbRow[]>(['fdb', 'show', '-m', MAC_2_DASHED, 'blue'])).map((r) => r.mac)).toEqual([MAC_2]);
    expect((await json<FdbRow[]>(['fdb', 'show', '--port', 'blue0'])).map((r) => r.mac)).toEqual([MAC_1]);
    expect((await json<FdbRow[]>(['fdb', 'show', '--vtep', '10.0.0.2'])).map((r) => r.mac)).toEqual([MAC_2]);
    const t = await cli(['fdb', 'show', 'blue', '--vtep', '10.0.0.2']);
    expect(t.stdout).toMatch(
      new RegExp(`^TENANT\\s+VNI\\s+MAC\\s+WHERE\\s+TYPE\\s+AGE\\nblue\\s+5001\\s+${MAC_2}\\s+vtep 10\\.0\\.0\\.2\\s+learned\\s+\\d+s\\n$`),
    );
    expect((await cli(['fdb', 'show', '--mac', '0200.0000'])).stderr).toBe(
      'vtepd: -m/--mac: must be a MAC like 02:00:00:00:01:01, 02-00-00-00-01-01 or 0200.0000.0101, not "0200.0000"\n',
    );
    expect((await cli(['fdb', 'show', 'nope'])).stderr).toBe('vtepd: no tenant "nope" (tenants: blue, red)\n');
  });

  it('refusals name the flag the user typed and echo the value; a mistyped tenant gets did-you-mean', async () => {
    const said = async (args: string[]) => {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(1);
      return r.stderr;
    };
    const ADDR = 'must be an IPv4 or IPv6 address, not "10.0.0"';
    expect(await said(['fdb', 'show', '--vtep', '10.0.0'])).toBe(`vtepd: --vtep: ${ADDR}\n`);
    expect(await said(['fdb', 'add', '-t', 'blue', '-m', '02:00:00:00:bb:09', '--vtep', '10.0.0'])).toBe(`vtepd: --vtep: ${ADDR}\n`);
    expect(await said(['fdb', 'add', '-t', 'blue', '-m', 'zz', '--vtep', '10.0.0.2'])).toMatch(/^vtepd: -m\/--mac: must be a MAC like .*, not "zz"\n$/);
    expect(await said(['fdb', 'del', '-t', 'blue', '--mac', 'zz'])).toMatch(/^vtepd: -m\/--mac: .*, not "zz"\n$/);
    const trace = ['trace', '-t', 'blue', '--in', 'blue0', '--src', MAC_1, '--dst', MAC_2];
    expect(await said([...trace.slice(0, 5), '--src', 'x1', '--dst', MAC_2])).toMatch(/^vtepd: --src: must be a MAC like .*, not "x1"\n$/);
    expect(await said([...trace.slice(0, 7), '--dst', 'x2'])).toMatch(/^vtepd: --dst: .*, not "x2"\n$/);
    expect(await said(['trace', '-t', 'blue', '--in', 'nosuchport', '--src', MAC_1, '--dst', MAC_2])).toBe(
      'vtepd: --in: "nosuchport" is neither a port of this daemon (blue0, red0) nor a VTEP address\n',
    );
    expect(await said(['capture', '-t', 'blue', '--peer', '10.0.0', '--count', '1'])).toBe(`vtepd: --peer: ${ADDR}\n`);
    // A tenant: the ones there are, and the nearest one.
    const bleu = 'vtepd: no tenant "bleu" (tenants: blue, red; did you mean blue?)\n';
    expect(await said(['fdb', 'show', 'bleu'])).toBe(bleu);
    expect(await said(['fdb', 'add', '-t', 'bleu', '-m', '02:00:00:00:bb:09', '--port', 'blue0'])).toBe(bleu);
    expect(await said(['fdb', 'del', '-t', 'bleu', '-m', '02:00:00:00:bb:09'])).toBe(bleu);
    expect(await said(['fdb', 'flush', '-t', 'bleu'])).toBe(bleu);
    expect(await said(['trace', '-t', 'bleu', '--in', 'blue0', '--src', MAC_1, '--dst', MAC_2])).toBe(bleu);
    expect(await said(['capture', '-t', 'bleu', '--count', '1'])).toBe(bleu);
    expect(await said(['fdb', 'show', 'green'])).toBe('vtepd: no tenant "green" (tenants: blue, red)\n');
    // --json keeps the daemon's own words and code.
    const j = await cli(['fdb', 'show', '--vtep', '10.0.0', '--json']);
    expect(JSON.parse(j.stdout)).toEqual({ ok: false, error: { code: 'EINVAL', message: `vtep: ${ADDR}` } });
  });

  it('every table verb ends its text with exactly one newline', async () => {
    for (const verb of [['status'], ['fdb', 'show'], ['peers'], ['stats'], ['trace', '-t', 'blue', '--in', 'blue0', '--src', MAC_1, '--dst', MAC_2]]) {
      const r = await cli(verb);
      expect(r.code, verb.join(' ')).toBe(0);
      expect(r.stdout, verb.join(' ')).toMatch(/[^\n]\n$/);
    }
  });

  it('fdb add over an entry says what it replaced; add, del and trace take any MAC form', async () => {
    const first = await cli(['fdb', 'add', '--tenant', 'red', '--mac', '0200.0000.BB01', '--vtep', '10.0.0.2']);
    expect(first.stdout).toBe('red: 02:00:00:00:bb:01 -> vtep 10.0.0.2 (static)\n');
    const again = await cli(['fdb', 'add', '--tenant', 'red', '--mac', '02-00-00-00-BB-01', '--port', 'red0']);
    expect(again.stdout).toBe('red: 02:00:00:00:bb:01 -> port red0 (static; replaced the static entry at vtep 10.0.0.2)\n');
    const j = await json<{ replaced: unknown }>(['fdb', 'add', '--tenant', 'red', '--mac', '02:00:00:00:bb:01', '--vtep', '10.0.0.2']);
    expect(j.replaced).toEqual({ where: { kind: 'port', port: 'red0' }, type: 'static' });
    // Over a learned entry too.
    const learned = await cli(['fdb', 'add', '--tenant', 'blue', '--mac', MAC_2_CISCO, '--vtep', '10.0.0.2']);
    expect(learned.stdout).toBe(`blue: ${MAC_2} -> vtep 10.0.0.2 (static; replaced the learned entry at vtep 10.0.0.2)\n`);
    expect((await cli(['fdb', 'del', '--tenant', 'blue', '--mac', MAC_2_DASHED])).stdout).toBe(`blue: ${MAC_2} deleted\n`);
    expect((await cli(['fdb', 'del', '--tenant', 'red', '--mac', '0200.0000.bb01'])).stdout).toBe('red: 02:00:00:00:bb:01 deleted\n');
    expect((await ping(2)).received).toBe(2); // MAC_2 learned again
    const tr = await cli(['trace', '--tenant', 'blue', '--in', 'blue0', '--src', '02-00-00-00-AA-01', '--dst', MAC_2_CISCO]);
    expect(tr.stdout).toContain(`trace tenant blue (VNI 5001): ${MAC_1} -> ${MAC_2}, in port blue0`);
    expect(tr.stdout).toContain('result: forward to vtep 10.0.0.2 (known-unicast)');
  });

  it('stats and peers: -h prints byte counts in K/M/G; clear column names; stats.at in ISO', async () => {
    const s = await json<StatsSnapshot>(['stats']);
    expect(s.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const rx = s.ports.find((x) => x.port === 'blue0')!.rxBytes;
    expect(rx).toBeGreaterThanOrEqual(1000);
    const h = await cli(['stats', '-h']);
    expect(h.stdout).toMatch(/^PORT\s+TENANT\s+RX PKTS\s+RX BYTES\s+TX PKTS\s+TX BYTES\s+DROPS\s+KIND$/m);
    expect(h.stdout).toMatch(/^blue0\s+blue\s+\d+\s+\d+\.\dK\s+\d+\s+\d+\.\dK\s+\d+\s+tap$/m);
    expect(h.stdout).toMatch(
      /^TENANT\s+VNI\s+PORTS\s+LEARNED MACS\s+STATIC MACS\s+LEARN EVENTS\s+MOVES\s+AGED OUT\s+REFUSED \(MAXMACS\)\s+FLOODED\s+HAIRPIN DROPS\s+SPLIT-HORIZON DROPS$/m,
    );
    expect((await cli(['stats', '--human'])).stdout).toMatch(/^blue0\s+blue\s+\d+\s+\d+\.\dK/m);
    expect((await cli(['stats'])).stdout).toMatch(/^blue0\s+blue\s+\d+\s+\d{4,}\s/m);
    const peers = await json<PeerInfo[]>(['peers']);
    expect(peers[0]!.rxBytes).toBeGreaterThanOrEqual(1000);
    const ph = await cli(['peers', '-h']);
    expect(ph.stdout).toMatch(/^VTEP\s+STATE\s+LAST SEEN\s+TYPE\s+IN FLOOD LIST OF\s+MACS\s+RX PKTS\s+RX BYTES/m);
    // The state is active, or idle if this test's last packet is over 10 s old on a loaded machine
    // (liveness itself: test/unit/peer-quiet.test.ts, test/netns/faults.test.ts).
    expect(ph.stdout).toMatch(/^10\.0\.0\.2\s+(active|idle)\s+\d+s ago\s+configured\s+blue,red\s+\d+\s+\d+\s+\d+\.\dK/m);
  });

  it('log level: prints it, sets it at runtime, refuses a bad one', async () => {
    expect((await cli(['log', 'level'])).stdout).toBe('log level warn\n');
    expect((await cli(['log', 'level', 'debug'])).stdout).toBe('log level warn -> debug\n');
    expect(await json(['log', 'level'])).toEqual({ level: 'debug', was: 'debug' });
    expect(await json(['log', 'level', 'warn'])).toEqual({ level: 'warn', was: 'debug' });
    expect((await cli(['log', 'level', 'loud'])).code).toBe(1);
  });

  it('reload prints what changed (policy keys old -> new, a static entry), or no change', async () => {
    const yaml = p.yaml(0, [BLUE, RED]);
    expect((await cli(['reload'])).stdout).toBe('reloaded: no change\n');
    const changed = yaml
      .replace('    vni: 5001\n', '    vni: 5001\n    ageing: 60\n    maxMacs: 100\n')
      .replace('    vni: 5002\n', '    vni: 5002\n    fdb: [ { mac: "02:00:00:00:cc:01", vtep: 10.0.0.2 } ]\n');
    expect(changed).not.toBe(yaml);
    rewrite(p, 0, changed);
    expect((await cli(['reload'])).stdout).toBe(
      'reloaded: 2 change(s)\n  tenant blue: ageing 300s -> 60s, maxMacs 8192 -> 100\n  tenant red: static entry 02:00:00:00:cc:01 -> vtep 10.0.0.2\n',
    );
    rewrite(p, 0, yaml);
    expect((await cli(['reload'])).stdout).toBe(
      'reloaded: 2 change(s)\n  tenant blue: ageing 60s -> 300s, maxMacs 100 -> 8192\n  tenant red: static entry 02:00:00:00:cc:01 removed\n',
    );
  });

  it('-c finds the daemon by its config on every client verb', async () => {
    const cfg = p.daemons[0]!.configPath;
    for (const verb of [['status'], ['fdb', 'show', 'blue'], ['peers'], ['stats', '-h'], ['log', 'level']])
      expect((await vtepd(p.lab, 'h1', [...verb, '-c', cfg])).code, verb.join(' ')).toBe(0);
  });
});
