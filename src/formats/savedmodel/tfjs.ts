/**
 * TF.js as the reference executor for TF graphs (a test oracle and a check for converters, never a
 * product dependency). `@tensorflow/tfjs` is imported lazily, under a module name held in a variable,
 * so the platform-neutral library neither bundles nor loads it unless a graph is actually run.
 * The CPU backend is selected: it computes in float32 like TF on CPU, where WebGL would use
 * float16 textures on some devices.
 */
import type { DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, isModelsmithError } from '../../core/errors.js';
import type { Tensor } from '../../core/tensor.js';
import type { GraphDef, NodeDef } from './gen/tensorflow/graph_pb.js';
import { buildArtifacts, declaredDtype, placeholderDims, tensorRef, type TfjsArtifacts } from './freeze/tfjs-artifacts.js';
import { TFJS_FORMAT, fromTfjsValues, tfjsDtypeOf, toTfjsValues, type TfjsDtype } from './freeze/tfjs-values.js';
import { dtypeFromTf } from './tf-types.js';

/** The part of TF.js used here. */
interface TfTensor {
  readonly dtype: string;
  readonly shape: number[];
  data(): Promise<Float32Array | Int32Array | Uint8Array | string[]>;
  bytes(): Promise<Uint8Array | Uint8Array[]>;
  dispose(): void;
}
interface TfGraphModel {
  executeAsync(inputs: Record<string, TfTensor>, outputs: string[]): Promise<TfTensor | TfTensor[]>;
  dispose(): void;
}
interface TfModule {
  tensor(values: Float32Array | Int32Array | Uint8Array | Uint8Array[], shape: number[], dtype: string): TfTensor;
  loadGraphModel(handler: unknown): Promise<TfGraphModel>;
  io: { fromMemory(artifacts: Record<string, unknown>): unknown };
  getBackend(): string | undefined;
  setBackend(name: string): Promise<boolean>;
  enableProdMode(): void;
}

const TFJS_MODULE = '@tensorflow/tfjs';
const loaded = new Map<string, Promise<TfModule>>();

/**
 * Loads TF.js once, on its CPU backend; E_UNSUPPORTED with the install command when it is missing.
 * `moduleName` exists for tests of that failure.
 */
export function loadTfjs(moduleName: string = TFJS_MODULE): Promise<TfModule> {
  let p = loaded.get(moduleName);
  if (p) return p;
  p = (async () => {
    let mod: TfModule | undefined;
    try {
      const m = (await import(/* @vite-ignore */ moduleName)) as Partial<TfModule> & { default?: Partial<TfModule> };
      mod = (m.loadGraphModel ? m : m.default) as TfModule | undefined;
      if (!mod?.loadGraphModel || !mod.io?.fromMemory) throw new Error('module has no loadGraphModel');
    } catch (e) {
      loaded.delete(moduleName);
      throw new ModelsmithError(
        ErrorCodes.UNSUPPORTED,
        `running TF graphs needs @tensorflow/tfjs, which could not be loaded (${String((e as Error)?.message ?? e).split('\n')[0]}); install it with: npm install @tensorflow/tfjs`,
        { format: TFJS_FORMAT, cause: e },
      );
    }
    // Prod mode silences TF.js's console advice to install tfjs-node; it changes no results.
    mod.enableProdMode();
    if (mod.getBackend() !== 'cpu') await mod.setBackend('cpu');
    return mod;
  })();
  loaded.set(moduleName, p);
  return p;
}

export interface RunGraphOptions {
  /** Name for messages. */
  path?: string;
  /** Module to import instead of `@tensorflow/tfjs` (tests of the missing-module error). */
  tfjsModule?: string;
  /**
   * dtype of each fetch as the caller knows it (e.g. from a signature), used to widen TF.js's
   * int32/float32 results back to int64/float64. Defaults to what the producing node's attrs say.
   */
  fetchDtypes?: Array<DType | undefined>;
  /** Cap on the Const bytes handed to TF.js (default 2 GiB); beyond it E_LIMIT. */
  maxWeightBytes?: number;
}

