/**
 * Validation of a safetensors header, rule for rule as the reference crate (v0.5.3
 * `SafeTensors::read_metadata` + `Metadata::validate`), in the same order so that a bad file gets
 * the same error name:
 *   file < 8 bytes → HeaderTooSmall; N > 100,000,000 → HeaderTooLarge; 8 + N > file → InvalidHeaderLength;
 *   not UTF-8 → InvalidHeader; not the expected JSON → InvalidHeaderDeserialization;
 *   tensors sorted by (begin, end) must tile [0, last) → InvalidOffset; shape product or byte size
 *   past u64 → ValidationOverflow; end − begin ≠ bytes → TensorInvalidInfo;
 *   8 + N + last ≠ file size → MetadataIncompleteBuffer.
 * Like the crate (whose `starts_with('{')` check is commented out), JSON whitespace is allowed before
 * and after the object; the corpus vector `whitespace_padded_header_1` is accepted by v0.5.3.
 *
 * Deliberate differences, all stricter or wider in a documented way:
 *   - duplicate keys anywhere are refused (InvalidHeaderDeserialization); serde would keep one silently;
 *   - dtypes newer than v0.5.3 that the shared table knows (F4, F8_E8M0, C64, FNUZ…) are accepted;
 *   - a dimension above 2^53 (possible only in an empty tensor) is refused with E_OUT_OF_RANGE,
 *     because shapes are JS numbers.
 * All arithmetic on file-provided integers is BigInt until validated, so nothing rounds.
 */
import type { DType } from '../../core/dtype.js';
import { Diagnostics, ErrorCodes, type Diagnostic } from '../../core/errors.js';
import { dtypeFromSafetensors } from './dtype.js';
import { FORMAT, stError } from './errors.js';
import { JsonNumber, JsonObject, JsonSyntaxError, parseJson, type JsonValue } from './json.js';
import { firstInvalidUtf8 } from './utf8.js';

/** Size of the little-endian u64 header length that starts every file. */
export const PREFIX_BYTES = 8;
/** The reference reader's cap on the header length. */
export const MAX_HEADER_BYTES = 100_000_000;
export const METADATA_KEY = '__metadata__';

const U64_MAX = (1n << 64n) - 1n;

export interface HeaderTensor {
  name: string;
  /** dtype string as written in the header, e.g. "F8_E4M3". */
  code: string;
  dtype: DType;
  shape: number[];
  /** Offsets relative to the start of the data buffer, end exclusive. */
  begin: number;
  end: number;
}

export interface ParsedHeader {
  /** N, the header length in bytes (data buffer starts at 8 + N). */
  headerLength: number;
  dataStart: number;
  /** In the order the header lists them. */
  tensors: HeaderTensor[];
  metadata?: Record<string, string>;
  diagnostics: Diagnostic[];
}

