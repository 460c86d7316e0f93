// Small statistics helpers. Every figure is reported as a median with its min and max over rounds:
// the bench machine is shared and noisy, so single numbers and absolute thresholds mean little.

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Number of rounds (or samples) the spread is over. */
  n: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...values].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), min: s[0], max: s[s.length - 1], n: s.length };
}

/** Quantile of an already sorted array (linear interpolation between closest ranks). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  return { p50: quantile(s, 0.5), p95: quantile(s, 0.95), p99: quantile(s, 0.99), max: s[s.length - 1] ?? NaN };
}

/** Ratio of two medians, with the range the per-round extremes allow (min/max, max/min). */
export function ratio(a: Spread, b: Spread): Spread {
  return { median: a.median / b.median, min: a.min / b.max, max: a.max / b.min, n: Math.min(a.n, b.n) };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 1e6) return `${(x / 1e6).toPrecision(digits)}M`;
  if (abs >= 1e4) return `${(x / 1e3).toPrecision(digits)}k`;
  if (abs >= 100) return x.toFixed(0);
  return x.toPrecision(digits);
}

/** `median [min–max]` */
export function fmtSpread(s: Spread, unit = '', digits = 3): string {
  return `${fmt(s.median, digits)}${unit} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`;
}

export function mib(bytes: number): number {
  return bytes / (1024 * 1024);
}

export interface RoundsOptions {
  /** Time spent running the function before measuring. */
  warmupMs: number;
  rounds: number;
  /** Target duration of one round; iterations per round are calibrated from the warm-up. */
  roundMs: number;
}

export interface ThroughputResult {
  opsPerSec: Spread;
  /** Mean time per call in microseconds, per round. */
  usPerOp: Spread;
  itersPerRound: number;
  /** Keeps the results alive so the optimiser cannot drop the calls. */
  checksum: number;
}

/**
 * Synchronous micro-benchmark: warm-up (also calibrates the iteration count), then `rounds` rounds of
 * a fixed iteration count. `fn(i)` returns a number folded into a checksum.
 */
export function measureThroughput(fn: (i: number) => number, opts: RoundsOptions): ThroughputResult {
  let checksum = 0;
  let iters = 0;
  const warmEnd = performance.now() + opts.warmupMs;
  const t0 = performance.now();
  while (performance.now() < warmEnd) {
    for (let k = 0; k < 16; k++) checksum += fn(iters++);
  }
  const perOpMs = (performance.now() - t0) / Math.max(1, iters);
  const itersPerRound = Math.max(16, Math.round(opts.roundMs / Math.max(perOpMs, 1e-6)));
  const ops: number[] = [];
  const us: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < itersPerRound; i++) checksum += fn(i);
    const ms = performance.now() - start;
    ops.push((itersPerRound / ms) * 1000);
    us.push((ms * 1000) / itersPerRound);
  }
  return { opsPerSec: spread(ops), usPerOp: spread(us), itersPerRound, checksum };
}
