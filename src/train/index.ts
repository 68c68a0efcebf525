/** Training on the execution engine: losses, optimisers, masks, schedules, data batches and the loop. */
export * from './types.js';
export * from './losses.js';
export * from './masks.js';
export * from './optim.js';
export * from './schedule.js';
export * from './shuffle.js';
export * from './data.js';
export * from './loop.js';
export * from './stream.js';
