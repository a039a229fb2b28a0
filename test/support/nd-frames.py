#!/usr/bin/python3
"""ARP and neighbour-discovery frames made by scapy, an encoder vtepd did not write, for
test/unit/arp.test.ts. Prints one JSON object: name -> frame as hex. A = 02:00:00:00:00:0a
(10.0.0.1, 2001:db8::1, fe80::a), B = 02:00:00:00:00:0b (10.0.0.2, 2001:db8::2)."""
import json
from scapy.all import ARP, Ether, IPv6, IPv6ExtHdrHopByHop, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, raw

A, B, BC = '02:00:00:00:00:0a', '02:00:00:00:00:0b', 'ff:ff:ff:ff:ff:ff'
SN2 = 'ff02::1:ff00:2'  # solicited-node group of 2001:db8::2
SN2MAC = '33:33:ff:00:00:02'

def arp(op, psrc, pdst, esrc=A, hwsrc=A, **kw):
    return Ether(dst=BC, src=esrc) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, pdst=pdst, **kw)

def ns(src='2001:db8::1', dst=SN2, tgt='2001:db8::2', lladdr=A, esrc=A, hlim=255, ext=False):
    ip = IPv6(src=src, dst=dst, hlim=hlim)
    if ext:
        ip = ip / IPv6ExtHdrHopByHop()
    p = Ether(dst=SN2MAC, src=esrc) / ip / ICMPv6ND_NS(tgt=tgt)
    return p / ICMPv6NDOptSrcLLAddr(lladdr=lladdr) if lladdr else p

def na(S, O, src='fe80::a', dst='ff02::1', tgt='2001:db8::1', lladdr=A, esrc=A):
    return Ether(dst='33:33:00:00:00:01', src=esrc) / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NA(R=0, S=S, O=O, tgt=tgt) / ICMPv6NDOptDstLLAddr(lladdr=lladdr)

frames = {
    'arp_request': arp(1, '10.0.0.1', '10.0.0.2'),
    'arp_probe': arp(1, '0.0.0.0', '10.0.0.1'),
    'arp_gratuitous': arp(1, '10.0.0.1', '10.0.0.1'),
    'arp_reply': Ether(dst=B, src=A) / ARP(op=2, hwsrc=A, psrc='10.0.0.1', hwdst=B, pdst='10.0.0.2'),
    'arp_spoofed_sender': arp(1, '10.0.0.1', '10.0.0.2', esrc=B),
    'arp_multicast_sender': arp(1, '10.0.0.1', '10.0.0.2', hwsrc='01:00:5e:00:00:01'),
    'ns': ns(),
    'ns_upper_case_target': ns(tgt='2001:DB8:0:0:1:0:0:1', dst='ff02::1:ff00:1'),
    'ns_without_sllao': ns(dst='2001:db8::2', lladdr=None),
    'ns_sllao_other_mac': ns(lladdr=B),
    'ns_dad': ns(src='::', lladdr=None),
    'ns_dad_with_sllao': ns(src='::'),
    'ns_dad_unicast': ns(src='::', dst='2001:db8::2', lladdr=None),
    'ns_hop_limit_254': ns(hlim=254),
    'ns_hop_by_hop': ns(ext=True),
    'ns_multicast_target': ns(tgt='ff02::1'),
    'na_unsolicited': na(0, 1),
    'na_unsolicited_no_override': na(0, 0),
    'na_solicited': na(1, 1, src='2001:db8::1', dst='2001:db8::2'),
    'na_spoofed_tlla': na(0, 1, lladdr=B),
    'rs': Ether(dst='33:33:00:00:00:02', src=A) / IPv6(src='fe80::a', dst='ff02::2', hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=A),
}
print(json.dumps({k: raw(v).hex() for k, v in frames.items()}))
