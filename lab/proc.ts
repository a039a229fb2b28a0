/**
 * What the benches count as a vtepd daemon's CPU and memory. With VTEPD_DP_PROCESS=1 (#18)
 * the data path runs in a process of its own (vtepd-dp, a child of the daemon), so "the
 * daemon" is that pair: its PID and its data path process's. By default it is the daemon alone.
 * Other children of the daemon (gobgpd, tcpdump) are their own rows, not the daemon's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpuSeconds, statFields, statusMB } from '../src/util/proc.js';

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

/** The daemon's PID and those of its children running vtepd-dp (its data path process). */
export function daemonProcesses(pid: number): number[] {
  const out = [pid];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const child = Number(name);
    if (statFields(child)?.[1] === String(pid) && comm(child) === 'vtepd-dp') out.push(child);
  }
  return out;
}

/** A daemon's CPU seconds: its own and its data path process's. */
export const daemonCpuSeconds = (pid: number): number => daemonProcesses(pid).reduce((a, p) => a + cpuSeconds(p), 0);

/** A daemon's memory (VmRSS now, or VmHWM: its peak) in MB: its own and its data path process's. */
export const daemonMB = (pid: number, field: 'VmRSS' | 'VmHWM'): number => daemonProcesses(pid).reduce((a, p) => a + statusMB(p, field), 0);
