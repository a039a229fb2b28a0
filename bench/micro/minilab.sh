#!/bin/sh
# vtepd's C data path in a small process (#18): build bench/micro/minidp.c against native/,
# run one on each of two hosts (network namespaces with unique names, a veth between them,
# an endpoint namespace behind each with the TAP and a static neighbour), then ping from one
# endpoint to the other: SLOW pings at -i 0.2 and FAST at -i 0.01 (default 60 and 500).
# Prints the data path's resident memory and each rate's mean, p99 and pings over 1 ms.
#
#   sh bench/micro/minilab.sh [SLOW] [FAST]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d /tmp/vtepd-minilab.XXXXXX)
p=mdp$$
a='' b=''
cleanup() {
  for pid in $a $b; do kill "$pid" 2>/dev/null || true; done
  for n in h1 h2 e1 e2; do ip netns del "$p-$n" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT INT TERM

gcc -std=gnu11 -O2 -D_GNU_SOURCE -fno-strict-aliasing -flto -pthread -I"$root/native" -o "$out/minidp" \
  "$here/minidp.c" "$root"/native/*.c -l:libcrypto.so.3 2>"$out/cc.log" || { cat "$out/cc.log"; exit 1; }

for n in h1 h2 e1 e2; do ip netns add "$p-$n" && ip -n "$p-$n" link set lo up; done
ip link add "$p-a" netns "$p-h1" type veth peer name "$p-b" netns "$p-h2"
ip -n "$p-h1" link set "$p-a" name ul0
ip -n "$p-h2" link set "$p-b" name ul0
ip -n "$p-h1" addr add 10.0.0.1/24 dev ul0
ip -n "$p-h2" addr add 10.0.0.2/24 dev ul0
ip -n "$p-h1" link set ul0 up
ip -n "$p-h2" link set ul0 up
m1=02:00:00:00:01:01 m2=02:00:00:00:01:02
ip netns exec "$p-h1" "$out/minidp" 10.0.0.1 10.0.0.2 "$p-e1" tap0 $m1 10.1.0.1 $m2 >"$out/h1.log" 2>&1 &
a=$!
ip netns exec "$p-h2" "$out/minidp" 10.0.0.2 10.0.0.1 "$p-e2" tap0 $m2 10.1.0.2 $m1 >"$out/h2.log" 2>&1 &
b=$!
i=0
until grep -q running "$out/h1.log" && grep -q running "$out/h2.log"; do
  i=$((i + 1))
  [ $i -le 100 ] || { cat "$out/h1.log" "$out/h2.log"; exit 1; }
  sleep 0.1
done
ip -n "$p-e1" neigh add 10.1.0.2 lladdr $m2 dev tap0 nud permanent
ip -n "$p-e2" neigh add 10.1.0.1 lladdr $m1 dev tap0 nud permanent
ip netns exec "$p-e1" ping -c 3 -i 0.2 -W 1 10.1.0.2 >/dev/null
echo "minidp resident: $(awk '/VmRSS/ {print $2, $3}' /proc/$a/status)"
stats() {
  python3 -c "
import re, sys
v = [float(x) for x in re.findall(r'time=([\d.]+)', sys.stdin.read())]
s = sorted(v)
print('%-14s mean %.3f ms, p99 %.3f ms, over 1 ms %d of %d' % (sys.argv[1], sum(v) / len(v), s[int(len(s) * 0.99)], sum(x > 1 for x in v), len(v)))" "$1"
}
ip netns exec "$p-e1" ping -c "${1:-60}" -i 0.2 10.1.0.2 | stats "ping -i 0.2"
ip netns exec "$p-e1" ping -c "${2:-500}" -i 0.01 10.1.0.2 | stats "ping -i 0.01"
