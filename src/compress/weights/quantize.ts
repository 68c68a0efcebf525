/**
 * Weight-only quantization of a weight container. Containers have no graph to hold a
 * DequantizeLinear, so each quantized weight is stored as plain tensors beside each other:
 *
 *   int8 / uint8 (per tensor or per channel along `axis`, default 0 = PyTorch's output channel):
 *     `<name>`             int8/uint8, the original shape
 *     `<name>.scale`       float32, [] or [C]
 *     `<name>.zero_point`  same type as the data, [] or [C] (omitted for symmetric int8, where it is 0)
 *   4-bit blockwise along the last axis (int4 symmetric or uint4 asymmetric, block size 16..256):
 *     `<name>`             uint8, [ceil(numel / 2)]: codes packed two per byte, first in the low nibble
 *                          (int4 as two's complement nibbles)
 *     `<name>.scale`       float32, [...shape[:-1], ceil(K / block)]
 *     `<name>.zero_point`  uint8, same shape as the scales, unpacked (uint4 only)
 *
 * and the recipe per tensor (scheme, axis, block size, original dtype and shape) is returned as
 * `QUANT_METADATA_KEY` metadata, which safetensors keeps in `__metadata__`. value = (q − zp) × scale.
 * Weights with NaN/Inf are left in float with a reason (a scale cannot represent them).
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { allFinite } from '../../core/tensor.js';
import { errorStats, errorStatsFromSums, type ErrorStats } from '../../eval/metrics.js';
import { bytesOf } from '../quantize/int4.js';
import { initKernels } from '../../kernels/loader.js';
import { chooseQuantParams, chooseQuantParamsAxis, dequantizeBlockwise4, quantizeBlockwise4, quantizeLinearStats } from '../../kernels/quantize.js';
import { minMax, minMaxAxis } from '../../kernels/stats.js';
import type { LazyTensor, WeightSet } from '../../formats/weights.js';
import {
  checkUniqueNames, derived, finishReport, FLOAT_DTYPES, lastResultCache, nameMatcher, skipReason, toFloat32,
  type SelectOptions, type WeightPassReport, type WeightPassTensor,
} from './common.js';

export const QUANT_METADATA_KEY = 'modelsmith.quantization';

export type WeightScheme = 'int8' | 'uint8' | 'int4' | 'uint4';

export interface QuantizeWeightSetOptions extends SelectOptions {
  scheme: WeightScheme;
  /** int8/uint8: one scale per index of `axis` (default true). */
  perChannel?: boolean;
  /** int8/uint8 channel axis (default 0). */
  axis?: number;
  /** int8/uint8: symmetric range (default true for int8, false for uint8). int4 is symmetric, uint4 asymmetric. */
  symmetric?: boolean;
  /** int4/uint4 block size along the last axis (default 32). */
  blockSize?: number;
}

export interface QuantRecipe {
  scheme: WeightScheme;
  dtype: string;
  shape: number[];
  axis?: number;
  blockSize?: number;
}

export interface QuantizedWeight extends WeightPassTensor {
  recipe: QuantRecipe;
  /** Filled when the tensor has been loaded (written): how far the dequantized weight moved. */
  error?: ErrorStats;
}

export interface QuantizeWeightSetReport extends WeightPassReport {
  processed: QuantizedWeight[];
}

interface Result {
  data: Uint8Array;
  scale: Uint8Array;
  zeroPoint?: Uint8Array;
}

