/**
 * SavedModel writer, TF1 style (formats.md §4.6, Recipe B): the caller's compute graph plus, per
 * variable, VarHandleOp + ReadVariableOp + a tiny zeros initializer, a RestoreV2 subgraph wired to
 * the saver_def, the `variables` collections, the signatures and a one-shard variables bundle.
 * No object graph: `tf.saved_model.load` then takes its load_v1_in_v2 path, which TF Serving and
 * saved_model_cli also accept. Weights never go into the graph, so the .pb stays small.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import type { DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { ByteSink } from '../../io/source.js';
import type { LazyTensor } from '../weights.js';
import { shardFileName } from './bundle/read.js';
import { writeTensorBundle } from './bundle/write.js';
import { attr, int32Tensor, node, stringTensor, tensorInfo, tfDtype, zeroScalar } from './build.js';
import { GraphDefSchema, type FunctionDefLibrary, type NodeDef } from './gen/tensorflow/graph_pb.js';
import {
  CollectionDefSchema, CollectionDef_BytesListSchema, MetaGraphDefSchema, MetaGraphDef_MetaInfoDefSchema, SavedModelSchema,
  SaverDefSchema, SaverDef_CheckpointFormatVersion, SignatureDefSchema, VariableDefSchema, type CollectionDef, type SaverDef,
} from './gen/tensorflow/meta_graph_pb.js';
import { VersionDefSchema } from './gen/tensorflow/types_pb.js';
import { parseInput } from './graph-utils.js';
import { VARIABLES_PREFIX } from './variables.js';

export interface SignatureTensorSpec {
  /** Graph tensor, `node:index`. */
  name: string;
  dtype: DType;
  /** null = unknown rank; -1 = unknown dim. */
  shape: number[] | null;
}

export interface SignatureSpec {
  /** Defaults to `serving_default`. */
  key?: string;
  /** Defaults to `tensorflow/serving/predict`. */
  method?: string;
  inputs: Record<string, SignatureTensorSpec>;
  outputs: Record<string, SignatureTensorSpec>;
}

export interface WriteSavedModelInput {
  /** Compute nodes. Variable `w` is read through `w/Read/ReadVariableOp:0`. */
  nodes?: NodeDef[];
  /** Variables; names are node names and checkpoint keys. Loaded one at a time while writing. */
  variables?: LazyTensor[];
  signatures?: SignatureSpec[];
  /** Defaults to ["serve"]. */
  tags?: string[];
  tensorflowVersion?: string;
  /** GraphDef producer version; the default is a TF 2.x one all current loaders accept. */
  producer?: number;
  /** Functions the compute nodes call (If/While branches), written as the GraphDef's library. */
  library?: FunctionDefLibrary;
}

/** Opens an output file given its path relative to the SavedModel folder. */
export type SinkFactory = (relativePath: string) => Promise<ByteSink>;

export const DEFAULT_PRODUCER = 1205;
const NODE_NAME = /^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$/;
const FORMAT = 'savedmodel';

function bad(message: string, op?: string): never {
  throw new ModelsmithError(ErrorCodes.MALFORMED, message, { format: FORMAT, ...(op !== undefined ? { op } : {}) });
}

/** Nodes that make variable `v` exist, readable, and initialisable without a full-size constant. */
function variableNodes(v: LazyTensor): NodeDef[] {
  const t = tfDtype(v.dtype, { tensor: v.name });
  const n = v.name;
  return [
    node(n, 'VarHandleOp', [], { dtype: attr.type(t), shape: attr.shape(v.shape), shared_name: attr.s(n), container: attr.s('') }),
    node(`${n}/Read/ReadVariableOp`, 'ReadVariableOp', [n], { dtype: attr.type(t) }),
    node(`${n}/Initializer/zeros/shape`, 'Const', [], { dtype: attr.type(3), value: attr.tensor(int32Tensor(v.shape)) }),
    node(`${n}/Initializer/zeros/Const`, 'Const', [], { dtype: attr.type(t), value: attr.tensor(zeroScalar(v.dtype, { tensor: n })) }),
    node(`${n}/Initializer/zeros`, 'Fill', [`${n}/Initializer/zeros/shape`, `${n}/Initializer/zeros/Const`], { T: attr.type(t), index_type: attr.type(3) }),
    node(`${n}/Assign`, 'AssignVariableOp', [n, `${n}/Initializer/zeros`], { dtype: attr.type(t) }),
  ];
}

/** The Saver's restore path: RestoreV2 → Identity → AssignVariableOp per variable, grouped by a NoOp. */
function restoreNodes(vars: LazyTensor[]): NodeDef[] {
  const dtypes = vars.map((v) => tfDtype(v.dtype, { tensor: v.name }));
  const out: NodeDef[] = [
    node('save/filename/input', 'Const', [], { dtype: attr.type(7), value: attr.tensor(stringTensor(['model'], [])) }),
    node('save/Const', 'PlaceholderWithDefault', ['save/filename/input'], { dtype: attr.type(7), shape: attr.shape([]) }),
    node('save/RestoreV2/tensor_names', 'Const', [], { dtype: attr.type(7), value: attr.tensor(stringTensor(vars.map((v) => v.name))) }),
    node('save/RestoreV2/shape_and_slices', 'Const', [], { dtype: attr.type(7), value: attr.tensor(stringTensor(vars.map(() => ''))) }),
    node('save/RestoreV2', 'RestoreV2', ['save/Const', 'save/RestoreV2/tensor_names', 'save/RestoreV2/shape_and_slices'], { dtypes: attr.types(dtypes) }),
  ];
  vars.forEach((v, i) => {
    out.push(node(`save/Identity_${i}`, 'Identity', [`save/RestoreV2:${i}`], { T: attr.type(dtypes[i]!) }));
    out.push(node(`save/AssignVariableOp_${i}`, 'AssignVariableOp', [v.name, `save/Identity_${i}`], { dtype: attr.type(dtypes[i]!) }));
  });
  out.push(node('save/restore_all', 'NoOp', vars.map((_, i) => `^save/AssignVariableOp_${i}`)));
  return out;
}

