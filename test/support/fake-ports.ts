/** TAP ports that exist only in memory, and a config from YAML text, for the daemon over the fake data path. */
import type { Config, PortConfig } from '../../src/config/config.js';
import { parseConfig } from '../../src/config/load.js';
import type { PortBackend, PortHandle } from '../../src/ports/tap.js';

/** A config from YAML text; throws with every error's path. */
export function cfg(text: string): Config {
  const r = parseConfig(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.config;
}

/** Ports in memory: a port without a configured MAC gets 02:aa:00:00:00:NN, NN counting up. */
export class MemPorts implements PortBackend {
  next = 100;
  async open(_tenant: string, p: PortConfig): Promise<PortHandle> {
    const ifindex = this.next++;
    return { fd: -1, ifindex, mac: p.mac ?? `02:aa:00:00:00:${(ifindex & 0xff).toString(16).padStart(2, '0')}` };
  }
  close(): void {}
  async change(): Promise<void> {}
}
