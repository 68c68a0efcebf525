/**
 * Per-weight error between a reference model and a compressed candidate, computed on the host (no
 * runtime): every float initializer / Constant of the reference's main graph is matched with its
 * counterpart in the candidate, brought back to float exactly as the runtime would see it, and
 * compared (max-abs, mean-abs, SNR, cosine).
 *
 * Counterparts, in the order they are tried:
 * - a tensor of the same name: unchanged, or stored as float16/bfloat16 (`same`, `cast`);
 * - a node producing the same name: DequantizeLinear (per tensor / axis / block, `dequantize`),
 *   Cast from a float16/bfloat16 constant (`cast-node`), or the Cast(→float) → [Sub(zero point)] →
 *   Mul(scale) chain the weight pass writes where DequantizeLinear is missing (`cast-mul`);
 * - when the name is gone, the node that replaced the weight's reader, found from the reader's output
 *   name: com.microsoft MatMulNBits (`matmulnbits`; B is stored transposed, [N, K]),
 *   com.microsoft GatherBlockQuantized (`gather-block`), or MatMulInteger / ConvInteger followed by
 *   Cast → Mul(activation scale × weight scale) (`integer`, the dynamic pass; a transB Gemm weight is
 *   stored transposed), and a Conv bias the dynamic pass moved into an Add after the rescale.
 * Everything else is reported as a dtype change (stored in a form not understood) or absent.
 *
 * The candidate is untrusted: every size and attribute read from it is checked against the reference
 * weight before use (the decoded weight is never larger than the reference one; other allocations are
 * the candidate's own tensors, already bounded by its file), and failures become a `dtype-change` row
 * with the reason, never an exception. Only the main graph is matched (as before: subgraph weights are
 * not listed).
 */
import type { NodeProto, TensorProto } from 'onnx-buf';
import { dtypeFromOnnx, dtypeInfo, type DType } from '../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { numel, typedView, type Tensor } from '../core/tensor.js';
import { modelTensorContext, tensorFromProto } from '../formats/onnx/tensor.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import { bf16ToF32Ref, f16ToF32Ref } from '../kernels/reference/cast.js';
import type { ErrorStats } from './metrics.js';

export interface WeightReport {
  name: string;
  shape: number[];
  referenceDtype: DType;
  /** What the candidate stores (the quantized codes' type for quantized forms). */
  candidateDtype: DType | null;
  /**
   * How the candidate holds it: unchanged dtype, cast (fp16/bf16), DequantizeLinear, Cast node,
   * Cast→Sub→Mul chain, MatMulNBits, MatMulInteger/ConvInteger + rescale, GatherBlockQuantized,
   * dtype-change (not comparable), absent.
   */
  form: 'same' | 'cast' | 'dequantize' | 'cast-node' | 'cast-mul' | 'matmulnbits' | 'integer' | 'gather-block' | 'dtype-change' | 'absent';
  stats?: ErrorStats;
  note?: string;
}

// ------------------------------------------------------------------------------------------------
// numbers
// ------------------------------------------------------------------------------------------------

