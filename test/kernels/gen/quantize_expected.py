#!/usr/bin/python3
"""numpy oracle for the quantize kernel tests (test/kernels/quantize.test.ts).

Usage: quantize_expected.py JOBS_JSON
JOBS_JSON is a list of jobs (one Python start-up serves many cases). Each job reads its
little-endian inputs from stdin, in job order, and writes its result to stdout, in job order.

  {"op": "quant", "dtype": "int8"|"uint8", "shape": [...], "axis": k|null}
      stdin:  x float32[n], scale float32[C], zero_point int32[C]   (C = 1 when axis is none)
      stdout: np.clip(np.rint(x / scale) + zp, lo, hi).astype(dtype)  (all float32 arithmetic)
      NaN inputs give an undefined cast in numpy; the test ignores those positions.
  {"op": "dequant", "dtype": ..., "shape": [...], "axis": k|null}
      stdin:  q dtype[n], scale float32[C], zero_point int32[C]
      stdout: ((q - zp) * scale) as float32
  {"op": "block4", "mode": "int4"|"uint4-sym"|"uint4", "rows": r, "K": k, "block": b}
      stdin:  x float32[rows*K]
      stdout: scales float32[rows*kb], zero points uint8[rows*kb], codes int8[rows*K] (unpacked),
      using the per-block formulas documented in assembly/blockq.ts.
"""
import json
import sys
import numpy as np

F = np.float32


def read(dtype, count, buf, off):
    a = np.frombuffer(buf, dtype=dtype, count=count, offset=off)
    return a, off + a.nbytes


def params(buf, off, shape, axis, C):
    scale, off = read('<f4', C, buf, off)
    zp, off = read('<i4', C, buf, off)
    zp = zp.astype(F)
    if axis is not None:
        bshape = [1] * len(shape)
        bshape[axis] = C
        scale = scale.reshape(bshape)
        zp = zp.reshape(bshape)
    else:
        scale = scale[0]
        zp = zp[0]
    return scale, zp, off


def affine(op, dtype, shape, axis, buf, off):
    n = int(np.prod(shape, dtype=np.int64))
    axis = None if axis is None else axis % len(shape)
    C = 1 if axis is None else shape[axis]
    info = np.iinfo(dtype)
    if op == 'quant':
        x, off = read('<f4', n, buf, off)
        scale, zp, off = params(buf, off, shape, axis, C)
        x = x.reshape(shape)
        y = np.clip(np.rint(x / scale) + zp, info.min, info.max)
        return y.astype(dtype).tobytes(), off
    q, off = read(dtype, n, buf, off)
    scale, zp, off = params(buf, off, shape, axis, C)
    y = (q.reshape(shape).astype(F) - zp) * scale
    return y.astype('<f4').tobytes(), off


def block4(mode, rows, K, B, buf, off):
    x, off = read('<f4', rows * K, buf, off)
    kb = -(-K // B)
    xp = np.full((rows, kb * B), np.nan, dtype=F)  # NaN padding is ignored by the range
    xp[:, :K] = x.reshape(rows, K)
    xb = xp.reshape(rows, kb, B)
    nan = np.isnan(xb)
    lo = np.where(nan, F(np.inf), xb).min(axis=2)
    hi = np.where(nan, F(-np.inf), xb).max(axis=2)
    empty = lo > hi
    lo = np.where(empty, F(0), lo)
    hi = np.where(empty, F(0), hi)
    tiny = F(np.finfo(F).tiny)
    if mode == 'uint4':
        lo = np.minimum(lo, F(0))
        hi = np.maximum(hi, F(0))
        s = (hi - lo) / F(15)
        ok = s >= tiny
        zp = np.rint(-lo / s)
        zp = np.where(F(0) < zp, zp, F(0))
        zp = np.where(zp < F(15), zp, F(15))
        s = np.where(ok, s, F(1))
        zp = np.where(ok, zp, F(0))
    else:
        s = np.maximum(-lo, hi) / F(7)
        s = np.where(s >= tiny, s, F(1))
        zp = np.full(s.shape, F(8 if mode == 'uint4-sym' else 0))
    qlo, qhi = (F(-8), F(7)) if mode == 'int4' else (F(0), F(15))
    y = np.rint(xb / s[:, :, None]) + zp[:, :, None]
    y = np.where(qlo < y, y, qlo)  # also sends NaN to the low bound
    y = np.where(y < qhi, y, qhi)
    codes = y.reshape(rows, kb * B)[:, :K].astype(np.int8)
    return s.astype('<f4').tobytes() + zp.astype(np.uint8).tobytes() + codes.tobytes(), off


def main():
    buf = sys.stdin.buffer.read()
    off = 0
    out = []
    with np.errstate(all='ignore'):
        for job in json.loads(sys.argv[1]):
            if job['op'] in ('quant', 'dequant'):
                res, off = affine(job['op'], job['dtype'], job['shape'], job['axis'], buf, off)
            elif job['op'] == 'block4':
                res, off = block4(job['mode'], job['rows'], job['K'], job['block'], buf, off)
            else:
                raise SystemExit('unknown op ' + job['op'])
            out.append(res)
    if off != len(buf):
        raise SystemExit('stdin has %d bytes, jobs used %d' % (len(buf), off))
    sys.stdout.buffer.write(b''.join(out))


if __name__ == '__main__':
    main()
