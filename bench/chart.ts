/**
 * The bench's chart (bench/results/latest.svg): vtepd against the kernel's VXLAN of the
 * same run, in two panels, each with its own axis: throughput (higher is better) and
 * latency and CPU (lower is better). A bar is vtepd / kernel, the dashed line at 1× is the
 * kernel; beside each bar, in a column of its own, the ratio and both absolute figures.
 *
 *   node dist/bench/chart.js [results.json] [out.svg]
 *
 * redraws the chart from a run's JSON without running the bench again (default: the newest
 * bench/results/throughput-*.json, to bench/results/latest.svg).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The figures of one side that the chart draws (a subset of throughput.ts's Figures). */
export interface ChartFigures {
  tcp1: number;
  tcp4: number;
  udp64pps: number;
  udp64arrived: number;
  udp1400pps: number;
  udp1400arrived: number;
  rttMean: number;
  rttP99: number;
  cpuSecPerGB: number;
}

/** The parts of a bench/results/throughput-*.json the chart reads. */
export interface ChartInput {
  date?: string;
  seconds?: number;
  rounds?: number;
  kernel: ChartFigures;
  vtepd: ChartFigures;
  hubSpoke?: { kernel: number; vtepd: number } | null;
}

/** A bar: `value` ÷ `ref` (vtepd and the kernel, or an overlay and the best userspace one). */
export interface Bar {
  name: string;
  ref: number;
  value: number;
  /** The absolute figures, "11.68 vs 14.69 Gbit/s". */
  unit: (value: number, ref: number) => string;
}

export interface Panel {
  title: string;
  higherIsBetter: boolean;
  bars: Bar[];
  /** The dashed line's label and the figures' heading (default: the kernel, vtepd/kernel). */
  refLabel?: string;
  figuresHead?: string;
}

const gbit = (v: number, k: number) => `${v.toFixed(2)} vs ${k.toFixed(2)} Gbit/s`;
const kpps = (v: number, k: number) => `${(v / 1e3).toFixed(0)} vs ${(k / 1e3).toFixed(0)} kpps`;
/** Milliseconds, in µs below 1 ms. */
export const time = (ms: number) => (ms < 1 ? `${Math.round(ms * 1000)} µs` : `${ms.toFixed(2)} ms`);

function panels(r: ChartInput): Panel[] {
  const { kernel: k, vtepd: v } = r;
  const bar = (name: string, key: keyof ChartFigures, unit: Bar['unit']): Bar => ({ name, ref: k[key], value: v[key], unit });
  return [
    {
      title: 'Throughput — higher is better',
      higherIsBetter: true,
      bars: [
        bar('TCP 1 stream', 'tcp1', gbit),
        bar('TCP 4 streams', 'tcp4', gbit),
        bar('UDP 64 B received', 'udp64pps', kpps),
        bar('UDP 64 B to receiver', 'udp64arrived', kpps),
        bar('UDP 1400 B received', 'udp1400pps', kpps),
        bar('UDP 1400 B to receiver', 'udp1400arrived', kpps),
        ...(r.hubSpoke ? [{ name: 'TCP spoke→hub→spoke', ref: r.hubSpoke.kernel, value: r.hubSpoke.vtepd, unit: gbit }] : []),
      ],
    },
    {
      title: 'Latency and CPU — lower is better',
      higherIsBetter: false,
      bars: [
        bar('ping RTT mean', 'rttMean', (a, b) => `${time(a)} vs ${time(b)}`),
        bar('ping RTT p99', 'rttP99', (a, b) => `${time(a)} vs ${time(b)}`),
        bar('CPU per GB (TCP 1)', 'cpuSecPerGB', (a, b) => `${a.toFixed(2)} vs ${b.toFixed(2)} CPU s/GB`),
      ],
    },
  ];
}

/** An axis from 0 to a round number at or above `max` (and 1×), with ticks at a 1-2-2.5-5 step. */
export function axis(max: number): { top: number; step: number } {
  const want = Math.max(1, max) / 5;
  const mag = 10 ** Math.floor(Math.log10(want));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= want)!;
  return { top: Math.ceil(Math.max(1, max) / step - 1e-9) * step, step };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (x: number) => String(Math.round(x * 10) / 10);

// Layout: names right-aligned at NAME_X, the plot from PLOT_X, PLOT_W wide, the figures from VALUE_X.
const W = 800;
const NAME_X = 190;
const PLOT_X = 200;
const PLOT_W = 300;
const VALUE_X = 520;
const BAR = 20;
const GAP = 8;
const GOOD = '#2a7';
const BAD = '#d84';

