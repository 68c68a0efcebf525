/**
 * Kernel throughput next to memcpy (TypedArray.set) and a plain JS loop, measured in the same process
 * on one thread. Two views of each kernel:
 *  - `<kernel>`: the WASM kernel on data already in the arena (how readers feed it: file bytes are
 *    read straight into WASM memory);
 *  - `<kernel>.e2e`: the public TS wrapper, copies into and out of the arena included.
 * GB/s counts the kernel's input bytes; the memcpy baseline copies the same number of bytes.
 * `magnitude_prune_50pct` zeroes the 50% smallest |w| (threshold search + writing the values); its
 * e2e twin is `magnitudePrune`, which also allocates the result (`.e2e_reuse`: into a reused array).
 * GEMM rows (GFLOP/s, float32, one thread) put our WASM kernel next to onnxruntime-node's MatMul on
 * the same shape in the same run: `gemm_512` (512×512×512, the issue-8 target ≥ 0.3×), the engine's
 * dense training shape and its conv im2col shape (see `GEMM_SHAPES`). Both sides are timed in
 * alternating rounds and the best round of each is kept, so a noisy neighbour hurts both alike.
 * Usage: node dist/bench/kernels.js [--json] [--elements N] [--flavor simd|scalar] [--no-gemm]
 */
import { parseArgs } from 'node:util';
import { initKernels, type Flavor, type Kernels } from '../kernels/loader.js';
import { castF32ToBf16, castF32ToF16 } from '../kernels/cast.js';
import { dequantizeLinear, quantizeLinear } from '../kernels/quantize.js';
import { magnitudePrune, magnitudePruneArena } from '../kernels/prune.js';
import { magnitudePruneRef } from '../kernels/reference/prune.js';
import { gemm, gemmAt } from '../kernels/gemm.js';
import { openOrtMatMul } from './gemm-ort.js';

interface Row {
  name: string;
  value: number;
  unit: 'GB/s';
  baseline: number;
  ratio: number;
  /** Plain JS loop doing the same work, GB/s, and our ratio to it. */
  js?: number;
  vsJs?: number;
  flavor: Flavor;
  elements: number;
}

/** Best time (ms) of `reps` runs after a warm-up; each run repeats `fn` until ≥ 50 ms have passed. */
function timeMs(fn: () => void, reps = 5): number {
  fn();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    let iters = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      fn();
      iters++;
      t = performance.now();
    } while (t - t0 < 50);
    best = Math.min(best, (t - t0) / iters);
  }
  return best;
}

const gbps = (bytes: number, ms: number) => bytes / ms / 1e6;

function randomWeights(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 0.2;
  }
  return a;
}

