/**
 * Spilling converted tensor payloads to a scratch file, so a pass over a model bigger than memory
 * holds one tensor at a time instead of every converted payload.
 *
 * How the model stays valid: a spilled tensor becomes an ordinary EXTERNAL TensorProto whose
 * `location` is this spill's reserved name (".modelsmith-spill-<random>.bin"), and `attach` wraps
 * the model's SiblingResolver in a chain that answers that one name with the scratch file and
 * passes every other name to the original resolver. Everything that reads tensors through
 * modelTensorContext (tensorFromProto, payloadReader, writeOnnx, the eval code) therefore sees the
 * converted data, and writeOnnx streams it into the output (external data file or inline raw_data)
 * in windows like any other external tensor, never holding a whole payload.
 *
 * The name is only ever resolved by the chain: no file of that name is created next to the input
 * or the output, so it cannot clash with or overwrite one. The scratch file itself comes from a
 * `ScratchFactory` (runtime-specific: the Node one in src/platform/scratch.ts creates a file in
 * os.tmpdir(); `memoryScratch` keeps the bytes in memory for runtimes without a file system and for
 * tests). Its owner calls `dispose()` once the model has been written; afterwards reading a spilled
 * tensor fails with E_EXTERNAL_DATA / E_IO.
 *
 * A spill is written sequentially (one payload open at a time); passes run one tensor at a time.
 */
import type { TensorProto } from 'onnx-buf';
import { create } from '@bufbuild/protobuf';
import { StringStringEntryProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { checkRange, type ByteSink, type ByteSource, type SiblingResolver } from '../io/source.js';
import type { OnnxModel } from '../formats/onnx/read.js';

/** An append-only file that can be read back while it grows. */
export interface ScratchFile {
  readonly sink: ByteSink;
  /** Reads what was written so far (`size` grows with the sink). */
  readonly source: ByteSource;
  /** Close and delete it. */
  dispose(): Promise<void>;
}

export type ScratchFactory = () => Promise<ScratchFile>;

export interface SpillOptions {
  scratch: ScratchFactory;
  /** Payloads of at least this many bytes are spilled (default 1 MiB); smaller ones stay inline. */
  threshold?: number;
}

/** Where a converted payload goes: written in consecutive chunks, then stored into its TensorProto. */
export interface PayloadOut {
  readonly length: number;
  /** Append the next chunk (the caller may reuse `chunk` once the promise resolves). */
  write(chunk: Uint8Array): Promise<void>;
  /** Store the payload in `tp`: raw_data, or an external reference to the scratch file. */
  finish(tp: TensorProto): void;
}

export const DEFAULT_SPILL_THRESHOLD = 2 ** 20;

/** A payload kept in memory (raw_data). */
export function memoryPayload(length: number): PayloadOut {
  const bytes = new Uint8Array(length);
  let n = 0;
  return {
    length,
    async write(chunk) {
      if (n + chunk.byteLength > length) throw new Error(`payload overflow: ${n + chunk.byteLength} > ${length} bytes`); // programming error
      bytes.set(chunk, n);
      n += chunk.byteLength;
    },
    finish(tp) {
      if (n !== length) throw new Error(`payload incomplete: ${n} of ${length} bytes`); // programming error
      tp.rawData = bytes;
    },
  };
}

export class Spill {
  /** The reserved external-data location of spilled tensors. */
  readonly location: string;
  readonly threshold: number;
  private file: ScratchFile | undefined;
  private opening: Promise<ScratchFile> | undefined;
  private writing = false;
  private disposed = false;
  private readonly attached = new WeakSet<OnnxModel>();
  /** Payloads and bytes spilled so far. */
  tensors = 0;
  bytes = 0;

  constructor(private readonly opts: SpillOptions) {
    const t = opts.threshold ?? DEFAULT_SPILL_THRESHOLD;
    if (!Number.isSafeInteger(t) || t < 0) throw new ModelsmithError(ErrorCodes.USAGE, `spill threshold must be a non-negative integer, got ${String(opts.threshold)}`);
    this.threshold = t;
    // Unique per spill so two spills (or a model written by an earlier run) never share a name.
    this.location = `.modelsmith-spill-${Date.now().toString(36)}-${Math.floor(Math.random() * 2 ** 48).toString(36)}.bin`;
  }

  /** Whether a payload of `length` bytes is spilled. */
  wants(length: number): boolean {
    return length > 0 && length >= this.threshold;
  }

  /** Route the model's resolver through this spill (idempotent). */
  attach(model: OnnxModel): void {
    if (this.attached.has(model)) return;
    this.attached.add(model);
    const prev: SiblingResolver | undefined = model.siblings;
    model.siblings = async (rel) => {
      if (rel === this.location) return this.source(model.path);
      if (prev) return prev(rel);
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `external data file '${rel}' cannot be resolved (the model was not read from a folder)`, { path: model.path, format: 'onnx' });
    };
  }

  private async source(path: string): Promise<ByteSource> {
    if (this.disposed || !this.file) {
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `spilled tensor data '${this.location}' ${this.disposed ? 'was released (spill disposed before the model was written)' : 'does not exist yet'}`, { path, format: 'onnx' });
    }
    return this.file.source;
  }

  private async scratch(): Promise<ScratchFile> {
    if (this.disposed) throw new Error('spill used after dispose'); // programming error
    if (this.file) return this.file;
    this.opening ??= this.opts.scratch();
    this.file = await this.opening;
    return this.file;
  }

  /** Start a payload of `length` bytes: spilled when `wants(length)`, else kept in memory. */
  async payload(length: number): Promise<PayloadOut> {
    if (!this.wants(length)) return memoryPayload(length);
    if (this.writing) throw new Error('spill: one payload at a time'); // programming error
    const file = await this.scratch();
    this.writing = true;
    const offset = file.sink.position;
    let n = 0;
    return {
      length,
      write: async (chunk) => {
        if (n + chunk.byteLength > length) throw new Error(`payload overflow: ${n + chunk.byteLength} > ${length} bytes`); // programming error
        await file.sink.write(chunk);
        n += chunk.byteLength;
      },
      finish: (tp) => {
        if (n !== length) throw new Error(`payload incomplete: ${n} of ${length} bytes`); // programming error
        this.writing = false;
        this.tensors++;
        this.bytes += length;
        delete (tp as Partial<TensorProto>).rawData;
        tp.dataLocation = TensorProto_DataLocation.EXTERNAL;
        tp.externalData = [
          create(StringStringEntryProtoSchema, { key: 'location', value: this.location }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(length) }),
        ];
      },
    };
  }

  /** Close and delete the scratch file. Spilled tensors cannot be read afterwards. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const f = this.file ?? (this.opening ? await this.opening.catch(() => undefined) : undefined);
    this.file = undefined;
    await f?.dispose();
  }
}

/** Where a pass puts a converted payload: the spill when there is one, else memory. */
export function payloadOut(spill: Spill | undefined, length: number): Promise<PayloadOut> {
  return spill ? spill.payload(length) : Promise.resolve(memoryPayload(length));
}