/** Reads N from the 8-byte prefix and checks it against the cap and the file size. */
export function headerLength(prefix: Uint8Array, fileSize: number, path: string): number {
  if (fileSize < PREFIX_BYTES || prefix.byteLength < PREFIX_BYTES) {
    throw stError(ErrorCodes.TRUNCATED, 'HeaderTooSmall', `file has ${fileSize} bytes, fewer than the 8-byte header length`, { path, offset: 0 });
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw stError(ErrorCodes.LIMIT, 'HeaderTooLarge', `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, { path, offset: 0 });
  }
  const len = Number(n);
  if (PREFIX_BYTES + len > fileSize) {
    throw stError(ErrorCodes.TRUNCATED, 'InvalidHeaderLength', `header of ${len} bytes runs past the end of the ${fileSize}-byte file`, { path, offset: 0 });
  }
  return len;
}

/** Validates the header bytes (the N bytes after the prefix) of a file of `fileSize` bytes. */
export function parseHeader(header: Uint8Array, fileSize: number, path: string): ParsedHeader {
  const diags = new Diagnostics();
  const n = header.byteLength;
  const at = (o: number): number => PREFIX_BYTES + o;

  const bad = firstInvalidUtf8(header);
  if (bad >= 0) throw stError(ErrorCodes.MALFORMED, 'InvalidHeader', 'header is not valid UTF-8', { path, offset: at(bad) });

  let root: JsonValue;
  try {
    root = parseJson(header);
  } catch (e) {
    if (e instanceof JsonSyntaxError) {
      throw stError(ErrorCodes.MALFORMED, 'InvalidHeaderDeserialization', `header is not valid JSON: ${e.message}`, { path, offset: at(e.offset) });
    }
    throw e;
  }
  const deser = (message: string, offset: number, tensor?: string) =>
    stError(ErrorCodes.MALFORMED, 'InvalidHeaderDeserialization', message, { path, offset: at(offset), ...(tensor !== undefined ? { tensor } : {}) });
  if (!(root instanceof JsonObject)) throw deser('header is not a JSON object', 0);
  if (header[0] !== 0x7b) diags.info('SAFETENSORS_LEADING_WHITESPACE', 'header starts with whitespace before "{" (accepted, as the reference reader does)');
  if (n % 8 !== 0) diags.info('SAFETENSORS_UNALIGNED_HEADER', `header length ${n} is not a multiple of 8, so tensor data is not 8-byte aligned in the file`);

  let metadata: Record<string, string> | undefined;
  const raw: RawTensor[] = [];
  for (const [key, { value, offset }] of root.entries) {
    if (key === METADATA_KEY) {
      metadata = parseMetadata(value, offset, deser);
      continue;
    }
    raw.push(parseTensorInfo(key, value, offset, deser, diags, path));
  }

  const end = validateLayout(raw, path);
  const total = BigInt(PREFIX_BYTES + n) + end;
  if (total !== BigInt(fileSize)) {
    const short = total > BigInt(fileSize);
    throw stError(
      short ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED,
      'MetadataIncompleteBuffer',
      short
        ? `tensor data needs ${total} bytes but the file has ${fileSize}`
        : `${BigInt(fileSize) - total} bytes after the last tensor (data ends at byte ${total}); the data buffer must end the file`,
      { path, offset: Number(total < BigInt(fileSize) ? total : BigInt(fileSize)) },
    );
  }

  const tensors: HeaderTensor[] = raw.map((r) => {
    const shape = r.shape.map((d) => {
      if (d > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw stError(ErrorCodes.OUT_OF_RANGE, undefined, `dimension ${d} is larger than 2^53, which this reader cannot represent`, { path, offset: at(r.keyOffset), tensor: r.name });
      }
      return Number(d);
    });
    return { name: r.name, code: r.code, dtype: r.dtype, shape, begin: Number(r.begin), end: Number(r.end) };
  });
  return { headerLength: n, dataStart: PREFIX_BYTES + n, tensors, ...(metadata ? { metadata } : {}), diagnostics: diags.items };
}

interface RawTensor {
  name: string;
  code: string;
  dtype: DType;
  bits: number;
  shape: bigint[];
  begin: bigint;
  end: bigint;
  keyOffset: number;
}

type Deser = (message: string, offset: number, tensor?: string) => Error;

function parseMetadata(value: JsonValue, offset: number, deser: Deser): Record<string, string> | undefined {
  if (value === null) return undefined; // serde reads `null` as `None`
  if (!(value instanceof JsonObject)) throw deser('__metadata__ must be an object of strings', offset);
  const out: Record<string, string> = {};
  for (const [k, e] of value.entries) {
    if (typeof e.value !== 'string') throw deser(`__metadata__ value of ${JSON.stringify(k)} is not a string`, e.offset);
    // defineProperty: a key named "__proto__" must become data, not the object's prototype.
    Object.defineProperty(out, k, { value: e.value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function parseTensorInfo(name: string, value: JsonValue, offset: number, deser: Deser, diags: Diagnostics, path: string): RawTensor {
  if (!(value instanceof JsonObject)) throw deser('tensor entry is not an object {dtype, shape, data_offsets}', offset, name);
  const field = (f: string): { value: JsonValue; offset: number } => {
    const e = value.entries.get(f);
    if (!e) throw deser(`missing field \`${f}\``, offset, name);
    return e;
  };
  for (const k of value.entries.keys()) {
    if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') {
      diags.warn('SAFETENSORS_UNKNOWN_FIELD', `ignored unknown field ${JSON.stringify(k)}`, { tensor: name });
    }
  }
  const d = field('dtype');
  if (typeof d.value !== 'string') throw deser('dtype is not a string', d.offset, name);
  const info = dtypeFromSafetensors(d.value);
  if (!info) {
    throw stError(ErrorCodes.DTYPE, 'InvalidHeaderDeserialization', `unknown dtype ${JSON.stringify(d.value)}`, { path, offset: PREFIX_BYTES + d.offset, tensor: name });
  }
  const s = field('shape');
  if (!Array.isArray(s.value)) throw deser('shape is not an array', s.offset, name);
  const shape = s.value.map((v) => u64(v, 'shape', s.offset, name, deser));
  const o = field('data_offsets');
  if (!Array.isArray(o.value) || o.value.length !== 2) throw deser('data_offsets is not an array [begin, end]', o.offset, name);
  const begin = u64(o.value[0]!, 'data_offsets', o.offset, name, deser);
  const end = u64(o.value[1]!, 'data_offsets', o.offset, name, deser);
  return { name, code: d.value, dtype: info.name, bits: info.bits, shape, begin, end, keyOffset: offset };
}

