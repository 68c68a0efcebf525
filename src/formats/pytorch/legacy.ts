/**
 * The pre-1.6 `torch.save` stream: five pickles back to back (magic number, protocol version,
 * sys_info, the object, the storage keys), then each storage as an int64 element count plus raw
 * bytes in key order. Only the pickles are read into memory; the storage headers are walked with
 * 8-byte reads to map each key to its byte range.
 */
import { ErrorCodes, ModelsmithError, type ErrorCode } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';
import { createInterpreter, storageType, type TorchInterpreter } from './interpreter.js';
import { PickleNeedMore, unpickle } from './pickle.js';
import { isPyInt, PyDict, PyTuple, type StorageRef } from './pyobjects.js';
import { MAX_PICKLE_BYTES, type ParsedContainer, type StorageRange } from './storage.js';
import { WindowReader } from './window.js';

const FORMAT = 'pytorch-legacy';
/** LONG1 of 10 bytes holding 0x1950a86a20f9469cfc6c, as torch writes it after PROTO. */
const MAGIC_TAIL = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const MAGIC = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;
const MAX_STORAGES = 10_000_000;

export function isLegacyHead(head: Uint8Array): boolean {
  if (head.length < 14 || head[0] !== 0x80 || head[1]! < 2 || head[1]! > 5) return false;
  return MAGIC_TAIL.every((b, i) => head[2 + i] === b);
}

interface StorageInfo {
  elemSize: number;
  typeName: string;
}

