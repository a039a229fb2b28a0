#!/bin/sh
# `npm run bench:micro`: build bench/micro/micro.c against native/ (gcc -O2, the addon's
# flags), print ns per packet, then instructions per packet under callgrind (a count that
# does not drift with load or frequency), then what one thread wake-up costs on this
# machine (bench/micro/wake.c). Needs gcc; valgrind is optional.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d /tmp/vtepd-micro.XXXXXX)
trap 'rm -rf "$out"' EXIT

cc=${CC:-gcc}
$cc -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fno-strict-aliasing -D_GNU_SOURCE \
  -o "$out/micro" "$here/micro.c" "$root/native/csum.c" "$root/native/gso.c" "$root/native/vxlan.c"

echo "== time (best of 5 rounds; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
"$out/micro"

if ! command -v valgrind >/dev/null 2>&1; then
  echo "== instructions: valgrind not installed (apt-get install valgrind), skipped"
  exit 0
fi
n=2000
echo "== instructions per packet (valgrind --tool=callgrind, $n calls each)"
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$out/micro" --count $n >"$out/packets" 2>"$out/vg.log"
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg.out" >"$out/annotate" 2>/dev/null
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
