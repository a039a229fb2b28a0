/**
 * Helpers for the hub-and-spoke netns tests: the daemons' control API (status, stats,
 * FDB), ping and iperf3 between tenant endpoints, and the longest gap of a `ping -D` run.
 */
import { iperfGbps, parsePing } from '../../lab/netns.js';
import { untilListening } from '../../lab/wait.js';
import { request } from '../../src/daemon/control.js';
import type { HubSpoke } from '../../lab/topology.js';
import type { RoleStatus } from '../../src/overlay/roles.js';
import type { FdbRow } from '../../src/core/fdb.js';
import type { StatsSnapshot } from '../../src/daemon/stats.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function status(hs: HubSpoke, host: string): Promise<{ overlay: RoleStatus }> {
  return request(hs.daemons.get(host)!.socket, 'status', {}, { timeoutMs: 5000 });
}
export async function stats(hs: HubSpoke, host: string): Promise<StatsSnapshot> {
  return request(hs.daemons.get(host)!.socket, 'stats', {}, { timeoutMs: 5000 });
}
export async function fdb(hs: HubSpoke, host: string): Promise<FdbRow[]> {
  return request(hs.daemons.get(host)!.socket, 'fdb.show', {}, { timeoutMs: 5000 });
}

export async function ping(hs: HubSpoke, tenant: string, from: string, to: string, count = 3): Promise<number> {
  const out = await hs.lab.exec(hs.endpoint(tenant, from), 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', hs.overlay(tenant, to)]);
  return parsePing(out.stdout).received;
}

export async function iperf(hs: HubSpoke, tenant: string, client: string, server: string, reverse = false): Promise<number> {
  const srv = hs.lab.spawn(hs.endpoint(tenant, server), 'iperf3', ['-s', '-1', '-B', hs.overlay(tenant, server)]);
  await untilListening(hs.lab, hs.endpoint(tenant, server), 5201);
  try {
    const r = await hs.lab.exec(hs.endpoint(tenant, client), 'iperf3', ['-c', hs.overlay(tenant, server), '-t', '2', '-J', ...(reverse ? ['-R'] : [])], 30_000);
    return iperfGbps(r.stdout);
  } finally {
    await hs.lab.stop(srv);
  }
}

/** The longest gap between two answered pings of `ping -D` output, in ms. */
export function longestGap(out: string): { gapMs: number; replies: number } {
  const times = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return { gapMs: gap, replies: times.length };
}
