// Convolution and pooling kernels for the execution engine, NCHW float32, one image (or a run of
// planes) per call. 1-D operations are the 2-D ones with H = 1; the host maps them.
//
// Convolution is im2col + GEMM: `im2col_f32` lays out the receptive fields of one image as a
// [C·kH·kW, oH·oW] matrix so the conv becomes one GEMM per group, and `col2im_f32` is its adjoint
// (scatter-add), used for the input gradient. Pooling walks windows directly; max pooling records
// the argmax (index within the plane) so backward is a scatter without recomputing the window.

// First output column whose input column ow*s - pad + off lies at or right of 0, and one past the
// last that lies left of `len`: the valid span of one im2col row, so the inner loop needs no test.
// @ts-ignore: decorator
@inline function spanLo(pad: i32, off: i32, s: i32): i32 {
  const need = pad - off; // ow*s >= need
  return need <= 0 ? 0 : (need + s - 1) / s;
}
// @ts-ignore: decorator
@inline function spanHi(len: i32, pad: i32, off: i32, s: i32, outLen: i32): i32 {
  const lim = len + pad - off; // ow*s < lim
  if (lim <= 0) return 0;
  return min(outLen, (lim + s - 1) / s);
}

/** col[(c·kH + i)·kW + j, oh·oW + ow] = x[c, oh·sH − padT + i·dH, ow·sW − padL + j·dW], 0 outside. */
export function im2col_f32(
  x: usize, col: usize,
  C: i32, H: i32, W: i32, kH: i32, kW: i32,
  padT: i32, padL: i32, sH: i32, sW: i32, dH: i32, dW: i32,
  oH: i32, oW: i32,
): void {
  const plane = <usize>H * <usize>W;
  const rowLen = <usize>oH * <usize>oW;
  let r: usize = 0;
  for (let c = 0; c < C; c++) {
    const xc = x + ((<usize>c * plane) << 2);
    for (let i = 0; i < kH; i++) {
      for (let j = 0; j < kW; j++) {
        const dst = col + ((r * rowLen) << 2);
        const offW = j * dW;
        const lo = spanLo(padL, offW, sW);
        const hi = max(lo, spanHi(W, padL, offW, sW, oW));
        for (let oh = 0; oh < oH; oh++) {
          const ih = oh * sH - padT + i * dH;
          const d = dst + ((<usize>oh * <usize>oW) << 2);
          if (ih < 0 || ih >= H) {
            memory.fill(d, 0, <usize>oW << 2);
            continue;
          }
          if (lo > 0) memory.fill(d, 0, <usize>lo << 2);
          if (hi < oW) memory.fill(d + (<usize>hi << 2), 0, <usize>(oW - hi) << 2);
          const srcRow = xc + ((<usize>ih * <usize>W) << 2);
          const iw0 = lo * sW - padL + offW;
          if (sW == 1) {
            memory.copy(d + (<usize>lo << 2), srcRow + (<usize>iw0 << 2), <usize>(hi - lo) << 2);
          } else {
            let ow = lo;
            if (ASC_FEATURE_SIMD) {
              // Stride 2 (downsampling convs): even lanes of two loads; stop while the 8th column is in the row.
              if (sW == 2) {
                for (; ow + 4 <= hi && iw0 + ((ow - lo) << 1) + 8 <= W; ow += 4) {
                  const src = srcRow + (<usize>(iw0 + ((ow - lo) << 1)) << 2);
                  v128.store(d + (<usize>ow << 2), v128.shuffle<f32>(v128.load(src), v128.load(src + 16), 0, 2, 4, 6));
                }
              }
            }
            let s = srcRow + (<usize>(iw0 + (ow - lo) * sW) << 2);
            const step = <usize>sW << 2;
            for (; ow < hi; ow++) {
              store<f32>(d + (<usize>ow << 2), load<f32>(s));
              s += step;
            }
          }
        }
        r++;
      }
    }
  }
}

