/**
 * NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12+), on [N, C] or [N, C, d1, …].
 * The target's class is picked with a one-hot comparison against the class ids (Equal → SelectV2 →
 * Sum over C) instead of a gather: TF's GatherV2 rejects the out-of-range ids that ignore_index
 * usually is (−100), and selecting never multiplies a −inf log-probability by zero.
 */
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';

/** Loss of log-probabilities `lp` (a TF tensor shaped like `x`) against the node's target and weight. */
function nll(cx: Cx, x: Val, lp: string): void {
  const t = cx.in(1);
  const w = cx.opt(2);
  const r = cx.rank(x);
  if (r < 2) return cx.fail(ErrorCodes.MALFORMED, `input has rank ${r}; losses need [N, C, …]`);
  if (t.dtype !== 'int32' && t.dtype !== 'int64') return cx.fail(ErrorCodes.MALFORMED, `target is ${t.dtype}, not an integer type`);
  if (t.shape && t.shape.length !== r - 1) return cx.fail(ErrorCodes.MALFORMED, `target has rank ${t.shape.length}, input rank ${r} needs ${r - 1}`);
  const C = x.shape![1]!;
  if (C < 0 || C >= 2 ** 31) return cx.unsupported('loss with an unknown class count (dim 1 of the input must be static)');
  const reduction = cx.str('reduction', 'mean');
  if (!['none', 'sum', 'mean'].includes(reduction)) return cx.fail(ErrorCodes.MALFORMED, `reduction '${reduction}' (none, sum or mean)`);
  const D: DType = x.dtype;
  const T = { T: a.dt(D) };
  const TI = { T: a.dt(t.dtype) };
  const unit = (n: number): number[] => [1, n, ...new Array<number>(r - 2).fill(1)];

  // mask[n, c, d…] = (target[n, d…] == c)
  // The class ids come from a Range, not a Const: C is a declared (untrusted) dim.
  const range = cx.add('Range', [cx.scalar('int32', 0), cx.scalar('int32', C), cx.scalar('int32', 1)], { Tidx: a.dt('int32') });
  const ids = t.dtype === 'int32' ? range : cx.add('Cast', [range], { SrcT: a.dt('int32'), DstT: a.dt(t.dtype), Truncate: a.b(false) });
  const classes = cx.add('Reshape', [ids, cx.i32(unit(C))], { ...TI, Tshape: a.dt('int32') });
  const tExp = cx.add('ExpandDims', [cx.ref(t), cx.i32([1], [])], { ...TI, Tdim: a.dt('int32') });
  const mask = cx.add('Equal', [tExp, classes], { ...TI, incompatible_shape_error: a.b(true) });
  const zeros = cx.add('ZerosLike', [lp], T);
  const sumC = (v: string): string => cx.add('Sum', [v, cx.i32([1], [])], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  let loss = cx.add('Neg', [sumC(cx.add('SelectV2', [mask, lp, zeros], T))], T);

  // Per-element weights: weight[target] (0 for ids outside [0, C)), zeroed where target == ignore_index.
  let wt: string | undefined;
  if (w) {
    if (w.shape && (w.shape.length !== 1 || (w.shape[0]! >= 0 && w.shape[0] !== C))) return cx.fail(ErrorCodes.MALFORMED, `weight has shape [${w.shape.join(',')}]; [${C}] expected`);
    const wB = cx.add('Reshape', [cx.ref(w), cx.i32(unit(C))], { ...T, Tshape: a.dt('int32') });
    wt = sumC(cx.add('SelectV2', [mask, wB, zeros], T));
    loss = cx.add('Mul', [loss, wt], T);
  }
  if (cx.has('ignore_index')) {
    const keep = cx.add('NotEqual', [cx.ref(t), cx.scalar(t.dtype, cx.int('ignore_index', 0))], { ...TI, incompatible_shape_error: a.b(true) });
    const lz = cx.add('ZerosLike', [loss], T);
    loss = cx.add('SelectV2', [keep, loss, lz], T);
    wt = cx.add('SelectV2', [keep, wt ?? cx.add('OnesLike', [loss], T), lz], T);
  }

  const outShape = x.shape!.filter((_, i) => i !== 1);
  if (reduction === 'none') return cx.outRef(0, loss, D, outShape);
  const all = cx.i32([...Array(r - 1).keys()]);
  const reduce = (op: string, v: string): string => cx.add(op, [v, all], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  let y: string;
  if (reduction === 'sum') y = reduce('Sum', loss);
  // A weighted mean divides by the weights that took part (the ONNX definition), not by the count.
  else y = wt ? cx.add('RealDiv', [reduce('Sum', loss), reduce('Sum', wt)], T) : reduce('Mean', loss);
  cx.outRef(0, y, D, []);
}

register('NegativeLogLikelihoodLoss', (cx) => {
  const x = cx.in(0);
  nll(cx, x, cx.ref(x));
});

register('SoftmaxCrossEntropyLoss', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  if (r < 2) return cx.fail(ErrorCodes.MALFORMED, `input has rank ${r}; losses need [N, C, …]`);
  const T = { T: a.dt(x.dtype) };
  // TF normalises over the last axis: move the class axis there and back.
  let lp: string;
  if (r === 2) lp = cx.add('LogSoftmax', [cx.ref(x)], T);
  else {
    const perm = [...Array(r).keys()];
    perm[1] = r - 1;
    perm[r - 1] = 1;
    const P = { ...T, Tperm: a.dt('int32') };
    lp = cx.add('Transpose', [cx.add('LogSoftmax', [cx.add('Transpose', [cx.ref(x), cx.i32(perm)], P)], T), cx.i32(perm)], P);
  }
  nll(cx, x, lp);
  cx.outRef(1, lp, x.dtype, x.shape);
});