export async function parseLegacy(src: ByteSource, path: string): Promise<ParsedContainer> {
  const fail = (code: ErrorCode, msg: string, offset?: number): never => {
    throw new ModelsmithError(code, msg, { format: FORMAT, path, ...(offset !== undefined ? { offset } : {}) });
  };
  let buf = await src.read(0, Math.min(src.size, 1024 * 1024));
  let pos = 0;

  // Each pickle is decoded from an in-memory prefix; when it runs out, read twice as much and retry.
  const next = async (interp: TorchInterpreter): Promise<unknown> => {
    for (;;) {
      try {
        const r = unpickle(buf, { interpreter: interp, path, start: pos, isPrefix: buf.byteLength < src.size });
        pos = r.end;
        return r.value;
      } catch (e) {
        if (!(e instanceof PickleNeedMore)) throw e;
        if (buf.byteLength >= MAX_PICKLE_BYTES) fail(ErrorCodes.LIMIT, `pickle longer than ${MAX_PICKLE_BYTES} bytes`, pos);
        buf = await src.read(0, Math.min(src.size, buf.byteLength * 2, MAX_PICKLE_BYTES));
      }
    }
  };

  const roots = new Map<string, StorageInfo>();
  const views = new Map<string, StorageRef>();
  const plain = createInterpreter({ path, persistentLoad: (_pid, offset) => fail(ErrorCodes.MALFORMED, 'persistent id in a header pickle', offset) });

  const magic = await next(plain);
  if (magic !== MAGIC && !(typeof magic === 'bigint' && magic === MAGIC)) fail(ErrorCodes.MALFORMED, 'legacy torch magic number missing', 0);
  const protocolAt = pos;
  const protocol = await next(plain);
  if (protocol !== PROTOCOL_VERSION) fail(ErrorCodes.UNSUPPORTED, `legacy torch protocol version ${describe(protocol)} (only ${PROTOCOL_VERSION} exists)`, protocolAt);
  const sysAt = pos;
  const sysInfo = await next(plain);
  if (sysInfo instanceof PyDict && sysInfo.map.get('little_endian') === false) {
    fail(ErrorCodes.UNSUPPORTED, 'big-endian legacy torch file (saved on a big-endian machine)', sysAt);
  }

  const interp = createInterpreter({
    path,
    persistentLoad(pid, offset) {
      const items = pid instanceof PyTuple ? pid.items : undefined;
      if (!items || items.length === 0) return fail(ErrorCodes.MALFORMED, 'persistent id is not a tuple', offset);
      // Whole-module pickles from torch 0.x: ('module', cls, source_file, source) stands for the class.
      if (items[0] === 'module') return items[1];
      if (items[0] !== 'storage' || items.length < 5) return fail(ErrorCodes.MALFORMED, `unknown persistent id kind ${describe(items[0])}`, offset);
      const [, cls, key, location, numel, view] = items;
      const st = storageType(cls);
      if (!st) return fail(ErrorCodes.DTYPE, `unsupported storage class in persistent id`, offset);
      if (typeof key !== 'string' || !isPyInt(numel) || Number(numel) < 0 || !Number.isSafeInteger(Number(numel))) {
        return fail(ErrorCodes.MALFORMED, 'storage persistent id needs (key:str, numel:int)', offset);
      }
      const prev = roots.get(key);
      if (prev && prev.elemSize !== st.elemSize) return fail(ErrorCodes.MALFORMED, `storage ${key} used with two element sizes`, offset);
      roots.set(key, { elemSize: st.elemSize, typeName: st.typeName });
      const base = { kind: 'storage' as const, dtype: st.dtype, elemSize: st.elemSize, location: typeof location === 'string' ? location : 'cpu', typeName: st.typeName, ...(st.quant ? { quant: st.quant } : {}) };
      // view_metadata = (view_key, offset_elements, view_numel): a slice of the root storage.
      if (view instanceof PyTuple && view.items.length >= 3) {
        const [vkey, voff, vnumel] = view.items;
        if (typeof vkey !== 'string' || !isPyInt(voff) || !isPyInt(vnumel)) return fail(ErrorCodes.MALFORMED, 'bad storage view metadata', offset);
        const cached = views.get(vkey);
        if (cached) return cached;
        const ref: StorageRef = { ...base, key, numel: Number(vnumel), viewOffset: Number(voff) };
        if (!Number.isSafeInteger(ref.numel) || ref.numel < 0 || !Number.isSafeInteger(ref.viewOffset!) || ref.viewOffset! < 0) {
          return fail(ErrorCodes.OUT_OF_RANGE, 'storage view out of range', offset);
        }
        views.set(vkey, ref);
        return ref;
      }
      return { ...base, key, numel: Number(numel) } satisfies StorageRef;
    },
  });
  const top = await next(interp);
  const keysAt = pos;
  const keys = await next(plain);
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) fail(ErrorCodes.MALFORMED, 'storage key list is not a list of strings', keysAt);
  const keyList = keys as string[];
  if (keyList.length > MAX_STORAGES) fail(ErrorCodes.LIMIT, `${keyList.length} storages (cap ${MAX_STORAGES})`, keysAt);

  // Walk the storage headers: int64 LE element count, then count × element size bytes.
  const ranges = new Map<string, StorageRange>();
  let cursor = pos;
  const headers = new WindowReader(src);
  for (const key of keyList) {
    const info = roots.get(key) ?? fail(ErrorCodes.MALFORMED, `storage '${key}' is listed but never used, so its element size is unknown`, cursor);
    if (cursor + 8 > src.size) fail(ErrorCodes.TRUNCATED, `storage '${key}' header is past the end`, cursor);
    const h = cursor + 8 <= buf.byteLength ? buf.subarray(cursor, cursor + 8) : await headers.read(cursor, 8);
    const dv = new DataView(h.buffer, h.byteOffset, 8);
    const lo = dv.getUint32(0, true);
    const hi = dv.getUint32(4, true);
    const count = hi * 0x100000000 + lo;
    if (hi >= 0x200000 || count * info.elemSize > src.size - cursor - 8) {
      fail(ErrorCodes.TRUNCATED, `storage '${key}' claims ${hi >= 0x200000 ? '≥2^53' : count} elements, more than the file holds`, cursor);
    }
    if (ranges.has(key)) fail(ErrorCodes.MALFORMED, `storage '${key}' listed twice`, cursor);
    ranges.set(key, { offset: cursor + 8, byteLength: count * info.elemSize });
    cursor += 8 + count * info.elemSize;
  }

  return {
    format: 'pytorch-legacy',
    top,
    unknownGlobals: interp.unknownGlobals,
    bigEndian: false,
    diagnostics: [],
    async resolve(s: StorageRef, tensor: string): Promise<StorageRange> {
      const r = ranges.get(s.key);
      if (!r) throw new ModelsmithError(ErrorCodes.MALFORMED, `storage '${s.key}' is not in the file's storage list`, { format: FORMAT, path, tensor });
      if (s.viewOffset === undefined) return r;
      const start = s.viewOffset * s.elemSize;
      const len = s.numel * s.elemSize;
      if (start + len > r.byteLength) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `storage view of '${s.key}' runs past the storage`, { format: FORMAT, path, tensor, offset: r.offset });
      return { offset: r.offset + start, byteLength: len };
    },
  };
}

/** A short description of an untrusted value for messages (String() of a deep list would recurse). */
function describe(v: unknown): string {
  if (v === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof v)) return JSON.stringify(typeof v === 'bigint' ? v.toString() : v)?.slice(0, 40) ?? 'None';
  return Array.isArray(v) ? 'a list' : typeof v === 'object' ? `a ${(v as object).constructor?.name ?? 'value'}` : typeof v;
}
