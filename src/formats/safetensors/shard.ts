/**
 * Sharded safetensors, the huggingface way: `model-00001-of-00003.safetensors` … plus
 * `model.safetensors.index.json` = {"metadata": {"total_size": N}, "weight_map": {tensor: file}}.
 *
 * Splitting follows huggingface_hub `split_state_dict_into_shards_factory`: tensors in input order
 * fill the current shard until the next one would push it past `shardSize`; a tensor larger than
 * `shardSize` on its own gets a shard of its own (appended at that point, before the shard being
 * filled). With one shard the file is `model.safetensors` and no index is written, as
 * `save_pretrained` does. The index text is what Python writes: `json.dumps(index, indent=2,
 * sort_keys=True) + "\n"` (ASCII-only, keys in code point order).
 */
import { Diagnostics, ErrorCodes } from '../../core/errors.js';
import type { ByteSink, ByteSource, SiblingResolver } from '../../io/source.js';
import type { LazyTensor, WeightSet } from '../weights.js';
import { stError } from './errors.js';
import { FORMAT } from './header.js';
import { JsonNumber, JsonObject, JsonSyntaxError, parseJson, type JsonValue } from './json.js';
import { openSafetensors } from './read.js';
import { firstInvalidUtf8 } from './utf8.js';
import { compareBytes, planSafetensors, writePlan, type SafetensorsInput, type SafetensorsPlan } from './write.js';

/** Index files of the largest published models are a few MB; anything far beyond is not an index. */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface ShardIndex {
  metadata: { total_size: number };
  weight_map: Record<string, string>;
}

export async function readShardedSafetensors(indexSource: ByteSource, siblings: SiblingResolver, opts: { path?: string } = {}): Promise<WeightSet> {
  const path = opts.path ?? indexSource.name;
  const diags = new Diagnostics();
  if (indexSource.size > MAX_INDEX_BYTES) {
    throw stError(ErrorCodes.LIMIT, undefined, `index file of ${indexSource.size} bytes exceeds the ${MAX_INDEX_BYTES}-byte limit`, { path });
  }
  const bytes = await indexSource.read(0, indexSource.size);
  const { weightMap, totalSize } = parseIndex(bytes, path);

  // Open each shard once, in order of first mention.
  const shards = new Map<string, Map<string, LazyTensor>>();
  let metadata: Record<string, string> | undefined;
  let metadataFrom: string | undefined;
  for (const file of new Set(weightMap.map((e) => e.file))) {
    const src = await siblings(file);
    const shard = await openSafetensors(src, src.name);
    for (const d of shard.header.diagnostics) diags.items.push({ ...d, message: `${file}: ${d.message}` });
    shards.set(file, new Map(shard.tensors.map((t) => [t.name, { ...t, extra: { ...t.extra, shard: file } }])));
    const md = shard.header.metadata;
    if (metadataFrom === undefined) {
      metadata = md;
      metadataFrom = file;
    } else if (JSON.stringify(md ?? null) !== JSON.stringify(metadata ?? null)) {
      diags.warn('SAFETENSORS_SHARD_METADATA', `__metadata__ of ${file} differs from ${metadataFrom}; keeping that of ${metadataFrom}`);
    }
  }

  const tensors: LazyTensor[] = [];
  const listed = new Set<string>();
  for (const { name, file, offset } of weightMap) {
    const t = shards.get(file)!.get(name);
    if (!t) {
      throw stError(ErrorCodes.MALFORMED, undefined, `weight_map puts this tensor in ${file}, which does not contain it`, { path, offset, tensor: name });
    }
    listed.add(name);
    tensors.push(t);
  }
  for (const [file, shard] of shards) {
    for (const name of shard.keys()) {
      if (!listed.has(name)) diags.warn('SAFETENSORS_UNLISTED_TENSOR', `${file} holds a tensor the index does not list; ignored`, { tensor: name });
    }
  }
  const sum = tensors.reduce((s, t) => s + t.byteLength, 0);
  if (totalSize !== undefined && totalSize !== sum) {
    // Some tools write file sizes here; the index is still usable.
    diags.info('SAFETENSORS_TOTAL_SIZE', `index metadata.total_size is ${totalSize}, the listed tensors hold ${sum} bytes`);
  }
  return { format: FORMAT, path, tensors, ...(metadata ? { metadata } : {}), diagnostics: diags.items };
}

interface WeightMapEntry {
  name: string;
  file: string;
  offset: number;
}

function parseIndex(bytes: Uint8Array, path: string): { weightMap: WeightMapEntry[]; totalSize?: number } {
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) throw stError(ErrorCodes.MALFORMED, undefined, 'index is not valid UTF-8', { path, offset: bad });
  let root: JsonValue;
  try {
    root = parseJson(bytes);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw stError(ErrorCodes.MALFORMED, undefined, `index is not valid JSON: ${e.message}`, { path, offset: e.offset });
    throw e;
  }
  const malformed = (message: string, offset?: number, tensor?: string) =>
    stError(ErrorCodes.MALFORMED, undefined, message, { path, ...(offset !== undefined ? { offset } : {}), ...(tensor !== undefined ? { tensor } : {}) });
  if (!(root instanceof JsonObject)) throw malformed('index is not a JSON object', 0);
  const wm = root.entries.get('weight_map');
  if (!wm || !(wm.value instanceof JsonObject)) throw malformed('index has no "weight_map" object', wm?.offset ?? 0);
  const weightMap: WeightMapEntry[] = [];
  for (const [name, { value, offset }] of wm.value.entries) {
    if (typeof value !== 'string' || value === '') throw malformed('weight_map value is not a file name', offset, name);
    weightMap.push({ name, file: value, offset });
  }
  let totalSize: number | undefined;
  const md = root.entries.get('metadata');
  if (md && md.value instanceof JsonObject) {
    const ts = md.value.entries.get('total_size')?.value;
    // Some writers store it as a float or a string; only an exact integer is compared.
    if (ts instanceof JsonNumber && ts.isUnsignedInteger && Number.isSafeInteger(Number(ts.text))) totalSize = Number(ts.text);
  }
  return { weightMap, ...(totalSize !== undefined ? { totalSize } : {}) };
}

