/**
 * Hostile and damaged input: every outcome is success or a ModelsmithError with a code — never another
 * exception, a hang or an out-of-memory. Plus one test per error code the ONNX codec throws.
 */
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  type TensorProto,
} from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { MemorySink, MemorySource, type ByteSource } from '../../../src/io/source.js';
import { FileSource, siblingResolver } from '../../../src/platform/node.js';
import { decodeOnnx, onnxModel, readOnnx } from '../../../src/formats/onnx/read.js';
import { encodeOnnx, writeOnnx } from '../../../src/formats/onnx/write.js';
import { summarizeOnnx } from '../../../src/formats/onnx/summary.js';
import { checkExternalLocation, collectTensors, decodeTensorProto, tensorFromProto, tensorFromProtoSync } from '../../../src/formats/onnx/tensor.js';
import { encodeVarint } from '../../../src/formats/onnx/wire.js';
import { corpusName, corpusOnnxFiles, rng } from './helpers.js';

/** Runs the whole pipeline on `bytes`; returns the error code, or 'ok'. Throws on anything that is not a ModelsmithError. */
async function pipeline(bytes: Uint8Array, name: string): Promise<string> {
  try {
    const model = decodeOnnx(bytes, { path: name });
    // The summary never throws.
    const report = summarizeOnnx(model);
    JSON.stringify(report);
    for (const e of collectTensors(model)) {
      try {
        tensorFromProtoSync(e.proto);
      } catch (err) {
        if (!(err instanceof ModelsmithError)) throw err;
      }
    }
    const out = await encodeOnnx(model, { streamThreshold: 64 });
    decodeOnnx(out, { path: `${name} (rewritten)` });
    return 'ok';
  } catch (err) {
    if (err instanceof ModelsmithError) {
      expect(typeof err.code).toBe('string');
      expect(err.code.startsWith('E_')).toBe(true);
      return err.code;
    }
    throw new Error(`${name}: non-ModelsmithError ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`, { cause: err });
  }
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ModelsmithError) return e.code;
    throw e;
  }
  return 'ok';
}

async function codeOfAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ModelsmithError) return e.code;
    throw e;
  }
  return 'ok';
}

const files = corpusOnnxFiles();
const small = files.filter((f) => statSync(f).size < 48 * 1024);
const medium = files.filter((f) => statSync(f).size >= 48 * 1024 && statSync(f).size < 400 * 1024);

describe('damaged corpus files', () => {
  it('truncations of every corpus file end in success or a ModelsmithError', async () => {
    const tally: Record<string, number> = {};
    const r = rng(7);
    let n = 0;
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(f));
      // A few cut points per file: near the start, random, and one byte short.
      const cuts = new Set([1, 2, 3, 7, Math.floor(bytes.length / 2), bytes.length - 1, Math.floor(r() * bytes.length)]);
      for (const cut of cuts) {
        if (cut <= 0 || cut >= bytes.length) continue;
        const code = await pipeline(bytes.subarray(0, cut), `${corpusName(f)}[:${cut}]`);
        tally[code] = (tally[code] ?? 0) + 1;
        n++;
      }
    }
    console.log(`[onnx truncations] ${n} cases:`, tally);
    expect(tally[ErrorCodes.TRUNCATED]).toBeGreaterThan(n / 2);
  });

  it('2,400 seeded random flips / truncations / insertions end in success or a ModelsmithError', async () => {
    const r = rng(20240611);
    const tally: Record<string, number> = {};
    const pool = [...small, ...small, ...medium]; // weight towards small files to keep it fast
    const t0 = Date.now();
    for (let i = 0; i < 2400; i++) {
      const f = pool[Math.floor(r() * pool.length)]!;
      const orig = new Uint8Array(readFileSync(f));
      let b = orig.slice();
      const kind = Math.floor(r() * 6);
      let label: string;
      switch (kind) {
        case 0: { // flip 1–4 random bytes
          const k = 1 + Math.floor(r() * 4);
          for (let j = 0; j < k; j++) b[Math.floor(r() * b.length)] ^= 1 + Math.floor(r() * 255);
          label = `flip${k}`;
          break;
        }
        case 1: { // flip one bit in the first 64 bytes (tags and lengths of the outer messages)
          const at = Math.floor(r() * Math.min(64, b.length));
          b[at] ^= 1 << Math.floor(r() * 8);
          label = `bit@${at}`;
          break;
        }
        case 2: { // truncate
          b = b.subarray(0, Math.floor(r() * b.length));
          label = `cut${b.length}`;
          break;
        }
        case 3: { // insert 1–16 random bytes
          const at = Math.floor(r() * b.length);
          const ins = Uint8Array.from({ length: 1 + Math.floor(r() * 16) }, () => Math.floor(r() * 256));
          const nb = new Uint8Array(b.length + ins.length);
          nb.set(b.subarray(0, at));
          nb.set(ins, at);
          nb.set(b.subarray(at), at + ins.length);
          b = nb;
          label = `ins${ins.length}@${at}`;
          break;
        }
        case 4: { // big varint: 0xff run (huge lengths)
          const at = Math.floor(r() * b.length);
          for (let j = at; j < Math.min(b.length, at + 1 + Math.floor(r() * 6)); j++) b[j] = 0xff;
          label = `ff@${at}`;
          break;
        }
        default: { // delete a range
          const at = Math.floor(r() * b.length);
          const len = Math.min(1 + Math.floor(r() * 32), b.length - at);
          const nb = new Uint8Array(b.length - len);
          nb.set(b.subarray(0, at));
          nb.set(b.subarray(Math.min(b.length, at + len)), at);
          b = nb;
          label = `del${len}@${at}`;
        }
      }
      const code = await pipeline(b, `${corpusName(f)} ${label}`);
      tally[code] = (tally[code] ?? 0) + 1;
    }
    console.log(`[onnx fuzz] 2400 mutations in ${Date.now() - t0} ms:`, tally);
    expect(Object.values(tally).reduce((a, c) => a + c, 0)).toBe(2400);
    expect(tally.ok).toBeGreaterThan(0);
  });
});

