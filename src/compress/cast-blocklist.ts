/**
 * Ops that the float16 pass leaves in float32 (default ONNX domain). A node of one of these ops keeps
 * float32 inputs and outputs; the pass puts a Cast in front of / behind it where its neighbours run in
 * float16. Nodes of any other domain (com.microsoft, local functions, …) are always kept float32 too:
 * their type constraints are unknown to the pass.
 *
 * Each entry says why. Extend with `--block-ops` / `blockOps` for model-specific accuracy problems.
 */
export const DEFAULT_BLOCKED_OPS: readonly { op: string; why: string }[] = [
  // Randomness: onnxruntime CPU implements these for float/double only, and the `dtype` attribute
  // (default float) fixes the output type, so converting the surrounding graph cannot change them.
  { op: 'RandomNormal', why: 'dtype attribute; onnxruntime CPU has float/double kernels only' },
  { op: 'RandomUniform', why: 'dtype attribute; onnxruntime CPU has float/double kernels only' },
  { op: 'RandomNormalLike', why: 'dtype attribute; onnxruntime CPU has float/double kernels only' },
  { op: 'RandomUniformLike', why: 'dtype attribute; onnxruntime CPU has float/double kernels only' },
  { op: 'Multinomial', why: 'sampling probabilities need float32 precision; float/double kernels only' },
  { op: 'Bernoulli', why: 'dtype attribute; float/double kernels only' },
  // Output type chosen by an attribute, not by the inputs.
  { op: 'EyeLike', why: 'dtype attribute decides the output type' },
  { op: 'HannWindow', why: 'output_datatype attribute decides the output type' },
  { op: 'HammingWindow', why: 'output_datatype attribute decides the output type' },
  { op: 'BlackmanWindow', why: 'output_datatype attribute decides the output type' },
  { op: 'MelWeightMatrix', why: 'output_datatype attribute decides the output type' },
  // Accuracy or missing kernels.
  { op: 'Range', why: 'no float16 kernel in onnxruntime CPU; start + i·delta loses integers above 2048 in float16' },
  { op: 'DFT', why: 'spectral sums overflow / lose precision in float16' },
  { op: 'STFT', why: 'spectral sums overflow / lose precision in float16' },
  { op: 'QuantizeLinear', why: 'the scale must stay exact: a float16 scale changes the quantized values' },
  { op: 'DequantizeLinear', why: 'output type follows the scale; float16 scales need opset 19 and change results' },
  { op: 'DynamicQuantizeLinear', why: 'float input only; its scale output is float32' },
  // The ONNX type constraints allow tensor(float) (and double) only: a float16 input is an invalid model.
  { op: 'Celu', why: 'T is tensor(float) only' },
  { op: 'NonMaxSuppression', why: 'boxes and scores are tensor(float) only' },
  { op: 'QLinearConv', why: 'x_scale / w_scale / y_scale are tensor(float) only' },
  { op: 'QLinearMatMul', why: 'scales are tensor(float) only before opset 21' },
  // Function ops that onnxruntime expands with float32 constants inside (e.g. the epsilon of
  // MeanVarianceNormalization): a float16 input then clashes with them.
  { op: 'MeanVarianceNormalization', why: 'expanded with float32 constants; float16 input gives a type clash' },
  // Sequence / optional ops: the pass tracks tensor element types only, so the tensors that enter or
  // leave a sequence stay float32 (the sequence's element type is never changed).
  ...[
    'SequenceConstruct', 'SequenceInsert', 'SequenceAt', 'SequenceErase', 'SequenceEmpty', 'SequenceLength', 'SequenceMap',
    'SplitToSequence', 'ConcatFromSequence', 'Optional', 'OptionalGetElement', 'OptionalHasElement',
  ].map((op) => ({ op, why: 'sequence / optional values keep their float32 element type' })),
  // Subgraph ops keep float32 interfaces; their bodies are converted inside (see cast.ts). This keeps
  // then/else output types and loop-carried types consistent without rewriting the signatures.
  { op: 'If', why: 'float32 interface; the branches are converted inside' },
  { op: 'Loop', why: 'float32 interface (loop-carried values); the body is converted inside' },
  { op: 'Scan', why: 'float32 interface (scan state); the body is converted inside' },
];

/**
 * Inputs of otherwise converted ops that the ONNX type constraints fix at tensor(float) (or that the
 * onnxruntime kernels read as float): op → input indices kept float32.
 */
export const FLOAT32_INPUTS: Readonly<Record<string, readonly number[]>> = {
  // Resize: roi (T2) is read as float by onnxruntime; scales is tensor(float) in every opset.
  Resize: [1, 2],
  // Upsample-9: scales is tensor(float).
  Upsample: [1],
};
