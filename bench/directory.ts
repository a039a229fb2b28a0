/**
 * `npm run bench:directory`: simulated VTEPs against a real etcd (a private etcd-server 3.4
 * on 127.0.0.1, lab/etcd.ts). The VTEPs are lightweight clients on src/directory/etcd.ts,
 * not daemons: each has its own lease (kept alive every TTL/3) and writes the keys of the
 * directory's data model (docs/directory.md):
 *   PREFIX/vteps/<address>           {address, port, role}          under its lease
 *   PREFIX/members/<vni>/<address>   {address, port}                under its lease
 *   PREFIX/macs/<vni>/<mac>          {owner, port, ips, seq}        under the owner's lease
 * A move is a txn: compare the MAC key's modRevision with the one the mover read, put
 * seq + 1 with the new owner and its lease.
 *
 * What runs, in order:
 *   1. reference: a fresh etcd, the same number of keys as plain puts (no lease, no txn),
 *      32 in flight, as `etcdctl check perf` loads it (`--ref-keys`, default N×M/5);
 *   2. cold start on a second fresh etcd: the sampled watchers start watching PREFIX/macs/,
 *      then every VTEP grants its lease and writes its vtep, member and MAC keys in txns of
 *      at most 128 ops, all at once; converged when every sampled watcher has seen every MAC;
 *   3. moves: `--moves` MACs, one after another, each claimed by another member of its VNI;
 *      latency from sending the txn to each sampled watcher seeing seq + 1;
 *   4. steady state: nothing changes for `--steady` seconds, the leases are kept alive;
 *   5. etcd's CPU (/proc/PID/stat) and RSS (VmRSS sampled, VmHWM), db size
 *      (/v3/maintenance/status), events sent (its /metrics), keepalives, lost leases.
 * Sampling: all N VTEPs write and keep their leases, but only `--watchers` of them watch
 * (each its own HTTP stream, the whole PREFIX/macs/ prefix: the worst case of a host that
 * watches every VNI). A real deployment has N watchers; see docs/directory.md, "Scale".
 *
 *   --vteps 1000  --macs 100 (per VTEP)  --vnis 100  --vnis-per-vtep 3
 *   --watchers 10 --moves 200  --ttl 10 (lease TTL, s; vtepd's default)
 *   --clients N (EtcdClients the VTEPs share; default one per VTEP)
 *   --deadline 300 (s the cold start may take; the table then says who had not converged)
 *   --steady 2×TTL (s of keepalives only, at the end)  --ref-keys N  --quick (50 VTEPs × 20 MACs, 10 VNIs, 5 watchers, 50 moves)
 * Results: a table on stdout, progress on stderr, bench/results/directory-<date>.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'node:http';
import { EtcdClient, EtcdLeaseNotFound, type Lease, type Op } from '../src/directory/etcd.js';
import { type EtcdMember, startEtcd } from '../lab/etcd.js';
import { markdownTable } from './table.js';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const PREFIX = '/vtepd/v1';
const PORT = 4789;

const { values: argv } = parseArgs({
  options: {
    vteps: { type: 'string' },
    macs: { type: 'string' },
    vnis: { type: 'string' },
    'vnis-per-vtep': { type: 'string' },
    watchers: { type: 'string' },
    moves: { type: 'string' },
    ttl: { type: 'string' },
    clients: { type: 'string' },
    steady: { type: 'string' },
    deadline: { type: 'string' },
    'ref-keys': { type: 'string' },
    quick: { type: 'boolean' },
  },
});
const q = argv.quick === true;
const int = (v: string | undefined, dflt: number, min = 1): number => {
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`bench:directory: expected an integer >= ${min}, got ${v}`);
  return n;
};
const VTEPS = int(argv.vteps, q ? 50 : 1000);
const MACS = int(argv.macs, q ? 20 : 100);
const VNIS = int(argv.vnis, q ? 10 : 100);
const PER = Math.min(VNIS, int(argv['vnis-per-vtep'], 3));
const WATCHERS = Math.min(VTEPS, int(argv.watchers, q ? 5 : 10));
const MOVES = int(argv.moves, q ? 50 : 200, 0);
const TTL = int(argv.ttl, 10);
const CLIENTS = Math.min(VTEPS, int(argv.clients, VTEPS));
const STEADY = int(argv.steady, 2 * TTL, 0);
const DEADLINE = int(argv.deadline, 300);
const REF_KEYS = int(argv['ref-keys'], Math.max(1000, Math.round((VTEPS * MACS) / 5)));

// ---------------------------------------------------------------------------------------
// The simulated overlay (deterministic: a seeded PRNG)

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = prng(13);
const ip4 = (a: number, n: number) => `${a}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
const hex2 = (n: number) => (n & 255).toString(16).padStart(2, '0');
const macOf = (n: number) => `02:00:${hex2(n >> 24)}:${hex2(n >> 16)}:${hex2(n >> 8)}:${hex2(n)}`;

interface Vtep {
  index: number;
  address: string;
  vnis: number[];
  /** Its MACs: [vni, mac, ip]. */
  macs: [number, string, string][];
  client: EtcdClient;
  lease?: Lease;
}

