/**
 * The world the two-host EVPN tests share (evpn-vtepd, evpn-takeover, evpn-restart-gr,
 * evpn-mobility): two vtepd hosts h1 (10.0.0.1) and h2 (10.0.0.2) on one veth, each with a
 * "VM" namespace per name given (blue1, blue2, ...), and the CLI calls those tests make.
 */
import type { Lab } from '../../lab/netns.js';
import { until } from '../../lab/wait.js';
import { whereText, type FdbRow } from '../../src/core/fdb.js';
import { vtepdJson } from './ops.js';

export const HOSTS = ['10.0.0.1', '10.0.0.2'];
/** VM n's MAC (the one its port's config gives). */
export const macOf = (n: number) => `02:00:00:01:00:0${n}`;

/** h1 and h2 on one veth (ul0, HOSTS), and a namespace per VM name (no IPv6 unless listed in `ipv6`). */
export async function evpnPair(lab: Lab, vms: string[], ipv6: string[] = []): Promise<void> {
  await lab.addHost('h1');
  await lab.addHost('h2');
  await lab.link('h1', 'ul0', `${HOSTS[0]}/24`, 'h2', 'ul0', `${HOSTS[1]}/24`);
  for (const vm of vms) await lab.addHost(vm, { ipv6: ipv6.includes(vm) });
}

/** The CLI of host i (0: h1, 1: h2) of the pair, through its control socket. */
export function pairCli(lab: Lab, sock: (i: number) => string) {
  const status = <S>(i: number) => vtepdJson<S>(lab, `h${i + 1}`, ['status', '--socket', sock(i)]);
  const fdb = (i: number) => vtepdJson<FdbRow[]>(lab, `h${i + 1}`, ['fdb', 'show', '--tenant', 'blue', '--socket', sock(i)]);
  /** Where host i's FDB has `mac` ("directory vtep 10.0.0.2", "learned port b1"), or null. */
  const where = async (i: number, mac: string) => {
    const r = (await fdb(i)).find((x) => x.mac === mac);
    return r ? `${r.type} ${whereText(r.where)}` : null;
  };
  /** Wait until host i's FDB has `mac` where `want` says (null: not at all). */
  const untilWhere = (what: string, i: number, mac: string, want: string | null, timeoutMs = 30_000) =>
    until(
      what,
      () => where(i, mac),
      (w) => w === want,
      timeoutMs,
      100,
    );
  /** Wait until host i's supervised gobgpd has been restarted (restarts ≥ 1, running again); returns its pid. */
  const untilGobgpdRestarted = async (i: number) => {
    type S = { directory: { evpn: { gobgpd: { pid: number | null; restarts: number } | null } } | null };
    const s = await until(
      `h${i + 1} to have restarted gobgpd`,
      () => status<S>(i),
      (x) => (x.directory?.evpn.gobgpd?.restarts ?? 0) >= 1 && x.directory?.evpn.gobgpd?.pid !== null,
      20_000,
      100,
    );
    return s.directory!.evpn.gobgpd!.pid;
  };
  return { status, fdb, where, untilWhere, untilGobgpdRestarted };
}
