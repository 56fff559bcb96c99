/** `mother worker --redis URL`: compute the scale path's units of `mother recover --redis URL` runs. */
import type { Backend } from '../../types.js';
import { MAX_THREADS } from '../../util/limits.js';
import { checkQueueName, checkRedisUrl } from '../../cluster/options.js';
import { integer, nonEmpty, oneOf, parseCommand, UsageError, type OptionSpec } from '../args.js';
import type { CliContext } from '../context.js';
import { EXIT_OK } from '../exit.js';

export const WORKER_HELP = `Usage: mother worker --redis URL [options]

Process the work units (model sketches, exact-family statistics, candidate-pair blocks) that
'mother recover ... --redis URL' puts on a BullMQ queue in Redis, until Ctrl-C or SIGTERM (the
unit in progress is finished first; a second Ctrl-C quits at once and the unit goes to another
worker). The statistics are the local path's, bit for bit; the trees are built by the recover
process. docs/scale.md describes the units and the retry rules.

  --redis URL           redis://[user:password@]host:port[/db] (required)
  --queue NAME          queue name (default mother); must match the recover side
  --concurrency N       units at once (default 1; each uses --threads cores)
  --threads N           CPU threads per unit, 1 to ${MAX_THREADS} (default: all cores)
  --backend B           auto|cpu|cuda (default auto)
  --device N            CUDA device index (default 0)
  --path-map FROM=TO    read model paths under FROM at TO on this machine (repeatable)
  --lock-duration MS    BullMQ job lock (default 30000): a unit of a worker silent this long
                        is handed to another
  --stalled-interval MS how often this worker checks for such units (default 30000)
  --max-stalled N       stalls a unit may have before it fails (default 1)
  --job-delay MS        wait before each unit (for testing retries)
  --quiet, -q           no log lines on stderr

Exit codes: 0 stopped, 1 internal error, 2 bad input or usage or Redis unreachable, 130 cancelled.
`;

const OPTIONS: OptionSpec = {
  redis: { type: 'string' },
  queue: { type: 'string' },
  concurrency: { type: 'string' },
  threads: { type: 'string' },
  backend: { type: 'string' },
  device: { type: 'string' },
  'path-map': { type: 'string', multiple: true },
  'lock-duration': { type: 'string' },
  'stalled-interval': { type: 'string' },
  'max-stalled': { type: 'string' },
  'job-delay': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** FROM=TO, both non-empty. */
function pathMapArg(v: string): [string, string] {
  const i = v.indexOf('=');
  if (i <= 0 || i === v.length - 1) throw new UsageError(`Expected FROM=TO for --path-map but received '${v}'`);
  return [v.slice(0, i), v.slice(i + 1)];
}

function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/ for redis /, ' for --redis ').replace(/ for queue /, ' for --queue '));
  }
}

export async function workerCommand(argv: string[], ctx: CliContext): Promise<number> {
  const { values: v, positionals } = parseCommand('worker', argv, OPTIONS, false);
  if (v.help === true) {
    ctx.stdout.write(WORKER_HELP);
    return EXIT_OK;
  }
  void positionals;
  if (v.redis === undefined) throw new UsageError('worker needs --redis URL', "see 'mother worker --help'");
  const redis = usage(() => checkRedisUrl(nonEmpty('--redis', v.redis)));
  const queue = v.queue === undefined ? undefined : usage(() => checkQueueName(v.queue));
  const ms = (k: string) => (v[k] === undefined ? undefined : integer(`--${k}`, v[k], 1, 24 * 3600 * 1000));
  const quiet = v.quiet === true;
  // SIGTERM (a service manager, `kill`) stops like Ctrl-C: finish the current unit, then exit.
  const stop = new AbortController();
  const onTerm = () => stop.abort();
  process.once('SIGTERM', onTerm);
  ctx.signal?.addEventListener('abort', onTerm, { once: true });
  // Imported here: BullMQ and ioredis load only for this command.
  const { runWorker } = await import('../../cluster/worker.js');
  try {
    const summary = await runWorker({
      redis,
      ...(queue ? { queue } : {}),
      ...(v.concurrency !== undefined ? { concurrency: integer('--concurrency', v.concurrency, 1, 1024) } : {}),
      ...(v.threads !== undefined ? { threads: integer('--threads', v.threads, 1, MAX_THREADS) } : {}),
      ...(v.backend !== undefined ? { backend: oneOf<Backend>('--backend', v.backend, ['auto', 'cpu', 'cuda']) } : {}),
      ...(v.device !== undefined ? { device: integer('--device', v.device, 0) } : {}),
      pathMap: ((v['path-map'] as string[] | undefined) ?? []).map(pathMapArg),
      lockDuration: ms('lock-duration'), stalledInterval: ms('stalled-interval'),
      ...(v['max-stalled'] !== undefined ? { maxStalledCount: integer('--max-stalled', v['max-stalled'], 0, 1000) } : {}),
      jobDelay: v['job-delay'] === undefined ? undefined : integer('--job-delay', v['job-delay'], 0, 24 * 3600 * 1000),
      log: quiet ? undefined : (line) => ctx.stderr.write(`mother worker: ${line}\n`),
      signal: stop.signal,
    });
    if (!quiet) ctx.stderr.write(`mother worker: stopped (${summary.completed} units completed, ${summary.failed} failed)\n`);
    return EXIT_OK;
  } finally {
    process.removeListener('SIGTERM', onTerm);
  }
}
