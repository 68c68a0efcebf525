/**
 * Tensor-bundle checkpoint reader (`<prefix>.index` + `<prefix>.data-NNNNN-of-MMMMM`). Opening reads
 * only the index (an SSTable of BundleEntryProtos) and checks every entry against its shard's size;
 * tensor bytes are read on `load()`, which verifies the entry's masked CRC32C.
 */
import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { byteLength } from '../../../core/dtype.js';
import { Diagnostics, ErrorCodes, ModelsmithError } from '../../../core/errors.js';
import { numel } from '../../../core/tensor.js';
import type { ByteSource } from '../../../io/source.js';
import type { LazyTensor, WeightSet } from '../../weights.js';
import { BundleEntryProtoSchema, BundleHeaderProtoSchema, BundleHeaderProto_Endianness, type BundleEntryProto, type BundleHeaderProto } from '../gen/tensorflow/tensor_bundle_pb.js';
import { scanProto } from '../scan.js';
import { dtypeFromTf, MAX_RANK, shapeDims, tfDtypeLabel } from '../tf-types.js';
import { fail, FORMAT } from './bytes.js';
import { crc32c, unmaskCrc } from './crc32c.js';
import { readTable } from './sstable-read.js';
import { decodeStringTensor } from './strings.js';

/** `LazyTensor.extra.encoding` of string tensors: `load()` returns the bundle's string layout. */
export const STRING_ENCODING = 'tf-bundle-strings';
/** TF's kTensorBundleVersion: bundles whose min_consumer is newer cannot be read. */
export const BUNDLE_VERSION = 1;
/** Far more shards than any real checkpoint; caps the shard table a hostile header can ask for. */
export const MAX_SHARDS = 100_000;

export type ShardResolver = (shardId: number, numShards: number) => Promise<ByteSource>;

export interface BundleTensorExtra extends Record<string, unknown> {
  checkpointKey: string;
  shard: number;
  offset: number;
  /** Masked CRC32C as stored in the index. */
  crc32c: number;
  /** Present for string tensors: see STRING_ENCODING. */
  encoding?: string;
  count?: number;
}

/** Shard file name for a bundle prefix, e.g. `variables/variables.data-00000-of-00001`. */
export function shardFileName(prefix: string, shardId: number, numShards: number): string {
  return `${prefix}.data-${String(shardId).padStart(5, '0')}-of-${String(numShards).padStart(5, '0')}`;
}

const utf8 = new TextDecoder('utf-8');

/** Decode an index value; errors point at the block holding it (values have no file offset of their own). */
function decodeValue<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, path: string | undefined, offset: number, tensor?: string): MessageShape<Desc> {
  try {
    scanProto(bytes, schema, { format: FORMAT });
    return fromBinary(schema, bytes);
  } catch (e) {
    // Scan errors carry offsets inside the value; the block offset is the useful file position. A value
    // cut short inside an intact block is corruption, not a truncated file, so only E_LIMIT survives.
    const code = e instanceof ModelsmithError && e.code === ErrorCodes.LIMIT ? e.code : ErrorCodes.MALFORMED;
    const why = (e as Error).message.replace(/^E_[A-Z_]+: /, '').replace(/ \(byte \d+\)$/, '');
    return fail(code, `${schema.name} is not a valid protobuf message: ${why}`, { ...(path !== undefined ? { path } : {}) }, offset, tensor);
  }
}

function toSafe(v: bigint, what: string, path: string | undefined, offset: number, tensor: string): number {
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) fail(ErrorCodes.OUT_OF_RANGE, `${what} ${v} is out of range`, { ...(path !== undefined ? { path } : {}) }, offset, tensor);
  return Number(v);
}

