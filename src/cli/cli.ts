/**
 * vtepd command line: run, check, demo, genkey and pubkey (node keys, in the text form of
 * `wg genkey` / `wg pubkey`), and the operator's verbs that talk to a running
 * daemon over its control socket (status, fdb, evpn routes and neighbors, peers, stats, reload,
 * restart, capture, trace, log level). Each of those finds the daemon by -s/--socket PATH, or by -c/--config
 * FILE (its control.socket), or $VTEPD_SOCKET, or the default config's control.socket, or at
 * /run/vtepd/vtepd.sock, and prints a readable table, or the API's JSON answer with --json
 * (a refusal, or no daemon: `{ ok: false, error: { code, message } }`, exit 1). run and
 * check read -c FILE, or $VTEPD_CONFIG, or /etc/vtepd/vtepd.yaml (the default config file).
 * The `net` verbs (create, delete, list, pool: tenant networks and their VNIs,
 * src/directory/nets.ts) talk to etcd itself (--etcd URL[,URL] or -c FILE's directory:), so
 * they need no running daemon; without an etcd URL they ask
 * the running daemon (API calls net.create, net.delete, net.list, net.pool). The `port` verbs
 * (add, del, list) attach a TAP in a network's VNI to the running daemon (API calls port.add,
 * port.del, port.list; src/ports/dynamic.ts).
 */
import { existsSync, fstatSync, readFileSync, realpathSync, type WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { VERSION } from '../util/paths.js';
import { openCaptureFile } from './capture-file.js';
import { DEFAULT_CONTROL_SOCKET, formatConfigErrorIn, LOG_LEVELS, type Config, type ConfigResult } from '../config/config.js';
import { loadConfig } from '../config/load.js';
import { formatPath } from '../config/schema.js';
import { hostWarnings } from '../daemon/explain.js';
import { RemoteError, request } from '../daemon/control.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf, readPrivateKeyFile } from '../secure/keys.js';
import type { PeerInfo, StatsSnapshot } from '../daemon/stats.js';
import { whereText, type FdbRow, type FdbWhere } from '../core/fdb.js';
import type { TraceResult } from '../core/trace.js';
import type { MacRecord } from '../directory/directory.js';
import type { EvpnNeighborRow, EvpnRouteRow } from '../directory/evpn-directory.js';
import {
  formatEvpnNeighbors,
  formatEvpnRoutes,
  formatFdb,
  formatMacRecords,
  formatPeers,
  formatStats,
  formatStatus,
  formatTrace,
  kindText,
  table,
  type StatusResult,
} from './table.js';

function load(path: string): Config {
  return loadChecked(path).config;
}
/** The config with its source positions; every error as `file:line:col: path: message`, then exit 1. */
function loadChecked(path: string): Extract<ConfigResult, { ok: true }> {
  const r = loadConfig(path);
  if (!r.ok) {
    for (const e of r.errors) process.stderr.write(`${formatConfigErrorIn(path, e)}\n`);
    if (r.errors.length > 1) process.stderr.write(`${path}: ${r.errors.length} errors\n`);
    process.exit(1);
  }
  for (const w of r.warnings ?? []) process.stderr.write(`${formatConfigErrorIn(path, w, 'warning')}\n`);
  return r;
}

/**
 * run's error about a config path (`tenants[0].ports[0].netns: namespace … does not exist`),
 * at the `file:line:col` of its value as check says it; other errors as `vtepd: message`.
 */
function runError(file: string, message: string, locate: Extract<ConfigResult, { ok: true }>['locate']): string {
  const m = /^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*): (.*)$/s.exec(message);
  const path = m?.[1]
    ?.split(/[.[\]]+/)
    .filter(Boolean)
    .map((x) => (/^\d+$/.test(x) ? Number(x) : x));
  const at = path && locate?.(path);
  return at ? formatConfigErrorIn(file, { path: m![1]!, message: m![2]!, line: at.line, col: at.col }) : `vtepd: ${message}`;
}

/** The config file when -c/--config is not given (run, check; a client's way to the socket): contrib/vtepd.service's. */
const SYSTEM_CONFIG = '/etc/vtepd/vtepd.yaml';
const DEFAULT_CONFIG = process.env.VTEPD_CONFIG || SYSTEM_CONFIG;

/** run's and check's config file: -c FILE, else the default, which must exist (said with what to do). */
function configPath(given: string | undefined): string {
  if (given) return given;
  if (!existsSync(DEFAULT_CONFIG)) {
    process.stderr.write(
      `vtepd: no config file: ${DEFAULT_CONFIG} (the default${process.env.VTEPD_CONFIG ? ', from $VTEPD_CONFIG' : ''}) does not exist; ` +
        'give one with -c FILE, or start from contrib/vtepd.example.yaml\n',
    );
    process.exit(1);
  }
  return DEFAULT_CONFIG;
}

/** The default config file when it exists and is valid (quietly: a client only looks for its control.socket there). */
function defaultConfig(): Config | undefined {
  if (!existsSync(DEFAULT_CONFIG)) return undefined;
  const r = loadConfig(DEFAULT_CONFIG);
  return r.ok ? r.config : undefined;
}

interface ClientOpts {
  socket?: string;
  config?: string;
  json?: boolean;
}

