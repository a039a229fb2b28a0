#!/usr/bin/env python3
"""Send COUNT Ethernet frames with random source MACs out of IFACE (AF_PACKET, raw).

usage: macflood.py IFACE COUNT DST_MAC [SEED [RATE]]

Each frame: DST_MAC, a random locally administered unicast source MAC (never repeated
within a run), EtherType 0x88B5 (IEEE local experimental) and 46 bytes of zeros, so the
receiving stack drops it. RATE (frames per second, default unpaced) paces the sending in
bursts of 100, so that a TAP's queue does not overflow while its reader catches up. Plain
standard library (no scapy: it is far too slow for this). Prints "sent N SECONDS" at the end.
"""
import random
import socket
import sys
import time

iface, count, dst = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3].replace(':', ''))
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else None)
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
tail = b'\x88\xb5' + bytes(46)
seen = set()
sent = 0
t0 = time.monotonic()
while sent < count:
    if rate and sent % 100 == 0:
        ahead = t0 + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    v = rng.getrandbits(48)
    v = (v & ~(1 << 40)) | (1 << 41)  # first octet: unicast (bit 0 clear), locally administered (bit 1 set)
    if v in seen:
        continue
    seen.add(v)
    frame = dst + v.to_bytes(6, 'big') + tail
    while True:
        try:
            s.send(frame)
            break
        except BlockingIOError:
            pass
        except OSError as e:  # ENOBUFS: the device queue is full; try again
            if e.errno != 105:
                raise
    sent += 1
print('sent %d %.2f' % (sent, time.monotonic() - t0))
