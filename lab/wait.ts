/**
 * Waiting for readiness, never for a fixed time: poll a probe until it says ready, with a
 * deadline, and fail naming what was awaited and what the probe last saw. A busy machine
 * then only makes a test slower, not red.
 */
import type { Lab } from './netns.js';
import { parsePing } from './netns.js';

/** How long a lab waits for something to become ready before it gives up. */
export const READY_MS = 30_000;

/**
 * Call `probe` until `ok(value)` holds and return that value; a probe that throws counts as
 * not ready. Throws after `timeoutMs`, with `what` and the last value or error.
 */
export async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean = Boolean, timeoutMs = READY_MS, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (ok(v)) return v;
      last = v;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${typeof last === 'string' ? last : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Wait until one ping from `host` to `address` is answered: neighbours resolved, tunnels and
 * peers programmed. `args` adds ping options (e.g. ['-M', 'do', '-s', '1422']).
 */
export async function untilPings(lab: Lab, host: string, address: string, args: string[] = [], timeoutMs = READY_MS): Promise<void> {
  await until(
    `${host} to answer a ping to ${address}`,
    async () => {
      const r = await lab.exec(host, 'ping', ['-c', '1', '-W', '1', ...args, address]).catch((e: Error) => ({ stdout: e.message }));
      return parsePing(r.stdout).received;
    },
    (n) => n >= 1,
    timeoutMs,
    0,
  );
}

/** Wait until a socket in `host` listens on TCP `port` (e.g. an iperf3 server on 5201). */
export async function untilListening(lab: Lab, host: string, port: number, timeoutMs = READY_MS): Promise<void> {
  await until(
    `a TCP listener on port ${port} in ${host}`,
    async () => (await lab.exec(host, 'ss', ['-Hltn', `sport = :${port}`])).stdout.trim(),
    (out) => out.length > 0,
    timeoutMs,
    50,
  );
}

/**
 * Wait until `probe` gives the same value twice in a row, `everyMs` apart (JSON-equal):
 * e.g. counters that stop moving once a daemon has drained what a burst queued.
 */
export async function untilSteady<T>(what: string, probe: () => Promise<T>, timeoutMs = READY_MS, everyMs = 250): Promise<T> {
  let prev = JSON.stringify(await probe());
  return until(
    what,
    probe,
    (v) => {
      const s = JSON.stringify(v);
      const same = s === prev;
      prev = s;
      return same;
    },
    timeoutMs,
    everyMs,
  );
}

/** Wait until `text()` (output a test collects from a child, e.g. a running ping) matches `re`. */
export async function untilText(what: string, text: () => string, re: RegExp, timeoutMs = READY_MS): Promise<void> {
  await until(
    what,
    async () => text(),
    (t) => re.test(t),
    timeoutMs,
    50,
  );
}
