/**
 * Control flow: If, Loop and Scan, whose bodies are ONNX subgraphs reading outer values by name.
 * - If with a known condition (common once shapes are folded) inlines the taken branch; otherwise
 *   StatelessIf over two library functions taking the values both branches capture.
 * - Loop becomes StatelessWhile: loop variables [i, M, cond, v…, scan accumulators…, captures…];
 *   a scan output is accumulated by concatenation on a new axis 0, which TF.js runs (it has no
 *   shape invariants to respect) and TF accepts through `output_shapes` with an unknown axis 0.
 * - Scan with a short static length is unrolled (one inline copy of the body per step), otherwise
 *   it is a StatelessWhile reading step t of each scan input with GatherV2.
 * A Loop with a small constant trip count whose condition stays constant-true is unrolled too.
 */
import type { GraphProto } from 'onnx-buf';
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import {
  addInitializers, Captures, finishFunction, funcAttr, functionName, graphAttr, graphOutputs, MAX_UNROLL, mergeShapes, runNodes, ScopeCx,
  shapesAttr, typesAttr, valueType, type FunctionArg,
} from '../subgraph.js';
import { a } from '../tf-attr.js';
import { normAxis, numbersTensor, tensorNumbers } from '../values.js';

function sameShape(x: number[] | null, y: number[] | null): boolean {
  return !!x && !!y && x.length === y.length && x.every((d, i) => d === y[i]);
}

// ---- If ----------------------------------------------------------------------------------------

register('If', (cx) => {
  const c = cx.in(0);
  const thenG = graphAttr(cx, 'then_branch');
  const elseG = graphAttr(cx, 'else_branch');
  if (c.value) {
    const cv = tensorNumbers(c.value);
    if (cv.length !== 1) cx.fail(ErrorCodes.MALFORMED, `the condition has ${cv.length} elements, not one`);
    const taken = cv[0] ? thenG : elseG;
    const s = new ScopeCx(cx);
    addInitializers(s, taken);
    runNodes(s, taken.node);
    const outs = graphOutputs(s, taken);
    if (outs.length !== cx.node.output.length) cx.fail(ErrorCodes.MALFORMED, `branch '${taken.name}' has ${outs.length} outputs, the node ${cx.node.output.length}`);
    outs.forEach((v, k) => cx.out(k, v));
    return;
  }
  const caps = new Captures();
  const branches = [thenG, elseG].map((g) => {
    const s = new ScopeCx(cx, caps);
    addInitializers(s, g);
    runNodes(s, g.node);
    const outs = graphOutputs(s, g);
    if (outs.length !== cx.node.output.length) cx.fail(ErrorCodes.MALFORMED, `branch '${g.name}' has ${outs.length} outputs, the node ${cx.node.output.length}`);
    return { s, outs };
  });
  const [t, e] = branches as [typeof branches[0], typeof branches[0]];
  const outs = t.outs.map((v, k) => {
    const w = e.outs[k]!;
    if (v.dtype !== w.dtype) cx.fail(ErrorCodes.MALFORMED, `output ${k} is ${v.dtype} in one branch and ${w.dtype} in the other`);
    if (v.emptySequence || w.emptySequence) cx.unsupported(`output ${k} is an empty sequence of unknown element shape in one branch`);
    if (!!v.sequence !== !!w.sequence) cx.fail(ErrorCodes.MALFORMED, `output ${k} is a sequence in one branch only`);
    return { dtype: v.dtype, shape: mergeShapes(v.shape, w.shape), sequence: !!v.sequence };
  });
  const base = cx.node.name || cx.node.output[0] || 'if';
  let cond = cx.ref(c);
  // StatelessIf reads a non-scalar condition as "non-empty": ONNX's one-element [1] must become a scalar.
  if (!c.shape || c.shape.length !== 0) cond = cx.add('Reshape', [cond, cx.i32([], [0])], { T: a.dt(c.dtype), Tshape: a.dt('int32') });
  if (c.dtype !== 'bool') cond = cx.add('Cast', [cond], { SrcT: a.dt(c.dtype), DstT: a.dt('bool'), Truncate: a.b(false) });
  // TF.js cannot load a function without arguments: branches that capture nothing take the condition.
  if (caps.list.length === 0) caps.get(cond, 'bool');
  const mk = (b: typeof t, name: string): string => {
    const rets = b.outs.map((v) => ({ ref: b.s.ref(v), dtype: v.dtype }));
    return finishFunction(b.s, name, [], rets).signature!.name;
  };
  const thenName = mk(t, functionName(cx, `${base}_then`));
  const elseName = mk(e, functionName(cx, `${base}_else`));
  const tin = caps.list.map((x) => x.dtype);
  const y = cx.add('StatelessIf', [cond, ...caps.list.map((x) => x.outer)], {
    Tcond: a.dt('bool'), Tin: typesAttr(tin), Tout: typesAttr(outs.map((o) => o.dtype)),
    then_branch: funcAttr(thenName), else_branch: funcAttr(elseName), output_shapes: shapesAttr(outs.map((o) => o.shape)),
  });
  outs.forEach((o, k) => cx.out(k, { ref: `${y}:${k}`, dtype: o.dtype, shape: o.shape, ...(o.sequence ? { sequence: true } : {}) }));
});

