/**
 * Shared helpers for engine op tests: run one op straight from the registry (no executor needed),
 * load corpus node tests, and check gradients against central finite differences.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NodeProto } from 'onnx-buf';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { initKernels, type Kernels } from '../../src/kernels/loader.js';
import { Attrs } from '../../src/engine/attrs.js';
import { getOp } from '../../src/engine/registry.js';
import type { FValue, OpContext, Value } from '../../src/engine/types.js';
import { toValue } from '../../src/engine/values.js';
import { rng } from '../kernels/helpers.js';

export const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

export interface NodeTest {
  node: NodeProto;
  opset: number;
  inputs: (Value | undefined)[];
  outputs: Value[];
}

/** A single-node corpus test (onnx/node/<name>): its node, opset and data set 0. Initializers count as inputs. */
export async function loadNodeTest(name: string): Promise<NodeTest> {
  const base = join(NODE_TESTS, name);
  const model = decodeOnnx(new Uint8Array(await readFile(join(base, 'model.onnx'))), { path: `${name}/model.onnx` });
  const g = model.proto.graph!;
  if (g.node.length !== 1) throw new Error(`${name}: ${g.node.length} nodes, expected one`);
  const opset = Number(model.proto.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 1);
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const ds = join(base, 'test_data_set_0');
  const load = async (f: string): Promise<Value> => toValue(tensorFromProtoSync(decodeTensorProto(new Uint8Array(await readFile(join(ds, f))), f)));
  const byName = new Map<string, Value>();
  let i = 0;
  for (const vi of g.input) {
    const init = inits.get(vi.name);
    byName.set(vi.name, init ? toValue(tensorFromProtoSync(init)) : await load(`input_${i++}.pb`));
  }
  const node = g.node[0]!;
  const inputs = node.input.map((n) => (n === '' ? undefined : byName.get(n)));
  const outputs: Value[] = [];
  for (let o = 0; o < g.output.length; o++) outputs.push(await load(`output_${o}.pb`));
  return { node, opset, inputs, outputs };
}

export function nodeTestExists(name: string): boolean {
  return existsSync(join(NODE_TESTS, name, 'model.onnx'));
}

let K: Kernels | undefined;
export async function testKernels(): Promise<Kernels> {
  K ??= await initKernels();
  return K;
}

/** An OpContext for `node`. */
export function opContext(node: NodeProto, opset: number, kernels: Kernels, training = false): OpContext {
  return { node, attrs: new Attrs(node), opset, kernels, training };
}

/** Runs one node through its registered handler (check first, like the engine does). */
export function runOp(node: NodeProto, opset: number, inputs: readonly (Value | undefined)[], kernels: Kernels, training = false) {
  const def = getOp(node.opType);
  if (!def) throw new Error(`no handler for ${node.opType}`);
  const ctx = opContext(node, opset, kernels, training);
  def.check?.({ node, attrs: ctx.attrs, opset });
  return { def, ctx, result: def.forward(ctx, inputs) };
}

/** Largest |a - b| / (atol + rtol·|b|) over the elements; ≤ 1 means within tolerance. NaNs must match. */
export function closeness(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-4, rtol = 1e-4): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (Number.isNaN(x) !== Number.isNaN(y)) return Infinity;
      continue;
    }
    if (x === y) continue;
    worst = Math.max(worst, Math.abs(x - y) / (atol + rtol * Math.abs(y)));
  }
  return worst;
}

/** Random float32 value with entries uniform in [lo, hi). */
export function randomValue(dims: number[], seed: number, lo = -1, hi = 1): FValue {
  const r = rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * r();
  return { dtype: 'float32', dims: [...dims], data };
}

export interface GradCheck {
  /** Worst closeness (see `closeness`) per checked input index. */
  worst: Map<number, number>;
}

/**
 * Checks `backward` of one node against central differences of L = Σ outputs[0]·R (R fixed random),
 * computed in float64 from float32 forward passes. Checks the float inputs listed in `wrt`.
 * Step `eps` is relative to 1; keep test inputs away from kinks (ReLU at 0, max ties).
 */
export function gradCheck(
  node: NodeProto, opset: number, inputs: (Value | undefined)[], kernels: Kernels,
  opts: { wrt: number[]; eps?: number; atol?: number; rtol?: number; seed?: number },
): GradCheck {
  const eps = opts.eps ?? 1e-2;
  const { def, ctx, result } = runOp(node, opset, inputs, kernels, true);
  if (!def.backward) throw new Error(`${node.opType} has no backward`);
  const out0 = result.outputs[0]!;
  const R = randomValue(out0.dims, opts.seed ?? 7);
  const lossOf = (ins: (Value | undefined)[]): number => {
    const o = def.forward(opContext(node, opset, kernels, false), ins).outputs[0]!.data as Float32Array;
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i]! * R.data[i]!;
    return s;
  };
  const grads = def.backward(ctx, inputs, result.outputs, [R, ...result.outputs.slice(1).map(() => undefined)], result.saved);
  const worst = new Map<number, number>();
  for (const idx of opts.wrt) {
    const x = inputs[idx] as FValue;
    const g = grads[idx];
    if (!g) throw new Error(`${node.opType}: no gradient for input ${idx}`);
    if (g.data.length !== x.data.length) throw new Error(`${node.opType}: gradient of input ${idx} has ${g.data.length} elements, input ${x.data.length}`);
    const num = new Float64Array(x.data.length);
    for (let i = 0; i < x.data.length; i++) {
      const keep = x.data[i]!;
      const copy = (v: number): (Value | undefined)[] => inputs.map((inp, j) => (j === idx ? { ...x, data: Float32Array.from(x.data, (e, k) => (k === i ? v : e)) } : inp));
      num[i] = (lossOf(copy(keep + eps)) - lossOf(copy(keep - eps))) / (2 * eps);
    }
    worst.set(idx, closeness(g.data, num, opts.atol ?? 1e-2, opts.rtol ?? 1e-2));
  }
  return { worst };
}
