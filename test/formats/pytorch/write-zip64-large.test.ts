/**
 * A real > 4 GiB archive (not the forced-zip64 flag): one 4 GiB + 64 B record, then records whose
 * headers sit past 0xFFFFFFFF. The payload is zeros written as holes of a sparse file, and its CRC is
 * handed to the writer (computed once with node:zlib at C speed), so the test costs seconds and no
 * disk space. Python's zipfile, an independent reader, then checks the central directory, the zip64
 * fields, the 64-byte alignment and the CRCs of the records stored past 4 GiB.
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, expect, it } from 'vitest';
import { ZipWriter } from '../../../src/formats/pytorch/zip-write.js';
import type { ByteSink } from '../../../src/io/source.js';
import { runPython } from '../../kernels/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'pt-zip64-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CHUNK = new Uint8Array(64 << 20);
const BIG = 2 ** 32 + 64;

/** Appends to a file, leaving a hole instead of writing the shared zero chunk. */
class SparseFileSink implements ByteSink {
  position = 0;
  constructor(private readonly fd: number) {}
  async write(chunk: Uint8Array): Promise<void> {
    if (chunk !== CHUNK) writeSync(this.fd, chunk, 0, chunk.byteLength, this.position);
    this.position += chunk.byteLength;
  }
}

function* zeros(n: number): Generator<Uint8Array> {
  let left = n;
  while (left >= CHUNK.byteLength) {
    yield CHUNK;
    left -= CHUNK.byteLength;
  }
  if (left) yield new Uint8Array(left);
}

const INSPECT_PY = `
import sys, json, struct, zipfile
path = sys.argv[1]
z = zipfile.ZipFile(path)
out = []
with open(path, 'rb') as f:
    for i in z.infolist():
        f.seek(i.header_offset)
        h = f.read(30)
        n, e = struct.unpack('<HH', h[26:30])
        f.seek(i.header_offset + 30 + n)
        extra = f.read(e)
        ids, p = [], 0
        while p < len(extra):
            hid, ln = struct.unpack('<HH', extra[p:p+4]); ids.append(hid); p += 4 + ln
        rec = {'name': i.filename, 'offset': i.header_offset, 'size': i.file_size, 'crc': i.CRC,
               'data': i.header_offset + 30 + n + e, 'extras': ids}
        if i.file_size < 1000:
            rec['hex'] = z.read(i.filename).hex()  # zipfile checks the CRC here
        out.append(rec)
import torch
r = torch._C.PyTorchFileReader(path)
print(json.dumps({'entries': out, 'torch': {k: bytes(r.get_record(k)).hex() for k in ['data.pkl', 'data/1', 'version']}}))
`;

it('writes zip64 sizes and offsets past 4 GiB that zipfile reads back, data still 64-byte aligned', async () => {
  let crc = 0;
  for (const c of zeros(BIG)) crc = zlibCrc32(c, crc);

  const path = join(dir, 'big.pt');
  const fd = openSync(path, 'w');
  const small = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
  let total = 0;
  try {
    const zip = new ZipWriter(new SparseFileSink(fd));
    await zip.add('big/data.pkl', Uint8Array.from([0x80, 0x02, 0x2e]));
    await zip.addStream('big/data/0', BIG, zeros(BIG), { crc });
    expect(zip.position).toBeGreaterThan(0xffffffff);
    await zip.add('big/data/1', small);
    await zip.add('big/version', new TextEncoder().encode('3\n'));
    total = (await zip.finish()).bytes;
    ftruncateSync(fd, total);
  } finally {
    closeSync(fd);
  }

  type Entry = { name: string; offset: number; size: number; crc: number; data: number; extras: number[]; hex?: string };
  const seen = JSON.parse(Buffer.from(runPython(INSPECT_PY, [path])).toString('utf8')) as { entries: Entry[]; torch: Record<string, string> };
  const entries = seen.entries;
  expect(entries.map((e) => e.name)).toEqual(['big/data.pkl', 'big/data/0', 'big/data/1', 'big/version']);
  const [pkl, big, after, version] = entries as [Entry, Entry, Entry, Entry];
  for (const e of entries) expect(e.data % 64, e.name).toBe(0);
  // Zip64 extra (id 1) only where a value overflows 32 bits, always before the FB padding field.
  expect(pkl.extras).toEqual([0x4246]);
  expect(big.extras).toEqual([1, 0x4246]);
  expect(big.size).toBe(BIG);
  expect(big.crc).toBe(crc);
  expect(after.offset).toBeGreaterThan(0xffffffff);
  expect(after.extras).toEqual([1, 0x4246]);
  expect(after.hex).toBe(Buffer.from(small).toString('hex'));
  expect(version.offset).toBeGreaterThan(0xffffffff);
  expect(Buffer.from(version.hex!, 'hex').toString()).toBe('3\n');
  expect(total).toBeGreaterThan(BIG);
  // torch's own reader (miniz) finds the records behind the 4 GiB one through the zip64 fields.
  expect(seen.torch).toEqual({ 'data.pkl': '80022e', 'data/1': Buffer.from(small).toString('hex'), version: Buffer.from('3\n').toString('hex') });
});
