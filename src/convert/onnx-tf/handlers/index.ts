/** Loads every op family into the registry (side-effect imports, one file per family). */
import './activation.js';
import './attention.js';
import './const.js';
import './conv.js';
import './elementwise.js';
import './indexing.js';
import './integer.js';
import './loss.js';
import './matmul.js';
import './misc.js';
import './ms-quant.js';
import './norm.js';
import './pool.js';
import './quant.js';
import './reduce.js';
import './resize.js';
import './shape.js';
export { handlerFor, supportedOps } from '../registry.js';
