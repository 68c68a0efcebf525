/**
 * Raising a model's ai.onnx opset to 11, for passes whose ops need it (DynamicQuantizeLinear).
 * Raising the number alone would change what some nodes mean, so it is done only when every op of
 * the model is known to keep its meaning (the ALLOWED set: schemas unchanged between opset 7 and 11,
 * or changed only by accepting more, e.g. negative axes) or has an adapter here that rewrites the node
 * into its opset-11 form (the attributes that became inputs: Slice-1 → Slice-10, Clip-6 → Clip-11,
 * Pad-2 → Pad-11). Anything else — or model-local functions, whose bodies follow the model's opset —
 * leaves the model untouched and says which ops stand in the way.
 */
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, type AttributeProto, type GraphProto, type ModelProto, type NodeProto } from 'onnx-buf';
import type { Diagnostic } from '../core/errors.js';
import { defaultOpset, uniqueNamer, walkNodes } from './graph.js';
import { isDefaultDomain } from './quantize/registry.js';

/** Ops whose opset-7..10 schema means the same under opset 11 (their later changes only accept more). */
const ALLOWED = new Set([
  'Abs', 'Add', 'And', 'ArgMax', 'ArgMin', 'AveragePool', 'BatchNormalization', 'Cast', 'Ceil', 'Concat', 'Constant',
  'ConstantOfShape', 'Conv', 'Div', 'Dropout', 'Elu', 'Equal', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather',
  'Gemm', 'GlobalAveragePool', 'GlobalMaxPool', 'Greater', 'HardSigmoid', 'Identity', 'InstanceNormalization',
  'LeakyRelu', 'Less', 'Log', 'LogSoftmax', 'LRN', 'MatMul', 'Max', 'MaxPool', 'Mean', 'Min', 'Mul', 'Neg', 'Not', 'Or',
  'Pow', 'PRelu', 'Reciprocal', 'ReduceL2', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum', 'Relu',
  'Reshape', 'Selu', 'Shape', 'Sigmoid', 'Sign', 'Softmax', 'Softplus', 'Softsign', 'Split', 'Sqrt', 'Squeeze', 'Sub',
  'Sum', 'Tanh', 'Tile', 'Transpose', 'Unsqueeze', 'Where', 'Xor',
]);

type Adapter = (n: NodeProto, g: GraphProto, name: (b: string) => string) => void;

/** Rewrites a node in place into its opset-11 form (preconditions checked by the caller). */
const ADAPTERS: Record<string, Adapter> = {
  Slice: (n, g, name) => {
    const starts = ints(n, 'starts');
    const ends = ints(n, 'ends');
    const axes = ints(n, 'axes');
    const base = n.name || n.output[0] || 'Slice';
    const inputs = [int64Const(g, name(`${base}_starts`), starts!), int64Const(g, name(`${base}_ends`), ends!)];
    if (axes) inputs.push(int64Const(g, name(`${base}_axes`), axes));
    n.input.push(...inputs);
    n.attribute = n.attribute.filter((a) => !['starts', 'ends', 'axes'].includes(a.name));
  },
  Clip: (n, g, name) => {
    // Clip-6 works on float tensors only in the models it came from; the limits become float32 scalars.
    const min = n.attribute.find((a) => a.name === 'min');
    const max = n.attribute.find((a) => a.name === 'max');
    const base = n.name || n.output[0] || 'Clip';
    n.input.push(min ? floatConst(g, name(`${base}_min`), min.f) : '');
    if (max) n.input.push(floatConst(g, name(`${base}_max`), max.f));
    while (n.input.length > 1 && n.input[n.input.length - 1] === '') n.input.pop();
    n.attribute = n.attribute.filter((a) => a.name !== 'min' && a.name !== 'max');
  },
  Pad: (n, g, name) => {
    const pads = ints(n, 'pads');
    const value = n.attribute.find((a) => a.name === 'value');
    const base = n.name || n.output[0] || 'Pad';
    n.input.push(int64Const(g, name(`${base}_pads`), pads!));
    if (value && value.f !== 0) n.input.push(floatConst(g, name(`${base}_value`), value.f));
    n.attribute = n.attribute.filter((a) => a.name !== 'pads' && a.name !== 'value');
  },
};

export interface UpgradeResult {
  upgraded: boolean;
  /** Ops (with counts) that stop the upgrade, when not upgraded. */
  blockers: string[];
  /** Adapted nodes per op type. */
  adapted: Record<string, number>;
}

/**
 * Raise ai.onnx to opset 11 in place when it is safe (see the module comment). Models already at 11
 * or above are left alone. Nothing is changed unless the whole model can be upgraded.
 */
export function upgradeToOpset11(proto: ModelProto, diagnostics: Diagnostic[]): UpgradeResult {
  const from = defaultOpset(proto) ?? 0;
  if (from >= 11) return { upgraded: false, blockers: [], adapted: {} };
  const blockers = new Map<string, number>();
  const count = (k: string) => blockers.set(k, (blockers.get(k) ?? 0) + 1);
  if (from < 7) count(`opset ${from} (older than 7)`);
  if (proto.functions.length) count('model-local functions');
  const todo: { n: NodeProto; g: GraphProto }[] = [];
  walkNodes(proto, (n, _label, frames) => {
    if (!isDefaultDomain(n.domain)) return;
    if (ADAPTERS[n.opType]) {
      if (n.opType === 'Slice' && (!ints(n, 'starts') || !ints(n, 'ends'))) count('Slice without starts/ends');
      else if (n.opType === 'Pad' && !ints(n, 'pads')) count('Pad without pads');
      else todo.push({ n, g: frames[0]!.graph });
    } else if (!ALLOWED.has(n.opType)) count(n.opType);
  });
  if (blockers.size) {
    return { upgraded: false, blockers: [...blockers].map(([k, v]) => `${k} ×${v}`), adapted: {} };
  }
  const name = uniqueNamer(proto);
  const adapted: Record<string, number> = {};
  for (const { n, g } of todo) {
    // The checks above are the adapters' preconditions, so an adapter cannot fail here.
    ADAPTERS[n.opType]!(n, g, name);
    adapted[n.opType] = (adapted[n.opType] ?? 0) + 1;
  }
  for (const o of proto.opsetImport) if (isDefaultDomain(o.domain)) o.version = 11n;
  // Opset 11 came with IR version 6; older IR numbers make runtimes doubt the opset.
  if (proto.irVersion < 6n) proto.irVersion = 6n;
  const what = Object.entries(adapted).map(([k, v]) => `${k} ×${v}`).join(', ');
  diagnostics.push({ level: 'info', code: 'opset.upgraded', message: `ai.onnx opset raised from ${from} to 11${what ? ` (adapted: ${what})` : ''}` });
  return { upgraded: true, blockers: [], adapted };
}

function ints(n: NodeProto, attr: string): bigint[] | undefined {
  const a: AttributeProto | undefined = n.attribute.find((x) => x.name === attr);
  return a ? [...a.ints] : undefined;
}

function int64Const(g: GraphProto, name: string, values: bigint[]): string {
  g.initializer.push(create(TensorProtoSchema, { name, dims: [BigInt(values.length)], dataType: 7, int64Data: values }));
  return name;
}

function floatConst(g: GraphProto, name: string, v: number): string {
  g.initializer.push(create(TensorProtoSchema, { name, dims: [], dataType: 1, floatData: [v] }));
  return name;
}
