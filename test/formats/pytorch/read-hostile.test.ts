/**
 * Hand-made hostile and edge-case PyTorch files: code-execution pickles stay inert, and every
 * broken structure ends in a ModelsmithError with a stable code (one test per code thrown).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { MemorySource } from '../../../src/io/source.js';
import { readPytorch } from '../../../src/formats/pytorch/read.js';
import { openZip } from '../../../src/formats/pytorch/zip-read.js';
import { buildZip, cat, f32Bytes, GEN, legacyStream, P, stateDictPickle, torchZip } from './read-helpers.js';

const read = (bytes: Uint8Array, key?: string) => readPytorch(new MemorySource(bytes, 'test.pt'), { path: 'test.pt', ...(key !== undefined ? { key } : {}) });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    expect((e as ModelsmithError).message).toContain('test.pt');
    return (e as ModelsmithError).code;
  }
  return 'OK';
}

const W = { name: 'w', key: '0', numel: 6, shape: [2, 3], stride: [3, 1] };
const W_BYTES = f32Bytes([1, 2, 3, 4, 5, 6]);
const tmp = mkdtempSync(join(tmpdir(), 'modelsmith-pt-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `{'w': tensor, 'evil': os.system('touch <marker>')}` in the given protocol-2 form. */
function evilPickle(marker: string): Uint8Array {
  const good = stateDictPickle([W]);
  // Replace the trailing SETITEMS+STOP with one more pair before them.
  const head = good.subarray(0, good.length - 2);
  return cat(head, P.str('evil'), P.global('os', 'system'), P.mark(), P.str(`touch ${marker}`), P.tuple(), P.reduce(),
    P.str('ns'), P.global('argparse', 'Namespace'), P.emptyTuple(), P.newobj(), P.emptyDict(), P.str('lr'), P.int(3), P.setitem(), P.build(),
    P.setitems(), P.stop());
}

describe('code-execution pickles are inert', () => {
  it('GLOBAL os.system + REDUCE creates no marker file and is reported', async () => {
    const marker = join(tmp, 'pwned-zip');
    const pkl = evilPickle(marker);
    // The same pickle does run the command under Python's unpickler: the test is meaningful.
    const probe = join(tmp, 'pwned-python');
    // (persistent ids are stubbed so unpickling gets as far as os.system.)
    const script = 'import pickle,sys,io\nclass U(pickle.Unpickler):\n  def persistent_load(self, pid): return None\n  def find_class(self, m, n):\n    if m.startswith("torch"): return lambda *a, **k: None\n    return super().find_class(m, n)\nU(io.BytesIO(bytes.fromhex(sys.argv[1]))).load()';
    execFileSync('/usr/bin/python3', ['-c', script, Buffer.from(evilPickle(probe)).toString('hex')], { stdio: 'ignore' });
    expect(existsSync(probe)).toBe(true);

    const pt = await read(torchZip('evil', pkl, { 0: W_BYTES }));
    expect(existsSync(marker)).toBe(false);
    expect(pt.unknownGlobals).toEqual(['argparse.Namespace', 'os.system']);
    expect(pt.tensors.map((t) => t.name)).toEqual(['w']);
    expect(pt.tree).toMatchObject({ evil: { global: 'os.system', args: [`touch ${marker}`] }, ns: { global: 'argparse.Namespace', state: { lr: 3 } } });
  });

  it('the same in a legacy stream', async () => {
    const marker = join(tmp, 'pwned-legacy');
    const main = stateDictPickle([W], { legacy: true });
    const evil = cat(main.subarray(0, main.length - 2), P.str('evil'), P.global('subprocess', 'Popen'), P.mark(), P.str(`touch ${marker}`), P.tuple(), P.reduce(), P.setitems(), P.stop());
    const pt = await read(legacyStream(evil, [['0', W_BYTES, 4]]));
    expect(existsSync(marker)).toBe(false);
    expect(pt.unknownGlobals).toEqual(['subprocess.Popen']);
    expect(new Float32Array((await pt.tensors[0]!.load()).slice().buffer)).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
  });

  it('self-referencing and deeply nested containers neither crash nor hang', async () => {
    const main = stateDictPickle([W]);
    const deep: number[][] = [];
    for (let i = 0; i < 50_000; i++) deep.push(P.emptyList());
    for (let i = 0; i < 49_999; i++) deep.push(P.append());
    const cyc = cat(main.subarray(0, main.length - 2), P.str('cycle'), P.emptyList(), P.binput(200), P.binget(200), P.append(),
      P.str('deep'), ...deep, P.setitems(), P.stop());
    const pt = await read(torchZip('cyc', cyc, { 0: W_BYTES }));
    expect(pt.tensors.map((t) => t.name)).toEqual(['w']);
    expect(JSON.stringify(pt.tree)).toContain('<cycle>');
  });
});

