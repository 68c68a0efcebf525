import type { ParseArgsConfig } from 'node:util';
import type { Out } from '../output.js';
import { inspectCommand } from './inspect.js';
import { convertCommand } from './convert.js';
import { demoCommand } from './demo.js';
import { evalCommand } from './eval.js';
import { quantizeCommand } from './quantize.js';
import { castCommand } from './cast.js';
import { pruneCommand } from './prune.js';
import { distillCommand } from './distill.js';

export interface Command {
  name: string;
  summary: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Returns the report object (printed under --json). Human output goes through `out`. */
  run(positionals: string[], values: Record<string, string | boolean | undefined>, out: Out): Promise<unknown>;
}

/** Verb registry: adding a verb is one file plus one line here. */
export const COMMANDS: Record<string, Command> = {
  [inspectCommand.name]: inspectCommand,
  [convertCommand.name]: convertCommand,
  [quantizeCommand.name]: quantizeCommand,
  [castCommand.name]: castCommand,
  [pruneCommand.name]: pruneCommand,
  [distillCommand.name]: distillCommand,
  [evalCommand.name]: evalCommand,
  [demoCommand.name]: demoCommand,
};
