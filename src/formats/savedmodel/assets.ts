/** Assets of a SavedModel: AssetFileDefs (or TF1's saved_model_assets collection) and their files. */
import { fromBinary } from '@bufbuild/protobuf';
import type { Diagnostics } from '../../core/errors.js';
import type { SiblingResolver } from '../../io/source.js';
import { optional } from './files.js';
import { AssetFileDefSchema, type MetaGraphDef } from './gen/tensorflow/meta_graph_pb.js';

export interface AssetInfo {
  filename: string;
  /** Graph tensor fed with the asset path at load time. */
  tensorName: string;
  /** Path relative to the SavedModel folder. */
  path: string;
  /** Size in bytes, when the file exists. */
  bytes?: number;
}

export async function listAssets(dir: SiblingResolver, mg: MetaGraphDef, diags: Diagnostics): Promise<AssetInfo[]> {
  let defs = mg.assetFileDef;
  if (defs.length === 0) {
    // TF ≤ 1.x kept them in the `saved_model_assets` collection as Any-wrapped AssetFileDefs.
    const c = mg.collectionDef['saved_model_assets']?.kind;
    if (c?.case === 'anyList') {
      defs = [];
      for (const a of c.value.value) {
        if (!a.typeUrl.endsWith('tensorflow.AssetFileDef')) continue;
        try {
          defs.push(fromBinary(AssetFileDefSchema, a.value));
        } catch {
          diags.warn('SM_ASSET', 'an entry of the saved_model_assets collection cannot be decoded');
        }
      }
    }
  }
  const out: AssetInfo[] = [];
  for (const d of defs) {
    const t = d.tensorInfo?.encoding;
    const info: AssetInfo = { filename: d.filename, tensorName: t?.case === 'name' ? t.value : '', path: `assets/${d.filename}` };
    const src = d.filename && !d.filename.includes('..') ? await optional(dir, info.path) : undefined;
    if (src) info.bytes = src.size;
    else diags.warn('SM_ASSET_MISSING', `asset '${d.filename}' is not in assets/`);
    out.push(info);
  }
  return out;
}
