/**
 * Two mesh hosts whose flood entries carry keys (`flood: [ { vtep, publicKey } ]`): the
 * encrypted tenant's frames cross only sealed (type 4/5 on the wire), the tenant with
 * `encryption: off` stays plain VXLAN beside it, and both sides show the session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parsePing } from '../../lab/netns.js';
import { until } from '../../lab/wait.js';
import { twoHostsVtepd, type Mesh } from '../../lab/topology.js';
import { request } from '../../src/daemon/control.js';
import type { RoleStatus } from '../../src/overlay/roles.js';
import { tcpdump } from '../support/pcap.js';

describe('a mesh of two hosts with keys', () => {
  let m: Mesh;
  const overlay = async (i: number) => (await request<{ overlay: RoleStatus }>(m.daemons[i]!.socket, 'status', {}, { timeoutMs: 5000 })).overlay;
  beforeAll(async () => {
    m = await twoHostsVtepd(
      [
        { name: 'enc', vni: 5002, addresses: ['10.2.0.1/24', '10.2.0.2/24'], encryption: 'required' },
        { name: 'plain', vni: 5001, addresses: ['10.1.0.1/24', '10.1.0.2/24'], encryption: 'off' },
      ],
      { tag: 'smesh', secure: true },
    );
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('the peers hold a session; the encrypted tenant crosses sealed, the plain one as VXLAN', async () => {
    for (const i of [0, 1])
      await until(
        `h${i + 1}'s session`,
        () => overlay(i),
        (o) => o.secure?.peers.length === 1 && o.secure.peers[0]!.up,
      );
    const wire = async (tenant: string, to: string) => {
      const cap = await tcpdump(m.lab, 'h1', 'ul0', join(m.dir, `${tenant}.pcap`), 'udp port 4789', async () => {
        await m.lab.exec(`${tenant}1`, 'ping', ['-c', '1', '-W', '1', to]).catch(() => undefined);
      });
      const out = await m.lab.exec(`${tenant}1`, 'ping', ['-c', '5', '-i', '0.1', '-p', 'deadbeef', to]);
      expect(parsePing(out.stdout).received).toBe(5);
      return (await cap.stop()).filter((d) => d.payload.length > 80);
    };
    const sealed = await wire('enc', '10.2.0.2');
    expect(sealed.length).toBeGreaterThanOrEqual(10);
    expect(sealed.every((d) => (d.payload[0] === 4 || d.payload[0] === 5) && !d.payload.includes(Buffer.from('deadbeefdeadbeef', 'hex')))).toBe(true);
    const plain = await wire('plain', '10.1.0.2');
    expect(plain.length).toBeGreaterThanOrEqual(10);
    expect(plain.every((d) => d.payload[0] === 0x08)).toBe(true);
    expect(plain.some((d) => d.payload.includes(Buffer.from('deadbeefdeadbeef', 'hex')))).toBe(true);
    const o = await overlay(0);
    expect(o.secure!.peers[0]).toMatchObject({ vtep: '10.0.0.2', up: true });
  });
});
