/**
 * The bench's chart (bench/chart.ts): two panels with their own axes, every bar inside the
 * picture however far vtepd is from the kernel, the absolute figures beside each bar, and
 * no label on the 1× line.
 */
import { describe, expect, it } from 'vitest';
import { axis, chartSvg, type ChartInput } from '../../bench/chart.js';

const run: ChartInput = {
  date: '2026-11-21T20:41:52.691Z',
  seconds: 5,
  rounds: 3,
  kernel: {
    tcp1: 14.69,
    tcp4: 23.21,
    udp64pps: 149_541,
    udp64arrived: 150_032,
    udp1400pps: 137_120,
    udp1400arrived: 137_550,
    rttMean: 0.0329,
    rttP99: 0.076,
    cpuSecPerGB: 0.706,
  },
  vtepd: {
    tcp1: 11.68,
    tcp4: 11.34,
    udp64pps: 121_223,
    udp64arrived: 295_546,
    udp1400pps: 82_044,
    udp1400arrived: 302_550,
    // A p99 70 times the kernel's: the bar that used to run off the edge.
    rttMean: 0.2048,
    rttP99: 5.32,
    cpuSecPerGB: 1.229,
  },
  hubSpoke: { kernel: 9.89, vtepd: 7.03 },
};

const attrs = (tag: string): Record<string, string> => Object.fromEntries([...tag.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
const elements = (svg: string, name: string) => [...svg.matchAll(new RegExp(`<${name}\\b[^>]*>`, 'g'))].map((m) => attrs(m[0]));
/** Each <text> with its position and its words (tags stripped). */
const texts = (svg: string): (Record<string, string> & { words: string })[] =>
  [...svg.matchAll(/<text\b([^>]*)>(.*?)<\/text>/g)].map((m) => ({
    ...attrs(m[1]!),
    words: m[2]!
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  }));

describe('bench chart', () => {
  const svg = chartSvg(run);
  const [, , W, H] = attrs(/<svg\b[^>]*>/.exec(svg)![0])
    .viewBox!.split(' ')
    .map(Number);

  it('has two panels, throughput (higher is better) and latency and CPU (lower is better), each with its own 1× line', () => {
    const panels = svg.split('<g class="panel">').slice(1);
    expect(panels).toHaveLength(2);
    expect(panels[0]).toContain('Throughput — higher is better');
    expect(panels[0]).toContain('TCP 1 stream');
    expect(panels[0]).not.toContain('ping RTT');
    expect(panels[1]).toContain('Latency and CPU — lower is better');
    expect(panels[1]).toContain('ping RTT p99');
    for (const p of panels) expect(elements(p, 'line').filter((l) => l['stroke-dasharray'])).toHaveLength(1);
    // Their own axes: the throughput axis ends at 2.5×, the latency axis far beyond 70×.
    expect(texts(panels[0]!).map((t) => t.words)).toContain('2.5×');
    expect(texts(panels[1]!).map((t) => t.words)).toContain('80×');
  });

  it('keeps every bar and every label inside the picture', () => {
    const rects = elements(svg, 'rect').slice(1); // the first is the white background
    expect(rects).toHaveLength(10);
    for (const r of rects) {
      expect(Number(r.x) + Number(r.width)).toBeLessThanOrEqual(W!);
      expect(Number(r.y) + Number(r.height)).toBeLessThanOrEqual(H!);
    }
    for (const t of texts(svg)) {
      // At most 0.62 em per character (bold, 15 px for the title), anchored as the text says.
      const width = t.words.length * 0.62 * Number(t['font-size'] ?? (t['font-weight'] ? 15 : 13));
      const x = Number(t.x);
      const [from, to] = t['text-anchor'] === 'end' ? [x - width, x] : t['text-anchor'] === 'middle' ? [x - width / 2, x + width / 2] : [x, x + width];
      expect(from, t.words).toBeGreaterThanOrEqual(0);
      expect(to, t.words).toBeLessThanOrEqual(W!);
      expect(Number(t.y), t.words).toBeLessThanOrEqual(H!);
    }
  });

  it('prints the ratio and both absolute figures beside each bar', () => {
    const words = texts(svg).map((t) => t.words);
    expect(words).toContain('0.80× 11.68 vs 14.69 Gbit/s');
    expect(words).toContain('1.97× 296 vs 150 kpps');
    expect(words).toContain('0.71× 7.03 vs 9.89 Gbit/s');
    expect(words).toContain('6.22× 205 µs vs 33 µs');
    expect(words).toContain('70.00× 5.32 ms vs 76 µs');
    expect(words).toContain('1.74× 1.23 vs 0.71 CPU s/GB');
  });

  it('puts no label on the 1× line', () => {
    for (const p of svg.split('<g class="panel">').slice(1)) {
      const one = elements(p, 'line').find((l) => l['stroke-dasharray'])!;
      const [x, y1, y2] = [Number(one.x1), Number(one.y1), Number(one.y2)];
      for (const t of texts(p)) {
        const y = Number(t.y);
        if (y < y1 || y - 12 > y2) continue; // above or below the line
        const width = t.words.length * 0.62 * 13;
        const from = t['text-anchor'] === 'end' ? Number(t.x) - width : Number(t.x);
        expect(from > x || from + width < x, `${t.words} at x ${from}..${from + width} crosses the 1× line at ${x}`).toBe(true);
      }
    }
  });

  it('rounds each axis up to a 1-2-2.5-5 step, never below 1×', () => {
    expect(axis(0.4)).toEqual({ top: 1, step: 0.2 });
    expect(axis(2.2)).toEqual({ top: 2.5, step: 0.5 });
    expect(axis(6.22)).toEqual({ top: 8, step: 2 });
    expect(axis(70)).toEqual({ top: 80, step: 20 });
  });
});