/** Any numeric tensor as float64 values (float16/bfloat16 widened, int4/uint4 unpacked, int64 rounded). */
export function toFloat64(t: Tensor): Float64Array {
  const n = numel(t.shape, { tensor: t.name });
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    const bits = typedView(t) as Uint16Array;
    return Float64Array.from(t.dtype === 'float16' ? f16ToF32Ref(bits) : bf16ToF32Ref(bits));
  }
  if (t.dtype === 'int4' || t.dtype === 'uint4') {
    if (t.data.length < Math.ceil(n / 2)) throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${n} 4-bit values need ${Math.ceil(n / 2)} bytes, got ${t.data.length}`, { tensor: t.name });
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const b = t.data[i >> 1]!;
      let v = i & 1 ? b >> 4 : b & 0x0f;
      if (t.dtype === 'int4' && v >= 8) v -= 16;
      out[i] = v;
    }
    return out;
  }
  const info = dtypeInfo(t.dtype);
  if (info.bits < 8 || t.dtype === 'string' || t.dtype === 'complex64' || t.dtype === 'complex128' || t.dtype.startsWith('float8')) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `cannot read ${t.dtype} values as numbers`, { tensor: t.name });
  }
  const v = typedView(t);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(v[i]!);
  return out;
}

/** errorStats, accumulated over several chunks (same formulas as metrics.ts). */
export class ErrorAccumulator {
  maxAbs = 0;
  sumAbs = 0;
  signal = 0;
  noise = 0;
  dot = 0;
  gg = 0;
  counted = 0;
  elements = 0;
  nonFinite = 0;

  add(ref: ArrayLike<number>, got: ArrayLike<number>): void {
    for (let i = 0; i < ref.length; i++) {
      const r = ref[i]!;
      const g = got[i]!;
      this.elements++;
      if (!Number.isFinite(r)) continue;
      if (!Number.isFinite(g)) this.nonFinite++;
      const d = Math.abs(r - g);
      if (d > this.maxAbs || Number.isNaN(d)) this.maxAbs = Number.isNaN(d) ? Infinity : d;
      this.sumAbs += d;
      this.signal += r * r;
      this.noise += (r - g) * (r - g);
      this.dot += r * g;
      this.gg += g * g;
      this.counted++;
    }
  }

  stats(): ErrorStats {
    const { signal, noise, gg } = this;
    const snrDb = noise === 0 ? Infinity : signal === 0 ? -Infinity : 10 * Math.log10(signal / noise);
    const cosine = signal === 0 || gg === 0 ? (signal === gg ? 1 : 0) : this.dot / Math.sqrt(signal * gg);
    return { maxAbs: this.maxAbs, meanAbs: this.counted ? this.sumAbs / this.counted : 0, snrDb, cosine };
  }
}

function statsOf(ref: Float64Array, got: Float64Array): ErrorStats {
  const acc = new ErrorAccumulator();
  acc.add(ref, got);
  return acc.stats();
}

function attrInt(node: NodeProto, name: string, dflt: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : dflt;
}

const malformed = (message: string, tensor?: string): ModelsmithError => new ModelsmithError(ErrorCodes.MALFORMED, message, tensor ? { tensor } : {});

/**
 * DequantizeLinear on the host: y = (x - zero_point) * scale, per tensor, per axis, or blocked
 * (opset 21 block_size along `axis`), computed in float32 like onnxruntime.
 */
export function dequantizeHost(x: Tensor, scale: Tensor, zp: Tensor | undefined, axisAttr: number, blockSize: number): Float64Array {
  const q = toFloat64(x);
  const s = toFloat64(scale);
  const z = zp ? toFloat64(zp) : undefined;
  const rank = x.shape.length;
  const out = new Float64Array(q.length);
  const fr = Math.fround;
  if (s.length === 1 && blockSize <= 0) {
    const zz = z ? z[0]! : 0;
    for (let i = 0; i < q.length; i++) out[i] = fr(fr(q[i]! - zz) * fr(s[0]!));
    return out;
  }
  const axis = axisAttr < 0 ? axisAttr + rank : axisAttr;
  if (axis < 0 || axis >= rank) throw malformed(`DequantizeLinear axis ${axisAttr} is outside rank ${rank}`, x.name);
  const C = x.shape[axis]!;
  let inner = 1;
  for (let d = axis + 1; d < rank; d++) inner *= x.shape[d]!;
  const blocks = blockSize > 0 ? Math.ceil(C / blockSize) : C;
  const expected = blockSize > 0 ? (q.length / C) * blocks : C;
  if (s.length !== expected || (z && z.length !== s.length)) {
    throw malformed(`DequantizeLinear scale has ${s.length} entries, expected ${expected}`, x.name);
  }
  for (let i = 0; i < q.length; i++) {
    const a = Math.floor(i / inner) % C;
    let p: number;
    if (blockSize > 0) {
      const o = Math.floor(i / (inner * C));
      p = (o * blocks + Math.floor(a / blockSize)) * inner + (i % inner);
    } else p = a;
    out[i] = fr(fr(q[i]! - (z ? z[p]! : 0)) * fr(s[p]!));
  }
  return out;
}

/**
 * Index into a parameter tensor (scale or zero point) for each element of a tensor of `shape`:
 * numpy broadcasting (what Mul/Sub do), or, for a 1-D parameter that does not broadcast that way,
 * one entry per index of `axis` (MatMulInteger's b_zero_point [N], ConvInteger's w_zero_point [M]).
 */
export function broadcastParam(values: Float64Array, pshape: readonly number[], shape: readonly number[], axis: number, what: string): (i: number) => number {
  if (values.length === 1) return () => values[0]!;
  const r = shape.length;
  if (pshape.length === 1 && axis >= 0 && axis < r && pshape[0] === shape[axis] && !(axis === r - 1)) {
    let inner = 1;
    for (let d = axis + 1; d < r; d++) inner *= shape[d]!;
    const C = shape[axis]!;
    return (i) => values[Math.floor(i / inner) % C]!;
  }
  if (pshape.length > r) throw malformed(`${what} of shape [${pshape.join(',')}] does not broadcast to [${shape.join(',')}]`);
  const padded = [...new Array<number>(r - pshape.length).fill(1), ...pshape];
  const strides = new Array<number>(r).fill(0);
  let st = 1;
  for (let d = r - 1; d >= 0; d--) {
    if (padded[d] !== 1 && padded[d] !== shape[d]) throw malformed(`${what} of shape [${pshape.join(',')}] does not broadcast to [${shape.join(',')}]`);
    strides[d] = padded[d] === 1 ? 0 : st;
    st *= padded[d]!;
  }
  if (st !== values.length) throw malformed(`${what} holds ${values.length} values for shape [${pshape.join(',')}]`);
  return (i) => {
    let p = 0;
    let rest = i;
    for (let d = r - 1; d >= 0; d--) {
      const n = shape[d]!;
      p += (rest % n) * strides[d]!;
      rest = Math.floor(rest / n);
    }
    return values[p]!;
  };
}

/** (q - zp) * scale in float32, as every runtime computes a dequantized weight. */
function affine(q: Float64Array, scale: (i: number) => number, zp: ((i: number) => number) | undefined): Float64Array {
  const fr = Math.fround;
  const out = new Float64Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = fr(fr(q[i]! - (zp ? zp(i) : 0)) * fr(scale(i)));
  return out;
}

/** Row-major [rows, cols] → [cols, rows]. */
function transpose(v: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
  return out;
}

/** Code `i` of a stream of `bits`-bit values packed low bits first (MatMulNBits / GatherBlockQuantized uint8 storage). */
function packedCode(bytes: Uint8Array, i: number, bits: number): number {
  const per = 8 / bits;
  return (bytes[Math.floor(i / per)]! >> ((i % per) * bits)) & ((1 << bits) - 1);
}

const isInt = (d: DType): boolean => ['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int4', 'uint4'].includes(d);

// ------------------------------------------------------------------------------------------------
// matching
// ------------------------------------------------------------------------------------------------

/** A candidate counterpart brought back to float, in the reference's layout. */
interface Found {
  form: WeightReport['form'];
  dtype: DType;
  values: Float64Array;
  note?: string;
}

/** A counterpart that exists but cannot be compared. */
class NotComparable {
  constructor(readonly dtype: DType | null, readonly note: string) {}
}

type Match = Found | NotComparable | undefined;

const isDefault = (n: NodeProto): boolean => n.domain === '' || n.domain === 'ai.onnx';
const isMs = (n: NodeProto): boolean => n.domain === 'com.microsoft';

class Candidate {
  readonly init: Map<string, TensorProto>;
  readonly producer = new Map<string, NodeProto>();
  private readonly ctx: ReturnType<typeof modelTensorContext>;

  constructor(readonly model: OnnxModel) {
    const g = model.proto.graph!;
    this.init = new Map(g.initializer.map((t) => [t.name, t]));
    for (const n of g.node) for (const o of n.output) if (o) this.producer.set(o, n);
    this.ctx = modelTensorContext(model);
  }

  constProto(name: string | undefined): TensorProto | undefined {
    if (!name) return undefined;
    const t = this.init.get(name);
    if (t) return t;
    const n = this.producer.get(name);
    if (n?.opType === 'Constant' && isDefault(n)) {
      const a = n.attribute.find((x) => x.name === 'value' && x.t);
      return a?.t ? { ...a.t, name } : undefined;
    }
    return undefined;
  }

  async tensor(name: string | undefined): Promise<Tensor | undefined> {
    const tp = this.constProto(name);
    return tp ? tensorFromProto(tp, this.ctx) : undefined;
  }

  /** A constant input that must be there: a missing one makes the form not comparable. */
  async need(name: string | undefined, what: string, op: string): Promise<Tensor> {
    const t = await this.tensor(name);
    if (!t) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${op} input ${what} ('${name ?? ''}') is not a constant`, { path: this.model.path, tensor: name ?? '' });
    return t;
  }
}

