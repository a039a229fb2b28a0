/**
 * TAPs deleted under the daemon (src/ports/lost.ts): a detached port is taken down and
 * made again from its config, retried on every check until that works, and forgotten
 * when it leaves the config.
 */
import { describe, expect, it } from 'vitest';
import { LostPorts } from '../../src/ports/lost.js';
import type { RunningPort } from '../../src/ports/tap.js';
import type { PortConfig } from '../../src/config/config.js';

function port(tap: string, fd: number): RunningPort {
  const config = { tap, netns: null, mtu: 1450 } as unknown as PortConfig;
  return { tenant: 'blue', tap, netns: null, fd, queueFds: [], ifindex: fd, mac: '02:00:00:00:00:01', mtu: 1450, config };
}

function rig() {
  const ports: RunningPort[] = [port('blue0', 10), port('blue1', 11)];
  const detached = new Set<number>();
  const log: string[] = [];
  let failUp = false;
  let nextFd = 20;
  const lost = new LostPorts(
    {
      ports: () => ports,
      takeDown: (p) => {
        log.push(`down ${p.tap}`);
        ports.splice(ports.indexOf(p), 1);
      },
      bringUp: async (tenant, config) => {
        log.push(`up ${config.tap}`);
        if (failUp) throw new Error('cannot create');
        ports.push({ ...port(config.tap, nextFd++), tenant, config });
      },
      closed: () => false,
    },
    (p) => detached.has(p.fd),
  );
  return {
    ports,
    detached,
    log,
    lost,
    fail: (v: boolean) => {
      failUp = v;
    },
  };
}

describe('LostPorts', () => {
  it('recreates a port whose TAP went away, and leaves the others alone', async () => {
    const r = rig();
    await r.lost.check();
    expect(r.log).toEqual([]);
    r.detached.add(10);
    await r.lost.check();
    expect(r.log).toEqual(['down blue0', 'up blue0']);
    expect(r.ports.map((p) => `${p.tap}/${p.fd}`)).toEqual(['blue1/11', 'blue0/20']);
    expect(r.lost.recreated).toBe(1);
  });

  it('retries on every check until the port can be made again; forgets one that left the config', async () => {
    const r = rig();
    r.fail(true);
    r.detached.add(10);
    r.detached.add(11);
    await r.lost.check();
    await r.lost.check();
    expect(r.log).toEqual(['down blue0', 'down blue1', 'up blue0', 'up blue1', 'up blue0', 'up blue1']);
    expect(r.lost.forget('blue', 'blue1')).toBe(true);
    expect(r.lost.forget('red', 'blue0')).toBe(false);
    r.fail(false);
    r.log.length = 0;
    await r.lost.check();
    expect(r.log).toEqual(['up blue0']);
    expect(r.lost.recreated).toBe(1);
  });
});

describe('LostPorts: attached interfaces (#16)', () => {
  const attached = (p: RunningPort): RunningPort => ({ ...p, config: { ...p.config, kind: 'attach' } });
  it('counts an attached interface that goes and one that comes back (a new ifindex, the same name)', async () => {
    const r = rig();
    r.ports[0] = attached(r.ports[0]!);
    r.detached.add(10);
    r.fail(true);
    await r.lost.check();
    expect([r.lost.portsDetached, r.lost.portsAttached, r.lost.waiting('blue0')]).toEqual([1, 0, true]);
    r.fail(false);
    await r.lost.check();
    expect([r.lost.portsDetached, r.lost.portsAttached, r.lost.waiting('blue0')]).toEqual([1, 1, false]);
    expect(r.ports.map((p) => `${p.tap}/${p.fd}`)).toEqual(['blue1/11', 'blue0/20']);
  });

  it('waits for an interface that does not exist yet, and forgets those of a tenant removed', async () => {
    const r = rig();
    const config = { ...r.ports[0]!.config, tap: 'vnet7', kind: 'attach' } as PortConfig;
    r.fail(true);
    r.lost.wait('blue', config);
    await r.lost.check();
    expect(r.lost.waiting('vnet7')).toBe(true);
    r.fail(false);
    await r.lost.check();
    expect([r.lost.waiting('vnet7'), r.lost.portsAttached, r.ports.at(-1)?.tap]).toEqual([false, 1, 'vnet7']);
    r.lost.wait('red', { ...config, tap: 'vnet8' });
    r.lost.forgetTenant('red');
    expect(r.lost.waiting('vnet8')).toBe(false);
  });
});

describe('LostPorts: a reload changes a port that waits', () => {
  it('brings it back as the new config says; a port that does not wait is not its business', async () => {
    const r = rig();
    const config = { ...r.ports[0]!.config, tap: 'vnet7', kind: 'attach' } as PortConfig;
    r.fail(true);
    r.lost.wait('blue', config);
    expect(r.lost.changed('blue', { ...config, mtu: 1400 })).toBe(true);
    expect(r.lost.changed('red', config)).toBe(false);
    expect(r.lost.changed('blue', { ...config, tap: 'blue1' })).toBe(false);
    r.fail(false);
    await r.lost.check();
    expect(r.ports.at(-1)).toMatchObject({ tap: 'vnet7', config: { mtu: 1400 } });
  });
});
