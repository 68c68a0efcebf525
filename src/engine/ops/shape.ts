/**
 * Shape and data-movement ops: Reshape, Flatten, Transpose, Concat, Identity, Dropout, Constant,
 * Squeeze, Unsqueeze, Shape, Gather, Cast. They work on every engine dtype (exported graphs compute
 * shapes with int64 through the same ops); gradients flow only through float32 data.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { dtypeFromOnnx } from '../../core/dtype.js';
import { numel } from '../../core/tensor.js';
import { tensorFromProtoSync } from '../../formats/onnx/tensor.js';
import { registerOp } from '../registry.js';
import type { EData, EDType, FValue, OpContext, OpDef, Value } from '../types.js';
import { allocData, anyInput, fvalue, intsOf, ivalue, opLabel, reshapeValue, toValue } from '../values.js';

type AnyArr = { [i: number]: number | bigint; readonly length: number };

function fail(ctx: { node: OpContext['node'] }, message: string, code: (typeof ErrorCodes)[keyof typeof ErrorCodes] = ErrorCodes.KERNEL_ARG): never {
  throw new ModelsmithError(code, message, { op: opLabel(ctx.node) });
}

/** Normalises an axis against `rank` (negative counts from the end), or E_KERNEL_ARG. */
function axisOf(ctx: { node: OpContext['node'] }, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) fail(ctx, `axis ${axis} is out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Ops whose output is the input's data under new dims: the gradient is the output gradient under the input's dims. */
const reshapeBackward: OpDef['backward'] = (_ctx, [x], _o, [g]) => (g && x?.dtype === 'float32' ? [fvalue(x.dims, g.data)] : []);

// ------------------------------------------------------------------------------------------------
// Reshape / Flatten / Squeeze / Unsqueeze / Identity / Dropout
// ------------------------------------------------------------------------------------------------

registerOp('Reshape', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    // Opset < 5 carried the target shape as an attribute.
    const spec = ctx.opset < 5 ? ctx.attrs.ints('shape', []) : intsOf(anyInput(inputs, 1, ctx.node), `${opLabel(ctx.node)} shape`);
    const allowzero = ctx.attrs.int('allowzero', 0) !== 0;
    const dims = spec.map((d, i) => (d === 0 && !allowzero ? (i < x.dims.length ? x.dims[i]! : fail(ctx, `shape[${i}] = 0 copies a dimension the input [${x.dims.join(',')}] does not have`)) : d));
    const inferred = dims.filter((d) => d === -1).length;
    if (inferred > 1 || dims.some((d) => d < -1)) fail(ctx, `invalid target shape [${spec.join(',')}]`);
    const n = x.data.length;
    if (inferred) {
      const known = dims.reduce((p, d) => (d === -1 ? p : p * d), 1);
      if (known === 0 || n % known !== 0) fail(ctx, `cannot reshape [${x.dims.join(',')}] to [${spec.join(',')}]`);
      dims[dims.indexOf(-1)] = n / known;
    }
    if (numel(dims) !== n) fail(ctx, `cannot reshape [${x.dims.join(',')}] (${n} elements) to [${dims.join(',')}]`);
    return { outputs: [reshapeValue(x, dims)] };
  },
  backward: reshapeBackward,
});

registerOp('Flatten', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    const r = x.dims.length;
    let axis = ctx.attrs.int('axis', 1);
    if (axis < -r || axis > r) fail(ctx, `axis ${axis} is out of range for rank ${r}`);
    if (axis < 0) axis += r;
    const lead = x.dims.slice(0, axis).reduce((p, d) => p * d, 1);
    return { outputs: [reshapeValue(x, [lead, lead === 0 ? 0 : x.data.length / lead])] };
  },
  backward: reshapeBackward,
});

/** Squeeze/Unsqueeze axes: an attribute before opset 13, an optional input from 13 on. */
function axesArg(ctx: OpContext, inputs: readonly (Value | undefined)[]): number[] | undefined {
  if (ctx.opset >= 13) return inputs[1] ? intsOf(inputs[1], `${opLabel(ctx.node)} axes`) : undefined;
  return ctx.attrs.ints('axes');
}

registerOp('Squeeze', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    const given = axesArg(ctx, inputs);
    const r = x.dims.length;
    const axes = new Set(given ? given.map((a) => axisOf(ctx, a, r)) : x.dims.flatMap((d, i) => (d === 1 ? [i] : [])));
    for (const a of axes) if (x.dims[a] !== 1) fail(ctx, `cannot squeeze axis ${a} of size ${x.dims[a]}`);
    return { outputs: [reshapeValue(x, x.dims.filter((_, i) => !axes.has(i)))] };
  },
  backward: reshapeBackward,
});

registerOp('Unsqueeze', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    const given = axesArg(ctx, inputs);
    if (!given) fail(ctx, 'Unsqueeze needs axes');
    const r = x.dims.length + given.length;
    const axes = new Set(given.map((a) => axisOf(ctx, a, r)));
    if (axes.size !== given.length) fail(ctx, `repeated axis in [${given.join(',')}]`);
    const dims: number[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) dims.push(axes.has(i) ? 1 : x.dims[k++]!);
    return { outputs: [reshapeValue(x, dims)] };
  },
  backward: reshapeBackward,
});

registerOp('Identity', {
  forward: (ctx, inputs) => ({ outputs: [anyInput(inputs, 0, ctx.node)] }),
  backward: (_ctx, [x], _o, [g]) => (g && x?.dtype === 'float32' ? [g] : []),
});

// Dropout is the identity: the engine runs training steps in inference mode (fine-tuning and
// distillation do not want noise in the gradients), so the `training_mode` input and `ratio` are
// ignored and the optional mask output is all true.
registerOp('Dropout', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    const outputs: Value[] = [x];
    if (ctx.node.output.length > 1 && ctx.node.output[1] !== '') outputs.push({ dtype: 'bool', dims: [...x.dims], data: new Uint8Array(x.data.length).fill(1) });
    return { outputs };
  },
  backward: (_ctx, [x], _o, [g]) => (g && x?.dtype === 'float32' ? [g] : []),
});

// ------------------------------------------------------------------------------------------------
// Constant / Shape
// ------------------------------------------------------------------------------------------------

function constantValue(ctx: Pick<OpContext, 'node' | 'attrs'>): Value {
  const a = ctx.attrs;
  const t = a.tensor('value');
  if (t) {
    try {
      return toValue(tensorFromProtoSync(t));
    } catch (e) {
      // Keep the reader's code (a truncated payload is E_TENSOR_SIZE, float16 is E_DTYPE); add the node.
      const code = e instanceof ModelsmithError ? e.code : ErrorCodes.MALFORMED;
      throw new ModelsmithError(code, `Constant value: ${String((e as Error)?.message ?? e).replace(/^E_[A-Z_]+: /, '')}`, { op: opLabel(ctx.node), cause: e });
    }
  }
  if (a.has('value_float')) return fvalue([], Float32Array.of(a.float('value_float', 0)));
  const fs = a.floats('value_floats');
  if (fs) return fvalue([fs.length], Float32Array.from(fs));
  if (a.has('value_int')) return ivalue([], [a.int('value_int', 0)]);
  const is = a.ints('value_ints');
  if (is) return ivalue([is.length], is);
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `Constant with ${ctx.node.attribute.map((x) => x.name).join(', ') || 'no attribute'} (supported: value, value_float(s), value_int(s))`, { op: opLabel(ctx.node) });
}

registerOp('Constant', {
  check: (ctx) => void constantValue(ctx),
  forward: (ctx) => ({ outputs: [constantValue(ctx)] }),
  backward: () => [],
});

registerOp('Shape', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    const r = x.dims.length;
    // start/end (opset 15) clamp like Python slicing.
    const clamp = (v: number): number => Math.min(r, Math.max(0, v < 0 ? v + r : v));
    const s = clamp(ctx.attrs.int('start', 0)), e = clamp(ctx.attrs.int('end', r));
    const dims = x.dims.slice(s, Math.max(s, e));
    return { outputs: [ivalue([dims.length], dims)] };
  },
});

// ------------------------------------------------------------------------------------------------
// Transpose / Concat / Gather
// ------------------------------------------------------------------------------------------------

/** Permutes any value's axes: out dim i is input dim perm[i]. */
function permute(x: Value, perm: readonly number[]): Value {
  const r = x.dims.length;
  const outDims = perm.map((p) => x.dims[p]!);
  const n = x.data.length;
  const out = allocData(x.dtype, n) as unknown as AnyArr;
  const src = x.data as unknown as AnyArr;
  if (n > 0) {
    const inStr = new Array<number>(r);
    let s = 1;
    for (let i = r - 1; i >= 0; i--) {
      inStr[i] = s;
      s *= x.dims[i]!;
    }
    const st = perm.map((p) => inStr[p]!);
    const idx = new Array<number>(r).fill(0);
    let p = 0;
    for (let i = 0; i < n; i++) {
      out[i] = src[p]!;
      for (let d = r - 1; d >= 0; d--) {
        idx[d]!++;
        p += st[d]!;
        if (idx[d]! < outDims[d]!) break;
        p -= st[d]! * outDims[d]!;
        idx[d] = 0;
      }
    }
  }
  return { dtype: x.dtype, dims: outDims, data: out as unknown as EData };
}

function permOf(ctx: OpContext, rank: number): number[] {
  const perm = ctx.attrs.ints('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const seen = new Set(perm);
  if (perm.length !== rank || seen.size !== rank || perm.some((p) => !(p >= 0 && p < rank))) fail(ctx, `perm [${perm.join(',')}] is not a permutation of ${rank} axes`);
  return perm;
}

registerOp('Transpose', {
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    return { outputs: [permute(x, permOf(ctx, x.dims.length))] };
  },
  backward(ctx, [x], _o, [g]) {
    if (!g || x?.dtype !== 'float32') return [];
    const perm = permOf(ctx, x.dims.length);
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [permute(g, inv) as FValue];
  },
});

registerOp('Concat', {
  forward(ctx, inputs) {
    const xs = inputs.map((_, i) => anyInput(inputs, i, ctx.node));
    if (xs.length === 0) fail(ctx, 'Concat needs at least one input');
    const first = xs[0]!;
    const r = first.dims.length;
    const axis = axisOf(ctx, ctx.attrs.int('axis') ?? fail(ctx, 'Concat needs an axis attribute'), r);
    for (const x of xs) {
      if (x.dtype !== first.dtype) fail(ctx, `inputs mix ${first.dtype} and ${x.dtype}`, ErrorCodes.DTYPE);
      if (x.dims.length !== r || x.dims.some((d, i) => i !== axis && d !== first.dims[i])) fail(ctx, `input shapes [${first.dims.join(',')}] and [${x.dims.join(',')}] differ outside axis ${axis}`);
    }
    const dims = [...first.dims];
    dims[axis] = xs.reduce((s, x) => s + x.dims[axis]!, 0);
    const outer = first.dims.slice(0, axis).reduce((p, d) => p * d, 1);
    const out = allocData(first.dtype, numel(dims));
    const rowOut = out.length / Math.max(1, outer);
    let at = 0;
    for (const x of xs) {
      const chunk = outer === 0 ? 0 : x.data.length / outer;
      for (let o = 0; o < outer; o++) (out as Float32Array).set((x.data as Float32Array).subarray(o * chunk, (o + 1) * chunk), o * rowOut + at);
      at += chunk;
    }
    return { outputs: [{ dtype: first.dtype, dims, data: out }] };
  },
  backward(ctx, inputs, _o, [g]) {
    if (!g) return [];
    const r = g.dims.length;
    const axis = axisOf(ctx, ctx.attrs.int('axis', 0), r);
    const outer = g.dims.slice(0, axis).reduce((p, d) => p * d, 1);
    const rowOut = outer === 0 ? 0 : g.data.length / outer;
    let at = 0;
    return inputs.map((x) => {
      const chunk = outer === 0 ? 0 : x!.data.length / outer;
      const start = at;
      at += chunk;
      if (x!.dtype !== 'float32') return undefined;
      const gx = new Float32Array(x!.data.length);
      for (let o = 0; o < outer; o++) gx.set(g.data.subarray(o * rowOut + start, o * rowOut + start + chunk), o * chunk);
      return fvalue(x!.dims, gx);
    });
  },
});

interface GatherPlan {
  outer: number;
  axisLen: number;
  inner: number;
  /** Indices normalised to [0, axisLen). */
  idx: Int32Array;
  outDims: number[];
}

function gatherPlan(ctx: OpContext, data: Value, indices: Value): GatherPlan {
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32') fail(ctx, `indices must be int32 or int64, got ${indices.dtype}`, ErrorCodes.DTYPE);
  const r = data.dims.length;
  if (r === 0) fail(ctx, 'Gather data must have rank ≥ 1');
  const axis = axisOf(ctx, ctx.attrs.int('axis', 0), r);
  const axisLen = data.dims[axis]!;
  const raw = intsOf(indices, `${opLabel(ctx.node)} indices`);
  const idx = new Int32Array(raw.length);
  raw.forEach((v, i) => {
    if (v < -axisLen || v >= axisLen) fail(ctx, `index ${v} at position ${i} is out of range for axis ${axis} of size ${axisLen}`);
    idx[i] = v < 0 ? v + axisLen : v;
  });
  const outer = data.dims.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = data.dims.slice(axis + 1).reduce((p, d) => p * d, 1);
  return { outer, axisLen, inner, idx, outDims: [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)] };
}

registerOp('Gather', {
  forward(ctx, inputs) {
    const data = anyInput(inputs, 0, ctx.node), indices = anyInput(inputs, 1, ctx.node);
    const p = gatherPlan(ctx, data, indices);
    const out = allocData(data.dtype, numel(p.outDims)) as Float32Array;
    const src = data.data as Float32Array;
    const k = p.idx.length;
    for (let o = 0; o < p.outer; o++) {
      for (let j = 0; j < k; j++) {
        const from = (o * p.axisLen + p.idx[j]!) * p.inner;
        out.set(src.subarray(from, from + p.inner), (o * k + j) * p.inner);
      }
    }
    return { outputs: [{ dtype: data.dtype, dims: p.outDims, data: out }] };
  },
  backward(ctx, [data, indices], _o, [g]) {
    if (!g || data?.dtype !== 'float32') return [];
    const p = gatherPlan(ctx, data, indices!);
    const gd = new Float32Array(data.data.length);
    const k = p.idx.length;
    // Repeated indices add up: a row gathered twice gets both gradients.
    for (let o = 0; o < p.outer; o++) {
      for (let j = 0; j < k; j++) {
        const to = (o * p.axisLen + p.idx[j]!) * p.inner, from = (o * k + j) * p.inner;
        for (let e = 0; e < p.inner; e++) gd[to + e]! += g.data[from + e]!;
      }
    }
    return [fvalue(data.dims, gd), undefined];
  },
});

// ------------------------------------------------------------------------------------------------
// Cast
// ------------------------------------------------------------------------------------------------

const ENGINE_TYPES: readonly EDType[] = ['float32', 'int64', 'int32', 'bool'];

function castTarget(ctx: Pick<OpContext, 'node' | 'attrs'>): EDType {
  const to = ctx.attrs.int('to');
  const name = to === undefined ? undefined : dtypeFromOnnx(to)?.name;
  if (!name || !(ENGINE_TYPES as readonly string[]).includes(name)) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `Cast to ${name ?? `type code ${to}`} (the engine casts between float32, int64, int32 and bool only)`, { op: opLabel(ctx.node) });
  }
  return name as EDType;
}

/** One element converted as onnxruntime does: float → int truncates toward zero, anything → bool is ≠ 0. */
function convert(v: number, to: EDType): number | bigint {
  switch (to) {
    case 'float32': return v;
    case 'bool': return v !== 0 ? 1 : 0; // NaN ≠ 0 → true, as in C++
    case 'int32': return Number.isFinite(v) ? Math.trunc(v) | 0 : 0;
    case 'int64': return Number.isFinite(v) ? BigInt(Math.trunc(v)) : 0n;
  }
}

registerOp('Cast', {
  check: (ctx) => void castTarget(ctx),
  forward(ctx, inputs) {
    const x = anyInput(inputs, 0, ctx.node);
    const to = castTarget(ctx);
    if (to === x.dtype) return { outputs: [x] };
    const out = allocData(to, x.data.length) as unknown as AnyArr;
    const src = x.data as unknown as AnyArr;
    for (let i = 0; i < src.length; i++) out[i] = convert(Number(src[i]), to);
    return { outputs: [{ dtype: to, dims: [...x.dims], data: out as unknown as EData }] };
  },
  // Only a float32 → float32 cast carries a gradient; integer outputs are not differentiable.
  backward: (_ctx, [x], [y], [g]) => (g && x?.dtype === 'float32' && y?.dtype === 'float32' ? [g] : []),
});
