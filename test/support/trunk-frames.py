#!/usr/bin/env python3
"""Frames onto a trunk for the #15 ToR tests (scapy).

usage: trunk-frames.py IFACE SRC_MAC TAGS:COUNT[:SIZE]...

Each TAGS:COUNT[:SIZE] sends COUNT frames of an IP packet of SIZE bytes (default 52) with TAGS: "none" (untagged), one 802.1Q VLAN ID ("100"),
or two joined by a dot for a double tag, outer first: "100.200" (802.1Q in 802.1Q) or
"ad100.200" (802.1ad outside, 802.1Q inside). Each frame is a broadcast (a switch floods it
through its VLAN) ICMP echo, id 0x7615, from 10.1.0.9 to 10.1.0.3, from SRC_MAC.
Prints "sent N" (all of them).
"""
import sys
from scapy.all import ICMP, IP, Dot1AD, Dot1Q, Ether, Raw, conf, sendp  # type: ignore

conf.verb = 0
iface, src, specs = sys.argv[1], sys.argv[2], sys.argv[3:]


def tagged(eth, tags):
    if tags == "none":
        return eth
    outer_ad = tags.startswith("ad")
    ids = [int(v) for v in tags.removeprefix("ad").split(".")]
    out = eth / (Dot1AD(vlan=ids[0]) if outer_ad else Dot1Q(vlan=ids[0]))
    for v in ids[1:]:
        out = out / Dot1Q(vlan=v)
    return out


pkts = []
for spec in specs:
    tags, count, *size = spec.split(":")
    data = b"trunk-frames".ljust(int(size[0]) - 28 if size else 24, b".")
    head = tagged(Ether(src=src, dst="ff:ff:ff:ff:ff:ff"), tags)
    pkts += [head / IP(src="10.1.0.9", dst="10.1.0.3") / ICMP(id=0x7615, seq=i) / Raw(data) for i in range(int(count))]
sendp(pkts, iface=iface)
print(f"sent {len(pkts)}")
