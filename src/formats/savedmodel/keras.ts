/**
 * Keras metadata of a SavedModel: `keras_metadata.pb` (Keras 2.5+), else the JSON that TF 2.0–2.4
 * kept in the object graph's SavedUserObject.metadata. Only class and layer names are extracted; the
 * JSON configs stay in the decoded protos for converters.
 */
import type { Diagnostics } from '../../core/errors.js';
import type { SiblingResolver } from '../../io/source.js';
import { FORMAT, joinPath, optional, readAll } from './files.js';
import { SavedMetadataSchema } from './gen/tensorflow/keras/keras_metadata_pb.js';
import type { MetaGraphDef } from './gen/tensorflow/meta_graph_pb.js';
import { decodeChecked } from './proto.js';
import { objectPaths } from './variable-names.js';

export interface KerasLayerInfo {
  nodePath: string;
  identifier: string;
  className?: string;
  name?: string;
}

export interface KerasInfo {
  source: 'keras_metadata.pb' | 'saved_model.pb';
  layers: KerasLayerInfo[];
}

function kerasClass(json: string): { className?: string; name?: string } {
  try {
    const m = JSON.parse(json) as { class_name?: unknown; name?: unknown; config?: { name?: unknown } };
    const className = typeof m.class_name === 'string' ? m.class_name : undefined;
    const name = typeof m.name === 'string' ? m.name : typeof m.config?.name === 'string' ? m.config.name : undefined;
    return { ...(className !== undefined ? { className } : {}), ...(name !== undefined ? { name } : {}) };
  } catch {
    return {};
  }
}

export async function readKeras(dir: SiblingResolver, mg: MetaGraphDef, path: string, diags: Diagnostics): Promise<KerasInfo | undefined> {
  const src = await optional(dir, 'keras_metadata.pb');
  if (src) {
    const meta = decodeChecked(SavedMetadataSchema, await readAll(src, 'keras_metadata.pb'), { format: FORMAT, path: joinPath(path, 'keras_metadata.pb'), what: 'keras_metadata.pb' });
    return { source: 'keras_metadata.pb', layers: meta.nodes.map((n) => ({ nodePath: n.nodePath, identifier: n.identifier, ...kerasClass(n.metadata) })) };
  }
  // TF 2.0–2.4 kept the same JSON in SavedUserObject.metadata.
  const nodes = mg.objectGraphDef?.nodes ?? [];
  const paths = objectPaths(nodes);
  const layers: KerasLayerInfo[] = [];
  nodes.forEach((n, id) => {
    if (n.kind.case !== 'userObject' || !n.kind.value.identifier.startsWith('_tf_keras') || !n.kind.value.metadata) return;
    const p = paths.get(id);
    layers.push({ nodePath: p === undefined ? `<node ${id}>` : p === '' ? 'root' : `root.${p.replace(/\//g, '.')}`, identifier: n.kind.value.identifier, ...kerasClass(n.kind.value.metadata) });
  });
  if (layers.length > 0) diags.info('SM_KERAS', `Keras metadata for ${layers.length} objects found in the object graph`);
  return layers.length > 0 ? { source: 'saved_model.pb', layers } : undefined;
}
