/**
 * Encrypted tenants with a directory (#13): two hosts with identities whose configs name no
 * peer and no key; each publishes its public key in its member records, and each tenant's
 * peers and their keys come from the directory. The tenant (encryption: required, the
 * default with an identity) crosses the underlay sealed only, after a handshake between the
 * two members.
 *
 *   [et] etcd 10.0.0.9 ─┐
 *   [h1] 10.0.0.1 ──────┼── br0 [sw]      blue (VNI 5001): ns blue1 10.1.0.1, ns blue2 10.1.0.2
 *   [h2] 10.0.0.2 ──────┘
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryLab } from '../../lab/directory-lab.js';
import type { EtcdMember } from '../../lab/etcd.js';
import { Lab, parsePing } from '../../lab/netns.js';
import { labKey, startDaemon, type Daemonised, type LabKey } from '../../lab/topology.js';
import { until, untilPings } from '../../lab/wait.js';
import { request } from '../../src/daemon/control.js';
import type { RoleStatus } from '../../src/overlay/roles.js';
import { tcpdump } from '../support/pcap.js';

const HOSTS = ['10.0.0.1', '10.0.0.2'];
const ETCD = '10.0.0.9';

describe('etcd directory: encrypted tenants take their peers and keys from the directory', () => {
  const lab = new Lab('ds');
  const dir = mkdtempSync(join(tmpdir(), 'vtepd-ds-'));
  let etcd: EtcdMember;
  const daemons: Daemonised[] = [];
  const keys: LabKey[] = [];
  const overlay = async (i: number) => (await request<{ overlay: RoleStatus }>(daemons[i]!.socket, 'status', {}, { timeoutMs: 3000 })).overlay;

  beforeAll(async () => {
    etcd = await directoryLab(lab, HOSTS, ETCD);
    for (let i = 0; i < 2; i++) {
      await lab.addHost(`blue${i + 1}`, { ipv6: false });
      keys.push(labKey(dir, `h${i + 1}`));
    }
    for (let i = 0; i < 2; i++)
      daemons.push(
        await startDaemon(
          lab,
          `h${i + 1}`,
          [
            `underlay: { local: ${HOSTS[i]}, port: 4789 }`,
            'log: { level: info }',
            `identity: { privateKeyFile: ${keys[i]!.file} }`,
            `directory: { etcd: { endpoints: [ "http://${ETCD}:2379" ], prefix: /vtepd-test/${lab.prefix}, leaseTtl: 3 } }`,
            'tenants:',
            `  - { name: blue, vni: 5001, ports: [ { tap: b${i + 1}, netns: ${lab.ns(`blue${i + 1}`)}, address: 10.1.0.${i + 1}/24 } ] }`,
            '',
          ].join('\n'),
          dir,
        ),
      );
  }, 120_000);

  afterAll(async () => {
    await lab.cleanup();
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the members find each other’s keys, hold a session, and the tenant crosses sealed', async () => {
    const t0 = Date.now();
    for (const i of [0, 1])
      await until(
        `h${i + 1}'s session with its peer`,
        () => overlay(i),
        (o) => o.secure?.peers.length === 1 && o.secure.peers[0]!.up,
        30_000,
        100,
      );
    console.log(`directory-secure: both hosts hold a session ${Date.now() - t0} ms after the second daemon started (keys from the directory)`);
    expect((await overlay(0)).secure!.peers[0]).toMatchObject({ vtep: HOSTS[1], up: true });
    await untilPings(lab, 'blue1', '10.1.0.2', ['-c', '1', '-W', '1']);
    const cap = await tcpdump(lab, 'h1', 'ul0', join(dir, 'blue.pcap'), 'udp port 4789', async () => {
      await lab.exec('blue1', 'ping', ['-c', '1', '-W', '1', '10.1.0.2']).catch(() => undefined);
    });
    const out = await lab.exec('blue1', 'ping', ['-c', '5', '-i', '0.1', '-p', 'deadbeef', '10.1.0.2']);
    expect(parsePing(out.stdout).received).toBe(5);
    const big = (await cap.stop()).filter((d) => d.payload.length > 80);
    expect(big.length).toBeGreaterThanOrEqual(10);
    // Sealed (transport types 4/5), and the ping's pattern is nowhere in clear.
    expect(big.every((d) => (d.payload[0] === 4 || d.payload[0] === 5) && !d.payload.includes(Buffer.from('deadbeefdeadbeef', 'hex')))).toBe(true);
  }, 90_000);
});
