#!/usr/bin/env python3
"""Hostile and malformed underlay packets for vtepd's barrage test (scapy).

usage: hostile.py IFACE DST_IP DST_PORT KNOWN_VNI COUNT KIND [KIND ...]

Each KIND is sent COUNT times from IFACE's own address to DST_IP:DST_PORT. Kinds that reach
the daemon's UDP socket land in one named drop counter each; kinds the kernel stops first
(bad checksums, broken IP headers, lone fragments) prove the daemon never sees them.
Prints one line "KIND sent N" per kind.
"""
import os
import sys
from scapy.all import Ether, IP, UDP, Raw, Dot1Q, fragment, sendp, conf, get_if_hwaddr, get_if_addr  # type: ignore

conf.verb = 0
iface, dst, dport, vni, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
kinds = sys.argv[6:]
src = get_if_addr(iface)

def vxlan(flags=0x08, v=vni, rsvd=b"\x00\x00\x00", rsvd2=0):
    return bytes([flags]) + rsvd + v.to_bytes(3, "big") + bytes([rsvd2])

INNER_DST = b"\x02\x00\x00\x00\xee\x01"
INNER_SRC = b"\x02\x00\x00\x00\xee\x02"

def inner(src=INNER_SRC, ethertype=b"\x08\x00", body=b"\x45" + b"\x00" * 45):
    return INNER_DST + src + ethertype + body

def udp(payload, sport=40000, chksum=None):
    u = UDP(sport=sport, dport=dport)
    if chksum is not None:
        u.chksum = chksum
    return IP(src=src, dst=dst, flags="DF") / u / Raw(payload)

PACKETS = {
    # Reach the daemon: one named counter each.
    "short": lambda: [udp(b"\x08\x00\x00")],                                   # vxlan_truncated
    "noflag": lambda: [udp(vxlan(flags=0x00) + inner())],                      # vxlan_bad_flags
    "reserved": lambda: [udp(vxlan(flags=0x0c, rsvd2=0x7f) + inner())],        # vxlan_bad_flags
    "unknownvni": lambda: [udp(vxlan(v=0xABCDE) + inner())],                   # vxlan_unknown_vni
    "runt": lambda: [udp(vxlan() + b"\x02" * 10)],                             # inner_runt
    "vlan": lambda: [udp(vxlan() + INNER_DST + INNER_SRC + b"\x81\x00\x00\x05\x08\x00" + b"\x45" + b"\x00" * 45)],  # inner_vlan
    "mcastsrc": lambda: [udp(vxlan() + inner(src=b"\x01\x00\x5e\x00\x00\x01"))],  # bad_src_mac
    "zerosrc": lambda: [udp(vxlan() + inner(src=b"\x00" * 6))],                # bad_src_mac
    "giant": lambda: fragment(IP(src=src, dst=dst) / UDP(sport=40001, dport=dport) / Raw(vxlan() + inner(body=b"\x00" * 20000)), fragsize=1400),  # frame_too_big
    "spoof": lambda: [udp(vxlan() + inner())],                                 # from a VTEP the tenant does not know
    # Stopped by the kernel before the daemon.
    "badcsum": lambda: [udp(vxlan() + inner(), chksum=0x1234)],
    "badihl": lambda: [IP(src=src, dst=dst, ihl=15) / UDP(sport=40000, dport=dport) / Raw(vxlan())],
    "lonefrag": lambda: fragment(IP(src=src, dst=dst) / UDP(sport=40002, dport=dport) / Raw(vxlan() + inner(body=b"\x00" * 3000)), fragsize=1400)[:1],
}

mac = get_if_hwaddr(iface)
for kind in kinds:
    pkts = []
    for _ in range(count):
        pkts.extend(PACKETS[kind]())
    # The caller passes the daemon host's MAC (DST_MAC): scapy sends at layer 2.
    dmac = os.environ.get("DST_MAC", "ff:ff:ff:ff:ff:ff")
    sendp([Ether(src=mac, dst=dmac) / p for p in pkts], iface=iface)
    print(f"{kind} sent {count}", flush=True)