// ---- Loop --------------------------------------------------------------------------------------

const INT32_MAX = 2 ** 31 - 1;

interface LoopVar { dtype: DType; shape: number[] | null; sequence: boolean }

/** Body input/output count checks shared by Loop and Scan. */
function checkBody(cx: Cx, g: GraphProto, inputs: number, outputsAtLeast: number): void {
  if (g.input.length !== inputs) cx.fail(ErrorCodes.MALFORMED, `body '${g.name}' has ${g.input.length} inputs, expected ${inputs}`);
  if (g.output.length < outputsAtLeast) cx.fail(ErrorCodes.MALFORMED, `body '${g.name}' has ${g.output.length} outputs, expected at least ${outputsAtLeast}`);
}

/**
 * Unrolls a Loop whose trip count is a small constant and whose condition is known true on every
 * iteration; false (nothing emitted that anything reads) when it cannot.
 */
function tryUnrollLoop(cx: Cx, g: GraphProto, M: Val | undefined, C: Val | undefined, init: Val[], nScan: number): boolean {
  if (!M?.value) return false;
  const mv = tensorNumbers(M.value);
  if (mv.length !== 1) cx.fail(ErrorCodes.MALFORMED, `the trip count has ${mv.length} elements, not one`);
  const trips = Math.max(0, mv[0]!);
  // Zero trips leave scan outputs without an element shape: the While form infers it from the body.
  if (trips > MAX_UNROLL || (trips === 0 && nScan > 0)) return false;
  if (C && (!C.value || !tensorNumbers(C.value)[0])) return false;
  if (init.some((v) => v.sequence || v.emptySequence)) return false;
  let state = init;
  const scans: Val[][] = Array.from({ length: nScan }, () => []);
  const iterDtype = valueType(g.input[0]!, cx.opts.path)?.dtype ?? 'int64';
  for (let it = 0; it < trips; it++) {
    const s = new ScopeCx(cx);
    addInitializers(s, g);
    s.vals.set(g.input[0]!.name, { dtype: iterDtype, shape: [], value: numbersTensor('', iterDtype, [], [it]) });
    s.vals.set(g.input[1]!.name, { dtype: 'bool', shape: [], value: numbersTensor('', 'bool', [], [1]) });
    state.forEach((v, k) => s.vals.set(g.input[2 + k]!.name, v));
    runNodes(s, g.node);
    const outs = graphOutputs(s, g);
    const co = outs[0]!;
    // An early exit decided at run time cannot be unrolled: the While form handles it.
    if (!co.value || !tensorNumbers(co.value)[0]) return false;
    state = outs.slice(1, 1 + init.length);
    outs.slice(1 + init.length).forEach((v, k) => scans[k]!.push(v));
  }
  state.forEach((v, k) => cx.out(k, v));
  scans.forEach((vs, k) => {
    const shape = vs[0]!.shape;
    if (!vs.every((v) => sameShape(v.shape, shape))) return cx.unsupported(`Loop scan output ${k} with elements of different shapes`);
    const y = cx.add('Pack', vs.map((v) => cx.ref(v)), { T: a.dt(vs[0]!.dtype), N: a.i(vs.length), axis: a.i(0) });
    cx.out(init.length + k, { ref: y, dtype: vs[0]!.dtype, shape: [vs.length, ...shape!] });
  });
  return true;
}

