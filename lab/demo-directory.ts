/**
 * `vtepd demo --directory`: the walkthrough of docs/directory.md ("From an empty etcd to two
 * tenants on three hosts") in network namespaces. A private etcd (host "et", 10.0.0.9) and
 * three hosts h1..h3 on one bridge, each running vtepd with a config of only its underlay,
 * its control socket and `directory:` (no tenant, no flood list). Then the built CLI, as a
 * user types it: `net pool`, `net create` for acme/web and globex/web, `port add` of a VM in
 * each network on each host (globex's with the same MACs and IPs as acme's), pings between
 * all hosts in each network, a check that the tenants do not see each other, what the
 * directory did on each host (FDB rows of type directory, ARP suppressed/flooded, members),
 * and a move of acme's VM from h3 to h1, timed until the other hosts have it at h1.
 *
 * It reports what it sees rather than assume: with MAC records in etcd, the hosts program
 * each other's VMs (FDB type directory) and answer ARP locally; without them, unicast to a
 * remote VM is flooded to the VNI's members and still arrives. Everything it made (daemons
 * by PID, etcd, namespaces, files) is removed at the end, also on failure or Ctrl-C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { directoryLab } from './directory-lab.js';
import type { EtcdMember } from './etcd.js';
import { missingTool } from './demo.js';
import { Lab, parsePing } from './netns.js';
import { CLI, startDaemon, type Daemonised } from './topology.js';
import { READY_MS, until, untilPings } from './wait.js';
import { request } from '../src/daemon/control.js';
import { whereText, type FdbRow } from '../src/core/fdb.js';
import type { StatsSnapshot } from '../src/daemon/stats.js';
import { table, type StatusResult } from '../src/cli/table.js';
import type { MacRecord } from '../src/directory/directory.js';

export interface DirectoryDemoOptions {
  /** How long the move may take to show on every host before the demo calls it failed. */
  moveTimeoutMs?: number;
}

const HOSTS = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
const ETCD = '10.0.0.9';
const ETCD_URL = `http://${ETCD}:2379`;
/** The two networks: same name, same VM addresses and MACs, different tenants (and VNIs). */
const NETS = [
  { net: 'acme/web', tenant: 'acme', tap: 'acme0' },
  { net: 'globex/web', tenant: 'globex', tap: 'globex0' },
] as const;
const ip = (h: number) => `10.1.0.${h + 1}`;
const mac = (h: number) => `02:00:00:00:01:0${h + 1}`;

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The programs the directory demo runs, and the Debian package of each (said when one is missing). */
export const DIRECTORY_DEMO_TOOLS: Record<string, string> = { ip: 'iproute2', ping: 'iputils-ping', etcd: 'etcd-server' };

