/** Gemm, MatMul (numpy rank rules) and MatMulInteger (computed exactly in float32, then cast). */
import type { DType } from '../../../core/dtype.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { broadcastShapes, transposeTensor } from '../values.js';

register('Gemm', (cx) => {
  const A = cx.in(0);
  const B = cx.in(1);
  const C = cx.opt(2);
  const ta = cx.int('transA', 0) === 1;
  const tb = cx.int('transB', 0) === 1;
  const alpha = cx.float('alpha', 1);
  const beta = cx.float('beta', 1);
  const T = { T: a.dt(A.dtype) };
  let b: string;
  let tbAttr = tb;
  if (tb && B.value && B.value.shape.length === 2) {
    // A constant B is stored pre-transposed: MatMul without transpose_b is the form every TF
    // consumer reads the same way (OpenCV's importer ignores transpose_b).
    const t = B.value;
    b = cx.derived(t, 'T') ?? cx.derived(t, 'T', cx.weight(transposeTensor(t, [1, 0]), t.name ? `${t.name}/transposed` : undefined))!;
    tbAttr = false;
  } else {
    b = cx.ref(B);
  }
  let y = cx.add('MatMul', [cx.ref(A), b], { ...T, transpose_a: a.b(ta), transpose_b: a.b(tbAttr) });
  if (alpha !== 1) y = cx.add('Mul', [y, cx.scalar(A.dtype, alpha)], T);
  const m = A.shape ? A.shape[ta ? 1 : 0]! : -1;
  const n = B.shape ? B.shape[tb ? 0 : 1]! : -1;
  if (C && beta !== 0) {
    let c = cx.ref(C);
    if (beta !== 1) c = cx.add('Mul', [c, cx.scalar(C.dtype, beta)], T);
    y = C.shape?.length === 1 && beta === 1 ? cx.add('BiasAdd', [y, c], { ...T, data_format: a.s('NHWC') }) : cx.add('AddV2', [y, c], T);
  }
  cx.outRef(0, y, A.dtype, [m, n]);
});

/** numpy matmul: 1-D operands get a unit dim added and removed; batch dims broadcast. */
function matmul(cx: Cx, x: Val, y: Val, xr: string, yr: string, dtype: DType): { ref: string; shape: number[] | null } {
  const rx = cx.rank(x);
  const ry = cx.rank(y);
  const T = { T: a.dt(dtype) };
  const E = { ...T, Tdim: a.dt('int32') };
  if (rx === 1) xr = cx.add('ExpandDims', [xr, cx.i32([0], [])], E);
  if (ry === 1) yr = cx.add('ExpandDims', [yr, cx.i32([-1], [])], E);
  const xs = rx === 1 ? [1, x.shape![0]!] : x.shape!;
  const ys = ry === 1 ? [y.shape![0]!, 1] : y.shape!;
  let ref = rx <= 2 && ry <= 2
    ? cx.add('MatMul', [xr, yr], { ...T, transpose_a: a.b(false), transpose_b: a.b(false) })
    : cx.add('BatchMatMulV2', [xr, yr], { ...T, adj_x: a.b(false), adj_y: a.b(false) });
  const batch = broadcastShapes(xs.slice(0, -2), ys.slice(0, -2))!;
  let shape = [...batch, xs[xs.length - 2]!, ys[ys.length - 1]!];
  const squeeze: number[] = [];
  if (rx === 1) squeeze.push(shape.length - 2);
  if (ry === 1) squeeze.push(shape.length - 1);
  if (squeeze.length) {
    ref = cx.add('Squeeze', [ref], { ...T, squeeze_dims: a.ints(squeeze) });
    shape = shape.filter((_, i) => !squeeze.includes(i));
  }
  return { ref, shape };
}

register('MatMul', (cx) => {
  const x = cx.in(0);
  const y = cx.in(1);
  const r = matmul(cx, x, y, cx.ref(x), cx.ref(y), x.dtype);
  cx.outRef(0, r.ref, x.dtype, r.shape);
});

register('MatMulInteger', (cx) => {
  const x = cx.in(0);
  const y = cx.in(1);
  const F = { T: a.dt('float32') };
  // No integer matmul kernels on TF CPU: products of 8-bit values summed in float32 are exact up to
  // K ≈ 2^24 / 2^16 = 256 terms of full range, and in practice far beyond for real weights.
  const toF = (v: Val, zp: Val | undefined, rowwise: boolean): string => {
    let r = cx.add('Cast', [cx.ref(v)], { SrcT: a.dt(v.dtype), DstT: a.dt('float32'), Truncate: a.b(false) });
    if (zp) {
      let z = cx.add('Cast', [cx.ref(zp)], { SrcT: a.dt(zp.dtype), DstT: a.dt('float32'), Truncate: a.b(false) });
      if (rowwise && zp.shape?.length === 1 && zp.shape[0] !== 1) z = cx.add('ExpandDims', [z, cx.i32([-1], [])], { ...F, Tdim: a.dt('int32') });
      r = cx.add('Sub', [r, z], F);
    }
    return r;
  };
  const r = matmul(cx, x, y, toF(x, cx.opt(2), true), toF(y, cx.opt(3), false), 'float32');
  cx.outRef(0, cx.add('Cast', [r.ref], { SrcT: a.dt('float32'), DstT: a.dt('int32'), Truncate: a.b(false) }), 'int32', r.shape);
});
