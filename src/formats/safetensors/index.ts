/** safetensors: single-file and sharded read/write (see header.ts for the validation rules). */
export { readSafetensors, openSafetensors, type SafetensorsFile } from './read.js';
export { writeSafetensors, planSafetensors, type SafetensorsInput, type SafetensorsPlan, type PlannedTensor } from './write.js';
export {
  readShardedSafetensors,
  writeShardedSafetensors,
  splitIntoShards,
  MAX_INDEX_BYTES,
  type ShardIndex,
  type ShardedWriteOptions,
} from './shard.js';
export { parseSize } from './size.js';
export { headerLength, parseHeader, MAX_HEADER_BYTES, PREFIX_BYTES, METADATA_KEY, type HeaderTensor, type ParsedHeader } from './header.js';
export { dtypeFromSafetensors, safetensorsCode } from './dtype.js';