/** --socket, else --config's control.socket, else $VTEPD_SOCKET, else the default config's, else /run/vtepd/vtepd.sock. */
function socketOf(o: ClientOpts): string {
  if (o.socket) return o.socket;
  if (o.config) return load(o.config).control.socket;
  return process.env.VTEPD_SOCKET || defaultConfig()?.control.socket || DEFAULT_CONTROL_SOCKET;
}

/** The verb being run (set before its action), so that a refusal can name its flags. */
let running: Command | undefined;

/**
 * A daemon's refusal about an API field (`vtep: must be …`) said by the flag of the verb
 * being run that carries it (`--vtep: must be …`, `-t/--tenant: …`); other messages as they are.
 */
function asFlags(message: string, cmd: Command | undefined): string {
  const field = /^(\w+): /.exec(message)?.[1];
  const o = field === undefined ? undefined : cmd?.options.find((x) => x.long !== undefined && x.attributeName() === field);
  return o ? `${o.short ? `${o.short}/` : ''}${o.long}${message.slice(field!.length)}` : message;
}

/** Print an error from the daemon (with every config error's path) and exit 1. */
function fail(e: unknown, configPath?: string): never {
  const err = e as Error;
  process.stderr.write(`vtepd: ${e instanceof RemoteError ? asFlags(err.message, running) : err.message}\n`);
  if (e instanceof RemoteError) for (const x of e.errors ?? []) process.stderr.write(`${formatConfigErrorIn(configPath ?? 'config', x)}\n`);
  process.exit(1);
}

/** Ask the daemon; a refusal or no daemon exits 1 (with --json also as JSON on stdout: refuse). */
async function call<T>(o: ClientOpts, method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
  try {
    return await request<T>(socketOf(o), method, params, { timeoutMs });
  } catch (e) {
    refuse(o, e, codeOf(e));
  }
}

/** An error's code for --json: the daemon's (EINVAL, …), or the socket's (ENOENT, ECONNREFUSED: no daemon). */
function codeOf(e: unknown): string {
  if (e instanceof RemoteError) return e.code;
  return (e as NodeJS.ErrnoException).code ?? 'EIO';
}

function out(o: ClientOpts, result: unknown, readable: () => string): void {
  const text = o.json ? `${JSON.stringify(result, null, 2)}\n` : readable();
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** A flag's integer value in lo..hi, checked as commander parses it (never NaN downstream). */
function intOption(flag: string, lo: number, hi: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < lo || n > hi)
      throw new InvalidArgumentError(`${flag}: must be an integer ${lo}..${hi}, not "${v}"`);
    return n;
  };
}

/** The options every client verb takes: -s/--socket, -c/--config (the same on every verb), --json. */
function client(cmd: Command): Command {
  return cmd
    .option(
      '-s, --socket <path>',
      `the daemon's control socket (default $VTEPD_SOCKET, or the control.socket of the default config file, or ${DEFAULT_CONTROL_SOCKET})`,
    )
    .option('-c, --config <file>', "find the daemon by its config file's control.socket")
    .option('--json', 'print the JSON answer of the control API instead of a table', false);
}

/** -h/--human on a verb that prints byte counts (as ip -s -h); its help stays --help. */
function human(cmd: Command): Command {
  return cmd.helpOption('--help', 'display help for command').option('-h, --human', 'byte counts in K, M, G (powers of 1000, one decimal), as ip -s -h', false);
}

const program = new Command();
program
  .name('vtepd')
  .description('Userspace VXLAN virtual switch: per-tenant layer-2 overlays over TAP ports')
  .version(VERSION, '-V, --version', 'print the version of vtepd')
  .hook('preAction', (_program, verb) => {
    running = verb;
  });
program
  .command('version')
  .description('print the version of vtepd')
  .action(() => {
    process.stdout.write(`vtepd ${VERSION}\n`);
  });

program
  .command('run')
  .description('run the switch in the foreground until SIGINT/SIGTERM; TAPs are removed on exit; SIGHUP reloads the config')
  .option('-c, --config <file>', `YAML config file (default $VTEPD_CONFIG, or ${SYSTEM_CONFIG})`)
  .option('--takeover', 'take the TAPs and FDB over from the vtepd running on the control socket (restart without dropping traffic)', false)
  .action(async (opts: { config?: string; takeover: boolean }) => {
    opts.config = configPath(opts.config);
    const { config, locate } = loadChecked(opts.config);
    const { runDaemon } = await import('../daemon/runtime.js');
    let rt: Awaited<ReturnType<typeof runDaemon>>;
    try {
      rt = await runDaemon({ configPath: opts.config!, takeover: opts.takeover }, config);
    } catch (e) {
      process.stderr.write(`${runError(opts.config, (e as Error).message, locate)}\n`);
      process.exit(1);
    }
    const shutdown = async (sig: string) => {
      await rt.shutdown();
      process.stdout.write(`vtepd: stopped (${sig})\n`);
      process.exit(0);
    };
    process.on('SIGINT', () => void shutdown('SIGINT'));
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    const c = rt.daemon.running;
    const u = c.underlay;
    process.stdout.write(
      `vtepd: running, ${c.tenants.length} tenant(s), ${rt.daemon.ports.length} port(s)${rt.daemon.trunks.list().length ? `, ${rt.daemon.trunks.list().length} trunk(s)` : ''}, underlay ${u.local} udp/${u.port}, control ${c.control.socket}` +
        `${c.metrics ? `, metrics http://${c.metrics.listen}/metrics` : ''}, pid ${process.pid}\n`,
    );
  });

