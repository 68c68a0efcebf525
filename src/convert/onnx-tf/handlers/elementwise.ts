/** Elementwise math, comparisons, logic, Where, variadic Max/Min/Sum/Mean, Identity/Dropout. */
import { dtypeInfo, type DType } from '../../../core/dtype.js';
import type { Cx, Val } from '../context.js';
import type { AttrValue } from '../../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { broadcastShapes, MAX_FOLD_ELEMENTS, numbersTensor, tensorNumbers } from '../values.js';

const isInt = (d: DType): boolean => !dtypeInfo(d).isFloat && d !== 'bool';

/** Conversion-time evaluation of integer shape arithmetic (Shape→Mul→Concat chains). */
function foldBinary(cx: Cx, x: Val, y: Val, fn: (p: number, q: number) => number, outDtype: DType): boolean {
  if (!x.value || !y.value || !isInt(x.dtype) || x.value.data.byteLength > MAX_FOLD_ELEMENTS * 8 || y.value.data.byteLength > MAX_FOLD_ELEMENTS * 8) return false;
  const shape = broadcastShapes(x.value.shape, y.value.shape)!;
  const p = tensorNumbers(x.value);
  const q = tensorNumbers(y.value);
  const n = shape.reduce((s, d) => s * d, 1);
  const at = (vals: number[], vs: number[], i: number): number => {
    // Index into a broadcast operand by walking the output index from the last axis.
    let off = 0;
    let stride = 1;
    let rem = i;
    for (let k = shape.length - 1; k >= 0; k--) {
      const c = rem % shape[k]!;
      rem = Math.floor(rem / shape[k]!);
      const j = k - (shape.length - vs.length);
      if (j >= 0) {
        if (vs[j]! !== 1) off += c * stride;
        stride *= vs[j]!;
      }
    }
    return vals[off]!;
  };
  const out = Array.from({ length: n }, (_, i) => fn(at(p, x.value!.shape, i), at(q, y.value!.shape, i)));
  cx.out(0, { dtype: outDtype, shape, value: numbersTensor('', outDtype, shape, out) });
  return true;
}

function binary(tfOp: string | ((d: DType) => string), fold?: (p: number, q: number) => number, bool = false): (cx: Cx) => void {
  return (cx) => {
    const x = cx.in(0);
    const y = cx.in(1);
    const outDtype: DType = bool ? 'bool' : x.dtype;
    if (fold && foldBinary(cx, x, y, fold, outDtype)) return;
    const op = typeof tfOp === 'string' ? tfOp : tfOp(x.dtype);
    const attrs: Record<string, AttrValue> = op === 'LogicalAnd' || op === 'LogicalOr' ? {} : { T: a.dt(x.dtype) };
    cx.outRef(0, cx.add(op, [cx.ref(x), cx.ref(y)], op === 'Equal' ? { ...attrs, incompatible_shape_error: a.b(true) } : attrs), outDtype, broadcastShapes(x.shape, y.shape));
  };
}

register('Add', binary('AddV2', (p, q) => p + q));
register('Sub', binary('Sub', (p, q) => p - q));
register('Mul', binary('Mul', (p, q) => p * q));
// ONNX integer Div truncates like C; TF FloorDiv would differ for negatives.
register('Div', binary((d) => (isInt(d) ? 'TruncateDiv' : 'RealDiv'), (p, q) => Math.trunc(p / q)));
register('Equal', binary('Equal', (p, q) => Number(p === q), true));
register('Less', binary('Less', (p, q) => Number(p < q), true));
register('Greater', binary('Greater', (p, q) => Number(p > q), true));
register('LessOrEqual', binary('LessEqual', (p, q) => Number(p <= q), true));
register('GreaterOrEqual', binary('GreaterEqual', (p, q) => Number(p >= q), true));
register('And', binary('LogicalAnd', undefined, true));
register('Or', binary('LogicalOr', undefined, true));
register('Xor', binary('NotEqual', undefined, true));

register('Pow', (cx) => {
  const x = cx.in(0);
  const y = cx.in(1);
  // TF Pow needs both operands of one dtype; ONNX allows a different exponent type.
  let yr = cx.ref(y);
  if (y.dtype !== x.dtype) yr = cx.add('Cast', [yr], { SrcT: a.dt(y.dtype), DstT: a.dt(x.dtype), Truncate: a.b(false) });
  cx.outRef(0, cx.add('Pow', [cx.ref(x), yr], { T: a.dt(x.dtype) }), x.dtype, broadcastShapes(x.shape, y.shape));
});