/** Elements of a tensor without reading it (its dims only); -1 when they do not make a valid count. */
function declaredCount(t: Tensor): number {
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) return -1;
    n *= d;
  }
  return Number.isSafeInteger(n) ? n : -1;
}

/** Cast(→float) → [Sub(zero point)] → Mul(scale) producing the weight's name (weight pass below opset 10/13). */
async function castMul(c: Candidate, mul: NodeProto, ref: Tensor): Promise<Match> {
  if (mul.input.length !== 2) return undefined;
  for (const [si, vi] of [[1, 0], [0, 1]] as const) {
    const sName = mul.input[si];
    if (!c.constProto(sName)) continue;
    let p = c.producer.get(mul.input[vi]!);
    let zName: string | undefined;
    if (p?.opType === 'Sub' && isDefault(p) && c.constProto(p.input[1])) {
      zName = p.input[1];
      p = c.producer.get(p.input[0]!);
    }
    if (p?.opType !== 'Cast' || !isDefault(p)) continue;
    if (!c.constProto(p.input[0])) continue;
    const q = await c.need(p.input[0], 'input', 'Cast');
    if (!isInt(q.dtype)) continue;
    if (!sameDims(q.shape, ref.shape)) return new NotComparable(q.dtype, `Cast→Mul codes have shape [${q.shape.join(',')}]`);
    const s = await c.need(sName, 'scale', 'Mul');
    const z = zName ? await c.need(zName, 'zero point', 'Sub') : undefined;
    const values = affine(toFloat64(q),
      broadcastParam(toFloat64(s), s.shape, q.shape, -1, 'scale'),
      z ? broadcastParam(toFloat64(z), z.shape, q.shape, -1, 'zero point') : undefined);
    return { form: 'cast-mul', dtype: q.dtype, values, note: z ? 'Cast → Sub → Mul' : 'Cast → Mul' };
  }
  return undefined;
}