export async function directoryDemo(opts: DirectoryDemoOptions = {}): Promise<boolean> {
  const out = (s = '') => process.stdout.write(`${s}\n`);
  const missing = missingTool(Object.keys(DIRECTORY_DEMO_TOOLS));
  if (missing) {
    out(`demo --directory: FAILED: ${missing} not found (install it: apt-get install ${DIRECTORY_DEMO_TOOLS[missing]})`);
    return false;
  }
  const step = (s: string) => out(`\n== ${s}`);
  const lab = new Lab('vdd');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-demo-'));
  let etcd: EtcdMember | undefined;
  const daemons: Daemonised[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await lab.cleanup(); // the daemons by PID (they withdraw from etcd), then the namespaces
      await etcd?.destroy();
      rmSync(dir, { recursive: true, force: true });
    })());
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    out(`\ndemo: ${sig}: cleaning up`);
    void cleanup().finally(() => {
      out('demo: FAILED (interrupted; namespaces removed)');
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  /** `vtepd ARGS` (the built CLI) inside host h<h+1>, printed as the user would see it. */
  const cli = (h: number, args: string[], show = true): Promise<CliRun> =>
    new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', lab.ns(`h${h + 1}`), process.execPath, CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        if (show) {
          out(`h${h + 1}$ vtepd ${args.map((a) => (a.startsWith(dir) ? a.replace(dir, '$DIR') : a)).join(' ')}`);
          for (const l of `${stdout}${stderr}`.trimEnd().split('\n')) if (l) out(`    ${l}`);
        }
        resolve({ code, stdout, stderr });
      });
    });
  const mustCli = async (h: number, args: string[]): Promise<string> => {
    const r = await cli(h, args);
    if (r.code !== 0) throw new Error(`vtepd ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  };
  const api = <T>(h: number, method: string, params: Record<string, unknown> = {}) => request<T>(daemons[h]!.socket, method, params, { timeoutMs: 10_000 });
  const rx = async (vm: string, tap: string) => Number((await lab.exec(vm, 'cat', [`/sys/class/net/${tap}/statistics/rx_packets`])).stdout);
  const ping = async (vm: string, to: string, count: number, interval = '0.2') =>
    parsePing((await lab.exec(vm, 'ping', ['-c', String(count), '-i', interval, '-W', '2', to], 60_000).catch((e: Error) => ({ stdout: e.message }))).stdout);

  let ok = true;
  let reason: string | undefined;
  const check = (cond: boolean, what: string) => {
    if (!cond) {
      ok = false;
      out(`   FAILED: ${what}`);
    }
  };
  try {
    out('vtepd demo --directory: a private etcd (10.0.0.9) and three hosts h1..h3 (10.0.0.1-3) on one bridge;');
    out('every host runs vtepd with only its underlay, control socket and directory: (no tenant, no flood list).');
    step('starting etcd and the hosts');
    etcd = await directoryLab(lab, HOSTS, ETCD);
    out(`etcd ${etcd.url} (pid ${etcd.pid}) in namespace ${lab.ns('et')}`);
    for (let h = 0; h < 3; h++) {
      const yaml = [
        `control: { socket: ${join(dir, `h${h + 1}.sock`)} }`,
        `underlay: { local: ${HOSTS[h]} }`,
        `directory: { etcd: { endpoints: [ "${ETCD_URL}" ] } }`,
        'tenants: []',
        '',
      ].join('\n');
      daemons.push(await startDaemon(lab, `h${h + 1}`, yaml, dir));
      out(`h${h + 1}: vtepd run --config ${daemons[h]!.configPath.replace(dir, '$DIR')} (pid ${daemons[h]!.child.pid}):`);
      for (const l of yaml.trimEnd().split('\n')) out(`    ${l.replace(dir, '$DIR')}`);
    }

    step('tenant networks: a VNI pool, then one network per tenant (both named web)');
    await mustCli(0, ['net', 'pool', '--etcd', ETCD_URL, '--first', '5000', '--last', '5999']);
    const vnis: Record<string, number> = {};
    for (const n of NETS) {
      await mustCli(0, ['net', 'create', '--etcd', ETCD_URL, '--tenant', n.tenant, '--name', 'web']);
      const list = JSON.parse(await (await cli(0, ['net', 'list', '--etcd', ETCD_URL, '--tenant', n.tenant, '--json'], false)).stdout) as {
        name: string;
        vni: number;
      }[];
      vnis[n.net] = list.find((x) => x.name === 'web')!.vni;
    }
    await mustCli(0, ['net', 'list', '--etcd', ETCD_URL]);
    check(vnis['acme/web'] !== vnis['globex/web'], 'the two networks got different VNIs');

    step("ports: a VM of each network on each host; globex's VMs have the same MACs and IPs as acme's");
    for (let h = 0; h < 3; h++) {
      for (const n of NETS) {
        await lab.addHost(`${n.tenant}${h + 1}`, { ipv6: false });
        const sock = daemons[h]!.socket;
        await mustCli(h, [
          'port',
          'add',
          '--socket',
          sock,
          '--net',
          n.net,
          '--tap',
          n.tap,
          '--netns',
          lab.ns(`${n.tenant}${h + 1}`),
          '--address',
          `${ip(h)}/24`,
          '--mac',
          mac(h),
        ]);
      }
    }

    step('pings in each network between all hosts (5 each)');
    const t0 = Date.now();
    for (const n of NETS) for (let h = 0; h < 3; h++) for (let g = 0; g < 3; g++) if (g !== h) await untilPings(lab, `${n.tenant}${h + 1}`, ip(g));
    out(`every VM answers every other of its network: ${Date.now() - t0} ms after the last port add`);
    const rows: string[][] = [];
    for (const n of NETS)
      for (let h = 0; h < 3; h++)
        for (let g = 0; g < 3; g++) {
          if (g === h) continue;
          const p = await ping(`${n.tenant}${h + 1}`, ip(g), 5);
          check(p.sent > 0 && p.received === p.sent, `${n.net} h${h + 1} -> h${g + 1}: ${p.received}/${p.sent}`);
          rows.push([n.net, `h${h + 1} ${ip(h)}`, `h${g + 1} ${ip(g)}`, `${p.received}/${p.sent}`, p.avgMs === null ? '-' : `${p.avgMs.toFixed(3)} ms`]);
        }
    out(tableText(['network', 'from', 'to', 'replies', 'rtt avg'], rows));

    step("isolation: one tenant pings (20 to each other host), the other tenant's VMs must receive nothing");
    for (const [talk, quiet] of [
      [NETS[0], NETS[1]],
      [NETS[1], NETS[0]],
    ] as const) {
      const before = await Promise.all([0, 1, 2].map((h) => rx(`${quiet.tenant}${h + 1}`, quiet.tap)));
      for (let g = 1; g < 3; g++) await ping(`${talk.tenant}1`, ip(g), 20, '0.05');
      const after = await Promise.all([0, 1, 2].map((h) => rx(`${quiet.tenant}${h + 1}`, quiet.tap)));
      const leaked = after.reduce((s, v, i) => s + v - before[i]!, 0);
      out(`40 pings in ${talk.net} delivered ${leaked} frame(s) to ${quiet.net}'s VMs on h1..h3 ${leaked === 0 ? '(none: isolated)' : '(LEAK)'}`);
      check(leaked === 0, `${leaked} frame(s) of ${talk.net} reached ${quiet.net}`);
    }

    step('what the directory did, per host');
    await showDirectory(out, api, vnis);
    for (let h = 0; h < 3; h++) await mustCli(h, ['fdb', 'show', '--socket', daemons[h]!.socket]);

    step("move: acme/web's VM on h3 (10.1.0.3, 02:00:00:00:01:03) moves to h1");
    const moved = { vm: 'acmemv', tap: 'acme1', mac: mac(2), ip: ip(2) };
    const seqBefore = await recordsOf(api, 1, 'acme/web', moved.mac);
    out(`before: ${fmtRecord(seqBefore)} (h2's directory)`);
    await lab.addHost(moved.vm, { ipv6: false });
    const tMove = Date.now();
    await mustCli(0, [
      'port',
      'add',
      '--socket',
      daemons[0]!.socket,
      '--net',
      'acme/web',
      '--tap',
      moved.tap,
      '--netns',
      lab.ns(moved.vm),
      '--address',
      `${moved.ip}/24`,
      '--mac',
      moved.mac,
    ]);
    await mustCli(2, ['port', 'del', '--socket', daemons[2]!.socket, '--tap', 'acme0']);
    const tDel = Date.now();
    // Where each host has the MAC: h1 on its new port, the others at h1's VTEP (from the directory).
    const where = async () =>
      Promise.all(
        [0, 1, 2].map(async (h) => {
          const rows = await api<FdbRow[]>(h, 'fdb.show', {}).catch(() => [] as FdbRow[]);
          const r = rows.find((x) => x.tenant === 'acme/web' && x.mac === moved.mac);
          return r ? `${whereText(r.where)} (${r.type})` : 'absent';
        }),
      );
    // h1 on its new port, h2 at h1's VTEP from the directory; h3 has no acme/web any more (its
    // tenant, made by port add, went with its last port), so nothing there, stale or not.
    const want = [`port ${moved.tap}`, `vtep ${HOSTS[0]} (directory)`, 'absent'];
    const converged = (w: string[]) => w.every((x, i) => x.startsWith(want[i]!));
    if (seqBefore) {
      try {
        const w = await until('h1 and h2 to have the moved VM at h1, h3 nothing', where, converged, opts.moveTimeoutMs ?? 10_000, 20);
        out(
          `h1 and h2 have it at h1, h3 nothing, ${Date.now() - tMove} ms after port add on h1 (${Date.now() - tDel} ms after port del on h3): ${w.join(', ')}`,
        );
      } catch (e) {
        check(false, (e as Error).message);
      }
    } else {
      out('the directory had no record of the VM before the move: the hosts find it by flooding, not from the directory');
    }
    const seqAfter = await recordsOf(api, 1, 'acme/web', moved.mac);
    out(`after:  ${fmtRecord(seqAfter)} (h2's directory)`);
    out(`FDB now: ${(await where()).map((w, h) => `h${h + 1} ${w}`).join('; ')}`);
    if (seqBefore && seqAfter) check(seqAfter.owner === HOSTS[0] && seqAfter.seq > seqBefore.seq, 'the record moved to h1 with a higher seq');
    // From h2: reach the moved VM. With its record moved, at once; without records, h2 floods
    // unicast to the VNI's members unless it learned the MAC at h3 from the underlay: then it
    // keeps sending there until the VM speaks (a migrated VM announces itself: QEMU sends a RARP).
    const reach = (timeoutMs: number) =>
      untilPings(lab, 'acme2', moved.ip, [], timeoutMs).then(
        () => true,
        () => false,
      );
    if (await reach(5000)) {
      out(`h2's VM reaches the moved VM ${Date.now() - tDel} ms after the port del on h3`);
    } else {
      out(`h2's VM does not reach it within 5 s of the port del: h2 has it at ${(await where())[1]}; nothing told h2 of the move`);
      out('the VM announces itself (one ping from it to 10.1.0.2: its ARP request is flooded), as a migrated VM does');
      const tSpeak = Date.now();
      await ping(moved.vm, ip(1), 1);
      const got = await reach(READY_MS);
      check(got, "h2's VM reaches the moved VM after it spoke");
      if (got) out(`h2's VM reaches the moved VM ${Date.now() - tSpeak} ms after it spoke; h2 has it at ${(await where())[1]}`);
    }
    const again: string[][] = [];
    for (const [vm, host] of [
      ['acme1', 'h1 (same host)'],
      ['acme2', 'h2'],
    ] as const) {
      const p = await ping(vm, moved.ip, 5);
      check(p.sent > 0 && p.received === p.sent, `${vm} -> moved VM: ${p.received}/${p.sent}`);
      again.push([host, `${p.received}/${p.sent}`, p.avgMs === null ? '-' : `${p.avgMs.toFixed(3)} ms`]);
    }
    out(tableText(['ping to 10.1.0.3 from', 'replies', 'rtt avg'], again));
    await showDirectory(out, api, vnis, ['acme/web']);
  } catch (e) {
    ok = false;
    reason = (e as Error).message;
    if (!interrupted) out(`\ndemo: ${reason}`); // else: what the cleanup pulled away
  } finally {
    if (!interrupted) await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted) await new Promise(() => {}); // the signal handler exits
  out('');
  out(
    ok
      ? 'demo --directory: OK (daemons and etcd stopped, namespaces removed)'
      : `demo --directory: FAILED: ${reason ?? 'a check above failed'} (daemons and etcd stopped, namespaces removed)`,
  );
  return ok;
}

