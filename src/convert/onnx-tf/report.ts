/** What a conversion did, JSON-able for `convert --json`. */
export interface OnnxToTfReport {
  /** ONNX op type → nodes converted. */
  opsMapped: Record<string, number>;
  /** NCHW↔NHWC transposes put around spatial ops (and around NHWC I/O). */
  transposesInserted: number;
  /** Transpose nodes (inserted or from the model) removed by the layout pass. */
  transposesRemoved: number;
  /** Transpose nodes in the final graph. */
  transposesLeft: number;
  /** Op type → count; non-empty only in the error path (conversion refuses unsupported ops). */
  unsupported: Record<string, number>;
  /** TF nodes in the graph (without the variable/restore nodes the SavedModel writer adds). */
  nodes: number;
  variables: number;
  /**
   * Signature tensors whose TF form differs from the ONNX value (name → how): 8/4/2-bit dtypes in
   * their uint8/int8 carrier, sequences stacked on a new axis 0.
   */
  ioForms: Record<string, string>;
}