/** MatMulNBits(A, B, scales[, zero_points]) replacing MatMul(A, W): W [K, N] from B [N, k_blocks, blob]. */
async function matMulNBits(c: Candidate, node: NodeProto, ref: Tensor): Promise<Match> {
  if (ref.shape.length !== 2) return new NotComparable(null, `a MatMulNBits replaced a reader of this rank-${ref.shape.length} weight`);
  const [K, N] = ref.shape as [number, number];
  const k = attrInt(node, 'K', -1);
  const n = attrInt(node, 'N', -1);
  const bits = attrInt(node, 'bits', 4);
  const bs = attrInt(node, 'block_size', -1);
  if (k !== K || n !== N) return new NotComparable(null, `MatMulNBits '${node.name}' has K=${k}, N=${n}; the weight is [${K},${N}]`);
  if (![2, 4, 8].includes(bits) || !(bs >= 16 && bs <= 1 << 16 && (bs & (bs - 1)) === 0)) {
    return new NotComparable(null, `MatMulNBits '${node.name}' has bits=${bits}, block_size=${bs}`);
  }
  if (node.input[4]) return new NotComparable(null, `MatMulNBits '${node.name}' has g_idx (act-order); not compared`);
  const kb = Math.ceil(K / bs);
  const B = await c.need(node.input[1], 'B', 'MatMulNBits');
  if (B.dtype !== 'uint8' || B.data.length !== (N * kb * bs * bits) / 8) {
    return new NotComparable(B.dtype, `MatMulNBits B is ${B.dtype} with ${B.data.length} bytes, expected uint8 with ${(N * kb * bs * bits) / 8}`);
  }
  const st = await c.need(node.input[2], 'scales', 'MatMulNBits');
  if (declaredCount(st) !== N * kb) return new NotComparable(B.dtype, `MatMulNBits scales hold ${declaredCount(st)} values, expected ${N * kb}`);
  const scales = toFloat64(st);
  const zt = node.input[3] ? await c.need(node.input[3], 'zero_points', 'MatMulNBits') : undefined;
  let zp: (row: number, block: number) => number = () => 1 << (bits - 1);
  if (zt) {
    if (zt.dtype === 'uint8') {
      // Packed per row like B: a row of k_blocks zero points takes ceil(k_blocks * bits / 8) bytes.
      const stride = Math.ceil((kb * bits) / 8);
      if (zt.data.length !== N * stride) return new NotComparable(B.dtype, `MatMulNBits zero_points hold ${zt.data.length} bytes, expected ${N * stride}`);
      zp = (r, b) => packedCode(zt.data, r * stride * (8 / bits) + b, bits);
    } else {
      if (declaredCount(zt) !== N * kb) return new NotComparable(B.dtype, `MatMulNBits zero_points hold ${declaredCount(zt)} values, expected ${N * kb}`);
      const z = toFloat64(zt);
      zp = (r, b) => z[r * kb + b]!;
    }
  }
  const fr = Math.fround;
  const values = new Float64Array(K * N);
  for (let r = 0; r < N; r++) {
    for (let kk = 0; kk < K; kk++) {
      const b = Math.floor(kk / bs);
      const q = packedCode(B.data, r * kb * bs + kk, bits);
      values[kk * N + r] = fr(fr(q - zp(r, b)) * fr(scales[r * kb + b]!));
    }
  }
  return { form: 'matmulnbits', dtype: B.dtype, values, note: `MatMulNBits '${node.name}', ${bits}-bit, block ${bs}, stored transposed [N, K]` };
}

