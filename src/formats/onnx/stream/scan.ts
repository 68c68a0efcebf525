/**
 * One forward pass over a serialized ModelProto that keeps everything except big tensor payloads.
 *
 * The result is a "skeleton": the same ModelProto bytes, except that each TensorProto whose raw_data
 * is at least `threshold` bytes lost that field and gained an external-data reference
 * (data_location = EXTERNAL, location = PAYLOAD_LOCATION, offset/length = where raw_data sits in the
 * source). Decoding the skeleton gives the usual ModelProto graph IR, and every reader of tensors
 * (payloadReader, writeOnnx, the passes) reaches those payloads through the model's SiblingResolver,
 * which lazy.ts points at the source. Nothing else changes, so passes and the writer work unmodified.
 *
 * Only message types that can contain a TensorProto are walked field by field; every other record
 * is copied verbatim (after a structural scan, so hostile bytes fail here with their file offset).
 * Reads only go forward: a request body that can be read once works, and a hook may consume each
 * payload as it passes (weight-stream.ts quantizes it there) instead of leaving it in the source.
 */
import { fromBinary, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, TensorProtoSchema, type GraphProto } from 'onnx-buf';
import { byteLength, dtypeFromOnnx } from '../../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../../core/errors.js';
import type { ByteSource } from '../../../io/source.js';
import { DEFAULT_SCAN_LIMITS, encodeVarint, lengthDelimitedHeader, MAX_MESSAGE_BYTES, scanMessage, WT_END_GROUP, WT_FIXED32, WT_FIXED64, WT_LEN, WT_START_GROUP, WT_VARINT, type ScanLimits } from '../wire.js';
import { ForwardReader } from './reader.js';

/**
 * The external-data location of payloads left in the source. A name no file can have on any
 * platform (NUL is refused by checkExternalLocation for real files; this one never reaches a file
 * system: lazy.ts answers it before the model's own resolver).
 */
export const PAYLOAD_LOCATION = '.modelsmith-source-payload';

/** Default: payloads from 64 KiB on stay in the source (small ones are cheaper inline than as a reference). */
export const DEFAULT_LAZY_THRESHOLD = 64 * 1024;

/** A raw_data payload that was not copied into the skeleton. */
export interface PayloadRef {
  /** Tensor name (may be empty for attribute tensors). */
  name: string;
  dims: number[];
  /** ONNX data_type. */
  dataType: number;
  /** Absolute offset and length of the raw_data bytes in the source. */
  offset: number;
  length: number;
  /** 'initializer' of a GraphProto, or any other tensor (Constant attributes, sparse values, …). */
  role: 'initializer' | 'other';
}

/** What happens to a payload: left in the source, kept in memory by the scanner, or used up by the hook. */
export type PayloadDecision = 'lazy' | 'hold' | 'consumed';

export interface PayloadContext {
  /** Read payload bytes at `offset` (relative to the payload) into `target`; forward order only. */
  read(offset: number, target: Uint8Array): Promise<void>;
  /**
   * The enclosing GraphProto as far as it has been read (for an initializer: its nodes, in files
   * written by protobuf libraries, which emit fields in number order). Decoded once per graph.
   */
  graphSoFar(): GraphProto | undefined;
}

export interface ScanOptions {
  path?: string;
  /** raw_data of at least this many bytes is left out of the skeleton (default DEFAULT_LAZY_THRESHOLD). */
  threshold?: number;
  limits?: Partial<ScanLimits>;
  /** Default decision for payloads the hook does not claim ('lazy' for random-access sources). */
  keep?: 'lazy' | 'hold';
  /**
   * Decides each big payload's fate as the scan passes it; a Uint8Array return means "hold these
   * bytes" (the payload itself, already read by the hook: a forward source cannot give it again).
   */
  onPayload?(ref: PayloadRef, ctx: PayloadContext): Promise<PayloadDecision | Uint8Array>;
}

export interface ScanOutput {
  skeleton: Uint8Array;
  /** Every payload left out, in file order, with the decision taken. */
  payloads: (PayloadRef & { decision: PayloadDecision })[];
  /** Bytes of payloads kept in memory, by offset ('hold'). */
  held: Map<number, Uint8Array>;
}

// ------------------------------------------------------------------------------------------------

const holds = new WeakMap<DescMessage, boolean>();

