/**
 * Prometheus metrics (prom-client) on `metrics.listen`, GET /metrics.
 *
 * Every scrape takes ONE snapshot of the daemon's counters (one dpStats() call into the
 * fast path, plus the bridges' own counters) and every metric's collect callback reads
 * that snapshot; nothing is counted per packet in JavaScript. The data path's global
 * counters are exported one metric each, named after native/counters.def; the drop
 * reasons of that list as one labelled counter. Process metrics are prom-client's
 * defaults (process_*, nodejs_*).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricsConfig } from '../config/config.js';
import { counterInfo } from '../native/counters.js';
import type { Daemon } from './daemon.js';
import type { PeerInfo, StatsSnapshot } from './stats.js';
import { VERSION } from '../util/paths.js';
import { cpuSeconds, statFields, statusMB } from '../util/proc.js';
import { logger } from '../util/log.js';

const log = logger('metrics');

/** How often the event loop's delay is sampled for nodejs_eventloop_lag_* (ms). */
export const EVENT_LOOP_SAMPLE_MS = 1000;

type Labels = Record<string, string>;
type Rows = [Labels, number][];

/** The labels of a VTEP peer: its address and encapsulation, and the UDP port it sends from where that tells it apart (NAT). */
const PEER_LABELS = ['vtep', 'encap', 'udp_port'];
function peerLabels(p: PeerInfo): Labels {
  const l: Labels = { vtep: p.address, encap: p.encap };
  if (p.udpPort !== null) l.udp_port = String(p.udpPort);
  return l;
}

/** A process's resident memory and CPU time from /proc, or null (no PID, or gone). */
export function processFigures(pid: number | null): { residentBytes: number; cpuSeconds: number } | null {
  if (pid === null || statFields(pid) === null) return null;
  return { residentBytes: statusMB(pid, 'VmRSS') * 1024 * 1024, cpuSeconds: cpuSeconds(pid) };
}

export class Metrics {
  readonly registry = new Registry();
  private snap: StatsSnapshot | undefined;
  private server: Server | undefined;
  private readonly batchSize: Histogram;