const members = new Map<number, number[]>(); // vni -> vtep indexes
const vteps: Vtep[] = [];
const macCount = VTEPS * MACS;

function buildOverlay(clients: EtcdClient[]): void {
  const vniIds = Array.from({ length: VNIS }, (_, i) => 10000 + i);
  for (const v of vniIds) members.set(v, []);
  let macN = 0;
  for (let i = 0; i < VTEPS; i++) {
    // Each VTEP joins PER distinct VNIs; VTEP i always joins VNI i mod VNIS, so none is empty.
    const mine = new Set<number>([vniIds[i % VNIS]!]);
    while (mine.size < PER) mine.add(vniIds[Math.floor(rand() * VNIS)]!);
    const vnis = [...mine];
    for (const v of vnis) members.get(v)!.push(i);
    const macs: [number, string, string][] = [];
    for (let k = 0; k < MACS; k++) {
      macN++;
      macs.push([vnis[k % vnis.length]!, macOf(macN), ip4(172, macN)]);
    }
    vteps.push({ index: i, address: ip4(10, i + 1), vnis, macs, client: clients[i % clients.length]! });
  }
}

const macKey = (vni: number, mac: string) => `${PREFIX}/macs/${vni}/${mac}`;
const macValue = (owner: string, ip: string, seq: number) => JSON.stringify({ owner, port: PORT, ips: [ip], seq });

function publishOps(v: Vtep, lease: string): Op[] {
  const ops: Op[] = [{ type: 'put', key: `${PREFIX}/vteps/${v.address}`, value: JSON.stringify({ address: v.address, port: PORT, role: 'vtep' }), lease }];
  for (const vni of v.vnis)
    ops.push({ type: 'put', key: `${PREFIX}/members/${vni}/${v.address}`, value: JSON.stringify({ address: v.address, port: PORT }), lease });
  for (const [vni, mac, ip] of v.macs) ops.push({ type: 'put', key: macKey(vni, mac), value: macValue(v.address, ip, 1), lease });
  return ops;
}

// ---------------------------------------------------------------------------------------
// etcd's side: CPU, memory, metrics, status

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}
function statusMB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return Number.NaN; // it exited
  }
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

/** etcd's Prometheus text (/metrics) as series -> value. */
async function metrics(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await httpGet(`${url}/metrics`)).split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

async function dbSize(client: EtcdClient): Promise<{ dbSize: number; dbSizeInUse: number }> {
  const r = await client.call<{ dbSize?: string; dbSizeInUse?: string }>('/v3/maintenance/status', {});
  return { dbSize: Number(r.dbSize ?? 0), dbSizeInUse: Number(r.dbSizeInUse ?? 0) };
}

/** Samples etcd's VmRSS and the load while a phase runs. */
class Sampler {
  peakRss = 0;
  private timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 250);
  }
  private sample(): void {
    this.peakRss = Math.max(this.peakRss, statusMB(this.pid, 'VmRSS'));
  }
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

