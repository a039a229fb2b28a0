#!/usr/bin/env python3
"""Write the fuzz targets' seed corpus (fuzz/corpus/<target>/): a few valid packets and
edge cases each, in each target's input format (see the comment at the top of each
fuzz/fuzz_*.c). Standard library only; checksums computed here. Run from anywhere:
    /usr/bin/python3 fuzz/corpus/make.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def csum(data, start=0):
    if len(data) % 2:
        data += b'\0'
    s = start + sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def mac(last2):
    return bytes([2, 0, 0, 0, last2 >> 8, last2 & 0xff])


SRC = mac(0x0a01)
BCAST = b'\xff' * 6


def eth(dst, src, etype, vlan=None):
    h = dst + src
    if vlan is not None:
        h += struct.pack('!HH', 0x8100, vlan)
    return h + struct.pack('!H', etype)


def ipv4(payload_len, proto, ident=1, df=True, options=b''):
    ihl = 5 + len(options) // 4
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, ihl * 4 + payload_len, ident, 0x4000 if df else 0, 64, proto, 0,
                    bytes([10, 1, 0, 1]), bytes([10, 1, 0, 2])) + options
    c = 0xffff & ~csum(h)
    return h[:10] + struct.pack('!H', c) + h[12:]


def ipv6(payload_len, nh):
    return struct.pack('!IHBB16s16s', 0x60000000, payload_len, nh, 64, b'\xfd' + b'\0' * 14 + b'\1', b'\xfd' + b'\0' * 14 + b'\2')


def pseudo(ip, proto, l4len):
    if ip[0] >> 4 == 4:
        return csum(ip[12:20] + struct.pack('!HH', proto, l4len))
    return csum(ip[8:40] + struct.pack('!IxxxB', l4len, proto))


def tcp(seq, flags=0x10, options=b'', payload=b'', ip=None, partial=False):
    doff = 5 + len(options) // 4
    h = struct.pack('!HHIIBBHHH', 40000, 5201, seq, 777, doff << 4, flags, 512, 0, 0) + options
    seg = h + payload
    if ip is not None:
        if partial:  # CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum
            c = pseudo(ip, 6, len(seg))
        else:
            c = 0xffff & ~csum(seg, pseudo(ip, 6, len(seg)))
        seg = seg[:16] + struct.pack('!H', c) + seg[18:]
    return seg


def udp(payload, ip=None, partial=False):
    h = struct.pack('!HHHH', 40000, 5201, 8 + len(payload), 0)
    seg = h + payload
    if ip is not None:
        c = pseudo(ip, 17, len(seg)) if partial else (0xffff & ~csum(seg, pseudo(ip, 17, len(seg)))) or 0xffff
        seg = seg[:6] + struct.pack('!H', c) + seg[8:]
    return seg


def tcp_frame(dst=mac(0x0101), v6=False, seq=1000, payload=b'x' * 100, flags=0x10, ident=1, vlan=None, partial=False,
              options=b'', ip_options=b''):
    plen = 20 + len(options) + len(payload)
    ip = ipv6(plen, 6) if v6 else ipv4(plen, 6, ident, options=ip_options)
    return eth(dst, SRC, 0x86dd if v6 else 0x0800, vlan) + ip + tcp(seq, flags, options, payload, ip, partial)


def udp_frame(dst=mac(0x0101), v6=False, payload=b'u' * 100, partial=False):
    plen = 8 + len(payload)
    ip = ipv6(plen, 17) if v6 else ipv4(plen, 17)
    return eth(dst, SRC, 0x86dd if v6 else 0x0800) + ip + udp(payload, ip, partial)


def vnet(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return struct.pack('<BBHHHH', flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def vxlan(vni, flags=0x08, rsvd=b'\0\0\0', rsvd2=0):
    return bytes([flags]) + rsvd + struct.pack('!I', vni)[1:] + bytes([rsvd2])


def gre(key=None, proto=0x6558, c=False, s=False, ver=0, extra_flags=0, payload=b''):
    flags = (0x8000 if c else 0) | (0x2000 if key is not None else 0) | (0x1000 if s else 0) | extra_flags | ver
    h = struct.pack('!HH', flags, proto)
    if c:
        h += b'\0\0\0\0'
    if key is not None:
        h += struct.pack('!I', key)
    if s:
        h += struct.pack('!I', 7)
    pkt = h + payload
    if c:
        ck = 0xffff & ~csum(pkt)
        pkt = pkt[:4] + struct.pack('!H', ck) + pkt[6:]
    return pkt


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


ARP = eth(BCAST, SRC, 0x0806) + bytes(28)

# ---- fuzz_vxlan: a UDP payload
write('fuzz_vxlan', 'valid', vxlan(5001) + ARP)
write('fuzz_vxlan', 'vni-max', vxlan(0xffffff) + ARP)
write('fuzz_vxlan', 'reserved-bit', vxlan(5001, rsvd2=1) + ARP)
write('fuzz_vxlan', 'no-i-flag', vxlan(5001, flags=0x00) + ARP)
write('fuzz_vxlan', 'truncated', vxlan(5001)[:7])

# ---- fuzz_gre: an IP payload
write('fuzz_gre', 'key', gre(key=5001, payload=ARP))
write('fuzz_gre', 'key-csum', gre(key=5001, c=True, payload=ARP))
write('fuzz_gre', 'seq', gre(key=5001, s=True, payload=ARP))
write('fuzz_gre', 'no-key', gre(payload=ARP))
write('fuzz_gre', 'version1', gre(key=1, ver=1, payload=ARP))
write('fuzz_gre', 'reserved', gre(key=1, extra_flags=0x4000, payload=ARP))
write('fuzz_gre', 'ipv4-proto', gre(key=1, proto=0x0800, payload=ARP))
write('fuzz_gre', 'nvgre', gre(key=0x123456 << 8 | 0x42, payload=ARP))
write('fuzz_gre', 'nvgre-vlan', gre(key=0x123456 << 8, payload=eth(BCAST, SRC, 0x0806, vlan=5) + bytes(28)))

# ---- fuzz_csum: [align][split 2][start 4][new value 2][data]
for i, n in enumerate([0, 1, 7, 31, 64, 1501]):
    write('fuzz_csum', 'len%d' % n, bytes([i, 0, (n // 2) & 0xff]) + struct.pack('<I', 0xfffe0001 * i & 0xffffffff) + b'\xff\x00' +
          bytes((k * 37 + i) & 0xff for k in range(n)))
write('fuzz_csum', 'all-ff', bytes([3, 0, 9, 0xff, 0xff, 0xff, 0xff, 0, 0]) + b'\xff' * 200)

# ---- fuzz_gso: [fix-ups][vnet hdr][frame]
PAY = bytes((k * 7) & 0xff for k in range(3500))


def gso_seed(name, frame, gso_type, mss, l4, proto_off, fix=0, hdr_len=None):
    hl = hdr_len if hdr_len is not None else l4 + (20 if proto_off == 16 else 8)
    write('fuzz_gso', name, bytes([fix]) + vnet(1, gso_type, hl, mss, l4, proto_off) + frame)


gso_seed('tcp4', tcp_frame(payload=PAY, partial=True), 1, 1448, 34, 16)
gso_seed('tcp4-fixups', tcp_frame(payload=PAY[:3000], partial=True), 1, 1000, 34, 16, fix=3)
gso_seed('tcp6', tcp_frame(v6=True, payload=PAY, partial=True), 4, 1428, 54, 16)
gso_seed('tcp4-ecn-fin', tcp_frame(payload=PAY[:2500], flags=0x99, partial=True), 0x81, 1000, 34, 16)
gso_seed('tcp4-vlan', tcp_frame(payload=PAY[:2000], vlan=7, partial=True), 1, 500, 38, 16)
gso_seed('tcp4-options', tcp_frame(payload=PAY[:2000], options=b'\x01\x01\x08\x0a' + bytes(8), ip_options=b'\x01\x01\x01\x00',
                                   partial=True), 1, 700, 38, 16, hdr_len=38 + 32)
gso_seed('tcp4-mss1', tcp_frame(payload=PAY[:40], partial=True), 1, 1, 34, 16)
gso_seed('udp4', udp_frame(payload=PAY[:3000], partial=True), 5, 1400, 34, 6)
gso_seed('udp6', udp_frame(v6=True, payload=PAY[:3000], partial=True), 5, 1400, 54, 6)
write('fuzz_gso', 'csum-partial-only', bytes([0]) + vnet(1, 0, 0, 0, 34, 16) + tcp_frame(partial=True))
write('fuzz_gso', 'raw-good-frame', bytes([0]) + vnet() + tcp_frame())

# ---- fuzz_gro: [mode][len 2][first segment] then ops (derived) or [len 2][segment]... (raw)
first4 = tcp_frame(payload=PAY[:1000], seq=5000, ident=100)
ops = b''.join(struct.pack('!HBB', 1000, 0x10, 0) for _ in range(5)) + struct.pack('!HBB', 300, 0x18, 0)
write('fuzz_gro', 'derived-tcp4', bytes([1]) + struct.pack('!H', len(first4)) + first4 + ops)
first6 = tcp_frame(v6=True, payload=PAY[:1200], seq=1)
write('fuzz_gro', 'derived-tcp6', bytes([1]) + struct.pack('!H', len(first6)) + first6 + ops + struct.pack('!HBB', 1200, 0x10, 0x85))
firstc = tcp_frame(payload=PAY[:500], seq=9, flags=0x90)
write('fuzz_gro', 'derived-cwr', bytes([1]) + struct.pack('!H', len(firstc)) + firstc + struct.pack('!HBB', 500, 0x10, 0) * 3 +
      struct.pack('!HBB', 500, 0x11, 0))
raw = b''
for k in range(4):
    seg = tcp_frame(payload=PAY[k * 800:(k + 1) * 800], seq=1 + 800 * k, ident=10 + k)
    raw += struct.pack('!H', len(seg)) + seg
write('fuzz_gro', 'raw-tcp4', bytes([0]) + raw)
fixed = b''
for k in range(3):  # DF with a fixed IPv4 id
    seg = tcp_frame(payload=PAY[k * 600:(k + 1) * 600], seq=1 + 600 * k, ident=55)
    fixed += struct.pack('!H', len(seg)) + seg
write('fuzz_gro', 'raw-fixed-id', bytes([0]) + fixed)


# ---- fuzz_decap: records [ctl][gro 2][len 2][datagram]; ctl bits 0-1 source, bit 2 MSG_TRUNC, bit 3 UDP_GRO
def drec(src, dgram, gro=0, trunc=False):
    ctl = src | (4 if trunc else 0) | (8 if gro else 0)
    return bytes([ctl]) + struct.pack('!HH', gro, len(dgram)) + dgram


T1, T2, T3 = 5001, 5002, 0x123456
flow = [vxlan(T1) + tcp_frame(payload=PAY[k * 1000:(k + 1) * 1000], seq=1 + 1000 * k, ident=k + 1) for k in range(3)]
write('fuzz_decap', 'coalesce-port1', b''.join(drec(0, d) for d in flow))
write('fuzz_decap', 'gro-buffer', drec(0, b''.join(flow[:2]) + flow[2][:500], gro=len(flow[0])))
write('fuzz_decap', 'plain-port2', drec(0, vxlan(T1) + tcp_frame(dst=mac(0x0102))))
write('fuzz_decap', 'broadcast', drec(0, vxlan(T1) + ARP))
write('fuzz_decap', 'split-horizon', drec(0, vxlan(T1) + tcp_frame(dst=mac(0x0199))))
write('fuzz_decap', 'accept-any', drec(2, vxlan(T2) + tcp_frame()) + drec(1, vxlan(T2) + udp_frame()))
write('fuzz_decap', 'not-accepted', drec(0, vxlan(T3) + tcp_frame()) + drec(1, vxlan(T3) + tcp_frame()))
write('fuzz_decap', 'spoofed-same-mac', drec(2, vxlan(T1) + tcp_frame()) + drec(1, vxlan(T1) + tcp_frame()))
write('fuzz_decap', 'bad-inner', drec(0, vxlan(T1) + eth(mac(0x0101), SRC, 0x0800, vlan=3) + bytes(40)) +
      drec(0, vxlan(T1) + bytes(10)) + drec(0, vxlan(T1) + eth(mac(0x0101), BCAST, 0x0800) + bytes(40)) +
      drec(0, vxlan(T1, rsvd2=1) + ARP) + drec(0, vxlan(77) + ARP) + drec(0, b'\x08\0\0'))
write('fuzz_decap', 'trunc-and-family', drec(0, vxlan(T1) + ARP, trunc=True) + drec(3, vxlan(T1) + ARP))
write('fuzz_decap', 'bad-tcp-csum', drec(0, flow[0][:-1] + b'\0') + drec(0, flow[1]))


# ---- fuzz_encap: records [port selector][vnet hdr 10][len 2][frame]; selector 0..3 = ports 1..4
def erec(port_index, frame, vh=None):
    return bytes([port_index]) + (vh or vnet()) + struct.pack('!H', len(frame)) + frame


sf = tcp_frame(dst=mac(0x0199), payload=PAY, partial=True)
write('fuzz_encap', 'gso-to-vtep1', erec(0, sf, vnet(1, 1, 54, 1448, 34, 16)))
write('fuzz_encap', 'gso-to-plain-port2', erec(0, tcp_frame(dst=mac(0x0102), payload=PAY[:3000], partial=True), vnet(1, 1, 54, 1000, 34, 16)))
write('fuzz_encap', 'partial-to-vtep1', erec(0, tcp_frame(dst=mac(0x0199), partial=True), vnet(1, 0, 0, 0, 34, 16)))
write('fuzz_encap', 'udp-gso-to-vtep1', erec(0, udp_frame(dst=mac(0x0199), payload=PAY[:3000], partial=True), vnet(1, 5, 42, 1400, 34, 6)))
write('fuzz_encap', 'plain-to-port1', erec(1, tcp_frame(dst=mac(0x0101))))
write('fuzz_encap', 'hairpin', erec(0, tcp_frame(dst=mac(0x0101))))
write('fuzz_encap', 'tenant2-to-vtep2', erec(2, tcp_frame(dst=mac(0x0299))) + erec(2, ARP))
write('fuzz_encap', 'tenant3-to-vtep2', erec(3, tcp_frame(dst=mac(0x0399))) + erec(3, tcp_frame(dst=mac(0x0199))))
write('fuzz_encap', 'broadcast-and-bad', erec(1, ARP) + erec(1, bytes(8)) + erec(1, eth(mac(0x0101), BCAST, 0x0800) + bytes(30)))

# ---- UDP coalescing (USO writes)
ufirst = udp_frame(payload=PAY[:1200])
write('fuzz_gro', 'derived-udp4', bytes([1]) + struct.pack('!H', len(ufirst)) + ufirst + struct.pack('!HBB', 1200, 0, 0) * 3 +
      struct.pack('!HBB', 100, 0, 0))
uflow = [vxlan(T1) + udp_frame(payload=PAY[k * 1000:(k + 1) * 1000]) for k in range(3)]
write('fuzz_decap', 'udp-coalesce-port1', b''.join(drec(0, d) for d in uflow))


# ---- GRE-TAP and NVGRE through the raw GRE socket (fuzz_decap ctl bit 4): [outer IPv4][GRE][frame]
def outer4(payload, src=2):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0x4000, 64, 47, 0, bytes([127, 0, 0, src]), bytes([127, 0, 0, 1]))
    c = 0xffff & ~csum(h)
    return h[:10] + struct.pack('!H', c) + h[12:] + payload


write('fuzz_decap', 'gre-tap-port5', drec(0x10, outer4(gre(key=7, payload=tcp_frame()))) +
      drec(0x10, outer4(gre(key=7, c=True, payload=ARP))))
write('fuzz_decap', 'nvgre-port4', drec(0x11, outer4(gre(key=0x123456 << 8 | 0x42, payload=tcp_frame()), src=3)) +
      drec(0x11, outer4(gre(key=0x123456 << 8, payload=eth(BCAST, SRC, 0x0806, vlan=5) + bytes(28)), src=3)))
write('fuzz_decap', 'gre-spoofed', drec(0x12, outer4(gre(key=7, payload=tcp_frame()), src=9)) +
      drec(0x10, outer4(gre(key=0x123456 << 8, payload=tcp_frame()))) + drec(0x10, outer4(gre(key=5001, payload=tcp_frame()))) +
      drec(0x10, outer4(gre(key=7, s=True, payload=ARP))) + drec(0x10, outer4(gre(key=7, ver=1, payload=ARP))) +
      drec(0x10, outer4(gre(payload=ARP))) + drec(0x10, b'\x45\x00\x00'))


# ---- fuzz_secure: records [ctl][len 2][data]; ctl bits 0-1 source, bit 2 seal ([counter 2][plaintext]),
# bit 3 a GRO buffer of 1 + (ctl >> 5 & 3) sealed datagrams, bit 4 K2 (else K1), bit 6 ChaCha20, bit 7 a flipped bit
def srec(ctl, data):
    return bytes([ctl]) + struct.pack('!H', len(data)) + data


def sealed(ctl, counter, plaintext):
    return srec(ctl | 4, struct.pack('!H', counter) + plaintext)


LIVE = b'\0VTP' + bytes(40)
write('fuzz_secure', 'port1-aes', sealed(0, 1, vxlan(T1) + tcp_frame(dst=mac(0x0101))) +
      sealed(0x40, 2, vxlan(T1) + tcp_frame(dst=mac(0x0101), seq=1100)))
write('fuzz_secure', 'gro-train', sealed(0x08 | 0x60, 10, vxlan(T1) + tcp_frame(dst=mac(0x0101), payload=b'y' * 1000)))
write('fuzz_secure', 'liveness-moved', sealed(0x02, 20, LIVE) + sealed(0x12, 21, LIVE))
write('fuzz_secure', 'forged-and-plain', sealed(0x80, 30, vxlan(T1) + tcp_frame(dst=mac(0x0101))) +
      srec(0, vxlan(T1) + tcp_frame(dst=mac(0x0101))) + sealed(0x10, 31, vxlan(T1) + tcp_frame(dst=mac(0x0101))))
write('fuzz_secure', 'handshakes', srec(0, bytes([1, 0, 0, 0]) + bytes(144)) + srec(0, bytes([2, 0, 0, 0]) + bytes(88)) +
      srec(1, bytes([3, 0, 0, 0]) + bytes(48)) + srec(2, bytes([1, 0, 0, 0]) + bytes(10)) + srec(0, bytes([4, 0, 0, 0]) + bytes(20)))
write('fuzz_secure', 'tenant2-sealed', sealed(0x10, 40, vxlan(T2) + tcp_frame(dst=mac(0x0101))))
