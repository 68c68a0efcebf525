/**
 * PyTorch writer: a state_dict saved the way `torch.save(state_dict, f)` (torch 1.13, zip format)
 * saves it, loadable with `torch.load(f, weights_only=True)`.
 *
 * Records, in torch's order: `<archive>/data.pkl`, `<archive>/byteorder`, `<archive>/data/<key>` per
 * storage (keys sorted as strings, as torch 1.13 sorts them), `<archive>/version`.
 *
 * Streaming: the pickle only needs shapes and dtypes, so it is written first; then each storage is
 * loaded, written and dropped before the next one is loaded. Peak memory is one tensor, except when
 * checking tied weights (below), which holds two tensors of the same key at a time.
 */
import { byteLength, dtypeInfo, type DTypeInfo } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type ErrorContext } from '../../core/errors.js';
import { numel } from '../../core/tensor.js';
import type { ByteSink } from '../../io/source.js';
import { crc32 } from '../crc32.js';
import type { LazyTensor } from '../weights.js';
import { pickleStateDict, type PickledTensor, type StateDictMetadata } from './pickle-write.js';
import { ZipWriter } from './zip-write.js';

export interface WritePytorchOptions {
  /** Top-level folder of every record. torch uses the file's basename when saving to a path. Default "archive". */
  archiveName?: string;
  /** Force zip64 forms for every entry (tests of readers' zip64 paths on small data). */
  zip64?: boolean;
  /** Write the `byteorder` record (torch ≥ 2.1 writes it, 1.13 does not). Default true. */
  byteorder?: boolean;
  /** `state_dict._metadata` (module prefix → `{version: n}`), pickled as torch does when present. */
  metadata?: StateDictMetadata;
  /** Output name for error messages. */
  path?: string;
}

export interface WritePytorchResult {
  /** Bytes written to the sink. */
  bytes: number;
  /** Storage records written (tied tensors share one). */
  storages: number;
}

interface Storage {
  key: string;
  /** The tensor whose bytes are written for this storage. */
  owner: LazyTensor;
  info: DTypeInfo;
  numel: number;
  byteLength: number;
}

const FORMAT = 'pytorch';

/** Error context for a tensor (or the whole output when omitted). */
type Ctx = (tensor?: string) => ErrorContext;
const utf8 = new TextEncoder();

export async function writePytorch(
  set: { tensors: LazyTensor[] },
  sink: ByteSink,
  opts: WritePytorchOptions = {},
): Promise<WritePytorchResult> {
  const archive = opts.archiveName ?? 'archive';
  checkArchiveName(archive, opts.path);
  const ctx: Ctx = (tensor) => ({
    format: FORMAT,
    ...(opts.path !== undefined ? { path: opts.path } : {}),
    ...(tensor !== undefined ? { tensor } : {}),
  });

  const storages: Storage[] = [];
  const storageOf = await assignStorages(set.tensors, storages, ctx);
  const pickled: PickledTensor[] = set.tensors.map((t, i) => {
    const s = storageOf[i]!;
    return {
      name: t.name,
      storageClass: s.info.torchStorage!,
      storageKey: s.key,
      storageNumel: s.numel,
      storageOffset: 0,
      shape: t.shape,
      stride: contiguousStrides(t.shape),
    };
  });

  const zip = new ZipWriter(sink, { alignment: 64, forceZip64: opts.zip64 === true, ...(opts.path !== undefined ? { path: opts.path } : {}) });
  await zip.add(`${archive}/data.pkl`, pickleStateDict(pickled, opts.metadata));
  if (opts.byteorder !== false) await zip.add(`${archive}/byteorder`, utf8.encode('little'));
  // torch 1.13 writes `sorted(serialized_storages.keys())`: string order, so "10" comes before "2".
  const ordered = [...storages].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of ordered) {
    const bytes = await loadChecked(s.owner, s.byteLength, ctx);
    await zip.add(`${archive}/data/${s.key}`, bytes);
  }
  await zip.add(`${archive}/version`, utf8.encode('3\n'));
  const { bytes } = await zip.finish();
  return { bytes, storages: storages.length };
}

/**
 * Validate every tensor and give each one a storage. Tensors share a storage only when they carry the
 * same `storageKey` and their bytes are identical (same dtype, same length, equal content): that is a
 * tied weight. Views of one source storage with different content get storages of their own, because
 * each is written C-contiguous from offset 0. Candidates are filtered by CRC (one load each), then
 * confirmed byte for byte, so a CRC collision cannot merge two different tensors.
 */
