/**
 * Caffe blobs as a WeightSet. Names follow the layer's role for the blob when the layer type is
 * known (`conv1.weight`, `conv1.bias`, `bn1.mean`, `bn1.variance`, `bn1.scale_factor`), the way
 * PyTorch state_dicts name them, so a caffemodel converted to safetensors reads naturally; other
 * layers use `<layer>.<index>`. Legacy 4-D blob shapes ([1,1,N,K] for an InnerProduct weight) are
 * squeezed to the rank the layer expects; the original shape is kept in `extra.storedShape`.
 */
import { byteLength } from '../../core/dtype.js';
import type { LazyTensor, WeightSet } from '../weights.js';
import { blobBytes, blobInfo, checkBlob, squeezeToRank } from './blob.js';
import { readDiagnostics, readPath } from './diagnostics.js';
import type { BlobProto, LayerParameter, NetParameter } from './gen/caffe_pb.js';

/** Blob roles and expected ranks per layer type (undefined rank: keep as stored). */
const ROLES: Readonly<Record<string, readonly (readonly [string, number | undefined])[]>> = {
  Convolution: [['weight', undefined], ['bias', 1]],
  Deconvolution: [['weight', undefined], ['bias', 1]],
  InnerProduct: [['weight', 2], ['bias', 1]],
  BatchNorm: [['mean', 1], ['variance', 1], ['scale_factor', 1]],
  Scale: [['weight', undefined], ['bias', undefined]],
  Bias: [['bias', undefined]],
  PReLU: [['weight', 1]],
  Embed: [['weight', 2], ['bias', 1]],
};

export function blobTensorName(layer: LayerParameter, index: number): string {
  const role = ROLES[layer.type]?.[index];
  return `${layer.name}.${role ? role[0] : String(index)}`;
}

/** The shape to present for blob `index` of `layer`: legacy leading 1s squeezed to the expected rank. */
export function presentedShape(layer: LayerParameter, index: number, blob: BlobProto): number[] {
  const info = blobInfo(blob);
  const rank = ROLES[layer.type]?.[index]?.[1];
  if (!info.legacy || rank === undefined) return info.shape;
  return squeezeToRank(info.shape, rank) ?? info.shape;
}

export function caffeWeights(net: NetParameter): WeightSet {
  const tensors: LazyTensor[] = [];
  const used = new Set<string>();
  for (const layer of net.layer) {
    for (const [i, blob] of layer.blobs.entries()) {
      let name = blobTensorName(layer, i);
      // Layer names are not guaranteed unique in a caffemodel; tensor names must be.
      for (let k = 2; used.has(name); k++) name = `${blobTensorName(layer, i)}#${k}`;
      used.add(name);
      // Nets from text (or built in memory) were never size-checked; caffemodels were, on read.
      const path = readPath(net);
      const info = checkBlob(blob, { tensor: name, ...(path !== undefined ? { path } : {}) });
      const shape = presentedShape(layer, i, blob);
      tensors.push({
        name,
        dtype: info.dtype,
        shape,
        byteLength: byteLength(info.dtype, info.count),
        load: async () => blobBytes(blob),
        extra: { layer: layer.name, layerType: layer.type, blobIndex: i, ...(info.legacy ? { storedShape: info.shape } : {}) },
      });
    }
  }
  const set: WeightSet = { format: 'caffemodel', tensors, diagnostics: [...readDiagnostics(net)] };
  const path = readPath(net);
  if (path !== undefined) set.path = path;
  return set;
}