interface Phase {
  seconds: number;
  etcdCpuSeconds: number;
  benchCpuSeconds: number;
}
async function phase<T>(pid: number, f: () => Promise<T>): Promise<{ value: T; phase: Phase }> {
  const t0 = performance.now();
  const c0 = cpuSeconds(pid);
  const o0 = ownCpuSeconds();
  const value = await f();
  return {
    value,
    phase: { seconds: (performance.now() - t0) / 1000, etcdCpuSeconds: cpuSeconds(pid) - c0, benchCpuSeconds: ownCpuSeconds() - o0 },
  };
}

// ---------------------------------------------------------------------------------------
// Helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function progress(what: string): void {
  process.stderr.write(`[bench:directory ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
}
function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}
/** Run `f` over `items` with at most `n` at once. */
async function pool<T>(items: T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}
const fix = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');
const thousands = (n: number) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------------------------------
// 1. Reference: plain puts

async function reference(): Promise<{ keys: number; seconds: number; putsPerSecond: number; etcdCpuSeconds: number }> {
  const etcd = await startEtcd();
  const client = new EtcdClient({ endpoints: [etcd.url], maxInFlight: 32 });
  try {
    const keys = Array.from({ length: REF_KEYS }, (_, i) => i);
    const value = macValue('10.0.0.1', '172.0.0.1', 1);
    let done = 0;
    const tick = setInterval(() => progress(`reference: ${thousands(done)}/${thousands(REF_KEYS)} plain puts`), 3000);
    const { phase: p } = await phase(etcd.pid!, () =>
      pool(keys, 32, async (i) => {
        await client.put(`${PREFIX}/ref/${macOf(i)}`, value);
        done++;
      }),
    );
    clearInterval(tick);
    return { keys: REF_KEYS, seconds: p.seconds, putsPerSecond: REF_KEYS / p.seconds, etcdCpuSeconds: p.etcdCpuSeconds };
  } finally {
    client.close();
    await etcd.destroy();
  }
}

// ---------------------------------------------------------------------------------------
// 2.–3. Cold start and moves

interface SampledWatcher {
  seen: Set<string>;
  events: number;
  convergedAt: number;
  reconnects: () => number;
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  const command = `npm run bench:directory --${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  progress(
    `${VTEPS} VTEPs × ${MACS} MACs = ${thousands(macCount)} MAC keys, ${VNIS} VNIs (${PER} per VTEP), ${WATCHERS} sampled watchers, ${MOVES} moves, lease TTL ${TTL} s, ${CPUS} CPUs`,
  );
  progress(`reference: ${thousands(REF_KEYS)} plain puts (no lease, no txn, 32 in flight) on a fresh etcd`);
  const ref = await reference();
  progress(`reference: ${fix(ref.putsPerSecond, 0)} puts/s`);

  const etcd: EtcdMember = await startEtcd();
  const pid = etcd.pid!;
  const version = (JSON.parse(await httpGet(`${etcd.url}/version`)) as { etcdserver?: string }).etcdserver ?? '?';
  // One client per VTEP by default (its own connections, as each host has): a client shared
  // by many VTEPs would queue their keepalives behind each other on its 4 lease sockets.
  const clients = Array.from({ length: CLIENTS }, () => new EtcdClient({ endpoints: [etcd.url], maxInFlight: 4, timeoutMs: 30_000 }));
  const watchClient = new EtcdClient({ endpoints: [etcd.url] });
  const admin = new EtcdClient({ endpoints: [etcd.url] });
  const errors: string[] = [];
  const noteError = (where: string) => (e: Error) => {
    if (errors.length < 20) errors.push(`${where}: ${e.message}`);
  };
  let lost = 0;
  let republished = 0;
  let retries = 0;
  let gaveUp = 0;
  const rssBase = statusMB(pid, 'VmRSS');
  const db0 = await dbSize(admin);
  try {
    buildOverlay(clients);

    // Sampled watchers: every event under PREFIX/macs/, from the revision before the start.
    const rev0 = (await admin.range(`${PREFIX}/`, { prefix: true, countOnly: true })).revision;
    const moveSent = new Map<string, { seq: number; sent: number; acked: number; seenBy: number[] }>();
    const watchers: SampledWatcher[] = [];
    let t0 = 0;
    for (let w = 0; w < WATCHERS; w++) {
      const sw: SampledWatcher = { seen: new Set(), events: 0, convergedAt: 0, reconnects: () => 0 };
      const watcher = watchClient.watch(
        `${PREFIX}/macs/`,
        { prefix: true, startRevision: rev0 + 1 },
        {
          onEvents: (events) => {
            const now = performance.now();
            sw.events += events.length;
            for (const e of events) {
              if (e.type !== 'put') continue;
              if (sw.convergedAt === 0) {
                sw.seen.add(e.kv.key);
                if (sw.seen.size === macCount) sw.convergedAt = now;
              }
              const m = moveSent.get(e.kv.key);
              if (m && e.kv.version > 1 && (JSON.parse(e.kv.value) as { seq: number }).seq === m.seq) m.seenBy[w] = now;
            }
          },
          onCompacted: () => noteError('watch')(new Error('compacted')),
          onError: noteError('watch'),
        },
      );
      sw.reconnects = () => watcher.reconnects;
      watchers.push(sw);
    }

    // Cold start: every VTEP at once (each client bounds its own requests in flight).
    const metrics0 = await metrics(etcd.url);
    const sampler = new Sampler(pid);
    let leases = 0;
    let txns = 0;
    let written = 0;
    let writtenAt = 0;
    const tick = setInterval(() => {
      const seen = watchers.map((w) => w.seen.size);
      progress(
        `cold start ${fix((performance.now() - t0) / 1000)} s: leases ${leases}/${VTEPS} (${lost} lost, ${republished} re-granted), VTEPs published ${written}/${VTEPS} (${txns} txns), watchers have seen ${thousands(Math.min(...seen))}–${thousands(Math.max(...seen))} of ${thousands(macCount)} MACs; etcd RSS ${fix(statusMB(pid, 'VmRSS'))} MB`,
      );
    }, 3000);
    // One VTEP's start: its lease, then its keys (vtep, members, MACs) in txns of <= 128 ops.
    const startVtep = async (v: Vtep) => {
      if (!v.lease) {
        v.lease = await v.client.lease(TTL, {
          onLost: () => {
            lost++;
          },
          // What a daemon does: etcd dropped the lease (and its keys), publish again under the new one.
          onRegranted: (id) => {
            republished++;
            v.client.batch(publishOps(v, id)).catch(noteError('republish'));
          },
          onError: noteError('lease'),
        });
        leases++;
      }
      const b = await v.client.batch(publishOps(v, v.lease.id));
      txns += b.txns;
      written++;
    };
    const cold = await phase(pid, async () => {
      t0 = performance.now();
      await Promise.all(
        vteps.map(async (v) => {
          // A daemon retries until etcd answers; so does each simulated VTEP (counted).
          for (;;) {
            try {
              await startVtep(v);
              return;
            } catch (e) {
              retries++;
              noteError('start')(e as Error);
              if (e instanceof EtcdLeaseNotFound && v.lease) {
                // The lease expired before the keys were written: a new lease, then the keys.
                v.lease.stop();
                v.lease = undefined;
                leases--;
              }
              if (performance.now() - t0 > DEADLINE * 1000) {
                gaveUp++;
                return;
              }
              await sleep(500);
            }
          }
        }),
      );
      writtenAt = performance.now();
      while (watchers.some((w) => w.convergedAt === 0) && performance.now() - t0 < DEADLINE * 1000) await sleep(20);
    });
    clearInterval(tick);
    sampler.stop();
    const metrics1 = await metrics(etcd.url);
    // A watcher that never saw everything within the deadline counts as not converged (NaN).
    const perWatcher = watchers.map((w) => (w.convergedAt > 0 ? (w.convergedAt - t0) / 1000 : Number.NaN));
    const notConverged = watchers.filter((w) => w.convergedAt === 0).map((w) => w.seen.size);
    const coldEvents = watchers.reduce((s, w) => s + w.events, 0);
    const db1 = await dbSize(admin);
    progress(`cold start: converged in ${fix(Math.max(...perWatcher), 2)} s (all writes acknowledged after ${fix((writtenAt - t0) / 1000, 2)} s)`);

    // Moves: one after another, each MAC to another member of its VNI.
    const moveLatencies: number[] = [];
    const commitLatencies: number[] = [];
    let moveFailures = 0;
    let movesTried = 0;
    const moveSampler = new Sampler(pid);
    const moves = await phase(pid, async () => {
      const movesUntil = performance.now() + 120_000;
      for (let m = 0; m < MOVES; m++) {
        if (performance.now() > movesUntil) {
          noteError('moves')(new Error(`stopped after ${m} moves: the moves phase may take 120 s`));
          break;
        }
        movesTried++;
        const from = vteps[Math.floor(rand() * VTEPS)]!;
        const [vni, mac, ip] = from.macs[Math.floor(rand() * from.macs.length)]!;
        const others = members.get(vni)!.filter((i) => i !== from.index);
        if (others.length === 0) continue;
        const to = vteps[others[Math.floor(rand() * others.length)]!]!;
        const key = macKey(vni, mac);
        const cur = await to.client.get(key).catch(noteError('move'));
        if (!cur) {
          moveFailures++;
          continue;
        }
        const seq = (JSON.parse(cur.value) as { seq: number }).seq + 1;
        const rec = { seq, sent: performance.now(), acked: 0, seenBy: new Array<number>(WATCHERS).fill(0) };
        moveSent.set(key, rec);
        const r = await to.client
          .txn({
            compare: [{ key, target: 'modRevision', value: cur.modRevision }],
            success: [{ type: 'put', key, value: macValue(to.address, ip, seq), lease: to.lease!.id }],
          })
          .catch((e: Error) => {
            noteError('move')(e); // e.g. the new owner's lease expired and is being re-granted
            return { succeeded: false };
          });
        rec.acked = performance.now();
        if (!r.succeeded) {
          moveFailures++;
          moveSent.delete(key);
          continue;
        }
        commitLatencies.push(rec.acked - rec.sent);
        // Give every sampled watcher the move before the next (a deadline, not a fixed wait).
        const deadline = performance.now() + 5_000;
        while (rec.seenBy.some((t) => t === 0) && performance.now() < deadline) await sleep(1);
        for (const t of rec.seenBy) if (t > 0) moveLatencies.push(t - rec.sent);
        moveSent.delete(key);
        if ((m + 1) % 50 === 0) progress(`moves: ${m + 1}/${MOVES}`);
      }
    });
    moveSampler.stop();

    // Steady state: nothing changes, every VTEP keeps its lease alive.
    progress(`steady state: ${STEADY} s of lease keepalives only`);
    const k0 = vteps.reduce((s, v) => s + v.lease!.keepalives, 0);
    const steady = await phase(pid, () => sleep(STEADY * 1000));
    const steadyKeepalives = vteps.reduce((s, v) => s + v.lease!.keepalives, 0) - k0;
    progress(`steady state: ${thousands(steadyKeepalives)} keepalives in ${STEADY} s`);
    const moveMissed = movesTried * WATCHERS - moveLatencies.length - moveFailures * WATCHERS;

    // Leases: every VTEP's keepalive loop ran through the cold start and the moves.
    const ls = vteps.map((v) => v.lease!);
    const keepalives = ls.reduce((s, l) => s + l.keepalives, 0);
    const regrants = ls.reduce((s, l) => s + l.regrants, 0);
    const maxGap = Math.max(...ls.map((l) => l.maxGapMs));
    const hwm = statusMB(pid, 'VmHWM');
    const eventsSent = (metrics1.get('etcd_debugging_mvcc_events_total') ?? Number.NaN) - (metrics0.get('etcd_debugging_mvcc_events_total') ?? Number.NaN);
    const slowWatchers = metrics1.get('etcd_debugging_mvcc_slow_watcher_total') ?? 0;

    // Broadcast copies per ARP request for a known IP, computed from the simulated membership.
    const sizes = [...members.values()].map((m) => m.length);
    const meanMembers = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    // Requests come from the members' MACs: weight each VNI by its members.
    const perRequest = sizes.reduce((s, m) => s + m * (m - 1), 0) / sizes.reduce((s, m) => s + m, 0);

    const rows: [string, string, string][] = [
      ['reference: plain puts (no lease, no txn, 32 in flight)', 'puts/s', fix(ref.putsPerSecond, 0)],
      [`cold start: ${thousands(macCount)} MACs seen by every sampled watcher`, 's', fix(Math.max(...perWatcher), 2)],
      ['cold start: all writes acknowledged', 's', fix((writtenAt - t0) / 1000, 2)],
      [
        'cold start: keys written per second (÷ reference)',
        'keys/s',
        `${fix((macCount + VTEPS * (1 + PER)) / ((writtenAt - t0) / 1000), 0)} (${fix((macCount + VTEPS * (1 + PER)) / ((writtenAt - t0) / 1000) / ref.putsPerSecond, 2)}×)`,
      ],
      ['cold start: watcher converged, p50 / max', 's', `${fix(quantile(perWatcher, 0.5), 2)} / ${fix(Math.max(...perWatcher), 2)}`],
      ['cold start: events delivered to the sampled watchers', 'events/s', fix(coldEvents / cold.phase.seconds, 0)],
      ['cold start: events etcd sent (its mvcc events_total)', 'events/s', fix(eventsSent / cold.phase.seconds, 0)],
      ['cold start: etcd CPU', 'cores', fix(cold.phase.etcdCpuSeconds / cold.phase.seconds, 2)],
      ['cold start: this bench process CPU', 'cores', fix(cold.phase.benchCpuSeconds / cold.phase.seconds, 2)],
      ['etcd RSS: before / peak sampled / VmHWM', 'MB', `${fix(rssBase)} / ${fix(Math.max(sampler.peakRss, moveSampler.peakRss))} / ${fix(hwm)}`],
      ['etcd db size after the cold start (in use)', 'MB', `${fix(db1.dbSize / 2 ** 20)} (${fix(db1.dbSizeInUse / 2 ** 20)})`],
      [
        `move: txn sent → seen by a watcher, p50 / p99 (${moveLatencies.length} samples)`,
        'ms',
        `${fix(quantile(moveLatencies, 0.5), 2)} / ${fix(quantile(moveLatencies, 0.99), 2)}`,
      ],
      ['move: txn sent → committed (acknowledged), p50 / p99', 'ms', `${fix(quantile(commitLatencies, 0.5), 2)} / ${fix(quantile(commitLatencies, 0.99), 2)}`],
      ['moves: etcd CPU', 'cores', fix(moves.phase.etcdCpuSeconds / moves.phase.seconds, 2)],
      [`steady state: lease keepalives (${VTEPS} leases, TTL ${TTL} s, each every TTL/3)`, 'per s', fix(steadyKeepalives / steady.phase.seconds, 0)],
      ['steady state: etcd CPU', 'cores', fix(steady.phase.etcdCpuSeconds / steady.phase.seconds, 3)],
      ['leases lost / re-granted and re-published; longest keepalive gap', '', `${lost} / ${regrants}; ${fix(maxGap / 1000, 2)} s`],
      [`ARP copies per request, flood list of all ${VTEPS} hosts (computed)`, 'copies', String(VTEPS - 1)],
      [`ARP copies per request, flood to VNI members (computed; mean VNI ${fix(meanMembers)} members)`, 'copies', fix(perRequest, 1)],
      ['ARP copies per request, answered from the directory (suppressed)', 'copies', '0'],
    ];
    const head = ['measure', 'unit', 'value'];
    console.log(`$ ${command}`);
    console.log(
      `vtepd directory benchmark — ${new Date().toISOString()} — ${CPUS} CPUs, etcd ${version} on 127.0.0.1 (one member); ${VTEPS} VTEPs × ${MACS} MACs, ${VNIS} VNIs, ${PER} VNIs per VTEP, ${WATCHERS} sampled watchers of ${PREFIX}/macs/ (all N write and keep leases, ${CLIENTS} EtcdClients), ${MOVES} moves; load average ${fix(load0)} at the start, ${fix(loadavg()[0]!)} at the end`,
    );
    console.log(markdownTable(head, rows).join('\n'));
    const notes: string[] = [];
    if (notConverged.length)
      notes.push(`${notConverged.length} sampled watchers had not seen every MAC after ${DEADLINE} s (saw ${notConverged.map(thousands).join(', ')})`);
    if (gaveUp) notes.push(`${gaveUp} VTEPs had not published after ${DEADLINE} s and gave up`);
    if (retries) notes.push(`${retries} VTEP starts retried after an error (a lease grant or txn timed out)`);
    if (moveFailures) notes.push(`${moveFailures} moves lost their compare-and-swap`);
    if (moveMissed > 0) notes.push(`${moveMissed} move notifications not seen within 5 s`);
    if (slowWatchers) notes.push(`etcd counted ${slowWatchers} slow watchers`);
    if (errors.length) notes.push(`errors: ${errors.join('; ')}`);
    const reconnects = watchers.reduce((s, x) => s + x.reconnects(), 0);
    if (reconnects) notes.push(`${reconnects} watch reconnects`);
    if (notes.length) console.log(`notes: ${notes.join('; ')}`);

    mkdirSync(resultsDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const file = `directory-${stamp}.json`;
    writeFileSync(
      join(resultsDir, file),
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          command,
          cpus: CPUS,
          loadAverage: [load0, loadavg()[0]],
          etcd: version,
          params: {
            steadySeconds: STEADY,
            vteps: VTEPS,
            macsPerVtep: MACS,
            vnis: VNIS,
            vnisPerVtep: PER,
            watchers: WATCHERS,
            moves: MOVES,
            leaseTtl: TTL,
            clients: CLIENTS,
            refKeys: REF_KEYS,
          },
          sampling: `all ${VTEPS} VTEPs hold a lease and write; ${WATCHERS} of them watch ${PREFIX}/macs/ (whole prefix)`,
          reference: ref,
          coldStart: {
            ...cold.phase,
            convergedSeconds: Math.max(...perWatcher),
            perWatcherSeconds: perWatcher,
            writesAckedSeconds: (writtenAt - t0) / 1000,
            txns,
            retries,
            gaveUp,
            keys: macCount + VTEPS * (1 + PER),
            eventsToSampledWatchers: coldEvents,
            etcdEventsSent: eventsSent,
          },
          moves: {
            ...moves.phase,
            count: MOVES,
            failures: moveFailures,
            missed: moveMissed,
            seenMs: { p50: quantile(moveLatencies, 0.5), p99: quantile(moveLatencies, 0.99), max: Math.max(...moveLatencies), samples: moveLatencies.length },
            committedMs: { p50: quantile(commitLatencies, 0.5), p99: quantile(commitLatencies, 0.99) },
          },
          etcdMemoryMB: { before: rssBase, peakSampled: Math.max(sampler.peakRss, moveSampler.peakRss), vmHWM: hwm },
          dbBytes: { before: db0, afterColdStart: db1 },
          steady: { ...steady.phase, keepalives: steadyKeepalives },
          leases: { count: VTEPS, ttl: TTL, keepalives, lost, regrants, republished, maxGapMs: maxGap },
          slowWatchers,
          broadcast: {
            computed: true,
            meanMembersPerVni: meanMembers,
            copiesPerArpFloodAllHosts: VTEPS - 1,
            copiesPerArpFloodMembers: perRequest,
            copiesPerArpSuppressed: 0,
          },
          errors,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`results: bench/results/${file}`);
  } catch (e) {
    if (etcd.pid === null) progress(`etcd exited; its last output:\n${etcd.output}`);
    throw e;
  } finally {
    for (const c of clients) c.close();
    watchClient.close();
    admin.close();
    await etcd.destroy();
  }
}

const CPUS = cpus().length;

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
