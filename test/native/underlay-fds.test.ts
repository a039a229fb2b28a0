/**
 * Underlay socket hand-over (dpUnderlayFds / dpCreate({ underlayFds })) and the per-port
 * vnetHdr flag, against the real addon on loopback: the layout of the exported fds, what
 * adoption refuses (and that a refused fd stays open and the caller's), and that a
 * port's vnetHdr flag must agree with what the fd is.
 */
import { describe, expect, it } from 'vitest';
import { fstatSync } from 'node:fs';
import { native, type DpHandle } from '../../src/native/addon.js';
import { testAddon } from '../support/test-addon.js';
import { Lab } from '../../lab/netns.js';

const n = native();
const t = testAddon();

function freshDp(sourcePorts = 3): { dp: DpHandle; port: number } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    try {
      return { dp: n.dpCreate({ local: '127.0.0.1', port, sourcePorts }), port };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    }
  }
  throw new Error('no free port');
}

const isOpen = (fd: number) => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe('underlay sockets: export and adoption', () => {
  it('exports the receive socket then the send sockets, and nothing once stopped', () => {
    const { dp } = freshDp(3);
    const fds = n.dpUnderlayFds(dp);
    expect(fds).toHaveLength(4);
    expect(new Set(fds).size).toBe(4);
    for (const fd of fds) expect(isOpen(fd)).toBe(true);
    n.dpStop(dp);
    expect(n.dpUnderlayFds(dp)).toEqual([]);
  });

  it('refuses sockets that do not match (wrong address or port, a count that disagrees) and leaves them open', () => {
    const a = freshDp(2);
    const fds = n.dpUnderlayFds(a.dp);
    // Bound to 127.0.0.1:a.port, offered for another port: the receive socket does not match.
    expect(() => n.dpCreate({ local: '127.0.0.1', port: a.port + 1 === 65536 ? 1 : a.port + 1, underlayFds: fds })).toThrow(
      expect.objectContaining({ code: 'EADDRNOTAVAIL' }),
    );
    expect(() => n.dpCreate({ local: '127.0.0.2', port: a.port, underlayFds: fds })).toThrow(expect.objectContaining({ code: 'EADDRNOTAVAIL' }));
    // The send sockets in the receive socket's place.
    expect(() => n.dpCreate({ local: '127.0.0.1', port: a.port, underlayFds: [fds[1]!, fds[0]!, fds[2]!] })).toThrow(
      expect.objectContaining({ code: 'EADDRNOTAVAIL' }),
    );
    expect(() => n.dpCreate({ local: '127.0.0.1', port: a.port, sourcePorts: 5, underlayFds: fds })).toThrow(
      /sourcePorts 5 disagrees with underlayFds \(2 send sockets\)/,
    );
    expect(() => n.dpCreate({ local: '127.0.0.1', port: a.port, underlayFds: [fds[0]!] })).toThrow(/underlayFds must hold 2\.\.65 fds/);
    // A descriptor that is no socket at all (stdin is a pipe or /dev/null here).
    expect(() => n.dpCreate({ local: '127.0.0.1', port: a.port, underlayFds: [0, fds[1]!] })).toThrow();
    for (const fd of fds) expect(isOpen(fd), `fd ${fd} still open`).toBe(true);
    n.dpStop(a.dp);
  });
});

