/**
 * Activation observers: running statistics whose memory does not depend on how many samples pass
 * through (a pair of numbers, or one fixed-size histogram per tensor).
 *
 * - MinMax: the running min/max, or an exponential moving average of per-batch min/max
 *   (onnxruntime's `moving_average`, constant 0.01).
 * - Histogram (for Percentile and Entropy): |x| over [0, R] in a fixed number of bins (2048) plus the
 *   signed min/max. When a batch exceeds R, R doubles as often as needed and each group of 2^k old
 *   bins merges into one new bin — exact, as the new bin edges are old edges — so one pass suffices
 *   and the histogram never grows. Thresholds found on |x| give a symmetric range, clipped by the
 *   observed min/max (so a Relu output keeps [0, t]).
 * Non-finite values are counted and skipped.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

export interface Range {
  min: number;
  max: number;
}

export interface Observer {
  update(x: Float32Array): void;
  /** The calibrated range, or undefined when no finite value was seen. */
  range(): Range | undefined;
  /** Values skipped as NaN/±Inf. */
  readonly nonFinite: number;
  /** Bytes of state held (constant after construction — the property the tests check). */
  readonly stateBytes: number;
}

export class MinMaxObserver implements Observer {
  private lo = Infinity;
  private hi = -Infinity;
  private seen = false;
  nonFinite = 0;
  readonly stateBytes = 16;
  constructor(private readonly movingAverage = false, private readonly constant = 0.01) {}
  update(x: Float32Array): void {
    let lo = Infinity;
    let hi = -Infinity;
    let bad = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v - v !== 0) { bad++; continue; }
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.nonFinite += bad;
    if (lo > hi) return;
    if (this.movingAverage && this.seen) {
      this.lo += this.constant * (lo - this.lo);
      this.hi += this.constant * (hi - this.hi);
    } else {
      this.lo = Math.min(this.lo, lo);
      this.hi = Math.max(this.hi, hi);
    }
    this.seen = true;
  }
  range(): Range | undefined {
    return this.seen ? { min: this.lo, max: this.hi } : undefined;
  }
}

export const DEFAULT_BINS = 2048;

export class HistogramObserver implements Observer {
  /** Counts of |x| per bin over [0, width·bins). */
  readonly hist: Float64Array;
  width = 0;
  lo = Infinity;
  hi = -Infinity;
  nonFinite = 0;
  /**
   * Exact zeros, kept out of the bins: every threshold represents them exactly, and a Relu output's
   * spike at 0 would otherwise dominate the entropy search and clip far too much.
   */
  zeros = 0;
  constructor(readonly bins = DEFAULT_BINS) {
    if (!Number.isSafeInteger(bins) || bins < 2) throw new ModelsmithError(ErrorCodes.USAGE, `histogram bins must be an integer ≥ 2, got ${bins}`);
    this.hist = new Float64Array(bins);
  }
  get stateBytes(): number {
    return this.hist.byteLength + 40;
  }
  get total(): number {
    let s = 0;
    for (const c of this.hist) s += c;
    return s;
  }
  update(x: Float32Array): void {
    let lo = Infinity;
    let hi = -Infinity;
    let bad = 0;
    let zeros = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v - v !== 0) { bad++; continue; }
      if (v === 0) zeros++;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.nonFinite += bad;
    this.zeros += zeros;
    if (lo > hi) return;
    this.lo = Math.min(this.lo, lo);
    this.hi = Math.max(this.hi, hi);
    const amax = Math.max(-lo, hi);
    if (this.width === 0) {
      // All-zero data so far leaves the width unset (zeros are counted apart).
      if (amax > 0) this.width = amax / this.bins;
    } else if (amax >= this.width * this.bins) {
      this.grow(amax);
    }
    const h = this.hist;
    const last = this.bins - 1;
    if (this.width === 0) return;
    const inv = 1 / this.width;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v - v !== 0 || v === 0) continue;
      const b = Math.floor(Math.abs(v) * inv);
      h[b > last ? last : b]!++;
    }
  }
  /** Doubles the range until it holds `amax`, merging bins in groups of 2^k. */
  private grow(amax: number): void {
    let k = 0;
    while (this.width * 2 ** k * this.bins <= amax) k++;
    const f = 2 ** k;
    const h = this.hist;
    for (let i = 0; i < this.bins; i++) {
      const j = Math.floor(i / f);
      if (j !== i) {
        h[j]! += h[i]!;
        h[i] = 0;
      }
    }
    this.width *= f;
  }
  /** Symmetric threshold t on |x| → range clipped to what was observed. */
  clip(t: number): Range | undefined {
    if (this.lo > this.hi) return undefined;
    return { min: Math.max(this.lo, -t), max: Math.min(this.hi, t) };
  }
  range(): Range | undefined {
    return this.lo > this.hi ? undefined : { min: this.lo, max: this.hi };
  }
}

