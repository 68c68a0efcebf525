/**
 * Importing this module fills the op registry: each family registers its handlers as a side effect
 * of being loaded. The executor imports it, so `getOp` sees every op once the engine is loaded.
 */
import './elementwise.js';
import './activation.js';
import './matmul.js';
import './shape.js';
import './conv.js';
import './pool.js';
import './norm.js';
