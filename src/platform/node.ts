/**
 * Node.js file access: the only module that imports node:fs. Writes go to a temp file in the target
 * folder and are renamed into place, so a failure never leaves a partial output and an input is
 * never overwritten.
 */
import { open, rename, rm, stat, realpath, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { checkRange, type ByteSink, type ByteSource, type SiblingResolver } from '../io/source.js';

export class FileSource implements ByteSource {
  private constructor(private readonly fh: FileHandle, readonly size: number, readonly name: string) {}

  static async open(path: string): Promise<FileSource> {
    // stat first: opening a FIFO or device for reading can block forever.
    const pre = await stat(path).catch((e: unknown) => {
      throw new ModelsmithError(ErrorCodes.IO, `cannot open: ${(e as Error).message}`, { path, cause: e });
    });
    if (!pre.isFile()) throw new ModelsmithError(ErrorCodes.IO, 'not a regular file', { path });
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.IO, `cannot open: ${(e as Error).message}`, { path, cause: e });
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new ModelsmithError(ErrorCodes.IO, 'not a regular file', { path });
    }
    return new FileSource(fh, st.size, path);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const length = target.byteLength;
    checkRange(this, offset, length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(target, got, length - got, offset + got);
      if (bytesRead === 0) throw new ModelsmithError(ErrorCodes.TRUNCATED, 'file shrank while reading', { path: this.name, offset: offset + got });
      got += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Sibling files of `modelPath`, refusing absolute paths and anything that resolves outside its folder. */
export function siblingResolver(modelPath: string, opened: FileSource[] = []): SiblingResolver {
  const folder = resolve(dirname(modelPath));
  return async (rel: string) => {
    const where = { path: modelPath, tensor: undefined as string | undefined };
    if (rel === '' || isAbsolute(rel) || rel.includes('\0')) {
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `refusing external data location '${rel}'`, { path: where.path });
    }
    const target = resolve(folder, normalize(rel));
    const r = relative(folder, target);
    if (r === '' || r.startsWith('..' + sep) || r === '..' || isAbsolute(r)) {
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `external data location '${rel}' escapes the model folder`, { path: where.path });
    }
    // Symlinks could still point outside: compare real paths.
    let real: string;
    try {
      real = await realpath(target);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `external data file '${rel}' not found`, { path: modelPath, cause: e });
    }
    const realFolder = await realpath(folder);
    const rr = relative(realFolder, real);
    if (rr === '..' || rr.startsWith('..' + sep) || isAbsolute(rr)) {
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `external data location '${rel}' links outside the model folder`, { path: modelPath });
    }
    const src = await FileSource.open(real);
    opened.push(src);
    return src;
  };
}

export interface AtomicFileSinkOptions {
  /**
   * fsync the temp file before renaming it into place (default true). `false` keeps the atomicity
   * (the output appears complete under its name or not at all, and never replaces an input) but gives
   * up durability: after a power loss or kernel crash the renamed file may be empty or truncated, as a
   * `cp` would be. Worth it when the data is easy to recreate: on big outputs waiting for the disk
   * takes longer than writing the bytes into the page cache (`cp` + `sync` of 1 GiB measured
   * 0.25–0.39× the speed of `cp`).
   */
  sync?: boolean;
}

/** Distinguishes temp files of sinks created in the same millisecond by one process. */
let tempSerial = 0;

/**
 * Writes to `.<target>.tmp-<pid>-<time>-<n>` and renames on commit. Refuses to write over any path in `inputs`.
 */
export class AtomicFileSink implements ByteSink {
  position = 0;
  private constructor(private readonly fh: FileHandle, private readonly tmp: string, readonly target: string, readonly sync: boolean) {}

  static async create(target: string, inputs: string[] = [], opts: AtomicFileSinkOptions = {}): Promise<AtomicFileSink> {
    await refuseOverwrite(target, inputs);
    const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}-${tempSerial++}`);
    let fh: FileHandle;
    try {
      fh = await open(tmp, 'wx');
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.IO, `cannot create output: ${(e as Error).message}`, { path: target, cause: e });
    }
    return new AtomicFileSink(fh, tmp, target, opts.sync ?? true);
  }

  /** The temp file's path (where the bytes are until `commit`). */
  get tempPath(): string {
    return this.tmp;
  }

  async write(chunk: Uint8Array): Promise<void> {
    let done = 0;
    while (done < chunk.byteLength) {
      const { bytesWritten } = await this.fh.write(chunk, done, chunk.byteLength - done);
      done += bytesWritten;
    }
    this.position += chunk.byteLength;
  }

  async commit(): Promise<void> {
    await this.finish();
    await this.publish();
  }

  /**
   * Commit several outputs that belong together (a model and its data file, shards and their index):
   * all are synced (in parallel) and closed before the first rename, and if a rename fails the files
   * already renamed are removed again, so the set appears whole or not at all.
   */
  static async commitAll(sinks: AtomicFileSink[]): Promise<void> {
    await Promise.all(sinks.map((s) => s.finish()));
    const published: AtomicFileSink[] = [];
    try {
      for (const s of sinks) {
        await s.publish();
        published.push(s);
      }
    } catch (e) {
      await Promise.all(published.map((s) => rm(s.target, { force: true })));
      throw e;
    }
  }

  private async finish(): Promise<void> {
    if (this.sync) await this.fh.sync();
    await this.fh.close();
  }

  private async publish(): Promise<void> {
    try {
      await rename(this.tmp, this.target);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.IO, `cannot rename the output into place: ${(e as Error).message}`, { path: this.target, cause: e });
    }
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}

/** Throws E_IO if `target` is (or is the same file as) one of the inputs. */
export async function refuseOverwrite(target: string, inputs: string[]): Promise<void> {
  const t = await stat(target).catch(() => undefined);
  for (const input of inputs) {
    const i = await stat(input).catch(() => undefined);
    const same = resolve(input) === resolve(target) || (t && i && t.ino === i.ino && t.dev === i.dev);
    if (same) throw new ModelsmithError(ErrorCodes.IO, `refusing to overwrite the input file`, { path: target });
  }
}
