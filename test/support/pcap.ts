/**
 * Captures for the attacker tests: tcpdump writes a pcap file inside a namespace, and this
 * reads back the IPv4/UDP datagrams in it (what an on-path attacker holds).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Lab } from '../../lab/netns.js';
import { until } from '../../lab/wait.js';

export interface Datagram {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

/** The IPv4 UDP datagrams of a pcap file (Ethernet link type), in order. */
export function readPcap(file: string): Datagram[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: Datagram[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const incl = u32(off + 8);
    const pkt = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (pkt.length < 14 + 20 + 8 || pkt.readUInt16BE(12) !== 0x0800) continue;
    const ip = pkt.subarray(14);
    const ihl = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== 17) continue;
    const udp = ip.subarray(ihl);
    const len = udp.readUInt16BE(4);
    out.push({
      src: [...ip.subarray(12, 16)].join('.'),
      dst: [...ip.subarray(16, 20)].join('.'),
      sport: udp.readUInt16BE(0),
      dport: udp.readUInt16BE(2),
      payload: Buffer.from(udp.subarray(8, Math.min(len, udp.length))),
    });
  }
  return out;
}

/**
 * tcpdump writing every packet of `iface` in `host` that matches `filter` to `file`
 * (immediate mode: libpcap otherwise hands packets over in blocks, up to a second late,
 * and a block still pending when tcpdump stops is lost); stop() ends it and reads the file. tcpdump says "listening" a moment
 * before its socket sees packets, so the capture counts as started only once a first
 * packet is in the file: `prime` makes one (or background traffic does: a hub's underlay
 * always carries its spokes' probes). The first packets are kept.
 */
export async function tcpdump(
  lab: Lab,
  host: string,
  iface: string,
  file: string,
  filter = 'udp',
  prime?: () => Promise<void>,
): Promise<{ stop(): Promise<Datagram[]> }> {
  const child: ChildProcess = lab.spawn(host, 'tcpdump', ['-i', iface, '--immediate-mode', '-B', '65536', '-U', '-n', '-s', '0', '-w', file, filter]);
  // tcpdump says "listening on IFACE" on stderr once its socket is live.
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', () => {
      clearTimeout(t);
      reject(new Error(`tcpdump exited: ${err}`));
    });
  });
  await until(
    `tcpdump on ${host} ${iface} to capture a first packet`,
    async () => {
      await prime?.();
      return existsSync(file) && statSync(file).size > 24;
    },
    Boolean,
    15_000,
    50,
  );
  return {
    stop: async () => {
      await lab.stop(child, 'SIGINT');
      return readPcap(file);
    },
  };
}
