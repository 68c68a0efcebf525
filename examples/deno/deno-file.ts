/**
 * ByteSource / ByteSink over Deno's file API (Deno.FsFile), the Deno counterpart of the Node
 * FileSource / AtomicFileSink: reads are positioned (seek + read loop) so only the bytes asked for are
 * read, and the output goes to a temp file renamed into place so a failure leaves no partial file.
 */
import * as ms from 'modelsmith';

/** The ByteSource / ByteSink contracts of modelsmith (src/io/source.ts), restated for the untyped bundle. */
export interface ByteSource {
  readonly size: number;
  readonly name: string;
  read(offset: number, length: number): Promise<Uint8Array>;
  readInto(offset: number, target: Uint8Array): Promise<void>;
}
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
  readonly position: number;
}

export class DenoFileSource implements ByteSource {
  private constructor(private readonly file: Deno.FsFile, readonly size: number, readonly name: string) {}

  static async open(path: string): Promise<DenoFileSource> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      throw new ms.ModelsmithError(ms.ErrorCodes.IO, `cannot open: ${(e as Error).message}`, { path, cause: e });
    }
    // A FIFO or device could block forever or never end.
    if (!info.isFile) throw new ms.ModelsmithError(ms.ErrorCodes.IO, 'not a regular file', { path });
    const file = await Deno.open(path, { read: true });
    return new DenoFileSource(file, info.size, path);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const length = target.byteLength;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.size) {
      throw new ms.ModelsmithError(ms.ErrorCodes.TRUNCATED, `read of ${length} bytes at ${offset} runs past the end (${this.size} bytes)`, { path: this.name, offset });
    }
    await this.file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await this.file.read(target.subarray(got));
      if (n === null || n === 0) throw new ms.ModelsmithError(ms.ErrorCodes.TRUNCATED, 'file shrank while reading', { path: this.name, offset: offset + got });
      got += n;
    }
  }

  close(): void {
    this.file.close();
  }
}

export class DenoAtomicFileSink implements ByteSink {
  position = 0;
  private constructor(private readonly file: Deno.FsFile, private readonly tmp: string, readonly target: string) {}

  static async create(target: string, inputs: string[] = []): Promise<DenoAtomicFileSink> {
    const real = async (p: string) => Deno.realPath(p).catch(() => p);
    const t = await real(target);
    for (const i of inputs) {
      if ((await real(i)) === t) throw new ms.ModelsmithError(ms.ErrorCodes.IO, 'refusing to overwrite an input file', { path: target });
    }
    const tmp = `${target}.tmp-${Deno.pid}-${Date.now()}`;
    const file = await Deno.open(tmp, { write: true, createNew: true });
    return new DenoAtomicFileSink(file, tmp, target);
  }

  async write(chunk: Uint8Array): Promise<void> {
    let done = 0;
    while (done < chunk.byteLength) done += await this.file.write(chunk.subarray(done));
    this.position += chunk.byteLength;
  }

  async commit(): Promise<void> {
    await this.file.sync();
    this.file.close();
    await Deno.rename(this.tmp, this.target);
  }

  async discard(): Promise<void> {
    try {
      this.file.close();
    } catch { /* already closed */ }
    await Deno.remove(this.tmp).catch(() => undefined);
  }
}
