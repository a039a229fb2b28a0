/**
 * The control API (src/daemon/control.ts carries it): one handler per method, and the
 * checks of their parameters.
 */
import { Address4, Address6 } from 'ip-address';
import { parseMac } from '../config/schema.js';
import { EtcdClient, EtcdError } from '../directory/etcd.js';
import { EvpnDirectory } from '../directory/evpn-directory.js';
import { checkName, NetError, Nets, VNI_MAX } from '../directory/nets.js';
import type { Where } from '../core/switch.js';
import type { RunningTrunk } from '../ports/trunk.js';
import { runCapture, type CaptureRequest } from './capture.js';
import { ApiError, type CallContext, type Handler } from './control.js';
import type { Daemon } from './daemon.js';
import type { Busy, Takeover } from './takeover.js';
import { existsSync } from 'node:fs';
import { checkDynamic, PortError, type DynamicPort } from '../ports/dynamic.js';
import { logLevel, setRuntimeLogLevel } from '../util/log.js';
import { normalizeMac } from '../util/mac.js';
import type { FdbFilter } from '../core/fdb.js';

/** What the handlers call: the process around the daemon (the Runtime). */
/**
 * A frame on a trunk, tagged `vlan` (absent or 0: untagged): the VLAN it enters, which must be
 * the tenant's there. A VLAN no tenant has is what the fast path drops (vlan_unmapped), said so.
 */
function trunkIngress(t: RunningTrunk, tenant: string, vlan: number | undefined): number {
  const v = vlan ?? 0;
  const who = t.vlans.get(v);
  const name = t.config.attach;
  if (who === undefined)
    throw new ApiError(
      v
        ? `vlan: ${name} carries no VLAN ${v}: a frame tagged ${v} is dropped there (vlan_unmapped)`
        : `vlan: ${name} has no native tenant: an untagged frame is dropped there (untagged_no_native); give --vlan`,
    );
  if (who !== tenant) throw new ApiError(`vlan: ${v ? `VLAN ${v}` : 'untagged'} on ${name} is tenant ${who}'s, not ${tenant}'s`);
  return v;
}

export interface ApiHost {
  readonly daemon: Daemon;
  readonly configPath: string;
  readonly takeover: Takeover;
  /** A reload or a handover in progress (a port is not attached meanwhile). */
  readonly busy?: Busy;
  reload(): Promise<{ changes: string[]; failed: string[] }>;
}

// ---- parameter checks (the API's own validation, with exact messages) ----------------------

