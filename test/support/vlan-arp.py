#!/usr/bin/env python3
"""Ask for an IPv4 address with an 802.1Q-tagged ARP request and print the reply (scapy).

usage: vlan-arp.py IFACE VLAN SRC_MAC SRC_IP TARGET_IP

Prints "reply VLAN HWSRC" (VLAN "untagged" for a reply without a tag), or "none" when no
reply came within 3 s. For a VM that tags its own frames behind a tagged TAP (vlan: on a
TAP port): the kernel here has no 802.1Q sub-interfaces, so scapy plays the VM's VLAN driver.
"""
import sys
from scapy.all import ARP, Dot1Q, Ether, conf, srp1  # type: ignore

conf.verb = 0
iface, vlan, src, psrc, pdst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
req = Ether(src=src, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=vlan) / ARP(op=1, hwsrc=src, psrc=psrc, pdst=pdst)
r = srp1(req, iface=iface, timeout=3)
if r is None or ARP not in r:
    print("none")
else:
    print("reply", r[Dot1Q].vlan if Dot1Q in r else "untagged", r[ARP].hwsrc)
