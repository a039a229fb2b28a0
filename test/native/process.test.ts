/**
 * The data path in a process of its own (#18, native/dpx.h), against the real addon on
 * loopback: the child is vtepd-dp, a child of this process and far smaller; an error from it
 * reads as in process and names fds by this process's numbers; it holds a port's fd only
 * while the port exists; the underlay sockets it hands back are this process's to pass on;
 * once it is killed, calls fail with EPIPE naming it, and dpProcess says how it ended; once
 * it stops answering, the call waiting on it ends it after 5 s (ETIMEDOUT); and in both modes
 * every control event is either delivered or counted in event_queue_full.
 * (Switching itself is bridge.test.ts's bridgeBehaviours, run in both modes.)
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { dpProcessPath, native, type DpHandle } from '../../src/native/addon.js';
import { decodeEvents } from '../../src/native/datapath.js';
import { testAddon } from '../support/test-addon.js';
import { until } from '../../lab/wait.js';
import { daemonMB, daemonProcesses } from '../../lab/proc.js';
import { statusMB } from '../../src/util/proc.js';

const n = native();
const t = testAddon();

function freshDp(sourcePorts = 2, ownProcess = true): { dp: DpHandle; port: number } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    try {
      return { dp: n.dpCreate({ local: '127.0.0.1', port, sourcePorts, ...(ownProcess ? { process: dpProcessPath() } : {}) }), port };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    }
  }
  throw new Error('no free port');
}

const status = (pid: number, key: string) => new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
/** What the process's fds point to ("socket:[123]", ...). */
const targets = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
    } catch {
      return [];
    }
  });