function str(p: Record<string, unknown>, key: string, required = true): string | undefined {
  const v = p[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new ApiError(`${key}: is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new ApiError(`${key}: must be a string`);
  return v;
}

/** A MAC in any common form (02:00:00:00:01:01, 02-00-…, 0200.0000.0101, either case), as aa:bb:…. */
function anyMac(v: string, key: string): string {
  const mac = normalizeMac(v);
  if (mac === null) throw new ApiError(`${key}: must be a MAC like 02:00:00:00:01:01, 02-00-00-00-01-01 or 0200.0000.0101, not "${v}"`);
  return mac;
}

function unicastMac(v: string, key: string): string {
  const r = parseMac(anyMac(v, key));
  if ('error' in r) throw new ApiError(`${key}: ${r.error}`);
  return r.value;
}

function address(v: string, key: string): string {
  if (Address4.isValid(v) && !v.includes('/')) return new Address4(v).correctForm();
  if (Address6.isValid(v) && !v.includes('/') && !v.includes('%')) return new Address6(v).correctForm();
  throw new ApiError(`${key}: must be an IPv4 or IPv6 address, not ${JSON.stringify(v)}`);
}

function num(p: Record<string, unknown>, key: string, lo: number, hi: number): number | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    throw new ApiError(`${key}: must be an integer ${lo}..${hi}, not ${JSON.stringify(v)}`);
  return v;
}

function whereParam(p: Record<string, unknown>): Where {
  const port = str(p, 'port', false);
  const vtep = str(p, 'vtep', false);
  if ((port === undefined) === (vtep === undefined)) throw new ApiError('give either port or vtep');
  return port !== undefined ? { port } : { vtep: address(vtep!, 'vtep') };
}

/** fdb.show's filters: tenant, vni, mac (any common form), port, vtep (an address), vlan (on a trunk; 0: untagged). */
function fdbFilter(p: Record<string, unknown>): FdbFilter {
  const mac = str(p, 'mac', false);
  const vtep = str(p, 'vtep', false);
  return {
    tenant: str(p, 'tenant', false),
    vni: num(p, 'vni', 1, VNI_MAX),
    mac: mac === undefined ? undefined : anyMac(mac, 'mac'),
    port: str(p, 'port', false),
    vtep: vtep === undefined ? undefined : address(vtep, 'vtep'),
    vlan: num(p, 'vlan', 0, 4094),
  };
}

/**
 * Run `f` on the tenant networks of this daemon's directory (its config's etcd and prefix),
 * on a client of its own that is closed after the call. A refusal keeps its code
 * (`vni-taken`, …); etcd unreachable is `etcd`; no directory is `ENODIRECTORY`.
 */
async function withNets<T>(rt: ApiHost, f: (nets: Nets) => Promise<T>, verb = 'net'): Promise<T> {
  const dir = rt.daemon.running.directory;
  if (!dir) throw new ApiError(`${verb}: this daemon has no directory (directory: in its config)`, 'ENODIRECTORY');
  const dc = dir.etcd;
  if (!dc) throw new ApiError(`${verb}: networks live in the etcd directory; this daemon's directory is evpn`, 'ENODIRECTORY');
  const etcd = new EtcdClient({ endpoints: dc.endpoints, timeoutMs: 5000 });
  try {
    return await f(new Nets(etcd, { prefix: dc.prefix }));
  } catch (e) {
    if (e instanceof NetError) throw new ApiError(e.message, e.code);
    if (e instanceof EtcdError) throw new ApiError(e.message, 'etcd');
    throw e;
  } finally {
    etcd.close();
  }
}

/** The daemon's EVPN directory, or a refusal that says what its directory is (`vtepd evpn ...` on an etcd or static daemon). */
function evpnOf(rt: ApiHost, verb: string): EvpnDirectory {
  const dir = rt.daemon.directory;
  if (dir instanceof EvpnDirectory) return dir;
  const is = dir ? `this daemon's directory is ${dir.backend}` : 'this daemon has no directory';
  throw new ApiError(`${verb}: the directory is not evpn: ${is} (directory.evpn in its config, docs/evpn.md)`, 'ENODIRECTORY');
}

/** A port refusal (PortError) as an API error with its code. */
async function portCall<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof PortError) throw new ApiError(e.message, e.code);
    throw e;
  }
}

/** port.add's interface: `tap` (a TAP vtepd makes) or `attach` (one that exists, a hypervisor's), exactly one. */
function portInterface(p: Record<string, unknown>): { tap: string; kind?: 'attach' } {
  const tap = str(p, 'tap', false);
  const attach = str(p, 'attach', false);
  if (tap !== undefined && attach !== undefined)
    throw new ApiError('port: give tap (a TAP vtepd makes) or attach (an interface that exists), not both', 'invalid');
  return attach !== undefined ? { tap: attach, kind: 'attach' } : { tap: str(p, 'tap')! };
}

/**
 * port.add: check the request's fields, find where it goes (a config tenant by name; or a
 * network, looked up in the directory for its VNI), then attach the port (one port operation
 * at a time, never during a reload or handover).
 */
async function portAdd(rt: ApiHost, p: Record<string, unknown>, serial: <T>(f: () => Promise<T>) => Promise<T>) {
  const tenant = str(p, 'tenant', false);
  if (tenant !== undefined && p.net !== undefined && p.net !== null)
    throw new ApiError('port: give net (a network) or tenant (of the config), not both', 'invalid');
  if (tenant !== undefined) {
    const rec: DynamicPort = { tenant, vni: 1, ...portInterface(p) };
    await checkRequest(rt, rec, p);
    return portAddTo(rt, serial, rec);
  }
  if (!rt.daemon.running.directory) throw new ApiError('port: this daemon has no directory (directory: in its config)', 'ENODIRECTORY');
  const net = str(p, 'net')!;
  const m = /^([^/]+)\/([^/]+)$/.exec(net);
  if (!m) throw new ApiError('net: must be TENANT/NAME like acme/web', 'invalid');
  try {
    checkName('tenant', m[1]);
    checkName('name', m[2]);
  } catch (e) {
    throw new ApiError(`net: ${(e as Error).message}`, 'invalid');
  }
  if (p.mtu !== undefined && p.mtu !== null && typeof p.mtu !== 'number') throw new ApiError('mtu: must be an integer 68..65535', 'invalid');
  const rec: DynamicPort = { net, vni: 1, ...portInterface(p) };
  const found = await lookupNet(rt, rec, p, m[1]!, m[2]!);
  rec.vni = found.vni;
  return portAddTo(rt, serial, rec);
}

