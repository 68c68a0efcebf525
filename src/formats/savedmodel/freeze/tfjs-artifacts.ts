/**
 * A GraphDef as the artifacts `tf.io.fromMemory` takes: the topology as proto3-JSON and every Const
 * value moved to weightSpecs/weightData (TF.js ignores values inline in the topology, see
 * shared/docs/oracles.md). Only the nodes the fetches need are kept, so a SavedModel's saver, init
 * and training nodes never reach TF.js, and control inputs are dropped: TF.js has no side effects to
 * order, and it would treat them as data inputs.
 */
import { create, toJson, type JsonValue } from '@bufbuild/protobuf';
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../../core/errors.js';
import { AttrValueSchema, FunctionDefLibrarySchema, FunctionDefSchema, GraphDefSchema, NodeDefSchema, type AttrValue, type FunctionDef, type GraphDef, type NodeDef } from '../gen/tensorflow/graph_pb.js';
import { DataType, TensorProtoSchema, VersionDefSchema } from '../gen/tensorflow/types_pb.js';
import { attr } from '../build.js';
import { parseInput } from '../graph-utils.js';
import { DEFAULT_MAX_TENSOR_BYTES, tensorFromProto } from '../tensor-proto.js';
import { dtypeFromTf, shapeDims } from '../tf-types.js';
import { TFJS_FORMAT, toTfjsValues, weightBytes, type TfjsDtype } from './tfjs-values.js';

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: TfjsDtype;
}

export interface TfjsArtifacts {
  modelTopology: JsonValue;
  weightSpecs: WeightSpec[];
  weightData: ArrayBuffer[];
  /** The nodes kept, by name (for dtype hints and op checks). */
  nodes: Map<string, NodeDef>;
  /** Library functions kept (reachable from kept nodes through func attrs). */
  functions: FunctionDef[];
}

export interface ArtifactOptions {
  path?: string;
  /** Cap on the sum of all Const values handed to TF.js (default 2 GiB). */
  maxWeightBytes?: number;
}

const MAX_WEIGHT_BYTES = 2 ** 31;

function ctx(o: ArtifactOptions, extra: { op?: string; tensor?: string } = {}) {
  return { format: TFJS_FORMAT, ...(o.path !== undefined ? { path: o.path } : {}), ...extra };
}

/** `name`, `name:0` → `name:0`; refuses control references and malformed indices. */
export function tensorRef(name: string, o: ArtifactOptions): { node: string; index: number; key: string } {
  const r = parseInput(name);
  if (r.index < 0 || r.node === '') throw new ModelsmithError(ErrorCodes.USAGE, `'${name}' is not a tensor name`, ctx(o));
  return { ...r, key: `${r.node}:${r.index}` };
}

function funcNames(a: AttrValue): string[] {
  if (a.value.case === 'func') return [a.value.value.name];
  if (a.value.case === 'list') return a.value.value.func.map((f) => f.name);
  return [];
}

/** Nodes the fetches depend on through data inputs, stopping at fed nodes. */
function neededNodes(byName: Map<string, NodeDef>, fetches: string[], fed: Set<string>, o: ArtifactOptions): Set<string> {
  const needed = new Set<string>();
  const stack = [...fetches];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    const n = byName.get(name);
    if (!n) throw new ModelsmithError(ErrorCodes.MALFORMED, `node '${name}' is read but no node has that name`, ctx(o, { op: name }));
    needed.add(name);
    if (fed.has(name)) continue;
    for (const i of n.input) {
      const r = parseInput(i);
      if (r.index < 0) continue;
      if (!byName.has(r.node)) throw new ModelsmithError(ErrorCodes.MALFORMED, `node '${n.name}' reads '${i}', which no node produces`, ctx(o, { op: n.name }));
      stack.push(r.node);
    }
  }
  return needed;
}

/** Library functions reachable from `roots` through func attrs (If/While branches, nested calls). */
function reachableFunctions(roots: Iterable<NodeDef>, library: Map<string, FunctionDef>, o: ArtifactOptions): FunctionDef[] {
  const out = new Map<string, FunctionDef>();
  const stack = [...roots];
  while (stack.length > 0) {
    const n = stack.pop()!;
    for (const a of Object.values(n.attr)) {
      for (const f of funcNames(a)) {
        if (out.has(f)) continue;
        const fn = library.get(f);
        // Function-valued attrs may name ops too (e.g. a gradient): only library functions matter here.
        if (!fn) {
          if (n.op === 'If' || n.op === 'StatelessIf' || n.op === 'While' || n.op === 'StatelessWhile' || n.op.endsWith('PartitionedCall')) {
            throw new ModelsmithError(ErrorCodes.MALFORMED, `node '${n.name}' calls function '${f}', which the library does not define`, ctx(o, { op: n.name }));
          }
          continue;
        }
        out.set(f, fn);
        stack.push(...fn.nodeDef);
      }
    }
  }
  return [...out.values()];
}

