/** Tests use the same Node DataIo as the CLI. */
export { nodeDataIo as nodeIo } from '../../src/platform/data-io.js';