function validateGraph(nodes: NodeDef[], signatures: SignatureSpec[]): void {
  const names = new Set<string>();
  for (const n of nodes) {
    if (!NODE_NAME.test(n.name)) bad(`invalid node name '${n.name}'`, n.name);
    if (names.has(n.name)) bad(`duplicate node name '${n.name}' (generated variable and saver nodes count too)`, n.name);
    names.add(n.name);
  }
  for (const n of nodes) {
    for (const i of n.input) if (!names.has(parseInput(i).node)) bad(`node '${n.name}' reads '${i}', which no node produces`, n.name);
  }
  for (const s of signatures) {
    for (const [k, t] of [...Object.entries(s.inputs), ...Object.entries(s.outputs)]) {
      const ref = parseInput(t.name);
      if (!names.has(ref.node) || ref.index < 0) bad(`signature '${s.key ?? 'serving_default'}' entry '${k}' names '${t.name}', which is not a graph tensor`);
    }
  }
}

export async function writeSavedModel(input: WriteSavedModelInput, out: SinkFactory): Promise<{ files: Array<{ path: string; bytes: number }> }> {
  const vars = input.variables ?? [];
  const signatures = input.signatures ?? [];
  const nodes = [...(input.nodes ?? [])];
  for (const v of vars) nodes.push(...variableNodes(v));
  if (vars.length > 0) nodes.push(...restoreNodes(vars));
  validateGraph(nodes, signatures);

  const files: Array<{ path: string; bytes: number }> = [];
  const collections: Record<string, CollectionDef> = {};
  let saverDef: SaverDef | undefined;
  if (vars.length > 0) {
    // Bundle first: it loads every tensor, so a failing load() leaves no saved_model.pb behind.
    const indexPath = `${VARIABLES_PREFIX}.index`;
    const dataPath = shardFileName(VARIABLES_PREFIX, 0, 1);
    const dataSink = await out(dataPath);
    const indexSink = await out(indexPath);
    const sizes = await writeTensorBundle(vars, indexSink, dataSink);
    files.push({ path: dataPath, bytes: sizes.dataBytes }, { path: indexPath, bytes: sizes.indexBytes });
    saverDef = create(SaverDefSchema, {
      filenameTensorName: 'save/Const:0',
      saveTensorName: 'save/Const:0',
      restoreOpName: 'save/restore_all',
      sharded: true,
      version: SaverDef_CheckpointFormatVersion.V2,
    });
    const defs = vars.map((v) => toBinary(VariableDefSchema, create(VariableDefSchema, {
      variableName: `${v.name}:0`,
      initializerName: `${v.name}/Assign`,
      snapshotName: `${v.name}/Read/ReadVariableOp:0`,
      initialValueName: `${v.name}/Initializer/zeros:0`,
      isResource: true,
      trainable: true,
    })));
    for (const key of ['variables', 'trainable_variables']) {
      collections[key] = create(CollectionDefSchema, { kind: { case: 'bytesList', value: create(CollectionDef_BytesListSchema, { value: defs }) } });
    }
  }
  const signatureDef = Object.fromEntries(signatures.map((s) => [
    s.key ?? 'serving_default',
    create(SignatureDefSchema, {
      methodName: s.method ?? 'tensorflow/serving/predict',
      inputs: Object.fromEntries(Object.entries(s.inputs).map(([k, t]) => [k, tensorInfo(t.name, t.dtype, t.shape)])),
      outputs: Object.fromEntries(Object.entries(s.outputs).map(([k, t]) => [k, tensorInfo(t.name, t.dtype, t.shape)])),
    }),
  ]));
  const metaGraph = create(MetaGraphDefSchema, {
    metaInfoDef: create(MetaGraphDef_MetaInfoDefSchema, {
      tags: input.tags ?? ['serve'],
      tensorflowVersion: input.tensorflowVersion ?? '2.15.0',
      tensorflowGitVersion: 'unknown',
      strippedDefaultAttrs: true,
    }),
    graphDef: create(GraphDefSchema, {
      node: nodes,
      versions: create(VersionDefSchema, { producer: input.producer ?? DEFAULT_PRODUCER, minConsumer: 12 }),
      ...(input.library && input.library.function.length > 0 ? { library: input.library } : {}),
    }),
    ...(saverDef ? { saverDef } : {}),
    collectionDef: collections,
    signatureDef,
  });
  const pb = toBinary(SavedModelSchema, create(SavedModelSchema, { savedModelSchemaVersion: 1n, metaGraphs: [metaGraph] }));
  if (pb.length > 2 ** 31 - 1) throw new ModelsmithError(ErrorCodes.LIMIT, 'saved_model.pb would exceed 2 GiB', { format: FORMAT });
  const sink = await out('saved_model.pb');
  await sink.write(pb);
  files.push({ path: 'saved_model.pb', bytes: pb.length });
  return { files };
}
