/**
 * One file → chunks: .npy (header read, payload streamed), ONNX TensorProto .pb (decoded whole: a
 * protobuf has no random access; capped), IDX (header read, payload streamed).
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { MemorySource } from '../io/source.js';
import { decodeTensorProto, tensorFromProtoSync } from '../formats/onnx/tensor.js';
import { parseIdxHeader } from './idx.js';
import { sourceCursor } from './cursor.js';
import { NPY_PREAMBLE, npyHeaderExtent, parseNpyHeader } from './npy.js';
import type { Chunk, ChunkCursor, DataIo, DataSource } from './types.js';

/** .pb files are decoded whole; they may not be larger than this. */
export const MAX_WHOLE_FILE = 1 << 30;

async function closeSource(src: DataSource): Promise<void> {
  await src.close?.();
}

/** Opens `path`, runs `fn`, closes. */
export async function withSource<T>(io: DataIo, path: string, fn: (src: DataSource) => Promise<T>): Promise<T> {
  const src = await io.open(path);
  try {
    return await fn(src);
  } finally {
    await closeSource(src);
  }
}

/** A cursor over a region of a file, holding the file open until closed. */
function regionChunkOpener(io: DataIo, path: string, offset: number, length: number): () => Promise<ChunkCursor> {
  return async () => {
    const src = await io.open(path);
    const c = sourceCursor(src, offset, length, path);
    return { next: (n) => c.next(n), close: () => closeSource(src) };
  };
}

export async function readWhole(src: DataSource, path: string): Promise<Uint8Array> {
  if (src.size > MAX_WHOLE_FILE) throw new ModelsmithError(ErrorCodes.LIMIT, `${src.size} bytes is more than the ${MAX_WHOLE_FILE} a .pb data file may have`, { path });
  return src.read(0, src.size);
}

export async function npyChunk(io: DataIo, path: string): Promise<Chunk> {
  const h = await withSource(io, path, async (src) => {
    const head = await src.read(0, Math.min(src.size, NPY_PREAMBLE));
    const ext = npyHeaderExtent(head, path);
    if (ext.start + ext.length > src.size) {
      throw new ModelsmithError(ErrorCodes.TRUNCATED, `.npy header of ${ext.length} bytes runs past the end of the file`, { path, format: 'npy', offset: ext.start });
    }
    return parseNpyHeader(await src.read(ext.start, ext.length), ext.start, src.size, path);
  });
  return { path, dtype: h.dtype, shape: h.shape, count: 0, open: regionChunkOpener(io, path, h.dataOffset, h.dataBytes) };
}

export async function pbChunk(io: DataIo, path: string): Promise<Chunk> {
  const decode = (bytes: Uint8Array) => tensorFromProtoSync(decodeTensorProto(bytes, path), { path });
  const t = await withSource(io, path, async (src) => decode(await readWhole(src, path)));
  if (t.dtype === 'string') throw new ModelsmithError(ErrorCodes.DTYPE, 'string tensors cannot be model inputs', { path, tensor: t.name });
  const chunk: Chunk & { tensorName: string } = {
    path, dtype: t.dtype, shape: t.shape, count: 0, tensorName: t.name,
    // Decoded again when read: holding every file's payload from open() on would defeat streaming.
    async open() {
      const again = await withSource(io, path, async (src) => decode(await readWhole(src, path)));
      const c = sourceCursor(new MemorySource(again.data, path), 0, again.data.byteLength, path);
      return { next: (n) => c.next(n), close: async () => undefined };
    },
  };
  return chunk;
}

/** IDX: the header is read and checked against the file size; the payload is streamed. */
export async function idxChunk(io: DataIo, path: string, expectRank?: number): Promise<Chunk> {
  const h = await withSource(io, path, async (src) => {
    // 4 + 4 × 255 bytes covers the largest header the rank byte allows.
    const head = await src.read(0, Math.min(src.size, 4 + 4 * 255));
    return parseIdxHeader(head, src.size, path, expectRank);
  });
  const count = h.dims.reduce((a, d) => a * d, 1);
  return { path, dtype: 'uint8', shape: h.dims, count: 0, open: regionChunkOpener(io, path, h.dataOffset, count) };
}
