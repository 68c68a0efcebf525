/**
 * `modelsmith <verb> <input> [-o output] [options]`. Parses arguments, runs the verb through the
 * library API, and maps every failure to one line naming its error code plus a non-zero exit.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCodes, ModelsmithError, isModelsmithError } from '../core/errors.js';
import { makeOut, jsonReplacer } from './output.js';
import { COMMANDS, type Command } from './commands/index.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Verbs announced before they exist (none now): they fail with E_UNSUPPORTED naming where they are tracked. */
const VERBS_PLANNED: Record<string, string> = {};

/** Verbs that write model files, and so take `--no-fsync`. */
const WRITING_VERBS: ReadonlySet<string> = new Set(['convert', 'quantize', 'cast', 'prune', 'distill']);

const NO_FSYNC_HELP = `output files:
  --no-fsync   skip the fsync before each output is renamed into place. Faster on big files (syncing
               can cost as much as the rest of the run) and still atomic: the output appears complete
               under its name or not at all, and an input is never overwritten. What is given up is
               durability: a power loss or kernel crash shortly after the run can leave the output
               empty or truncated, as after a plain cp. Use it for outputs you can recreate.`;

function usage(): string {
  const lines = [
    'modelsmith — convert and compress model files (no Python, no native code)',
    '',
    'usage: modelsmith <verb> <input> [-o output] [options]',
    '',
    'verbs:',
    ...Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(9)} ${c.summary}`),
    ...Object.entries(VERBS_PLANNED).map(([v, where]) => `  ${v.padEnd(9)} (not available yet: ${where})`),
    '',
    'common options:',
    '  --json     print exactly one JSON report object on stdout (human text goes to stderr)',
    '  --quiet    no progress on stderr',
    '  --no-fsync do not fsync outputs (convert, quantize, cast, prune, distill): faster, still atomic, not',
    '             durable across a power loss or kernel crash (see a verb\'s --help)',
    '  -h, --help help for a verb: modelsmith <verb> --help',
    '',
    'Failures print one line "modelsmith: E_CODE: message (file, tensor, byte offset)" and exit non-zero.',
  ];
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  // `modelsmith inspect big.pt | head`: a closed pipe ends the output, it is not a crash.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(EXIT_OK);
      throw e;
    });
  }
  const wantsJson = argv.includes('--json');
  const verb = argv[0];
  try {
    if (verb === undefined || verb === '-h' || verb === '--help' || verb === 'help') {
      process.stdout.write(usage() + '\n');
      return verb === undefined ? EXIT_USAGE : EXIT_OK;
    }
    if (verb === '--version' || verb === '-v') {
      process.stdout.write('modelsmith 0.1.0\n');
      return EXIT_OK;
    }
    const cmd: Command | undefined = COMMANDS[verb];
    if (!cmd) {
      if (VERBS_PLANNED[verb]) {
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `'${verb}' is not available yet (tracked in the ${VERBS_PLANNED[verb]})`);
      }
      throw new ModelsmithError(ErrorCodes.USAGE, `unknown verb '${verb}' (run modelsmith --help)`);
    }
    const config: ParseArgsConfig = {
      args: argv.slice(1),
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        output: { type: 'string', short: 'o' },
        ...(WRITING_VERBS.has(verb) ? { 'no-fsync': { type: 'boolean' } } : {}),
        ...cmd.options,
      },
    };
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs(config);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.USAGE, `${(e as Error).message} (run modelsmith ${verb} --help)`);
    }
    const values = parsed.values as Record<string, string | boolean | undefined>;
    if (values.help) {
      process.stdout.write(cmd.help + (WRITING_VERBS.has(verb) ? `\n\n${NO_FSYNC_HELP}` : '') + '\n');
      return EXIT_OK;
    }
    const out = makeOut(Boolean(values.json), Boolean(values.quiet));
    const report = await cmd.run(parsed.positionals, values, out);
    out.report(report);
    return EXIT_OK;
  } catch (e) {
    const err = isModelsmithError(e)
      ? e
      : new ModelsmithError(ErrorCodes.IO, `internal error: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    process.stderr.write(`modelsmith: ${err.message}\n`);
    if (wantsJson) process.stdout.write(JSON.stringify({ ok: false, error: err.toJSON() }, jsonReplacer) + '\n');
    if (process.env.MODELSMITH_DEBUG && !isModelsmithError(e)) process.stderr.write(String((e as Error)?.stack) + '\n');
    return err.code === ErrorCodes.USAGE ? EXIT_USAGE : EXIT_FAILURE;
  }
}
