/**
 * Node's side of src/data's `DataIo` (src/data never touches node:fs, so the same readers run in
 * browsers from a folder picker): files through FileSource, folders through readdir.
 */
import { readdir, stat } from 'node:fs/promises';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { DataIo } from '../data/types.js';
import { FileSource } from './node.js';

export const nodeDataIo: DataIo = {
  open: (p) => FileSource.open(p),
  async list(p) {
    const st = await stat(p).catch((e: unknown) => {
      throw new ModelsmithError(ErrorCodes.IO, `cannot open data: ${(e as Error).message}`, { path: p, cause: e });
    });
    if (!st.isDirectory()) return undefined;
    return (await readdir(p, { withFileTypes: true })).map((e) => ({ name: e.name, directory: e.isDirectory() }));
  },
};
