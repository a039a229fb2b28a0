/**
 * What the benches count as a vtepd daemon's CPU and memory. With VTEPD_DP_PROCESS=1 (#18)
 * the data path runs in a process of its own (vtepd-dp, a child of the daemon), so "the
 * daemon" is that pair: its PID and its data path process's. By default it is the daemon alone.
 * Other children of the daemon (gobgpd, tcpdump) are their own rows, not the daemon's.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The fields of /proc/PID/stat after the command (state, ppid, ...), or null once it is gone. */
function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

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

/** utime + stime of a process, all its threads, in seconds (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / 100 : 0;
}

/** A field of /proc/PID/status in MB (VmRSS, VmHWM); 0 once it is gone. */
export function statusMB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** A daemon's CPU seconds: its own and its data path process's. */
export const daemonCpuSeconds = (pid: number): number => daemonProcesses(pid).reduce((a, p) => a + cpuSeconds(p), 0);

/** A daemon's memory (VmRSS now, or VmHWM: its peak) in MB: its own and its data path process's. */
export const daemonMB = (pid: number, field: 'VmRSS' | 'VmHWM'): number => daemonProcesses(pid).reduce((a, p) => a + statusMB(p, field), 0);
