/**
 * Node scratch files for spills (src/compress/spill.ts): an unlinked-on-dispose file in a folder of
 * its own under os.tmpdir() (or `dir`), opened read-write so the spill can read back what it wrote.
 */
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { checkRange, type ByteSource } from '../io/source.js';
import type { ScratchFactory, ScratchFile } from '../compress/spill.js';

export function nodeScratch(dir: string = tmpdir()): ScratchFactory {
  return async (): Promise<ScratchFile> => {
    // A private folder (mkdtemp: unique, mode 0700), so the name cannot clash with anything.
    const folder = await mkdtemp(join(dir, 'modelsmith-spill-'));
    const path = join(folder, 'spill.bin');
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx+');
    } catch (e) {
      await rm(folder, { recursive: true, force: true });
      throw new ModelsmithError(ErrorCodes.IO, `cannot create scratch file: ${(e as Error).message}`, { path, cause: e });
    }
    let size = 0;
    let closed = false;
    const live = (): void => {
      if (closed) throw new ModelsmithError(ErrorCodes.IO, 'scratch file was released', { path });
    };
    const source: ByteSource = {
      name: path,
      get size() { return size; },
      async read(offset, length) {
        const buf = new Uint8Array(length);
        await this.readInto(offset, buf);
        return buf;
      },
      async readInto(offset, target) {
        live();
        checkRange(this, offset, target.byteLength);
        let got = 0;
        while (got < target.byteLength) {
          const { bytesRead } = await fh.read(target, got, target.byteLength - got, offset + got);
          if (bytesRead === 0) throw new ModelsmithError(ErrorCodes.TRUNCATED, 'scratch file shrank while reading', { path, offset: offset + got });
          got += bytesRead;
        }
      },
    };
    return {
      sink: {
        get position() { return size; },
        async write(chunk) {
          live();
          let done = 0;
          while (done < chunk.byteLength) {
            const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done, size + done);
            done += bytesWritten;
          }
          size += chunk.byteLength;
        },
      },
      source,
      async dispose() {
        if (closed) return;
        closed = true;
        await fh.close().catch(() => undefined);
        await rm(folder, { recursive: true, force: true });
      },
    };
  };
}