describe('ports: the vnetHdr flag', () => {
  it('takes a plain packet fd with vnetHdr false or omitted, and refuses nothing else for non-TAPs', () => {
    const { dp } = freshDp(1);
    n.dpTenantSet(dp, 1, 100);
    const [a, b] = t.testSocketPair();
    n.dpPortSet(dp, 1, 1, a);
    n.dpPortSet(dp, 1, 1, a, { vnetHdr: false });
    n.dpPortSet(dp, 1, 1, a, { vnetHdr: true }); // not a TAP: the caller's word is taken
    expect(() => n.dpPortSet(dp, 1, 1, a, { vnetHdr: 'yes' as unknown as boolean })).toThrow(/vnetHdr must be a boolean/);
    n.dpStop(dp);
    n.fdClose(a);
    n.fdClose(b);
  });

  it("reads a TAP's IFF_VNET_HDR from the fd: omitted follows it, a contradiction is EINVAL", async () => {
    const lab = new Lab('vf');
    try {
      await lab.addHost('h', { ipv6: false });
      const tap = n.tapOpen({ name: 'tap0', netns: lab.ns('h'), mtu: 1450 });
      const plain = n.tapOpen({ name: 'tap1', netns: lab.ns('h'), mtu: 1450, offloads: false });
      expect(tap.vnetHdr).toBe(true);
      expect(tap.offloads).toEqual(expect.arrayContaining(['csum', 'tso4', 'tso6']));
      expect(tap.gsoMaxSegs).toBe(44);
      expect(plain.vnetHdr).toBe(false);
      expect(plain.offloads).toEqual([]);
      const { dp } = freshDp(1);
      n.dpTenantSet(dp, 1, 100);
      n.dpPortSet(dp, 1, 1, tap.fd);
      n.dpPortSet(dp, 1, 1, tap.fd, { vnetHdr: true });
      expect(() => n.dpPortSet(dp, 1, 1, tap.fd, { vnetHdr: false })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/TAP with IFF_VNET_HDR but vnetHdr is false/) }),
      );
      expect(() => n.dpPortSet(dp, 2, 1, plain.fd, { vnetHdr: true })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      n.dpPortSet(dp, 2, 1, plain.fd);
      n.dpStop(dp);
      n.fdClose(tap.fd);
      n.fdClose(plain.fd);
    } finally {
      await lab.cleanup();
    }
  });
});

describe('queues (underlay.queues)', () => {
  it('runs a reuseport group that hands nothing over, and takes a multi-queue TAP up to its queue count', async () => {
    const lab = new Lab('vq');
    try {
      await lab.addHost('h', { ipv6: false });
      expect(() => n.dpCreate({ local: '127.0.0.1', port: 4789, queues: 9 })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/queues/) }),
      );
      expect(() => n.tapOpen({ name: 'tap0', netns: lab.ns('h'), mtu: 1450, queues: 9 })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/queues/) }),
      );
      let dp: DpHandle | undefined;
      for (let attempt = 0; !dp && attempt < 20; attempt++) {
        try {
          dp = n.dpCreate({ local: '127.0.0.1', port: 20000 + Math.floor(Math.random() * 20000), queues: 2 });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
        }
      }
      // A reuseport group is not handed over: a takeover's successor binds its own.
      expect(n.dpUnderlayFds(dp!)).toEqual([]);
      const tap = n.tapOpen({ name: 'tap0', netns: lab.ns('h'), mtu: 1450, queues: 3 });
      expect(tap.queueFds).toHaveLength(2);
      expect((await lab.exec('h', 'ip', ['-d', '-o', 'link', 'show', 'tap0'])).stdout).toMatch(/multi_queue numqueues 3 /);
      n.dpTenantSet(dp!, 1, 100);
      // Three queues of a TAP on a two-queue data path: one would never be read.
      expect(() => n.dpPortSet(dp!, 1, 1, tap.fd, { queueFds: tap.queueFds })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/3 fds for port 1: the data path runs 2 queue/) }),
      );
      n.dpPortSet(dp!, 1, 1, tap.fd, { queueFds: [tap.queueFds[0]!] });
      // Only a TAP has queues; the same fd twice is refused.
      const [a, b] = t.testSocketPair();
      expect(() => n.dpPortSet(dp!, 2, 1, a, { queueFds: [b] })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/not a TAP/) }),
      );
      expect(() => n.dpPortSet(dp!, 2, 1, tap.fd, { queueFds: [tap.fd] })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/given twice/) }),
      );
      expect(() => n.dpPortSet(dp!, 2, 1, tap.queueFds[0]!)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
      n.dpStop(dp!);
      for (const fd of [a, b, ...tap.queueFds, tap.fd]) n.fdClose(fd);
    } finally {
      await lab.cleanup();
    }
  });
});