// Plain JS twins, written the way a user would without WASM.
const jsQuantize = (x: Float32Array, out: Int8Array, scale: number) => {
  for (let i = 0; i < x.length; i++) {
    let q = Math.round(x[i]! / scale); // Math.round is not half-even; close enough for a speed baseline
    q = q < -128 ? -128 : q > 127 ? 127 : q;
    out[i] = q;
  }
};
const jsDequantize = (q: Int8Array, out: Float32Array, scale: number) => {
  for (let i = 0; i < q.length; i++) out[i] = q[i]! * scale;
};
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const jsBf16 = (x: Float32Array, out: Uint16Array) => {
  for (let i = 0; i < x.length; i++) {
    f32[0] = x[i]!;
    const b = u32[0]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
};

export async function runBench(opts: { elements: number; flavor?: Flavor }): Promise<Row[]> {
  const k: Kernels = await initKernels(opts.flavor ? { flavor: opts.flavor } : {});
  const n = opts.elements;
  const x = randomWeights(n);
  const bytes = n * 4;

  const copyDst = new Float32Array(n);
  const memcpy = gbps(bytes, timeMs(() => copyDst.set(x)));

  const rows: Row[] = [];
  const add = (name: string, ms: number, jsMs?: number) => {
    const value = gbps(bytes, ms);
    const row: Row = { name, value: round(value), unit: 'GB/s', baseline: round(memcpy), ratio: round(value / memcpy), flavor: k.flavor, elements: n };
    if (jsMs !== undefined) {
      row.js = round(gbps(bytes, jsMs));
      row.vsJs = round(jsMs / ms);
    }
    rows.push(row);
  };

  // In-arena kernels: inputs placed once, outputs left in the arena.
  const mark = k.mark();
  const src = k.alloc(bytes);
  const out = k.alloc(bytes);
  k.f32(src, n).set(x);
  const C = 256;
  const scales = k.alloc(C * 4);
  const zps = k.alloc(C * 4);
  k.f32(scales, C).fill(0.001);
  k.f32(zps, C).fill(0);
  const q8 = new Int8Array(n);
  const deq = new Float32Array(n);
  const u16 = new Uint16Array(n);
  add('quantize_int8_per_tensor', timeMs(() => k.raw.quantize_f32_i8(src, n, 0.001, 0, out)), timeMs(() => jsQuantize(x, q8, 0.001)));
  add('quantize_int8_per_channel', timeMs(() => k.raw.quantize_axis_f32_i8(src, n, C, n / C, 0, 0, scales, zps, out)));
  k.i8(out, n).set(q8);
  // Dequantize reads 1 byte per element; count its output bytes so the figure is comparable to memcpy of the tensor.
  add('dequantize_int8', timeMs(() => k.raw.dequantize_i8_f32(out, n, 0.001, 0, src)), timeMs(() => jsDequantize(q8, deq, 0.001)));
  k.f32(src, n).set(x);
  add('cast_f32_bf16', timeMs(() => k.raw.cast_f32_bf16(src, n, out)), timeMs(() => jsBf16(x, u16)));
  add('cast_f32_f16', timeMs(() => k.raw.cast_f32_f16(src, n, out, 0)));
  // Select + apply (exact k, ties in index order): pruned values go to `out`, so `src` is the same
  // input on every run. Its plain-JS twin is the reference implementation (same algorithm in TS).
  add('magnitude_prune_50pct', timeMs(() => magnitudePruneArena(k, src, n, n >>> 1, { dst: out })), timeMs(() => magnitudePruneRef(x, n >>> 1), 2));
  k.reset(mark);

  // Public wrappers, copies included.
  add('quantize_int8_per_tensor.e2e', timeMs(() => quantizeLinear(x, { type: 'int8', scale: 0.001 }), 3));
  add('dequantize_int8.e2e', timeMs(() => dequantizeLinear(q8, { scale: 0.001 }), 3));
  add('cast_f32_bf16.e2e', timeMs(() => castF32ToBf16(x), 3));
  add('cast_f32_f16.e2e', timeMs(() => castF32ToF16(x), 3));
  add('magnitude_prune_50pct.e2e', timeMs(() => magnitudePrune(x, n >>> 1), 3));
  // Same wrapper writing into a caller's array (PruneOptions.out): copies in and out, no allocation.
  const pruned = new Float32Array(n);
  add('magnitude_prune_50pct.e2e_reuse', timeMs(() => magnitudePrune(x, n >>> 1, { out: pruned }), 3));
  return rows;
}

interface GemmRow {
  name: string;
  /** Our GFLOP/s (2·m·n·k per product). */
  value: number;
  unit: 'GFLOP/s';
  /** onnxruntime-node MatMul GFLOP/s on the same shape; absent when onnxruntime-node is not installed. */
  baseline?: number;
  ratio?: number;
  flavor: Flavor;
  m: number;
  n: number;
  k: number;
}

/** GEMM shapes: [name, m, n, k]. */
const GEMM_SHAPES: [string, number, number, number][] = [
  ['gemm_512', 512, 512, 512],
  // Engine MLP training step: a 128-sample batch through an 800→128 layer.
  ['gemm_dense_128x800x128', 128, 128, 800],
  // Engine conv as GEMM: 32 filters × (16 ch · 3·3) patches over 11·11 outputs × 128 images.
  ['gemm_conv_32x144x15488', 32, 121 * 128, 144],
];

// Field order follows the bench JSON contract: name, value, unit, baseline, ratio, then details.
function gemmRow(name: string, flops: number, ms: number, ortMs: number | undefined, flavor: Flavor, m: number, n: number, k: number): GemmRow {
  const value = round(flops / ms / 1e6);
  const base = ortMs === undefined ? {} : { baseline: round(flops / ortMs / 1e6), ratio: round(ortMs / ms) };
  return { name, value, unit: 'GFLOP/s', ...base, flavor, m, n, k };
}

/** Best ms per call of an async function: same protocol as `timeMs`, one round. */
async function timeRoundAsync(fn: () => Promise<void>, minMs: number): Promise<number> {
  let iters = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    await fn();
    iters++;
    t = performance.now();
  } while (t - t0 < minMs);
  return (t - t0) / iters;
}

