#!/bin/sh
# `npm run bench:micro`: build bench/micro/micro.c (the per-packet routines) and
# bench/micro/switch.c (the switch, linked from the data path's objects) and bench/micro/seal.c
# (sealing and opening a 1400-byte frame, per cipher) against native/
# (gcc -O2 -flto, the addon's flags), print ns per packet, then instructions per packet
# under callgrind (a count that does not drift with load or frequency), then what one
# thread wake-up costs on this machine (bench/micro/wake.c), and how late a thread wakes
# with the process's resident memory (bench/micro/rss.c). Needs gcc; valgrind is optional.
#
#   sh bench/micro/run.sh --against DIR [ROUNDS]
#       the switch of this tree and of the tree at DIR (another checkout, e.g. before a
#       change), run alternately ROUNDS times each (default 7); prints the median ns per
#       frame of each and their ratio. A tree whose fast path is one file (no
#       native/dp_private.h) is built by including native/fastpath.c (-DDP_MONOLITH).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d /tmp/vtepd-micro.XXXXXX)
trap 'rm -rf "$out"' EXIT

cc=${CC:-gcc}
flags="-std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fno-strict-aliasing -D_GNU_SOURCE"

# The switch of the tree at $1, built as $2.
build_switch() {
  if [ -f "$1/native/dp_private.h" ]; then
    $cc $flags -flto -pthread -I"$1/native" -o "$2" "$here/switch.c" "$1"/native/*.c -l:libcrypto.so.3
  else
    $cc $flags -pthread -DDP_MONOLITH -I"$1/native" -o "$2" "$here/switch.c" \
      $(ls "$1"/native/*.c | grep -v '/fastpath\.c$') -l:libcrypto.so.3
  fi
}

if [ "${1:-}" = "--against" ]; then
  ref=$(cd "$2" && pwd)
  rounds=${3:-7}
  build_switch "$root" "$out/switch"
  build_switch "$ref" "$out/switch-ref"
  for i in $(seq "$rounds"); do
    "$out/switch-ref" | sed 's/^/ref /' >>"$out/rounds"
    "$out/switch" | sed 's/^/this /' >>"$out/rounds"
  done
  echo "== the switch, ns per frame, median of $rounds alternating rounds (each the best of 5)"
  printf '%-10s %10s %10s %8s\n' routine reference this ratio
  for name in $(awk '{print $2}' "$out/rounds" | sort -u); do
    med() { grep "^$1 $name " "$out/rounds" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    r=$(med ref) t=$(med this)
    awk -v n="$name" -v r="$r" -v t="$t" 'BEGIN { printf "%-10s %10.1f %10.1f %8.3f\n", n, r, t, t / r }'
  done
  echo "reference: $ref; this: $root"
  exit 0
fi

$cc $flags -o "$out/micro" "$here/micro.c" "$root/native/csum.c" "$root/native/gso.c" "$root/native/vxlan.c"
build_switch "$root" "$out/switch"

$cc $flags -flto -pthread -I"$root/native" -o "$out/seal" "$here/seal.c" "$root"/native/*.c -l:libcrypto.so.3

echo "== time (best of 5 rounds; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
"$out/micro"
"$out/switch"
"$out/seal"

if ! command -v valgrind >/dev/null 2>&1; then
  echo "== instructions: valgrind not installed (apt-get install valgrind), skipped"
  exit 0
fi
n=2000
echo "== instructions per packet (valgrind --tool=callgrind, $n calls each)"
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$out/micro" --count $n >"$out/packets" 2>"$out/vg.log"
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg.out" >"$out/annotate" 2>/dev/null
valgrind --tool=callgrind --callgrind-out-file="$out/cg-sw.out" "$out/switch" --count $n >>"$out/packets" 2>>"$out/vg.log"
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg-sw.out" >>"$out/annotate" 2>/dev/null
printf '%-10s %14s\n' routine "Ir/packet"
while read -r name packets; do
  ir=$(grep -E "[^a-z_]bench_$name[ ']" "$out/annotate" | head -1 | awk '{gsub(",", "", $1); print $1}')
  if [ -n "$ir" ]; then
    awk -v ir="$ir" -v n="$n" -v p="$packets" -v name="$name" 'BEGIN { printf "%-10s %14.0f\n", name, ir / (n * p) }'
  else
    printf '%-10s %14s\n' "$name" "?"
  fi
done <"$out/packets"

# What a thread hand-off costs here (the unit behind the ping figure of `npm run bench`).
$cc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE -pthread -o "$out/wake" "$here/wake.c"
echo "== thread wake-up (median of 2000 round trips; one round trip is two wake-ups)"
"$out/wake"

# What a wake-up costs with the process's resident memory (why node's size shows in the ping).
$cc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE -pthread -o "$out/rss" "$here/rss.c"
echo "== wake-up lateness by resident memory (bench/micro/rss.c; 30 sleeps of 200 ms each)"
"$out/rss"