program
  .command('check')
  .description('validate a config file; print every error with its place; warn of what run would trip over on this host; exit 0 if valid, 1 if not')
  .option('-c, --config <file>', `YAML config file (default $VTEPD_CONFIG, or ${SYSTEM_CONFIG})`)
  .action(async (opts: { config?: string }) => {
    opts.config = configPath(opts.config);
    const { config, locate } = loadChecked(opts.config);
    const ports = config.tenants.reduce((n, t) => n + t.ports.length, 0);
    // The key file too: run refuses one group or others can read, so check does.
    let identity = '';
    if (config.identity) {
      try {
        identity = `, identity ${encodeKey(publicKeyOf(readPrivateKeyFile(config.identity.privateKeyFile)))}`;
      } catch (e) {
        process.stderr.write(`${opts.config}: ${(e as Error).message}\n`);
        process.exit(1);
      }
    }
    // What run would trip over on this host (a missing namespace, a name or port taken), where check can see it.
    for (const w of await hostWarnings(config)) {
      const at = locate?.(w.path);
      process.stderr.write(
        `${formatConfigErrorIn(opts.config, { path: formatPath(w.path), message: w.message, ...(at && { line: at.line, col: at.col }) }, 'warning')}\n`,
      );
    }
    const trunks = config.trunks.length
      ? `, ${config.trunks.length} trunk(s) with ${config.trunks.reduce((n, t) => n + t.vlans.length + (t.native ? 1 : 0) + t.tenants.length, 0)} VLAN(s)`
      : '';
    process.stdout.write(`${opts.config}: ok (${config.tenants.length} tenant(s), ${ports} port(s)${trunks}${identity})\n`);
  });

client(program.command('status').description('tenants, ports, peers, uptime of the running daemon')).action(async (o: ClientOpts) => {
  const s = await call<StatusResult>(o, 'status');
  out(o, s, () => formatStatus(s));
});

const fdb = program.command('fdb').description('show and change the MAC tables (FDB)');
interface FdbShowOpts extends ClientOpts {
  tenant?: string;
  vni?: number;
  mac?: string;
  port?: string;
  vtep?: string;
  vlan?: number;
}
client(fdb.command('show').description('MAC, where (port or VTEP), static/learned, age; the filters given must all match'))
  .argument('[tenant]', 'one tenant only (as --tenant)')
  .option('-t, --tenant <name>', 'one tenant only')
  .option('--vni <vni>', 'one VNI only', intOption('--vni', 1, 16777215))
  .option('-m, --mac <mac>', 'one MAC, in any common form: 02:00:00:00:09:09, 02-00-00-00-09-09, 0200.0000.0909')
  .option('--port <tap>', 'the entries at this local port')
  .option('--vtep <address>', 'the entries at this remote VTEP (any encapsulation)')
  .option('--vlan <id>', 'the entries learned on this VLAN of a trunk (0: untagged)', intOption('--vlan', 0, 4094))
  .action(async (tenant: string | undefined, o: FdbShowOpts) => {
    if (tenant !== undefined && o.tenant !== undefined && tenant !== o.tenant)
      refuse(o, new Error(`fdb show: two tenants given (${tenant} and --tenant ${o.tenant})`), 'EINVAL');
    const rows = await call<FdbRow[]>(o, 'fdb.show', { tenant: tenant ?? o.tenant, vni: o.vni, mac: o.mac, port: o.port, vtep: o.vtep, vlan: o.vlan });
    out(o, rows, () => formatFdb(rows));
  });
client(fdb.command('directory').description("the directory's MAC records of a tenant's VNI: owner VTEP, IPs, seq, pinned or frozen"))
  .requiredOption('-t, --tenant <name>', 'tenant')
  .action(async (o: ClientOpts & { tenant: string }) => {
    const rows = await call<(MacRecord & { frozen: boolean })[]>(o, 'directory.macs', { tenant: o.tenant });
    out(o, rows, () => formatMacRecords(rows));
  });
client(fdb.command('add').description('add a static entry at runtime (kept until deleted or the daemon stops; put it in the config to keep it)'))
  .requiredOption('-t, --tenant <name>', 'tenant')
  .requiredOption('-m, --mac <mac>', 'unicast MAC')
  .addOption(new Option('--vtep <address>', 'the remote VTEP the MAC is behind').conflicts('port'))
  .addOption(new Option('--port <tap>', 'the local port the MAC is behind').conflicts('vtep'))
  .action(async (o: ClientOpts & { tenant: string; mac: string; vtep?: string; port?: string }) => {
    if (!o.vtep && !o.port) refuse(o, new Error('fdb add: give --vtep ADDRESS or --port TAP'), 'EINVAL');
    const r = await call<{ tenant: string; mac: string; where: FdbWhere; replaced: Pick<FdbRow, 'where' | 'type'> | null }>(o, 'fdb.add', {
      tenant: o.tenant,
      mac: o.mac,
      vtep: o.vtep,
      port: o.port,
    });
    const was = r.replaced ? `; replaced the ${r.replaced.type} entry at ${whereText(r.replaced.where)}` : '';
    out(o, r, () => `${r.tenant}: ${r.mac} -> ${whereText(r.where)} (static${was})\n`);
  });