type Api = <T>(h: number, method: string, params?: Record<string, unknown>) => Promise<T>;

/** The directory's record of `mac` in `tenant` as host h sees it (directory.macs), or null. */
async function recordsOf(api: Api, h: number, tenant: string, mac: string): Promise<MacRecord | null> {
  const recs = await api<MacRecord[]>(h, 'directory.macs', { tenant }).catch(() => [] as MacRecord[]);
  return recs.find((r) => r.mac === mac) ?? null;
}

function fmtRecord(r: MacRecord | null): string {
  return r ? `record owner ${r.owner}, seq ${r.seq}, ips ${r.ips.join(',') || '-'}` : 'no record in the directory';
}

/** Per host: members, FDB rows of type directory, ARP suppressed/flooded, MAC records; and whether h2 has acme's VM on h1. */
async function showDirectory(out: (s?: string) => void, api: Api, vnis: Record<string, number>, only?: string[]): Promise<void> {
  const rows: string[][] = [];
  for (let h = 0; h < 3; h++) {
    const [status, stats, fdb] = await Promise.all([api<StatusResult>(h, 'status'), api<StatsSnapshot>(h, 'stats'), api<FdbRow[]>(h, 'fdb.show', {})]);
    for (const net of only ?? Object.keys(vnis)) {
      const t = stats.tenants.find((x) => x.tenant === net);
      if (!t) {
        rows.push([`h${h + 1}`, net, '-', '(not on this host)', '-', '-', '-']);
        continue;
      }
      const members = status.directory?.tenants[net] ?? [];
      const dirRows = fdb.filter((r) => r.tenant === net && r.type === 'directory').length;
      const recs = await api<MacRecord[]>(h, 'directory.macs', { tenant: net }).catch(() => [] as MacRecord[]);
      rows.push([
        `h${h + 1}`,
        net,
        String(t.vni),
        members.join(',') || '-',
        String(dirRows),
        `${t.arpSuppressed ?? 0}/${t.arpFlooded ?? 0}`,
        recs.length ? recs.map((r) => `${r.mac.slice(-2)}@${r.owner.split('.').pop()}#${r.seq}`).join(' ') : '-',
      ]);
    }
  }
  out(tableText(['host', 'network', 'VNI', 'members', 'FDB directory', 'ARP suppr/flooded', 'MAC records (mac@host#seq)'], rows));
  if (!only) {
    const fdb = await api<FdbRow[]>(1, 'fdb.show', { tenant: 'acme/web' }).catch(() => [] as FdbRow[]);
    const r = fdb.find((x) => x.mac === '02:00:00:00:01:01');
    const yes = r?.type === 'directory' && whereText(r.where) === `vtep ${HOSTS[0]}`;
    const why = !r
      ? "no FDB entry: unicast to it is flooded to the VNI's members"
      : r.type === 'learned'
        ? `${whereText(r.where)}, learned from the underlay`
        : `${whereText(r.where)}, ${r.type}`;
    out(`h2 has acme/web's VM on h1 from the directory: ${yes ? 'yes' : `no (${why})`}`);
  }
}

/** A table without its trailing newline (out() adds one). */
const tableText = (head: string[], rows: string[][]) => table(head, rows).trimEnd();
