/**
 * `torch.save` files (zip ≥ 1.6, legacy pickle stream, TorchScript zip) as a WeightSet of lazy
 * tensors. Opening decodes the pickle with the never-executing VM and locates every storage, so
 * `load()` of a contiguous tensor is exactly one read and a view is one span read plus a gather.
 */
import { dtypeInfo } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';
import { checkTensorRange, type LazyTensor, type WeightSet } from '../weights.js';
import { parseZip } from './archive.js';
import { elemSize } from './interpreter.js';
import { isLegacyHead, parseLegacy } from './legacy.js';
import type { TensorRef } from './pyobjects.js';
import { selectTensors } from './select.js';
import type { ParsedContainer, StorageRange } from './storage.js';
import { readView, swapInPlace, viewExtent, type ViewSpec } from './strided.js';
import { summarizeTree } from './tree.js';

export interface PytorchFile extends WeightSet {
  format: 'pytorch-zip' | 'pytorch-legacy' | 'torchscript';
  /** Top-level keys whose values hold tensors (candidate nested state_dicts), e.g. ['model', 'optimizer']. */
  stateDictKeys: string[];
  /** The key the tensors were taken from, when not the top object. */
  selectedKey?: string;
  /** Sorted unique names of globals that are not allow-listed (kept as inert placeholders). */
  unknownGlobals: string[];
  /** JSON-able summary of the whole unpickled object. */
  tree: unknown;
}

export interface ReadPytorchOptions {
  path?: string;
  /** Dotted key of the nested state_dict to take (e.g. 'model_state_dict', 'module.encoder'). */
  key?: string;
}

/** Output bigger than this (and than the file) only comes from overlapping views such as expand(). */
const MAX_EXPANDED_BYTES = 256 * 1024 * 1024;
const MAX_CHANNELS = 1 << 20;

export function detectPytorch(head: Uint8Array): 'pytorch-zip' | 'pytorch-legacy' | undefined {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'pytorch-zip';
  if (isLegacyHead(head)) return 'pytorch-legacy';
  return undefined;
}

export async function readPytorch(src: ByteSource, opts: ReadPytorchOptions = {}): Promise<PytorchFile> {
  const path = opts.path ?? src.name;
  const head = await src.read(0, Math.min(16, src.size));
  const kind = detectPytorch(head);
  if (!kind) {
    if (head.length >= 8 && new TextDecoder().decode(head.subarray(0, 8)) === 'PYTORCH1') {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'PyTorch preview-release archive (PYTORCH1), which torch itself no longer loads', { format: 'pytorch', path, offset: 0 });
    }
    if (src.size >= 262 && new TextDecoder().decode(await src.read(257, 5)) === 'ustar') {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'tar archive: the torch ≤ 0.1 tar checkpoint format is not supported', { format: 'pytorch', path, offset: 257 });
    }
    throw new ModelsmithError(ErrorCodes.UNKNOWN_FORMAT, 'not a PyTorch file (no zip or legacy pickle signature)', { format: 'pytorch', path, offset: 0 });
  }
  const parsed = kind === 'pytorch-zip' ? await parseZip(src, path) : await parseLegacy(src, path);
  const diagnostics: Diagnostic[] = [...parsed.diagnostics];
  const sel = selectTensors(parsed.top, { ...(opts.key !== undefined ? { key: opts.key } : {}), path });
  if (parsed.unknownGlobals.size) {
    diagnostics.push({ level: 'info', code: 'PT_PLACEHOLDERS', message: `${parsed.unknownGlobals.size} class/function reference(s) kept as inert placeholders (never executed): ${[...parsed.unknownGlobals].sort().slice(0, 10).join(', ')}${parsed.unknownGlobals.size > 10 ? ', …' : ''}` });
  }
  if (parsed.format === 'torchscript') {
    diagnostics.push({ level: 'info', code: 'PT_TORCHSCRIPT', message: 'TorchScript archive: tensors are the attributes found in data.pkl; code/ and constants.pkl are not interpreted' });
  }
  if (sel.truncated) {
    diagnostics.push({ level: 'warning', code: 'PT_WALK_TRUNCATED', message: 'object graph too deep or too large: some tensors may be missing' });
  }

  const tensors: LazyTensor[] = [];
  const used = new Set<string>();
  // Next suffix per base name: a hostile file can give thousands of tensors the same name.
  const nextSuffix = new Map<string, number>();
  let duplicates = 0;
  for (const f of sel.found) {
    let name = f.name;
    if (used.has(name)) {
      let i = nextSuffix.get(f.name) ?? 1;
      while (used.has(`${f.name}#${i}`)) i++;
      nextSuffix.set(f.name, i + 1);
      name = `${f.name}#${i}`;
      if (++duplicates <= 20) diagnostics.push({ level: 'warning', code: 'PT_DUPLICATE_NAME', message: `two tensors are named '${f.name}'; the second is '${name}'`, tensor: name });
    }
    used.add(name);
    tensors.push(await lazyTensor(src, parsed, f.ref, name, path));
  }

  if (duplicates > 20) diagnostics.push({ level: 'warning', code: 'PT_DUPLICATE_NAME', message: `${duplicates} tensors were renamed to keep names unique` });

  return {
    format: parsed.format,
    path,
    tensors,
    diagnostics,
    stateDictKeys: sel.stateDictKeys,
    ...(sel.selectedKey !== undefined ? { selectedKey: sel.selectedKey } : {}),
    unknownGlobals: [...parsed.unknownGlobals].sort(),
    tree: summarizeTree(parsed.top),
  };
}

