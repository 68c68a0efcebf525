/**
 * Turning a torch view (storage offset + sizes + strides, in elements) into C-contiguous bytes.
 * A contiguous view is one read. Anything else reads the span the view touches once and gathers
 * it, copying whole rows when the innermost stride is 1 and 16/32-bit words otherwise.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';

export interface ViewSpec {
  /** Element offset into the storage. */
  offset: number;
  shape: readonly number[];
  stride: readonly number[];
  /** Bytes per element. */
  elemSize: number;
}

export interface ViewExtent {
  numel: number;
  /** Element index one past the last one touched (0 for empty views). */
  end: number;
  contiguous: boolean;
}

/** Element count, the storage extent it needs and whether it is C-contiguous; throws on overflow. */
export function viewExtent(v: ViewSpec, ctx: { path?: string; tensor?: string }): ViewExtent {
  let numel = 1;
  let last = v.offset;
  let contiguous = true;
  let expect = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    const d = v.shape[i]!;
    const s = v.stride[i]!;
    numel *= d;
    if (d > 1 && s !== expect) contiguous = false;
    expect *= d;
    if (d > 0) last += (d - 1) * s;
  }
  if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(last) || !Number.isSafeInteger(last * v.elemSize) || !Number.isSafeInteger(numel * v.elemSize)) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `view [${v.shape.join(',')}] stride [${v.stride.join(',')}] is too large`, { format: 'pytorch', ...ctx });
  }
  return { numel, end: numel === 0 ? 0 : last + 1, contiguous };
}

/**
 * Read a view whose storage starts at byte `base` of `src`. The caller has checked the extent
 * against the storage size.
 */
export async function readView(src: ByteSource, base: number, v: ViewSpec, ext: ViewExtent, maxSpan = 64 * 1024 * 1024): Promise<Uint8Array> {
  const es = v.elemSize;
  if (ext.numel === 0) return new Uint8Array(0);
  if (ext.contiguous) return src.read(base + v.offset * es, ext.numel * es);
  const spanElems = ext.end - v.offset;
  const out = new Uint8Array(ext.numel * es);
  // A view can touch a tiny part of a huge span (a hostile stride): then read row by row instead.
  if (spanElems * es > Math.max(maxSpan, 4 * out.byteLength)) {
    await gatherByRows(src, base, v, out, maxSpan / 64);
    return out;
  }
  let span = await src.read(base + v.offset * es, spanElems * es);
  if (span.byteOffset % 4 !== 0) span = span.slice();
  gather(span, v.shape, v.stride, es, out);
  return out;
}

/** Gather a strided view from `span` (element 0 = the view's first element) into C order. */
export function gather(span: Uint8Array, shape: readonly number[], stride: readonly number[], es: number, out: Uint8Array): void {
  const nd = shape.length;
  if (nd === 0) {
    out.set(span.subarray(0, es));
    return;
  }
  const inner = shape[nd - 1]!;
  const innerStride = stride[nd - 1]!;
  const rows = out.byteLength / es / inner;
  const idx = new Array<number>(nd - 1).fill(0);
  // Word size for element copies: the largest of 4/2/1 dividing the element size (buffers are aligned).
  const w = es % 4 === 0 ? 4 : es % 2 === 0 ? 2 : 1;
  const k = es / w;
  const src = w === 4 ? new Uint32Array(span.buffer, span.byteOffset, span.byteLength >>> 2)
    : w === 2 ? new Uint16Array(span.buffer, span.byteOffset, span.byteLength >>> 1) : span;
  const dst = w === 4 ? new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2)
    : w === 2 ? new Uint16Array(out.buffer, out.byteOffset, out.byteLength >>> 1) : out;
  let o = 0;
  let rowStart = 0;
  for (let r = 0; r < rows; r++) {
    if (innerStride === 1) {
      dst.set(src.subarray(rowStart * k, (rowStart + inner) * k), o);
      o += inner * k;
    } else {
      const step = innerStride * k;
      let s = rowStart * k;
      if (k === 1) {
        for (let j = 0; j < inner; j++, s += step) dst[o++] = src[s]!;
      } else {
        for (let j = 0; j < inner; j++, s += step) {
          for (let b = 0; b < k; b++) dst[o++] = src[s + b]!;
        }
      }
    }
    // Odometer over the outer dims.
    for (let d = nd - 2; d >= 0; d--) {
      rowStart += stride[d]!;
      if (++idx[d]! < shape[d]!) break;
      rowStart -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

async function gatherByRows(src: ByteSource, base: number, v: ViewSpec, out: Uint8Array, maxRowSpan: number): Promise<void> {
  const es = v.elemSize;
  const nd = v.shape.length;
  const inner = v.shape[nd - 1]!;
  const innerStride = v.stride[nd - 1]!;
  const rowSpan = ((inner - 1) * innerStride + 1) * es;
  const rows = out.byteLength / es / inner;
  const idx = new Array<number>(Math.max(0, nd - 1)).fill(0);
  let rowStart = v.offset;
  let o = 0;
  const rowOut = new Uint8Array(inner * es);
  for (let r = 0; r < rows; r++) {
    if (rowSpan > Math.max(maxRowSpan, 4 * rowOut.byteLength)) {
      for (let j = 0; j < inner; j++) out.set(await src.read(base + (rowStart + j * innerStride) * es, es), o + j * es);
    } else {
      let span = await src.read(base + rowStart * es, rowSpan);
      if (span.byteOffset % 4 !== 0) span = span.slice();
      gather(span, [inner], [innerStride], es, rowOut);
      out.set(rowOut, o);
    }
    o += inner * es;
    for (let d = nd - 2; d >= 0; d--) {
      rowStart += v.stride[d]!;
      if (++idx[d]! < v.shape[d]!) break;
      rowStart -= v.stride[d]! * v.shape[d]!;
      idx[d] = 0;
    }
  }
}

/** Byte-swap each `wordSize`-byte word in place (big-endian archives; complex swaps each half). */
export function swapInPlace(b: Uint8Array, wordSize: number): void {
  if (wordSize <= 1) return;
  for (let i = 0; i + wordSize <= b.length; i += wordSize) {
    for (let a = i, z = i + wordSize - 1; a < z; a++, z--) {
      const t = b[a]!;
      b[a] = b[z]!;
      b[z] = t;
    }
  }
}
