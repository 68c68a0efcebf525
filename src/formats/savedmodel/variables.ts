/**
 * The SavedModel's variables: its tensor bundle, with tensors renamed from checkpoint keys to the
 * names users know (see variable-names.ts), and the checkpoint's object graph decoded on the way.
 */
import { Diagnostics, ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { SiblingResolver } from '../../io/source.js';
import type { LazyTensor, WeightSet } from '../weights.js';
import { loadStrings, readTensorBundle, shardFileName } from './bundle/read.js';
import { FORMAT, joinPath, optional } from './files.js';
import type { MetaGraphDef } from './gen/tensorflow/meta_graph_pb.js';
import { TrackableObjectGraphSchema, type TrackableObjectGraph } from './gen/tensorflow/saved_object_graph_pb.js';
import { decodeChecked } from './proto.js';
import { collectionVariables, tf1VariableNames, tf2VariableNames, type VariableName } from './variable-names.js';

export const VARIABLES_PREFIX = 'variables/variables';
export const OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH';
/** The checkpoint object graph is a small proto; a huge one is hostile. */
const MAX_OBJECT_GRAPH_BYTES = 256 * 2 ** 20;

export async function readVariables(dir: SiblingResolver, mg: MetaGraphDef, path: string, diags: Diagnostics): Promise<{ variables: WeightSet; checkpointObjectGraph?: TrackableObjectGraph }> {
  const indexPath = joinPath(path, `${VARIABLES_PREFIX}.index`);
  const index = await optional(dir, `${VARIABLES_PREFIX}.index`);
  if (!index) {
    diags.info('SM_NO_VARIABLES', 'no variables/variables.index: the model has no variables (TF skips the restore too)');
    return { variables: { format: 'tf-bundle', path: indexPath, tensors: [], diagnostics: [] } };
  }
  const bundle = await readTensorBundle(index, (i, n) => dir(shardFileName(VARIABLES_PREFIX, i, n)), { path: indexPath });
  let checkpointObjectGraph: TrackableObjectGraph | undefined;
  const graphTensor = bundle.tensors.find((t) => t.name === OBJECT_GRAPH_KEY);
  if (graphTensor && graphTensor.dtype === 'string' && graphTensor.shape.length === 0) {
    if (graphTensor.byteLength > MAX_OBJECT_GRAPH_BYTES) {
      throw new ModelsmithError(ErrorCodes.LIMIT, `${OBJECT_GRAPH_KEY} of ${graphTensor.byteLength} bytes`, { format: FORMAT, path: indexPath, tensor: OBJECT_GRAPH_KEY });
    }
    const [bytes] = await loadStrings(graphTensor);
    checkpointObjectGraph = decodeChecked(TrackableObjectGraphSchema, bytes!, { format: FORMAT, path: indexPath, what: OBJECT_GRAPH_KEY });
  }
  const keys = bundle.tensors.map((t) => t.name);
  const names: Map<string, VariableName> = mg.objectGraphDef || checkpointObjectGraph
    ? tf2VariableNames(mg.objectGraphDef, checkpointObjectGraph)
    : tf1VariableNames(mg.graphDef, keys, collectionVariables(mg, 'trainable_variables'));
  // Old TF2 exports name every variable "Variable" and Keras metrics repeat "count"/"total": a name
  // that is not unique cannot identify a variable, so those fall back to their object path.
  const counts = new Map<string, number>();
  for (const t of bundle.tensors) {
    const m = names.get(t.name);
    if (m) counts.set(m.name, (counts.get(m.name) ?? 0) + 1);
  }
  const unmappedKeys = new Set(bundle.tensors.filter((t) => !names.has(t.name)).map((t) => t.name));
  const used = new Set<string>(unmappedKeys);
  const tensors: LazyTensor[] = [];
  for (const t of bundle.tensors) {
    if (t.name === OBJECT_GRAPH_KEY && checkpointObjectGraph) continue;
    const mapped = names.get(t.name);
    let name = t.name;
    if (mapped) {
      const wanted = counts.get(mapped.name)! > 1 || unmappedKeys.has(mapped.name) ? mapped.objectPath ?? t.name : mapped.name;
      if (wanted !== mapped.name) diags.info('SM_VARIABLE_NAME_CLASH', `variable name '${mapped.name}' is not unique; using '${wanted}'`, { tensor: t.name });
      name = used.has(wanted) ? t.name : wanted;
      // Names must stay unique even if a variable is named like another tensor's checkpoint key.
      for (let k = 1; used.has(name); k++) name = `${t.name}#${k}`;
    }
    used.add(name);
    tensors.push({
      ...t,
      name,
      extra: { ...t.extra, ...(mapped ? { variableName: mapped.name, nameSource: mapped.source } : {}), ...(mapped?.objectPath !== undefined ? { objectPath: mapped.objectPath } : {}), ...(mapped?.trainable !== undefined ? { trainable: mapped.trainable } : {}) },
    });
  }
  const variables: WeightSet = { format: 'tf-bundle', path: indexPath, tensors, diagnostics: bundle.diagnostics };
  return { variables, ...(checkpointObjectGraph ? { checkpointObjectGraph } : {}) };
}