describe('zip container', () => {
  it('reads CRC-0 archives, any folder name, comments and zip64 extra fields', async () => {
    const pkl = stateDictPickle([W]);
    for (const bytes of [
      torchZip('some name-with spaces', pkl, { 0: W_BYTES }),
      torchZip('z64', pkl, { 0: W_BYTES }, { zip64: true }),
      buildZip([{ name: 'a/data.pkl', data: pkl }, { name: 'a/data/0', data: W_BYTES }], { comment: 'hello PK\x05\x06 fake' }),
    ]) {
      const pt = await read(bytes);
      expect(pt.format).toBe('pytorch-zip');
      expect(new Float32Array((await pt.tensors[0]!.load()).slice().buffer)).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
    }
  });

  it('big-endian archives (byteorder = big) are swapped on load', async () => {
    const be = new Uint8Array(W_BYTES);
    for (let i = 0; i < be.length; i += 4) be.subarray(i, i + 4).reverse();
    const pt = await read(torchZip('be', stateDictPickle([W]), { 0: be }, { byteorder: 'big' }));
    expect(new Float32Array((await pt.tensors[0]!.load()).slice().buffer)).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
    expect(await code(read(torchZip('bo', stateDictPickle([W]), { 0: W_BYTES }, { byteorder: 'middle' })))).toBe('E_MALFORMED');
  });

  it('central directory past the end → E_TRUNCATED / E_OUT_OF_RANGE', async () => {
    const ok = torchZip('x', stateDictPickle([W]), { 0: W_BYTES });
    // Patch the zip64 end record's directory offset (the record is 56 + 20 + 22 bytes from the end).
    const bad = ok.slice();
    const rec = bad.length - 22 - 20 - 56;
    new DataView(bad.buffer).setUint32(rec + 48, bad.length + 1000, true);
    expect(await code(read(bad))).toMatch(/^E_(TRUNCATED|OUT_OF_RANGE)$/);
    const bad2 = ok.slice();
    // Pointing into the entry data: the "directory" there has no valid signature.
    new DataView(bad2.buffer).setUint32(rec + 48, 40, true);
    expect(await code(read(bad2))).toBe('E_MALFORMED');
    // A directory that would end inside the end records.
    const bad3 = ok.slice();
    new DataView(bad3.buffer).setUint32(rec + 40, 500, true);
    expect(await code(read(bad3))).toBe('E_OUT_OF_RANGE');
  });

  it('overlapping entries → E_MALFORMED', async () => {
    const ok = buildZip([{ name: 'a/data.pkl', data: stateDictPickle([W]) }, { name: 'a/data/0', data: W_BYTES }]);
    // Point the second central entry at the first local header.
    const bad = ok.slice();
    const dv = new DataView(bad.buffer);
    const cdOffset = dv.getUint32(bad.length - 22 + 16, true);
    const second = cdOffset + 46 + 'a/data.pkl'.length;
    dv.setUint32(second + 42, 0, true);
    expect(await code(read(bad))).toBe('E_MALFORMED');
  });

  it('too many entries → E_LIMIT; a count that cannot fit → E_MALFORMED', async () => {
    const ok = buildZip([{ name: 'a/data.pkl', data: stateDictPickle([W]) }]);
    const src = new MemorySource(ok, 'test.pt');
    await expect(openZip(src, { limits: { maxEntries: 0 } })).rejects.toMatchObject({ code: 'E_LIMIT' });
    const bad = ok.slice();
    new DataView(bad.buffer).setUint16(bad.length - 22 + 10, 500, true);
    expect(await code(read(bad))).toBe('E_MALFORMED');
  });

  it('deflated entries → E_UNSUPPORTED naming the entry', async () => {
    const bytes = buildZip([{ name: 'a/data.pkl', data: stateDictPickle([W]), method: 8 }, { name: 'a/data/0', data: W_BYTES }]);
    await expect(read(bytes)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('a/data.pkl') });
  });

  it('no EOCD, too small, no data.pkl, missing storage record, short storage', async () => {
    expect(await code(read(cat([0x50, 0x4b, 0x03, 0x04], new Uint8Array(100))))).toBe('E_TRUNCATED');
    expect(await code(read(new Uint8Array([0x50, 0x4b, 0x03, 0x04])))).toBe('E_TRUNCATED');
    expect(await code(read(buildZip([{ name: 'a/other.txt', data: new Uint8Array(3) }])))).toBe('E_MALFORMED');
    expect(await code(read(torchZip('m', stateDictPickle([W]), {})))).toBe('E_MALFORMED');
    expect(await code(read(torchZip('s', stateDictPickle([W]), { 0: W_BYTES.subarray(0, 20) })))).toBe('E_TENSOR_SIZE');
  });

  it('views outside their storage → E_OUT_OF_RANGE; unknown storage class → E_DTYPE', async () => {
    const outside = { ...W, offset: 2 };
    expect(await code(read(torchZip('o', stateDictPickle([outside]), { 0: W_BYTES })))).toBe('E_OUT_OF_RANGE');
    const badType = { ...W, storage: 'QUInt4x2Storage' };
    expect(await code(read(torchZip('t', stateDictPickle([badType]), { 0: W_BYTES })))).toBe('E_DTYPE');
  });

  it('a non-torch file → E_UNKNOWN_FORMAT; a PYTORCH1 preview archive → E_UNSUPPORTED', async () => {
    expect(await code(read(new TextEncoder().encode('hello world, not a model')))).toBe('E_UNKNOWN_FORMAT');
    expect(await code(read(new TextEncoder().encode('PYTORCH1 and more bytes')))).toBe('E_UNSUPPORTED');
  });
});

