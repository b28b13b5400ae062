import { netFailure, netFailureText } from '../core/net-failure.js';

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
  let code: number;
  try {
    code = await run(wrapped);
  } catch (err) {
    // The commands' own handlers catch everything; this keeps the rule if one does not.
    wrapped.err(unexpectedFailureMessage(err));
    code = 1;
  }
  if (code !== 0 && !wroteOut)
    io.out(JSON.stringify({ error: { message: errors.join('\n') || `exit ${code}`, exitCode: code } }));
  return code;
}

/**
 * The message for an error no command turned into its own: what the system
 * said, told by its real cause (a missing file, a refused or unreachable
 * server), never a stack trace unless PULLKEEPER_DEBUG is set.
 */
export function unexpectedFailureMessage(err: unknown, env: NodeJS.ProcessEnv = process.env): string {
  const e = err as { code?: unknown; path?: unknown; address?: unknown; port?: unknown; message?: unknown };
  const debug = env.PULLKEEPER_DEBUG && err instanceof Error && err.stack ? `\n${err.stack}` : '';
  const net = netFailure(err);
  if (net) {
    const where =
      typeof e?.address === 'string' ? ` connecting to ${e.address}${e.port ? `:${e.port}` : ''}` : '';
    return `${netFailureText(net)}${where}; check the address in the config and that this machine can reach it${debug}`;
  }
  if (e?.code === 'ENOENT' && typeof e.path === 'string')
    return `${e.path}: no such file or directory; check the path${debug}`;
  if ((e?.code === 'EACCES' || e?.code === 'EPERM') && typeof e.path === 'string')
    return `${e.path}: permission denied (${e.code}); run as a user that may read it, or fix its mode${debug}`;
  if (e?.code === 'EISDIR' && typeof e.path === 'string')
    return `${e.path}: is a directory, not a file${debug}`;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return `${message} (unexpected; set PULLKEEPER_DEBUG=1 for the stack trace, and please report it)${debug}`;
}
