/**
 * The JS shapes of unpickled Python values. Plain JS values stand in where the mapping is lossless
 * (None → null, bool, str, list → Array, int → number or bigint when past 2^53, float → number);
 * everything else gets a small class so later stages can tell a tuple from a list, a dict with
 * non-string keys from an object, and an inert placeholder from real data.
 */
import type { DType } from '../../core/dtype.js';

export class PyTuple {
  constructor(readonly items: unknown[]) {}
}

/** dict / OrderedDict / Counter. Keys keep Python insertion order; `attrs` holds BUILD state (OrderedDict._metadata). */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  attrs?: unknown;
  constructor(readonly cls: string = 'builtins.dict') {}
}

export class PySet {
  constructor(readonly items: unknown[], readonly frozen: boolean) {}
}

export class PyBytes {
  constructor(readonly data: Uint8Array) {}
}

export class PyComplex {
  constructor(readonly re: number, readonly im: number) {}
}

/** A GLOBAL reference. It is never resolved to anything callable: the interpreter decides what it means. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An inert stand-in for an instance of a class we do not interpret (argparse.Namespace, nn.Module
 * subclasses, TorchScript `__torch__.*` classes). It records what would have been called and with
 * what, so tensors inside its state can still be found.
 */
export class PyObject {
  state?: unknown;
  listItems?: unknown[];
  dictItems?: Map<unknown, unknown>;
  constructor(readonly cls: string, readonly args: unknown[]) {}
}

/** A torch dtype object (`torch.float32`); `dtype` is undefined for dtypes our table lacks. */
export class TorchDtype {
  constructor(readonly torchName: string, readonly dtype: DType | undefined) {}
}

/** A storage named by a persistent id. Byte ranges are resolved later by the container reader. */
export interface StorageRef {
  readonly kind: 'storage';
  /** Key of the bytes in the container (zip record `data/<key>`, legacy root key). */
  readonly key: string;
  /** Element dtype for typed storages; undefined for UntypedStorage (bytes, dtype comes from the tensor). */
  readonly dtype: DType | undefined;
  /** Quantized storage kind ('qint8', 'quint8', 'qint32'), whose bytes are the int representation. */
  readonly quant?: string;
  /** Bytes per element of the storage (1 for untyped). */
  readonly elemSize: number;
  /** Storage size in elements, as claimed by the persistent id. */
  readonly numel: number;
  readonly location: string;
  /** Legacy view storages: a slice of the root storage starting at this element offset. */
  readonly viewOffset?: number;
  /** Class name for messages (`torch.FloatStorage`). */
  readonly typeName: string;
}

export interface Quantization {
  /** 'qint8' | 'quint8' | 'qint32'. */
  qdtype: string;
  qscheme: string;
  scale?: number;
  zeroPoint?: number;
  scales?: TensorRef;
  zeroPoints?: TensorRef;
  axis?: number;
}

/** A tensor rebuilt by an interpreted torch._utils function: a view onto a storage. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    /** In elements of `dtype`. */
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly dtype: DType,
    readonly quant?: Quantization,
  ) {}
}

export function isPyInt(v: unknown): v is number | bigint {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}
