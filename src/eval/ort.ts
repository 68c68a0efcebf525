/**
 * onnxruntime-node, loaded lazily: only `modelsmith eval` needs a runtime, so every other verb
 * (and the browser/worker builds) work without it. The module name is held in a variable so
 * bundlers and the type checker do not pull it in.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { DType } from '../core/dtype.js';
import type { Tensor } from '../core/tensor.js';

/** The part of onnxruntime-node's API used here. */
interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: ArrayBufferView | readonly string[];
}
interface OrtSessionHandle {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtModule {
  Tensor: new (type: string, data: ArrayBufferView, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(path: string, options?: Record<string, unknown>): Promise<OrtSessionHandle> };
}

const ORT_MODULE = 'onnxruntime-node';
const loaded = new Map<string, Promise<OrtModule>>();

/**
 * Loads onnxruntime-node once; E_UNSUPPORTED (with the install command) when it is not installed.
 * `moduleName` exists for tests of that failure.
 */
export function loadOrt(moduleName: string = ORT_MODULE): Promise<OrtModule> {
  let p = loaded.get(moduleName);
  if (p) return p;
  p = (async () => {
    try {
      const m = (await import(moduleName)) as Partial<OrtModule> & { default?: Partial<OrtModule> };
      const mod = (m.InferenceSession ? m : m.default) as OrtModule | undefined;
      if (!mod?.InferenceSession || !mod.Tensor) throw new Error('module has no InferenceSession');
      return mod;
    } catch (e) {
      loaded.delete(moduleName);
      throw new ModelsmithError(
        ErrorCodes.UNSUPPORTED,
        `running models needs onnxruntime-node, which could not be loaded (${String((e as Error)?.message ?? e).split('\n')[0]}); ` +
          'install it with: npm install onnxruntime-node (or use --weights-only)',
        { cause: e },
      );
    }
  })();
  loaded.set(moduleName, p);
  return p;
}

const ORT_TYPES: Partial<Record<DType, { ctor: new (b: ArrayBufferLike, o: number, n: number) => ArrayBufferView; size: number }>> = {
  float32: { ctor: Float32Array, size: 4 },
  float64: { ctor: Float64Array, size: 8 },
  float16: { ctor: Uint16Array, size: 2 },
  int8: { ctor: Int8Array, size: 1 },
  uint8: { ctor: Uint8Array, size: 1 },
  int16: { ctor: Int16Array, size: 2 },
  uint16: { ctor: Uint16Array, size: 2 },
  int32: { ctor: Int32Array, size: 4 },
  uint32: { ctor: Uint32Array, size: 4 },
  int64: { ctor: BigInt64Array, size: 8 },
  uint64: { ctor: BigUint64Array, size: 8 },
  bool: { ctor: Uint8Array, size: 1 },
};

export interface RunOptions {
  /** Threads for one session (default 1: results then do not depend on the machine's core count). */
  threads?: number;
}

/** An inference session over a model file, fed and answering with core Tensors. */
export class OrtSession {
  private constructor(
    private readonly ort: OrtModule,
    private readonly handle: OrtSessionHandle,
    readonly path: string,
  ) {}

  static async create(path: string, opts: RunOptions = {}): Promise<OrtSession> {
    const ort = await loadOrt();
    const threads = opts.threads ?? 1;
    try {
      const handle = await ort.InferenceSession.create(path, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        logSeverityLevel: 4, // errors come back as exceptions and are reported once, by us
      });
      return new OrtSession(ort, handle, path);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `onnxruntime cannot load the model: ${firstLine(e)}`, { path, cause: e });
    }
  }

  get inputNames(): readonly string[] {
    return this.handle.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.handle.outputNames;
  }

  /** Runs once; returns every output in outputNames order. `hint` is appended to a failure's message. */
  async run(inputs: readonly Tensor[], hint?: string): Promise<Tensor[]> {
    const feeds: Record<string, OrtTensor> = {};
    for (const t of inputs) feeds[t.name] = this.toOrt(t);
    let out: Record<string, OrtTensor>;
    try {
      out = await this.handle.run(feeds);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `onnxruntime failed to run the model: ${firstLine(e)}${hint ? `; ${hint}` : ''}`, { path: this.path, cause: e });
    }
    return this.handle.outputNames.map((n) => fromOrt(n, out[n]!, this.path));
  }

  async release(): Promise<void> {
    await this.handle.release();
  }

  private toOrt(t: Tensor): OrtTensor {
    const k = ORT_TYPES[t.dtype];
    if (!k) throw new ModelsmithError(ErrorCodes.DTYPE, `onnxruntime-node has no ${t.dtype} tensor type`, { tensor: t.name, path: this.path });
    // A fresh aligned copy: tensor bytes may be an unaligned view into a file buffer.
    const copy = new Uint8Array(t.data); // not slice(): a Node Buffer's slice is a view
    return new this.ort.Tensor(t.dtype, new k.ctor(copy.buffer, 0, copy.byteLength / k.size), t.shape);
  }
}

function fromOrt(name: string, t: OrtTensor, path: string): Tensor {
  const dtype = t.type as DType;
  if (!ORT_TYPES[dtype] || !ArrayBuffer.isView(t.data)) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `output of type ${t.type} cannot be compared`, { tensor: name, path });
  }
  const d = t.data;
  return { name, dtype, shape: [...t.dims], data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice() };
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0]!.slice(0, 400);
}
