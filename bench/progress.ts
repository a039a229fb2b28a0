/**
 * Progress of a long run on stderr (the tables go to stdout): a numbered line as each
 * measured step starts and one as it ends, with what it measured, e.g.
 *
 *   bench: [3/42 0:12] vtepd TCP 1 stream, 5 s ...
 *   bench: [3/42 0:18] vtepd TCP 1 stream: 11.68 Gbit/s (0.80× kernel)
 *
 * Unnumbered notes say what happens between steps (a lab being built).
 */

export interface Progress {
  /**
   * Run one measured step: a line `what, detail ...` as it starts, `what: said(result)` as
   * it ends (or `what: failed: ...`, and the error is thrown on).
   */
  step<T>(what: string, run: () => Promise<T>, said: (r: T) => string, detail?: string): Promise<T>;
  /** A line between steps. */
  note(what: string): void;
}

/** A reporter for `total` steps; `write` and `now` are stderr and the clock unless a test gives its own. */
export function progress(name: string, total: number, write: (s: string) => void = (s) => process.stderr.write(s), now: () => number = Date.now): Progress {
  const t0 = now();
  let n = 0;
  const clock = () => {
    const t = Math.round((now() - t0) / 1000);
    return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
  };
  const line = (tag: string, text: string) => write(`${name}: [${tag}${tag ? ' ' : ''}${clock()}] ${text}\n`);
  return {
    async step(what, run, said, detail) {
      const tag = `${++n}/${Math.max(n, total)}`;
      line(tag, `${what}${detail ? `, ${detail}` : ''} ...`);
      let r: Awaited<ReturnType<typeof run>>;
      try {
        r = await run();
      } catch (e) {
        line(tag, `${what}: failed: ${((e as Error).message ?? String(e)).split('\n')[0]}`);
        throw e;
      }
      line(tag, `${what}: ${said(r)}`);
      return r;
    },
    note(what) {
      line('', what);
    },
  };
}

/** A reporter that prints nothing (a phase run without one). */
export const silent: Progress = { step: (_what, run) => run(), note: () => undefined };

/** "7.41 Gbit/s". */
export const gbps = (g: number) => `${g.toFixed(2)} Gbit/s`;
