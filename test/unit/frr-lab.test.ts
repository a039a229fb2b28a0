/**
 * lab/frr.ts's pure parts: the bgpd.conf it writes and its reading of FRR 8.4's
 * `show bgp l2vpn evpn json` (a shape taken from FRR 8.4.4 in the frr-lab netns test).
 */
import { describe, expect, it } from 'vitest';
import { bgpdConf, routes } from '../../lab/frr.js';

const path = (routeType: number, extra: Record<string, unknown>) => ({
  valid: true,
  bestpath: true,
  pathFrom: 'internal',
  routeType,
  ethTag: 0,
  peerId: '10.0.0.2',
  extendedCommunity: { string: 'RT:65000:100 ET:8' },
  nexthops: [{ ip: '10.0.0.2', hostname: 'b', afi: 'ipv4', used: true }],
  ...extra,
});

const SHOW = {
  bgpTableVersion: 3,
  bgpLocalRouterId: '10.0.0.1',
  defaultLocPrf: 100,
  localAS: 65000,
  '10.0.0.2:2': {
    rd: '10.0.0.2:2',
    '[2]:[0]:[48]:[02:00:00:0b:00:01]': {
      prefix: '[2]:[0]:[48]:[02:00:00:0b:00:01]',
      prefixLen: 352,
      paths: [path(2, { macLen: 48, mac: '02:00:00:0b:00:01' })],
    },
    '[3]:[0]:[32]:[10.0.0.2]': { prefix: '[3]:[0]:[32]:[10.0.0.2]', prefixLen: 352, paths: [[path(3, { ipLen: 32, ip: '10.0.0.2' })]] },
  },
  numPrefix: 2,
  totalPrefix: 2,
};

describe('lab/frr.ts', () => {
  it('reads one row per path of show bgp l2vpn evpn json, with RD, type, MAC, next hop and RTs', () => {
    expect(routes(SHOW)).toEqual([
      expect.objectContaining({ rd: '10.0.0.2:2', type: 2, mac: '02:00:00:0b:00:01', nextHop: '10.0.0.2', rts: ['65000:100'], best: true, peer: '10.0.0.2' }),
      expect.objectContaining({ rd: '10.0.0.2:2', type: 3, ip: '10.0.0.2', nextHop: '10.0.0.2', extCommunity: 'RT:65000:100 ET:8', from: 'internal' }),
    ]);
    expect(routes({})).toEqual([]);
  });

  it('writes an EVPN bgpd.conf: neighbors activated in l2vpn evpn, reflector clients, advertise-all-vni', () => {
    const conf = bgpdConf('a', {
      asn: 65000,
      routerId: '10.0.0.1',
      neighbors: ['10.0.0.2', { address: '10.0.0.9', asn: 65009 }],
      rrClients: ['10.0.0.2'],
      evpnConfig: ['dup-addr-detection max-moves 10 time 60'],
    });
    expect(conf).toContain('router bgp 65000\n bgp router-id 10.0.0.1\n');
    expect(conf).toContain(' neighbor 10.0.0.2 remote-as 65000\n');
    expect(conf).toContain(' neighbor 10.0.0.9 remote-as 65009\n');
    expect(conf).toContain('  neighbor 10.0.0.2 activate\n  neighbor 10.0.0.2 route-reflector-client\n  neighbor 10.0.0.9 activate\n');
    expect(conf).toContain('  advertise-all-vni\n  dup-addr-detection max-moves 10 time 60\n exit-address-family\n');
  });
});