/**
 * Attrs as TF.js reads them: it has no bfloat16 (its Cast to it fails on the unknown dtype), and it
 * holds float16 as float32; bfloat16 is named float16 here so it is held the same way (fed and
 * fetched as float32, like float16: TF.js never rounds to either).
 */
function tfjsAttrs(attrs: Record<string, AttrValue>): Record<string, AttrValue> {
  let out: Record<string, AttrValue> | undefined;
  for (const [k, v] of Object.entries(attrs)) {
    let nv: AttrValue | undefined;
    if (v.value.case === 'type' && v.value.value === DataType.DT_BFLOAT16) nv = attr.type(DataType.DT_HALF);
    else if (v.value.case === 'list' && v.value.value.type.includes(DataType.DT_BFLOAT16)) {
      nv = create(AttrValueSchema, { value: { case: 'list', value: { ...v.value.value, type: v.value.value.type.map((t) => (t === DataType.DT_BFLOAT16 ? DataType.DT_HALF : t)) } } });
    }
    if (nv) (out ??= { ...attrs })[k] = nv;
  }
  return out ?? attrs;
}

/** A Const node without its value (TF.js reads values from weightData; keeping them would double memory). */
function strippedConst(n: NodeDef, name: string, o: ArtifactOptions): NodeDef {
  const v = n.attr['value']?.value;
  if (v?.case !== 'tensor') throw new ModelsmithError(ErrorCodes.MALFORMED, 'Const node has no tensor value', ctx(o, { op: n.name }));
  const bare = create(TensorProtoSchema, { dtype: v.value.dtype, ...(v.value.tensorShape ? { tensorShape: v.value.tensorShape } : {}) });
  return create(NodeDefSchema, { name, op: 'Const', attr: { ...n.attr, value: attr.tensor(bare) } });
}

/** Collects Const values as weight specs + data, checking the running total. */
class Weights {
  readonly specs: WeightSpec[] = [];
  readonly data: ArrayBuffer[] = [];
  private total = 0;
  private readonly names = new Set<string>();
  constructor(private readonly o: ArtifactOptions) {}

  has(name: string): boolean {
    return this.names.has(name);
  }

  add(n: NodeDef, name: string): void {
    const v = n.attr['value']?.value;
    if (v?.case !== 'tensor') throw new ModelsmithError(ErrorCodes.MALFORMED, 'Const node has no tensor value', ctx(this.o, { op: n.name }));
    const remaining = (this.o.maxWeightBytes ?? MAX_WEIGHT_BYTES) - this.total;
    const t = tensorFromProto(v.value, { name, format: TFJS_FORMAT, ...(this.o.path !== undefined ? { path: this.o.path } : {}), maxBytes: Math.max(0, Math.min(remaining, DEFAULT_MAX_TENSOR_BYTES)) });
    const tv = toTfjsValues(t);
    const bytes = weightBytes(tv);
    this.total += bytes.byteLength;
    this.specs.push({ name, shape: tv.shape, dtype: tv.dtype });
    this.data.push(new Uint8Array(bytes).buffer);
    this.names.add(name);
  }
}

/** Function copy whose Consts are renamed where their name is taken (TF.js shares one weight map). */
function functionForTfjs(fn: FunctionDef, weights: Weights, taken: Set<string>, o: ArtifactOptions): FunctionDef {
  const rename = new Map<string, string>();
  const fname = fn.signature?.name ?? '';
  for (const n of fn.nodeDef) {
    if (n.op !== 'Const') continue;
    let name = n.name;
    for (let k = 0; taken.has(name) || weights.has(name); k++) name = `${fname}/${n.name}${k === 0 ? '' : `_${k}`}`;
    if (name !== n.name) rename.set(n.name, name);
    taken.add(name);
  }
  const ref = (s: string): string => {
    const control = s.startsWith('^');
    const body = control ? s.slice(1) : s;
    const colon = body.indexOf(':');
    const head = colon < 0 ? body : body.slice(0, colon);
    const to = rename.get(head);
    return to === undefined ? s : `${control ? '^' : ''}${to}${colon < 0 ? '' : body.slice(colon)}`;
  };
  const nodes = fn.nodeDef.map((n) => {
    if (n.op === 'Const') {
      const name = rename.get(n.name) ?? n.name;
      weights.add(n, name);
      return strippedConst(n, name, o);
    }
    return create(NodeDefSchema, { ...n, attr: tfjsAttrs(n.attr), input: n.input.filter((i) => !i.startsWith('^')).map(ref) });
  });
  const ret = Object.fromEntries(Object.entries(fn.ret).map(([k, v]) => [k, ref(v)]));
  return create(FunctionDefSchema, { ...fn, nodeDef: nodes, ret, controlRet: {} });
}

