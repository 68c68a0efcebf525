/**
 * Independent check of our safetensors files with Python (the `safetensors` package is not
 * installed, so the header is parsed with `json` and the data with numpy / torch.frombuffer):
 *   - a file we wrote from the corpus dtypes file holds every tensor of the original, byte for byte;
 *   - bf16/f16/f32 bits (specials included) equal torch's own tensors in pytorch/generated/dtypes.pt;
 *   - a file Python writes with its own layout (unpadded, spaced JSON) reads back with equal tensors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemorySink, MemorySource } from '../../src/io/source.js';
import { readSafetensors } from '../../src/formats/safetensors/read.js';
import { writeSafetensors } from '../../src/formats/safetensors/write.js';
import { runPython } from '../kernels/helpers.js';
import { createHash } from 'node:crypto';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const DTYPES_ST = resolve(CORPUS, 'safetensors/generated/dtypes.safetensors');
const DTYPES_PT = resolve(CORPUS, 'pytorch/generated/dtypes.pt');
const dir = mkdtempSync(join(tmpdir(), 'modelsmith-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PARSE = `
import json, struct, sys
import numpy as np
NP = {'BOOL': np.bool_, 'U8': np.uint8, 'I8': np.int8, 'F8_E5M2': np.uint8, 'F8_E4M3': np.uint8,
      'I16': np.int16, 'U16': np.uint16, 'F16': np.float16, 'BF16': np.uint16, 'I32': np.int32,
      'U32': np.uint32, 'F32': np.float32, 'F64': np.float64, 'I64': np.int64, 'U64': np.uint64}
def parse(path):
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', None)
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info['data_offsets']
        arr = np.frombuffer(data[b:e], dtype=NP[info['dtype']]).reshape(info['shape'])
        out[name] = (info['dtype'], arr)
    assert max([i['data_offsets'][1] for i in header.values()] or [0]) == len(data), 'data does not end the file'
    return meta, out
`;

describe('Python reads what we write', () => {
  it('every tensor of the dtypes corpus file survives our writer; bf16/f16 bits equal torch', async () => {
    const orig = await readSafetensors(new MemorySource(new Uint8Array(readFileSync(DTYPES_ST)), DTYPES_ST));
    const sink = new MemorySink();
    // Metadata makes our layout differ from the original (header length, offsets), so this is not a file copy.
    await writeSafetensors({ tensors: orig.tensors, metadata: { format: 'pt', writer: 'modelsmith' } }, sink);
    const ours = join(dir, 'ours.safetensors');
    writeFileSync(ours, sink.bytes());

    const script = `${PARSE}
import torch
meta, mine = parse(sys.argv[1])
_, ref = parse(sys.argv[2])
assert meta == {'format': 'pt', 'writer': 'modelsmith'}, meta
assert sorted(mine) == sorted(ref), (sorted(mine), sorted(ref))
checked = 0
for name, (dt, a) in ref.items():
    dt2, b = mine[name]
    assert dt == dt2 and a.shape == b.shape and a.dtype == b.dtype, name
    assert a.tobytes() == b.tobytes(), name
    checked += 1
pt = torch.load(sys.argv[3])
TORCH = {'F16': torch.float16, 'BF16': torch.bfloat16, 'F32': torch.float32, 'F64': torch.float64,
         'I8': torch.int8, 'U8': torch.uint8, 'I16': torch.int16, 'I32': torch.int32, 'I64': torch.int64, 'BOOL': torch.bool}
bits = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}
against_torch = []
for name, t in pt.items():
    if name not in mine: continue
    dt, a = mine[name]
    tt = torch.frombuffer(bytearray(a.tobytes()), dtype=TORCH[dt]).reshape(a.shape) if a.size else torch.empty(a.shape, dtype=TORCH[dt])
    assert tt.dtype == t.dtype and tuple(tt.shape) == tuple(t.shape), name
    if t.dtype in bits:
        assert torch.equal(tt.view(bits[t.dtype]), t.view(bits[t.dtype])), name + ' bits differ'
    else:
        assert torch.equal(tt, t), name
    against_torch.append(name)
print(json.dumps({'checked': checked, 'torch': sorted(against_torch)}))
`;
    const res = JSON.parse(new TextDecoder().decode(runPython(script, [ours, DTYPES_ST, DTYPES_PT])));
    expect(res.checked).toBe(17);
    expect(res.torch).toEqual(['bf16', 'bool', 'f16', 'f16_specials', 'f32', 'f32_specials', 'f64', 'i16', 'i32', 'i64', 'i8', 'u8']);
  });
});

describe('we read what Python writes', () => {
  it('an unpadded, spaced header from json.dumps with random bf16/f16/f32/i64 tensors', async () => {
    const path = join(dir, 'python.safetensors');
    const script = `
import json, struct, sys, hashlib
import torch
torch.manual_seed(7)
ts = {'w.bf16': torch.randn(5, 7).to(torch.bfloat16), 'w.f16': torch.randn(3, 3).half(), 'b': torch.randn(11),
      'idx': torch.arange(-3, 3, dtype=torch.int64), 'flag': torch.tensor([True, False, True])}
codes = {torch.bfloat16: 'BF16', torch.float16: 'F16', torch.float32: 'F32', torch.int64: 'I64', torch.bool: 'BOOL'}
header, blobs, off = {}, [], 0
for name in sorted(ts):  # name order, not the crate's dtype order
    raw = ts[name].contiguous().view(torch.uint8).numpy().tobytes() if ts[name].dtype != torch.bool else ts[name].numpy().tobytes()
    header[name] = {'dtype': codes[ts[name].dtype], 'shape': list(ts[name].shape), 'data_offsets': [off, off + len(raw)]}
    blobs.append(raw); off += len(raw)
header['__metadata__'] = {'format': 'pt'}
h = json.dumps(header).encode()
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
print(json.dumps({n: hashlib.sha256(b).hexdigest() for n, b in zip(sorted(ts), blobs)}))
`;
    const want = JSON.parse(new TextDecoder().decode(runPython(script, [path]))) as Record<string, string>;
    const set = await readSafetensors(new MemorySource(new Uint8Array(readFileSync(path)), path));
    expect(set.metadata).toEqual({ format: 'pt' });
    expect(set.tensors.map((t) => t.name).sort()).toEqual(Object.keys(want).sort());
    for (const t of set.tensors) expect(createHash('sha256').update(await t.load()).digest('hex'), t.name).toBe(want[t.name]);
    expect(set.tensors.find((t) => t.name === 'w.bf16')!.dtype).toBe('bfloat16');
  });
});
