/**
 * `.npz` (numpy's zip of .npy members, from np.savez — stored — or np.savez_compressed — deflated).
 * The central directory is read with the PyTorch zip reader (bounded, zip64); member payloads are
 * read or inflated forward as batches are drawn, so a compressed data set is never inflated whole.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { openZip, type ZipEntry } from '../formats/pytorch/zip-read.js';
import { inflateCursor, sourceCursor, type ByteCursor } from './cursor.js';
import { NPY_PREAMBLE, npyHeaderExtent, parseNpyHeader } from './npy.js';
import type { Chunk, DataIo, DataSource } from './types.js';
import { withSource } from './files.js';

const SIG_LOCAL = 0x04034b50;

export interface NpzMember {
  /** Member name without ".npy". */
  name: string;
  chunk: Chunk;
}

/** Where the member's bytes start: the local header's own name/extra lengths decide, not the central copy. */
async function memberStart(src: DataSource, e: ZipEntry, path: string): Promise<number> {
  const at = { path, format: 'npz', offset: e.localHeaderOffset, tensor: e.name };
  if (e.localHeaderOffset + 30 > src.size) throw new ModelsmithError(ErrorCodes.TRUNCATED, `local header of '${e.name}' is past the end`, at);
  const h = await src.read(e.localHeaderOffset, 30);
  const dv = new DataView(h.buffer, h.byteOffset, 30);
  if (dv.getUint32(0, true) !== SIG_LOCAL) throw new ModelsmithError(ErrorCodes.MALFORMED, `no local header for '${e.name}'`, at);
  const start = e.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
  if (start + e.compressedSize > src.size) {
    throw new ModelsmithError(ErrorCodes.TRUNCATED, `member '${e.name}' (${e.compressedSize} bytes at ${start}) runs past the end of the file`, at);
  }
  return start;
}

function cursorFor(src: DataSource, e: ZipEntry, start: number, path: string): ByteCursor {
  const at = { path, format: 'npz', offset: e.localHeaderOffset, tensor: e.name };
  if (e.flags & 1) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `member '${e.name}' is encrypted`, at);
  if (e.method === 0) {
    if (e.compressedSize !== e.size) throw new ModelsmithError(ErrorCodes.MALFORMED, `stored member '${e.name}' has different compressed and plain sizes`, at);
    return sourceCursor(src, start, e.size, `${path}:${e.name}`);
  }
  // Deflate cannot expand more than ~1032:1; a larger claim is a bomb or a lie.
  if (e.method === 8 && e.size > (e.compressedSize + 1) * 1100) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `member '${e.name}' claims ${e.size} bytes from ${e.compressedSize} deflated bytes`, at);
  }
  if (e.method === 8) return inflateCursor(src, start, e.compressedSize, e.size, `${path}:${e.name}`);
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `member '${e.name}' uses zip method ${e.method} (only stored and deflate)`, at);
}

export async function npzMembers(io: DataIo, path: string): Promise<NpzMember[]> {
  return withSource(io, path, async (src) => {
    const zip = await openZip(src, { path, limits: { maxEntries: 100_000, maxDirectoryBytes: 64 << 20 } });
    const out: NpzMember[] = [];
    for (const e of zip.entries) {
      if (!e.name.endsWith('.npy')) continue;
      const start = await memberStart(src, e, path);
      const where = `${path}:${e.name}`;
      const c = cursorFor(src, e, start, path);
      let h;
      try {
        const head = await c.next(Math.min(e.size, NPY_PREAMBLE));
        const ext = npyHeaderExtent(head, where);
        if (ext.start + ext.length > e.size) {
          throw new ModelsmithError(ErrorCodes.TRUNCATED, `.npy header of ${ext.length} bytes runs past the member`, { path: where, format: 'npy', offset: ext.start });
        }
        const rest = await c.next(ext.start + ext.length - head.byteLength);
        const text = new Uint8Array(ext.start + ext.length);
        text.set(head);
        text.set(rest, head.byteLength);
        h = parseNpyHeader(text.subarray(ext.start), ext.start, e.size, where);
      } finally {
        await c.close();
      }
      const header = h;
      out.push({
        name: e.name.slice(0, -4),
        chunk: {
          path: where, dtype: header.dtype, shape: header.shape, count: 0,
          async open() {
            const s = await io.open(path);
            const cur = cursorFor(s, e, start, path);
            try {
              if (header.dataOffset > 0) await cur.next(header.dataOffset);
            } catch (err) {
              await cur.close();
              await s.close?.();
              throw err;
            }
            return { next: (n) => cur.next(n), close: async () => { await cur.close(); await s.close?.(); } };
          },
        },
      });
    }
    if (!out.length) throw new ModelsmithError(ErrorCodes.MALFORMED, '.npz holds no .npy members', { path, format: 'npz' });
    return out;
  });
}