/** GatherBlockQuantized(data, indices, scales[, zero_points]) replacing Gather(W, indices) on a [V, D] table. */
async function gatherBlockQuantized(c: Candidate, node: NodeProto, ref: Tensor): Promise<Match> {
  if (ref.shape.length !== 2) return new NotComparable(null, `a GatherBlockQuantized replaced a reader of this rank-${ref.shape.length} weight`);
  const [V, D] = ref.shape as [number, number];
  const ga = attrInt(node, 'gather_axis', 0);
  const qa = attrInt(node, 'quantize_axis', 1);
  const bits = attrInt(node, 'bits', 4);
  const bs = attrInt(node, 'block_size', 128);
  if ((ga !== 0 && ga !== -2) || (qa !== 1 && qa !== -1)) return new NotComparable(null, `GatherBlockQuantized '${node.name}' gathers axis ${ga}, quantizes axis ${qa}; only 0 / last are compared`);
  if (![2, 4, 8].includes(bits) || !(bs >= 16 && bs <= 1 << 16 && (bs & (bs - 1)) === 0)) {
    return new NotComparable(null, `GatherBlockQuantized '${node.name}' has bits=${bits}, block_size=${bs}`);
  }
  const kb = Math.ceil(D / bs);
  const data = await c.need(node.input[0], 'data', 'GatherBlockQuantized');
  let code: (i: number) => number;
  let dflt: number;
  if (data.dtype === 'uint8') {
    const width = (D * bits) / 8;
    if (data.shape.length !== 2 || data.shape[0] !== V || data.shape[1] !== width || data.data.length !== V * width) {
      return new NotComparable(data.dtype, `GatherBlockQuantized data is uint8[${data.shape.join(',')}], expected [${V},${width}]`);
    }
    code = (i) => packedCode(data.data, i, bits);
    dflt = 1 << (bits - 1);
  } else if ((data.dtype === 'int4' || data.dtype === 'uint4') && bits === 4) {
    if (!sameDims(data.shape, ref.shape)) return new NotComparable(data.dtype, `GatherBlockQuantized data is ${data.dtype}[${data.shape.join(',')}]`);
    const v = toFloat64(data);
    code = (i) => v[i]!;
    dflt = 0;
  } else return new NotComparable(data.dtype, `GatherBlockQuantized data is ${data.dtype} with bits=${bits}`);
  const st = await c.need(node.input[2], 'scales', 'GatherBlockQuantized');
  if (declaredCount(st) !== V * kb) return new NotComparable(data.dtype, `GatherBlockQuantized scales hold ${declaredCount(st)} values, expected ${V * kb}`);
  const scales = toFloat64(st);
  const zt = node.input[3] ? await c.need(node.input[3], 'zero_points', 'GatherBlockQuantized') : undefined;
  let zp: (r: number, b: number) => number = () => dflt;
  if (zt) {
    if (zt.dtype === 'uint8' && data.dtype === 'uint8') {
      const stride = Math.ceil((kb * bits) / 8);
      if (zt.data.length !== V * stride) return new NotComparable(data.dtype, `GatherBlockQuantized zero_points hold ${zt.data.length} bytes, expected ${V * stride}`);
      zp = (r, b) => packedCode(zt.data, r * stride * (8 / bits) + b, bits);
    } else {
      if (declaredCount(zt) !== V * kb) return new NotComparable(data.dtype, `GatherBlockQuantized zero_points hold ${declaredCount(zt)} values, expected ${V * kb}`);
      const z = toFloat64(zt);
      zp = (r, b) => z[r * kb + b]!;
    }
  }
  const fr = Math.fround;
  const values = new Float64Array(V * D);
  for (let r = 0; r < V; r++) {
    for (let d = 0; d < D; d++) {
      const b = Math.floor(d / bs);
      values[r * D + d] = fr(fr(code(r * D + d) - zp(r, b)) * fr(scales[r * kb + b]!));
    }
  }
  return { form: 'gather-block', dtype: data.dtype, values, note: `GatherBlockQuantized '${node.name}', ${bits}-bit, block ${bs}` };
}

