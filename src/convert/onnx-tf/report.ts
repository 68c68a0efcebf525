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
}
