#!/usr/bin/env python3
"""Spoofed UDP datagrams for vtepd's attacker tests (scapy).

usage: spoof.py IFACE SRC_IP SRC_PORT DST_IP DST_PORT COUNT HEX [HEX ...]

Sends each HEX payload COUNT times from SRC_IP:SRC_PORT (an address that is not IFACE's:
a blind spoofer who never sees the answers) to DST_IP:DST_PORT. Prints "sent N BYTES" (the
UDP payload bytes).
"""
import sys
from scapy.all import IP, UDP, Raw, send, conf  # type: ignore

conf.verb = 0
iface, src, sport, dst, dport, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
payloads = [bytes.fromhex(h) for h in sys.argv[7:]]
pkts = [IP(src=src, dst=dst, flags="DF") / UDP(sport=sport, dport=dport) / Raw(p) for p in payloads for _ in range(count)]
send(pkts, iface=iface)
print(f"sent {len(pkts)} {sum(len(p) for p in payloads) * count}")
