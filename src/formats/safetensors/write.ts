/**
 * Streaming safetensors writer with the reference crate's layout, so that what we write is
 * byte-identical to `safetensors.serialize_file` for the same tensors and metadata order:
 *   - data ordered by dtype rank descending (the crate's enum order, see dtype.ts), then by name in
 *     UTF-8 byte order (Rust `String` ordering, which differs from JS UTF-16 order for astral chars);
 *   - header JSON with `__metadata__` first, then tensors in data order, keys dtype/shape/data_offsets,
 *     no whitespace, strings escaped like serde_json (JSON.stringify escapes the same set);
 *   - header padded with spaces to a multiple of 8, no gaps between tensors.
 * The header is computed from shapes and dtypes alone, then each tensor is loaded and written one at
 * a time, so memory is bounded by the largest tensor.
 */
import { byteLength as dtypeByteLength, dtypeInfo } from '../../core/dtype.js';
import { ErrorCodes } from '../../core/errors.js';
import { numel } from '../../core/tensor.js';
import type { ByteSink } from '../../io/source.js';
import type { LazyTensor } from '../weights.js';
import { layoutRank, safetensorsCode } from './dtype.js';
import { stError } from './errors.js';
import { MAX_HEADER_BYTES, METADATA_KEY, PREFIX_BYTES } from './header.js';

export interface SafetensorsInput {
  tensors: LazyTensor[];
  metadata?: Record<string, string>;
}

export interface PlannedTensor {
  tensor: LazyTensor;
  code: string;
  begin: number;
  end: number;
}

export interface SafetensorsPlan {
  /** The 8-byte length prefix followed by the padded header. */
  head: Uint8Array;
  /** Tensors in the order their bytes follow the header. */
  entries: PlannedTensor[];
  /** Size of the whole file. */
  totalBytes: number;
}

const encoder = new TextEncoder();
/** A lone surrogate cannot be encoded as UTF-8; TextEncoder would silently write U+FFFD instead. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Checks the tensors and computes the header and data layout without loading any tensor. */
export function planSafetensors(set: SafetensorsInput, path?: string): SafetensorsPlan {
  const where = (tensor?: string) => ({ ...(path !== undefined ? { path } : {}), ...(tensor !== undefined ? { tensor } : {}) });
  const seen = new Set<string>();
  const items = set.tensors.map((t) => {
    if (typeof t.name !== 'string' || LONE_SURROGATE.test(t.name)) {
      throw stError(ErrorCodes.MALFORMED, undefined, 'tensor name is not a well-formed Unicode string', where(String(t.name)));
    }
    if (t.name === METADATA_KEY) throw stError(ErrorCodes.MALFORMED, undefined, `a tensor cannot be named ${METADATA_KEY}`, where(t.name));
    if (seen.has(t.name)) throw stError(ErrorCodes.MALFORMED, undefined, 'duplicate tensor name', where(t.name));
    seen.add(t.name);
    const code = safetensorsCode(t.dtype);
    if (code === undefined) throw stError(ErrorCodes.DTYPE, undefined, `safetensors has no dtype for ${t.dtype}`, where(t.name));
    const count = numel(t.shape, { tensor: t.name });
    const bits = dtypeInfo(t.dtype).bits;
    if (bits < 8 && (count * bits) % 8 !== 0) {
      throw stError(ErrorCodes.TENSOR_SIZE, 'MisalignedSlice', `${code}[${t.shape.join(',')}] is not a whole number of bytes`, where(t.name));
    }
    const want = dtypeByteLength(t.dtype, count);
    if (t.byteLength !== want) {
      throw stError(ErrorCodes.TENSOR_SIZE, undefined, `${t.dtype}[${t.shape.join(',')}] needs ${want} bytes, the tensor declares ${t.byteLength}`, where(t.name));
    }
    return { tensor: t, code, rank: layoutRank(code), key: encoder.encode(t.name) };
  });
  items.sort((a, b) => b.rank - a.rank || compareBytes(a.key, b.key));

  let offset = 0;
  const entries: PlannedTensor[] = items.map(({ tensor, code }) => {
    const begin = offset;
    offset += tensor.byteLength;
    return { tensor, code, begin, end: offset };
  });

  const parts: string[] = [];
  if (set.metadata !== undefined) {
    const kv: string[] = [];
    for (const [k, v] of Object.entries(set.metadata)) {
      if (typeof v !== 'string' || LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v)) {
        throw stError(ErrorCodes.MALFORMED, undefined, `__metadata__ entry ${JSON.stringify(k)} must be a well-formed string`, where());
      }
      kv.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"${METADATA_KEY}":{${kv.join(',')}}`);
  }
  for (const e of entries) {
    parts.push(`${JSON.stringify(e.tensor.name)}:{"dtype":"${e.code}","shape":[${e.tensor.shape.join(',')}],"data_offsets":[${e.begin},${e.end}]}`);
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.byteLength / 8) * 8;
  if (n > MAX_HEADER_BYTES) {
    throw stError(ErrorCodes.LIMIT, 'HeaderTooLarge', `header would be ${n} bytes; readers refuse more than ${MAX_HEADER_BYTES}`, where());
  }
  const head = new Uint8Array(PREFIX_BYTES + n).fill(0x20, PREFIX_BYTES + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, PREFIX_BYTES);
  return { head, entries, totalBytes: head.byteLength + offset };
}

export async function writeSafetensors(set: SafetensorsInput, sink: ByteSink, opts: { path?: string } = {}): Promise<{ bytes: number }> {
  return writePlan(planSafetensors(set, opts.path), sink, opts.path);
}

/** Bytes per piece when a tensor is copied through `readInto` (one buffer, reused). */
const COPY_CHUNK = 1 << 20;

/**
 * Writes a planned file: the head, then each tensor in layout order — tensors larger than one chunk
 * through one reused buffer when they offer `readInto` (no whole-tensor allocation), others by their
 * `load()` (one read: cheaper for small tensors, and the access pattern forward-only sources expect).
 */
export async function writePlan(plan: SafetensorsPlan, sink: ByteSink, path?: string, chunkBytes = COPY_CHUNK): Promise<{ bytes: number }> {
  await sink.write(plan.head);
  let chunk: Uint8Array | undefined;
  for (const e of plan.entries) {
    const want = e.end - e.begin;
    if (want === 0) continue;
    const t = e.tensor;
    if (t.readInto && t.byteLength === want && want > chunkBytes) {
      chunk ??= new Uint8Array(chunkBytes);
      for (let at = 0; at < want; at += chunkBytes) {
        const piece = chunk.subarray(0, Math.min(chunkBytes, want - at));
        await t.readInto(at, piece);
        // ByteSink contract: the caller may reuse its buffer once write resolves.
        await sink.write(piece);
      }
      continue;
    }
    const data = await e.tensor.load();
    if (data.byteLength !== want) {
      throw stError(ErrorCodes.TENSOR_SIZE, undefined, `load() returned ${data.byteLength} bytes, ${want} declared`, {
        ...(path !== undefined ? { path } : {}),
        tensor: e.tensor.name,
      });
    }
    await sink.write(data);
  }
  return { bytes: plan.totalBytes };
}

/** Byte-wise order, which for UTF-8 is code point order (Rust `str` and Python `str` ordering). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}