/** How far back from a reader's output the dynamic pass's Add/Mul/Cast tail can reach. */
const TAIL_STEPS = 8;

/**
 * MatMulInteger / ConvInteger replacing the reader: walk back from the reader's output through the
 * rescale tail (Add, Mul, Cast, each on input 0 — the order dynamic.ts and onnxruntime's quantizer
 * write) to the integer op; the Mul right after the Cast multiplies by activation scale × weight scale,
 * and the weight scale is the constant input of the Mul computing that product.
 */
async function integerOp(c: Candidate, y: string, reader: NodeProto, ref: Tensor): Promise<Match> {
  let name = y;
  let rescale: NodeProto | undefined;
  for (let step = 0; step < TAIL_STEPS; step++) {
    const n = c.producer.get(name);
    if (!n || !isDefault(n)) return undefined;
    if (n.opType === 'MatMulInteger' || n.opType === 'ConvInteger') {
      if (!rescale) return new NotComparable(null, `${n.opType} '${n.name}' has no rescale Mul after its Cast`);
      return integerWeight(c, n, rescale, reader, ref);
    }
    if (n.opType === 'Mul') rescale = n;
    else if (n.opType !== 'Add' && n.opType !== 'Cast') return undefined;
    if (!n.input[0]) return undefined;
    name = n.input[0];
  }
  return undefined;
}

