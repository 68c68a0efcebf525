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
  let maxAbs = 0;
  let sumAbs = 0;
  let signal = 0;
  let noise = 0;
  let dot = 0;
  let gg = 0;
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
    if (!(d <= maxAbs)) maxAbs = d === d ? d : Infinity;
    sumAbs += d;
    signal += r * r;
    noise += e * e;
    dot += r * g;
    gg += g * g;
    counted++;
  }
  const snrDb = noise === 0 ? Infinity : signal === 0 ? -Infinity : 10 * Math.log10(signal / noise);
  const cosine = signal === 0 || gg === 0 ? (signal === gg ? 1 : 0) : dot / Math.sqrt(signal * gg);
  return { maxAbs, meanAbs: counted ? sumAbs / counted : 0, snrDb, cosine };
}
