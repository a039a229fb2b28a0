#!/usr/bin/env python3
"""Malformed (and one well-formed) GRE packets toward vtepd, over a raw IPPROTO_GRE socket.

usage: gre-send.py SRC DST KEY COUNT KIND [KIND ...]

SRC and DST are IPv4 or IPv6 underlay addresses (the kernel builds the IP header); KEY is
a configured GRE-TAP key. Each KIND is sent COUNT times; prints "KIND sent N" per kind.
Each kind lands in one named drop counter of vtepd (see native/counters.def).
"""
import socket
import struct
import sys

src, dst, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kinds = sys.argv[5:]
family = socket.AF_INET6 if ":" in dst else socket.AF_INET

INNER = bytes.fromhex("02000000ee01" "02000000ee02" "0800") + b"\x45" + b"\x00" * 45
TEB = 0x6558
C, K, S = 0x8000, 0x2000, 0x1000


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def gre(w0=K, proto=TEB, k=key, seq=0, good_csum=True, inner=INNER):
    opt = b""
    if w0 & C:
        opt += b"\x00\x00\x00\x00"
    if w0 & K:
        opt += struct.pack("!I", k)
    if w0 & S:
        opt += struct.pack("!I", seq)
    pkt = bytearray(struct.pack("!HH", w0, proto) + opt + inner)
    if w0 & C:
        c = csum(bytes(pkt)) ^ (0 if good_csum else 0x5A5A)
        pkt[4:6] = struct.pack("!H", c)
    return bytes(pkt)


PACKETS = {
    "good": lambda: gre(),                              # delivered (counts nothing bad)
    "version": lambda: gre(w0=K | 1),                   # gre_bad_version
    "reserved": lambda: gre(w0=K | 0x4000),             # gre_reserved (bit 1)
    "truncated": lambda: gre()[:6],                     # gre_truncated (K announced, key cut)
    "short": lambda: b"\x20\x00",                        # gre_truncated (half a first word)
    "proto": lambda: gre(proto=0x0800),                 # gre_bad_proto
    "unknownkey": lambda: gre(k=0xFEDCBA),              # gre_unknown_key
    "csum": lambda: gre(w0=C | K, good_csum=False),     # gre_bad_checksum
    "seq": lambda: gre(w0=K | S, seq=7),                # gre_sequenced
    "nokey": lambda: gre(w0=0),                         # gre_no_key
}

s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_GRE)
s.bind((src, 0))
for kind in kinds:
    pkt = PACKETS[kind]()
    for _ in range(count):
        s.sendto(pkt, (dst, 0))
    print(f"{kind} sent {count}", flush=True)
