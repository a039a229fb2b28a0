/**
 * ARP and neighbour discovery against the kernel (src/core/arp.ts): the kernel of h1 makes
 * the requests, solicitations and a DAD, tcpdump in h2 captures them, and parse* must read
 * them right; then the replies and announcements vtepd would write go back onto the wire
 * (an AF_PACKET socket in h2) and h1's neighbour table must take them.
 *
 * h1 (10.9.0.1/24, 2001:db8:9::1/64) --veth-- h2 (no addresses: the wire, where vtepd stands).
 * Nobody owns 10.9.0.2 or 2001:db8:9::2: only our answers can resolve them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab/netns.js';
import { until } from '../../lab/wait.js';
import {
  type AnswerableArp,
  type AnswerableSolicitation,
  arpReply,
  glean,
  gratuitousArp,
  type NeighborSolicitation,
  neighborAdvertisement,
  parseArpRequest,
  parseNeighborSolicitation,
  unsolicitedNeighborAdvertisement,
} from '../../src/core/arp.js';
import { readPcapFrames, tcpdump } from '../support/pcap.js';

const C = '02:00:00:00:00:0c';
const D = '02:00:00:00:00:0d';

/** Send raw Ethernet frames out of `iface` (AF_PACKET, Python's standard library). */
const SEND = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\nfor h in sys.argv[2:]: s.send(bytes.fromhex(h))';

describe('ARP and ND frames against the kernel', () => {
  const lab = new Lab('va');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-arp-'));
  const file = join(dir, 'h2.pcap');
  let h1mac = '';
  let capture: { stop(): Promise<unknown> };

  const send = (...frames: Buffer[]) => lab.exec('h2', '/usr/bin/python3', ['-c', SEND, 'v2', ...frames.map((f) => f.toString('hex'))]);
  const neigh = async (ip: string): Promise<{ lladdr?: string; state?: string[] }> => {
    const out = JSON.parse((await lab.exec('h1', 'ip', ['-j', 'neigh', 'show', ip, 'dev', 'v1'])).stdout || '[]') as { lladdr?: string; state?: string[] }[];
    return out[0] ?? {};
  };
  /** The first captured frame that `parse` accepts and `ok` likes. */
  const captured = <T>(what: string, parse: (f: Buffer) => T | null, ok: (v: T) => boolean) =>
    until(
      what,
      async () =>
        readPcapFrames(file)
          .map(parse)
          .find((v): v is T => v !== null && ok(v)),
      (v) => v !== undefined,
    ) as Promise<T>;

  /** h1's neighbour table takes `answer` (ip at C), then `announce` (ip moved to D). */
  const takes = async (ip: string, answer: Buffer, announce: Buffer) => {
    await send(answer);
    await until(
      `h1 to resolve ${ip} to the answer MAC`,
      () => neigh(ip),
      (n) => n.lladdr === C,
    );
    await send(announce);
    await until(
      `h1 to move ${ip} to the announced MAC`,
      () => neigh(ip),
      (n) => n.lladdr === D,
    );
  };

  beforeAll(async () => {
    await lab.addHost('h1');
    await lab.addHost('h2');
    await lab.link('h1', 'v1', '10.9.0.1/24', 'h2', 'v2', null);
    await lab.exec('h1', 'ip', ['addr', 'add', '2001:db8:9::1/64', 'dev', 'v1', 'nodad']);
    h1mac = (await lab.exec('h1', 'cat', ['/sys/class/net/v1/address'])).stdout.trim();
    // Pings to the unowned addresses keep h1's kernel asking (each failed resolution retries).
    capture = await tcpdump(lab, 'h2', 'v2', file, 'arp or icmp6', async () => {
      await lab.exec('h1', 'ping', ['-c1', '-W1', '10.9.0.2']).catch(() => undefined);
    });
    lab.spawn('h1', 'ping', ['-i', '0.5', '10.9.0.2']);
    lab.spawn('h1', 'ping', ['-6', '-i', '0.5', '2001:db8:9::2']);
  });

  afterAll(async () => {
    await capture?.stop().catch(() => undefined);
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the kernel’s ARP request; h1 takes the reply and then a gratuitous ARP', async () => {
    const req = await captured('a kernel ARP request for 10.9.0.2', parseArpRequest, (r) => r.targetIp === '10.9.0.2');
    expect(req).toEqual({ kind: 'request', senderMac: h1mac, senderIp: '10.9.0.1', targetIp: '10.9.0.2' });
    const request = req as AnswerableArp;
    expect(glean(readPcapFrames(file).find((f) => parseArpRequest(f) !== null)!)).toEqual({ mac: h1mac, ips: ['10.9.0.1'] });

    await takes('10.9.0.2', arpReply(request, C), gratuitousArp(D, '10.9.0.2'));
  });

  it('reads the kernel’s neighbour solicitation; h1 takes the NA and then an unsolicited NA', async () => {
    const ns = await captured<NeighborSolicitation>('a kernel NS for 2001:db8:9::2', parseNeighborSolicitation, (n) => n.targetIp === '2001:db8:9::2');
    expect(ns).toEqual({ srcMac: h1mac, srcIp: '2001:db8:9::1', targetIp: '2001:db8:9::2', sourceLinkLayer: h1mac, dad: false });
    const nsFrame = readPcapFrames(file).find((f) => parseNeighborSolicitation(f)?.targetIp === '2001:db8:9::2')!;
    expect(glean(nsFrame)).toEqual({ mac: h1mac, ips: ['2001:db8:9::1'] });

    await takes('2001:db8:9::2', neighborAdvertisement(ns as AnswerableSolicitation, C), unsolicitedNeighborAdvertisement(D, '2001:db8:9::2'));
  });

  it('reads the kernel’s duplicate address detection as DAD, and gleans nothing from it', async () => {
    await lab.exec('h1', 'ip', ['addr', 'add', '2001:db8:9::3/64', 'dev', 'v1']);
    const dad = await captured<NeighborSolicitation>('a kernel DAD for 2001:db8:9::3', parseNeighborSolicitation, (n) => n.targetIp === '2001:db8:9::3');
    expect(dad).toEqual({ srcMac: h1mac, srcIp: '::', targetIp: '2001:db8:9::3', dad: true });
    const frame = readPcapFrames(file).find((f) => parseNeighborSolicitation(f)?.targetIp === '2001:db8:9::3')!;
    expect(glean(frame)).toBeNull();
  });
});