export function buildArtifacts(graph: GraphDef, feedNodes: string[], fetchNodes: string[], o: ArtifactOptions = {}): TfjsArtifacts {
  const byName = new Map<string, NodeDef>();
  for (const n of graph.node) {
    if (byName.has(n.name)) throw new ModelsmithError(ErrorCodes.MALFORMED, `duplicate node name '${n.name}'`, ctx(o, { op: n.name }));
    byName.set(n.name, n);
  }
  for (const f of [...feedNodes, ...fetchNodes]) {
    if (!byName.has(f)) throw new ModelsmithError(ErrorCodes.USAGE, `the graph has no node '${f}'`, ctx(o, { op: f }));
  }
  const fed = new Set(feedNodes);
  // Fed nodes are kept even when no fetch needs them: TF.js refuses feeds it does not know.
  const needed = neededNodes(byName, [...fetchNodes, ...feedNodes], fed, o);
  const weights = new Weights(o);
  const kept = new Map<string, NodeDef>();
  const topNodes: NodeDef[] = [];
  for (const n of graph.node) {
    if (!needed.has(n.name)) continue;
    kept.set(n.name, n);
    if (n.op === 'Placeholder' && !fed.has(n.name)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `placeholder '${n.name}' is needed by the fetches but not fed`, ctx(o, { op: n.name }));
    }
    if (fed.has(n.name)) {
      // A fed node is a graph input to TF.js whatever it computed: its inputs are not needed.
      topNodes.push(create(NodeDefSchema, { name: n.name, op: 'Placeholder', attr: placeholderAttrs(n, graph) }));
    } else if (n.op === 'Const') {
      weights.add(n, n.name);
      topNodes.push(strippedConst(n, n.name, o));
    } else {
      topNodes.push(create(NodeDefSchema, { ...n, attr: tfjsAttrs(n.attr), input: n.input.filter((i) => !i.startsWith('^')) }));
    }
  }
  const library = new Map((graph.library?.function ?? []).map((f) => [f.signature?.name ?? '', f]));
  const functions = reachableFunctions(kept.values(), library, o);
  const taken = new Set(byName.keys());
  const tfjsFunctions = functions.map((f) => functionForTfjs(f, weights, taken, o));
  const pruned = create(GraphDefSchema, {
    node: topNodes,
    // TF.js reads versions.producer unconditionally.
    versions: graph.versions ?? create(VersionDefSchema, {}),
    ...(tfjsFunctions.length > 0 ? { library: create(FunctionDefLibrarySchema, { function: tfjsFunctions }) } : {}),
  });
  return { modelTopology: toJson(GraphDefSchema, pruned), weightSpecs: weights.specs, weightData: weights.data, nodes: kept, functions };
}

/** GraphDefs before producer 21 (TF ≤ 0.12) wrote an empty shape for "unknown", not for scalar. */
const SCALAR_SHAPE_PRODUCER = 21;

/** Declared dims of a Placeholder: null when unknown (no attr, unknown rank, or a pre-21 empty shape). */
export function placeholderDims(n: NodeDef, graph: GraphDef): number[] | null {
  if (n.op !== 'Placeholder' && n.op !== 'PlaceholderWithDefault') return null;
  const s = n.attr['shape']?.value;
  if (s?.case !== 'shape') return null;
  if (s.value.dim.length === 0 && !s.value.unknownRank && (graph.versions?.producer ?? 0) < SCALAR_SHAPE_PRODUCER) return null;
  return shapeDims(s.value);
}

/** dtype (and known shape, when it is a Placeholder) of a node turned into a graph input. */
function placeholderAttrs(n: NodeDef, graph: GraphDef): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  const d = n.op === 'Placeholder' || n.op === 'PlaceholderWithDefault' ? n.attr['dtype'] : undefined;
  if (d) out['dtype'] = d;
  const dims = placeholderDims(n, graph);
  if (dims && dims.every((x) => Number.isSafeInteger(x))) out['shape'] = attr.shape(dims);
  return out;
}

const DTYPE_ATTRS = ['DstT', 'out_type', 'output_type', 'dtype', 'T'];

/**
 * The dtype the graph declares for output `index` of `n`, from the attrs ops use for it. Only a hint:
 * it is used to widen TF.js's int32/float32 back to a declared int64/float64, never to narrow.
 */
export function declaredDtype(n: NodeDef | undefined, index: number): DType | undefined {
  if (!n) return undefined;
  const tout = n.attr['Tout']?.value;
  if (tout?.case === 'list' && index < tout.value.type.length) return dtypeFromTf(tout.value.type[index]!);
  for (const k of DTYPE_ATTRS) {
    const v = n.attr[k]?.value;
    if (v?.case === 'type') return dtypeFromTf(v.value);
  }
  return undefined;
}