/** The network of a `--net` request, checked first; refused when the directory has none. */
async function lookupNet(rt: ApiHost, rec: DynamicPort, p: Record<string, unknown>, tenant: string, name: string) {
  await checkRequest(rt, rec, p);
  const found = await withNets(rt, (n) => n.get(tenant, name), 'port');
  if (!found) throw new ApiError(`net: no network ${rec.net} in the directory (vtepd net create)`, 'not-found');
  return found;
}

/** The request's optional fields (netns, address, mac, mtu) into `rec`. */
function withFields(rec: DynamicPort, p: Record<string, unknown>): void {
  if (p.mtu !== undefined && p.mtu !== null && typeof p.mtu !== 'number') throw new ApiError('mtu: must be an integer 68..65535', 'invalid');
  const netns = str(p, 'netns', false);
  const address = str(p, 'address', false);
  const mac = str(p, 'mac', false);
  if (netns !== undefined) rec.netns = netns;
  if (address !== undefined) rec.address = address;
  if (mac !== undefined) rec.mac = mac;
  if (typeof p.mtu === 'number') rec.mtu = p.mtu;
}

/** The request's fields into `rec`, checked (schema, namespace) before anything is looked up or attached. */
async function checkRequest(rt: ApiHost, rec: DynamicPort, p: Record<string, unknown>): Promise<void> {
  withFields(rec, p);
  await portCall(async () => checkDynamic(rt.daemon.running, rec));
  const netns = rec.netns;
  if (netns !== undefined && !existsSync(`/run/netns/${netns}`)) throw new ApiError(`netns: no network namespace ${netns} (/run/netns/${netns})`, 'no-netns');
}

/** Attach `rec` (checked by checkRequest), one port operation at a time. */
async function portAddTo(rt: ApiHost, serial: <T>(f: () => Promise<T>) => Promise<T>, rec: DynamicPort) {
  return serial(() =>
    portCall(async () => {
      rt.busy?.claim('port add'); // throws EBUSY (nothing claimed) during a reload or handover
      try {
        const r = await rt.daemon.attachPort(rec);
        const a = r.port?.config.address;
        return {
          net: rec.net ?? null,
          vni: rec.vni,
          tenant: r.tenant,
          created: r.created,
          tap: rec.tap,
          kind: rec.kind ?? 'tap',
          // The interface does not exist yet: attached when it appears.
          waiting: !r.port,
          netns: rec.netns ?? null,
          address: a ? `${a.address}/${a.prefixLength}` : null,
          mac: r.port?.mac ?? null,
          mtu: r.port?.mtu ?? null,
          ifindex: r.port?.ifindex ?? null,
        };
      } finally {
        rt.busy?.release();
      }
    }),
  );
}

/** log.level: the level now; with `level`, set it first (was: the one before). */
function logLevelCall(level: string | undefined): { level: string; was: string } {
  const was = logLevel();
  if (level !== undefined) {
    try {
      setRuntimeLogLevel(level);
    } catch (e) {
      throw new ApiError((e as Error).message);
    }
  }
  return { level: logLevel(), was };
}

/**
 * The control API's methods (names and answers are fixed: the CLI and other tools speak
 * them), each checking its parameters with exact messages before it reaches the daemon.
 */