export async function readTensorBundle(index: ByteSource, shard: ShardResolver, opts: { path?: string } = {}): Promise<WeightSet> {
  const path = opts.path ?? index.name;
  const where = { path };
  const table = await readTable(index);
  const diagnostics = new Diagnostics();
  const first = table.entries[0];
  if (!first || first.key.length !== 0) fail(ErrorCodes.MALFORMED, 'bundle index has no header entry (empty key)', where, first?.blockOffset ?? 0);
  const header: BundleHeaderProto = decodeValue(BundleHeaderProtoSchema, first.value, path, first.blockOffset);
  const numShards = header.numShards;
  if (numShards < 1 || numShards > MAX_SHARDS) fail(ErrorCodes.OUT_OF_RANGE, `bundle header declares ${numShards} shards`, where, first.blockOffset);
  if (header.endianness !== BundleHeaderProto_Endianness.LITTLE) {
    fail(ErrorCodes.UNSUPPORTED, 'big-endian tensor bundles are not supported', where, first.blockOffset);
  }
  const v = header.version;
  if (v && (v.minConsumer > BUNDLE_VERSION || v.badConsumers.includes(BUNDLE_VERSION))) {
    fail(ErrorCodes.UNSUPPORTED, `bundle version (producer ${v.producer}, min_consumer ${v.minConsumer}) is newer than version ${BUNDLE_VERSION}`, where, first.blockOffset);
  }

  const shards = new Map<number, ByteSource>();
  const openShard = async (id: number): Promise<ByteSource> => {
    let s = shards.get(id);
    if (!s) {
      s = await shard(id, numShards);
      shards.set(id, s);
    }
    return s;
  };

  const tensors: LazyTensor[] = [];
  for (const e of table.entries.slice(1)) {
    const key = utf8.decode(e.key);
    const at = e.blockOffset;
    const entry: BundleEntryProto = decodeValue(BundleEntryProtoSchema, e.value, path, at, key);
    if (entry.slices.length > 0) fail(ErrorCodes.UNSUPPORTED, 'partitioned (sliced) variables are not supported', where, at, key);
    const dtype = dtypeFromTf(entry.dtype);
    if (!dtype) {
      diagnostics.warn('TF_BUNDLE_DTYPE', `tensor '${key}' has dtype ${tfDtypeLabel(entry.dtype)}, which modelsmith cannot represent; skipped`, { tensor: key });
      continue;
    }
    const dims = shapeDims(entry.shape);
    if (dims === null || dims.some((d) => !(d >= 0))) fail(ErrorCodes.MALFORMED, `tensor shape [${dims?.join(',') ?? '?'}] is not fully defined`, where, at, key);
    if (dims.length > MAX_RANK) fail(ErrorCodes.LIMIT, `tensor rank ${dims.length} exceeds ${MAX_RANK}`, where, at, key);
    let count: number;
    try {
      count = numel(dims, { tensor: key });
    } catch {
      return fail(ErrorCodes.OUT_OF_RANGE, `shape [${dims.join(',')}] has too many elements`, where, at, key);
    }
    if (entry.shardId < 0 || entry.shardId >= numShards) fail(ErrorCodes.OUT_OF_RANGE, `shard ${entry.shardId} of ${numShards}`, where, at, key);
    const offset = toSafe(entry.offset, 'data offset', path, at, key);
    const size = toSafe(entry.size, 'data size', path, at, key);
    const isString = dtype === 'string';
    if (isString) {
      // Each element needs at least a 1-byte length, plus the 4-byte lengths checksum.
      if (size < count + 4) fail(ErrorCodes.TENSOR_SIZE, `string tensor of ${count} elements cannot fit in ${size} bytes`, where, at, key);
    } else {
      const want = byteLength(dtype, count);
      if (size !== want) fail(ErrorCodes.TENSOR_SIZE, `${dtype}[${dims.join(',')}] needs ${want} bytes, the index says ${size}`, where, at, key);
    }
    const src = await openShard(entry.shardId);
    if (offset + size > src.size) {
      throw new ModelsmithError(ErrorCodes.TRUNCATED, `tensor data [${offset}, ${offset + size}) runs past the end of the shard (${src.size} bytes)`, { format: FORMAT, path: src.name, offset, tensor: key });
    }
    const stored = entry.crc32c;
    const extra: BundleTensorExtra = { checkpointKey: key, shard: entry.shardId, offset, crc32c: stored, ...(isString ? { encoding: STRING_ENCODING, count } : {}) };
    tensors.push({
      name: key,
      dtype,
      shape: dims,
      byteLength: size,
      extra,
      load: async () => {
        const bytes = await src.read(offset, size);
        const got = isString ? decodeStringTensor(bytes, count, { path: src.name, base: offset }, key).entryCrc : crc32c(bytes);
        if (got !== unmaskCrc(stored)) {
          throw new ModelsmithError(ErrorCodes.MALFORMED, `tensor data CRC32C mismatch (index says 0x${unmaskCrc(stored).toString(16)}, data has 0x${got.toString(16)})`, { format: FORMAT, path: src.name, offset, tensor: key });
        }
        return bytes;
      },
    });
  }
  return { format: FORMAT, path, tensors, diagnostics: diagnostics.items };
}

/** The elements of a string tensor read from a bundle (its `load()` bytes use the bundle layout). */
export async function loadStrings(t: LazyTensor): Promise<Uint8Array[]> {
  if (t.dtype !== 'string' || t.extra?.['encoding'] !== STRING_ENCODING) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `tensor is ${t.dtype}, not a bundle string tensor`, { format: FORMAT, tensor: t.name });
  }
  const bytes = await t.load();
  return decodeStringTensor(bytes, numel(t.shape), { base: 0 }, t.name).strings;
}