client(fdb.command('del').description('delete an entry (static or learned)'))
  .requiredOption('-t, --tenant <name>', 'tenant')
  .requiredOption('-m, --mac <mac>', 'MAC')
  .action(async (o: ClientOpts & { tenant: string; mac: string }) => {
    const r = await call<{ tenant: string; mac: string }>(o, 'fdb.del', { tenant: o.tenant, mac: o.mac });
    out(o, r, () => `${r.tenant}: ${r.mac} deleted\n`);
  });
client(fdb.command('flush').description('delete learned entries (static ones stay)'))
  .option('-t, --tenant <name>', 'one tenant only')
  .action(async (o: ClientOpts & { tenant?: string }) => {
    const r = await call<{ flushed: number }>(o, 'fdb.flush', { tenant: o.tenant });
    out(o, r, () => `flushed ${r.flushed} learned entr${r.flushed === 1 ? 'y' : 'ies'}${o.tenant ? ` of ${o.tenant}` : ''}\n`);
  });

const evpn = program.command('evpn').description('BGP EVPN (directory.evpn): the routes and the BGP sessions of the gobgpd vtepd uses');
client(evpn.command('routes').description("gobgpd's EVPN routes, this host's and the neighbors': type, VNI, MAC, IP, VTEP, sequence, sticky, from"))
  .option('--vni <vni>', 'one VNI only', intOption('--vni', 1, 16777215))
  .action(async (o: ClientOpts & { vni?: number }) => {
    const rows = await call<EvpnRouteRow[]>(o, 'evpn.routes', { vni: o.vni });
    out(o, rows, () => formatEvpnRoutes(rows));
  });
client(
  evpn.command('neighbors').description('the BGP neighbors: session state and for how long, ups and downs, routes received, accepted and advertised'),
).action(async (o: ClientOpts) => {
  const rows = await call<EvpnNeighborRow[]>(o, 'evpn.neighbors');
  out(o, rows, () => formatEvpnNeighbors(rows));
});

human(client(program.command('peers').description('VTEPs: liveness (last packet received), configured or learned, counters'))).action(
  async (o: ClientOpts & { human: boolean }) => {
    const r = await call<PeerInfo[]>(o, 'peers');
    out(o, r, () => formatPeers(r, o.human));
  },
);

human(client(program.command('stats').description('per tenant, port and peer: packets, bytes, drops by named reason')))
  .option('-a, --all', 'also list counters and drop reasons that are zero', false)
  .action(async (o: ClientOpts & { all: boolean; human: boolean }) => {
    const r = await call<StatsSnapshot>(o, 'stats');
    out(o, r, () => formatStats(r, o.all, o.human));
  });

client(program.command('reload').description('re-read the config file and apply it as a diff (a bad one is refused; the running config stays)')).action(
  async (o: ClientOpts) => {
    try {
      const r = await request<{ changes: string[]; runtimePorts?: { kept: string[]; dropped: string[] } }>(socketOf(o), 'reload', {}, { timeoutMs: 120_000 });
      const rp = r.runtimePorts;
      // What became of the ports attached at runtime (port add): kept, or dropped with why.
      const runtime = `${rp?.kept.length ? `ports attached at runtime kept: ${rp.kept.join(', ')}\n` : ''}${(rp?.dropped ?? []).map((d) => `port attached at runtime dropped: ${d}\n`).join('')}`;
      out(
        o,
        r,
        () => (r.changes.length ? `reloaded: ${r.changes.length} change(s)\n${r.changes.map((c) => `  ${c}\n`).join('')}` : 'reloaded: no change\n') + runtime,
      );
    } catch (e) {
      refuse(o, e, codeOf(e), e instanceof RemoteError ? /^(\S+): /.exec(e.message)?.[1] : undefined);
    }
  },
);

client(program.command('restart').description('replace the running daemon by a new process that takes over its TAPs and FDB (no TAP disappears)')).action(
  async (o: ClientOpts) => {
    const socket = socketOf(o);
    const r = await call<{ oldPid: number; newPid: number }>(o, 'restart', {}, 120_000);
    // The successor answers on the socket once it has taken over.
    let s: StatusResult | undefined;
    for (let i = 0; i < 100 && s?.pid !== r.newPid; i++) {
      s = await request<StatusResult>(socket, 'status', {}, { timeoutMs: 2000 }).catch(() => undefined);
      if (s?.pid !== r.newPid) await new Promise((res) => setTimeout(res, 50));
    }
    const result = { ...r, gapMs: s?.takeover?.gapMs ?? null };
    out(o, result, () => `restarted: pid ${r.oldPid} -> ${r.newPid}, forwarding paused ${result.gapMs ?? '?'} ms\n`);
  },
);

client(program.command('trace').description('which path a frame would take (learned entry, flood list, drop and why), without sending anything'))
  .requiredOption('-t, --tenant <name>', 'tenant')
  .requiredOption('--in <port|vtep>', 'where the frame comes in: a port (TAP) name, a trunk, or a VTEP address')
  .option('--vlan <id>', 'with --in TRUNK: the VLAN ID the frame is tagged with (default: untagged)', intOption('--vlan', 0, 4094))
  .requiredOption('--src <mac>', 'source MAC')
  .requiredOption('--dst <mac>', 'destination MAC')
  .action(async (o: ClientOpts & { tenant: string; in: string; vlan?: number; src: string; dst: string }) => {
    const r = await call<TraceResult>(o, 'trace', { tenant: o.tenant, in: o.in, src: o.src, dst: o.dst, ...(o.vlan !== undefined ? { vlan: o.vlan } : {}) });
    out(o, r, () => formatTrace(r));
  });

