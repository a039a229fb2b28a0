/**
 * The built `vtepd` command for tests that run it as a process: bin/vtepd.js imports
 * dist/, so dist/ is rebuilt (tsc) first when it is missing or older than the sources the
 * test names.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'vtepd.js');

/** Run tsc unless every dist/ file of `sources` (paths under src/) is newer than its source. */
export function ensureBuilt(sources: string[]): void {
  const stale = sources.some((s) => {
    const out = join(ROOT, 'dist', s.replace(/\.ts$/, '.js'));
    return !existsSync(out) || statSync(out).mtimeMs < statSync(join(ROOT, s)).mtimeMs;
  });
  if (stale) execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `vtepd ARGS` with `input` on standard input (and `env` as its environment, if given). */
export function vtepd(args: string[], input = '', env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}
