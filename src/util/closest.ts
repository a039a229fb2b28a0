/**
 * Did-you-mean: the known word nearest a typo (config keys, tenant names). One edit distance
 * for every message that suggests a name.
 */

/** The known word nearest `word` (case, '-' and '_' ignored), if it is a likely typo of it. */
export function closest(word: string, known: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const w = squash(word);
  const limit = w.length <= 4 ? 1 : w.length <= 8 ? 2 : 3;
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(w, squash(k));
    if (d <= limit && (!best || d < best.d)) best = { k, d };
  }
  return best?.k;
}

/** Edit distance: insertions, deletions, substitutions and swaps of two neighbours (mut: mtu is 1). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}
