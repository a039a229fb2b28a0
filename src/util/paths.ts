/**
 * Where the package lives on disk, whether this module runs from source (src/ under
 * vitest) or compiled (dist/src/): the nearest folder above that holds vtepd's
 * package.json. The addon (build/Release/), the compiled CLI (dist/src/cli/cli.js) and
 * the bench results are found from it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vtepd') return dir;
      } catch {
        /* not ours: keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('vtepd: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** The package's root folder (the one with package.json, build/, dist/). */
export const packageRoot: string = findRoot();

/** The package's version, from package.json. */
export const VERSION: string = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
