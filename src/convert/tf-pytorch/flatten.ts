/**
 * The Flatten row permutation (formats.md §6.3 #1): Keras flattens a channels-last feature map in
 * (H, W, C) order, torch flattens NCHW in (C, H, W) order, so the Dense right after a Flatten needs
 * its kernel rows permuted. Only the channel count matters: row s·C + c moves to c·S + s.
 */
import type { Diagnostics } from '../../core/errors.js';
import type { KerasModelMeta } from './keras-meta.js';
import type { TfLayer } from './layers.js';

/** C for a Dense fed by a Flatten of a channels-last map, undefined when no permutation is needed. */
export function flattenChannels(layer: TfLayer, keras: KerasModelMeta, override: Record<string, number> | undefined, diags: Diagnostics): number | undefined {
  const forced = override?.[layer.name];
  if (forced !== undefined) return forced;
  const from = keras.inputOf.get(layer.name);
  const src = from !== undefined ? keras.byName.get(from) : undefined;
  if (!src || src.className !== 'Flatten') return undefined;
  if (src.config?.['data_format'] === 'channels_first') return undefined;
  const shape = src.inputShape;
  if (!shape) {
    diags.warn('TF_TORCH_FLATTEN_UNKNOWN', `Dense '${layer.name}' follows Flatten '${src.name ?? from}' whose input shape is unknown; rows left in Keras (H,W,C) order — pass flatten: { '${layer.name}': C } if the input was a feature map`, { tensor: layer.name });
    return undefined;
  }
  // [batch, features] needs nothing; [batch, ..., C] is channels-last.
  if (shape.length <= 2) return undefined;
  const c = shape[shape.length - 1];
  if (c === null || c === undefined) {
    diags.warn('TF_TORCH_FLATTEN_UNKNOWN', `Flatten '${src.name ?? from}' before Dense '${layer.name}' has an unknown channel count`, { tensor: layer.name });
    return undefined;
  }
  return c;
}