/** Adjoint of im2col: dx[c, ih, iw] += col[…] for every field position that read (ih, iw). dx is accumulated, not cleared. */
export function col2im_f32(
  col: usize, dx: usize,
  C: i32, H: i32, W: i32, kH: i32, kW: i32,
  padT: i32, padL: i32, sH: i32, sW: i32, dH: i32, dW: i32,
  oH: i32, oW: i32,
): void {
  const plane = <usize>H * <usize>W;
  const rowLen = <usize>oH * <usize>oW;
  let r: usize = 0;
  for (let c = 0; c < C; c++) {
    const xc = dx + ((<usize>c * plane) << 2);
    for (let i = 0; i < kH; i++) {
      for (let j = 0; j < kW; j++) {
        const src = col + ((r * rowLen) << 2);
        const offW = j * dW;
        const lo = spanLo(padL, offW, sW);
        const hi = max(lo, spanHi(W, padL, offW, sW, oW));
        for (let oh = 0; oh < oH; oh++) {
          const ih = oh * sH - padT + i * dH;
          if (ih < 0 || ih >= H) continue;
          const s = src + ((<usize>oh * <usize>oW) << 2);
          const dstRow = xc + ((<usize>ih * <usize>W) << 2);
          const iw0 = lo * sW - padL + offW;
          if (sW == 1) addRow(dstRow + (<usize>iw0 << 2), s + (<usize>lo << 2), hi - lo);
          else {
            let d = dstRow + (<usize>iw0 << 2);
            const step = <usize>sW << 2;
            for (let ow = lo; ow < hi; ow++) {
              store<f32>(d, load<f32>(d) + load<f32>(s + (<usize>ow << 2)));
              d += step;
            }
          }
        }
        r++;
      }
    }
  }
}

// dst[0..n) += src[0..n)
// @ts-ignore: decorator
@inline function addRow(dst: usize, src: usize, n: i32): void {
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    for (; k + 4 <= n; k += 4) {
      const o = <usize>k << 2;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
    }
  }
  for (; k < n; k++) {
    const o = <usize>k << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}

/**
 * Max pooling over `planes` planes of H×W. Padding never wins (it is −∞). `idx` receives, per output,
 * the index ih·W + iw of the maximum within its plane (first one on ties), or −1 when the window
 * holds no input element (then y = −∞). NaN propagates: a NaN input is taken as the maximum.
 *
 * Loops run tap by tap over a whole output row (the valid span of each tap is computed once, as in
 * im2col), so there is no bounds test per element and strides 1 and 2 vectorise: per-output loops
 * over 2×2 windows spent most of their time on bounds tests and branch misses.
 */
export function maxpool2d_f32(
  x: usize, y: usize, idx: usize, planes: i32,
  H: i32, W: i32, oH: i32, oW: i32, kH: i32, kW: i32,
  padT: i32, padL: i32, sH: i32, sW: i32, dH: i32, dW: i32,
): void {
  const plane = <usize>H * <usize>W;
  const oplane = <usize>oH * <usize>oW;
  for (let p = 0; p < planes; p++) {
    const xp = x + ((<usize>p * plane) << 2);
    const yp = y + ((<usize>p * oplane) << 2);
    const ip = idx + ((<usize>p * oplane) << 2);
    for (let oh = 0; oh < oH; oh++) {
      const yr = yp + ((<usize>oh * <usize>oW) << 2);
      const ir = ip + ((<usize>oh * <usize>oW) << 2);
      for (let ow = 0; ow < oW; ow++) {
        store<f32>(yr + (<usize>ow << 2), -Infinity);
        store<i32>(ir + (<usize>ow << 2), -1);
      }
      for (let i = 0; i < kH; i++) {
        const ih = oh * sH - padT + i * dH;
        if (ih < 0 || ih >= H) continue;
        const xr = xp + ((<usize>ih * <usize>W) << 2);
        for (let j = 0; j < kW; j++) {
          const off = j * dW;
          const lo = spanLo(padL, off, sW);
          const hi = max(lo, spanHi(W, padL, off, sW, oW));
          // Input column of output `ow` is ow·sW + c0.
          const c0 = off - padL;
          maxTap(xr, yr, ir, ih * W, lo, hi, sW, c0, W);
        }
      }
    }
  }
}

