"""Expected cast results from numpy / torch, for test/kernels/cast.test.ts.

Usage: python3 cast_expected.py MODE < input > output   (raw little-endian bytes both ways)
  f32-f16   float32 -> float16 bits   numpy  x.astype(np.float16)
  f16-f32   float16 bits -> float32   numpy  h.astype(np.float32)
  f32-bf16  float32 -> bfloat16 bits  torch  t.to(torch.bfloat16)
  bf16-f32  bfloat16 bits -> float32  torch  t.to(torch.float32)
  f64-f32   float64 -> float32        numpy  x.astype(np.float32)
"""
import sys
import warnings

import numpy as np


def main() -> None:
    mode = sys.argv[1]
    data = sys.stdin.buffer.read()
    # Overflow to Inf and NaN inputs are the point of the test, not a problem.
    warnings.simplefilter("ignore")
    if mode == "f32-f16":
        out = np.frombuffer(data, dtype="<f4").astype(np.float16)
    elif mode == "f16-f32":
        out = np.frombuffer(data, dtype="<f2").astype(np.float32)
    elif mode == "f64-f32":
        out = np.frombuffer(data, dtype="<f8").astype(np.float32)
    elif mode in ("f32-bf16", "bf16-f32"):
        import torch

        if mode == "f32-bf16":
            t = torch.from_numpy(np.frombuffer(data, dtype="<f4").copy())
            out = t.to(torch.bfloat16).view(torch.int16).numpy()
        else:
            t = torch.from_numpy(np.frombuffer(data, dtype="<i2").copy()).view(torch.bfloat16)
            out = t.to(torch.float32).numpy()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    sys.stdout.buffer.write(np.ascontiguousarray(out).tobytes())


if __name__ == "__main__":
    main()
