/**
 * A process's figures from /proc: its stat fields, CPU time and status sizes. Used by the
 * metrics (the data path's own process) and by the benches (lab/proc.ts).
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: the unit of utime and stime in /proc/PID/stat on Linux. */
const USER_HZ = 100;

/** The fields of /proc/PID/stat after the command (state, ppid, ...), or null once it is gone. */
export function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of a process, all its threads, in seconds (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / USER_HZ : 0;
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