// One tap over outputs [lo, hi) of a row: y[ow] = max(y[ow], x[ow·sW + c0]) with the argmax.
// @ts-ignore: decorator
@inline function maxTap(xr: usize, yr: usize, ir: usize, rowBase: i32, lo: i32, hi: i32, sW: i32, c0: i32, W: i32): void {
  let ow = lo;
  if (ASC_FEATURE_SIMD) {
    if (sW == 1 || sW == 2) {
      const lanes = i32x4.mul(i32x4(0, 1, 2, 3), i32x4.splat(sW));
      const none = i32x4.splat(0);
      // sW = 2 loads 8 columns for 4 outputs: stop while the 8th is still inside the row.
      for (; ow + 4 <= hi && (ow + 3) * sW + c0 + sW - 1 < W; ow += 4) {
        const col = ow * sW + c0;
        const src = xr + (<usize>col << 2);
        let v: v128;
        if (sW == 1) v = v128.load(src);
        else v = v128.shuffle<f32>(v128.load(src), v128.load(src + 16), 0, 2, 4, 6);
        const o = <usize>ow << 2;
        const b = v128.load(yr + o);
        const a = v128.load(ir + o);
        // Take v where nothing was taken yet, or where v is not ≤ the max (bigger or NaN) and the max is not NaN.
        const take = v128.or(i32x4.lt_s(a, none), v128.andnot(f32x4.eq(b, b), f32x4.le(v, b)));
        v128.store(yr + o, v128.bitselect(v, b, take));
        v128.store(ir + o, v128.bitselect(i32x4.add(i32x4.splat(rowBase + col), lanes), a, take));
      }
    }
  }
  for (; ow < hi; ow++) {
    const col = ow * sW + c0;
    const v = load<f32>(xr + (<usize>col << 2));
    const o = <usize>ow << 2;
    const b = load<f32>(yr + o);
    const a = load<i32>(ir + o);
    // Branch-free: on random data the comparison is a coin flip, and mispredictions dominated.
    // The float is selected with a bit mask: V8 lowers a float `select` to a branch (Binaryen
    // turns a select of reinterpreted bits back into one), measured 8x slower on random data.
    const take = <i32>(a < 0) | (<i32>!(v <= b) & <i32>(b == b));
    const m = -take;
    store<i32>(yr + o, (reinterpret<i32>(v) & m) | (reinterpret<i32>(b) & ~m));
    store<i32>(ir + o, select<i32>(rowBase + col, a, take != 0));
  }
}

/** dx[p, idx[p, o]] += dy[p, o]; dx is accumulated (overlapping windows may pick the same input). */
export function maxpool2d_bwd_f32(dy: usize, idx: usize, dx: usize, planes: i32, inPlane: i32, outPlane: i32): void {
  for (let p = 0; p < planes; p++) {
    const dyp = dy + ((<usize>p * <usize>outPlane) << 2);
    const ip = idx + ((<usize>p * <usize>outPlane) << 2);
    const dxp = dx + ((<usize>p * <usize>inPlane) << 2);
    for (let o = 0; o < outPlane; o++) {
      const at = load<i32>(ip + (<usize>o << 2));
      if (at < 0) continue;
      const d = dxp + (<usize>at << 2);
      store<f32>(d, load<f32>(d) + load<f32>(dyp + (<usize>o << 2)));
    }
  }
}

