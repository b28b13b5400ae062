/** Where a CLI writes; tests pass buffers, bin/ passes the process streams. */
export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  /** stderr is a terminal: progress lines are shown (never with --json). */
  isTTY?: boolean;
  /** A progress line on stderr that replaces the previous one; '' clears it. */
  progress?: (line: string) => void;
}

export const processIO: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  isTTY: Boolean(process.stderr.isTTY),
  progress: (line) => process.stderr.write(line ? `\r\x1b[K${line}` : '\r\x1b[K'),
};

/** Collects output in memory (for tests). */
export function bufferIO(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

/**
 * The progress writer a command should use: only on a terminal and never with
 * --json, so scripts and pipes see exactly the same output as before.
 */
export function progressOf(io: CliIO, json: boolean | undefined): ((line: string) => void) | undefined {
  return io.isTTY && io.progress && !json ? io.progress : undefined;
}

/**
 * The --json error rule, for both CLIs: with --json, stdout holds exactly one
 * JSON document whatever the exit code. A command that fails before it has a
 * result (usage error, bad config, unexpected failure) prints its message on
 * stderr as usual, and this wrapper then prints
 * `{ "error": { "message", "exitCode" } }` on stdout.
 */
export async function withJsonErrors<T extends CliIO>(
  argv: readonly string[],
  io: T,
  run: (io: T) => Promise<number>,
): Promise<number> {
  const end = argv.indexOf('--');
  if (!(end === -1 ? argv : argv.slice(0, end)).includes('--json')) return run(io);
  let wroteOut = false;
  const errors: string[] = [];
  const wrapped: T = {
    ...io,
    out: (l) => {
      wroteOut = true;
      io.out(l);
    },
    err: (l) => {
      errors.push(l);
      io.err(l);
    },
  };
  const code = await run(wrapped);
  if (code !== 0 && !wroteOut)
    io.out(JSON.stringify({ error: { message: errors.join('\n') || `exit ${code}`, exitCode: code } }));
  return code;
}
