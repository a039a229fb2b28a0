#!/usr/bin/env python3
"""Tagged frames from a "bare-metal" host for vtepd's access-port tests (scapy).

usage: vlan-frames.py IFACE KIND COUNT SRC_MAC DST_IP

KIND is dot1q (one 802.1Q tag, VLAN 100), prio (an 802.1Q priority tag: VLAN 0, PCP 5) or qinq (802.1ad tag 100 outside, 802.1Q tag 200
inside). Each frame is a broadcast ICMP echo toward DST_IP from SRC_MAC: were it let in, it
would flood the tenant. Prints "sent N".
"""
import sys
from scapy.all import ICMP, IP, Dot1AD, Dot1Q, Ether, sendp, conf  # type: ignore

conf.verb = 0
iface, kind, count, src, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
eth = Ether(src=src, dst="ff:ff:ff:ff:ff:ff")
tags = {"dot1q": Dot1Q(vlan=100), "prio": Dot1Q(vlan=0, prio=5), "qinq": Dot1AD(vlan=100) / Dot1Q(vlan=200)}[kind]
pkts = [eth / tags / IP(src="10.1.0.3", dst=dst) / ICMP(id=0x7615, seq=i) for i in range(count)]
sendp(pkts, iface=iface)
print(f"sent {len(pkts)}")
