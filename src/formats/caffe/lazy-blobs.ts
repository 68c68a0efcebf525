/**
 * Blob payloads as byte views instead of JS number arrays.
 *
 * Why: `fromBinary` turns every packed float of a caffemodel into a JS number (8 bytes plus array
 * overhead, and slow: a 28 MB GoogLeNet took seconds). The payload is already little-endian float32
 * (or float64) on the wire, so the reader keeps it as a view into the file bytes instead:
 *  1. before decoding, each BlobProto's single packed `data` / `double_data` record gets its one-byte
 *     tag rewritten to an unused field number (15 / 14), in place;
 *  2. `fromBinary` then skips those records as unknown fields, which costs nothing and keeps a view;
 *  3. the tags are restored (the caller's buffer is left as it was), the views are attached to their
 *     BlobProto here, and the stand-in unknown fields are dropped.
 * Blobs whose data is split over several records or written unpacked keep the normal decoding.
 * blob.ts reads values through `lazyBlob` first, so nothing else needs to know.
 */
import type { BlobProto, NetParameter } from './gen/caffe_pb.js';

export interface LazyPayload {
  /** Little-endian values, a view into the file bytes. */
  bytes: Uint8Array;
  dtype: 'float32' | 'float64';
}

const payloads = new WeakMap<BlobProto, LazyPayload>();

export function lazyBlob(b: BlobProto): LazyPayload | undefined {
  return payloads.get(b);
}

/** Stand-in field numbers: free in BlobProto and encodable in one byte, like 5 and 8. */
const DATA_FIELD = 5;
const DOUBLE_FIELD = 8;
const DATA_STANDIN = 15;
const DOUBLE_STANDIN = 14;

interface Patch {
  /** Offset of the tag byte. */
  tagAt: number;
  original: number;
  /** Key of the blob: container kind, layer index, blob index. */
  key: string;
  dtype: 'float32' | 'float64';
}

/** Containers of BlobProto in a NetParameter: (parent field → blob field). */
const NET_LAYER = 100; // LayerParameter.blobs = 7
const NET_LAYERS = 2; // V1LayerParameter.blobs = 6, V1LayerParameter.layer = 1 (V0: blobs = 50)

function readVarint(b: Uint8Array, pos: number, end: number): [number, number] | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) return undefined;
    const c = b[pos++]!;
    if (i < 7) value += (c & 0x7f) * mul;
    mul *= 128;
    if (c < 0x80) return [value, pos];
  }
  return undefined;
}

/** Iterate the records of a message in b[start, end): [field, wireType, valueStart, valueEnd, tagAt]. */
function* records(b: Uint8Array, start: number, end: number): Generator<[number, number, number, number, number]> {
  let pos = start;
  while (pos < end) {
    const tagAt = pos;
    const t = readVarint(b, pos, end);
    if (!t) return;
    const [tag, p] = t;
    const field = Math.floor(tag / 8);
    const wt = tag % 8;
    pos = p;
    let vs = pos;
    switch (wt) {
      case 0: {
        const v = readVarint(b, pos, end);
        if (!v) return;
        pos = v[1];
        break;
      }
      case 1: pos += 8; break;
      case 5: pos += 4; break;
      case 2: {
        const l = readVarint(b, pos, end);
        if (!l) return;
        vs = l[1];
        pos = l[1] + l[0];
        break;
      }
      default:
        return; // groups: never around blobs in these schemas; stop looking here
    }
    if (pos > end) return;
    yield [field, wt, vs, pos, tagAt];
  }
}

function blobPatch(b: Uint8Array, start: number, end: number, key: string): Patch | undefined {
  let found: Patch | undefined;
  let dataRecords = 0;
  for (const [field, wt, , , tagAt] of records(b, start, end)) {
    if (field === DATA_STANDIN || field === DOUBLE_STANDIN) return undefined; // a fork uses them: leave alone
    if (field === DATA_FIELD || field === DOUBLE_FIELD) {
      dataRecords++;
      if (wt === 2 && b[tagAt] === field * 8 + 2) found = { tagAt, original: b[tagAt]!, key, dtype: field === DATA_FIELD ? 'float32' : 'float64' };
    }
  }
  // Split or unpacked payloads keep the normal path; so do nets that mix data and double_data.
  return dataRecords === 1 ? found : undefined;
}

