/**
 * Contracts of the execution engine (ONNX forward + reverse-mode gradients on the WASM kernels).
 * Op handlers live in ./ops/<family>.ts and register themselves in ./registry.ts; the executor
 * (./engine.ts) walks the graph in topological order, records a tape when gradients are wanted and
 * replays it backwards. Handlers are synchronous: kernels are synchronous and a training step runs
 * thousands of ops, so no promise per op.
 *
 * Memory: values are plain typed arrays on the JS heap. Heavy kernels (GEMM, im2col conv, pooling,
 * reductions) copy their operands into the kernel arena, run, copy the result out and reset the
 * arena to the mark they started from (`withArena`), so the arena never holds a value between ops.
 */
import type { NodeProto } from 'onnx-buf';
import type { Kernels } from '../kernels/loader.js';
import type { Attrs } from './attrs.js';

/** Element types the engine computes with. Float math is float32; int64/int32 carry shapes and indices. */
export type EDType = 'float32' | 'int64' | 'int32' | 'bool';

export type EData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

/** A dense C-order tensor value. `data.length` equals the product of `dims` (1 for a scalar, dims []). */
export interface Value {
  dtype: EDType;
  dims: number[];
  data: EData;
}

/** A float32 value (what gradients always are). */
export interface FValue extends Value {
  dtype: 'float32';
  data: Float32Array;
}

export interface OpContext {
  node: NodeProto;
  /** Typed attribute access with ONNX defaults (see ./attrs.ts). */
  attrs: Attrs;
  /** The model's ai.onnx opset (attribute-vs-input forms differ across opsets). */
  opset: number;
  kernels: Kernels;
  /** True while recording for gradients (Dropout stays identity either way: fine-tuning runs in eval mode). */
  training: boolean;
  /**
   * Set during backward: which inputs need a gradient (a parameter or a `wrt` input depends on
   * them). Handlers may skip the others (the first conv's input gradient is a third of its cost).
   */
  needsGrad?: readonly boolean[];
}

export interface ForwardResult {
  /** One value per node output, in order (trailing optional outputs may be omitted). */
  outputs: Value[];
  /** Whatever backward needs beyond inputs and outputs (argmax indices, normalised x, …). Kept only when training. */
  saved?: unknown;
}

export interface OpDef {
  /**
   * Validates attributes/opset before anything runs, so an unsupported feature is reported up front
   * (E_UNSUPPORTED naming the node and the attribute). Optional.
   */
  check?(ctx: Omit<OpContext, 'kernels' | 'training'>): void;
  forward(ctx: OpContext, inputs: readonly (Value | undefined)[]): ForwardResult;
  /**
   * Gradients with respect to each input, given gradients of the outputs (undefined for an output
   * nothing downstream depends on). Return undefined for inputs that are not differentiable
   * (shapes, indices) or receive no gradient. Absent: the op is not differentiable, and the engine
   * refuses (E_UNSUPPORTED) a backward pass through it when a parameter depends on it.
   */
  backward?(
    ctx: OpContext,
    inputs: readonly (Value | undefined)[],
    outputs: readonly Value[],
    gradOutputs: readonly (FValue | undefined)[],
    saved: unknown,
  ): (FValue | undefined)[];
}

/** Opaque record of a forward pass, consumed by `backward`. */
export interface Tape {
  readonly kind: 'tape';
}

export interface RunOptions {
  /** Names to return (graph outputs by default). Any intermediate value name is allowed (calibration collects activations this way). */
  outputs?: string[];
}

/**
 * The executor's public face. Parameters are the float32 initializers (trainable); other
 * initializers (int64 shapes, …) are constants.
 */
export interface EngineApi {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Trainable parameters by initializer name. Optimisers update `data` in place. */
  readonly params: Map<string, FValue>;
  /** Inference. */
  run(feeds: Record<string, Value>, opts?: RunOptions): Record<string, Value>;
  /** Forward pass that records a tape for `backward`. */
  forward(feeds: Record<string, Value>, opts?: RunOptions): { values: Record<string, Value>; tape: Tape };
  /**
   * Reverse pass: `seeds` are dL/d(value) for some values of the forward pass (usually the loss
   * gradient w.r.t. the logits). Returns dL/d(param) for every parameter reached, plus dL/d(input)
   * for graph inputs named in `wrt`.
   */
  backward(tape: Tape, seeds: Record<string, FValue>, wrt?: readonly string[]): Map<string, FValue>;
}
