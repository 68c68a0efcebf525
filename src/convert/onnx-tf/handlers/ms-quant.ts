/**
 * onnxruntime's blockwise-quantized contrib ops, which our `quantize --method int4` pass writes:
 * com.microsoft::MatMulNBits and com.microsoft::GatherBlockQuantized. The packed codes stay packed
 * in the TF graph (the SavedModel keeps the 4-bit size); they are unpacked and dequantized in the
 * graph — nibbles by FloorMod/FloorDiv, (q − zero point) · scale per block — then multiplied or
 * gathered in float32, as onnxruntime computes them at accuracy level 0.
 */
import type { DType } from '../../../core/dtype.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';

const F = { T: a.dt('float32') };
const I = { T: a.dt('int32') };

function cast(cx: Cx, ref: string, from: DType, to: DType): string {
  return from === to ? ref : cx.add('Cast', [ref], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) });
}

/** uint8 bytes [..., n] → int32 codes [..., n · 8/bits], low bits first (ONNX / onnxruntime packing). */
function unpack(cx: Cx, bytes: string, bits: number, lead: number[]): string {
  const b = cast(cx, bytes, 'uint8', 'int32');
  if (bits === 8) return b;
  const lo = cx.add('FloorMod', [b, cx.i32([16], [])], I);
  const hi = cx.add('FloorDiv', [b, cx.i32([16], [])], I);
  const pair = cx.add('Pack', [lo, hi], { ...I, N: a.i(2), axis: a.i(-1) });
  return cx.add('Reshape', [pair, cx.i32([...lead, -1])], { ...I, Tshape: a.dt('int32') });
}

function reshape(cx: Cx, ref: string, shape: number[], dtype: DType): string {
  return cx.add('Reshape', [ref, cx.i32(shape)], { T: a.dt(dtype), Tshape: a.dt('int32') });
}

/** Zero points per block as float32 [lead..., kb]: default 2^(bits−1), packed uint8, or float. */
function zeroPoints(cx: Cx, zp: Val | undefined, bits: number, lead: number[], kb: number): string {
  if (!zp) return cx.scalar('float32', 2 ** (bits - 1));
  if (zp.dtype === 'uint8') {
    const codes = unpack(cx, reshape(cx, cx.ref(zp), [...lead, -1], 'uint8'), bits, lead);
    // Packed rows are padded to whole bytes: keep the first kb codes of each row.
    const begin = cx.i32(new Array<number>(lead.length + 1).fill(0));
    const size = cx.i32([...lead.map(() => -1), kb]);
    return cast(cx, cx.add('Slice', [codes, begin, size], { ...I, Index: a.dt('int32') }), 'int32', 'float32');
  }
  return reshape(cx, cast(cx, cx.ref(zp), zp.dtype, 'float32'), [...lead, kb], 'float32');
}

register('com.microsoft::MatMulNBits', (cx) => {
  const A = cx.in(0);
  const B = cx.in(1);
  const scales = cx.in(2);
  const zp = cx.opt(3);
  if (cx.opt(4)) return cx.unsupported('MatMulNBits with g_idx (act-order) is not converted');
  const bias = cx.opt(5);
  const K = cx.int('K', 0);
  const N = cx.int('N', 0);
  const bits = cx.int('bits', 4);
  const bs = cx.int('block_size', 0);
  if (bits !== 4 && bits !== 8) return cx.unsupported(`MatMulNBits with bits = ${bits} (4 or 8)`);
  if (K <= 0 || N <= 0 || bs < 16 || (bs & (bs - 1)) !== 0) return cx.unsupported(`MatMulNBits attributes K = ${K}, N = ${N}, block_size = ${bs}`);
  if (B.dtype !== 'uint8') return cx.unsupported(`MatMulNBits B of type ${B.dtype} (uint8 packed codes)`);
  const kb = Math.ceil(K / bs);
  // W [N, K] = (q − zp) · scale per block of bs values along K; rows are padded to whole blocks.
  const q = cast(cx, reshape(cx, unpack(cx, reshape(cx, cx.ref(B), [N, kb, -1], 'uint8'), bits, [N, kb]), [N, kb, bs], 'int32'), 'int32', 'float32');
  const z = zp ? reshape(cx, zeroPoints(cx, zp, bits, [N], kb), [N, kb, 1], 'float32') : zeroPoints(cx, undefined, bits, [N], kb);
  const s = reshape(cx, cast(cx, cx.ref(scales), scales.dtype, 'float32'), [N, kb, 1], 'float32');
  let w = reshape(cx, cx.add('Mul', [cx.add('Sub', [q, z], F), s], F), [N, kb * bs], 'float32');
  if (kb * bs !== K) w = cx.add('Slice', [w, cx.i32([0, 0]), cx.i32([N, K])], { ...F, Index: a.dt('int32') });
  const x = cast(cx, cx.ref(A), A.dtype, 'float32');
  const rank = A.shape?.length ?? 2;
  let y = rank === 2
    ? cx.add('MatMul', [x, w], { ...F, transpose_a: a.b(false), transpose_b: a.b(true) })
    : cx.add('BatchMatMulV2', [x, w], { ...F, adj_x: a.b(false), adj_y: a.b(true) });
  if (bias) y = cx.add('AddV2', [y, cast(cx, cx.ref(bias), bias.dtype, 'float32')], F);
  cx.outRef(0, cast(cx, y, 'float32', A.dtype), A.dtype, A.shape ? [...A.shape.slice(0, -1), N] : null);
});