/** One panel at `y0`: its SVG and its height. */
function panelSvg(p: Panel, y0: number): { svg: string; height: number } {
  const ratios = p.bars.map((b) => b.value / b.ref);
  const { top, step } = axis(Math.max(...ratios.filter(Number.isFinite)));
  const x = (ratio: number) => PLOT_X + (Math.min(ratio, top) / top) * PLOT_W;
  const barsTop = y0 + 44;
  const barsEnd = barsTop + p.bars.length * (BAR + GAP) - GAP;
  const parts = [
    `<g class="panel">`,
    `<text x="10" y="${y0 + 16}" font-weight="bold">${esc(p.title)}</text>`,
    // The 1× line, its label above it, clear of the bars and of every other label.
    `<text x="${num(x(1))}" y="${y0 + 34}" text-anchor="middle" fill="#555">${esc(p.refLabel ?? 'kernel')} = 1×</text>`,
    `<text x="${VALUE_X}" y="${y0 + 34}" fill="#555">${esc(p.figuresHead ?? 'vtepd/kernel · vtepd vs kernel')}</text>`,
  ];
  p.bars.forEach((b, i) => {
    const y = barsTop + i * (BAR + GAP);
    const ratio = ratios[i]!;
    const ok = Number.isFinite(ratio);
    const good = p.higherIsBetter ? ratio >= 1 : ratio <= 1;
    parts.push(`<text x="${NAME_X}" y="${y + 15}" text-anchor="end">${esc(b.name)}</text>`);
    if (ok) parts.push(`<rect x="${PLOT_X}" y="${y}" width="${num(Math.max(1, x(ratio) - PLOT_X))}" height="${BAR}" fill="${good ? GOOD : BAD}"/>`);
    parts.push(
      `<text x="${VALUE_X}" y="${y + 15}"><tspan font-weight="bold">${ok ? `${ratio.toFixed(2)}×` : 'n/a'}</tspan><tspan dx="8">${esc(b.unit(b.value, b.ref))}</tspan></text>`,
    );
  });
  const axisY = barsEnd + 6;
  parts.push(`<line x1="${PLOT_X}" y1="${axisY}" x2="${PLOT_X + PLOT_W}" y2="${axisY}" stroke="#555"/>`);
  for (let i = 0; i * step <= top + 1e-9; i++) {
    const t = i * step;
    parts.push(`<line x1="${num(x(t))}" y1="${axisY}" x2="${num(x(t))}" y2="${axisY + 4}" stroke="#555"/>`);
    parts.push(`<text x="${num(x(t))}" y="${axisY + 17}" text-anchor="middle" font-size="11" fill="#555">${+t.toFixed(2)}×</text>`);
  }
  parts.push(`<line x1="${num(x(1))}" y1="${barsTop - 4}" x2="${num(x(1))}" y2="${axisY}" stroke="#333" stroke-dasharray="4 3"/>`);
  parts.push('</g>');
  return { svg: parts.join('\n'), height: axisY + 24 - y0 };
}

/** The whole chart of one run's results. */
export function chartSvg(r: ChartInput): string {
  const when = [
    r.date?.slice(0, 10),
    r.seconds ? `${r.seconds} s per iperf3 run` : '',
    r.rounds ? (r.rounds > 1 ? `median of ${r.rounds} rounds` : 'one round') : '',
  ]
    .filter(Boolean)
    .join(', ');
  return panelsSvg(
    [
      `vtepd against the kernel's VXLAN (same run, same veth)`,
      when || 'one run of npm run bench',
      'bar: vtepd / kernel; green: as good as the kernel or better, orange: worse',
    ],
    panels(r),
  );
}

/** A chart of `panels` under three lines of heading (a title, then two in grey). */
export function panelsSvg(heading: [string, string, string], ps: Panel[]): string {
  const head = [
    `<text x="10" y="22" font-weight="bold" font-size="15">${esc(heading[0])}</text>`,
    `<text x="10" y="42" fill="#555">${esc(heading[1])}</text>`,
    `<text x="10" y="60" fill="#555">${esc(heading[2])}</text>`,
  ];
  let y = 74;
  const body: string[] = [];
  for (const p of ps) {
    const { svg, height } = panelSvg(p, y);
    body.push(svg);
    y += height + 12;
  }
  const h = y;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="13">`,
    `<rect width="${W}" height="${h}" fill="#fff"/>`,
    ...head,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** The newest throughput-*.json in `dir`. */
export function newestResults(dir: string): string {
  const files = readdirSync(dir)
    .filter((f) => /^throughput-.*\.json$/.test(f))
    .sort();
  if (!files.length) throw new Error(`no throughput-*.json in ${dir} (npm run bench writes one)`);
  return join(dir, files[files.length - 1]!);
}

// Run alone: node dist/bench/chart.js [results.json] [out.svg]
if (process.argv[1] && /bench[/\\]chart\.js$/.test(process.argv[1])) {
  const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
  try {
    const input = process.argv[2] ?? newestResults(resultsDir);
    const out = process.argv[3] ?? join(resultsDir, 'latest.svg');
    writeFileSync(out, chartSvg(JSON.parse(readFileSync(input, 'utf8')) as ChartInput));
    console.log(`chart: ${out} from ${input}`);
  } catch (e) {
    console.error(`chart: ${(e as Error).message}`);
    process.exit(1);
  }
}
