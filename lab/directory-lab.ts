/**
 * The underlay of the directory tests and of `vtepd demo --directory`: hosts h1..hN and an etcd host "et" on one Linux
 * bridge (br0 in host "sw"), each on its ul0 in a /24, and a private etcd member running in
 * "et" (lab/etcd.ts), so nothing is sent from the root namespace.
 *
 *   [et] etcd ─┐
 *   [h1] ──────┼── br0 in [sw]
 *   [hN] ──────┘
 */
import { EtcdMember } from './etcd.js';
import type { Lab } from './netns.js';

/** Build it: `hosts[i]` is h<i+1>'s underlay address; returns the started etcd member (destroy it at the end). */
export async function directoryLab(lab: Lab, hosts: string[], etcdAddress: string): Promise<EtcdMember> {
  await lab.addHost('sw');
  await lab.exec('sw', 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  await lab.exec('sw', 'ip', ['link', 'set', 'br0', 'up']);
  const attach = async (host: string, addr: string, port: string) => {
    await lab.addHost(host);
    await lab.link(host, 'ul0', `${addr}/24`, 'sw', port, null);
    await lab.exec('sw', 'ip', ['link', 'set', port, 'master', 'br0']);
  };
  await attach('et', etcdAddress, 'pe');
  for (let i = 0; i < hosts.length; i++) await attach(`h${i + 1}`, hosts[i]!, `p${i + 1}`);
  const etcd = new EtcdMember({ netns: lab.ns('et'), host: etcdAddress });
  await etcd.start();
  return etcd;
}