describe('the data path in a process of its own', () => {
  it('is vtepd-dp, a child of this process, smaller than it', () => {
    const { dp } = freshDp();
    try {
      const p = n.dpProcess(dp);
      expect(p).toMatchObject({ alive: true });
      const pid = p!.pid;
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('vtepd-dp');
      expect(status(pid, 'PPid')).toBe(String(process.pid));
      expect(Number(status(pid, 'VmRSS'))).toBeLessThan(Number(status(process.pid, 'VmRSS')) / 4);
      // What the benches count as the daemon (lab/proc.ts): this process and its vtepd-dp
      // (with any other test's data path process this worker runs meanwhile).
      const counted = daemonProcesses(process.pid);
      expect(counted[0]).toBe(process.pid);
      expect(counted).toContain(pid);
      for (const p of counted.slice(1)) expect(readFileSync(`/proc/${p}/comm`, 'utf8').trim()).toBe('vtepd-dp');
      expect(daemonMB(process.pid, 'VmRSS')).toBeGreaterThan(0.9 * statusMB(process.pid, 'VmRSS') + statusMB(pid, 'VmRSS'));
      expect(n.dpCipher(dp)).toMatch(/^(aes-256-gcm|chacha20-poly1305)$/);
      // In process, the same data path is no process of its own.
      const local = freshDp(1, false).dp;
      expect(n.dpProcess(local)).toBeNull();
      n.dpStop(local);
    } finally {
      n.dpStop(dp);
    }
  });

  it('answers errors as in process, naming fds by our numbers, and holds a port fd only while the port exists', () => {
    const { dp } = freshDp();
    const [a, b] = t.testSocketPair();
    try {
      const pid = n.dpProcess(dp)!.pid;
      expect(() => n.dpTenantSet(dp, 1, 1 << 24)).toThrow(expect.objectContaining({ code: 'ERANGE' }));
      expect(() => n.dpPortSet(dp, 1, 7, a)).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/tenant 7 does not exist/) }));
      n.dpTenantSet(dp, 1, 5001);
      expect(() => n.dpPortSet(dp, 1, 1, a, { queueFds: [a] })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(new RegExp(`fd ${a} is given twice|data path runs 1 queue`)) }),
      );
      const socket = readlinkSync(`/proc/self/fd/${a}`);
      expect(targets(pid)).not.toContain(socket);
      n.dpPortSet(dp, 1, 1, a);
      expect(targets(pid)).toContain(socket);
      expect(() => n.dpPortSet(dp, 2, 1, a)).toThrow(
        expect.objectContaining({ code: 'EEXIST', message: expect.stringMatching(new RegExp(`fd ${a} is already port 1`)) }),
      );
      n.dpPortDel(dp, 1);
      expect(targets(pid)).not.toContain(socket);
    } finally {
      n.dpStop(dp);
      n.fdClose(a);
      n.fdClose(b);
    }
  });

  it('refuses a closed fd and an oversized payload as in process, and goes on serving', () => {
    const { dp } = freshDp();
    const [a, b] = t.testSocketPair();
    try {
      n.dpTenantSet(dp, 1, 5001);
      n.fdClose(a);
      expect(() => n.dpPortSet(dp, 1, 1, a)).toThrow(
        expect.objectContaining({ code: 'EBADF', message: expect.stringMatching(new RegExp(`fd ${a} is not an open descriptor`)) }),
      );
      n.dpVtepSet(dp, 1, '127.0.0.9', 0);
      expect(() => n.dpSendSecure(dp, 1, Buffer.alloc(5 << 20))).toThrow(expect.objectContaining({ code: 'EMSGSIZE' }));
      n.dpTenantSet(dp, 2, 5002);
      expect(n.dpProcess(dp)).toMatchObject({ alive: true });
    } finally {
      n.dpStop(dp);
      n.fdClose(b);
    }
  });

  it('leaves SIGINT, SIGTERM and SIGHUP to its daemon (ignored: it ends when the daemon closes its socket)', () => {
    const { dp } = freshDp();
    try {
      const ignored = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${n.dpProcess(dp)!.pid}/status`, 'utf8'))![1]}`);
      for (const sig of [1, 2, 15]) expect((ignored >> BigInt(sig - 1)) & 1n).toBe(1n);
    } finally {
      n.dpStop(dp);
    }
  });

  it('hands its underlay sockets back to this process, copies of its own', () => {
    const { dp } = freshDp(2);
    try {
      const pid = n.dpProcess(dp)!.pid;
      const fds = n.dpUnderlayFds(dp);
      expect(fds.length).toBe(3);
      for (const fd of fds) {
        expect(fstatSync(fd).isSocket()).toBe(true);
        expect(targets(pid)).toContain(readlinkSync(`/proc/self/fd/${fd}`));
      }
    } finally {
      n.dpStop(dp);
    }
  });

  it('once killed: calls fail with EPIPE naming it, dpProcess says how it ended, stats read zero', async () => {
    const { dp } = freshDp();
    const pid = n.dpProcess(dp)!.pid;
    n.dpStart(dp, () => {});
    process.kill(pid, 'SIGKILL');
    await until('the data path process to be reaped', async () => n.dpProcess(dp)?.alive === false);
    expect(n.dpProcess(dp)).toEqual({ pid, alive: false, exit: 'killed by signal 9' });
    expect(() => n.dpTenantSet(dp, 1, 5001)).toThrow(
      expect.objectContaining({ code: 'EPIPE', message: expect.stringMatching(new RegExp(`data path process \\(pid ${pid}\\) is gone`)) }),
    );
    expect(n.dpStats(dp).counters.tap_rx_frames).toBe(0);
    n.dpStop(dp);
  });

  it('once it stops answering: the call waiting on it ends it after 5 s with ETIMEDOUT, later calls fail with EPIPE', async () => {
    const { dp } = freshDp();
    const pid = n.dpProcess(dp)!.pid;
    n.dpStart(dp, () => {});
    process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      expect(() => n.dpTenantSet(dp, 1, 5001)).toThrow(
        expect.objectContaining({
          code: 'ETIMEDOUT',
          message: expect.stringMatching(new RegExp(`data path process \\(pid ${pid}\\) did not answer for 5 s and was ended`)),
        }),
      );
      console.log(`a stopped vtepd-dp: the call returned after ${Date.now() - t0} ms`);
      await until('the stopped data path process to be reaped', async () => n.dpProcess(dp)?.alive === false);
      expect(n.dpProcess(dp)).toEqual({ pid, alive: false, exit: 'did not answer for 5 s and was ended (SIGKILL)' });
      expect(() => n.dpTenantSet(dp, 2, 5002)).toThrow(expect.objectContaining({ code: 'EPIPE' }));
    } finally {
      if (n.dpProcess(dp)?.alive) process.kill(pid, 'SIGCONT');
      n.dpStop(dp);
    }
  });

  /* Sends 4000 VXLAN-port control datagrams (the "\0VTP" magic, 1200 bytes) to 127.0.0.1:port,
   * paced so that the socket's buffer keeps up. */
  const SENDER = [
    'import socket, sys, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    "p = b'\\x00VTP' + bytes(1196)",
    'for i in range(4000):',
    "    s.sendto(p, ('127.0.0.1', int(sys.argv[1])))",
    '    if i % 50 == 49: time.sleep(0.001)',
  ].join('\n');

  for (const own of [false, true])
    it(`counts every control event it had no room for (${own ? 'its own process' : 'in process'}): delivered + event_queue_full = control_rx`, async () => {
      const { dp, port } = freshDp(1, own);
      let delivered = 0;
      n.dpStart(dp, (records) => {
        delivered += decodeEvents(records).filter((e) => e.type === 'control').length;
      });
      try {
        // spawnSync holds the JS thread: no event is taken while the 4.8 MB arrive, more
        // than the queue's half (2 MB) in process, or the reader's half in the parent.
        const r = spawnSync('python3', ['-c', SENDER, String(port)], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        const c = await until(
          'every control datagram delivered or counted',
          async () => n.dpStats(dp).counters,
          (k) => k.control_rx > 0 && delivered + k.event_queue_full === k.control_rx,
        );
        console.log(`${own ? 'own process' : 'in process'}: control_rx ${c.control_rx}, delivered ${delivered}, event_queue_full ${c.event_queue_full}`);
        expect(c.event_queue_full).toBeGreaterThan(0);
        expect(delivered).toBeGreaterThan(0);
      } finally {
        n.dpStop(dp);
      }
    });
});
