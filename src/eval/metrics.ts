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
    if (!Number.isFinite(r)) continue;
    const d = Math.abs(r - g);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    sumAbs += d;
    signal += r * r;
    noise += (r - g) * (r - g);
    dot += r * g;
    gg += g * g;
    counted++;
  }
  const snrDb = noise === 0 ? Infinity : signal === 0 ? -Infinity : 10 * Math.log10(signal / noise);
  const cosine = signal === 0 || gg === 0 ? (signal === gg ? 1 : 0) : dot / Math.sqrt(signal * gg);
  return { maxAbs, meanAbs: counted ? sumAbs / counted : 0, snrDb, cosine };
}
