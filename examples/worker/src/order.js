/**
 * A pass over a WeightSet returns LazyTensors that read their source tensor when loaded, in whatever
 * order the writer asks (safetensors orders by dtype and name). A request body can only be read
 * forward, so the outputs are loaded here in the order of their source tensors in the file, and kept
 * (compressed) until the writer takes them; each is dropped as soon as it has been written.
 */

/** File offset of the input tensor an output tensor comes from: same name, or the name minus `.suffix`es (`w.scale` → `w`). */
function sourceOffset(offsets, name) {
  let n = name;
  for (;;) {
    const o = offsets.get(n);
    if (o !== undefined) return o;
    const dot = n.lastIndexOf('.');
    if (dot <= 0) return Number.POSITIVE_INFINITY;
    n = n.slice(0, dot);
  }
}

export async function materializeInInputOrder(input, output, afterEach = () => {}) {
  const offsets = new Map(input.tensors.map((t) => [t.name, Number(t.extra?.fileOffset ?? Number.POSITIVE_INFINITY)]));
  const order = output.tensors.map((t, i) => ({ t, i, at: sourceOffset(offsets, t.name) })).sort((a, b) => a.at - b.at || a.i - b.i);
  const loaded = new Array(output.tensors.length);
  let lastAt;
  for (const { t, i, at } of order) {
    // Outputs of the same source tensor load back to back (the pass caches its last result).
    if (lastAt !== undefined && at !== lastAt) afterEach();
    loaded[i] = await t.load();
    lastAt = at;
  }
  afterEach();
  const tensors = output.tensors.map((t, i) => ({
    ...t,
    load: async () => {
      const bytes = loaded[i];
      loaded[i] = undefined;
      if (bytes === undefined) throw new Error(`tensor '${t.name}' loaded twice`);
      return bytes;
    },
  }));
  return { ...output, tensors };
}
