/**
 * Messages between the page (main.ts) and the Web Worker (worker.ts). Everything here is
 * structured-clone friendly (plain objects, File, Blob), so no class instances cross the boundary.
 */

export type Operation = 'quantize' | 'cast' | 'prune' | 'convert';

/** The options the page collects; each operation reads only its own fields (same meaning as the CLI flags). */
export interface RunOptions {
  op: Operation;
  /** quantize: weight (QDQ int8/uint8), int4 (MatMulNBits / packed 4-bit), dynamic (ONNX only). */
  method?: 'weight' | 'int4' | 'dynamic';
  dtype?: 'int8' | 'uint8';
  perChannel?: boolean;
  symmetric?: boolean;
  /** cast: target float type. */
  to?: 'float16' | 'bfloat16';
  /** prune: magnitude / global (ONNX only) / nm (2:4). */
  pruneMethod?: 'magnitude' | 'global' | 'nm';
  sparsity?: number;
  /** convert: output container. */
  target?: 'onnx' | 'safetensors' | 'pt';
}

export type ToWorker =
  | { type: 'open'; file: File }
  | { type: 'run'; options: RunOptions };

/** A table the page renders as is: the worker decides what is worth showing per format and pass. */
export interface Table {
  title: string;
  head: string[];
  rows: string[][];
  /** Rows left out to keep the page light. */
  more?: number;
}

export interface Summary {
  file: string;
  format: string;
  /** 'onnx' models run graph passes; 'weights' containers run the tensor-only passes. */
  kind: 'onnx' | 'weights';
  fileBytes: number;
  /** Headline facts (label, value), in display order. */
  facts: [string, string][];
  tables: Table[];
  diagnostics: string[];
}

export interface RunResult {
  blob: Blob;
  fileName: string;
  inputBytes: number;
  outputBytes: number;
  seconds: number;
  /** One-line description of what was done. */
  headline: string;
  tables: Table[];
  diagnostics: string[];
}

export interface ErrorInfo {
  message: string;
  /** ModelsmithError code (E_…) when the failure came from the library. */
  code?: string;
}

export type FromWorker =
  | { type: 'ready'; simd: boolean }
  | { type: 'summary'; summary: Summary }
  | { type: 'progress'; phase: string; done: number; total: number }
  | { type: 'result'; result: RunResult }
  | { type: 'error'; error: ErrorInfo };
