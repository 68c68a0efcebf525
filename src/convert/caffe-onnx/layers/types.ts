/** The contract between the converter and one layer family. */
import type { LayerParameter } from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';

/**
 * Convert `layer` (the context's current layer) into nodes. Returns how many of the *following*
 * layers it consumed too (fusions: BatchNorm + Scale), 0 or undefined otherwise.
 */
export type LayerConverter = (ctx: ConvertContext, layer: LayerParameter) => number | void;

export type LayerTable = Readonly<Record<string, LayerConverter>>;