// Divisor of one average window. Taps are counted inside the input (count_include_pad = 0) or
// inside the padded input [−pad, len + padEnd) (count_include_pad = 1, PyTorch's convention: the
// part of a ceil_mode window hanging beyond the end padding never counts).
// @ts-ignore: decorator
@inline function taps(start: i32, k: i32, d: i32, lo: i32, hi: i32): i32 {
  let n = 0;
  for (let i = 0; i < k; i++) {
    const v = start + i * d;
    if (v >= lo && v < hi) n++;
  }
  return n;
}

/** Average pooling; see `taps` for the divisor. padB/padR only matter for count_include_pad. Tap-major like max pooling. */
export function avgpool2d_f32(
  x: usize, y: usize, planes: i32,
  H: i32, W: i32, oH: i32, oW: i32, kH: i32, kW: i32,
  padT: i32, padL: i32, padB: i32, padR: i32, sH: i32, sW: i32, dH: i32, dW: i32,
  includePad: i32,
): void {
  const plane = <usize>H * <usize>W;
  const oplane = <usize>oH * <usize>oW;
  for (let p = 0; p < planes; p++) {
    const xp = x + ((<usize>p * plane) << 2);
    const yp = y + ((<usize>p * oplane) << 2);
    for (let oh = 0; oh < oH; oh++) {
      const yr = yp + ((<usize>oh * <usize>oW) << 2);
      memory.fill(yr, 0, <usize>oW << 2);
      const h0 = oh * sH - padT;
      for (let i = 0; i < kH; i++) {
        const ih = h0 + i * dH;
        if (ih < 0 || ih >= H) continue;
        const xr = xp + ((<usize>ih * <usize>W) << 2);
        for (let j = 0; j < kW; j++) {
          const off = j * dW;
          const lo = spanLo(padL, off, sW);
          const hi = max(lo, spanHi(W, padL, off, sW, oW));
          sumTap(xr, yr, lo, hi, sW, off - padL, W);
        }
      }
      const nh = includePad ? taps(h0, kH, dH, -padT, H + padB) : taps(h0, kH, dH, 0, H);
      for (let ow = 0; ow < oW; ow++) {
        const w0 = ow * sW - padL;
        const n = nh * (includePad ? taps(w0, kW, dW, -padL, W + padR) : taps(w0, kW, dW, 0, W));
        const o = yr + (<usize>ow << 2);
        store<f32>(o, n > 0 ? load<f32>(o) / <f32>n : 0);
      }
    }
  }
}

// y[ow] += x[ow·sW + c0] over outputs [lo, hi) of a row.
// @ts-ignore: decorator
@inline function sumTap(xr: usize, yr: usize, lo: i32, hi: i32, sW: i32, c0: i32, W: i32): void {
  let ow = lo;
  if (ASC_FEATURE_SIMD) {
    if (sW == 1 || sW == 2) {
      for (; ow + 4 <= hi && (ow + 3) * sW + c0 + sW - 1 < W; ow += 4) {
        const src = xr + (<usize>(ow * sW + c0) << 2);
        let v: v128;
        if (sW == 1) v = v128.load(src);
        else v = v128.shuffle<f32>(v128.load(src), v128.load(src + 16), 0, 2, 4, 6);
        const o = yr + (<usize>ow << 2);
        v128.store(o, f32x4.add(v128.load(o), v));
      }
    }
  }
  for (; ow < hi; ow++) {
    const o = yr + (<usize>ow << 2);
    store<f32>(o, load<f32>(o) + load<f32>(xr + (<usize>(ow * sW + c0) << 2)));
  }
}

/**
 * Adjoint of avgpool2d_f32: dx (accumulated) += dy / divisor over each window's input taps.
 * `dy` is scaled by 1/divisor in place (it is the host's arena copy), so the scatter runs tap by
 * tap over whole rows like the forward pass.
 */