function where(o: RunGraphOptions, extra: { op?: string; tensor?: string } = {}) {
  return { format: TFJS_FORMAT, ...(o.path !== undefined ? { path: o.path } : {}), ...extra };
}

/** Checks a feed against its Placeholder's dtype and shape, with our error codes instead of TF.js asserts. */
function checkFeed(key: string, t: Tensor, n: NodeDef | undefined, graph: GraphDef, o: RunGraphOptions): void {
  if (!n || (n.op !== 'Placeholder' && n.op !== 'PlaceholderWithDefault')) return;
  const d = n.attr['dtype']?.value;
  const want = d?.case === 'type' ? dtypeFromTf(d.value) : undefined;
  if (want && tfjsDtypeOf(want) !== tfjsDtypeOf(t.dtype)) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `feed '${key}' is ${t.dtype}, placeholder '${n.name}' takes ${want}`, where(o, { op: n.name }));
  }
  const dims = placeholderDims(n, graph);
  if (dims && (dims.length !== t.shape.length || dims.some((x, i) => x !== -1 && x !== t.shape[i]))) {
    throw new ModelsmithError(ErrorCodes.USAGE, `feed '${key}' has shape [${t.shape.join(',')}], placeholder '${n.name}' takes [${dims.join(',')}]`, where(o, { op: n.name }));
  }
}

/** Ops TF.js does not know among the nodes it will run (checked before running, so all are named at once). */
function unknownOps(model: TfGraphModel, a: TfjsArtifacts): string[] {
  // TF.js keeps its op mapping in the loaded graph: a node without a category has no kernel.
  type Nodes = Record<string, { op: string; category?: string }>;
  const g = (model as unknown as { executor?: { graph?: { nodes?: Nodes; functions?: Record<string, { nodes?: Nodes }> } } }).executor?.graph;
  if (!g?.nodes) return [];
  const ops = new Set<string>();
  for (const name of a.nodes.keys()) {
    const n = g.nodes[name];
    if (n && n.category === undefined) ops.add(n.op);
  }
  for (const f of a.functions) {
    for (const n of Object.values(g.functions?.[f.signature?.name ?? '']?.nodes ?? {})) if (n.category === undefined) ops.add(n.op);
  }
  return [...ops].sort();
}

function unsupported(ops: string[], o: RunGraphOptions): ModelsmithError {
  const hint = ops.some((op) => op.endsWith('PartitionedCall')) ? ' (freeze the SavedModel signature first: freezeSignature inlines function calls)' : '';
  return new ModelsmithError(ErrorCodes.UNSUPPORTED, `TF.js has no kernel for op${ops.length > 1 ? 's' : ''} ${ops.join(', ')}${hint}`, where(o, { op: ops[0]! }));
}

async function toOurTensor(name: string, t: TfTensor, declared: DType | undefined): Promise<Tensor> {
  const dtype = t.dtype as TfjsDtype | 'complex64';
  if (dtype === 'string') {
    const bytes = (await t.bytes()) as Uint8Array[];
    return fromTfjsValues(name, { dtype, shape: t.shape, values: bytes }, declared);
  }
  if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') {
    throw new ModelsmithError(ErrorCodes.DTYPE, `TF.js returned a ${String(dtype)} tensor`, { format: TFJS_FORMAT, tensor: name });
  }
  const values = (await t.data()) as Float32Array | Int32Array | Uint8Array;
  return fromTfjsValues(name, { dtype, shape: t.shape, values }, declared);
}

/**
 * Executes a (frozen, function-free or function-inlined) GraphDef with TF.js; feeds/fetches by node
 * name (optionally ":0"). Results come back in fetch order, int64/float64 where the graph declares it.
 */
