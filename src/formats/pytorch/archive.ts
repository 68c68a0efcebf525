/**
 * The torch ≥ 1.6 zip layout: `<folder>/data.pkl` plus one stored record `<folder>/data/<key>` per
 * storage. The folder name varies (basename of the saved path, `archive` for buffers), so it is taken
 * from where data.pkl is. TorchScript archives share the container and are flagged by their
 * `constants.pkl` / `code/` records.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';
import { createInterpreter, storageType } from './interpreter.js';
import { unpickle } from './pickle.js';
import { isPyInt, PyTuple, type StorageRef } from './pyobjects.js';
import { MAX_PICKLE_BYTES, type ParsedContainer, type StorageRange } from './storage.js';
import { openZip, type ZipEntry } from './zip-read.js';

const FORMAT = 'pytorch-zip';

export async function parseZip(src: ByteSource, path: string): Promise<ParsedContainer> {
  const zip = await openZip(src, { path });
  const pkl = findDataPkl(zip.entries);
  if (!pkl) throw new ModelsmithError(ErrorCodes.MALFORMED, 'zip archive has no data.pkl: not a torch.save file', { format: FORMAT, path });
  const prefix = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
  const torchscript = zip.entries.some((e) => e.name === `${prefix}constants.pkl` || e.name.startsWith(`${prefix}code/`));
  const diagnostics: ParsedContainer['diagnostics'] = [];

  let bigEndian = false;
  const bo = zip.get(`${prefix}byteorder`);
  if (bo) {
    const text = new TextDecoder().decode(await zip.read(bo, 64)).trim();
    if (text === 'big') bigEndian = true;
    else if (text !== 'little') throw new ModelsmithError(ErrorCodes.MALFORMED, `byteorder record says '${text.slice(0, 20)}'`, { format: FORMAT, path, offset: bo.localHeaderOffset });
  }

  const bytes = await zip.read(pkl, MAX_PICKLE_BYTES);
  const base = await zip.dataOffset(pkl);
  const seen = new Map<string, StorageRef>();
  const interp = createInterpreter({
    path,
    persistentLoad(pid, offset) {
      const items = pid instanceof PyTuple ? pid.items : undefined;
      if (!items || items[0] !== 'storage' || items.length < 5) {
        throw new ModelsmithError(ErrorCodes.MALFORMED, 'persistent id is not a (\'storage\', type, key, location, numel) tuple', { format: FORMAT, path, offset });
      }
      const [, cls, key, location, numel] = items;
      const st = storageType(cls);
      if (!st) throw new ModelsmithError(ErrorCodes.DTYPE, 'unsupported storage class in persistent id', { format: FORMAT, path, offset });
      if (typeof key !== 'string' || !isPyInt(numel) || !Number.isSafeInteger(Number(numel)) || Number(numel) < 0) {
        throw new ModelsmithError(ErrorCodes.MALFORMED, 'storage persistent id needs (key:str, numel:int)', { format: FORMAT, path, offset });
      }
      const prev = seen.get(key);
      if (prev) {
        if (prev.elemSize !== st.elemSize) throw new ModelsmithError(ErrorCodes.MALFORMED, `storage ${key} used with two element types`, { format: FORMAT, path, offset });
        return prev;
      }
      const ref: StorageRef = {
        kind: 'storage', key, dtype: st.dtype, elemSize: st.elemSize, numel: Number(numel),
        location: typeof location === 'string' ? location : 'cpu', typeName: st.typeName, ...(st.quant ? { quant: st.quant } : {}),
      };
      seen.set(key, ref);
      return ref;
    },
  });
  const { value } = unpickle(bytes, { interpreter: interp, path, baseOffset: base });

  return {
    format: torchscript ? 'torchscript' : 'pytorch-zip',
    top: value,
    unknownGlobals: interp.unknownGlobals,
    bigEndian,
    diagnostics,
    async resolve(s: StorageRef, tensor: string): Promise<StorageRange> {
      const e = zip.get(`${prefix}data/${s.key}`);
      if (!e) throw new ModelsmithError(ErrorCodes.MALFORMED, `storage record 'data/${s.key}' is missing from the archive`, { format: FORMAT, path, tensor });
      const offset = await zip.dataOffset(e);
      const need = s.numel * s.elemSize;
      if (!Number.isSafeInteger(need) || e.size < need) {
        throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `storage 'data/${s.key}' holds ${e.size} bytes but its id claims ${s.numel} × ${s.elemSize}`, { format: FORMAT, path, tensor, offset });
      }
      return { offset, byteLength: e.size };
    },
  };
}

/** `<folder>/data.pkl` with the shortest folder (a nested archive copy must not win). */
function findDataPkl(entries: readonly ZipEntry[]): ZipEntry | undefined {
  let best: ZipEntry | undefined;
  for (const e of entries) {
    if (e.name !== 'data.pkl' && !e.name.endsWith('/data.pkl')) continue;
    if (!best || e.name.split('/').length < best.name.split('/').length) best = e;
  }
  return best;
}
