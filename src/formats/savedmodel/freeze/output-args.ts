/**
 * Function bodies name node outputs `node:outarg:index`, where `outarg` is an output argument of the
 * op's OpDef; top-level graphs use the flat `node:k`. Turning one into the other needs the op's
 * output arguments. Ops with a single output argument (nearly all) need nothing: the flat index is
 * `index`. The ops below have several; an argument's size is 1, or the attr that holds its length
 * (a number attr, or a type-list attr whose length counts).
 */
import type { NodeDef } from '../gen/tensorflow/graph_pb.js';

type Arg = [name: string, size: 1 | string];

const BN: Arg[] = [['y', 1], ['batch_mean', 1], ['batch_variance', 1], ['reserve_space_1', 1], ['reserve_space_2', 1]];
const BN3: Arg[] = [...BN, ['reserve_space_3', 1]];

const OUTPUT_ARGS: Record<string, Arg[]> = {
  FusedBatchNorm: BN,
  FusedBatchNormV2: BN,
  FusedBatchNormV3: BN3,
  _FusedBatchNormEx: BN3,
  Unique: [['y', 1], ['idx', 1]],
  UniqueV2: [['y', 1], ['idx', 1]],
  UniqueWithCounts: [['y', 1], ['idx', 1], ['count', 1]],
  UniqueWithCountsV2: [['y', 1], ['idx', 1], ['count', 1]],
  TopK: [['values', 1], ['indices', 1]],
  TopKV2: [['values', 1], ['indices', 1]],
  BroadcastGradientArgs: [['r0', 1], ['r1', 1]],
  Switch: [['output_false', 1], ['output_true', 1]],
  RefSwitch: [['output_false', 1], ['output_true', 1]],
  Merge: [['output', 1], ['value_index', 1]],
  RefMerge: [['output', 1], ['value_index', 1]],
  MaxPoolWithArgmax: [['output', 1], ['argmax', 1]],
  NonMaxSuppressionV4: [['selected_indices', 1], ['valid_outputs', 1]],
  NonMaxSuppressionV5: [['selected_indices', 1], ['selected_scores', 1], ['valid_outputs', 1]],
  CombinedNonMaxSuppression: [['nmsed_boxes', 1], ['nmsed_scores', 1], ['nmsed_classes', 1], ['valid_detections', 1]],
  QuantizeV2: [['output', 1], ['output_min', 1], ['output_max', 1]],
  Svd: [['s', 1], ['u', 1], ['v', 1]],
  Qr: [['q', 1], ['r', 1]],
  StringSplit: [['indices', 1], ['values', 1], ['shape', 1]],
  StringSplitV2: [['indices', 1], ['values', 1], ['shape', 1]],
  SparseReshape: [['output_indices', 1], ['output_shape', 1]],
  SparseFillEmptyRows: [['output_indices', 1], ['output_values', 1], ['empty_row_indicator', 1], ['reverse_index_map', 1]],
  StringNGrams: [['ngrams', 1], ['ngrams_splits', 1]],
  ParseExample: [['sparse_indices', 'Nsparse'], ['sparse_values', 'sparse_types'], ['sparse_shapes', 'Nsparse'], ['dense_values', 'Tdense']],
  ParseExampleV2: [
    ['sparse_indices', 'num_sparse'], ['sparse_values', 'sparse_types'], ['sparse_shapes', 'num_sparse'], ['dense_values', 'Tdense'],
    ['ragged_values', 'ragged_value_types'], ['ragged_row_splits', 'ragged_split_types'],
  ],
};

function argSize(n: NodeDef, size: 1 | string): number {
  if (size === 1) return 1;
  const v = n.attr[size]?.value;
  if (v?.case === 'i') return Number(v.value);
  if (v?.case === 'list') return v.value.type.length;
  return 0;
}

/**
 * Flat output index of `outarg:index` on node `n`, or undefined when the op is in the table but has
 * no such argument (a malformed reference).
 */
export function flatOutputIndex(n: NodeDef, outarg: string, index: number): number | undefined {
  const args = OUTPUT_ARGS[n.op];
  if (!args) return index;
  let base = 0;
  for (const [name, size] of args) {
    if (name === outarg) return base + index;
    base += argSize(n, size);
  }
  return undefined;
}