function u64(v: JsonValue, what: string, offset: number, name: string, deser: Deser): bigint {
  if (v instanceof JsonNumber && v.isUnsignedInteger) {
    const x = BigInt(v.text);
    if (x <= U64_MAX) return x;
  }
  throw deser(`${what} holds ${v instanceof JsonNumber ? v.text : JSON.stringify(v)}, not an unsigned 64-bit integer`, offset, name);
}

/** `Metadata::validate`: returns the end of the data buffer. */
function validateLayout(raw: RawTensor[], path: string): bigint {
  const order = raw.map((_, i) => i);
  order.sort((a, b) => cmp(raw[a]!.begin, raw[b]!.begin) || cmp(raw[a]!.end, raw[b]!.end) || a - b);
  let start = 0n;
  for (const i of order) {
    const t = raw[i]!;
    const where = { path, offset: PREFIX_BYTES + t.keyOffset, tensor: t.name };
    if (t.begin !== start || t.end < t.begin) {
      const why = t.end < t.begin ? 'ends before it begins' : t.begin < start ? `overlaps the previous tensor (which ends at ${start})` : `leaves a gap after ${start}`;
      throw stError(ErrorCodes.OUT_OF_RANGE, 'InvalidOffset', `data_offsets [${t.begin}, ${t.end}] ${why}; tensors must tile the data buffer`, where);
    }
    start = t.end;
    let count = 1n;
    for (const d of t.shape) {
      count *= d;
      if (count > U64_MAX) throw stError(ErrorCodes.OUT_OF_RANGE, 'ValidationOverflow', `element count of shape [${t.shape.join(',')}] overflows 64 bits`, where);
    }
    let bytes: bigint;
    if (t.bits >= 8) {
      bytes = count * BigInt(t.bits / 8);
      if (bytes > U64_MAX) throw stError(ErrorCodes.OUT_OF_RANGE, 'ValidationOverflow', `byte size of ${t.code}[${t.shape.join(',')}] overflows 64 bits`, where);
    } else {
      const bits = count * BigInt(t.bits);
      if (bits > U64_MAX) throw stError(ErrorCodes.OUT_OF_RANGE, 'ValidationOverflow', `bit size of ${t.code}[${t.shape.join(',')}] overflows 64 bits`, where);
      if (bits % 8n !== 0n) throw stError(ErrorCodes.TENSOR_SIZE, 'MisalignedSlice', `${t.code}[${t.shape.join(',')}] is ${bits} bits, not a whole number of bytes`, where);
      bytes = bits / 8n;
    }
    if (t.end - t.begin !== bytes) {
      throw stError(ErrorCodes.TENSOR_SIZE, 'TensorInvalidInfo', `${t.code}[${t.shape.join(',')}] needs ${bytes} bytes but data_offsets [${t.begin}, ${t.end}] span ${t.end - t.begin}`, where);
    }
  }
  return start;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export { FORMAT };