interface Located {
  range: StorageRange;
  spec: ViewSpec;
  ext: ReturnType<typeof viewExtent>;
}

async function locate(parsed: ParsedContainer, ref: TensorRef, name: string, path: string): Promise<Located> {
  const ctx = { path, tensor: name };
  const es = elemSize(ref.dtype);
  const spec: ViewSpec = { offset: ref.offset, shape: ref.shape, stride: ref.stride, elemSize: es };
  const ext = viewExtent(spec, ctx);
  const range = await parsed.resolve(ref.storage, name);
  // The storage size is the smaller of what its id claims and what the container holds.
  const storageBytes = Math.min(range.byteLength, ref.storage.numel * ref.storage.elemSize);
  if (ext.end * es > storageBytes) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `view [${ref.shape.join(',')}] stride [${ref.stride.join(',')}] offset ${ref.offset} needs ${ext.end * es} bytes of storage '${ref.storage.key}', which has ${storageBytes}`, { format: 'pytorch', ...ctx, offset: range.offset });
  }
  return { range, spec, ext };
}

async function lazyTensor(src: ByteSource, parsed: ParsedContainer, ref: TensorRef, name: string, path: string): Promise<LazyTensor> {
  const { range, spec, ext } = await locate(parsed, ref, name, path);
  const es = spec.elemSize;
  const byteLength = ext.numel * es;
  if (byteLength > Math.max(src.size, MAX_EXPANDED_BYTES)) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `expanded view of ${byteLength} bytes is larger than the file and the ${MAX_EXPANDED_BYTES}-byte cap`, { format: 'pytorch', path, tensor: name });
  }
  const swapWord = parsed.bigEndian && es > 1 ? (dtypeInfo(ref.dtype).name.startsWith('complex') ? es / 2 : es) : 0;
  const s = ref.storage;
  const canonical = ref.offset === 0 && ext.contiguous && ext.numel * es === s.numel * s.elemSize;
  const base = s.viewOffset !== undefined ? `${s.key}+${s.viewOffset}` : s.key;
  const storageKey = canonical ? base : `${base}@${ref.offset}:${ref.shape.join('x')}:${ref.stride.join('x')}`;
  const extra: Record<string, unknown> = { storage: base, storageOffset: ref.offset, stride: [...ref.stride], contiguous: ext.contiguous };
  if (ref.quant) {
    const q = ref.quant;
    extra.quantized = q.qdtype;
    extra.qscheme = q.qscheme;
    if (q.scale !== undefined) extra.scale = q.scale;
    if (q.zeroPoint !== undefined) extra.zeroPoint = q.zeroPoint;
    if (q.axis !== undefined) extra.axis = q.axis;
    // Per-channel parameters are small tensors of their own; read them now so `extra` is plain data.
    if (q.scales) extra.scales = await numbers(src, parsed, q.scales, `${name}.scales`, path);
    if (q.zeroPoints) extra.zeroPoints = await numbers(src, parsed, q.zeroPoints, `${name}.zero_points`, path);
  }
  return {
    name,
    dtype: ref.dtype,
    shape: [...ref.shape],
    byteLength,
    storageKey,
    extra,
    async load() {
      const b = await readView(src, range.offset, spec, ext);
      if (!swapWord) return b;
      const copy = b.slice();
      swapInPlace(copy, swapWord);
      return copy;
    },
    // Contiguous little-endian bytes can be read in pieces straight from the file.
    ...(ext.contiguous && !swapWord ? {
      async readInto(offset: number, target: Uint8Array) {
        checkTensorRange({ name, byteLength }, offset, target.byteLength, path);
        await src.readInto(range.offset + spec.offset * es + offset, target);
      },
    } : {}),
  };
}

async function numbers(src: ByteSource, parsed: ParsedContainer, ref: TensorRef, name: string, path: string): Promise<number[]> {
  const { range, spec, ext } = await locate(parsed, ref, name, path);
  if (ext.numel > MAX_CHANNELS) throw new ModelsmithError(ErrorCodes.LIMIT, `${ext.numel} quantization channels (cap ${MAX_CHANNELS})`, { format: 'pytorch', path, tensor: name });
  const b = (await readView(src, range.offset, spec, ext)).slice();
  if (parsed.bigEndian) swapInPlace(b, spec.elemSize);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  for (let i = 0; i < ext.numel; i++) {
    switch (ref.dtype) {
      case 'float64': out.push(dv.getFloat64(i * 8, true)); break;
      case 'float32': out.push(dv.getFloat32(i * 4, true)); break;
      case 'int64': out.push(Number(dv.getBigInt64(i * 8, true))); break;
      case 'int32': out.push(dv.getInt32(i * 4, true)); break;
      default:
        throw new ModelsmithError(ErrorCodes.DTYPE, `quantization parameters of dtype ${ref.dtype}`, { format: 'pytorch', path, tensor: name });
    }
  }
  return out;
}
