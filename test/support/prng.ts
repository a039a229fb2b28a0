/** A small seeded PRNG for reproducible fuzz-style tests (mulberry32; not for keys). */
export function prng(seed: number): { u32(): number; below(n: number): number; bytes(n: number): Buffer } {
  let a = seed >>> 0;
  const u32 = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const below = (n: number) => u32() % n;
  const bytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = u32() & 0xff;
    return b;
  };
  return { u32, below, bytes };
}