async function integerWeight(c: Candidate, op: NodeProto, rescale: NodeProto, reader: NodeProto, ref: Tensor): Promise<Match> {
  const q = await c.need(op.input[1], 'B', op.opType);
  if (!isInt(q.dtype)) return new NotComparable(q.dtype, `${op.opType} weight is ${q.dtype}`);
  // The scale operand of the rescale Mul: a constant, or Mul(activation scale, constant weight scale).
  let ws: Tensor | undefined;
  for (const inp of rescale.input) {
    if (c.producer.get(inp)?.opType === 'Cast') continue;
    ws = await c.tensor(inp);
    if (ws) break;
    const m = c.producer.get(inp);
    if (m?.opType === 'Mul' && isDefault(m)) {
      for (const x of m.input) if (!ws) ws = await c.tensor(x);
    }
    if (ws) break;
  }
  if (!ws) return new NotComparable(q.dtype, `no constant weight scale found for ${op.opType} '${op.name}'`);
  const zt = op.input[3] ? await c.need(op.input[3], 'zero point', op.opType) : undefined;
  const conv = op.opType === 'ConvInteger';
  const axis = conv ? 0 : q.shape.length - 1;
  const count = declaredCount(q);
  if (count !== numel(ref.shape)) return new NotComparable(q.dtype, `${op.opType} weight has shape [${q.shape.join(',')}]`);
  // ConvInteger's per-channel scale is shaped [M, 1, …] to broadcast over the *output* [B, M, H, W]:
  // as a weight parameter it is one value per output channel, axis 0.
  const perOutput = (t: Tensor): readonly number[] => (conv && declaredCount(t) === q.shape[0] ? [q.shape[0]!] : t.shape);
  const values = affine(toFloat64(q),
    broadcastParam(toFloat64(ws), perOutput(ws), q.shape, axis, 'weight scale'),
    zt ? broadcastParam(toFloat64(zt), perOutput(zt), q.shape, axis, 'zero point') : undefined);
  const note = `${op.opType} '${op.name}' + rescale '${rescale.name}'`;
  // A transB Gemm weight [N, K] is stored as MatMulInteger's [K, N] (square ones too: decide by the attribute).
  if (reader.opType === 'Gemm' && attrInt(reader, 'transB', 0) !== 0) {
    if (q.shape.length === 2 && ref.shape.length === 2 && q.shape[0] === ref.shape[1] && q.shape[1] === ref.shape[0]) {
      return { form: 'integer', dtype: q.dtype, values: transpose(values, q.shape[0]!, q.shape[1]!), note: `${note}, stored transposed` };
    }
  } else if (sameDims(q.shape, ref.shape)) return { form: 'integer', dtype: q.dtype, values, note };
  return new NotComparable(q.dtype, `${op.opType} weight has shape [${q.shape.join(',')}]`);
}

/** A Conv bias the dynamic pass reshaped to [M, 1, …] and added after the rescale. */
async function movedBias(c: Candidate, y: string, ref: Tensor): Promise<Match> {
  const add = c.producer.get(y);
  if (add?.opType !== 'Add' || !isDefault(add)) return undefined;
  const tp = c.constProto(add.input[1]);
  if (!tp) return undefined;
  const t = await c.need(add.input[1], 'bias', 'Add');
  if (t.dtype !== ref.dtype || declaredCount(t) !== numel(ref.shape)) return undefined;
  return { form: 'same', dtype: t.dtype, values: toFloat64(t), note: `added after the rescale as '${tp.name}' [${t.shape.join(',')}]` };
}