type FrameMeta = import('../daemon/capture.js').FrameMeta;

interface CaptureOpts extends ClientOpts {
  tenant?: string;
  port?: string;
  peer?: string;
  outer: boolean;
  write?: string;
  force: boolean;
  count?: number;
  seconds?: number;
}

/**
 * Stream a capture from the daemon: `frame` gets the pcap header, then each record with
 * where it was seen; `started` the sources. Resolves with the daemon's count (undefined if
 * Ctrl-C cut the stream).
 */
async function streamCapture(
  o: CaptureOpts,
  live: boolean,
  frame: (bytes: Buffer, meta?: FrameMeta) => void,
  started: (info: { sources: string[]; tenant: string }) => void,
): Promise<number | undefined> {
  const ac = new AbortController();
  process.on('SIGINT', () => ac.abort());
  process.on('SIGTERM', () => ac.abort());
  const params = { tenant: o.tenant, port: o.port, peer: o.peer, outer: o.outer, count: o.count, seconds: o.seconds, live };
  try {
    const r = await request<{ packets: number }>(socketOf(o), 'capture', params, {
      timeoutMs: 0,
      signal: ac.signal,
      onEvent: (name, body) => {
        if (name === 'started') started(body as { sources: string[]; tenant: string });
        else if (name === 'data') {
          const { data, ...meta } = body as { data: string } & Partial<FrameMeta>;
          frame(Buffer.from(String(data), 'base64'), meta.where === undefined ? undefined : (meta as FrameMeta));
        }
      },
    });
    return r.packets;
  } catch (e) {
    if (!ac.signal.aborted) refuse(o, e, codeOf(e));
    return undefined;
  }
}

function capturing(info: { sources: string[]; tenant: string }): void {
  process.stderr.write(`vtepd: tenant ${info.tenant}: capturing on ${info.sources.join('; ')}\n`);
}

/** -w FILE (or '-'): pcap, and a count (or --json summary) at the end. */
async function captureToFile(o: CaptureOpts & { write: string }): Promise<void> {
  const toStdout = o.write === '-';
  const file: WriteStream | NodeJS.WriteStream = toStdout ? process.stdout : openCaptureFile(o.write, o.force);
  let packets = -1; // the header is not a packet
  let bytes = 0;
  const counted = await streamCapture(
    o,
    false,
    (b) => {
      file.write(b);
      bytes += b.length;
      packets++;
    },
    capturing,
  );
  const n = counted ?? Math.max(0, packets);
  await new Promise<void>((r) => (toStdout ? r() : (file as WriteStream).end(() => r())));
  const where = toStdout ? 'standard output' : o.write;
  if (o.json && !toStdout) process.stdout.write(`${JSON.stringify({ packets: n, bytes, file: o.write }, null, 2)}\n`);
  else process.stderr.write(`vtepd: ${n} packet${n === 1 ? '' : 's'} captured to ${where}\n`);
}

/** No -w: one line per frame on standard output (one JSON object with --json), in time order. */
async function captureLive(o: CaptureOpts): Promise<void> {
  const { LiveView, frameJson, frameLine } = await import('./capture-view.js');
  let printed = 0;
  process.stdout.on('error', () => process.exit(0)); // the reader went away (| head)
  const view = new LiveView((r, meta) => {
    printed++;
    process.stdout.write(o.json ? `${JSON.stringify(frameJson(r, meta))}\n` : `${frameLine(r, meta)}\n`);
  });
  const tick = setInterval(() => view.flush(), 50);
  const counted = await streamCapture(o, true, (b, meta) => view.push(b, meta), capturing);
  clearInterval(tick);
  view.flush(true);
  const n = counted ?? printed;
  process.stderr.write(`vtepd: ${n} packet${n === 1 ? '' : 's'} captured\n`);
}

const log = program.command('log').description("the running daemon's logging");
client(
  log
    .command('level')
    .description('print the log level, or set it (like ovs-appctl vlog/set); it lasts until a reload changes log.level, or a restart')
    .addArgument(new Argument('[level]', 'the new level').choices(LOG_LEVELS)),
).action(async (level: string | undefined, o: ClientOpts) => {
  const r = await call<{ level: string; was: string }>(o, 'log.level', { level });
  out(o, r, () => (level === undefined ? `log level ${r.level}\n` : `log level ${r.was} -> ${r.level}\n`));
});

program
  .command('capture')
  .description(
    "a tenant's frames until --count frames, --seconds or Ctrl-C: one line per frame (like tcpdump -e), or pcap with -w " +
      '(inner frames; --outer: the VXLAN, GRE-TAP or NVGRE packets)',
  )
  .option('-t, --tenant <name>', 'tenant (not needed with --port: the port names its tenant)')
  .addOption(new Option('--port <tap>', 'frames of one local port').conflicts('peer'))
  .addOption(new Option('--peer <vtep>', 'frames exchanged with one VTEP').conflicts('port'))
  .option('--outer', 'the encapsulated packets on the underlay (with --peer or the tenant alone)', false)
  .option('-w, --write <file>', "write pcap to this file instead of printing, mode 0600, never through a symbolic link ('-': standard output)")
  .option('--force', 'overwrite the file if it exists', false)
  .option('--count <n>', 'stop after n frames', intOption('--count', 1, 2 ** 31))
  .option('--seconds <n>', 'stop after n seconds', intOption('--seconds', 1, 86400))
  .option(
    '-s, --socket <path>',
    `the daemon's control socket (default $VTEPD_SOCKET, or the control.socket of the default config file, or ${DEFAULT_CONTROL_SOCKET})`,
  )
  .option('-c, --config <file>', "find the daemon by its config file's control.socket")
  .option('--json', 'with -w: a JSON summary at the end; else one JSON object per frame', false)
  .action(async (o: CaptureOpts) => {
    if (o.tenant === undefined && o.port === undefined) {
      process.stderr.write('vtepd: capture: give --tenant NAME, or --port TAP (the port names its tenant)\n');
      process.exit(1);
    }
    if (o.write !== undefined) await captureToFile({ ...o, write: o.write });
    else await captureLive(o);
    process.exit(0);
  });

