/** The Node side of src/data's DataIo, for tests (src/data itself never touches node:fs). */
import { readdir, stat } from 'node:fs/promises';
import { FileSource } from '../../src/platform/node.js';
import type { DataIo } from '../../src/data/types.js';

export const nodeIo: DataIo = {
  open: (p) => FileSource.open(p),
  async list(p) {
    const st = await stat(p);
    if (!st.isDirectory()) return undefined;
    return (await readdir(p, { withFileTypes: true })).map((e) => ({ name: e.name, directory: e.isDirectory() }));
  },
};
