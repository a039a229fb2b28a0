/**
 * `vtepd demo --keep` and `vtepd demo --clean ID`. With --keep the demo's namespaces and
 * daemons stay up (the daemons in sessions of their own, logging to files) and a state file,
 * <tmpdir>/vtepd-demo-ID.json, records what was made: the namespaces, and each daemon's
 * PID with its start time (/proc/PID/stat). --clean stops those daemons by PID, only while
 * the PID is still the process that was recorded, then deletes the namespaces, the files
 * and the state file. A daemon replaced by `vtepd restart` (a takeover: a new PID) is found
 * by asking its control socket for its PID, and stopped while that process runs the kept
 * config. Nothing is ever found by a process or namespace name pattern.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from '../src/daemon/control.js';
import { run } from './netns.js';
import type { Mesh, TenantPlan } from './topology.js';
import { until } from './wait.js';

export interface KeptDaemon {
  host: string;
  namespace: string;
  pid: number;
  /** Field 22 of /proc/PID/stat when kept: the PID is ours only while it still says this. */
  startTime: string;
  config: string;
  socket: string;
  log: string;
}

export interface KeptDemo {
  id: string;
  keptAt: string;
  /** The daemons' directory (configs, sockets, logs). */
  dir: string;
  namespaces: string[];
  daemons: KeptDaemon[];
}

const STATE = /^vtepd-demo-(vd[0-9a-f]{6})\.json$/;

/** Where the state of kept demo `id` is. */
export const statePath = (id: string) => join(tmpdir(), `vtepd-demo-${id}.json`);

/** The ids of the demos kept on this host. */
export function keptDemos(): string[] {
  return readdirSync(tmpdir())
    .map((f) => STATE.exec(f)?.[1])
    .filter((id): id is string => id !== undefined);
}

/** Field 22 (starttime) of /proc/PID/stat; null when there is no such process or it is a zombie. */
export function startTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[0] === 'Z' ? null : (fields[19] ?? null);
}

/** Record what the demo made, hand it over from the lab, and print the configs, what to try and how to tear it down. */
export async function keepDemo(t: Mesh, tenants: TenantPlan[], out: (s: string) => void): Promise<KeptDemo> {
  const id = t.lab.prefix;
  const { namespaces } = t.lab.keep();
  const daemons = t.daemons.map((d, i): KeptDaemon => {
    const pid = d.child.pid!;
    return {
      host: `h${i + 1}`,
      namespace: t.lab.ns(`h${i + 1}`),
      pid,
      startTime: startTime(pid) ?? '',
      config: d.configPath,
      socket: d.socket,
      log: join(t.dir, `h${i + 1}.log`),
    };
  });
  const state: KeptDemo = { id, keptAt: new Date().toISOString(), dir: t.dir, namespaces, daemons };
  writeFileSync(statePath(id), `${JSON.stringify(state, null, 2)}\n`);
  out(`demo --keep: left up as ${id} (state: ${statePath(id)})`);
  for (const d of daemons) {
    out('');
    out(`${d.host}: namespace ${d.namespace}, vtepd PID ${d.pid}, socket ${d.socket}, log ${d.log}`);
    out(`--- ${d.config}`);
    out(readFileSync(d.config, 'utf8').trimEnd());
  }
  const [blue] = tenants;
  const s1 = daemons[0]!.socket;
  out('');
  out('Try (the control sockets are files: the CLI needs no namespace):');
  out(`  npx vtepd status -s ${s1}`);
  out(`  npx vtepd fdb show -s ${s1}`);
  out(`  npx vtepd peers -s ${s1}`);
  out(`  npx vtepd stats -s ${daemons[1]!.socket}`);
  if (blue?.macs) out(`  npx vtepd trace -s ${s1} --tenant ${blue.name} --in ${blue.name}0 --src ${blue.macs[0]} --dst ${blue.macs[1]}`);
  out(`  ip netns exec ${t.lab.ns('blue1')} ping -c 3 10.1.0.2     # tenant blue, h1 -> h2`);
  out(`  ip netns exec ${t.lab.ns('h1')} tcpdump -ni ul0 udp port 4789   # the underlay`);
  out('Tear it down (stops these daemons by PID, deletes the namespaces and files):');
  out(`  npx vtepd demo --clean ${id}`);
  return state;
}

/** Stop process `pid` while its start time is still `start`: SIGTERM, then SIGKILL. */
async function stopPid(host: string, pid: number, start: string, why = ''): Promise<string> {
  const gone = () => startTime(pid) !== start;
  process.kill(pid, 'SIGTERM');
  try {
    await until(`vtepd PID ${pid} to exit after SIGTERM`, async () => gone(), Boolean, 10_000);
    return `${host}: vtepd PID ${pid}${why} stopped`;
  } catch {
    if (!gone()) process.kill(pid, 'SIGKILL');
    await until(`vtepd PID ${pid} to exit after SIGKILL`, async () => gone(), Boolean, 5_000);
    return `${host}: vtepd PID ${pid}${why} killed (it did not exit on SIGTERM within 10 s)`;
  }
}

/**
 * The daemon that took over from a kept one (`vtepd restart`): the PID its control socket
 * answers with, when that is not the recorded one and that process runs the kept config.
 */
async function successorOf(d: KeptDaemon): Promise<{ pid: number; start: string } | null> {
  let pid: number;
  try {
    pid = (await request<{ pid: number }>(d.socket, 'status', {}, { timeoutMs: 3000 })).pid;
  } catch {
    return null; // no daemon on the socket
  }
  if (pid === d.pid) return null;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
  const start = startTime(pid);
  return argv.includes(d.config) && start ? { pid, start } : null;
}

/** Stop one kept daemon by PID while it is still the recorded process (or its successor after a restart). */
async function stopKept(d: KeptDaemon): Promise<string> {
  const next = await successorOf(d);
  if (next) return stopPid(d.host, next.pid, next.start, ` (it took over from PID ${d.pid}: vtepd restart)`);
  const now = startTime(d.pid);
  if (now === null) return `${d.host}: vtepd PID ${d.pid} had already exited`;
  if (now !== d.startTime) return `${d.host}: PID ${d.pid} is another process now (started later); left alone`;
  return stopPid(d.host, d.pid, d.startTime);
}

/** `vtepd demo --clean ID`: stop the kept demo's daemons, delete its namespaces and files. True when all is gone. */
export async function cleanDemo(id: string, out: (s: string) => void): Promise<boolean> {
  const path = statePath(id);
  if (!STATE.test(`vtepd-demo-${id}.json`) || !existsSync(path)) {
    const ids = keptDemos();
    throw new Error(`demo --clean: no demo kept as "${id}" (${ids.length ? `kept here: ${ids.join(', ')}` : 'none is kept here'})`);
  }
  const state = JSON.parse(readFileSync(path, 'utf8')) as KeptDemo;
  let ok = true;
  for (const d of state.daemons) out(await stopKept(d));
  for (const ns of state.namespaces) {
    try {
      await run('ip', ['netns', 'del', ns]);
      out(`namespace ${ns} deleted`);
    } catch (e) {
      const gone = !existsSync(`/run/netns/${ns}`);
      ok &&= gone;
      out(`namespace ${ns}: ${gone ? 'already gone' : (e as Error).message}`);
    }
  }
  rmSync(state.dir, { recursive: true, force: true });
  if (ok) rmSync(path, { force: true });
  out(ok ? `demo --clean: ${id} removed` : `demo --clean: ${id} not fully removed; state kept in ${path}`);
  return ok;
}