interface NetOpts {
  etcd?: string;
  prefix?: string;
  config?: string;
  socket?: string;
  json?: boolean;
}

/** The options of the `net` verbs: they talk to etcd, or without an etcd URL to the running daemon. */
function netClient(cmd: Command): Command {
  return cmd
    .option('--etcd <urls>', 'etcd client URL(s), comma-separated (default: $VTEPD_ETCD, or directory.etcd.endpoints of -c FILE or of the default config file)')
    .option('--prefix <prefix>', 'key prefix (default: directory.etcd.prefix of --config, or /vtepd/v1)')
    .option('-c, --config <file>', "take etcd's endpoints and prefix from this config's directory:")
    .option(
      '-s, --socket <path>',
      "without an etcd URL: ask the running daemon (its directory's etcd) on this control socket (default $VTEPD_SOCKET or /run/vtepd/vtepd.sock)",
    )
    .option('--json', 'print JSON instead of text', false);
}

/**
 * Run a `net` verb: on etcd itself when an etcd URL is known (--etcd, $VTEPD_ETCD, --config's
 * directory:), else through the running daemon's API (`method` with `params`). Print the
 * answer (text or --json); on a refusal exit 1 (with --json, `{ ok: false, error: { code, message } }`).
 */
async function withNets<T>(
  o: NetOpts,
  f: (nets: import('../directory/nets.js').Nets) => Promise<T>,
  method: string,
  params: Record<string, unknown>,
  readable: (r: T) => string,
): Promise<never> {
  const { EtcdClient } = await import('../directory/etcd.js');
  const { Nets, NetError } = await import('../directory/nets.js');
  const cfg = o.config ? load(o.config) : defaultConfig();
  const dir = cfg?.directory?.etcd;
  const endpoints = (o.etcd ?? process.env.VTEPD_ETCD ?? dir?.endpoints.join(',') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (endpoints.length === 0) {
    if (o.prefix) fail(new Error('net: --prefix needs --etcd (the daemon uses its own directory prefix)'));
    return ask(o, o.socket || cfg?.control.socket || process.env.VTEPD_SOCKET || DEFAULT_CONTROL_SOCKET, method, params, readable);
  }
  const etcd = new EtcdClient({ endpoints, timeoutMs: 5000 });
  try {
    const r = await f(new Nets(etcd, { prefix: o.prefix ?? dir?.prefix }));
    out(o, r, () => readable(r));
    etcd.close();
    process.exit(0);
  } catch (e) {
    etcd.close();
    refuse(o, e, e instanceof NetError ? e.code : 'etcd');
  }
}

/**
 * A refusal: exit 1, the message on stderr; with --json also `{ ok: false, error: { code, message } }`
 * on stdout (a refusal of the daemon's as it sent it, config errors in `error.errors`).
 */
function refuse(o: { json?: boolean }, e: unknown, code: string, configPath?: string): never {
  const error = e instanceof RemoteError ? e.body : { code, message: (e as Error).message };
  if (o.json) process.stdout.write(`${JSON.stringify({ ok: false, error }, null, 2)}\n`);
  fail(e, configPath);
}

/** Ask the daemon on `socket`, print the answer (text or --json) and exit 0; a refusal keeps its code (refuse). */
async function ask<T>(o: { json?: boolean }, socket: string, method: string, params: Record<string, unknown>, readable: (r: T) => string): Promise<never> {
  let r: T;
  try {
    r = await request<T>(socket, method, params, { timeoutMs: 15_000 });
  } catch (e) {
    refuse(o, e, codeOf(e));
  }
  out(o, r!, () => readable(r));
  process.exit(0);
}

function intArg(what: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) fail(new Error(`${what}: must be an integer`));
  return Number(v);
}

const net = program.command('net').description('tenant networks in etcd (VNIs from a pool, claimed by transaction): create, delete, list, pool');
netClient(net.command('create').description('create a network with a free VNI from the pool (or --vni, which must be in the pool and free)'))
  .requiredOption('-t, --tenant <tenant>', 'tenant (1..32 of A-Z a-z 0-9 _ . -)')
  .requiredOption('-n, --name <name>', 'network name (1..32 of A-Z a-z 0-9 _ . -)')
  .option('--vni <vni>', 'this VNI instead of the next free one')
  .action((o: NetOpts & { tenant: string; name: string; vni?: string }) =>
    withNets(
      o,
      (nets) => nets.create({ tenant: o.tenant, name: o.name, vni: intArg('vni', o.vni) }),
      'net.create',
      { tenant: o.tenant, name: o.name, vni: intArg('vni', o.vni) },
      (r) => `${r.tenant}/${r.name}: created, vni ${r.vni}\n`,
    ),
  );
