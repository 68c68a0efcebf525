/** ReduceMean/Sum/Max/Min/Prod/L2/SumSquare and ArgMax/ArgMin. ONNX keepdims defaults to 1, TF's to false. */
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { normAxis } from '../values.js';

const REDUCE: Record<string, { tf: string; axesInputFrom: number }> = {
  ReduceMean: { tf: 'Mean', axesInputFrom: 18 },
  ReduceSum: { tf: 'Sum', axesInputFrom: 13 },
  ReduceMax: { tf: 'Max', axesInputFrom: 18 },
  ReduceMin: { tf: 'Min', axesInputFrom: 18 },
  ReduceProd: { tf: 'Prod', axesInputFrom: 18 },
  ReduceL2: { tf: 'Sum', axesInputFrom: 18 },
  ReduceSumSquare: { tf: 'Sum', axesInputFrom: 18 },
  ReduceL1: { tf: 'Sum', axesInputFrom: 18 },
  ReduceLogSum: { tf: 'Sum', axesInputFrom: 18 },
  ReduceLogSumExp: { tf: 'Sum', axesInputFrom: 18 },
};

/** Axes only known at run time: TF reductions take them as a tensor; only the output rank is static. */
function runtimeAxes(cx: Cx, onnx: string, tf: string, axes: Val, keep: boolean): void {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  let src = cx.ref(x);
  if (onnx === 'ReduceL2' || onnx === 'ReduceSumSquare') src = cx.add('Square', [src], T);
  if (onnx === 'ReduceL1') src = cx.add('Abs', [src], T);
  if (onnx === 'ReduceLogSumExp') src = cx.add('Exp', [src], T);
  let y = cx.add(tf, [src, cx.ref(axes)], { ...T, Tidx: a.dt(axes.dtype), keep_dims: a.b(keep) });
  if (onnx === 'ReduceL2') y = cx.add('Sqrt', [y], T);
  if (onnx === 'ReduceLogSum' || onnx === 'ReduceLogSumExp') y = cx.add('Log', [y], T);
  cx.outRef(0, y, x.dtype, keep && x.shape ? x.shape.map(() => -1) : null);
}

for (const [onnx, spec] of Object.entries(REDUCE)) {
  register(onnx, (cx: Cx) => {
    const x = cx.in(0);
    const r = cx.rank(x);
    let axes: number[] | undefined;
    const keep = cx.int('keepdims', 1) === 1;
    const T = { T: a.dt(x.dtype) };
    if (cx.opset >= spec.axesInputFrom) {
      const v = cx.opt(1);
      if (v && !v.value && v.shape?.[0] !== 0) return runtimeAxes(cx, onnx, spec.tf, v, keep);
      axes = v?.value ? cx.constNums(v, `${onnx} axes`) : undefined;
    } else axes = cx.ints('axes');
    if (!axes || axes.length === 0) {
      if (cx.int('noop_with_empty_axes', 0) === 1) return cx.out(0, x);
      axes = [...Array(r).keys()];
    }
    axes = axes.map((v) => normAxis(v, r));
    let src = cx.ref(x);
    if (onnx === 'ReduceL2' || onnx === 'ReduceSumSquare') src = cx.add('Square', [src], T);
    if (onnx === 'ReduceL1') src = cx.add('Abs', [src], T);
    if (onnx === 'ReduceLogSumExp') src = cx.add('Exp', [src], T);
    let y = cx.add(spec.tf, [src, cx.i32(axes)], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(keep) });
    if (onnx === 'ReduceL2') y = cx.add('Sqrt', [y], T);
    if (onnx === 'ReduceLogSum' || onnx === 'ReduceLogSumExp') y = cx.add('Log', [y], T);
    const shape = keep ? x.shape!.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape!.filter((_, i) => !axes.includes(i));
    cx.outRef(0, y, x.dtype, shape);
  });
}

for (const [onnx, tf] of [['ArgMax', 'ArgMax'], ['ArgMin', 'ArgMin']] as const) {
  register(onnx, (cx) => {
    const x = cx.in(0);
    const r = cx.rank(x);
    if (cx.int('select_last_index', 0) === 1) return cx.unsupported(`${onnx} select_last_index=1 (TF returns the first index)`);
    const axis = normAxis(cx.int('axis', 0), r);
    let y = cx.add(tf, [cx.ref(x), cx.i32([axis], [])], { T: a.dt(x.dtype), Tidx: a.dt('int32'), output_type: a.dt('int64') });
    const keep = cx.int('keepdims', 1) === 1;
    if (keep) y = cx.add('ExpandDims', [y, cx.i32([axis], [])], { T: a.dt('int64'), Tdim: a.dt('int32') });
    const shape = keep ? x.shape!.map((d, i) => (i === axis ? 1 : d)) : x.shape!.filter((_, i) => i !== axis);
    cx.outRef(0, y, 'int64', shape);
  });
}