/** Scratch in memory: no memory saved, but the same code path (browsers, tests). */
export function memoryScratch(name = '<spill>'): ScratchFactory {
  return async () => {
    let chunks: Uint8Array[] = [];
    let size = 0;
    let flat: Uint8Array | undefined;
    let disposed = false;
    const bytes = (): Uint8Array => {
      if (disposed) throw new ModelsmithError(ErrorCodes.IO, 'scratch data was released', { path: name });
      if (!flat || flat.byteLength !== size) {
        flat = new Uint8Array(size);
        let o = 0;
        for (const c of chunks) { flat.set(c, o); o += c.byteLength; }
        chunks = [flat];
      }
      return flat;
    };
    const source: ByteSource = {
      name,
      get size() { return size; },
      async read(offset, length) {
        checkRange(this, offset, length);
        return bytes().slice(offset, offset + length);
      },
      async readInto(offset, target) {
        checkRange(this, offset, target.byteLength);
        target.set(bytes().subarray(offset, offset + target.byteLength));
      },
    };
    return {
      sink: {
        get position() { return size; },
        async write(chunk) {
          if (disposed) throw new ModelsmithError(ErrorCodes.IO, 'scratch data was released', { path: name });
          chunks.push(chunk.slice());
          size += chunk.byteLength;
        },
      },
      source,
      async dispose() { disposed = true; chunks = []; flat = undefined; },
    };
  };
}
