/**
 * A student derived from the teacher: a narrower copy made by structured channel pruning
 * (prune-structured.ts) keeping a `width` fraction of the output channels of every Conv/Gemm/MatMul
 * whose channels can be followed (the logits layer keeps its outputs: nothing consumes them).
 * The kept weights start either as the teacher's (init 'keep': the student begins near a useful
 * function, so a small budget goes further) or freshly initialised like torch's default layers
 * (init 'reinit': U(−1/√fan_in, 1/√fan_in) for weights and biases; other parameters such as norms
 * are kept).
 */
import { clone } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import { float32TensorProto } from '../../formats/onnx/build.js';
import { tensorDType, tensorShape } from '../../formats/onnx/tensor.js';
import { seededRandom } from '../../train/shuffle.js';
import { pruneChannels, type PruneChannelsReport } from '../prune-structured.js';

export type StudentInit = 'keep' | 'reinit';

export interface DeriveStudentOptions {
  /** Fraction of output channels kept per prunable layer, in (0, 1]. */
  width: number;
  init?: StudentInit;
  /** Seed of the re-initialisation. */
  seed?: number;
  /** Layers left at full width (weight/node names, op types), as prune-structured takes them. */
  exclude?: { names?: string[]; opTypes?: string[] };
}

export interface DerivedStudent {
  model: ModelProto;
  init: StudentInit;
  channels: PruneChannelsReport;
  diagnostics: Diagnostic[];
}

/** Float parameters (initializer elements) of a model: the size measure of the ≤ 1/4 target. */
export function parameterCount(model: ModelProto): number {
  let n = 0;
  for (const t of model.graph?.initializer ?? []) {
    if (tensorDType(t) !== 'float32') continue;
    n += tensorShape(t).reduce((a, b) => a * b, 1);
  }
  return n;
}

/** Weight → fan-in and bias names of the layers a re-initialisation resets. */
function layersToReset(model: ModelProto): { weight: string; fanIn: number; bias?: string }[] {
  const g = model.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const consumers = new Map<string, NodeProto[]>();
  for (const n of g.node) for (const i of n.input) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const out: { weight: string; fanIn: number; bias?: string }[] = [];
  for (const n of g.node) {
    const w = inits.get(n.input[1] ?? '');
    if (!w) continue;
    const dims = tensorShape(w);
    let fanIn: number;
    let bias: string | undefined;
    if (n.opType === 'Conv') {
      fanIn = dims.slice(1).reduce((a, b) => a * b, 1);
      bias = n.input[2] || undefined;
    } else if (n.opType === 'Gemm') {
      const transB = n.attribute.find((a) => a.name === 'transB')?.i ?? 0n;
      fanIn = Number(transB) ? dims[1]! : dims[0]!;
      bias = n.input[2] || undefined;
    } else if (n.opType === 'MatMul' && dims.length === 2) {
      fanIn = dims[0]!;
      // the bias of an exported Linear is a separate Add of a 1-D initializer
      const add = (consumers.get(n.output[0]!) ?? []).find((c) => c.opType === 'Add');
      bias = add?.input.find((x) => x !== n.output[0] && inits.get(x) && tensorShape(inits.get(x)!).length === 1);
    } else continue;
    out.push(bias && inits.has(bias) ? { weight: w.name, fanIn, bias } : { weight: w.name, fanIn });
  }
  return out;
}

function reinitialise(model: ModelProto, seed: number): void {
  const g = model.graph!;
  const index = new Map(g.initializer.map((t, i) => [t.name, i]));
  const r = seededRandom(seed);
  const reset = (name: string, bound: number): void => {
    const i = index.get(name)!;
    const t: TensorProto = g.initializer[i]!;
    if (tensorDType(t) !== 'float32') return;
    const dims = tensorShape(t);
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let k = 0; k < data.length; k++) data[k] = (r() * 2 - 1) * bound;
    g.initializer[i] = float32TensorProto(name, dims, data);
  };
  for (const l of layersToReset(model)) {
    const bound = 1 / Math.sqrt(Math.max(1, l.fanIn));
    reset(l.weight, bound);
    if (l.bias) reset(l.bias, bound);
  }
}

export function deriveStudent(teacher: ModelProto, opts: DeriveStudentOptions): DerivedStudent {
  if (!(opts.width > 0 && opts.width <= 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `distill: width must be in (0, 1], got ${opts.width}`);
  const init = opts.init ?? 'keep';
  if (init !== 'keep' && init !== 'reinit') throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `distill: student init ${String(init)} (supported: keep, reinit)`);
  if (!teacher.graph) throw new ModelsmithError(ErrorCodes.MALFORMED, 'distill: the teacher model has no graph', { format: 'onnx' });
  const model = clone(ModelProtoSchema, teacher);
  const { report, diagnostics } = pruneChannels(model, { ratio: 1 - opts.width, ...(opts.exclude ? { exclude: opts.exclude } : {}) });
  if (init === 'reinit') reinitialise(model, opts.seed ?? 0);
  return { model, init, channels: report, diagnostics };
}