// ------------------------------------------------------------------------------------------------
// Crafted hostile input
// ------------------------------------------------------------------------------------------------

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function ld(fieldNo: number, payload: Uint8Array): Uint8Array {
  return concat(encodeVarint(fieldNo * 8 + 2), encodeVarint(payload.length), payload);
}

describe('hostile input', () => {
  it('deeply nested subgraphs → E_LIMIT', () => {
    // graph{ node{ attribute{ g{ node{ attribute{ g{ … } } } } } } }, 3 levels per subgraph
    let inner: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < 60; i++) inner = ld(1, ld(5, ld(6, inner))); // node(1) → attribute(5) → g(6)
    const bytes = concat(new Uint8Array([0x08, 0x07]), ld(7, inner));
    const err = (() => {
      try {
        decodeOnnx(bytes, { path: 'deep.onnx' });
      } catch (e) {
        return e as ModelsmithError;
      }
      return undefined;
    })();
    expect(err?.code).toBe(ErrorCodes.LIMIT);
    expect(err?.offset).toBeGreaterThan(0);
    expect(err?.message).toContain('deep.onnx');
    // 30 levels are fine.
    let ok: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < 30; i++) ok = ld(1, ld(5, ld(6, ok)));
    expect(codeOf(() => decodeOnnx(concat(new Uint8Array([0x08, 0x07]), ld(7, ok))))).toBe('ok');
  });

  it('a huge declared length → E_TRUNCATED with the offset', () => {
    const bytes = concat(new Uint8Array([0x08, 0x07, 0x3a]), encodeVarint(2 ** 31 - 10), new Uint8Array(16));
    try {
      decodeOnnx(bytes, { path: 'huge.onnx' });
      expect.unreachable();
    } catch (e) {
      expect((e as ModelsmithError).code).toBe(ErrorCodes.TRUNCATED);
      expect((e as ModelsmithError).offset).toBe(2);
      expect((e as Error).message).toMatch(/huge\.onnx.*byte 2/);
    }
  });

  it('a record overrunning its enclosing message → E_MALFORMED', () => {
    // graph of length 4 whose inner string claims 10 bytes, followed by more file bytes.
    const bytes = concat(new Uint8Array([0x08, 0x07, 0x3a, 0x04, 0x12, 0x0a, 0x41, 0x42]), new Uint8Array(20).fill(0x41));
    expect(codeOf(() => decodeOnnx(bytes))).toBe(ErrorCodes.MALFORMED);
  });

  it('bad tags and wire types → E_MALFORMED', () => {
    expect(codeOf(() => decodeOnnx(new Uint8Array([0x00, 0x01])))).toBe(ErrorCodes.MALFORMED); // field 0
    expect(codeOf(() => decodeOnnx(new Uint8Array([0x0f, 0x01])))).toBe(ErrorCodes.MALFORMED); // wire type 7
    expect(codeOf(() => decodeOnnx(new Uint8Array([0x0a, 0x01, 0x00])))).toBe(ErrorCodes.MALFORMED); // ir_version as bytes
    expect(codeOf(() => decodeOnnx(new Uint8Array([0x38, 0x01])))).toBe(ErrorCodes.MALFORMED); // graph as varint
    expect(codeOf(() => decodeOnnx(new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])))).toBe(ErrorCodes.MALFORMED); // 11-byte varint
    expect(codeOf(() => decodeOnnx(new Uint8Array([0x0c])))).toBe(ErrorCodes.MALFORMED); // stray end-group
  });

  it('unknown fields (and groups) are skipped and kept', async () => {
    const bytes = concat(new Uint8Array([0x08, 0x07]), new Uint8Array([0xf8, 0x06, 0x2a]), new Uint8Array([0xfb, 0x06, 0x08, 0x01, 0xfc, 0x06]));
    const m = decodeOnnx(bytes);
    expect(m.diagnostics.some((d) => d.code === 'onnx.unknown_fields')).toBe(true);
    expect(Buffer.from(await encodeOnnx(m)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('element bombs (packed int64 of 1-byte varints) → E_LIMIT instead of running out of memory', () => {
    const n = 48 * 2 ** 20; // 48M elements ≈ 1.9 GB of bigints
    const packed = new Uint8Array(n).fill(0x01);
    const tensor = concat(new Uint8Array([0x08, 0x07, 0x10, 0x07]), ld(7, packed)); // dims, data_type, int64_data
    const bytes = concat(new Uint8Array([0x08, 0x07]), ld(7, ld(5, tensor)));
    expect(codeOf(() => decodeOnnx(bytes))).toBe(ErrorCodes.LIMIT);
    // The cap is configurable.
    const smallBomb = concat(new Uint8Array([0x08, 0x07]), ld(7, ld(5, concat(new Uint8Array([0x08, 0x07, 0x10, 0x07]), ld(7, new Uint8Array(1000).fill(1))))));
    expect(codeOf(() => decodeOnnx(smallBomb, { limits: { maxHeapEstimate: 10_000 } }))).toBe(ErrorCodes.LIMIT);
    expect(codeOf(() => decodeOnnx(smallBomb))).toBe('ok');
  });

  it('a source of 2 GiB or more → E_LIMIT without reading it', async () => {
    let reads = 0;
    const src: ByteSource = {
      size: 2 ** 31,
      name: 'big.onnx',
      async read() {
        reads++;
        return new Uint8Array(0);
      },
      async readInto() {
        reads++;
      },
    };
    expect(await codeOfAsync(() => readOnnx(src))).toBe(ErrorCodes.LIMIT);
    expect(reads).toBe(0);
  });

  it('an empty file → E_TRUNCATED', async () => {
    expect(await codeOfAsync(() => readOnnx(new MemorySource(new Uint8Array(0), 'empty.onnx')))).toBe(ErrorCodes.TRUNCATED);
  });

  it('garbage TensorProto files → ModelsmithError', () => {
    expect(codeOf(() => decodeTensorProto(new Uint8Array([0x0a, 0x05, 0x01])))).toBe(ErrorCodes.TRUNCATED);
  });
});

// ------------------------------------------------------------------------------------------------
// One test per tensor-level error code
// ------------------------------------------------------------------------------------------------

function tensor(init: MessageInitShape<typeof TensorProtoSchema>): TensorProto {
  return create(TensorProtoSchema, { name: 't', ...init });
}

describe('tensor error codes', () => {
  it('E_DTYPE: UNDEFINED and unknown data_type', () => {
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 0, dims: [1n], rawData: new Uint8Array(1) })))).toBe(ErrorCodes.DTYPE);
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 99, dims: [1n], rawData: new Uint8Array(1) })))).toBe(ErrorCodes.DTYPE);
    // …and the summary reports it instead of throwing.
    const model = onnxModel(create(ModelProtoSchema, { irVersion: 8n, graph: create(GraphProtoSchema, { initializer: [tensor({ dataType: 99, dims: [1n] })] }) }));
    expect(summarizeOnnx(model).diagnostics.some((d) => d.code === 'onnx.unknown_dtype')).toBe(true);
  });

  it('E_TENSOR_SIZE: raw_data, typed fields and external length that disagree with dims × dtype', () => {
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 1, dims: [3n], rawData: new Uint8Array(8) })))).toBe(ErrorCodes.TENSOR_SIZE);
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 1, dims: [3n], floatData: [1, 2] })))).toBe(ErrorCodes.TENSOR_SIZE);
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 22, dims: [5n], int32Data: [1, 2] })))).toBe(ErrorCodes.TENSOR_SIZE); // int4: 3 bytes
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 1, dims: [3n] })))).toBe(ErrorCodes.TENSOR_SIZE); // no data
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 1, dims: [2n], int64Data: [1n, 2n] })))).toBe(ErrorCodes.TENSOR_SIZE); // wrong field
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 8, dims: [2n], stringData: [new Uint8Array(1)] })))).toBe(ErrorCodes.TENSOR_SIZE);
    // The summary reports it instead of throwing.
    const model = onnxModel(create(ModelProtoSchema, { irVersion: 8n, graph: create(GraphProtoSchema, { initializer: [tensor({ dataType: 1, dims: [3n], rawData: new Uint8Array(8) })] }) }));
    expect(summarizeOnnx(model).diagnostics.map((d) => d.code)).toContain('onnx.E_TENSOR_SIZE');
  });

  it('E_OUT_OF_RANGE: negative and overflowing dims', () => {
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 1, dims: [-1n], rawData: new Uint8Array(0) })))).toBe(ErrorCodes.OUT_OF_RANGE);
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 1, dims: [2n ** 40n, 2n ** 40n], rawData: new Uint8Array(0) })))).toBe(ErrorCodes.OUT_OF_RANGE);
  });

  it('E_MALFORMED: a string tensor with raw_data', () => {
    expect(codeOf(() => tensorFromProtoSync(tensor({ dataType: 8, dims: [1n], rawData: new Uint8Array(3) })))).toBe(ErrorCodes.MALFORMED);
  });

  it('E_LIMIT: inlining external data into a model of 2 GiB or more is refused before writing', async () => {
    const big = 2 ** 29 + 16; // float32 elements → just over 2 GiB
    const tp = tensor({
      dataType: 1,
      dims: [BigInt(big)],
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [create(StringStringEntryProtoSchema, { key: 'location', value: 'w.bin' })],
    });
    const proto = create(ModelProtoSchema, { irVersion: 8n, graph: create(GraphProtoSchema, { initializer: [tp] }) });
    let reads = 0;
    const model = onnxModel(proto, {
      siblings: async () => ({
        size: big * 4,
        name: 'w.bin',
        read: async (_o: number, l: number) => (reads++, new Uint8Array(l)),
        readInto: async () => void reads++,
      }),
    });
    const sink = new MemorySink();
    try {
      await writeOnnx(model, sink);
      expect.unreachable();
    } catch (e) {
      expect((e as ModelsmithError).code).toBe(ErrorCodes.LIMIT);
      expect((e as Error).message).toMatch(/external data/);
    }
    expect(sink.position).toBe(0);
    expect(reads).toBe(0);
  });
});

