/**
 * pcap files for the tests: tcpdump writes one inside a namespace, and this reads back its
 * Ethernet frames or the IPv4/UDP datagrams in it (what an on-path attacker holds); frames
 * a test made are written to one for tshark's dissectors to judge.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../../lab/netns.js';
import { until } from '../../lab/wait.js';

export interface Datagram {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

/** The Ethernet frames of a pcap file (Ethernet link type), in order. */
export function readPcapFrames(file: string): Buffer[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const incl = u32(off + 8);
    out.push(Buffer.from(b.subarray(off + 16, off + 16 + incl)));
    off += 16 + incl;
  }
  return out;
}

/** The IPv4 UDP datagrams of a pcap file (Ethernet link type), in order. */
export function readPcap(file: string): Datagram[] {
  const out: Datagram[] = [];
  for (const pkt of readPcapFrames(file)) {
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

/** Write Ethernet frames to a pcap file (microsecond timestamps, all zero). */
export function writePcap(file: string, frames: Buffer[]): void {
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeUInt32LE(65535, 16);
  hdr.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const recs = frames.map((f) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  writeFileSync(file, Buffer.concat([hdr, ...recs]));
}

/**
 * Let tshark dissect Ethernet frames (through a pcap file), with IPv4 header checksums
 * checked: one row per frame, the first occurrence of each field ('' where absent).
 */
export function dissect(frames: Buffer[], fields: string[]): string[][] {
  const dir = mkdtempSync(join(tmpdir(), 'dissect-'));
  try {
    const file = join(dir, 'x.pcap');
    writePcap(file, frames);
    const out = execFileSync(
      'tshark',
      ['-r', file, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-E', 'occurrence=f', ...fields.flatMap((f) => ['-e', f])],
      { encoding: 'utf8' },
    );
    return out
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => l.split('\t'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
): Promise<{ stop(enough?: (got: Datagram[]) => boolean): Promise<Datagram[]> }> {
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
    // `enough`: what the file must hold before tcpdump stops (a busy machine lets it fall behind
    // the socket, and what it has not read yet is lost with it); polled for 10 s at most, then
    // the caller's assertions say what was missing.
    stop: async (enough?: (got: Datagram[]) => boolean) => {
      if (enough) await until('tcpdump to write what was sent', async () => readPcap(file), enough, 10_000, 50).catch(() => undefined);
      await lab.stop(child, 'SIGINT');
      return readPcap(file);
    },
  };
}
