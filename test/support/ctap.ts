/**
 * The C unit tests (test/native/*_test.c) print TAP: "ok N - name", "not ok N - name",
 * "# notes" and a plan line "1..N", and exit 1 if anything failed.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Run one; its output (stderr too when it fails or crashes) and whether it exited 0. */
export async function runTap(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ ok: boolean; out: string }> {
  try {
    return { ok: true, out: (await execFileP(cmd, args, { timeout: timeoutMs })).stdout };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${err.stdout ?? ''}\n${err.stderr ?? err.message}` };
  }
}

/** The lines that failed. */
export function notOk(out: string): string[] {
  return out.split('\n').filter((l) => l.startsWith('not ok'));
}