describe('pickle limits and malformed opcodes', () => {
  const inZip = (pkl: Uint8Array) => read(torchZip('p', pkl, { 0: W_BYTES }));

  it('a 2^40-byte BINBYTES8 length → E_LIMIT', async () => {
    expect(await code(inZip(cat(P.proto(4), P.bytes8Header(2 ** 40), new Uint8Array(16))))).toBe('E_LIMIT');
  });

  it('a string longer than the pickle → E_TRUNCATED; unknown opcode, underflow, bad memo → E_MALFORMED', async () => {
    expect(await code(inZip(cat(P.proto(2), [0x58, 0xff, 0xff, 0, 0], new Uint8Array(10))))).toBe('E_TRUNCATED');
    expect(await code(inZip(cat(P.proto(2), [0xff], P.stop())))).toBe('E_MALFORMED');
    expect(await code(inZip(cat(P.proto(2), P.stop())))).toBe('E_MALFORMED');
    expect(await code(inZip(cat(P.proto(2), P.binget(7), P.stop())))).toBe('E_MALFORMED');
    expect(await code(inZip(cat(P.proto(2), P.mark(), P.none(), P.stop())))).toBe('E_MALFORMED');
  });

  it('PROTO 6, extension codes → E_UNSUPPORTED', async () => {
    expect(await code(inZip(cat(P.proto(6), P.none(), P.stop())))).toBe('E_UNSUPPORTED');
    expect(await code(inZip(cat(P.proto(2), [0x82, 1], P.stop())))).toBe('E_UNSUPPORTED');
  });

  it('a persistent id that is not a storage tuple → E_MALFORMED; a tensor size that is not a tuple → E_MALFORMED', async () => {
    expect(await code(inZip(cat(P.proto(2), P.str('nope'), P.binpersid(), P.stop())))).toBe('E_MALFORMED');
    const pkl = stateDictPickle([W]);
    // The first tensor's size tuple starts after '... K 00 (' — replace the MARK before the sizes with NONE + drop its TUPLE.
    const s = Buffer.from(pkl).toString('latin1').replace('K\x00(K\x02K\x03t', 'K\x00N');
    expect(await code(inZip(new Uint8Array(Buffer.from(s, 'latin1'))))).toBe('E_MALFORMED');
  });

  it('a negative storage offset → E_OUT_OF_RANGE', async () => {
    const s = Buffer.from(stateDictPickle([W])).toString('latin1').replace('QK\x00', 'QJ\xff\xff\xff\xff');
    expect(await code(inZip(new Uint8Array(Buffer.from(s, 'latin1'))))).toBe('E_OUT_OF_RANGE');
  });

  it('an expand() view of a tiny storage to 16 GiB → E_LIMIT before anything is allocated', async () => {
    const huge = { name: 'x', key: '0', numel: 1, shape: [65536, 65536], stride: [0, 0] };
    expect(await code(inZip(stateDictPickle([huge])))).toBe('E_LIMIT');
  });

  it('deeply nested tuple keys and _rebuild_from_type_v2 chains do not overflow the stack', async () => {
    const ops: number[] = [];
    const put = (b: number[]) => {
      for (const x of b) ops.push(x);
    };
    const main = stateDictPickle([W]);
    put([...main.subarray(0, main.length - 2)]);
    // A dict key nested 100,000 tuples deep.
    put(P.none());
    for (let i = 0; i < 100_000; i++) put(P.tuple1());
    put(P.int(1));
    // rft(rft, T, (rft, T, (... (), None) ..., None), None): each level asks to call the next.
    const rft = P.global('torch._tensor', '_rebuild_from_type_v2');
    put(P.str('chain'));
    put(rft);
    for (let i = 0; i < 20_000; i++) put([...P.mark(), ...rft, ...P.global('m', 'T')]);
    put(P.emptyTuple());
    for (let i = 0; i < 20_000; i++) put([...P.none(), ...P.tuple()]);
    put(P.reduce());
    put([...P.setitems(), ...P.stop()]);
    const pkl = new Uint8Array(ops);
    const pt = await inZip(pkl);
    expect(pt.tensors.map((t) => t.name)).toEqual(['w']);
    expect(JSON.stringify(pt.tree).length).toBeLessThan(2_000_000);
  });

  it('30,000 tensors that flatten to the same name are renamed in linear time', async () => {
    const ops: number[] = [];
    const put = (b: number[]) => {
      for (const x of b) ops.push(x);
    };
    const one = stateDictPickle([W]);
    // '... X"w" <tensor ops> u .' → keep the tensor ops, memoize the tensor, then reuse it under 30k keys.
    put([...one.subarray(0, one.length - 2)]);
    put([...P.setitems(), ...P.mark()]);
    const first = Buffer.from(one).indexOf(Buffer.from('torch._utils'));
    const tensorOps = [...one.subarray(first - 1, one.length - 2)];
    put(P.str('t'));
    put(tensorOps);
    put(P.binput(250));
    for (let i = 0; i < 30_000; i++) {
      // A tuple key nested past the naming depth: every key prints as the same '(((…)))'.
      put(P.int(i % 250));
      for (let d = 0; d < 12; d++) put(P.tuple1());
      put(P.binget(250));
    }
    put([...P.setitems(), ...P.stop()]);
    const t0 = performance.now();
    const pt = await inZip(new Uint8Array(ops));
    expect(pt.tensors.length).toBe(30_002);
    expect(new Set(pt.tensors.map((t) => t.name)).size).toBe(30_002);
    expect(pt.diagnostics.filter((d) => d.code === 'PT_DUPLICATE_NAME').length).toBe(21);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('too many values → E_LIMIT (mark cap)', async () => {
    const marks = new Uint8Array(100_001).fill(0x28);
    expect(await code(inZip(cat(P.proto(2), marks, P.stop())))).toBe('E_LIMIT');
  });
});

describe('legacy stream', () => {
  const main = stateDictPickle([W], { legacy: true });

  it('reads a hand-made stream', async () => {
    const pt = await read(legacyStream(main, [['0', W_BYTES, 4]]));
    expect(pt.format).toBe('pytorch-legacy');
    expect(pt.tensors[0]!.shape).toEqual([2, 3]);
  });

  it('big-endian sys_info or another protocol version → E_UNSUPPORTED', async () => {
    expect(await code(read(legacyStream(main, [['0', W_BYTES, 4]], { littleEndian: false })))).toBe('E_UNSUPPORTED');
    expect(await code(read(legacyStream(main, [['0', W_BYTES, 4]], { protocol: 1002 })))).toBe('E_UNSUPPORTED');
  });

  it('truncated storages or pickles → E_TRUNCATED; unlisted storage → E_MALFORMED', async () => {
    const ok = legacyStream(main, [['0', W_BYTES, 4]]);
    expect(await code(read(ok.subarray(0, ok.length - 4)))).toBe('E_TRUNCATED');
    expect(await code(read(ok.subarray(0, ok.length - 30)))).toBe('E_TRUNCATED');
    expect(await code(read(ok.subarray(0, 200)))).toBe('E_TRUNCATED');
    expect(await code(read(legacyStream(main, [])))).toBe('E_MALFORMED');
  });

  it('every truncation of a corpus legacy file ends in E_TRUNCATED or a valid prefix error', async () => {
    const bytes = new Uint8Array(readFileSync(resolve(GEN, 'tiny_mlp_legacy.pt')));
    const codes = new Set<string>();
    for (let n = 0; n < bytes.length; n += 7) codes.add(await code(read(bytes.subarray(0, n))));
    expect([...codes].sort()).toEqual(['E_TRUNCATED', 'E_UNKNOWN_FORMAT']);
  });

  it('every truncation of a corpus zip ends in a ModelsmithError', async () => {
    const bytes = new Uint8Array(readFileSync(resolve(GEN, 'tiny_mlp.pt')));
    const codes = new Set<string>();
    for (let n = 0; n < bytes.length; n += 5) codes.add(await code(read(bytes.subarray(0, n))));
    expect(codes.has('OK')).toBe(false);
    expect(codes.has('E_TRUNCATED')).toBe(true);
  });
});