register('Loop', (cx) => {
  const g = graphAttr(cx, 'body');
  const M = cx.opt(0);
  const C = cx.opt(1);
  const init = cx.node.input.slice(2).map((_, k) => cx.in(2 + k));
  const nState = init.length;
  checkBody(cx, g, 2 + nState, 1 + nState);
  const nScan = g.output.length - 1 - nState;
  if (cx.node.output.length > nState + nScan) cx.fail(ErrorCodes.MALFORMED, `${cx.node.output.length} outputs for ${nState} loop variables and ${nScan} scan outputs`);
  if (tryUnrollLoop(cx, g, M, C, init, nScan)) return;

  const iterDtype = valueType(g.input[0]!, cx.opts.path)?.dtype ?? 'int64';
  // Loop variables start with the initial value's shape; a dim the body changes is relaxed and the
  // body converted again, so that nothing inside folds a dim that varies between iterations.
  let vars: LoopVar[] = init.map((v) => ({ dtype: v.dtype, shape: v.emptySequence ? null : v.shape, sequence: !!v.sequence }));
  let built: ReturnType<typeof buildBody> | undefined;
  for (let attempt = 0; attempt < 4 && !built; attempt++) {
    const mark = cx.functions.length;
    const b = buildBody(cx, g, iterDtype, vars, nScan);
    const next = vars.map((v, k) => ({ ...v, shape: v.shape && b.outs[k]!.shape ? mergeShapes(v.shape, b.outs[k]!.shape) : null }));
    if (next.every((v, k) => (v.shape === null && vars[k]!.shape === null) || sameShape(v.shape, vars[k]!.shape))) built = b;
    else {
      // A discarded attempt's nested functions go too (their names are free again).
      cx.functions.splice(mark);
      vars = next;
    }
  }
  if (!built) return cx.unsupported('Loop whose variables keep changing shape');
  const { s, caps, outs, scanShapes, argNames, rets } = built;

  // Initial values, in the enclosing scope.
  const m = M ? cx.ref(M) : cx.constNode(numbersTensor('', 'int64', [], [INT32_MAX]));
  const mDtype = M?.dtype ?? 'int64';
  let c0 = C ? cx.ref(C) : cx.constNode(numbersTensor('', 'bool', [], [1]));
  if (C && (!C.shape || C.shape.length !== 0)) c0 = cx.add('Reshape', [c0, cx.i32([], [0])], { T: a.dt('bool'), Tshape: a.dt('int32') });
  let m0 = m;
  if (M && (!M.shape || M.shape.length !== 0)) m0 = cx.add('Reshape', [m, cx.i32([], [0])], { T: a.dt(mDtype), Tshape: a.dt('int32') });
  const i0 = cx.constNode(numbersTensor('', iterDtype, [], [0]));
  const v0 = init.map((v, k) => {
    if (!v.emptySequence) return cx.ref(v);
    // An empty stack; when the element shape is not static, SequenceInsert in the body reshapes it.
    const sh = outs[k]!.shape;
    const dims = sh && sh.slice(1).every((d) => d >= 0) ? [0, ...sh.slice(1)] : [0];
    return cx.add('Fill', [cx.i32(dims), cx.scalar(v.dtype, 0)], { T: a.dt(v.dtype), index_type: a.dt('int32') });
  });
  const acc0 = scanShapes.map((sh, k) => emptyAcc(cx, `Loop scan output ${k}`, sh, outs[nState + k]!.dtype));

  const argDtypes: DType[] = [iterDtype, mDtype, 'bool', ...vars.map((v) => v.dtype), ...scanShapes.map((_, k) => outs[nState + k]!.dtype)];
  const args: FunctionArg[] = argDtypes.map((dtype, k) => ({ name: argNames[k]!, dtype }));
  const base = cx.node.name || cx.node.output[0] || 'loop';
  const bodyName = functionName(cx, `${base}_body`);
  // Captured values are loop variables too, passed through unchanged.
  const body = finishFunction(s, bodyName, args, [...rets.map((ref, k) => ({ ref, dtype: argDtypes[k]! })), ...caps.list.map((x) => ({ ref: x.arg, dtype: x.dtype }))]);
  const condName = condFunction(cx, caps, argDtypes, true, base);

  const allDtypes = [...argDtypes, ...caps.list.map((x) => x.dtype)];
  const shapes: Array<number[] | null> = [[], [], [], ...vars.map((v) => v.shape), ...scanShapes.map((sh) => [-1, ...sh!]), ...caps.list.map(() => null)];
  const w = cx.add('StatelessWhile', [i0, m0, c0, ...v0, ...acc0, ...caps.list.map((x) => x.outer)], {
    T: typesAttr(allDtypes), cond: funcAttr(condName), body: funcAttr(body.signature!.name), output_shapes: shapesAttr(shapes), parallel_iterations: a.i(10),
  });
  vars.forEach((v, k) => cx.out(k, { ref: `${w}:${3 + k}`, dtype: v.dtype, shape: v.shape, ...(v.sequence ? { sequence: true } : {}) }));
  scanShapes.forEach((sh, k) => cx.out(nState + k, { ref: `${w}:${3 + nState + k}`, dtype: outs[nState + k]!.dtype, shape: [-1, ...sh!] }));
});