export function avgpool2d_bwd_f32(
  dy: usize, dx: usize, planes: i32,
  H: i32, W: i32, oH: i32, oW: i32, kH: i32, kW: i32,
  padT: i32, padL: i32, padB: i32, padR: i32, sH: i32, sW: i32, dH: i32, dW: i32,
  includePad: i32,
): void {
  const plane = <usize>H * <usize>W;
  const oplane = <usize>oH * <usize>oW;
  for (let p = 0; p < planes; p++) {
    const dxp = dx + ((<usize>p * plane) << 2);
    const dyp = dy + ((<usize>p * oplane) << 2);
    for (let oh = 0; oh < oH; oh++) {
      const h0 = oh * sH - padT;
      const dyr = dyp + ((<usize>oh * <usize>oW) << 2);
      const nh = includePad ? taps(h0, kH, dH, -padT, H + padB) : taps(h0, kH, dH, 0, H);
      for (let ow = 0; ow < oW; ow++) {
        const w0 = ow * sW - padL;
        const n = nh * (includePad ? taps(w0, kW, dW, -padL, W + padR) : taps(w0, kW, dW, 0, W));
        const o = dyr + (<usize>ow << 2);
        store<f32>(o, n > 0 ? load<f32>(o) / <f32>n : 0);
      }
      for (let i = 0; i < kH; i++) {
        const ih = h0 + i * dH;
        if (ih < 0 || ih >= H) continue;
        const dxr = dxp + ((<usize>ih * <usize>W) << 2);
        for (let j = 0; j < kW; j++) {
          const off = j * dW;
          const lo = spanLo(padL, off, sW);
          const hi = max(lo, spanHi(W, padL, off, sW, oW));
          const c0 = off - padL;
          if (sW == 1) addRow(dxr + (<usize>(lo + c0) << 2), dyr + (<usize>lo << 2), hi - lo);
          else {
            for (let ow = lo; ow < hi; ow++) {
              const d = dxr + (<usize>(ow * sW + c0) << 2);
              store<f32>(d, load<f32>(d) + load<f32>(dyr + (<usize>ow << 2)));
            }
          }
        }
      }
    }
  }
}

/**
 * Per-channel sums over [N, C, S] (out[c] += Σ_n,s x[n,c,s]) and, when `w` ≠ 0, dot[c] += Σ x·w.
 * Bias and BatchNorm gradients. Each plane is summed in float32 lanes then added in float64, so
 * the error does not grow with the batch.
 */
export function channel_sums_f32(x: usize, w: usize, out: usize, dot: usize, N: i32, C: i32, S: i32): void {
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const off = ((<usize>n * <usize>C + <usize>c) * <usize>S) << 2;
      const xp = x + off;
      let s: f64 = 0;
      let t: f64 = 0;
      let k = 0;
      if (ASC_FEATURE_SIMD) {
        let vs = f32x4.splat(0);
        let vt = f32x4.splat(0);
        for (; k + 4 <= S; k += 4) {
          const v = v128.load(xp + (<usize>k << 2));
          vs = f32x4.add(vs, v);
          if (w) vt = f32x4.add(vt, f32x4.mul(v, v128.load(w + off + (<usize>k << 2))));
        }
        s = <f64>f32x4.extract_lane(vs, 0) + <f64>f32x4.extract_lane(vs, 1) + <f64>f32x4.extract_lane(vs, 2) + <f64>f32x4.extract_lane(vs, 3);
        t = <f64>f32x4.extract_lane(vt, 0) + <f64>f32x4.extract_lane(vt, 1) + <f64>f32x4.extract_lane(vt, 2) + <f64>f32x4.extract_lane(vt, 3);
      }
      for (; k < S; k++) {
        const v = load<f32>(xp + (<usize>k << 2));
        s += <f64>v;
        if (w) t += <f64>v * <f64>load<f32>(w + off + (<usize>k << 2));
      }
      const oc = out + (<usize>c << 2);
      store<f32>(oc, <f32>(<f64>load<f32>(oc) + s));
      if (w) {
        const dc = dot + (<usize>c << 2);
        store<f32>(dc, <f32>(<f64>load<f32>(dc) + t));
      }
    }
  }
}
