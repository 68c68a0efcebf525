// Kernel module entry. Raw-pointer ABI: every kernel takes byte offsets into linear memory and
// element counts; no GC objects cross the boundary. The host owns all memory above __heap_base.
// One family per file; each re-exported here.
export * from './stats';
export * from './quantize';
export * from './blockq';
export * from './cast';
export * from './prune';
export * from './layout';
export * from './gemm';
export * from './conv';

// The host's arena starts above static data; AssemblyScript does not export __heap_base itself.
export function heap_base(): usize {
  return __heap_base;
}
