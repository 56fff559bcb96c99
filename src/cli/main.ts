#!/usr/bin/env node
/**
 * `mother`: the command-line front end. Dispatches to src/cli/commands/*, maps errors to exit codes
 * (exit.ts) and wires Ctrl-C to an AbortController: the first aborts the work cleanly (exit 130),
 * a second exits at once.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from './args.js';
import type { CliContext } from './context.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { inspectCommand } from './commands/inspect.js';
import { recoverCommand } from './commands/recover.js';
import { reportCommand } from './commands/report.js';
import { workerCommand } from './commands/worker.js';
import { describeError, EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_CODES_HELP, exitCodeFor } from './exit.js';

export const MAIN_HELP = `Usage: mother <command> [options]

Recover the family tree of neural networks from their weights alone (MoTHer).

Commands
  recover <dir|model>...          recover the trees and print a report (text, json, dot, mermaid, newick, html)
  report <result.json>            turn a saved JSON result into a self-contained HTML page (or another format)
  inspect <model>                 tensors, dtypes, shapes and kurtosis of one model
  eval --truth T.json R.json      accuracy of a recovered forest against the truth
  demo                            recover the bundled example zoo and score it
  worker --redis URL              compute units of 'recover --redis URL' runs (a cluster; docs/scale.md)

Options
  --help, -h       help (also 'mother <command> --help')
  --version, -v    print the version

Environment: NO_COLOR disables colour; MOTHER_DEBUG=1 prints stack traces of internal errors.
${EXIT_CODES_HELP}
`;

type Command = (argv: string[], ctx: CliContext) => Promise<number>;
const COMMANDS: Record<string, Command> = {
  recover: (a, c) => recoverCommand(a, c),
  inspect: (a, c) => inspectCommand(a, c),
  eval: evalCommand,
  demo: (a, c) => demoCommand(a, c),
  report: (a, c) => reportCommand(a, c),
  worker: (a, c) => workerCommand(a, c),
};

export function version(): string {
  // package.json sits two levels up from both src/cli and dist/cli.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs one command line (argv without node and script); never throws, returns the exit code. */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === '--help' || first === '-h') {
      (first === undefined ? ctx.stderr : ctx.stdout).write(MAIN_HELP);
      return first === undefined ? EXIT_BAD_INPUT : 0;
    }
    if (first === '--version' || first === '-v') {
      ctx.stdout.write(`mother ${version()}\n`);
      return 0;
    }
    if (first === 'help') return await runCli(rest.length ? [rest[0]!, '--help'] : ['--help'], ctx);
    if (first.startsWith('-')) throw new UsageError(`unknown option '${first}'`, "see 'mother --help'");
    const command = COMMANDS[first];
    if (!command) throw new UsageError(`unknown command '${first}'`, "see 'mother --help'");
    return await command(rest, ctx);
  } catch (err) {
    ctx.stderr.write(describeError(err, ctx.env.MOTHER_DEBUG === '1'));
    return exitCodeFor(err);
  }
}

/**
 * First SIGINT aborts `controller` (work stops at its next check, exit 130 with 'cancelled');
 * a second one exits at once, for work that does not notice the abort quickly.
 */
export function installInterruptHandler(
  proc: { on(event: 'SIGINT', listener: () => void): unknown },
  controller: AbortController,
  exit: (code: number) => void,
): void {
  let interrupts = 0;
  proc.on('SIGINT', () => {
    interrupts++;
    if (interrupts === 1) controller.abort();
    else exit(EXIT_CANCELLED);
  });
}

/**
 * Exit now, even while a threadpool thread is stuck (native work, a blocked read): process.exit()
 * would wait for it, since libuv joins its threadpool at exit. Dying of the re-raised SIGINT skips
 * that and is what shells expect (they report 128 + 2 = 130).
 */
function forceExit(code: number): void {
  if (process.platform === 'win32') process.exit(code);
  process.removeAllListeners('SIGINT');
  process.kill(process.pid, 'SIGINT');
}

/** The process entry point: real streams, SIGINT, broken pipes. */
async function main(): Promise<void> {
  const controller = new AbortController();
  installInterruptHandler(process, controller, forceExit);
  // `mother recover ... | head`: a closed pipe is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const code = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  });
  // A command that finished its work after the abort still reports cancellation.
  process.exitCode = controller.signal.aborted && code === 0 ? EXIT_CANCELLED : code;
  if (controller.signal.aborted && code === 0) process.stderr.write('mother: cancelled\n');
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    // npm's bin link is a symlink: compare real paths.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) void main();
