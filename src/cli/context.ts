/** What a command may touch of the outside world, injected so tests run commands in-process. */

export interface OutStream {
  write(chunk: string): unknown;
  /** Set on terminals: picks the default format, colour and the progress bar. */
  isTTY?: boolean;
  columns?: number;
}

export interface CliContext {
  stdout: OutStream;
  stderr: OutStream;
  env: Record<string, string | undefined>;
  /** Relative paths (inputs, --out, --truth) resolve against this. */
  cwd: string;
  /** Aborted on Ctrl-C (main.ts wires SIGINT to it). */
  signal?: AbortSignal;
  /** Clock for the progress bar (tests pass a fake one). */
  now?: () => number;
}

/** NO_COLOR (https://no-color.org): any non-empty value turns colour off. */
export function useColor(ctx: CliContext): boolean {
  return Boolean(ctx.stdout.isTTY) && !ctx.env.NO_COLOR;
}
