import { describe, expect, it } from 'vitest';
import { HistogramObserver, MinMaxObserver, entropyThreshold, histogramPercentile, percentileRange, entropyRange } from '../../src/compress/static/observers.js';
import { calibrate } from '../../src/compress/static/calibrate.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { runPython, rng } from '../kernels/helpers.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const CNN = resolve(import.meta.dirname, '../fixtures/fashion-mnist/cnn.onnx');

function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r();
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u)) * sigma;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function f64json(a: ArrayLike<number>): string {
  return JSON.stringify(Array.from(a));
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ModelsmithError)) throw e;
    return e.code;
  }
  return 'none';
}

describe('MinMax', () => {
  it('running min/max skips NaN/Inf and counts them', () => {
    const o = new MinMaxObserver();
    o.update(Float32Array.of(1, -2, NaN));
    o.update(Float32Array.of(5, Infinity, 0.5));
    expect(o.range()).toEqual({ min: -2, max: 5 });
    expect(o.nonFinite).toBe(2);
  });

  it('moving average follows min += c·(batch_min − min)', () => {
    const o = new MinMaxObserver(true, 0.5);
    o.update(Float32Array.of(0, 10));
    o.update(Float32Array.of(-4, 2));
    expect(o.range()).toEqual({ min: -2, max: 6 });
  });
});

describe('histogram', () => {
  it('memory does not depend on the number of batches: 2048 bins after 1 and after 300 batches', () => {
    const o = new HistogramObserver();
    o.update(gaussian(1000, 1));
    const bytes = o.stateBytes;
    for (let b = 0; b < 300; b++) o.update(gaussian(1000, b + 2, 1 + b / 50));
    expect(o.hist.length).toBe(2048);
    expect(o.stateBytes).toBe(bytes);
    expect(o.total + o.zeros).toBe(301 * 1000);
  });

  it('re-binning when the range grows keeps every count, and percentiles match numpy within a bin', () => {
    const o = new HistogramObserver();
    const parts = [gaussian(20000, 11, 0.5), gaussian(20000, 12, 3), gaussian(20000, 13, 1)];
    for (const p of parts) o.update(p);
    const all = new Float32Array(60000);
    parts.forEach((p, i) => all.set(p, i * 20000));
    expect(o.total).toBe(60000);
    const np = JSON.parse(new TextDecoder().decode(runPython(
      'import numpy as np, sys, json\nx = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32)\nprint(json.dumps([float(np.percentile(np.abs(x), p)) for p in [50, 99, 99.99]]))',
      [], new Uint8Array(all.buffer)))) as number[];
    [50, 99, 99.99].forEach((p, i) => {
      expect(Math.abs(histogramPercentile(o, p) - np[i]!)).toBeLessThanOrEqual(o.width * 1.01);
    });
    const r = percentileRange(o, 99.99)!;
    expect(r.max).toBeCloseTo(Math.min(o.hi, histogramPercentile(o, 99.99)), 10);
    expect(r.min).toBeCloseTo(Math.max(o.lo, -histogramPercentile(o, 99.99)), 10);
  });

  it('exact zeros are counted apart: a Relu-like tensor keeps [0, t]', () => {
    const o = new HistogramObserver();
    const g = gaussian(10000, 5).map((v) => Math.max(v, 0));
    o.update(g);
    expect(o.zeros).toBeGreaterThan(4000);
    const r = entropyRange(o)!;
    expect(r.min).toBe(0);
    expect(r.max).toBeGreaterThan(1);
  });
});

describe('entropy (KL) threshold', () => {
  /** An independent numpy implementation of TensorRT's search over the same histogram. */
  const PY_KL = `
import numpy as np, sys, json
d = json.loads(sys.stdin.read())
h = np.array(d['hist'], dtype=np.float64); width = d['width']; nq = d['nq']
nz = np.nonzero(h)[0]; last = int(nz[-1]) + 1
best, best_i = np.inf, last
if last <= nq:
    print(json.dumps(last * width)); sys.exit()
for i in range(nq, last + 1):
    p = h[:i].copy(); p[i - 1] += h[i:].sum()
    ref = h[:i]; q = np.zeros(i)
    edges = [int(np.floor(g * i / nq)) for g in range(nq)] + [i]
    for g in range(nq):
        a, b = edges[g], edges[g + 1]
        seg = ref[a:b]; cnt = np.count_nonzero(seg)
        if cnt: q[a:b] = np.where(seg != 0, seg.sum() / cnt, 0)
    ps, qs = p.sum(), q.sum()
    pn = p / ps
    qn = np.where(q > 0, q / qs, 1e-4 / qs)
    m = pn > 0
    kl = float(np.sum(pn[m] * np.log(pn[m] / qn[m])))
    if kl < best: best, best_i = kl, i
print(json.dumps(best_i * width))
`;
  it.each([
    ['gaussian', (n: number) => gaussian(n, 21)],
    ['laplace-like (gaussian²·sign)', (n: number) => gaussian(n, 22).map((v) => v * Math.abs(v))],
  ] as [string, (n: number) => Float32Array][])('%s: same threshold as numpy, and a clip inside the observed range', (_name, make) => {
    const o = new HistogramObserver(512);
    o.update(make(50000));
    const t = entropyThreshold(o, 64);
    const ref = JSON.parse(new TextDecoder().decode(runPython(PY_KL, [], new TextEncoder().encode(JSON.stringify({ hist: Array.from(o.hist), width: o.width, nq: 64 }))))) as number;
    expect(Math.abs(t - ref)).toBeLessThanOrEqual(o.width * 1e-9 + 1e-12);
    const amax = Math.max(-o.lo, o.hi);
    // A heavy-tailed or gaussian tensor is clipped (8-bit cannot afford the far tail), but not to nothing.
    expect(t).toBeLessThan(amax);
    expect(t).toBeGreaterThan(amax / 4);
    void f64json;
  });
});

describe('calibrate errors', () => {
  const model = decodeOnnx(new Uint8Array(readFileSync(CNN)));
  const batch = { inputs: { input: { dtype: 'float32' as const, dims: [1, 1, 28, 28], data: new Float32Array(784) } } };
  it('unknown method, bad percentile, bad quantBins, no batches', async () => {
    const run = () => ({});
    expect(await code(calibrate(model, [batch], { method: 'kl' as 'entropy', run }))).toBe('E_USAGE');
    expect(await code(calibrate(model, [batch], { method: 'percentile', percentile: 0, run }))).toBe('E_USAGE');
    expect(await code(calibrate(model, [batch], { method: 'entropy', quantBins: 1, run }))).toBe('E_USAGE');
    expect(await code(calibrate(model, [], { method: 'minmax', run }))).toBe('E_USAGE');
  });
  it('a runner that omits a value, or returns a non-float one', async () => {
    expect(await code(calibrate(model, [batch], { method: 'minmax', run: () => ({}) }))).toBe('E_USAGE');
    const ints = (_f: unknown, names: string[]) => Object.fromEntries(names.map((n) => [n, { dtype: 'int64' as const, dims: [1], data: new BigInt64Array(1) }]));
    expect(await code(calibrate(model, [batch], { method: 'minmax', run: ints }))).toBe('E_DTYPE');
  });
});