/**
 * The While condition over the body's arguments (captures included): args[0] < args[1], and
 * args[2] (the ONNX condition) when `withFlag`. Returns the function's name.
 */
function condFunction(cx: Cx, caps: Captures, argDtypes: DType[], withFlag: boolean, base: string): string {
  const cs = new ScopeCx(cx, caps);
  const args = argDtypes.map((dtype, k) => ({ name: caps.argName(`arg_${k}`), dtype }));
  const [iDt, mDt] = [argDtypes[0]!, argDtypes[1]!];
  const m = iDt === mDt ? args[1]!.name : cs.add('Cast', [args[1]!.name], { SrcT: a.dt(mDt), DstT: a.dt(iDt), Truncate: a.b(false) });
  let c = cs.add('Less', [args[0]!.name, m], { T: a.dt(iDt) });
  if (withFlag) c = cs.add('LogicalAnd', [c, args[2]!.name]);
  const name = functionName(cx, `${base}_cond`);
  finishFunction(cs, name, args, [{ ref: c, dtype: 'bool' }]);
  return name;
}

/** Body outputs with dims inference lost (a run-time slice) taken from the body's declared output types. */
function declaredOutputs(cx: Cx, s: Cx, g: GraphProto): Val[] {
  return graphOutputs(s, g).map((v, k) => {
    const declared = valueType(g.output[k]!, cx.opts.path)?.shape;
    if (!declared || !v.shape || declared.length !== v.shape.length || v.sequence) return v;
    return { ...v, shape: v.shape.map((d, i) => (d < 0 ? declared[i]! : d)) };
  });
}

/** Appends a scan output element to its accumulator (stacked on axis 0); returns the element's shape. */
function accumulate(s: Cx, acc: string, v: Val, k: number, rets: string[]): number[] | null {
  if (v.sequence || v.emptySequence) s.unsupported(`scan output ${k} is not a tensor`);
  const e = s.add('ExpandDims', [s.ref(v), s.i32([0], [])], { T: a.dt(v.dtype), Tdim: a.dt('int32') });
  rets.push(s.add('ConcatV2', [acc, e, s.i32([0], [])], { T: a.dt(v.dtype), N: a.i(2), Tidx: a.dt('int32') }));
  return v.shape;
}

/** An empty accumulator [0, …shape] for a scan output (its element shape must be static). */
function emptyAcc(cx: Cx, what: string, shape: number[] | null, dtype: DType): string {
  if (!shape || shape.some((d) => d < 0)) return cx.unsupported(`${what} needs a static element shape (got [${shape?.join(',') ?? '?'}])`);
  return cx.add('Fill', [cx.i32([0, ...shape]), cx.scalar(dtype, 0)], { T: a.dt(dtype), index_type: a.dt('int32') });
}

/**
 * The While body: converts the ONNX body once in a function scope and lists what it returns, in the
 * loop-variable order [i + 1, M, cond_out, v_out…, acc ++ scan_out…] (the captures, which the caller
 * appends, pass through unchanged).
 */