/** The reference readers' replacements in the candidate, found by the readers' output names. */
async function replacedReader(c: Candidate, readers: { node: NodeProto; input: number }[], ref: Tensor): Promise<Match> {
  let first: Match;
  for (const { node: r, input } of readers) {
    const y = r.output[0];
    if (!y) continue;
    const p = c.producer.get(y);
    let m: Match;
    if (p && isMs(p) && p.opType === 'MatMulNBits' && r.opType === 'MatMul' && input === 1) m = await matMulNBits(c, p, ref);
    else if (p && isMs(p) && p.opType === 'GatherBlockQuantized' && r.opType === 'Gather' && input === 0) m = await gatherBlockQuantized(c, p, ref);
    else if ((r.opType === 'MatMul' || r.opType === 'Gemm' || r.opType === 'Conv') && input === 1) m = await integerOp(c, y, r, ref);
    else if (r.opType === 'Conv' && input === 2) m = await movedBias(c, y, ref);
    if (m instanceof NotComparable) first ??= m;
    else if (m) return m;
  }
  return first;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isComparableFloat(d: DType | undefined): d is DType {
  return d !== undefined && dtypeInfo(d).isFloat && !d.startsWith('float8') && !d.startsWith('complex') && d !== 'float4e2m1' && d !== 'float8e8m0';
}

/** Per-tensor weight error between the reference's float initializers and the candidate's counterparts. */
export async function compareWeights(ref: OnnxModel, cand: OnnxModel): Promise<WeightReport[]> {
  const rg = ref.proto.graph;
  if (!rg || !cand.proto.graph) return [];
  const rctx = modelTensorContext(ref);
  const c = new Candidate(cand);
  // Weights of the reference: initializers, and Constant nodes (paddle2onnx, spox store weights there).
  const refWeights: TensorProto[] = [...rg.initializer];
  for (const n of rg.node) {
    if (n.opType !== 'Constant' || !isDefault(n) || !n.output[0]) continue;
    const a = n.attribute.find((x) => x.name === 'value' && x.t);
    if (a?.t) refWeights.push({ ...a.t, name: n.output[0] });
  }
  const readers = new Map<string, { node: NodeProto; input: number }[]>();
  for (const n of rg.node) {
    n.input.forEach((name, input) => {
      if (!name) return;
      const l = readers.get(name) ?? [];
      l.push({ node: n, input });
      readers.set(name, l);
    });
  }
  const out: WeightReport[] = [];
  for (const rtp of refWeights) {
    if (!isComparableFloat(dtypeFromOnnx(rtp.dataType)?.name)) continue;
    const rt = await tensorFromProto(rtp, rctx);
    if (numel(rt.shape) <= 1) continue; // scalars and 1-element constants are not weights
    const base: Pick<WeightReport, 'name' | 'shape' | 'referenceDtype'> = { name: rtp.name, shape: rt.shape, referenceDtype: rt.dtype };
    try {
      const m = await counterpart(c, rtp.name, rt, readers.get(rtp.name) ?? []);
      if (m instanceof NotComparable) out.push({ ...base, candidateDtype: m.dtype, form: 'dtype-change', note: m.note });
      else if (m && 'values' in m) out.push({ ...base, candidateDtype: m.dtype, form: m.form, stats: statsOf(toFloat64(rt), m.values), ...(m.note ? { note: m.note } : {}) });
      else {
        const node = c.producer.get(rtp.name);
        out.push({ ...base, candidateDtype: null, form: 'absent', ...(node ? { note: `computed by a ${node.opType} node` } : {}) });
      }
    } catch (e) {
      if (!(e instanceof ModelsmithError)) throw e;
      out.push({ ...base, candidateDtype: null, form: 'dtype-change', note: `not comparable: ${e.message}` });
    }
  }
  return out;
}

async function counterpart(c: Candidate, name: string, rt: Tensor, readers: { node: NodeProto; input: number }[]): Promise<Match> {
  const ct = await c.tensor(name);
  if (ct) {
    const same = sameDims(rt.shape, ct.shape);
    if (ct.dtype === rt.dtype || (isComparableFloat(ct.dtype) && dtypeInfo(ct.dtype).bits >= 16 && same)) {
      if (!same) return new NotComparable(ct.dtype, `shape changed to [${ct.shape.join(',')}]`);
      return { form: ct.dtype === rt.dtype ? 'same' : 'cast', dtype: ct.dtype, values: toFloat64(ct) };
    }
    return new NotComparable(ct.dtype, `stored as ${ct.dtype}[${ct.shape.join(',')}] without a DequantizeLinear producing '${name}'`);
  }
  const node = c.producer.get(name);
  if (node?.opType === 'DequantizeLinear' && (isDefault(node) || isMs(node))) {
    const [xIn, sIn, zIn] = node.input;
    const x = await c.tensor(xIn);
    const s = await c.tensor(sIn);
    const z = zIn ? await c.tensor(zIn) : undefined;
    if (!x || !s || (zIn && !z)) return new NotComparable(null, 'produced by a DequantizeLinear whose inputs are not all constants');
    if (!sameDims(rt.shape, x.shape)) return new NotComparable(x.dtype, `quantized tensor has shape [${x.shape.join(',')}]`);
    return { form: 'dequantize', dtype: x.dtype, values: dequantizeHost(x, s, z, attrInt(node, 'axis', 1), attrInt(node, 'block_size', 0)) };
  }
  if (node?.opType === 'Cast' && isDefault(node) && node.input[0]) {
    const x = await c.tensor(node.input[0]);
    if (x && sameDims(rt.shape, x.shape) && isComparableFloat(x.dtype) && dtypeInfo(x.dtype).bits >= 16) {
      return { form: 'cast-node', dtype: x.dtype, values: toFloat64(x) };
    }
  }
  if (node?.opType === 'Mul' && isDefault(node)) {
    const m = await castMul(c, node, rt);
    if (m) return m;
  }
  if (node) return undefined;
  return replacedReader(c, readers, rt);
}
