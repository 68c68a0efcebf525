/**
 * Builders for hand-made (and deliberately broken) PyTorch files: a pickle assembler, a stored-zip
 * writer with optional zip64 records, and a legacy stream writer. Kept independent of the project's
 * own writer so reader tests do not depend on it.
 */
import { resolve } from 'node:path';

export const CORPUS = resolve(import.meta.dirname, '../../../../shared/corpus');
export const GEN = resolve(CORPUS, 'pytorch/generated');

export function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const enc = new TextEncoder();
const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const u16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
const u64 = (v: number) => [...u32(v % 0x100000000), ...u32(Math.floor(v / 0x100000000))];

/** A small pickle assembler: each function returns the bytes of one opcode. */
export const P = {
  proto: (n = 2) => [0x80, n],
  stop: () => [0x2e],
  mark: () => [0x28],
  tuple: () => [0x74],
  tuple1: () => [0x85],
  tuple2: () => [0x86],
  tuple3: () => [0x87],
  emptyTuple: () => [0x29],
  emptyDict: () => [0x7d],
  emptyList: () => [0x5d],
  append: () => [0x61],
  setitem: () => [0x73],
  setitems: () => [0x75],
  reduce: () => [0x52],
  newobj: () => [0x81],
  build: () => [0x62],
  none: () => [0x4e],
  newfalse: () => [0x89],
  binpersid: () => [0x51],
  int: (v: number) => (v >= 0 && v < 256 ? [0x4b, v] : [0x4a, ...u32(v)]),
  str: (s: string) => {
    const b = enc.encode(s);
    return [0x58, ...u32(b.length), ...b];
  },
  global: (mod: string, name: string) => [0x63, ...enc.encode(`${mod}\n${name}\n`)],
  binput: (i: number) => [0x71, i],
  binget: (i: number) => [0x68, i],
  bytes8Header: (n: number) => [0x8e, ...u64(n)],
};

export interface FakeTensor {
  name: string;
  key: string;
  storage?: string;
  /** Storage numel. */
  numel: number;
  offset?: number;
  shape: number[];
  stride: number[];
}

/** The pickle of `{name: tensor, ...}` the way torch writes a state_dict (protocol 2, _rebuild_tensor_v2). */
export function stateDictPickle(tensors: FakeTensor[], opts: { legacy?: boolean } = {}): Uint8Array {
  const parts: number[][] = [P.proto(2), P.emptyDict(), P.mark()];
  for (const t of tensors) {
    parts.push(P.str(t.name), P.global('torch._utils', '_rebuild_tensor_v2'), P.mark());
    parts.push(P.mark(), P.str('storage'), P.global('torch', t.storage ?? 'FloatStorage'), P.str(t.key), P.str('cpu'), P.int(t.numel));
    if (opts.legacy) parts.push(P.none());
    parts.push(P.tuple(), P.binpersid(), P.int(t.offset ?? 0));
    parts.push(P.mark(), ...t.shape.map(P.int), P.tuple(), P.mark(), ...t.stride.map(P.int), P.tuple());
    parts.push(P.newfalse(), P.global('collections', 'OrderedDict'), P.emptyTuple(), P.reduce(), P.tuple(), P.reduce());
  }
  parts.push(P.setitems(), P.stop());
  return cat(...parts);
}

export interface ZipFile {
  name: string;
  data: Uint8Array;
  method?: number;
  /** Put 0xFFFFFFFF in the 32-bit fields and the real values in a zip64 extra. */
  zip64?: boolean;
}

/** A stored zip (CRC 0, as torch writes with CRCs disabled), optionally with zip64 end records. */
export function buildZip(files: ZipFile[], opts: { zip64End?: boolean; comment?: string } = {}): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = enc.encode(f.name);
    const method = f.method ?? 0;
    const sizeField = f.zip64 ? 0xffffffff : f.data.length;
    const extra = f.zip64 ? [...u16(1), ...u16(24), ...u64(f.data.length), ...u64(f.data.length), ...u64(offset)] : [];
    const local = cat([...u32(0x04034b50), ...u16(20), ...u16(0), ...u16(method), 0, 0, 0, 0, ...u32(0), ...u32(sizeField), ...u32(sizeField), ...u16(name.length), ...u16(0)], name, f.data);
    centrals.push(cat([...u32(0x02014b50), ...u16(20), ...u16(20), ...u16(0), ...u16(method), 0, 0, 0, 0, ...u32(0), ...u32(sizeField), ...u32(sizeField), ...u16(name.length), ...u16(extra.length), ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(f.zip64 ? 0xffffffff : offset)], name, extra));
    locals.push(local);
    offset += local.length;
  }
  const cd = cat(...centrals);
  const cdOffset = offset;
  const tail: number[][] = [];
  if (opts.zip64End) {
    const recOffset = cdOffset + cd.length;
    tail.push([...u32(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32(0), ...u32(0), ...u64(files.length), ...u64(files.length), ...u64(cd.length), ...u64(cdOffset)]);
    tail.push([...u32(0x07064b50), ...u32(0), ...u64(recOffset), ...u32(1)]);
  }
  const comment = enc.encode(opts.comment ?? '');
  tail.push([...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(files.length), ...u16(files.length), ...u32(cd.length), ...u32(cdOffset), ...u16(comment.length), ...comment]);
  return cat(...locals, cd, ...tail.map((t) => new Uint8Array(t)));
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A torch-style archive with one folder, data.pkl and data/<key> records. */
export function torchZip(folder: string, pickle: Uint8Array, storages: Record<string, Uint8Array>, opts: { zip64?: boolean; byteorder?: string } = {}): Uint8Array {
  const files: ZipFile[] = [{ name: `${folder}/data.pkl`, data: pickle }];
  if (opts.byteorder !== undefined) files.push({ name: `${folder}/byteorder`, data: enc.encode(opts.byteorder) });
  for (const [k, v] of Object.entries(storages)) files.push({ name: `${folder}/data/${k}`, data: v, ...(opts.zip64 ? { zip64: true } : {}) });
  files.push({ name: `${folder}/version`, data: enc.encode('3\n') });
  return buildZip(files, { zip64End: true });
}

/** A legacy (pre-1.6) stream: magic, protocol, sys_info, object, keys, then counted storages. */
export function legacyStream(main: Uint8Array, storages: [string, Uint8Array, number][], opts: { protocol?: number; littleEndian?: boolean } = {}): Uint8Array {
  const magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
  const proto = cat(P.proto(2), [0x4d, ...u16(opts.protocol ?? 1001)], P.stop());
  const sys = cat(P.proto(2), P.emptyDict(), P.mark(), P.str('protocol_version'), [0x4d, ...u16(1001)], P.str('little_endian'), [opts.littleEndian === false ? 0x89 : 0x88], P.setitems(), P.stop());
  const keys = cat(P.proto(2), P.emptyList(), P.mark(), ...storages.map(([k]) => P.str(k)), [0x65], P.stop());
  const data = storages.map(([, b, elemSize]) => cat(u64(b.length / elemSize), b));
  return cat(magic, proto, sys, main, keys, ...data);
}