function timeRound(fn: () => void, minMs: number): number {
  let iters = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    fn();
    iters++;
    t = performance.now();
  } while (t - t0 < minMs);
  return (t - t0) / iters;
}

export async function runGemmBench(opts: { flavor?: Flavor; rounds?: number; minMs?: number } = {}): Promise<GemmRow[]> {
  const k: Kernels = await initKernels(opts.flavor ? { flavor: opts.flavor } : {});
  const rounds = opts.rounds ?? 7;
  const minMs = opts.minMs ?? 150;
  const rows: GemmRow[] = [];
  for (const [name, m, n, kk] of GEMM_SHAPES) {
    const a = randomWeights(m * kk);
    const b = randomWeights(kk * n);
    const flops = 2 * m * n * kk;
    const ort = await openOrtMatMul(a, b, m, n, kk);
    const mark = k.mark();
    try {
      const pa = k.alloc(a.byteLength);
      const pb = k.alloc(b.byteLength);
      const pc = k.alloc(m * n * 4);
      k.f32(pa, a.length).set(a);
      k.f32(pb, b.length).set(b);
      const ours = () => gemmAt(k, pa, pb, pc, m, n, kk);
      ours();
      if (ort) await ort.run();
      let best = Infinity;
      let bestOrt = Infinity;
      for (let r = 0; r < rounds; r++) {
        best = Math.min(best, timeRound(ours, minMs));
        if (ort) bestOrt = Math.min(bestOrt, await timeRoundAsync(ort.run, minMs));
      }
      const row = gemmRow(name, flops, best, ort ? bestOrt : undefined, k.flavor, m, n, kk);
      rows.push(row);
      if (name === 'gemm_512') {
        // Public wrapper: copies A and B into the arena and C out on every call.
        const c = new Float32Array(m * n);
        const wrapper = () => gemm(k, a, b, c, m, n, kk);
        wrapper();
        let bestE2e = Infinity;
        for (let r = 0; r < Math.max(1, rounds >> 1); r++) bestE2e = Math.min(bestE2e, timeRound(wrapper, minMs));
        rows.push(gemmRow('gemm_512.e2e', flops, bestE2e, ort ? bestOrt : undefined, k.flavor, m, n, kk));
      }
    } finally {
      k.reset(mark);
      await ort?.release();
    }
  }
  return rows;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { json: { type: 'boolean' }, elements: { type: 'string' }, flavor: { type: 'string' }, 'no-gemm': { type: 'boolean' } },
  });
  const elements = values.elements ? Number(values.elements) : 1 << 22;
  if (!Number.isSafeInteger(elements) || elements <= 0 || elements % 256 !== 0) throw new Error('--elements must be a positive multiple of 256');
  const flavor = values.flavor as Flavor | undefined;
  const rows = await runBench({ elements, ...(flavor ? { flavor } : {}) });
  const gemmRows = values['no-gemm'] ? [] : await runGemmBench(flavor ? { flavor } : {});
  if (values.json) {
    for (const r of [...rows, ...gemmRows]) process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  console.log(`kernels (${rows[0]!.flavor}), ${elements.toLocaleString('en-US')} float32 elements, memcpy ${rows[0]!.baseline} GB/s`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(32)} ${r.value.toFixed(2).padStart(7)} GB/s  ×${r.ratio.toFixed(2)} memcpy${r.vsJs !== undefined ? `  ×${r.vsJs.toFixed(1)} plain JS` : ''}`);
  }
  if (gemmRows.length) console.log(`gemm (${gemmRows[0]!.flavor}), float32, one thread, next to onnxruntime-node MatMul (intra-op threads 1)`);
  for (const r of gemmRows) {
    const base = r.baseline !== undefined ? `  ORT ${r.baseline.toFixed(2).padStart(6)} GFLOP/s  ×${r.ratio!.toFixed(2)} ORT` : '  (onnxruntime-node not installed)';
    console.log(`${r.name.padEnd(32)} ${r.value.toFixed(2).padStart(7)} GFLOP/s${base}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