netClient(net.command('delete').description('delete a network and free its VNI'))
  .requiredOption('-t, --tenant <tenant>', 'tenant')
  .requiredOption('-n, --name <name>', 'network name')
  .action((o: NetOpts & { tenant: string; name: string }) =>
    withNets(
      o,
      (nets) => nets.delete({ tenant: o.tenant, name: o.name }),
      'net.delete',
      { tenant: o.tenant, name: o.name },
      (r) => `${r.tenant}/${r.name}: deleted, vni ${r.vni} freed\n`,
    ),
  );
netClient(net.command('list').description('the networks (of one tenant) and their VNIs'))
  .option('-t, --tenant <tenant>', 'one tenant only')
  .action((o: NetOpts & { tenant?: string }) =>
    withNets(
      o,
      (nets) => nets.list(o.tenant),
      'net.list',
      { tenant: o.tenant },
      (rows) => {
        const w1 = Math.max(6, ...rows.map((r) => r.tenant.length));
        const w2 = Math.max(7, ...rows.map((r) => r.name.length));
        const line = (a: string, b: string, c: string) => `${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}\n`;
        return rows.length === 0 ? 'no networks\n' : line('TENANT', 'NETWORK', 'VNI') + rows.map((r) => line(r.tenant, r.name, String(r.vni))).join('');
      },
    ),
  );
netClient(net.command('pool').description('show the VNI pool, or set it with --first and --last (existing networks keep their VNIs)'))
  .option('--first <vni>', 'first VNI of the pool')
  .option('--last <vni>', 'last VNI of the pool (inclusive)')
  .action((o: NetOpts & { first?: string; last?: string }) => {
    if ((o.first === undefined) !== (o.last === undefined)) fail(new Error('net pool: give both --first and --last, or neither'));
    return withNets(
      o,
      async (nets) => (o.first !== undefined ? nets.setPool(intArg('first', o.first)!, intArg('last', o.last)!) : ((await nets.pool()) ?? null)),
      'net.pool',
      { first: intArg('first', o.first), last: intArg('last', o.last) },
      (p) => (p ? `pool ${p.first}..${p.last} (${p.last - p.first + 1} VNIs)\n` : 'no pool set\n'),
    );
  });

interface PortRow {
  net: string | null;
  vni: number;
  tenant: string | null;
  tap: string;
  kind?: string;
  waiting?: boolean;
  netns?: string;
  address?: string;
  mac: string | null;
  mtu: number | null;
}
const port = program
  .command('port')
  .description("ports attached to the running daemon at runtime, in a directory network's VNI: add, del, list (kept across reloads and restarts)");
client(
  port
    .command('add')
    .description(
      "attach a TAP to the tenant of a network (net create) on this host, the host joins its VNI; or an interface that exists (a VM's TAP) to a tenant of the config",
    ),
)
  .option('--net <tenant/name>', 'the network, like acme/web')
  .option('--tenant <name>', 'a tenant of the config (instead of --net)')
  .option('--tap <name>', 'TAP interface name (1..15 bytes): vtepd creates it')
  .option('--attach <name>', "an interface that exists, like a hypervisor's vnet7 (waited for if it does not exist yet)")
  .option('--netns <ns>', 'the namespace (under /run/netns) to create the TAP in, or of the interface to attach')
  .option('--address <cidr>', 'interface address with prefix length, like 10.1.0.5/24 or 2001:db8::5/64')
  .option('--mac <mac>', 'unicast MAC of the TAP (default: the kernel picks one)')
  .option('--mtu <n>', "TAP MTU (default: the underlay's MTU minus the tenant's overhead)")
  .action((o: ClientOpts & { net?: string; tenant?: string; tap?: string; attach?: string; netns?: string; address?: string; mac?: string; mtu?: string }) => {
    if ((o.net === undefined) === (o.tenant === undefined)) refuse(o, new Error('port add: give --net (a network) or --tenant (of the config)'), 'invalid');
    if ((o.tap === undefined) === (o.attach === undefined))
      refuse(o, new Error('port add: give --tap (a TAP vtepd creates) or --attach (an interface that exists)'), 'invalid');
    let mtu: number | undefined;
    if (o.mtu !== undefined) {
      if (!/^\d+$/.test(o.mtu)) refuse(o, new Error(`mtu: must be an integer 68..65535, not ${o.mtu}`), 'invalid');
      mtu = Number(o.mtu);
    }
    const params = { net: o.net, tenant: o.tenant, tap: o.tap, attach: o.attach, netns: o.netns, address: o.address, mac: o.mac, mtu };
    return ask<PortRow & { mtu: number }>(o, socketOf(o), 'port.add', params, (r) => {
      const waits = r.waiting ? ': the interface does not exist yet, attached when it appears' : '';
      return r.net === null
        ? `port ${r.tap} (${r.kind}) in tenant ${r.tenant} (VNI ${r.vni})${waits}\n`
        : `port ${r.tap} in ${r.net} (VNI ${r.vni})${r.tenant !== r.net ? `, tenant ${r.tenant}` : ''}${waits}\n`;
    });
  });