export async function runGraphDef(graph: GraphDef, feeds: Record<string, Tensor>, fetches: string[], o: RunGraphOptions = {}): Promise<Tensor[]> {
  if (fetches.length === 0) throw new ModelsmithError(ErrorCodes.USAGE, 'nothing to fetch', where(o));
  const feedRefs = Object.keys(feeds).map((k) => ({ feedKey: k, ...tensorRef(k, o) }));
  const fetchRefs = fetches.map((f) => tensorRef(f, o));
  const dup = feedRefs.find((r, i) => feedRefs.findIndex((q) => q.key === r.key) !== i);
  if (dup) throw new ModelsmithError(ErrorCodes.USAGE, `tensor '${dup.key}' is fed twice`, where(o, { op: dup.node }));
  // A fed node becomes a one-output Placeholder, so only its output 0 can be fed.
  const notFirst = feedRefs.find((r) => r.index !== 0);
  if (notFirst) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot feed '${notFirst.key}': only output 0 of a node can be fed`, where(o, { op: notFirst.node }));
  // Convert before TF.js is loaded: a bad feed is the caller's error whether or not TF.js exists.
  const a = buildArtifacts(graph, [...new Set(feedRefs.map((r) => r.node))], [...new Set(fetchRefs.map((r) => r.node))], {
    ...(o.path !== undefined ? { path: o.path } : {}),
    ...(o.maxWeightBytes !== undefined ? { maxWeightBytes: o.maxWeightBytes } : {}),
  });
  for (const r of feedRefs) checkFeed(r.feedKey, feeds[r.feedKey]!, a.nodes.get(r.node), graph, o);
  const feedValues = feedRefs.map((r) => ({ ref: r, v: toTfjsValues({ ...feeds[r.feedKey]!, name: feeds[r.feedKey]!.name || r.feedKey }) }));

  const tf = await loadTfjs(o.tfjsModule);
  const owned: TfTensor[] = [];
  let model: TfGraphModel | undefined;
  try {
    try {
      model = await tf.loadGraphModel(tf.io.fromMemory({ format: 'graph-model', modelTopology: a.modelTopology, weightSpecs: a.weightSpecs, weightData: a.weightData }));
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.MALFORMED, `TF.js cannot load the graph: ${(e as Error).message}`, { ...where(o), cause: e });
    }
    const missing = unknownOps(model, a);
    if (missing.length > 0) throw unsupported(missing, o);
    const inputs: Record<string, TfTensor> = {};
    for (const { ref, v } of feedValues) {
      const t = tf.tensor(v.values, v.shape, v.dtype);
      owned.push(t);
      inputs[ref.key] = t;
    }
    let out: TfTensor[];
    try {
      const r = await model.executeAsync(inputs, fetchRefs.map((f) => f.key));
      out = Array.isArray(r) ? r : [r];
    } catch (e) {
      const m = /Unknown op '([^']+)'/.exec(String((e as Error)?.message));
      if (m) throw unsupported([m[1]!], o);
      throw new ModelsmithError(ErrorCodes.MALFORMED, `TF.js failed to run the graph: ${String((e as Error)?.message ?? e).split('\n')[0]}`, { ...where(o), cause: e });
    }
    owned.push(...out);
    const results: Tensor[] = [];
    for (let i = 0; i < fetchRefs.length; i++) {
      const f = fetchRefs[i]!;
      const declared = o.fetchDtypes?.[i] ?? declaredDtype(a.nodes.get(f.node), f.index);
      results.push(await toOurTensor(f.key, out[i]!, declared));
    }
    return results;
  } catch (e) {
    if (isModelsmithError(e)) throw e;
    throw new ModelsmithError(ErrorCodes.MALFORMED, `TF.js failed: ${String((e as Error)?.message ?? e).split('\n')[0]}`, { ...where(o), cause: e });
  } finally {
    for (const t of owned) t.dispose();
    model?.dispose();
  }
}
