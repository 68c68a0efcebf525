/**
 * ONNX writer. The model stays a ModelProto; small parts are encoded with @bufbuild's toBinary, and
 * the payloads of large tensors are streamed to the sink with the protobuf framing (tag, length)
 * written here, so a big model never has to exist as one encoded buffer. Optionally moves tensors to
 * an external data file (4096-aligned), and inlines or re-writes tensors that were external on read.
 *
 * Field order follows toBinary (field number order, unknown fields last), so a model written without
 * changes is byte-identical to `toBinary(ModelProtoSchema, model.proto)`.
 */
import { create, toBinary, type DescField, type DescMessage, type Message } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema, TensorProtoSchema, TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { ByteSink } from '../../io/source.js';
import type { OnnxModel } from './read.js';
import {
  checkExternalLocation,
  collectTensors,
  hasRawData,
  isExternal,
  modelTensorContext,
  openExternalData,
  payloadByteLength,
  tensorFromProtoSync,
  type TensorEntry,
} from './tensor.js';
import { lengthDelimitedHeader, MAX_MESSAGE_BYTES } from './wire.js';

export interface ExternalDataOptions {
  /** File name written into the model, relative to the model's folder (e.g. "model.onnx.data"). */
  location: string;
  /** Tensors whose payload has at least this many bytes go to the external file (default 1024). */
  threshold?: number;
  /** Receives the external file's bytes. Offsets are relative to the sink's position 0. */
  sink: ByteSink;
  /** Offset alignment (default 4096, the page size, so the data can be mmapped). */
  alignment?: number;
  /**
   * Also move tensor-valued node attributes (Constant `value`, …), not only initializers
   * (onnx's `convert_attribute`). Default false, as in onnx.
   */
  attributes?: boolean;
}

export interface WriteOnnxOptions {
  externalData?: ExternalDataOptions;
  /** Inline raw_data payloads of at least this many bytes are streamed rather than encoded in one buffer (default 1 MiB). */
  streamThreshold?: number;
}

export interface WriteOnnxStats {
  /** Bytes written to the model sink. */
  modelBytes: number;
  /** Bytes written to the external data sink (including alignment padding). */
  externalBytes: number;
  /** Tensors stored in the external file. */
  externalTensors: number;
  /** Tensors that were external on read and are now inline. */
  inlinedTensors: number;
  /** Inline tensors whose payload was streamed. */
  streamedTensors: number;
}

/** A tensor payload written straight to the sink. */
interface Payload {
  length: number;
  write(out: BufferedSink): Promise<void>;
}

interface Override {
  /** The TensorProto to encode in place of the original (raw_data absent when `payload` is set). */
  proto: TensorProto;
  /** Streamed as raw_data (field 9). */
  payload?: Payload;
}

const RAW_DATA_FIELD = 9;
const WINDOW = 16 * 2 ** 20;

class BufferedSink {
  private buf = new Uint8Array(1 << 20);
  private n = 0;
  written = 0;
  constructor(private readonly sink: ByteSink) {}

  async write(bytes: Uint8Array): Promise<void> {
    this.written += bytes.byteLength;
    if (bytes.byteLength >= this.buf.byteLength / 4) {
      await this.flush();
      for (let o = 0; o < bytes.byteLength; o += 64 * 2 ** 20) {
        await this.sink.write(bytes.subarray(o, Math.min(bytes.byteLength, o + 64 * 2 ** 20)));
      }
      return;
    }
    if (this.n + bytes.byteLength > this.buf.byteLength) await this.flush();
    this.buf.set(bytes, this.n);
    this.n += bytes.byteLength;
  }

  async zeros(count: number): Promise<void> {
    const z = new Uint8Array(Math.min(count, 65536));
    while (count > 0) {
      const k = Math.min(count, z.byteLength);
      await this.write(z.subarray(0, k));
      count -= k;
    }
  }

  async flush(): Promise<void> {
    if (this.n === 0) return;
    // The sink may keep a reference until write resolves; a fresh buffer avoids any aliasing.
    const chunk = this.buf.subarray(0, this.n);
    this.buf = new Uint8Array(this.buf.byteLength);
    this.n = 0;
    await this.sink.write(chunk);
  }
}

function bytesPayload(bytes: Uint8Array): Payload {
  return { length: bytes.byteLength, write: (out) => out.write(bytes) };
}

function shallowClone<T extends object>(m: T): T {
  return Object.assign(Object.create(Object.getPrototypeOf(m) as object) as T, m);
}