function collectPatches(b: Uint8Array): Patch[] {
  const patches: Patch[] = [];
  let layerIdx = 0;
  let v1Idx = 0;
  for (const [field, wt, vs, ve] of records(b, 0, b.byteLength)) {
    if (wt !== 2) continue;
    if (field === NET_LAYER) {
      let j = 0;
      for (const [f, w, s, e] of records(b, vs, ve)) {
        if (f === 7 && w === 2) {
          const p = blobPatch(b, s, e, `L${layerIdx}.${j++}`);
          if (p) patches.push(p);
        }
      }
      layerIdx++;
    } else if (field === NET_LAYERS) {
      let j = 0;
      let k = 0;
      for (const [f, w, s, e] of records(b, vs, ve)) {
        if (f === 6 && w === 2) {
          const p = blobPatch(b, s, e, `V${v1Idx}.${j++}`);
          if (p) patches.push(p);
        } else if (f === 1 && w === 2) {
          for (const [f0, w0, s0, e0] of records(b, s, e)) {
            if (f0 === 50 && w0 === 2) {
              const p = blobPatch(b, s0, e0, `W${v1Idx}.${k++}`);
              if (p) patches.push(p);
            }
          }
        }
      }
      v1Idx++;
    }
  }
  return patches;
}

/**
 * Decode `bytes` with `decode` while blob payloads are hidden from it, then attach them as views.
 * `bytes` is modified during the (synchronous) call and restored before it returns or throws.
 */
export function decodeWithLazyBlobs(bytes: Uint8Array, decode: (b: Uint8Array) => NetParameter): NetParameter {
  const patches = collectPatches(bytes);
  for (const p of patches) bytes[p.tagAt] = (p.dtype === 'float32' ? DATA_STANDIN : DOUBLE_STANDIN) * 8 + 2;
  let net: NetParameter;
  try {
    net = decode(bytes);
  } finally {
    for (const p of patches) bytes[p.tagAt] = p.original;
  }
  if (patches.length === 0) return net;
  const byKey = new Map(patches.map((p) => [p.key, p]));
  const attach = (blob: BlobProto, key: string): void => {
    const p = byKey.get(key);
    if (!p) return;
    const standin = p.dtype === 'float32' ? DATA_STANDIN : DOUBLE_STANDIN;
    const u = blob.$unknown?.find((x) => x.no === standin);
    if (!u) return;
    // The unknown field's data is the length prefix followed by the payload.
    const len = readVarint(u.data, 0, u.data.byteLength);
    if (!len) return;
    // A plain Uint8Array view (a node Buffer's slice() would not copy, surprising callers).
    const bytes = new Uint8Array(u.data.buffer, u.data.byteOffset + len[1], len[0]);
    payloads.set(blob, { bytes, dtype: p.dtype });
    blob.$unknown = blob.$unknown!.filter((x) => x !== u);
    if (blob.$unknown.length === 0) delete blob.$unknown;
  };
  net.layer.forEach((l, i) => l.blobs.forEach((b, j) => attach(b, `L${i}.${j}`)));
  net.layers.forEach((l, i) => {
    l.blobs.forEach((b, j) => attach(b, `V${i}.${j}`));
    l.layer?.blobs.forEach((b, k) => attach(b, `W${i}.${k}`));
  });
  return net;
}

/**
 * Run `f` with every lazy blob of `net` materialised into its number array (for `toBinary`), then
 * empty the arrays again. Writing a caffemodel is rare; reading is what must stay cheap.
 */
export function withMaterializedBlobs<T>(net: NetParameter, f: () => T): T {
  const touched: BlobProto[] = [];
  const visit = (b: BlobProto): void => {
    const p = payloads.get(b);
    if (!p) return;
    const copy = new Uint8Array(p.bytes);
    if (p.dtype === 'float32') b.data = Array.from(new Float32Array(copy.buffer, 0, copy.byteLength / 4));
    else b.doubleData = Array.from(new Float64Array(copy.buffer, 0, copy.byteLength / 8));
    touched.push(b);
  };
  for (const l of net.layer) l.blobs.forEach(visit);
  for (const l of net.layers) {
    l.blobs.forEach(visit);
    l.layer?.blobs.forEach(visit);
  }
  try {
    return f();
  } finally {
    for (const b of touched) {
      b.data = [];
      b.doubleData = [];
    }
  }
}
