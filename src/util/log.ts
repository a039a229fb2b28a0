/**
 * Levelled, namespaced logging (pino), quiet ("warn") by default, never written per packet.
 * The config's `log.level` sets it; `VTEPD_LOG=debug` (any level) wins over the config.
 *
 * Format: JSON lines on stderr when stderr is not a terminal (a journal, a file, a pipe:
 * what machines read), `time` in ISO 8601 UTC ("2026-01-02T03:04:05.067Z"); on a terminal one compact line per record,
 *   17:31:02.120 INFO  daemon: port up tenant=blue tap=blue0 mtu=1450
 * `VTEPD_LOG_FORMAT=json` or `=pretty` overrides the choice.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'ns', 'msg']);

/** One pino JSON record as a compact line for a person at a terminal. */
export function prettyLine(json: string): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const t = new Date(typeof r.time === 'number' || typeof r.time === 'string' ? r.time : Date.now());
  const hh = (n: number, w = 2) => String(n).padStart(w, '0');
  const time = `${hh(t.getHours())}:${hh(t.getMinutes())}:${hh(t.getSeconds())}.${hh(t.getMilliseconds(), 3)}`;
  const level = (LEVELS[Number(r.level)] ?? String(r.level)).padEnd(5);
  const kv = Object.entries(r)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level} ${r.ns ? `${String(r.ns)}: ` : ''}${String(r.msg ?? '')}${kv ? ` ${kv}` : ''}\n`;
}

function destination(): DestinationStream {
  const format = process.env.VTEPD_LOG_FORMAT ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const json = pino.destination({ fd: 2, sync: true });
  if (format !== 'pretty') return json;
  return {
    write: (line: string) => {
      json.write(prettyLine(line));
    },
  };
}

const LEVEL_NAMES = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** VTEPD_LOG, when it names a level: it wins over the config's log.level (a bad value is said once and ignored). */
function envLevel(): string | undefined {
  const v = process.env.VTEPD_LOG;
  if (!v) return undefined;
  if (LEVEL_NAMES.includes(v)) return v;
  process.stderr.write(`vtepd: VTEPD_LOG: must be one of ${LEVEL_NAMES.join(', ')}, not "${v}" (ignored)\n`);
  process.env.VTEPD_LOG = '';
  return undefined;
}

export const rootLogger: Logger = pino(
  { name: 'vtepd', level: envLevel() ?? 'warn', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
  destination(),
);

/** A child logger for one part of the daemon, e.g. logger('bridge'). */
export function logger(ns: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ ns, ...bindings });
}

/** The config's log.level (start, reload); VTEPD_LOG, when set to a level, wins over it. */
export function setLogLevel(level: string): void {
  rootLogger.level = envLevel() ?? level;
}

/** The level now (`vtepd log level`). */
export function logLevel(): string {
  return rootLogger.level;
}

/**
 * Set the level at runtime (`vtepd log level LEVEL`, API log.level): it wins over VTEPD_LOG
 * and the config until the next reload that changes log.level, or a restart.
 */
export function setRuntimeLogLevel(level: string): void {
  if (!LEVEL_NAMES.includes(level)) throw new Error(`level: must be one of ${LEVEL_NAMES.join(', ')}, not "${level}"`);
  rootLogger.level = level;
}
