/**
 * `vtepd trace`: which path a frame would take through a tenant — what learning does with
 * its source, whether the C fast path forwards it or punts it to the bridge, where copies
 * go — told in steps, using the bridge's own decision (`decide`) and sending nothing.
 */
import { decide, type LearnResult } from './bridge.js';
import type { Place } from '../native/datapath.js';
import { isLearnableMac } from '../util/mac.js';
import { portNameOf, type Switch, type Where } from './switch.js';
import { fdbRow, fdbWhere, whereText, type FdbRow, type FdbWhere } from './fdb.js';
import type { Encap } from './encap.js';

/** What `traceFrame` says about one frame. */
export interface TraceResult {
  tenant: string;
  vni: number;
  /** Where the frame comes in; a VTEP this daemon does not know yet has `known: false` (and the tenant's encapsulation). */
  ingress: FdbWhere & { known?: false };
  src: string;
  dst: string;
  /** What learning does with the source MAC at the ingress. */
  learn: LearnResult | 'dropped';
  /** Who handles the frame: the C fast path alone, the bridge (punted), or a drop in C before either. */
  handledBy: 'fast-path' | 'bridge' | 'none';
  action: 'forward' | 'flood' | 'drop';
  reason: string;
  /** The FDB entry the destination matched, if any. */
  entry: FdbRow | null;
  /** Where copies go: port names, and VTEPs as fdb show gives them. */
  outputs: { ports: string[]; vteps: FdbWhere[] };
  /** Human-readable steps. */
  steps: string[];
}

/** How each encapsulation names the tenant's 24-bit id on the wire. */
const TUNNEL: Record<Encap, string> = { vxlan: 'VXLAN, VNI', gre: 'GRE-TAP, key', nvgre: 'NVGRE, VSID' };

/**
 * Which path a frame would take, using the bridge's own decision (`decide`), without
 * sending anything. `ingress`: a port name of the tenant, or a VTEP address.
 */