client(
  port
    .command('del')
    .description(
      'detach a port attached by port add (its TAP is deleted; an attached interface is left as it was); the host leaves the VNI with its last port',
    ),
)
  .option('--tap <name>', 'TAP interface name')
  .option('--attach <name>', 'the attached interface')
  .option('--net <tenant/name>', 'refuse unless the port is in this network')
  .action((o: ClientOpts & { tap?: string; attach?: string; net?: string }) => {
    if ((o.tap === undefined) === (o.attach === undefined)) refuse(o, new Error('port del: give --tap or --attach'), 'invalid');
    return ask<PortRow & { tenantRemoved: boolean }>(
      o,
      socketOf(o),
      'port.del',
      { tap: o.tap, attach: o.attach, net: o.net },
      (r) => `port ${r.tap} removed from ${r.net ?? `tenant ${r.tenant}`} (VNI ${r.vni})${r.tenantRemoved ? `, tenant ${r.tenant} removed` : ''}\n`,
    );
  });
client(port.command('list').description('the ports attached at runtime (the config file has the others)')).action((o: ClientOpts) =>
  ask<PortRow[]>(o, socketOf(o), 'port.list', {}, (rows) =>
    rows.length === 0
      ? 'no ports attached by port add\n'
      : table(
          ['PORT', 'NET', 'VNI', 'TENANT', 'NETNS', 'ADDRESS', 'MAC', 'MTU', 'KIND'],
          rows.map((r) => [
            r.tap,
            r.net ?? '-',
            r.vni,
            r.tenant ?? '(not running)',
            r.netns ?? '-',
            r.address ?? '-',
            r.mac ?? '-',
            r.mtu ?? '-',
            kindText(r.kind, r.waiting),
          ]),
        ),
  ),
);

program
  .command('genkey')
  .description('print a new private key (base64, like wg genkey); keep it private: umask 077; vtepd genkey > key')
  .action(() => {
    try {
      const st = fstatSync(1);
      if (st.isFile() && st.mode & 0o077)
        process.stderr.write('vtepd genkey: warning: writing a private key to a file that group or others can access; run umask 077 first\n');
    } catch {
      // standard output is not something fstat knows: nothing to warn about
    }
    process.stdout.write(`${encodeKey(generatePrivateKey())}\n`);
  });

program
  .command('pubkey')
  .description('read a private key on standard input and print its public key (like wg pubkey)')
  .action(() => {
    let text: string;
    try {
      text = readFileSync(0, 'utf8');
    } catch (e) {
      fail(new Error(`pubkey: cannot read standard input (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`));
    }
    const key = decodeKey(text.trim());
    if (!Buffer.isBuffer(key)) fail(new Error(`pubkey: the private key on standard input ${key.error}`));
    process.stdout.write(`${encodeKey(publicKeyOf(key))}\n`);
  });

program
  .command('demo')
  .description('build two hosts and two tenants in network namespaces, ping and iperf3 through the overlay, print the results, clean up')
  .option('-t, --seconds <n>', 'iperf3 duration in seconds', intOption('--seconds', 1, 3600), 3)
  .option('--kernel', 'also measure the kernel VXLAN on the same veth for comparison', false)
  .option('--keep', 'leave the namespaces and daemons up, print their configs, what to try and how to remove them', false)
  .option('--clean <id>', 'remove a demo left up by --keep: stop its daemons (by the PIDs it recorded), delete its namespaces')
  .option(
    '--directory',
    'instead: a private etcd and three hosts with no flood lists; net create of two tenants, port add, pings, isolation, a port moved (docs/directory.md)',
    false,
  )
  .action(async (opts: { seconds: number; kernel: boolean; directory: boolean; keep: boolean; clean?: string }) => {
    if (opts.clean !== undefined) {
      const { cleanDemo } = await import('../../lab/demo-keep.js');
      const said = (l: string) => process.stdout.write(`${l}\n`);
      process.exit((await cleanDemo(opts.clean, said).catch((e: Error) => fail(e))) ? 0 : 1);
    }
    if (opts.directory && opts.keep) fail(new Error('demo: --keep leaves the two-host demo up; --directory has no --keep'));
    if (opts.directory) {
      const { directoryDemo } = await import('../../lab/demo-directory.js');
      process.exit((await directoryDemo()) ? 0 : 1);
    }
    const { demo } = await import('../../lab/demo.js');
    const ok = await demo({ seconds: opts.seconds, kernel: opts.kernel, keep: opts.keep });
    process.exit(ok ? 0 : 1);
  });

program
  .command('schema')
  .description("print the JSON Schema of the config file (as contrib/vtepd.schema.json), for an editor's YAML language server")
  .action(async () => {
    const { configJsonSchemaText } = await import('../config/json-schema.js');
    process.stdout.write(configJsonSchemaText());
  });
program
  .command('completion')
  .description('print the completion script of a shell: source <(vtepd completion bash)')
  // The choices are for the completion; any other shell is refused below, by name.
  .addArgument(new Argument('<shell>', 'bash (the only one)').choices(['bash']).argParser((v: string) => v))
  .action(async (shell: string) => {
    if (shell !== 'bash') fail(new Error(`completion: no completion for "${shell}"; there is one for bash`));
    const { bashCompletion } = await import('./completion.js');
    process.stdout.write(bashCompletion(program));
  });

/** The command line, defined; imported (tests, the completion), it runs nothing. */
export { program };

/** Run the verb of the command line (bin/vtepd.js; `node dist/src/cli/cli.js` runs it too). */
export function main(argv: string[] = process.argv): void {
  program.parseAsync(argv).catch((e: unknown) => {
    process.stderr.write(`vtepd: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main();