describe('external data locations', () => {
  let dir: string;
  let outside: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'modelsmith-onnx-ext-'));
    outside = await mkdtemp(join(tmpdir(), 'modelsmith-onnx-outside-'));
    await mkdir(join(dir, 'model'));
    await writeFile(join(outside, 'secret.bin'), new Uint8Array(16).fill(7));
    await writeFile(join(dir, 'model', 'w.bin'), new Uint8Array(16).fill(3));
    await symlink(join(outside, 'secret.bin'), join(dir, 'model', 'link.bin'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  async function modelWith(location: string, extra: { key: string; value: string }[] = []): Promise<string> {
    const tp = tensor({
      dataType: 1,
      dims: [4n],
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [{ key: 'location', value: location }, ...extra].map((kv) => create(StringStringEntryProtoSchema, kv)),
    });
    const proto = create(ModelProtoSchema, { irVersion: 8n, graph: create(GraphProtoSchema, { initializer: [tp] }) });
    const path = join(dir, 'model', `m${Math.random().toString(36).slice(2)}.onnx`);
    await writeFile(path, toBinary(ModelProtoSchema, proto));
    return path;
  }

  async function loadCode(path: string): Promise<string> {
    const opened: FileSource[] = [];
    const src = await FileSource.open(path);
    try {
      const model = await readOnnx(src, { path, siblings: siblingResolver(path, opened) });
      return await codeOfAsync(async () => {
        for (const e of collectTensors(model)) await tensorFromProto(e.proto, { siblings: model.siblings!, path });
        await encodeOnnx(model);
      });
    } finally {
      await src.close();
      for (const s of opened) await s.close();
    }
  }

  it('reads a valid external tensor', async () => {
    expect(await loadCode(await modelWith('w.bin'))).toBe('ok');
  });

  it.each([['../x'], ['sub/../../x'], ['/etc/passwd'], ['C:\\Windows\\win.ini'], ['..\\x'], ['']])('refuses location %j with E_EXTERNAL_DATA', async (loc) => {
    expect(await loadCode(await modelWith(loc))).toBe(ErrorCodes.EXTERNAL_DATA);
    expect(codeOf(() => checkExternalLocation(loc))).toBe(ErrorCodes.EXTERNAL_DATA);
  });

  it('the node resolver itself refuses escaping paths', async () => {
    const resolve = siblingResolver(join(dir, 'model', 'x.onnx'));
    for (const loc of ['../x', '/etc/passwd', 'a/../../x', 'link.bin']) {
      expect(await codeOfAsync(() => resolve(loc))).toBe(ErrorCodes.EXTERNAL_DATA);
    }
  });

  it('refuses a symlink that leads outside the model folder', async () => {
    expect(await loadCode(await modelWith('link.bin'))).toBe(ErrorCodes.EXTERNAL_DATA);
  });

  it('missing file, offset/length outside the file, bad numbers, no resolver → E_EXTERNAL_DATA', async () => {
    expect(await loadCode(await modelWith('nope.bin'))).toBe(ErrorCodes.EXTERNAL_DATA);
    expect(await loadCode(await modelWith('w.bin', [{ key: 'offset', value: '4096' }]))).toBe(ErrorCodes.EXTERNAL_DATA);
    expect(await loadCode(await modelWith('w.bin', [{ key: 'offset', value: '8' }, { key: 'length', value: '16' }]))).toBe(ErrorCodes.EXTERNAL_DATA);
    expect(await loadCode(await modelWith('w.bin', [{ key: 'offset', value: '-1' }]))).toBe(ErrorCodes.EXTERNAL_DATA);
    expect(await loadCode(await modelWith('w.bin', [{ key: 'length', value: '1e3' }]))).toBe(ErrorCodes.EXTERNAL_DATA);
    const noResolver = decodeOnnx(readFileSync(await modelWith('w.bin')));
    expect(await codeOfAsync(() => encodeOnnx(noResolver))).toBe(ErrorCodes.EXTERNAL_DATA);
    // location entry missing altogether
    const tp = tensor({ dataType: 1, dims: [1n], dataLocation: TensorProto_DataLocation.EXTERNAL });
    expect(await codeOfAsync(() => tensorFromProto(tp))).toBe(ErrorCodes.EXTERNAL_DATA);
  });

  it('a FIFO or a directory as location → E_EXTERNAL_DATA, without blocking', async () => {
    await mkdir(join(dir, 'model', 'adir'));
    expect(await loadCode(await modelWith('adir'))).toBe(ErrorCodes.EXTERNAL_DATA);
    if (spawnSync('mkfifo', [join(dir, 'model', 'fifo')]).status === 0) {
      expect(await loadCode(await modelWith('fifo'))).toBe(ErrorCodes.EXTERNAL_DATA);
    }
  });

  it('E_TENSOR_SIZE when the external length disagrees with dims × dtype', async () => {
    expect(await loadCode(await modelWith('w.bin', [{ key: 'length', value: '12' }]))).toBe(ErrorCodes.TENSOR_SIZE);
  });

  it('the writer refuses an escaping external location', async () => {
    const model = decodeOnnx(readFileSync(files[0]!));
    expect(await codeOfAsync(() => writeOnnx(model, new MemorySink(), { externalData: { location: '../w.bin', sink: new MemorySink() } }))).toBe(ErrorCodes.EXTERNAL_DATA);
  });
});