export function traceFrame(sw: Switch, tenant: string, ingress: Where, src: string, dst: string): TraceResult {
  const b = sw.bridge(tenant);
  let place: Place | undefined;
  let inName: string;
  let inWhere: TraceResult['ingress'];
  if ('port' in ingress) {
    place = sw.portPlace(tenant, portNameOf(ingress));
    inWhere = { kind: 'port', port: ingress.port, ...(ingress.vlan !== undefined ? { vlan: ingress.vlan } : {}) };
    inName = whereText(inWhere);
  } else {
    const v = sw.vteps.find(ingress.vtep);
    // An unknown VTEP would be learned as a dynamic one on its first packet (acceptFrom: any).
    place = v ? { kind: 'vtep', vtepId: v.id } : { kind: 'vtep', vtepId: 0 };
    inName = `vtep ${ingress.vtep}${v ? '' : b.acceptAny ? ' (not known yet: learned as a dynamic VTEP on its first packet)' : ' (not known)'}`;
    inWhere = v ? fdbWhere(sw, place) : { kind: 'vtep', vtep: ingress.vtep, encap: sw.tenantEncap(tenant), known: false };
  }
  const steps: string[] = [];
  if (inWhere.known === false && b.acceptAny)
    steps.push(`vtep ${inWhere.kind === 'vtep' ? inWhere.vtep : ''} is not known yet: it is learned as a dynamic VTEP on its first packet`);
  const base = { tenant, vni: b.vni, ingress: inWhere, src, dst };
  if (place.kind === 'vtep' && !(b.acceptAny || (place.vtepId !== 0 && b.accepts(place.vtepId)))) {
    steps.push(
      `fast path: tenant ${tenant} does not accept frames from ${inName} (acceptFrom: known; not in its flood list, static entries, hubs or spokes): dropped (counter vtep_not_accepted)`,
    );
    return { ...base, learn: 'dropped', handledBy: 'none', action: 'drop', reason: 'vtep_not_accepted', entry: null, outputs: { ports: [], vteps: [] }, steps };
  }
  if (!isLearnableMac(src)) {
    steps.push(`fast path: source ${src} is multicast, broadcast or all-zero: dropped (counter bad_src_mac)`);
    return { ...base, learn: 'dropped', handledBy: 'none', action: 'drop', reason: 'bad_src_mac', entry: null, outputs: { ports: [], vteps: [] }, steps };
  }
  const learn = b.learnDecision(src, place);
  const learnText: Record<LearnResult, string> = {
    new: `not in the table: learned at ${inName}`,
    refresh: `already at ${inName}: its idle time is reset`,
    move: `known elsewhere (${sw.whereText(b.table.get(src)?.place)}): moves to ${inName}`,
    disabled: 'learning is off in this tenant',
    'not-learnable': 'not a learnable MAC',
    'static-conflict': `static entry at ${sw.whereText(b.table.get(src)?.place)}: not moved (counted as a static conflict)`,
    limit: `table full (maxMacs ${b.maxMacs} or the switch-wide limit): not learned (counted)`,
    dampened: `flapping: pinned at ${sw.whereText(b.table.get(src)?.place)} by move dampening, not moved (counted)`,
  };
  steps.push(`source ${src}: ${learnText[learn]}`);
  let d = decide(b, place, dst);
  if (d.action === 'flood' && src === dst && (learn === 'new' || learn === 'move')) {
    // Punted: the bridge learns the source before it decides, so the frame finds itself.
    const table = new Map(b.table);
    table.set(src, { mac: src, place, static: false, since: Date.now(), moves: 0 });
    d = decide({ table, ports: b.ports, flood: b.flood, dynFlood: b.dynFlood, relay: b.relay }, place, dst);
  }
  const entry = d.action === 'flood' ? null : fdbRow(sw, b, d.entry, sw.idleTimes().get(`${b.tenantId}/${dst}`));
  const names = (ports: number[], vteps: number[]) => ({
    ports: ports.map((id) => sw.portName(id) ?? String(id)),
    vteps: vteps.map((id) => fdbWhere(sw, { kind: 'vtep', vtepId: id })),
  });
  if (d.action === 'forward') {
    const out = d.to.kind === 'port' ? names([d.to.portId], []) : names([], [d.to.vtepId]);
    steps.push(`destination ${dst}: ${entry!.type} entry at ${whereText(entry!.where)}${entry!.ageSeconds !== null ? ` (idle ${entry!.ageSeconds} s)` : ''}`);
    const tunnel = entry!.where.kind === 'vtep' ? ` (${TUNNEL[entry!.where.encap]} ${b.vni})` : '';
    steps.push(`fast path: cache hit, forwarded in C without the bridge${tunnel}`);
    return { ...base, learn, handledBy: 'fast-path', action: 'forward', reason: d.reason, entry, outputs: out, steps };
  }
  if (d.action === 'drop') {
    steps.push(`destination ${dst}: ${entry!.type} entry at ${whereText(entry!.where)}`);
    steps.push(
      d.reason === 'hairpin'
        ? `fast path: the destination is the ${place.kind === 'vtep' ? 'VTEP' : 'port'} the frame came in: dropped (counter hairpin)`
        : 'fast path: from a VTEP to a MAC behind a VTEP: dropped (split horizon, counter split_horizon)',
    );
    return { ...base, learn, handledBy: 'fast-path', action: 'drop', reason: d.reason, entry, outputs: { ports: [], vteps: [] }, steps };
  }
  const out = names(d.ports, d.vteps);
  steps.push(`destination ${dst}: ${d.reason === 'unknown-unicast' ? 'not in the table (unknown unicast)' : d.reason}`);
  steps.push(
    `fast path: punted to the bridge, which floods by head-end replication to ${out.ports.length} port(s)` +
      ` and ${out.vteps.length} VTEP(s)${place.kind !== 'vtep' ? '' : b.relay ? ' (hub relay: every flood VTEP but the one it came from)' : ' (none back to VTEPs: split horizon)'}`,
  );
  if (out.ports.length === 0 && out.vteps.length === 0) steps.push('nowhere to flood: the frame goes nowhere');
  return { ...base, learn, handledBy: 'bridge', action: 'flood', reason: d.reason, entry: null, outputs: out, steps };
}