async function assignStorages(
  tensors: readonly LazyTensor[],
  storages: Storage[],
  ctx: Ctx,
): Promise<Storage[]> {
  const names = new Set<string>();
  const byKey = new Map<string, number[]>();
  const infos: DTypeInfo[] = [];
  const counts: number[] = [];
  tensors.forEach((t, i) => {
    if (names.has(t.name)) throw new ModelsmithError(ErrorCodes.MALFORMED, 'duplicate tensor name in state_dict', ctx(t.name));
    names.add(t.name);
    const info = dtypeInfo(t.dtype);
    if (!info.torchStorage) {
      const why = info.torch
        ? `has no legacy torch storage class (newer torch stores torch.${info.torch} with _rebuild_tensor_v3, which this writer does not emit)`
        : 'has no torch equivalent';
      throw new ModelsmithError(ErrorCodes.DTYPE, `dtype ${t.dtype} ${why}`, ctx(t.name));
    }
    // A quantized tensor's bytes are its int representation; writing them as a plain tensor would drop
    // scale and zero point without a word, and torch 1.13's weights-only loader refuses _rebuild_qtensor.
    if (t.extra?.quantized !== undefined) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `quantized tensor (${String(t.extra.quantized)}) cannot be written as a plain state_dict entry`, ctx(t.name));
    }
    const n = numel(t.shape, ctx(t.name));
    const want = byteLength(t.dtype, n);
    if (t.byteLength !== want) {
      throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${t.dtype}[${t.shape.join(',')}] needs ${want} bytes, tensor declares ${t.byteLength}`, ctx(t.name));
    }
    infos.push(info);
    counts.push(n);
    if (t.storageKey !== undefined) {
      const g = byKey.get(t.storageKey);
      if (g) g.push(i);
      else byKey.set(t.storageKey, [i]);
    }
  });

  // CRCs of the members of groups that could hold tied tensors.
  const crcs = new Map<number, number>();
  for (const group of byKey.values()) {
    if (group.length < 2) continue;
    for (const i of group) crcs.set(i, crc32(await loadChecked(tensors[i]!, tensors[i]!.byteLength, ctx)));
  }

  const storageOf: Storage[] = [];
  const groupStorages = new Map<string, { index: number; storage: Storage }[]>();
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    let shared: Storage | undefined;
    const candidates = t.storageKey !== undefined ? groupStorages.get(t.storageKey) : undefined;
    if (candidates) {
      for (const c of candidates) {
        const o = tensors[c.index]!;
        if (o.dtype !== t.dtype || o.byteLength !== t.byteLength || crcs.get(c.index) !== crcs.get(i)) continue;
        if (await sameBytes(o, t, ctx)) {
          shared = c.storage;
          break;
        }
      }
    }
    if (!shared) {
      // Keys follow first use, as torch's id_map does while pickling.
      shared = { key: String(storages.length), owner: t, info: infos[i]!, numel: counts[i]!, byteLength: t.byteLength };
      storages.push(shared);
      if (t.storageKey !== undefined) {
        const list = groupStorages.get(t.storageKey) ?? [];
        list.push({ index: i, storage: shared });
        groupStorages.set(t.storageKey, list);
      }
    }
    storageOf.push(shared);
  }
  return storageOf;
}

async function sameBytes(
  a: LazyTensor,
  b: LazyTensor,
  ctx: Ctx,
): Promise<boolean> {
  const x = await loadChecked(a, a.byteLength, ctx);
  const y = await loadChecked(b, b.byteLength, ctx);
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** load() with the length the pickle already promised: a mismatch would make torch misread the storage. */
async function loadChecked(
  t: LazyTensor,
  expected: number,
  ctx: Ctx,
): Promise<Uint8Array> {
  const bytes = await t.load();
  if (bytes.byteLength !== expected) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `load() returned ${bytes.byteLength} bytes, expected ${expected}`, ctx(t.name));
  }
  return bytes;
}

/** C-order strides as torch computes them: empty dims count as 1, so [0,3] has strides (3,1). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= Math.max(shape[i]!, 1);
  }
  return strides;
}

function checkArchiveName(name: string, path: string | undefined): void {
  // Readers take everything up to the first '/' as the archive folder, and torch's own reader
  // rejects names it cannot round-trip; keep to one non-empty path segment without control chars.
  // eslint-disable-next-line no-control-regex
  if (name === '' || name === '.' || name === '..' || /[/\\\u0000-\u001f]/.test(name) || utf8.encode(name).byteLength > 1024) {
    throw new ModelsmithError(ErrorCodes.USAGE, `invalid archive name '${name}': one non-empty path segment expected`, {
      format: FORMAT,
      ...(path !== undefined ? { path } : {}),
    });
  }
}