// ------------------------------------------------------------------------------------------------
// Which message types can contain a TensorProto (so the heavy-path walk can skip the rest)
// ------------------------------------------------------------------------------------------------

const canHoldTensor = new WeakMap<DescMessage, boolean>();

function messageFieldsOf(desc: DescMessage): { field: DescField; message: DescMessage }[] {
  const out: { field: DescField; message: DescMessage }[] = [];
  for (const f of desc.fields) {
    if (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')) out.push({ field: f, message: f.message as DescMessage });
  }
  return out;
}

function holdsTensor(desc: DescMessage): boolean {
  const known = canHoldTensor.get(desc);
  if (known !== undefined) return known;
  // Fixpoint over everything reachable from desc.
  const all: DescMessage[] = [];
  const seen = new Set<DescMessage>();
  const todo = [desc];
  while (todo.length) {
    const d = todo.pop()!;
    if (seen.has(d)) continue;
    seen.add(d);
    all.push(d);
    for (const { message } of messageFieldsOf(d)) todo.push(message);
  }
  const result = new Map<DescMessage, boolean>(all.map((d) => [d, d.typeName === TensorProtoSchema.typeName]));
  for (let changed = true; changed; ) {
    changed = false;
    for (const d of all) {
      if (result.get(d)) continue;
      if (messageFieldsOf(d).some(({ message }) => result.get(message))) {
        result.set(d, true);
        changed = true;
      }
    }
  }
  for (const [d, v] of result) canHoldTensor.set(d, v);
  return result.get(desc)!;
}

type AnyMessage = Message & Record<string, unknown>;

/** Marks every message on a path from `msg` down to an overridden tensor. */
function markHeavy(msg: AnyMessage, desc: DescMessage, overrides: Map<object, Override>, heavy: Set<object>): boolean {
  if (desc.typeName === TensorProtoSchema.typeName) {
    if (overrides.has(msg)) {
      heavy.add(msg);
      return true;
    }
    return false;
  }
  let any = false;
  for (const { field, message } of messageFieldsOf(desc)) {
    if (!holdsTensor(message)) continue;
    const v = msg[field.localName];
    if (field.fieldKind === 'list') {
      for (const child of v as AnyMessage[]) if (markHeavy(child, message, overrides, heavy)) any = true;
    } else if (v !== undefined && Object.prototype.hasOwnProperty.call(msg, field.localName)) {
      if (markHeavy(v as AnyMessage, message, overrides, heavy)) any = true;
    }
  }
  if (any) heavy.add(msg);
  return any;
}

// ------------------------------------------------------------------------------------------------
// Encoding a message with streamed parts
// ------------------------------------------------------------------------------------------------

type Part = Uint8Array | Payload;

interface Encoded {
  parts: Part[];
  size: number;
}

function sortedFields(desc: DescMessage): DescField[] {
  return desc.fields.concat().sort((a, b) => a.number - b.number);
}

class Encoder {
  constructor(private readonly overrides: Map<object, Override>, private readonly heavy: Set<object>) {}

  encode(msg: AnyMessage, desc: DescMessage): Encoded {
    const o = this.overrides.get(msg);
    if (o) return this.encodeTensor(o);
    if (!this.heavy.has(msg)) {
      const b = toBinary(desc, msg);
      return { parts: [b], size: b.byteLength };
    }
    const parts: Part[] = [];
    let size = 0;
    const push = (p: Part): void => {
      parts.push(p);
      size += p instanceof Uint8Array ? p.byteLength : p.length;
    };
    let run: AnyMessage | undefined;
    let runHasFields = false;
    const runMsg = (): AnyMessage => (run ??= create(desc) as AnyMessage);
    const flushRun = (): void => {
      if (run && runHasFields) push(toBinary(desc, run));
      run = undefined;
      runHasFields = false;
    };
    const copied = new Set<string>();
    for (const field of sortedFields(desc)) {
      const name = field.localName;
      if (field.oneof) {
        const oneof = msg[field.oneof.localName] as { case?: string } | undefined;
        if (oneof?.case === name && !copied.has(field.oneof.localName)) {
          copied.add(field.oneof.localName);
          runMsg()[field.oneof.localName] = oneof;
          runHasFields = true;
        }
        continue;
      }
      const value = msg[name];
      const isMessage = field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message');
      if (field.fieldKind === 'list') {
        const list = value as AnyMessage[];
        if (list.length === 0) continue;
        if (!isMessage || !list.some((c) => this.heavy.has(c))) {
          runMsg()[name] = list;
          runHasFields = true;
          continue;
        }
        // Mixed list: light elements go through toBinary in runs, heavy ones are framed here.
        let light: AnyMessage[] = [];
        const flushLight = (): void => {
          if (light.length) {
            runMsg()[name] = light;
            runHasFields = true;
            flushRun();
            light = [];
          }
        };
        flushRun();
        for (const child of list) {
          if (!this.heavy.has(child)) {
            light.push(child);
            continue;
          }
          flushLight();
          this.pushChild(field.number, child, field.message as DescMessage, push);
        }
        flushLight();
        continue;
      }
      if (value === undefined || !Object.prototype.hasOwnProperty.call(msg, name)) continue;
      if (isMessage && this.heavy.has(value as object)) {
        flushRun();
        this.pushChild(field.number, value as AnyMessage, field.message as DescMessage, push);
        continue;
      }
      runMsg()[name] = value;
      runHasFields = true;
    }
    if (msg.$unknown && (msg.$unknown as unknown[]).length) {
      runMsg().$unknown = msg.$unknown;
      runHasFields = true;
    }
    flushRun();
    return { parts, size };
  }

  private pushChild(fieldNo: number, child: AnyMessage, desc: DescMessage, push: (p: Part) => void): void {
    const enc = this.encode(child, desc);
    push(lengthDelimitedHeader(fieldNo, enc.size));
    for (const p of enc.parts) push(p);
  }

  private encodeTensor(o: Override): Encoded {
    const tp = o.proto;
    if (!o.payload) {
      const b = toBinary(TensorProtoSchema, tp);
      return { parts: [b], size: b.byteLength };
    }
    const before = create(TensorProtoSchema) as AnyMessage;
    const after = create(TensorProtoSchema) as AnyMessage;
    const src = tp as unknown as AnyMessage;
    for (const field of TensorProtoSchema.fields) {
      if (field.number === RAW_DATA_FIELD) continue;
      const name = field.localName;
      if (!Object.prototype.hasOwnProperty.call(src, name)) continue;
      (field.number < RAW_DATA_FIELD ? before : after)[name] = src[name];
    }
    if (src.$unknown) after.$unknown = src.$unknown;
    const head = toBinary(TensorProtoSchema, before as unknown as TensorProto);
    const tail = toBinary(TensorProtoSchema, after as unknown as TensorProto);
    const frame = lengthDelimitedHeader(RAW_DATA_FIELD, o.payload.length);
    return { parts: [head, frame, o.payload, tail], size: head.byteLength + frame.byteLength + o.payload.length + tail.byteLength };
  }
}

// ------------------------------------------------------------------------------------------------
// writeOnnx
// ------------------------------------------------------------------------------------------------

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export async function writeOnnx(model: OnnxModel, sink: ByteSink, opts: WriteOnnxOptions = {}): Promise<WriteOnnxStats> {
  const ext = opts.externalData;
  const streamThreshold = opts.streamThreshold ?? 2 ** 20;
  const threshold = ext?.threshold ?? 1024;
  const alignment = ext?.alignment ?? 4096;
  const tctx = modelTensorContext(model);
  const path = model.path;
  if (ext) {
    checkExternalLocation(ext.location, { path });
    if (!Number.isSafeInteger(alignment) || alignment < 1) throw new ModelsmithError(ErrorCodes.USAGE, `invalid external data alignment ${alignment}`);
  }

  let windowBuf: Uint8Array | undefined;
  const stats: WriteOnnxStats = { modelBytes: 0, externalBytes: 0, externalTensors: 0, inlinedTensors: 0, streamedTensors: 0 };
  const overrides = new Map<object, Override>();
  /** Payloads for the external file, with their offsets. */
  const externals: { offset: number; payload: Payload }[] = [];
  let extPos = ext ? ext.sink.position : 0;

  const entries: TensorEntry[] = collectTensors(model.proto);
  for (const e of entries) {
    const tp = e.proto;
    if (overrides.has(tp)) continue;
    const wasExternal = isExternal(tp);
    if (ext) {
      let move = wasExternal;
      if (!move) {
        const eligible = e.kind === 'initializer' || (ext.attributes === true && (e.kind === 'constant' || e.kind === 'attribute'));
        if (eligible && tp.dataType !== 8 /* STRING */) {
          const n = payloadByteLength(tp, path);
          move = n >= threshold && n > 0;
        }
      }
      if (move) {
        const payload = await payloadOf(tp);
        const offset = align(extPos, alignment);
        extPos = offset + payload.length;
        externals.push({ offset, payload });
        const clone = shallowClone(tp);
        delete (clone as Partial<TensorProto>).rawData;
        clone.floatData = [];
        clone.int32Data = [];
        clone.int64Data = [];
        clone.doubleData = [];
        clone.uint64Data = [];
        clone.stringData = [];
        clone.dataLocation = TensorProto_DataLocation.EXTERNAL;
        const keep = tp.externalData.filter((kv) => !['location', 'offset', 'length', 'checksum', 'basepath'].includes(kv.key));
        clone.externalData = [
          create(StringStringEntryProtoSchema, { key: 'location', value: ext.location }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(payload.length) }),
          ...keep,
        ];
        overrides.set(tp, { proto: clone });
        stats.externalTensors++;
        continue;
      }
    } else if (wasExternal) {
      const payload = await payloadOf(tp);
      const clone = shallowClone(tp);
      delete (clone as Partial<TensorProto>).rawData;
      delete (clone as Partial<TensorProto>).dataLocation;
      clone.externalData = [];
      overrides.set(tp, { proto: clone, payload });
      stats.inlinedTensors++;
      continue;
    }
    if (hasRawData(tp) && tp.rawData.byteLength >= streamThreshold && tp.rawData.byteLength > 0) {
      const clone = shallowClone(tp);
      delete (clone as Partial<TensorProto>).rawData;
      overrides.set(tp, { proto: clone, payload: bytesPayload(tp.rawData) });
      stats.streamedTensors++;
    }
  }

  const heavy = new Set<object>();
  const root = model.proto as unknown as AnyMessage;
  markHeavy(root, ModelProtoSchema, overrides, heavy);
  const encoded = new Encoder(overrides, heavy).encode(root, ModelProtoSchema);
  if (encoded.size > MAX_MESSAGE_BYTES) {
    const gib = (encoded.size / 2 ** 30).toFixed(2);
    throw new ModelsmithError(
      ErrorCodes.LIMIT,
      `the ModelProto would be ${encoded.size} bytes (${gib} GiB); protobuf refuses messages of 2 GiB and more — write the weights to an external data file (externalData option / --external-data)`,
      { path, format: 'onnx' },
    );
  }

  if (ext && externals.length) {
    const out = new BufferedSink(ext.sink);
    let pos = ext.sink.position;
    for (const x of externals) {
      await out.zeros(x.offset - pos);
      await x.payload.write(out);
      pos = x.offset + x.payload.length;
    }
    await out.flush();
    stats.externalBytes = out.written;
  }

  const out = new BufferedSink(sink);
  for (const p of encoded.parts) {
    if (p instanceof Uint8Array) await out.write(p);
    else await p.write(out);
  }
  await out.flush();
  stats.modelBytes = out.written;
  if (out.written !== encoded.size) throw new Error(`writeOnnx: wrote ${out.written} bytes, planned ${encoded.size}`); // programming error
  return stats;

  async function payloadOf(tp: TensorProto): Promise<Payload> {
    if (isExternal(tp)) {
      const slice = await openExternalData(tp, tctx);
      return {
        length: slice.length,
        async write(o) {
          // One window buffer for every external payload of this call (a fresh 16 MiB buffer per
          // window cost first-touch page faults and GC on multi-GB models). Reusing it is safe:
          // BufferedSink hands windows this big straight to the sink and awaits the write.
          for (let off = 0; off < slice.length; off += WINDOW) {
            const n = Math.min(WINDOW, slice.length - off);
            windowBuf ??= new Uint8Array(WINDOW);
            const chunk = windowBuf.subarray(0, n);
            await slice.source.readInto(slice.offset + off, chunk);
            await o.write(chunk);
          }
        },
      };
    }
    // raw_data or a typed field: the normalised little-endian bytes (size-checked).
    return bytesPayload(tensorFromProtoSync(tp, { path }).data);
  }
}

/** Encodes a model into memory (no external data). */
export async function encodeOnnx(model: OnnxModel, opts: Omit<WriteOnnxOptions, 'externalData'> = {}): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let position = 0;
  const sink: ByteSink = {
    get position() {
      return position;
    },
    async write(c) {
      chunks.push(c.slice());
      position += c.byteLength;
    },
  };
  await writeOnnx(model, sink, opts);
  const out = new Uint8Array(position);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
