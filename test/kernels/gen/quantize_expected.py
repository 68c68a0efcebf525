#!/usr/bin/python3
"""numpy oracle for the quantize kernel tests (test/kernels/quantize.test.ts).

Reads little-endian binary input from stdin and writes the numpy result to stdout.

  quant <int8|uint8> <shape,csv> <axis|none>
      stdin:  x float32[n], scale float32[C], zero_point int32[C]   (C = 1 when axis is none)
      stdout: np.clip(np.rint(x / scale) + zp, lo, hi).astype(dtype)  (all float32 arithmetic)
      NaN inputs give an undefined cast in numpy; the test ignores those positions.
  dequant <int8|uint8> <shape,csv> <axis|none>
      stdin:  q dtype[n], scale float32[C], zero_point int32[C]
      stdout: ((q - zp) * scale) as float32
  block4 <int4|uint4-sym|uint4> <rows> <K> <block_size>
      stdin:  x float32[rows*K]
      stdout: scales float32[rows*kb], zero points uint8[rows*kb], codes int8[rows*K] (unpacked),
      using the per-block formulas documented in assembly/blockq.ts.
"""
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
    return scale, zp


def affine(op, dtype, shape_s, axis_s, buf):
    shape = [int(d) for d in shape_s.split(',')] if shape_s else []
    n = int(np.prod(shape, dtype=np.int64))
    axis = None if axis_s == 'none' else int(axis_s) % len(shape)
    C = 1 if axis is None else shape[axis]
    info = np.iinfo(dtype)
    if op == 'quant':
        x, off = read('<f4', n, buf, 0)
        scale, zp = params(buf, off, shape, axis, C)
        x = x.reshape(shape)
        y = np.clip(np.rint(x / scale) + zp, info.min, info.max)
        return y.astype(dtype).tobytes()
    q, off = read(dtype, n, buf, 0)
    scale, zp = params(buf, off, shape, axis, C)
    y = (q.reshape(shape).astype(F) - zp) * scale
    return y.astype('<f4').tobytes()


def block4(mode, rows, K, B, buf):
    x, _ = read('<f4', rows * K, buf, 0)
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
    return s.astype('<f4').tobytes() + zp.astype(np.uint8).tobytes() + codes.tobytes()


def main():
    buf = sys.stdin.buffer.read()
    a = sys.argv[1:]
    with np.errstate(all='ignore'):
        if a[0] in ('quant', 'dequant'):
            out = affine(a[0], a[1], a[2], a[3], buf)
        elif a[0] == 'block4':
            out = block4(a[1], int(a[2]), int(a[3]), int(a[4]), buf)
        else:
            raise SystemExit('unknown command ' + a[0])
    sys.stdout.buffer.write(out)


if __name__ == '__main__':
    main()