export interface ShardedWriteOptions {
  /** Largest shard payload in bytes (see `parseSize`); tensors bigger than this get a shard each. */
  shardSize: number;
  /** File name stem, e.g. "model" → model-00001-of-00002.safetensors, model.safetensors.index.json. */
  baseName: string;
}

/**
 * Writes the shards and the index through `openSink` (called once per file, in the order of `files`).
 * Every shard is planned, and so every error about names, dtypes and sizes raised, before the first
 * sink is opened. Committing the sinks (e.g. AtomicFileSink) is the caller's job once this resolves.
 */
export async function writeShardedSafetensors(
  set: SafetensorsInput,
  openSink: (fileName: string) => Promise<ByteSink>,
  opts: ShardedWriteOptions,
): Promise<{ files: string[]; index: ShardIndex }> {
  const { shardSize, baseName } = opts;
  if (!Number.isSafeInteger(shardSize) || shardSize < 1) {
    throw stError(ErrorCodes.USAGE, undefined, `shard size must be a positive whole number of bytes, got ${shardSize}`, {});
  }
  if (typeof baseName !== 'string' || baseName === '') throw stError(ErrorCodes.USAGE, undefined, 'baseName must be a non-empty string', {});

  const groups = splitIntoShards(set.tensors, shardSize);
  const names =
    groups.length <= 1
      ? [`${baseName}.safetensors`]
      : groups.map((_, i) => `${baseName}-${pad5(i + 1)}-of-${pad5(groups.length)}.safetensors`);
  // A duplicate name split across two shards would pass each shard's own check.
  const seen = new Set<string>();
  for (const t of set.tensors) {
    if (seen.has(t.name)) throw stError(ErrorCodes.MALFORMED, undefined, 'duplicate tensor name', { tensor: t.name });
    seen.add(t.name);
  }
  const plans: SafetensorsPlan[] = (groups.length ? groups : [[]]).map((tensors, i) =>
    planSafetensors({ tensors, ...(set.metadata !== undefined ? { metadata: set.metadata } : {}) }, names[i]),
  );

  const weightMap: Array<[string, string]> = [];
  let total = 0;
  plans.forEach((p, i) => {
    for (const e of p.entries) {
      weightMap.push([e.tensor.name, names[i]!]);
      total += e.end - e.begin;
    }
  });
  const enc = new TextEncoder();
  const keyed = weightMap.map(([k, v]) => ({ k, v, key: enc.encode(k) }));
  keyed.sort((a, b) => compareBytes(a.key, b.key));
  const index: ShardIndex = { metadata: { total_size: total }, weight_map: {} };
  for (const { k, v } of keyed) Object.defineProperty(index.weight_map, k, { value: v, enumerable: true, writable: true, configurable: true });

  for (let i = 0; i < plans.length; i++) await writePlan(plans[i]!, await openSink(names[i]!), names[i]);
  const files = [...names];
  if (plans.length > 1) {
    const indexName = `${baseName}.safetensors.index.json`;
    const sink = await openSink(indexName);
    await sink.write(enc.encode(indexJson(total, keyed)));
    files.push(indexName);
  }
  return { files, index };
}

/** Assigns tensors to shards (input order kept within each shard). */
export function splitIntoShards(tensors: LazyTensor[], shardSize: number): LazyTensor[][] {
  const shards: LazyTensor[][] = [];
  let current: LazyTensor[] = [];
  let currentSize = 0;
  for (const t of tensors) {
    if (t.byteLength > shardSize) {
      shards.push([t]);
      continue;
    }
    if (currentSize + t.byteLength > shardSize && current.length > 0) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += t.byteLength;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

function pad5(n: number): string {
  return String(n).padStart(5, '0');
}

/** Python `json.dumps(..., indent=2, sort_keys=True) + "\n"` for the index (keys already sorted). */
function indexJson(total: number, entries: Array<{ k: string; v: string }>): string {
  const map = entries.length === 0 ? '{}' : `{\n${entries.map(({ k, v }) => `    ${pyString(k)}: ${pyString(v)}`).join(',\n')}\n  }`;
  return `{\n  "metadata": {\n    "total_size": ${total}\n  },\n  "weight_map": ${map}\n}\n`;
}

/** Python's `json.dumps` string with ensure_ascii: everything outside ' '..'~' as an escape. */
function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c <= 0x7e) out += s[i];
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else out += '\\u' + c.toString(16).padStart(4, '0');
  }
  return out + '"';
}