  /** `daemon()`: the daemon that runs now (it changes on a failed handover's recovery). */
  constructor(private readonly daemon: () => Daemon) {
    // The nodejs_eventloop_lag_* histogram samples the loop with a timer: at prom-client's
    // default 10 ms that woke an idle daemon 100 times a second. Once a second is enough for
    // a figure scraped every 15 s or more (nodejs_eventloop_lag_seconds is measured at each scrape).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    const reg = [this.registry];
    const self = this;
    const snap = (): StatsSnapshot => {
      if (!self.snap) self.snap = self.daemon().stats(); // a scrape without render() (registry used directly)
      return self.snap;
    };
    const counter = (name: string, help: string, labelNames: string[], rows: (s: StatsSnapshot) => Rows) =>
      new Counter({
        name,
        help,
        labelNames,
        registers: reg,
        collect() {
          this.reset();
          for (const [l, v] of rows(snap())) this.inc(l, v);
        },
      });
    const gauge = (name: string, help: string, labelNames: string[], rows: (s: StatsSnapshot) => Rows) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: reg,
        collect() {
          this.reset();
          for (const [l, v] of rows(snap())) this.set(l, v);
        },
      });

    gauge('vtepd_info', 'vtepd version (value 1)', ['version'], () => [[{ version: VERSION }, 1]]);
    gauge('vtepd_tenants', 'tenants configured', [], (s) => [[{}, s.tenants.length]]);
    gauge('vtepd_tenant_info', 'a tenant: its VNI and encapsulation (value 1)', ['tenant', 'vni', 'encap'], (s) =>
      s.tenants.map((t) => [{ tenant: t.tenant, vni: String(t.vni), encap: t.encap }, 1]),
    );
    gauge('vtepd_ports', 'local ports (TAPs)', [], (s) => [[{}, s.ports.length]]);
    // The data path's own process (vtepd-dp, VTEPD_DP_PROCESS=1): prom-client's process_* are node's
    // alone. 0 when the data path runs in the daemon's process (the default).
    const dpProc = () => processFigures(self.daemon().dataPathPid());
    gauge('vtepd_datapath_process_resident_memory_bytes', "resident memory of the data path's own process (vtepd-dp)", [], () => {
      const p = dpProc();
      return p ? [[{}, p.residentBytes]] : [];
    });
    counter('vtepd_datapath_process_cpu_seconds_total', "user and system CPU time of the data path's own process (vtepd-dp), all its threads", [], () => {
      const p = dpProc();
      return p ? [[{}, p.cpuSeconds]] : [];
    });
    gauge('vtepd_peers', 'VTEPs known (configured and learned)', [], (s) => [[{}, s.peers.length]]);
    counter('vtepd_reloads_total', 'config reloads, by result', ['result'], () => {
      const r = self.daemon().reloads;
      return [
        [{ result: 'ok' }, r.ok],
        [{ result: 'failed' }, r.failed],
      ];
    });

    const io = [
      ['rx_packets', 'rxPackets', 'packets received'],
      ['rx_bytes', 'rxBytes', 'bytes received'],
      ['tx_packets', 'txPackets', 'packets sent'],
      ['tx_bytes', 'txBytes', 'bytes sent'],
      ['drops', 'drops', 'packets dropped'],
    ] as const;
    for (const [suffix, key, what] of io) {
      counter(`vtepd_port_${suffix}_total`, `local port: ${what} (fast path and flooding)`, ['tenant', 'port'], (s) =>
        s.ports.map((p) => [{ tenant: p.tenant, port: p.port }, p[key]]),
      );
      counter(`vtepd_peer_${suffix}_total`, `VTEP peer: ${what} (all tenants)`, PEER_LABELS, (s) => s.peers.map((p) => [peerLabels(p), p[key]]));
      counter(
        `vtepd_tenant_tunnel_${suffix}_total`,
        `tenant: ${what} through tunnels, all VTEPs together (inner frames; drops: sends the kernel refused)`,
        ['tenant'],
        (s) => s.tenants.map((t) => [{ tenant: t.tenant }, t.tunnel[key]]),
      );
    }
    gauge('vtepd_peer_up', 'VTEP peer received something in the last 10 s (1) or not (0)', PEER_LABELS, (s) =>
      s.peers.map((p) => [peerLabels(p), p.state === 'active' ? 1 : 0]),
    );
    gauge(
      'vtepd_peer_last_seen_timestamp_seconds',
      'when the VTEP peer last sent us a packet (Unix time, sampled once a second; absent: never)',
      PEER_LABELS,
      (s) => s.peers.filter((p) => p.lastSeenAt !== null).map((p) => [peerLabels(p), Date.parse(p.lastSeenAt!) / 1000]),
    );

    gauge('vtepd_fdb_entries', 'FDB entries, by tenant and type', ['tenant', 'type'], (s) =>
      s.tenants.flatMap(
        (t) =>
          [
            [{ tenant: t.tenant, type: 'learned' }, t.fdbLearned],
            [{ tenant: t.tenant, type: 'static' }, t.fdbStatic],
            [{ tenant: t.tenant, type: 'directory' }, t.fdbDirectory],
          ] as Rows,
      ),
    );
    gauge('vtepd_fdb_max_entries', 'FDB limit of a tenant (maxMacs): learning refuses new MACs at it', ['tenant'], (s) =>
      s.tenants.map((t) => [{ tenant: t.tenant }, t.maxMacs]),
    );
    gauge('vtepd_fdb_switch_max_entries', 'FDB limit over all tenants together (limits.maxMacs)', [], (s) => [[{}, s.maxMacsTotal]]);
    const bridge = [
      ['learned', 'learned', 'MACs learned'],
      ['moves', 'moves', 'MAC moves (port/VTEP to another place)'],
      ['aged', 'aged', 'MACs aged out'],
      ['limit_refused', 'limitRefused', 'learning refused at maxMacs or the switch-wide limit'],
      ['static_conflicts', 'staticConflicts', 'learned sources that tried to move a static entry'],
      ['flooded', 'flooded', 'frames flooded by the bridge (broadcast, multicast, unknown unicast)'],
      ['moves_dampened', 'movesDampened', 'moves refused because the MAC was pinned by move dampening'],
      ['flapping', 'flapping', 'MACs found flapping between two places and pinned'],
    ] as const;
    // The directory (absent without one): reachability, errors, its MAC layer, what this host did with it.
    const dir = (s: StatsSnapshot) => (s.directory ? [s.directory] : []);
    gauge('vtepd_directory_connected', 'the directory backend answers (1) or not (0); absent without a directory', [], (s) =>
      dir(s).map((d) => [{}, d.connected ? 1 : 0]),
    );
    counter('vtepd_directory_errors_total', 'directory: failed requests, broken watches, lost leases', [], (s) => dir(s).map((d) => [{}, d.errors]));
    counter('vtepd_directory_lease_regrants_total', 'directory: leases re-granted (everything published again)', [], (s) =>
      dir(s).map((d) => [{}, d.regrants ?? 0]),
    );
    gauge('vtepd_directory_macs', 'directory: MAC records known, by owner (this host or others)', ['owner'], (s) =>
      dir(s).flatMap(
        (d) =>
          [
            [{ owner: 'self' }, d.macs?.owned ?? 0],
            [{ owner: 'others' }, (d.macs?.macs ?? 0) - (d.macs?.owned ?? 0)],
          ] as Rows,
      ),
    );
    const macCounters = [
      ['claims', 'claims', 'MAC claims written (new MACs and moves to this host)'],
      ['claim_conflicts', 'claimConflicts', 'MAC claims that lost a compare-and-swap and were retried'],
      ['moves', 'moves', 'MAC moves seen (any owner to another)'],
      ['frozen', 'frozen', 'MACs frozen by duplicate detection'],
      ['claims_refused_frozen', 'claimsRefusedFrozen', 'MAC claims refused because the MAC was frozen'],
      ['claims_refused_pinned', 'claimsRefusedPinned', 'MAC claims refused because the MAC is pinned elsewhere'],
      ['withdrawn', 'withdrawn', 'MAC records withdrawn (aged out, port gone)'],
    ] as const;
    for (const [suffix, key, what] of macCounters)
      counter(`vtepd_directory_mac_${suffix}_total`, `directory: ${what}`, [], (s) => dir(s).map((d) => [{}, d.macs?.[key] ?? 0]));
    // EVPN (absent without an EVPN directory): each BGP session, and the routes imported and advertised.
    const bgp = (s: StatsSnapshot) => dir(s).flatMap((d) => (d.evpn ? [d.evpn] : []));
    gauge('vtepd_bgp_session_up', 'EVPN: the BGP session to a neighbor is established (1) or not (0)', ['neighbor'], (s) =>
      bgp(s).flatMap((e) => e.neighbors.map((n) => [{ neighbor: n.address }, n.state === 'established' ? 1 : 0] as Rows[number])),
    );
    counter('vtepd_bgp_session_changes_total', 'EVPN: times the BGP session to a neighbor came up or went down', ['neighbor'], (s) =>
      bgp(s).flatMap((e) => e.neighbors.map((n) => [{ neighbor: n.address }, n.changes ?? 0] as Rows[number])),
    );
    gauge(
      'vtepd_evpn_routes',
      'EVPN: type-2 and type-3 routes imported from other routers (direction="in") and advertised (direction="out")',
      ['direction'],
      (s) =>
        bgp(s).flatMap(
          (e) =>
            [
              [{ direction: 'in' }, e.routes.in],
              [{ direction: 'out' }, e.routes.out],
            ] as Rows,
        ),
    );
    counter(
      'vtepd_tenant_neighbor_requests_total',
      'tenant: ARP requests and IPv6 neighbour solicitations from local ports, answered from the directory (suppressed) or flooded',
      ['tenant', 'protocol', 'result'],
      (s) =>
        s.tenants.flatMap(
          (t) =>
            [
              [{ tenant: t.tenant, protocol: 'arp', result: 'suppressed' }, t.arpSuppressed],
              [{ tenant: t.tenant, protocol: 'arp', result: 'flooded' }, t.arpFlooded],
              [{ tenant: t.tenant, protocol: 'nd', result: 'suppressed' }, t.ndSuppressed],
              [{ tenant: t.tenant, protocol: 'nd', result: 'flooded' }, t.ndFlooded],
            ] as Rows,
        ),
    );
    for (const [suffix, key, what] of bridge) {
      counter(`vtepd_tenant_${suffix}_total`, `tenant: ${what}`, ['tenant'], (s) => s.tenants.map((t) => [{ tenant: t.tenant }, t[key]]));
    }
    counter('vtepd_tenant_drops_total', 'tenant: punted frames the bridge dropped, by reason', ['tenant', 'reason'], (s) =>
      s.tenants.flatMap(
        (t) =>
          [
            [{ tenant: t.tenant, reason: 'hairpin' }, t.hairpinDrops],
            [{ tenant: t.tenant, reason: 'split_horizon' }, t.splitHorizonDrops],
            [{ tenant: t.tenant, reason: 'storm_control' }, t.stormDrops],
          ] as Rows,
      ),
    );

    counter('vtepd_drops_total', 'fast path drops by reason (native/counters.def)', ['reason'], (s) =>
      Object.entries(s.drops).map(([reason, v]) => [{ reason }, v]),
    );
    for (const c of counterInfo().filter((x) => !x.drop)) {
      counter(`vtepd_datapath_${c.name}_total`, `fast path: ${c.help}`, [], (s) => [[{}, s.datapath[c.name] ?? 0]]);
    }
    counter(
      'vtepd_queue_frames_total',
      'per fast-path queue (underlay.queues): frames read from ports (direction="encap"), packets taken from the underlay (direction="decap")',
      ['queue', 'direction'],
      (s) =>
        s.queues.flatMap(
          (q) =>
            [
              [{ queue: String(q.queue), direction: 'encap' }, q.encapFrames],
              [{ queue: String(q.queue), direction: 'decap' }, q.decapPackets],
            ] as Rows,
        ),
    );
    counter('vtepd_events_total', 'exception events handled by the bridges (learn and miss)', [], (s) => [[{}, s.switch.events]]);
    counter('vtepd_event_errors_total', 'exception events whose handling threw: counted and skipped, never past the event loop', [], (s) => [
      [{}, s.switch.eventErrors],
    ]);
    counter('vtepd_vteps_refused_total', 'VTEPs not learned from traffic (acceptFrom: any) because the VTEP table was full', [], (s) => [
      [{}, s.switch.vtepsRefused],
    ]);
    counter(
      'vtepd_ports_detached_total',
      'attached interfaces that vanished under the daemon (a VM stopped or migrated): detached, attached again when back',
      [],
      (s) => [[{}, s.switch.portsDetached]],
    );
    counter('vtepd_ports_attached_total', 'attached interfaces attached when they appeared (back, or after a port waited for them)', [], (s) => [
      [{}, s.switch.portsAttached],
    ]);
    counter('vtepd_icmp_too_big_total', 'ICMP fragmentation-needed / packet-too-big replies written back for frames too big for their tunnel', [], (s) => [
      [{}, s.switch.icmpTooBigSent],
    ]);
    gauge('vtepd_peer_path_mtu_bytes', 'path MTU toward a VTEP peer (largest outer IP packet)', PEER_LABELS, (s) =>
      s.peers.map((p) => [peerLabels(p), p.pathMtu]),
    );
    gauge('vtepd_hub_up', 'a spoke: the hub answered within deadInterval (1) or not (0)', ['hub'], (s) =>
      s.overlay.hubs.map((h) => [{ hub: `${h.address}:${h.port}` }, h.alive ? 1 : 0]),
    );
    gauge('vtepd_hub_active', 'a spoke: the hub it floods to (1) or a standby (0)', ['hub'], (s) =>
      s.overlay.hubs.map((h) => [{ hub: `${h.address}:${h.port}` }, h.active ? 1 : 0]),
    );
    counter('vtepd_hub_failovers_total', 'a spoke: moves from a dead active hub to the next', [], (s) => [[{}, s.overlay.failovers]]);
    counter('vtepd_spokes_refused_total', 'a hub: probes refused (and not answered) that would have learned one spoke too many', ['reason'], (s) => [
      [{ reason: 'table_full' }, s.overlay.spokesRefused.tableFull],
      [{ reason: 'per_address' }, s.overlay.spokesRefused.perAddress],
    ]);
    gauge('vtepd_spokes', 'a hub: spokes learned from their probes', [], (s) => [[{}, s.overlay.spokes.length]]);
    counter('vtepd_liveness_unauthenticated_total', 'with an identity: plaintext liveness messages ignored (never answered)', [], (s) => [
      [{}, s.overlay.unauthenticated],
    ]);
    gauge('vtepd_secure_peer_up', 'with an identity: the peer has a session (1) or not (0)', ['peer'], (s) =>
      (s.overlay.secure?.peers ?? []).map((p) => [{ peer: p.name }, p.up ? 1 : 0]),
    );
    counter('vtepd_handshakes_total', 'with an identity: handshakes completed (sessions made and rekeyed)', [], (s) => [
      [{}, s.overlay.secure?.handshakes ?? 0],
    ]);
    counter(
      'vtepd_handshake_cookies_sent_total',
      'with an identity: cookie replies sent under a handshake flood (each smaller than what it answers)',
      [],
      (s) => [[{}, s.overlay.secure?.cookiesSent ?? 0]],
    );
    counter('vtepd_handshake_dropped_total', 'with an identity: handshake messages dropped without an answer, by reason', ['reason'], (s) =>
      Object.entries(s.overlay.secure?.dropped ?? {}).map(([reason, n]) => [{ reason }, n]),
    );
    this.batchSize = new Histogram({
      name: 'vtepd_event_batch_size',
      help: 'events per batch handed from the fast path to JavaScript (one call per batch)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024],
      registers: reg,
    });
  }

  /** Feed the batch-size histogram (called once per batch, never per packet). */
  observeBatch(size: number): void {
    this.batchSize.observe(size);
  }

  /** The exposition text, from one snapshot. */
  async render(): Promise<string> {
    this.snap = this.daemon().stats();
    try {
      return await this.registry.metrics();
    } finally {
      this.snap = undefined;
    }
  }

  /** Serve GET /metrics on `m` (or stop serving, for null); warn when that is every address. */
  async listen(m: MetricsConfig | null): Promise<void> {
    await this.close();
    if (!m) return;
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('vtepd: GET /metrics\n');
        return;
      }
      this.render().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(m.port, m.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    log.info({ listen: m.listen }, 'metrics listening');
    const warning = wildcardWarning(m);
    if (warning) log.warn({ listen: m.listen }, warning);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s)
      await new Promise<void>((r) => {
        s.close(() => r());
        s.closeAllConnections();
      });
  }
}

/**
 * The warning for metrics served on every address (0.0.0.0 or ::): tenant names, VTEP
 * addresses and counters are then readable by anyone who reaches the port, possibly from
 * the underlay or the Internet. Undefined for a specific address.
 */
export function wildcardWarning(m: MetricsConfig): string | undefined {
  if (m.host !== '0.0.0.0' && m.host !== '::') return undefined;
  return `metrics listen on every address (${m.listen}): tenant names, peers and counters are readable by anyone who reaches this port; listen on a management or loopback address, or firewall it`;
}
