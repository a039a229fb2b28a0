/**
 * Levelled, namespaced logging (pino): JSON lines on stderr, quiet ("warn") by default,
 * never written per packet. `VTEPD_LOG=debug` or the config's `log.level` turns it up.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const rootLogger: Logger = pino(
  { name: 'vtepd', level: process.env.VTEPD_LOG ?? 'warn', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
);

/** A child logger for one part of the daemon, e.g. logger('bridge'). */
export function logger(ns: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ ns, ...bindings });
}

export function setLogLevel(level: string): void {
  rootLogger.level = level;
}
