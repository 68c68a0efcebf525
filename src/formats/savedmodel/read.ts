/**
 * SavedModel reader: `saved_model.pb` (decoded whole into the generated `SavedModel` message, which
 * stays the IR, like ONNX's ModelProto), the variables bundle with tensors renamed from checkpoint
 * keys to graph variable names, signatures flattened for display, assets and Keras metadata.
 * Tensor payloads stay lazy; only the index and the small `_CHECKPOINTABLE_OBJECT_GRAPH` are read.
 */
import { Diagnostics, ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { SiblingResolver } from '../../io/source.js';
import type { WeightSet } from '../weights.js';
import { listAssets, type AssetInfo } from './assets.js';
import { FORMAT, joinPath, optional, readAll } from './files.js';
import { SavedModelSchema, type MetaGraphDef, type SavedModel, type TensorInfo } from './gen/tensorflow/meta_graph_pb.js';
import type { TrackableObjectGraph } from './gen/tensorflow/saved_object_graph_pb.js';
import { readKeras, type KerasInfo } from './keras.js';
import { decodeChecked } from './proto.js';
import { shapeDims, tfDtypeLabel } from './tf-types.js';
import { readVariables } from './variables.js';

export { FORMAT } from './files.js';
export { OBJECT_GRAPH_KEY, VARIABLES_PREFIX } from './variables.js';
export type { AssetInfo } from './assets.js';
export type { KerasInfo, KerasLayerInfo } from './keras.js';

export interface SignatureTensor {
  /** Key in the signature map (`x`, `inputs`). */
  key: string;
  /** Graph tensor, `node:index` (for sparse tensors the values tensor). */
  name: string;
  /** dtype name from core/dtype.ts, or TF's name (`DT_RESOURCE`) when the table has none. */
  dtype: string;
  /** -1 for unknown dims; null for unknown rank. */
  shape: number[] | null;
  encoding: 'dense' | 'coo_sparse' | 'composite';
}

export interface SignatureInfo {
  key: string;
  method: string;
  inputs: SignatureTensor[];
  outputs: SignatureTensor[];
}

export interface MetaGraphInfo {
  tags: string[];
  tensorflowVersion: string;
  /** tf2 when the MetaGraphDef carries an object graph (what `tf.saved_model.load` keys on). */
  style: 'tf1' | 'tf2';
  metaGraph: MetaGraphDef;
}

export interface SavedModelFile {
  format: typeof FORMAT;
  path: string;
  savedModel: SavedModel;
  metaGraphs: MetaGraphInfo[];
  /** The MetaGraphDef that signatures and variables describe (tags requested, else {serve}, else the first). */
  metaGraphIndex: number;
  signatures: SignatureInfo[];
  /** Variables named by graph variable name where known; `extra.checkpointKey` holds the bundle key. */
  variables: WeightSet;
  /** The checkpoint's object graph (TF2 bundles), decoded. */
  checkpointObjectGraph?: TrackableObjectGraph;
  assets: AssetInfo[];
  keras?: KerasInfo;
  diagnostics: Diagnostic[];
}

export interface ReadSavedModelOptions {
  /** Name for messages (the folder). */
  path?: string;
  /** Pick the MetaGraphDef whose tag set equals these, as TF loaders do. */
  tags?: string[];
}

function tensorInfo(key: string, t: TensorInfo): SignatureTensor {
  const enc = t.encoding;
  const name = enc.case === 'name' ? enc.value : enc.case === 'cooSparse' ? enc.value.valuesTensorName : '';
  return {
    key,
    name,
    dtype: tfDtypeLabel(t.dtype),
    shape: t.tensorShape ? shapeDims(t.tensorShape) : null,
    encoding: enc.case === 'cooSparse' ? 'coo_sparse' : enc.case === 'compositeTensor' ? 'composite' : 'dense',
  };
}

function sameTags(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((t) => sb.has(t));
}

function pickMetaGraph(metaGraphs: MetaGraphInfo[], tags: string[] | undefined, path: string, diags: Diagnostics): number {
  if (tags) {
    const i = metaGraphs.findIndex((m) => sameTags(m.tags, tags));
    if (i < 0) {
      throw new ModelsmithError(ErrorCodes.USAGE, `no MetaGraphDef with tags {${tags.join(',')}}; available: ${metaGraphs.map((m) => `{${m.tags.join(',')}}`).join(' ')}`, { format: FORMAT, path });
    }
    return i;
  }
  const serve = metaGraphs.findIndex((m) => sameTags(m.tags, ['serve']));
  if (metaGraphs.length > 1) diags.info('SM_META_GRAPHS', `${metaGraphs.length} MetaGraphDefs; describing tags {${metaGraphs[Math.max(serve, 0)]!.tags.join(',')}}`);
  return Math.max(serve, 0);
}

export async function readSavedModel(dir: SiblingResolver, opts: ReadSavedModelOptions = {}): Promise<SavedModelFile> {
  const path = opts.path ?? '.';
  const diags = new Diagnostics();
  const pb = await optional(dir, 'saved_model.pb');
  if (!pb) {
    for (const alt of ['saved_model.pbtxt', 'saved_model.cpb']) {
      if (await optional(dir, alt)) {
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${alt} (${alt.endsWith('pbtxt') ? 'text format' : 'chunked proto'}) SavedModels are not supported; re-export as saved_model.pb`, { format: FORMAT, path: joinPath(path, alt) });
      }
    }
    throw new ModelsmithError(ErrorCodes.IO, 'no saved_model.pb in the folder', { format: FORMAT, path });
  }
  const pbPath = joinPath(path, 'saved_model.pb');
  const savedModel = decodeChecked(SavedModelSchema, await readAll(pb, 'saved_model.pb'), { format: FORMAT, path: pbPath, what: 'SavedModel' });
  if (savedModel.metaGraphs.length === 0) throw new ModelsmithError(ErrorCodes.MALFORMED, 'SavedModel has no MetaGraphDef', { format: FORMAT, path: pbPath });
  const metaGraphs: MetaGraphInfo[] = savedModel.metaGraphs.map((m) => ({
    tags: m.metaInfoDef?.tags ?? [],
    tensorflowVersion: m.metaInfoDef?.tensorflowVersion ?? '',
    style: m.objectGraphDef ? 'tf2' : 'tf1',
    metaGraph: m,
  }));
  const metaGraphIndex = pickMetaGraph(metaGraphs, opts.tags, pbPath, diags);
  const mg = metaGraphs[metaGraphIndex]!.metaGraph;

  const signatures: SignatureInfo[] = Object.entries(mg.signatureDef).map(([key, s]) => ({
    key,
    method: s.methodName,
    inputs: Object.entries(s.inputs).map(([k, t]) => tensorInfo(k, t)),
    outputs: Object.entries(s.outputs).map(([k, t]) => tensorInfo(k, t)),
  }));

  const { variables, checkpointObjectGraph } = await readVariables(dir, mg, path, diags);
  const assets = await listAssets(dir, mg, diags);
  const keras = await readKeras(dir, mg, path, diags);
  return {
    format: FORMAT,
    path,
    savedModel,
    metaGraphs,
    metaGraphIndex,
    signatures,
    variables,
    ...(checkpointObjectGraph ? { checkpointObjectGraph } : {}),
    assets,
    ...(keras ? { keras } : {}),
    diagnostics: [...diags.items, ...variables.diagnostics],
  };
}