export async function quantizeWeightSet(set: WeightSet, opts: QuantizeWeightSetOptions): Promise<{ set: WeightSet; report: QuantizeWeightSetReport }> {
  await initKernels();
  const scheme = opts.scheme;
  const is4 = scheme === 'int4' || scheme === 'uint4';
  const blockSize = opts.blockSize ?? 32;
  if (is4 && (!Number.isInteger(blockSize) || blockSize < 16 || blockSize > 256)) {
    throw new ModelsmithError(ErrorCodes.USAGE, `block size must be an integer in 16..256, got ${blockSize}`);
  }
  const symmetric = opts.symmetric ?? scheme !== 'uint8';
  const perChannel = opts.perChannel ?? true;
  const excluded = nameMatcher(opts.exclude);
  const cache = lastResultCache<Result>();
  const processed: QuantizedWeight[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const recipes: Record<string, QuantRecipe> = {};
  const out: LazyTensor[] = [];

  for (const t of set.tensors) {
    const why = skipReason(t, opts, excluded);
    if (why) {
      if (FLOAT_DTYPES.has(t.dtype)) skipped.push({ name: t.name, reason: why });
      out.push(t);
      continue;
    }
    const axis = normAxis(opts.axis ?? 0, t.shape.length, t.name);
    const channelled = !is4 && perChannel && t.shape.length >= 1;
    const recipe: QuantRecipe = { scheme, dtype: t.dtype, shape: t.shape, ...(channelled ? { axis } : {}), ...(is4 ? { blockSize } : {}) };
    const K = t.shape[t.shape.length - 1] ?? 1;
    const paramShape = is4 ? [...t.shape.slice(0, -1), Math.ceil(K / blockSize)] : channelled ? [t.shape[axis]!] : [];
    const entry: QuantizedWeight = { name: t.name, dtype: t.dtype, shape: t.shape, bytesBefore: t.byteLength, bytesAfter: 0, recipe };

    const compute = () => cache(t.name, async () => {
      const x = toFloat32(t.dtype, await t.load(), t.name);
      if (!allFinite(x)) {
        throw new ModelsmithError(ErrorCodes.RANGE_CHECK, 'holds NaN or Inf values, which no scale can represent; exclude it', { tensor: t.name });
      }
      const r = is4 ? quantize4(x, t.shape, blockSize, scheme === 'int4') : quantize8(x, t.shape, scheme as 'int8' | 'uint8', symmetric, channelled ? axis : undefined);
      entry.error = r.error;
      return r.result;
    });

    const dataT = is4
      ? derived(t.name, 'uint8', [Math.ceil(t.shape.reduce((a, b) => a * b, 1) / 2)], async () => (await compute()).data)
      : derived(t.name, scheme as 'int8' | 'uint8', t.shape, async () => (await compute()).data);
    const scaleT = derived(`${t.name}.scale`, 'float32', paramShape, async () => (await compute()).scale);
    const group: LazyTensor[] = [dataT, scaleT];
    const needsZp = scheme === 'uint4' || (scheme === 'uint8') || (scheme === 'int8' && !symmetric);
    if (needsZp) {
      group.push(derived(`${t.name}.zero_point`, is4 ? 'uint8' : (scheme as 'int8' | 'uint8'), paramShape, async () => (await compute()).zeroPoint!));
    }
    entry.bytesAfter = group.reduce((s, g) => s + g.byteLength, 0);
    recipes[t.name] = recipe;
    processed.push(entry);
    out.push(...group);
  }
  checkUniqueNames(out, 'quantization');
  const metadata = { ...(set.metadata ?? {}), ...(processed.length ? { [QUANT_METADATA_KEY]: JSON.stringify(recipes) } : {}) };
  return {
    set: { ...set, tensors: out, metadata },
    report: finishReport(set, out, processed, skipped) as QuantizeWeightSetReport,
  };
}

function normAxis(axis: number, rank: number, name: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new ModelsmithError(ErrorCodes.USAGE, `axis ${axis} is out of range for a ${rank}-D tensor`, { tensor: name });
  }
  return a;
}

function quantize8(x: Float32Array, shape: number[], type: 'int8' | 'uint8', symmetric: boolean, axis: number | undefined): { result: Result; error: ErrorStats } {
  let scale: number | Float32Array;
  let zp: number | Int32Array;
  if (axis === undefined) {
    const m = minMax(x);
    ({ scale, zeroPoint: zp } = chooseQuantParams(m.min, m.max, type, symmetric));
  } else {
    const m = minMaxAxis(x, shape, axis);
    const p = chooseQuantParamsAxis(m.min, m.max, type, symmetric);
    scale = p.scales;
    zp = p.zeroPoints;
  }
  const params = { type, scale, zeroPoint: zp, shape, ...(axis !== undefined ? { axis } : {}) };
  // One fused pass: the codes and the error statistics, without a dequantized copy of the weight.
  const { q, sums } = quantizeLinearStats(x, params);
  const scaleArr = typeof scale === 'number' ? Float32Array.of(scale) : scale;
  const zpArr = typeof zp === 'number' ? [zp] : Array.from(zp);
  const zpBytes = type === 'int8' ? bytesOf(Int8Array.from(zpArr)) : Uint8Array.from(zpArr);
  return { result: { data: bytesOf(q), scale: bytesOf(scaleArr), zeroPoint: zpBytes }, error: errorStatsFromSums(sums) };
}

function quantize4(x: Float32Array, shape: number[], blockSize: number, signed: boolean): { result: Result; error: ErrorStats } {
  // The blockwise kernel works along the last axis of a [rows, K] view; 0-D/1-D tensors are one row.
  const view = shape.length >= 2 ? shape : [1, shape[0] ?? 1];
  const b = quantizeBlockwise4(x, view, blockSize, signed ? 'int4' : 'uint4');
  const restored = dequantizeBlockwise4(b);
  return { result: { data: b.data, scale: bytesOf(b.scales), zeroPoint: b.zeroPoints }, error: errorStats(x, restored) };
}