function buildBody(cx: Cx, g: GraphProto, iterDtype: DType, vars: LoopVar[], nScan: number) {
  const caps = new Captures();
  const s = new ScopeCx(cx, caps);
  const nState = vars.length;
  const argNames = Array.from({ length: 3 + nState + nScan }, (_, k) => caps.argName(`arg_${k}`));
  addInitializers(s, g);
  s.vals.set(g.input[0]!.name, { dtype: iterDtype, shape: [], ref: argNames[0]! });
  s.vals.set(g.input[1]!.name, { dtype: 'bool', shape: [], ref: argNames[2]! });
  vars.forEach((v, k) => s.vals.set(g.input[2 + k]!.name, { dtype: v.dtype, shape: v.shape, ref: argNames[3 + k]!, ...(v.sequence ? { sequence: true } : {}) }));
  runNodes(s, g.node);
  const all = declaredOutputs(cx, s, g);
  const outs = all.slice(1);
  const condOut = all[0]!;
  const rets: string[] = [];
  rets.push(s.add('AddV2', [argNames[0]!, s.constNode(numbersTensor('', iterDtype, [], [1]))], { T: a.dt(iterDtype) }));
  rets.push(argNames[1]!);
  let co = s.ref(condOut);
  if (!condOut.shape || condOut.shape.length !== 0) co = s.add('Reshape', [co, s.i32([], [0])], { T: a.dt('bool'), Tshape: a.dt('int32') });
  rets.push(co);
  outs.slice(0, nState).forEach((v, k) => {
    if (v.emptySequence) s.unsupported(`Loop variable ${k} becomes an empty sequence of unknown element shape`);
    if (v.dtype !== vars[k]!.dtype || !!v.sequence !== vars[k]!.sequence) s.fail(ErrorCodes.MALFORMED, `Loop variable ${k} changes type in the body`);
    rets.push(s.ref(v));
  });
  const scanShapes = outs.slice(nState).map((v, k) => accumulate(s, argNames[3 + nState + k]!, v, k, rets));
  return { s, caps, outs, scanShapes, argNames, rets };
}

// ---- Scan --------------------------------------------------------------------------------------