function messageFields(desc: DescMessage): { field: DescField; message: DescMessage }[] {
  const out: { field: DescField; message: DescMessage }[] = [];
  for (const f of desc.fields) {
    if (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')) out.push({ field: f, message: f.message as DescMessage });
  }
  return out;
}

/** Whether a message type can (transitively) contain a TensorProto: only those are walked. */
function holdsTensor(desc: DescMessage): boolean {
  const known = holds.get(desc);
  if (known !== undefined) return known;
  const all: DescMessage[] = [];
  const todo = [desc];
  const seen = new Set<DescMessage>();
  while (todo.length) {
    const d = todo.pop()!;
    if (seen.has(d)) continue;
    seen.add(d);
    all.push(d);
    for (const m of messageFields(d)) todo.push(m.message);
  }
  const r = new Map(all.map((d) => [d, d.typeName === TensorProtoSchema.typeName]));
  for (let changed = true; changed; ) {
    changed = false;
    for (const d of all) {
      if (!r.get(d) && messageFields(d).some((m) => r.get(m.message))) {
        r.set(d, true);
        changed = true;
      }
    }
  }
  for (const [d, v] of r) holds.set(d, v);
  return r.get(desc)!;
}

const TENSOR = TensorProtoSchema.typeName;
const GRAPH = GraphProtoSchema.typeName;
const F_DIMS = 1;
const F_DATA_TYPE = 2;
const F_NAME = 8;
const F_RAW = 9;
const F_EXTERNAL = 13;
const F_LOCATION = 14;
const GRAPH_INITIALIZER = 5;

interface TensorState {
  dims: number[] | undefined;
  dataType: number;
  name: string;
  lazy?: PayloadRef & { decision: PayloadDecision };
  externalFields: boolean;
  dataLocation?: number;
}

interface Frame {
  desc: DescMessage;
  /** Absolute end of the message body. */
  end: number;
  /** Field number in the parent. */
  fieldNo: number;
  parts: Uint8Array[];
  size: number;
  tensor?: TensorState;
  /** GraphProto frames: the decoded prefix handed to hooks (nodes read later are not in it). */
  graphSoFar?: GraphProto | null;
  /** How this message is held by its parent (a graph initializer or something else). */
  role: 'initializer' | 'other';
}

const utf8 = new TextDecoder();

function push(f: Frame, b: Uint8Array): void {
  f.parts.push(b);
  f.size += b.byteLength;
}

/** JS heap per skeleton piece beyond its bytes (the array slot and the Uint8Array object). */
const PART_COST = 96;
/** … and per walked message (its frame). */
const FRAME_COST = 256;

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** One StringStringEntryProto as a TensorProto.external_data record. */
function stringEntry(key: string, value: string): Uint8Array {
  const enc = new TextEncoder();
  const k = enc.encode(key);
  const v = enc.encode(value);
  const parts = [lengthDelimitedHeader(1, k.byteLength), k, lengthDelimitedHeader(2, v.byteLength), v];
  const bodySize = parts.reduce((a, p) => a + p.byteLength, 0);
  const head = lengthDelimitedHeader(F_EXTERNAL, bodySize);
  return concat([head, ...parts], head.byteLength + bodySize);
}

/** The records that turn a TensorProto without raw_data into a reference to its payload in the source. */
function payloadReferenceRecords(offset: number, length: number): Uint8Array[] {
  return [
    stringEntry('location', PAYLOAD_LOCATION),
    stringEntry('offset', String(offset)),
    stringEntry('length', String(length)),
    concat([encodeVarint(F_LOCATION * 8 + WT_VARINT), encodeVarint(1)], encodeVarint(F_LOCATION * 8).byteLength + 1),
  ];
}

export async function scanOnnxStream(source: ByteSource, opts: ScanOptions = {}): Promise<ScanOutput> {
  const path = opts.path ?? source.name;
  const threshold = opts.threshold ?? DEFAULT_LAZY_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 1) throw new ModelsmithError(ErrorCodes.USAGE, `lazy threshold must be a positive integer, got ${String(opts.threshold)}`);
  const limits: ScanLimits = { ...DEFAULT_SCAN_LIMITS, ...opts.limits };
  limits.maxDepth = Math.max(1, Math.min(limits.maxDepth, 1000));
  const keep = opts.keep ?? 'lazy';
  const ctx = { path, format: 'onnx' };
  const fail = (code: typeof ErrorCodes.TRUNCATED | typeof ErrorCodes.MALFORMED | typeof ErrorCodes.LIMIT | typeof ErrorCodes.UNSUPPORTED, msg: string, offset: number): never => {
    throw new ModelsmithError(code, msg, { ...ctx, offset });
  };
  if (source.size > MAX_MESSAGE_BYTES) fail(ErrorCodes.LIMIT, `file is ${source.size} bytes; a protobuf message must be smaller than 2 GiB`, 0);
  if (source.size === 0) fail(ErrorCodes.TRUNCATED, 'empty file', 0);

  const r = new ForwardReader(source, path);
  // Pieces of the skeleton cost heap beyond their bytes; a file of millions of empty records must end
  // in E_LIMIT here, before they are all allocated (decodeOnnx applies the same cap to the result).
  let heap = 0;
  const spend = (n: number, at: number): void => {
    heap += n;
    if (heap > limits.maxHeapEstimate) fail(ErrorCodes.LIMIT, `reading the graph would need more than ${Math.round(limits.maxHeapEstimate / 2 ** 20)} MiB of memory (too many records)`, at);
  };
  const add = (f: Frame, b: Uint8Array): void => {
    spend(PART_COST + b.byteLength, r.pos);
    push(f, b);
  };
  const out: ScanOutput = { skeleton: new Uint8Array(0), payloads: [], held: new Map() };
  const stack: Frame[] = [{ desc: ModelProtoSchema, end: source.size, fieldNo: 0, parts: [], size: 0, role: 'other' }];
  let root: Frame | undefined;

  /** Verbatim copy of one value of wire type `wt` (the tag is already read), bounded by `end`. */
  const copyValue = async (f: Frame, tagBytes: Uint8Array, wt: number, fieldNo: number, end: number, tagAt: number, desc?: DescMessage): Promise<void> => {
    const overrun = (what: string): never =>
      end >= source.size ? fail(ErrorCodes.TRUNCATED, `${what} runs past the end of the file`, tagAt) : fail(ErrorCodes.MALFORMED, `${what} overruns its enclosing message`, tagAt);
    switch (wt) {
      case WT_VARINT: {
        const start = r.pos;
        await r.varint(end, 10, `field ${fieldNo}`);
        add(f, tagBytes);
        add(f, r.since(start));
        return;
      }
      case WT_FIXED64:
      case WT_FIXED32: {
        const n = wt === WT_FIXED64 ? 8 : 4;
        if (r.pos + n > end) overrun(`field ${fieldNo}`);
        add(f, tagBytes);
        add(f, await r.take(n, `field ${fieldNo}`));
        return;
      }
      case WT_LEN: {
        const len = await r.varint(end, 5, `length of field ${fieldNo}`);
        if (r.pos + len > end) overrun(`field ${fieldNo} (${len} bytes)`);
        const body = await r.take(len, `field ${fieldNo}`);
        if (desc) {
          // Structure of a verbatim message, checked here so errors carry file offsets.
          try {
            scanMessage(body, desc, ctx, { ...limits, maxDepth: Math.max(1, limits.maxDepth - stack.length) });
          } catch (e) {
            if (e instanceof ModelsmithError && e.offset !== undefined) {
              // The record itself is complete, so running past its end is corruption, not truncation.
              const code = e.code === ErrorCodes.TRUNCATED ? ErrorCodes.MALFORMED : e.code;
              // The inner message without its code prefix and "(path, byte N)" suffix, which are redone here.
              const inner = e.message.replace(/^E_[A-Z_]+: /, '').replace(/ \([^()]*\)$/, '');
              const text = inner.replace(/runs past the end of the data$/, `overruns its ${desc.name} record`);
              throw new ModelsmithError(code, `${fieldNameOf(f, fieldNo)}: ${text}`, { ...ctx, offset: r.pos - len + e.offset, cause: e });
            }
            throw e;
          }
        }
        add(f, tagBytes);
        add(f, encodeVarint(len));
        add(f, body);
        return;
      }
      case WT_START_GROUP: {
        // Unknown groups (no ONNX field is a group): copied through, nesting bounded like messages.
        add(f, tagBytes);
        let depth = 1;
        while (depth > 0) {
          const at = r.pos;
          const tag = await r.varint(end, 5, `group ${fieldNo}`);
          const t = encodeVarint(tag);
          const w = tag % 8;
          if (w === WT_END_GROUP) {
            add(f, t);
            depth--;
            continue;
          }
          if (w === WT_START_GROUP) {
            if (++depth + stack.length > limits.maxDepth) fail(ErrorCodes.LIMIT, `message nesting deeper than ${limits.maxDepth}`, at);
            add(f, t);
            continue;
          }
          if (w !== WT_VARINT && w !== WT_FIXED32 && w !== WT_FIXED64 && w !== WT_LEN) fail(ErrorCodes.MALFORMED, `invalid wire type ${w} in group ${fieldNo}`, at);
          await copyValue(f, t, w, Math.floor(tag / 8), end, at);
        }
        return;
      }
      default:
        fail(ErrorCodes.MALFORMED, `invalid wire type ${wt} for field ${fieldNo}`, tagAt);
    }
  };

  const graphOf = (): Frame | undefined => {
    for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.desc.typeName === GRAPH) return stack[i];
    return undefined;
  };

  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (r.pos >= f.end) {
      if (r.pos > f.end) fail(ErrorCodes.MALFORMED, 'record overruns its enclosing message', r.pos);
      stack.pop();
      finishTensor(f);
      const parent = stack[stack.length - 1];
      if (!parent) {
        root = f;
        break;
      }
      add(parent, lengthDelimitedHeader(f.fieldNo, f.size));
      for (const p of f.parts) push(parent, p);
      if (f.size > MAX_MESSAGE_BYTES) fail(ErrorCodes.LIMIT, 'skeleton message over 2 GiB', r.pos);
      continue;
    }
    const tagAt = r.pos;
    const tag = await r.varint(f.end, 5, 'field tag');
    const fieldNo = Math.floor(tag / 8);
    const wt = tag % 8;
    if (fieldNo === 0 || fieldNo > 536870911) fail(ErrorCodes.MALFORMED, `invalid field number ${fieldNo}`, tagAt);
    if (wt === WT_END_GROUP) fail(ErrorCodes.MALFORMED, 'unexpected end-group tag', tagAt);
    const tagBytes = encodeVarint(tag);
    const field = f.desc.fields.find((x) => x.number === fieldNo);
    const isMsg = field && (field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message'));
    const fieldName = fieldNameOf(f, fieldNo);

    if (isMsg && holdsTensor(field.message as DescMessage)) {
      if (wt !== WT_LEN) fail(ErrorCodes.MALFORMED, `${fieldName} has wire type ${wt}, expected 2`, tagAt);
      const len = await r.varint(f.end, 5, `length of ${fieldName}`);
      if (r.pos + len > f.end) {
        fail(f.end >= source.size ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED, `${fieldName} (${len} bytes) ${f.end >= source.size ? 'runs past the end of the file' : 'overruns its enclosing message'}`, tagAt);
      }
      if (stack.length >= limits.maxDepth) fail(ErrorCodes.LIMIT, `message nesting deeper than ${limits.maxDepth} (at ${fieldName})`, tagAt);
      const desc = field.message as DescMessage;
      spend(FRAME_COST, tagAt);
      const child: Frame = {
        desc, end: r.pos + len, fieldNo, parts: [], size: 0,
        role: f.desc.typeName === GRAPH && fieldNo === GRAPH_INITIALIZER ? 'initializer' : 'other',
      };
      if (desc.typeName === TENSOR) child.tensor = { dims: [], dataType: 0, name: '', externalFields: false };
      stack.push(child);
      continue;
    }

    if (f.tensor) {
      const t = f.tensor;
      if (fieldNo === F_RAW && wt === WT_LEN) {
        const len = await r.varint(f.end, 5, `length of ${fieldName}`);
        if (r.pos + len > f.end) {
          fail(f.end >= source.size ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED, `raw_data of tensor '${t.name}' (${len} bytes) ${f.end >= source.size ? 'runs past the end of the file' : 'overruns its TensorProto'}`, tagAt);
        }
        if (t.lazy) fail(ErrorCodes.UNSUPPORTED, `tensor '${t.name}' has raw_data twice`, tagAt);
        const info = dtypeFromOnnx(t.dataType);
        const sized = info && info.name !== 'string' && t.dims !== undefined && t.dims.every((d) => Number.isSafeInteger(d) && d >= 0) && expectedBytes(info.name, t.dims) === len;
        if (len >= threshold && sized) {
          const ref: PayloadRef = { name: t.name, dims: t.dims!.slice(), dataType: t.dataType, offset: r.pos, length: len, role: f.role };
          let decision: PayloadDecision = keep;
          const graphFrame = graphOf();
          const pctx = (read: (o: number, target: Uint8Array) => Promise<void>): PayloadContext => ({
            read,
            graphSoFar: () => {
              if (!graphFrame) return undefined;
              if (graphFrame.graphSoFar === undefined) {
                // Records of the graph read so far (its nodes, name, earlier initializers).
                try {
                  graphFrame.graphSoFar = fromBinary(GraphProtoSchema, concat(graphFrame.parts, graphFrame.size), { readUnknownFields: true });
                } catch {
                  graphFrame.graphSoFar = null;
                }
              }
              return graphFrame.graphSoFar ?? undefined;
            },
          });
          await r.region(len, async (read) => {
            const d = opts.onPayload ? await opts.onPayload(ref, pctx(read)) : keep;
            if (d instanceof Uint8Array) {
              if (d.byteLength !== len) throw new Error(`onPayload held ${d.byteLength} of ${len} bytes`); // programming error
              out.held.set(ref.offset, d);
              decision = 'hold';
              return;
            }
            decision = d;
            if (decision === 'hold') {
              const bytes = new Uint8Array(len);
              await read(0, bytes);
              out.held.set(ref.offset, bytes);
            }
          });
          t.lazy = { ...ref, decision };
          out.payloads.push(t.lazy);
          continue;
        }
        add(f, tagBytes);
        add(f, encodeVarint(len));
        add(f, await r.take(len, fieldName));
        continue;
      }
      if (fieldNo === F_DIMS && (wt === WT_VARINT || wt === WT_LEN)) {
        // Dims are only interpreted to decide whether a payload can be left out; 8+ byte varints
        // (negative int64, > 2^53) make the tensor stay inline, where the usual checks apply.
        if (wt === WT_VARINT) {
          const start = r.pos;
          const v = await r.varint(f.end, 10, fieldName);
          const raw = r.since(start);
          if (raw.byteLength > 7) t.dims = undefined;
          else t.dims?.push(v);
          add(f, tagBytes);
          add(f, raw);
        } else {
          const len = await r.varint(f.end, 5, `length of ${fieldName}`);
          if (r.pos + len > f.end) fail(f.end >= source.size ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED, `packed ${fieldName} (${len} bytes) runs past its message`, tagAt);
          const body = await r.take(len, fieldName);
          let v = 0;
          let mul = 1;
          let n = 0;
          for (const b of body) {
            if (n < 7) v += (b & 0x7f) * mul;
            mul *= 128;
            n++;
            if (b < 0x80) {
              if (n > 7) t.dims = undefined;
              else t.dims?.push(v);
              v = 0;
              mul = 1;
              n = 0;
            } else if (n >= 10) {
              fail(ErrorCodes.MALFORMED, `packed ${fieldName}: varint longer than 10 bytes`, tagAt);
            }
          }
          if (n > 0) fail(ErrorCodes.MALFORMED, `packed ${fieldName}: last varint is unterminated`, tagAt);
          add(f, tagBytes);
          add(f, encodeVarint(len));
          add(f, body);
        }
        continue;
      }
      if ((fieldNo === F_DATA_TYPE || fieldNo === F_LOCATION) && wt === WT_VARINT) {
        const start = r.pos;
        const v = await r.varint(f.end, 10, fieldName);
        const raw = r.since(start);
        if (fieldNo === F_DATA_TYPE) t.dataType = raw.byteLength > 5 ? -1 : v;
        else t.dataLocation = v;
        add(f, tagBytes);
        add(f, raw);
        continue;
      }
      if (fieldNo === F_NAME && wt === WT_LEN) {
        const len = await r.varint(f.end, 5, `length of ${fieldName}`);
        if (r.pos + len > f.end) fail(f.end >= source.size ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED, `${fieldName} (${len} bytes) runs past its message`, tagAt);
        const body = await r.take(len, fieldName);
        t.name = utf8.decode(body);
        add(f, tagBytes);
        add(f, encodeVarint(len));
        add(f, body);
        continue;
      }
      if (fieldNo === F_EXTERNAL) t.externalFields = true;
    }

    // Everything else: verbatim, with the field's own wire type checked when the schema knows it.
    if (field && isMsg && wt !== WT_LEN) fail(ErrorCodes.MALFORMED, `${fieldName} has wire type ${wt}, expected 2`, tagAt);
    await copyValue(f, tagBytes, wt, fieldNo, f.end, tagAt, isMsg ? (field.message as DescMessage) : undefined);
  }

  out.skeleton = concat(root!.parts, root!.size);
  return out;

  function finishTensor(f: Frame): void {
    const t = f.tensor;
    if (!t?.lazy) return;
    if (t.externalFields || (t.dataLocation !== undefined && t.dataLocation !== 0)) {
      fail(ErrorCodes.MALFORMED, `tensor '${t.name}' has both raw_data and external data`, t.lazy.offset);
    }
    for (const rec of payloadReferenceRecords(t.lazy.offset, t.lazy.length)) add(f, rec);
  }
}

function fieldNameOf(f: Frame, fieldNo: number): string {
  const field = f.desc.fields.find((x) => x.number === fieldNo);
  return field ? `${f.desc.name}.${field.name}` : `${f.desc.name} field ${fieldNo}`;
}

function expectedBytes(dtype: Parameters<typeof byteLength>[0], dims: number[]): number {
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (!Number.isSafeInteger(n)) return -1;
  }
  return byteLength(dtype, n);
}
