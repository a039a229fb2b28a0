/**
 * The data path's global counters as the API and metrics show them: names in the addon's
 * order, each with its help text and whether it counts drops, as the addon was built with
 * them (native/counters.def, compiled into its counter table).
 */
import { native } from './addon.js';

export interface CounterInfo {
  name: string;
  help: string;
  /** A drop or error reason (a D() line of counters.def). */
  drop: boolean;
}

let cached: CounterInfo[] | undefined;

/** Every global counter of the addon, in its order, with help and drop flag. */
export function counterInfo(): CounterInfo[] {
  cached ??= native().counterInfo();
  return cached;
}
