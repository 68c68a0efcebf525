/**
 * safetensors reader: validates the header (see header.ts) and returns lazy tensors. Opening a file
 * reads 8 + N bytes; each `load()` is one `ByteSource.read` of exactly that tensor's bytes, which are
 * already little-endian C-order, so nothing is converted.
 */
import type { ByteSource } from '../../io/source.js';
import { checkTensorRange, type LazyTensor, type WeightSet } from '../weights.js';
import { stError } from './errors.js';
import { ErrorCodes } from '../../core/errors.js';
import { FORMAT, headerLength, parseHeader, PREFIX_BYTES, type ParsedHeader } from './header.js';

export interface SafetensorsFile {
  header: ParsedHeader;
  tensors: LazyTensor[];
}

/** Reads and validates the header of `src`; no tensor bytes are read. */
export async function openSafetensors(src: ByteSource, path: string): Promise<SafetensorsFile> {
  if (src.size < PREFIX_BYTES) {
    throw stError(ErrorCodes.TRUNCATED, 'HeaderTooSmall', `file has ${src.size} bytes, fewer than the 8-byte header length`, { path, offset: 0 });
  }
  const n = headerLength(await src.read(0, PREFIX_BYTES), src.size, path);
  const header = parseHeader(await src.read(PREFIX_BYTES, n), src.size, path);
  const tensors = header.tensors.map((t): LazyTensor => {
    const offset = header.dataStart + t.begin;
    const byteLength = t.end - t.begin;
    return {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      byteLength,
      load: async () => (byteLength === 0 ? new Uint8Array(0) : src.read(offset, byteLength)),
      readInto: async (at: number, target: Uint8Array) => {
        checkTensorRange({ name: t.name, byteLength }, at, target.byteLength, path);
        await src.readInto(offset + at, target);
      },
      extra: { safetensorsDtype: t.code, fileOffset: offset },
    };
  });
  return { header, tensors };
}

export async function readSafetensors(src: ByteSource, opts: { path?: string } = {}): Promise<WeightSet> {
  const path = opts.path ?? src.name;
  const { header, tensors } = await openSafetensors(src, path);
  return {
    format: FORMAT,
    path,
    tensors,
    ...(header.metadata ? { metadata: header.metadata } : {}),
    diagnostics: header.diagnostics,
  };
}