register('Scan', (cx) => {
  if (cx.opset < 9) cx.unsupported('Scan before opset 9 (batch axis and sequence_lens)');
  const g = graphAttr(cx, 'body');
  const nIn = cx.int('num_scan_inputs', -1);
  const ins = cx.node.input.map((_, k) => cx.in(k));
  if (nIn < 1 || nIn > ins.length) cx.fail(ErrorCodes.MALFORMED, `num_scan_inputs ${nIn} for ${ins.length} inputs`);
  const nState = ins.length - nIn;
  checkBody(cx, g, ins.length, nState);
  const nOut = g.output.length - nState;
  const xs = ins.slice(nState);
  const inAxesRaw = cx.ints('scan_input_axes') ?? xs.map(() => 0);
  const inDirs = cx.ints('scan_input_directions') ?? xs.map(() => 0);
  const outDirs = cx.ints('scan_output_directions') ?? Array.from({ length: nOut }, () => 0);
  const outAxesRaw = cx.ints('scan_output_axes') ?? Array.from({ length: nOut }, () => 0);
  if (inAxesRaw.length !== nIn || inDirs.length !== nIn) cx.fail(ErrorCodes.MALFORMED, `scan_input_axes/directions have ${inAxesRaw.length}/${inDirs.length} entries for ${nIn} scan inputs`);
  if (outAxesRaw.length !== nOut || outDirs.length !== nOut) cx.fail(ErrorCodes.MALFORMED, `scan_output_axes/directions have ${outAxesRaw.length}/${outDirs.length} entries for ${nOut} scan outputs`);
  const inAxes = inAxesRaw.map((ax, j) => {
    const r = cx.rank(xs[j]!);
    const n = normAxis(ax, r);
    if (n < 0 || n >= r) cx.fail(ErrorCodes.MALFORMED, `scan input axis ${ax} out of range for rank ${r}`);
    return n;
  });
  const lens = xs.map((x, j) => x.shape![inAxes[j]!]!);
  const L = lens[0]!;
  if (lens.some((l) => l >= 0 && L >= 0 && l !== L)) return cx.fail(ErrorCodes.MALFORMED, `scan inputs of different lengths ${lens.join(', ')}`);
  const dirs = { inAxes, inDirs, outAxes: outAxesRaw, outDirs };
  if (L < 0 || L === 0 || L > MAX_UNROLL) return scanWhile(cx, g, ins.slice(0, nState), xs, nOut, dirs);
  let state = ins.slice(0, nState);
  const outs: Val[][] = Array.from({ length: nOut }, () => []);
  for (let t = 0; t < L; t++) {
    const s = new ScopeCx(cx);
    addInitializers(s, g);
    state.forEach((v, k) => s.vals.set(g.input[k]!.name, v));
    xs.forEach((x, j) => {
      const pos = inDirs[j] === 1 ? L - 1 - t : t;
      const shape = x.shape!.filter((_, i) => i !== inAxes[j]);
      const y = cx.add('GatherV2', [cx.ref(x), cx.constNode(numbersTensor('', 'int32', [], [pos])), cx.i32([inAxes[j]!], [])], { Tparams: a.dt(x.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32'), batch_dims: a.i(0) });
      s.vals.set(g.input[nState + j]!.name, { ref: y, dtype: x.dtype, shape });
    });
    runNodes(s, g.node);
    const r = graphOutputs(s, g);
    state = r.slice(0, nState);
    r.slice(nState).forEach((v, k) => outs[k]!.push(v));
  }
  state.forEach((v, k) => cx.out(k, v));
  outs.forEach((vs, k) => {
    const shape = vs[0]!.shape;
    if (!shape || !vs.every((v) => sameShape(v.shape, shape))) return cx.unsupported(`Scan output ${k} with elements of different or unknown shapes`);
    const ordered = outDirs[k] === 1 ? [...vs].reverse() : vs;
    const axis = normAxis(outAxesRaw[k]!, shape.length + 1);
    if (axis < 0 || axis > shape.length) return cx.fail(ErrorCodes.MALFORMED, `scan output axis ${outAxesRaw[k]} out of range for rank ${shape.length + 1}`);
    const y = cx.add('Pack', ordered.map((v) => cx.ref(v)), { T: a.dt(vs[0]!.dtype), N: a.i(L), axis: a.i(axis) });
    const out = [...shape];
    out.splice(axis, 0, L);
    cx.out(nState + k, { ref: y, dtype: vs[0]!.dtype, shape: out });
  });
});

interface ScanAxes { inAxes: number[]; inDirs: number[]; outAxes: number[]; outDirs: number[] }

/**
 * Scan over a length known only at run time (or too long to unroll) as StatelessWhile over
 * [t, L, states…, accumulators…, captures…]: step t reads element t (or L − 1 − t) of each scan input.
 */
function scanWhile(cx: Cx, g: GraphProto, init: Val[], xs: Val[], nOut: number, ax: ScanAxes): void {
  const nState = init.length;
  for (const v of init) if (v.sequence || v.emptySequence) cx.unsupported('Scan state that is not a tensor');
  let vars: LoopVar[] = init.map((v) => ({ dtype: v.dtype, shape: v.shape, sequence: false }));
  let built: ReturnType<typeof buildScanBody> | undefined;
  for (let attempt = 0; attempt < 4 && !built; attempt++) {
    const mark = cx.functions.length;
    const b = buildScanBody(cx, g, vars, xs, nOut, ax);
    const next = vars.map((v, k) => ({ ...v, shape: v.shape && b.outs[k]!.shape ? mergeShapes(v.shape, b.outs[k]!.shape) : null }));
    if (next.every((v, k) => (v.shape === null && vars[k]!.shape === null) || sameShape(v.shape, vars[k]!.shape))) built = b;
    else {
      // A discarded attempt's nested functions go too (their names are free again).
      cx.functions.splice(mark);
      vars = next;
    }
  }
  if (!built) return cx.unsupported('Scan whose state keeps changing shape');
  const { s, caps, outs, argNames, rets } = built;
  const x0 = xs[0]!;
  const a0 = ax.inAxes[0]!;
  const len = x0.shape![a0]!;
  const L = len >= 0 ? cx.i32([len], []) : cx.add('StridedSlice', [cx.add('Shape', [cx.ref(x0)], { T: a.dt(x0.dtype), out_type: a.dt('int32') }), cx.i32([a0]), cx.i32([a0 + 1]), cx.i32([1])], {
    T: a.dt('int32'), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
  });
  const scanOuts = outs.slice(nState);
  const acc0 = scanOuts.map((v, k) => emptyAcc(cx, `Scan output ${k}`, v.shape, v.dtype));
  const argDtypes: DType[] = ['int32', 'int32', ...vars.map((v) => v.dtype), ...scanOuts.map((v) => v.dtype)];
  const base = cx.node.name || cx.node.output[0] || 'scan';
  const body = finishFunction(s, functionName(cx, `${base}_body`), argDtypes.map((dtype, k) => ({ name: argNames[k]!, dtype })),
    [...rets.map((ref, k) => ({ ref, dtype: argDtypes[k]! })), ...caps.list.map((x) => ({ ref: x.arg, dtype: x.dtype }))]);
  const condName = condFunction(cx, caps, argDtypes, false, base);
  const allDtypes = [...argDtypes, ...caps.list.map((x) => x.dtype)];
  const shapes: Array<number[] | null> = [[], [], ...vars.map((v) => v.shape), ...scanOuts.map((v) => [-1, ...v.shape!]), ...caps.list.map(() => null)];
  const w = cx.add('StatelessWhile', [cx.i32([0], []), L, ...init.map((v) => cx.ref(v)), ...acc0, ...caps.list.map((x) => x.outer)], {
    T: typesAttr(allDtypes), cond: funcAttr(condName), body: funcAttr(body.signature!.name), output_shapes: shapesAttr(shapes), parallel_iterations: a.i(10),
  });
  vars.forEach((v, k) => cx.out(k, { ref: `${w}:${2 + k}`, dtype: v.dtype, shape: v.shape }));
  scanOuts.forEach((v, k) => {
    const T = { T: a.dt(v.dtype) };
    let y = `${w}:${2 + nState + k}`;
    if (ax.outDirs[k] === 1) y = cx.add('ReverseV2', [y, cx.i32([0])], { ...T, Tidx: a.dt('int32') });
    const r = v.shape!.length + 1;
    const axis = normAxis(ax.outAxes[k]!, r);
    if (axis < 0 || axis >= r) return cx.fail(ErrorCodes.MALFORMED, `scan output axis ${ax.outAxes[k]} out of range for rank ${r}`);
    const shape = [...v.shape!];
    shape.splice(axis, 0, len);
    if (axis !== 0) {
      const perm = [...Array(r).keys()].slice(1);
      perm.splice(axis, 0, 0);
      y = cx.add('Transpose', [y, cx.i32(perm)], { ...T, Tperm: a.dt('int32') });
    }
    cx.out(nState + k, { ref: y, dtype: v.dtype, shape });
  });
}

function buildScanBody(cx: Cx, g: GraphProto, vars: LoopVar[], xs: Val[], nOut: number, ax: ScanAxes) {
  const caps = new Captures();
  const s = new ScopeCx(cx, caps);
  const nState = vars.length;
  const argNames = Array.from({ length: 2 + nState + nOut }, (_, k) => caps.argName(`arg_${k}`));
  const [t, L] = [argNames[0]!, argNames[1]!];
  const T32 = { T: a.dt('int32') };
  addInitializers(s, g);
  vars.forEach((v, k) => s.vals.set(g.input[k]!.name, { dtype: v.dtype, shape: v.shape, ref: argNames[2 + k]! }));
  xs.forEach((x, j) => {
    const axis = ax.inAxes[j]!;
    const pos = ax.inDirs[j] === 1 ? s.add('Sub', [s.add('Sub', [L, t], T32), s.scalar('int32', 1)], T32) : t;
    const y = s.add('GatherV2', [s.captures!.get(cx.ref(x), x.dtype), pos, s.i32([axis], [])], { Tparams: a.dt(x.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32'), batch_dims: a.i(0) });
    s.vals.set(g.input[nState + j]!.name, { ref: y, dtype: x.dtype, shape: x.shape!.filter((_, i) => i !== axis) });
  });
  runNodes(s, g.node);
  const outs = declaredOutputs(cx, s, g);
  const rets: string[] = [s.add('AddV2', [t, s.scalar('int32', 1)], T32), L];
  outs.slice(0, nState).forEach((v, k) => {
    if (v.dtype !== vars[k]!.dtype || v.sequence) s.fail(ErrorCodes.MALFORMED, `Scan state ${k} changes type in the body`);
    rets.push(s.ref(v));
  });
  outs.slice(nState).forEach((v, k) => accumulate(s, argNames[2 + nState + k]!, v, k, rets));
  return { s, caps, outs, argNames, rets };
}
