/**
 * How far a reconstructed tensor moved from its reference: the numbers every compression report
 * prints. Computed in float64 so the metric itself adds no error.
 */
export interface ErrorStats {
  maxAbs: number;
  meanAbs: number;
  /** Signal-to-noise ratio in dB (Infinity when identical). */
  snrDb: number;
  cosine: number;
}

export function errorStats(ref: ArrayLike<number>, got: ArrayLike<number>): ErrorStats {
  const n = ref.length;
  // Accumulators live in a Float64Array: six scalar doubles in one long loop get boxed by V8 (a heap
  // allocation per iteration, measured 4-5x slower); array slots stay unboxed. Same IEEE operations
  // in the same order, so the results are identical.
  const acc = new Float64Array(6); // maxAbs, sumAbs, signal, noise, dot, gg
  let counted = 0;
  for (let i = 0; i < n; i++) {
    const r = ref[i]!;
    const g = got[i]!;
    // Non-finite references carry no magnitude to compare against; they are checked for identity elsewhere.
    // (r - r is 0 for finite r and NaN for NaN/±Inf: one subtraction instead of a call per element.)
    if (r - r !== 0) continue;
    const e = r - g;
    const d = e < 0 ? -e : e;
    // NaN differences (non-finite candidate) make maxAbs Infinity.
    if (!(d <= acc[0]!)) acc[0] = d === d ? d : Infinity;
    acc[1] += d;
    acc[2] += r * r;
    acc[3] += e * e;
    acc[4] += r * g;
    acc[5] += g * g;
    counted++;
  }
  return errorStatsFromSums([acc[0]!, acc[1]!, acc[2]!, acc[3]!, acc[4]!, acc[5]!, counted]);
}

/**
 * ErrorStats from the float64 sums [max |r - g|, Σ|r - g|, Σ r², Σ (r - g)², Σ r·g, Σ g², count]
 * (what errorStats accumulates; the fused quantize kernels accumulate the same sums in WASM, so
 * the weight pass gets its report without materialising the dequantized tensor).
 */
export function errorStatsFromSums(sums: ArrayLike<number>): ErrorStats {
  const maxAbs = sums[0]!;
  const sumAbs = sums[1]!;
  const signal = sums[2]!;
  const noise = sums[3]!;
  const dot = sums[4]!;
  const gg = sums[5]!;
  const counted = sums[6]!;
  const snrDb = noise === 0 ? Infinity : signal === 0 ? -Infinity : 10 * Math.log10(signal / noise);
  const cosine = signal === 0 || gg === 0 ? (signal === gg ? 1 : 0) : dot / Math.sqrt(signal * gg);
  return { maxAbs, meanAbs: counted ? sumAbs / counted : 0, snrDb, cosine };
}