register('com.microsoft::GatherBlockQuantized', (cx) => {
  const data = cx.in(0);
  const idx = cx.in(1);
  const scales = cx.in(2);
  const zp = cx.opt(3);
  const bits = cx.int('bits', 4);
  const bs = cx.int('block_size', 128);
  const ds = data.shape;
  if (data.dtype !== 'uint8') return cx.unsupported(`GatherBlockQuantized data of type ${data.dtype} (uint8 packed codes)`);
  if (bits !== 4 && bits !== 8) return cx.unsupported(`GatherBlockQuantized with bits = ${bits} (4 or 8)`);
  if (!ds || ds.length !== 2 || ds.some((d) => d < 0)) return cx.unsupported('GatherBlockQuantized needs 2-D data of static shape');
  if (cx.int('gather_axis', 0) !== 0 || ![1, -1].includes(cx.int('quantize_axis', 1))) return cx.unsupported('GatherBlockQuantized other than gather_axis 0, quantize_axis 1');
  if (bs < 16 || (bs & (bs - 1)) !== 0) return cx.unsupported(`GatherBlockQuantized block_size = ${bs}`);
  const [V, packed] = ds as [number, number];
  const D = (packed * 8) / bits;
  const kb = Math.ceil(D / bs);
  // Negative indices count from the end, as in Gather; TF's GatherV2 rejects them on CPU.
  const it = idx.dtype === 'int64' ? 'int64' : 'int32';
  let ix = cast(cx, cx.ref(idx), idx.dtype, it);
  const neg = cast(cx, cx.add('Less', [ix, cx.scalar(it, 0)], { T: a.dt(it) }), 'bool', it);
  ix = cx.add('AddV2', [ix, cx.add('Mul', [neg, cx.scalar(it, V)], { T: a.dt(it) })], { T: a.dt(it) });
  const gather = (ref: string, dtype: DType, axis: number, indices: string, tIdx: DType): string =>
    cx.add('GatherV2', [ref, indices, cx.i32([axis], [])], { batch_dims: a.i(0), Tparams: a.dt(dtype), Tindices: a.dt(tIdx), Taxis: a.dt('int32') });
  // Gather the packed rows first: only the rows asked for are unpacked.
  const lead = idx.shape ?? null;
  const r = lead ? lead.length : -1;
  if (r < 0 || lead!.some((d) => d < 0)) return cx.unsupported('GatherBlockQuantized with indices of unknown shape');
  const rows = gather(cx.ref(data), 'uint8', 0, ix, it);
  const q = cast(cx, unpack(cx, rows, bits, lead!), 'int32', 'float32');
  // Per-element scale / zero point: block j / bs of the gathered row.
  const perElem = cx.i32(Array.from({ length: D }, (_, j) => Math.floor(j / bs)));
  const s = gather(gather(cast(cx, cx.ref(scales), scales.dtype, 'float32'), 'float32', 0, ix, it), 'float32', r, perElem, 'int32');
  let centered: string;
  if (zp) {
    const zRows = zp.dtype === 'uint8'
      ? zeroPoints(cx, { ...zp, ref: gather(cx.ref(zp), 'uint8', 0, ix, it) }, bits, lead!, kb)
      : gather(cast(cx, cx.ref(zp), zp.dtype, 'float32'), 'float32', 0, ix, it);
    centered = cx.add('Sub', [q, gather(zRows, 'float32', r, perElem, 'int32')], F);
  } else {
    centered = cx.add('Sub', [q, cx.scalar('float32', 2 ** (bits - 1))], F);
  }
  const y = cx.add('Mul', [centered, s], F);
  cx.outRef(0, cast(cx, y, 'float32', scales.dtype), scales.dtype, [...lead!, D]);
});