/**
 * The p-th percentile of |x| (0 < p ≤ 100) over every finite value seen (zeros included), from the
 * histogram: interpolated linearly inside the bin where the cumulative count crosses p% of the total.
 */
export function histogramPercentile(o: HistogramObserver, p: number): number {
  if (!(p > 0 && p <= 100)) throw new ModelsmithError(ErrorCodes.USAGE, `percentile must be in (0, 100], got ${p}`);
  const total = o.total + o.zeros;
  if (total === 0 || o.width === 0) return 0;
  const target = (p / 100) * total;
  if (target <= o.zeros) return 0;
  let cum = o.zeros;
  for (let i = 0; i < o.bins; i++) {
    const c = o.hist[i]!;
    if (c > 0 && cum + c >= target) return (i + (target - cum) / c) * o.width;
    cum += c;
  }
  return o.bins * o.width;
}

export function percentileRange(o: HistogramObserver, p = 99.99): Range | undefined {
  return o.clip(histogramPercentile(o, p));
}

/**
 * TensorRT's entropy calibration on the |x| histogram (exact zeros left out, see `zeros`): for every candidate threshold i (in bins, from
 * `quantBins` to the histogram size) the reference distribution P is the first i bins with the
 * outliers folded into bin i − 1; Q is P's first i bins merged into `quantBins` groups, each group's
 * mass spread evenly over its non-empty bins. The threshold with the least KL(P‖Q) wins; its value
 * is the upper edge of bin i − 1.
 */
export function entropyThreshold(o: HistogramObserver, quantBins = 128): number {
  const n = o.bins;
  if (o.width === 0 || o.total === 0) return 0;
  // The last non-empty bin: thresholds beyond it all equal the max (no clipping).
  let lastNz = n - 1;
  while (lastNz > 0 && o.hist[lastNz] === 0) lastNz--;
  if (lastNz + 1 <= quantBins) return (lastNz + 1) * o.width;
  const h = o.hist;
  const suffix = new Float64Array(n + 1);
  for (let i = n - 1; i >= 0; i--) suffix[i] = suffix[i + 1]! + h[i]!;
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  let best = Infinity;
  let bestI = lastNz + 1;
  for (let i = quantBins; i <= lastNz + 1; i++) {
    for (let j = 0; j < i; j++) p[j] = h[j]!;
    p[i - 1]! += suffix[i]!;
    // Q from the unfolded first i bins: TensorRT quantizes the clipped histogram, not P.
    const merged = i / quantBins;
    for (let g = 0; g < quantBins; g++) {
      const a = Math.floor(g * merged);
      const b = g === quantBins - 1 ? i : Math.floor((g + 1) * merged);
      let mass = 0;
      let nz = 0;
      for (let j = a; j < b; j++) {
        mass += h[j]!;
        if (h[j] !== 0) nz++;
      }
      const each = nz ? mass / nz : 0;
      for (let j = a; j < b; j++) q[j] = h[j] !== 0 ? each : 0;
    }
    let ps = 0;
    let qs = 0;
    for (let j = 0; j < i; j++) { ps += p[j]!; qs += q[j]!; }
    if (ps === 0 || qs === 0) continue;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      const pj = p[j]! / ps;
      if (pj === 0) continue;
      // A bin P has and Q lacks (only the folded last bin can be one): smoothed as TensorRT does.
      const qj = q[j]! > 0 ? q[j]! / qs : 1e-4 / qs;
      kl += pj * Math.log(pj / qj);
    }
    if (kl < best) {
      best = kl;
      bestI = i;
    }
  }
  return bestI * o.width;
}

export function entropyRange(o: HistogramObserver, quantBins = 128): Range | undefined {
  return o.clip(entropyThreshold(o, quantBins));
}
