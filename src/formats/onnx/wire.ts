/**
 * Protobuf wire-level helpers for the ONNX codec:
 *  - a small varint/tag encoder, used to write framing around streamed tensor payloads;
 *  - `scanMessage`, a schema-aware structural check run before `fromBinary`. It turns hostile or
 *    damaged input into a ModelsmithError with a byte offset (truncation, impossible lengths, wrong
 *    wire types, nesting depth, element counts that would exhaust memory) instead of letting the
 *    generic decoder throw a RangeError, overflow the stack or allocate without bound.
 */
import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

export const WT_VARINT = 0;
export const WT_FIXED64 = 1;
export const WT_LEN = 2;
export const WT_START_GROUP = 3;
export const WT_END_GROUP = 4;
export const WT_FIXED32 = 5;

/** Protobuf implementations refuse messages of 2 GiB and more. */
export const MAX_MESSAGE_BYTES = 2 ** 31 - 1;

export function varintSize(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varintSize: ${n}`);
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Encode a non-negative safe integer as a varint. */
export function encodeVarint(n: number): Uint8Array {
  const out = new Uint8Array(varintSize(n));
  let i = 0;
  while (n >= 0x80) {
    out[i++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i] = n;
  return out;
}

export function tagSize(fieldNo: number, wireType: number): number {
  return varintSize(fieldNo * 8 + wireType);
}

/** Tag followed by a length prefix, for a length-delimited record whose payload is written separately. */
export function lengthDelimitedHeader(fieldNo: number, length: number): Uint8Array {
  const tag = encodeVarint(fieldNo * 8 + WT_LEN);
  const len = encodeVarint(length);
  const out = new Uint8Array(tag.length + len.length);
  out.set(tag, 0);
  out.set(len, tag.length);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Structural scan
// ------------------------------------------------------------------------------------------------

export interface ScanLimits {
  /** Maximum message nesting depth (protobuf's default recursion limit is 100). */
  maxDepth: number;
  /**
   * Cap on the estimated JS heap the decoded message would take, in bytes. Every repeated element
   * needs at least one input byte but may cost 30+ bytes of heap (int64 → bigint), so a small
   * hostile file can otherwise exhaust memory.
   */
  maxHeapEstimate: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxDepth: 100, maxHeapEstimate: 1536 * 2 ** 20 };

export interface ScanResult {
  /** Estimated heap bytes of the decoded message. */
  heapEstimate: number;
  /** Number of length-delimited `string` fields that are not valid UTF-8 (decoded lossily). */
  invalidUtf8: number;
  /** Number of records skipped as unknown fields. */
  unknownFields: number;
  /** Deepest message nesting seen. */
  maxDepthSeen: number;
}

interface FieldInfo {
  field: DescField;
  /** Wire type for the singular (unpacked) encoding. */
  wire: number;
  /** True when a length-delimited record may also hold packed scalars. */
  packable: boolean;
  /** For message-typed fields (singular or list). */
  message?: DescMessage;
  /** Heap estimate per scalar element. */
  elemCost: number;
  isString: boolean;
}

const fieldTables = new WeakMap<DescMessage, Map<number, FieldInfo>>();

function scalarWire(t: ScalarType): number {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WT_FIXED64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WT_FIXED32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WT_LEN;
    default:
      return WT_VARINT;
  }
}

function scalarCost(t: ScalarType): number {
  switch (t) {
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 40; // bigint + array slot
    case ScalarType.STRING:
      return 40;
    case ScalarType.BYTES:
      return 80; // Uint8Array view object
    default:
      return 8;
  }
}

function tableFor(desc: DescMessage): Map<number, FieldInfo> {
  let t = fieldTables.get(desc);
  if (t) return t;
  t = new Map();
  for (const field of desc.fields) {
    let info: FieldInfo;
    if (field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message')) {
      const message = field.message as DescMessage;
      info = { field, wire: WT_LEN, packable: false, message, elemCost: 0, isString: false };
    } else if (field.fieldKind === 'map') {
      // ONNX has no map fields; treat the entry as opaque length-delimited data.
      info = { field, wire: WT_LEN, packable: false, elemCost: 120, isString: false };
    } else {
      const st: ScalarType = field.fieldKind === 'enum' || (field.fieldKind === 'list' && field.listKind === 'enum') ? ScalarType.INT32 : (field.scalar as ScalarType);
      const wire = scalarWire(st);
      info = { field, wire, packable: field.fieldKind === 'list' && wire !== WT_LEN, elemCost: scalarCost(st), isString: st === ScalarType.STRING };
    }
    t.set(field.number, info);
  }
  fieldTables.set(desc, t);
  return t;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const MESSAGE_COST = 160;

/**
 * Walk `bytes` as an encoded `desc` message without materialising it. Throws ModelsmithError:
 * E_TRUNCATED (runs past the end of the input), E_MALFORMED (bad tag, wire type, varint, or a record
 * that overruns its enclosing message), E_LIMIT (nesting depth, estimated heap).
 */
export function scanMessage(bytes: Uint8Array, desc: DescMessage, ctx: { path?: string; format?: string } = {}, limits: ScanLimits = DEFAULT_SCAN_LIMITS): ScanResult {
  const total = bytes.byteLength;
  const result: ScanResult = { heapEstimate: 0, invalidUtf8: 0, unknownFields: 0, maxDepthSeen: 0 };
  const fail = (code: typeof ErrorCodes.TRUNCATED | typeof ErrorCodes.MALFORMED | typeof ErrorCodes.LIMIT, msg: string, offset: number): never => {
    throw new ModelsmithError(code, msg, { ...ctx, format: ctx.format ?? 'onnx', offset });
  };
  // Overrun of a bound: truncation when the bound is the end of the input, corruption otherwise.
  const overrun = (what: string, at: number, end: number): never =>
    end >= total ? fail(ErrorCodes.TRUNCATED, `${what} runs past the end of the data`, at) : fail(ErrorCodes.MALFORMED, `${what} overruns its enclosing message`, at);

  let pos = 0;
  const readVarint = (end: number, maxBytes: number, what: string): number => {
    const start = pos;
    let value = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (pos >= end) return overrun(what, start, end);
      if (i >= maxBytes) return fail(ErrorCodes.MALFORMED, `${what}: varint longer than ${maxBytes} bytes`, start);
      const b = bytes[pos++]!;
      // Exactness only matters for lengths/tags (≤ 5 bytes); larger values are just skipped.
      if (i < 7) value += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return value;
    }
  };
  const addHeap = (n: number, at: number): void => {
    result.heapEstimate += n;
    if (result.heapEstimate > limits.maxHeapEstimate) {
      fail(ErrorCodes.LIMIT, `decoding would need more than ${Math.round(limits.maxHeapEstimate / 2 ** 20)} MiB of memory (too many elements)`, at);
    }
  };

  // Explicit stack instead of recursion: nesting is bounded by maxDepth anyway, but this keeps the
  // scan independent of the JS stack size.
  interface Frame { desc: DescMessage | undefined; end: number; groupField: number }
  const stack: Frame[] = [{ desc, end: total, groupField: -1 }];
  addHeap(MESSAGE_COST, 0);

  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (pos >= frame.end) {
      if (frame.groupField >= 0) overrun(`group ${frame.groupField}`, pos, frame.end);
      if (pos > frame.end) fail(ErrorCodes.MALFORMED, 'record overruns its enclosing message', pos);
      stack.pop();
      continue;
    }
    const tagAt = pos;
    const tag = readVarint(frame.end, 5, 'field tag');
    const fieldNo = Math.floor(tag / 8);
    const wt = tag % 8;
    if (fieldNo === 0 || fieldNo > 536870911) fail(ErrorCodes.MALFORMED, `invalid field number ${fieldNo}`, tagAt);
    if (wt === WT_END_GROUP) {
      if (frame.groupField !== fieldNo) fail(ErrorCodes.MALFORMED, 'unexpected end-group tag', tagAt);
      stack.pop();
      continue;
    }
    const info = frame.desc ? tableFor(frame.desc).get(fieldNo) : undefined;
    if (!info) {
      // Unknown field: skip it, but keep it (the decoder stores it as $unknown).
      result.unknownFields++;
      addHeap(96, tagAt);
      switch (wt) {
        case WT_VARINT: readVarint(frame.end, 10, `field ${fieldNo}`); break;
        case WT_FIXED64: if (pos + 8 > frame.end) overrun(`field ${fieldNo}`, tagAt, frame.end); pos += 8; break;
        case WT_FIXED32: if (pos + 4 > frame.end) overrun(`field ${fieldNo}`, tagAt, frame.end); pos += 4; break;
        case WT_LEN: {
          const len = readVarint(frame.end, 5, `length of field ${fieldNo}`);
          if (pos + len > frame.end) overrun(`field ${fieldNo} (${len} bytes)`, tagAt, frame.end);
          pos += len;
          break;
        }
        case WT_START_GROUP:
          if (stack.length >= limits.maxDepth) fail(ErrorCodes.LIMIT, `message nesting deeper than ${limits.maxDepth}`, tagAt);
          stack.push({ desc: undefined, end: frame.end, groupField: fieldNo });
          break;
        default:
          fail(ErrorCodes.MALFORMED, `invalid wire type ${wt} for field ${fieldNo}`, tagAt);
      }
      result.maxDepthSeen = Math.max(result.maxDepthSeen, stack.length);
      continue;
    }
    const fieldName = `${frame.desc!.name}.${info.field.name}`;
    if (info.message) {
      if (wt !== WT_LEN) fail(ErrorCodes.MALFORMED, `${fieldName} has wire type ${wt}, expected 2`, tagAt);
      const len = readVarint(frame.end, 5, `length of ${fieldName}`);
      if (pos + len > frame.end) overrun(`${fieldName} (${len} bytes)`, tagAt, frame.end);
      if (stack.length >= limits.maxDepth) fail(ErrorCodes.LIMIT, `message nesting deeper than ${limits.maxDepth} (at ${fieldName})`, tagAt);
      addHeap(MESSAGE_COST, tagAt);
      stack.push({ desc: info.message, end: pos + len, groupField: -1 });
      result.maxDepthSeen = Math.max(result.maxDepthSeen, stack.length);
      continue;
    }
    if (wt === WT_LEN && (info.wire === WT_LEN || info.packable)) {
      const len = readVarint(frame.end, 5, `length of ${fieldName}`);
      const start = pos;
      if (pos + len > frame.end) overrun(`${fieldName} (${len} bytes)`, tagAt, frame.end);
      pos += len;
      if (info.wire === WT_LEN) {
        addHeap(info.elemCost + (info.isString ? 2 * len : 0), tagAt);
        if (info.isString && len > 0) {
          let ascii = true;
          for (let i = start; i < pos; i++) if (bytes[i]! >= 0x80) { ascii = false; break; }
          if (!ascii) {
            try {
              utf8.decode(bytes.subarray(start, pos));
            } catch {
              result.invalidUtf8++;
            }
          }
        }
      } else if (info.wire === WT_FIXED32 || info.wire === WT_FIXED64) {
        const w = info.wire === WT_FIXED32 ? 4 : 8;
        if (len % w !== 0) fail(ErrorCodes.MALFORMED, `packed ${fieldName}: ${len} bytes is not a multiple of ${w}`, tagAt);
        addHeap((len / w) * info.elemCost, tagAt);
      } else {
        // Packed varints: count terminators; the last byte must end a varint.
        let count = 0;
        let run = 0;
        for (let i = start; i < pos; i++) {
          if (bytes[i]! < 0x80) {
            count++;
            run = 0;
          } else if (++run >= 10) {
            fail(ErrorCodes.MALFORMED, `packed ${fieldName}: varint longer than 10 bytes`, i);
          }
        }
        if (len > 0 && bytes[pos - 1]! >= 0x80) fail(ErrorCodes.MALFORMED, `packed ${fieldName}: last varint is unterminated`, pos - 1);
        addHeap(count * info.elemCost, tagAt);
      }
      continue;
    }
    if (wt !== info.wire) fail(ErrorCodes.MALFORMED, `${fieldName} has wire type ${wt}, expected ${info.wire}`, tagAt);
    switch (wt) {
      case WT_VARINT: readVarint(frame.end, 10, fieldName); break;
      case WT_FIXED64: if (pos + 8 > frame.end) overrun(fieldName, tagAt, frame.end); pos += 8; break;
      case WT_FIXED32: if (pos + 4 > frame.end) overrun(fieldName, tagAt, frame.end); pos += 4; break;
      default: fail(ErrorCodes.MALFORMED, `${fieldName} has wire type ${wt}`, tagAt);
    }
    addHeap(info.elemCost, tagAt);
  }
  return result;
}