const UNARY: Record<string, string> = {
  Sqrt: 'Sqrt', Exp: 'Exp', Log: 'Log', Abs: 'Abs', Neg: 'Neg', Reciprocal: 'Reciprocal', Floor: 'Floor', Ceil: 'Ceil',
  Sign: 'Sign', Sin: 'Sin', Cos: 'Cos', Tan: 'Tan', Asin: 'Asin', Acos: 'Acos', Atan: 'Atan', Sinh: 'Sinh', Cosh: 'Cosh',
  Asinh: 'Asinh', Acosh: 'Acosh', Atanh: 'Atanh', Erf: 'Erf', Round: 'Round', IsNaN: 'IsNan',
  Relu: 'Relu', Sigmoid: 'Sigmoid', Tanh: 'Tanh', Softplus: 'Softplus', IsInf: 'IsInf',
};
for (const [onnx, tf] of Object.entries(UNARY)) {
  register(onnx, (cx) => {
    const x = cx.in(0);
    if (onnx === 'IsInf' && (cx.int('detect_negative', 1) === 0 || cx.int('detect_positive', 1) === 0)) return cx.unsupported('IsInf detecting one sign only');
    cx.outRef(0, cx.add(tf, [cx.ref(x)], { T: a.dt(x.dtype) }), onnx === 'IsNaN' || onnx === 'IsInf' ? 'bool' : x.dtype, x.shape);
  });
}

register('Not', (cx) => {
  const x = cx.in(0);
  cx.outRef(0, cx.add('LogicalNot', [cx.ref(x)]), 'bool', x.shape);
});

register(['Identity', 'Dropout'], (cx) => {
  const x = cx.in(0);
  // Pass the value through unchanged: folded constants stay foldable.
  cx.out(0, x);
  if (cx.node.output[1]) {
    // Dropout's mask in inference is all ones.
    // Built in the graph, not folded: the mask is as large as the input.
    const shape = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt('int32') });
    cx.outRef(1, cx.add('Fill', [shape, cx.constNode(numbersTensor('', 'bool', [], [1]))], { T: a.dt('bool'), index_type: a.dt('int32') }), 'bool', x.shape);
  }
});

register('Where', (cx) => {
  const c = cx.in(0);
  const x = cx.in(1);
  const y = cx.in(2);
  cx.outRef(0, cx.add('SelectV2', [cx.ref(c), cx.ref(x), cx.ref(y)], { T: a.dt(x.dtype) }), x.dtype, broadcastShapes(c.shape, broadcastShapes(x.shape, y.shape)));
});

const VARIADIC: Record<string, string> = { Max: 'Maximum', Min: 'Minimum', Sum: 'AddV2', Mean: 'AddV2' };
for (const [onnx, tf] of Object.entries(VARIADIC)) {
  register(onnx, (cx) => {
    const ins = cx.node.input.map((_, i) => cx.in(i));
    let acc = cx.ref(ins[0]!);
    let shape = ins[0]!.shape;
    const dtype = ins[0]!.dtype;
    for (const v of ins.slice(1)) {
      acc = cx.add(tf, [acc, cx.ref(v)], { T: a.dt(dtype) });
      shape = broadcastShapes(shape, v.shape);
    }
    if (onnx === 'Mean') acc = cx.add('RealDiv', [acc, cx.scalar(dtype, ins.length)], { T: a.dt(dtype) });
    else if (ins.length === 1) acc = cx.add('Identity', [acc], { T: a.dt(dtype) });
    cx.outRef(0, acc, dtype, shape);
  });
}

register('Mod', (cx) => {
  const x = cx.in(0);
  const y = cx.in(1);
  // fmod=1 keeps the dividend's sign (C fmod); fmod=0 the divisor's (Python %), which is FloorMod.
  const op = cx.int('fmod', 0) === 1 ? 'TruncateMod' : 'FloorMod';
  cx.outRef(0, cx.add(op, [cx.ref(x), cx.ref(y)], { T: a.dt(x.dtype) }), x.dtype, broadcastShapes(x.shape, y.shape));
});