export function apiHandlers(rt: ApiHost): Record<string, Handler> {
  // Port operations one after the other (a second port.add waits for the first).
  let portQueue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const r = portQueue.then(f, f);
    portQueue = r.catch(() => undefined);
    return r;
  };
  return {
    status: () => ({ ...rt.daemon.status(), config: rt.configPath }),
    'fdb.show': (p) => rt.daemon.fdb(fdbFilter(p)),
    'fdb.add': (p) => {
      const tenant = str(p, 'tenant')!;
      const mac = unicastMac(str(p, 'mac')!, 'mac');
      const where = whereParam(p);
      if ('vtep' in where && where.vtep === rt.daemon.running.underlay.local) throw new ApiError('vtep: is this host (underlay.local)');
      const was = rt.daemon.fdbAdd(tenant, mac, where);
      const now = rt.daemon.fdb({ tenant, mac })[0]!; // setStatic throws rather than leave it out
      return { tenant, mac, where: now.where, type: 'static', replaced: was ? { where: was.where, type: was.type } : null };
    },
    'fdb.del': (p) => {
      const tenant = str(p, 'tenant')!;
      const mac = anyMac(str(p, 'mac')!, 'mac');
      rt.daemon.fdbDel(tenant, mac);
      return { tenant, mac };
    },
    'directory.macs': (p) => rt.daemon.directoryMacs(str(p, 'tenant')!),
    'fdb.flush': (p) => ({ flushed: rt.daemon.fdbFlush(str(p, 'tenant', false)) }),
    peers: () => rt.daemon.stats().peers,
    stats: () => rt.daemon.stats(),
    reload: () => rt.reload(),
    restart: () => rt.takeover.restart(),
    handover: (p) => rt.takeover.handover(str(p, 'path')!, num(p, 'pid', 1, 2 ** 31)!, p.underlay),
    'net.create': (p) => withNets(rt, (n) => n.create({ tenant: str(p, 'tenant')!, name: str(p, 'name')!, vni: num(p, 'vni', 1, VNI_MAX) })),
    'net.delete': (p) => withNets(rt, (n) => n.delete({ tenant: str(p, 'tenant')!, name: str(p, 'name')! })),
    'net.list': (p) => withNets(rt, (n) => n.list(str(p, 'tenant', false))),
    'net.pool': (p) => {
      const first = num(p, 'first', 1, VNI_MAX);
      const last = num(p, 'last', 1, VNI_MAX);
      if ((first === undefined) !== (last === undefined)) throw new ApiError('give both first and last, or neither');
      return withNets(rt, async (n) => (first !== undefined ? n.setPool(first, last!) : ((await n.pool()) ?? null)));
    },
    'evpn.routes': (p) => evpnOf(rt, 'evpn routes').routes(num(p, 'vni', 1, VNI_MAX)),
    'evpn.neighbors': () => evpnOf(rt, 'evpn neighbors').neighbors(),
    'port.add': (p) => portAdd(rt, p, serial),
    'port.del': (p) => {
      const { tap, kind } = portInterface(p);
      const net = str(p, 'net', false);
      return serial(() =>
        portCall(async () => {
          rt.busy?.claim('port del');
          try {
            const r = await rt.daemon.detachPort(tap, net, p.attach !== undefined && p.attach !== null ? kind : undefined);
            return { net: r.rec.net ?? null, vni: r.rec.vni, tenant: r.tenant, tap, kind: r.rec.kind ?? 'tap', tenantRemoved: r.tenantRemoved };
          } finally {
            rt.busy?.release();
          }
        }),
      );
    },
    'port.list': () => rt.daemon.dynamicPorts(),
    'log.level': (p) => logLevelCall(str(p, 'level', false)),
    trace: (p) => {
      const tenant = str(p, 'tenant')!;
      const inp = str(p, 'in')!;
      const vlan = num(p, 'vlan', 0, 4094);
      const isPort = rt.daemon.sw.portList().some((x) => x.name === inp);
      const trunk = rt.daemon.trunks.get(inp);
      let ingress: Where;
      if (trunk) ingress = { port: inp, vlan: trunkIngress(trunk, tenant, vlan) };
      else if (vlan !== undefined)
        throw new ApiError(
          `vlan: --in ${inp} is not a trunk (trunks: ${
            rt.daemon.trunks
              .list()
              .map((t) => t.config.attach)
              .join(', ') || 'none'
          })`,
        );
      else if (isPort) ingress = { port: inp };
      else {
        try {
          ingress = { vtep: address(inp, 'in') };
        } catch {
          const ports = [
            ...rt.daemon.sw
              .portList()
              .filter((x) => x.trunk === undefined)
              .map((x) => x.name),
            ...rt.daemon.trunks.list().map((t) => t.config.attach),
          ];
          throw new ApiError(`in: "${inp}" is neither a port of this daemon (${ports.join(', ') || 'it has none'}) nor a VTEP address`);
        }
      }
      return rt.daemon.trace(tenant, ingress, anyMac(str(p, 'src')!, 'src'), anyMac(str(p, 'dst')!, 'dst'));
    },
    capture: async (p, ctx: CallContext) => {
      const req: CaptureRequest = {
        tenant: str(p, 'tenant', false),
        port: str(p, 'port', false),
        peer: str(p, 'peer', false) !== undefined ? address(str(p, 'peer')!, 'peer') : undefined,
        outer: p.outer === true,
        count: num(p, 'count', 1, 2 ** 31),
        seconds: num(p, 'seconds', 1, 86400),
        live: p.live === true,
      };
      const ac = new AbortController();
      void ctx.closed.then(() => ac.abort());
      return runCapture(
        rt.daemon,
        req,
        (b, meta) => ctx.event('data', { data: b.toString('base64'), ...meta }),
        (info) => ctx.event('started', info),
        ac.signal,
      );
    },
  };
}
