/**
 * Child processes of the test harness: started with their output in a log
 * file, tracked by PID, stopped with TERM then KILL, and killed on exit of the
 * test process even when a test fails. Only processes we started are signalled.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export class HarnessError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HarnessError';
  }
}

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (after stop() or on its own). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(graceMs?: number): Promise<void>;
  /** Last lines of the log, for error messages. */
  tail(lines?: number): string;
}

const live = new Set<Service>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const s of live) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      // A caller with its own handler (the harness CLI's `up`) stops things gracefully itself.
      if (process.listenerCount(sig) > 0) return;
      killAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

export interface StartOptions extends Pick<SpawnOptions, 'cwd' | 'env'> {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  /** Polled until it resolves true; the service is returned only then. */
  ready?: (signal: AbortSignal) => Promise<boolean>;
  readyTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Starts a long-running process and waits until `ready` says it serves. */
export async function startService(opts: StartOptions): Promise<Service> {
  hookExit();
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: false,
    });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (spawnError || child.pid === undefined) {
    throw new HarnessError(`${opts.name}: could not start ${opts.command}: ${spawnError?.message}`, {
      cause: spawnError,
    });
  }
  const tail = (lines = 20) => {
    try {
      return readFileSync(opts.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  let done = false;
  void exited.then(() => {
    done = true;
    live.delete(svc);
  });
  const svc: Service = {
    name: opts.name,
    pid: child.pid,
    logFile: opts.logFile,
    child,
    exited,
    tail,
    async stop(graceMs = 3000) {
      if (done) return;
      try {
        process.kill(child.pid!, 'SIGTERM');
      } catch {
        /* gone */
      }
      // The grace timer is cancelled once the process exits, so it never holds the event loop open.
      const cancel = new AbortController();
      const timer = sleep(graceMs, 'timeout' as const, { signal: cancel.signal }).catch(
        () => 'cancelled' as const,
      );
      const first = await Promise.race([exited, timer]);
      cancel.abort();
      if (first === 'timeout') {
        try {
          process.kill(child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
        await exited;
      }
    },
  };
  live.add(svc);
  if (opts.ready) {
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const signal = opts.signal
      ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)])
      : AbortSignal.timeout(timeoutMs);
    for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
      if (done) {
        throw new HarnessError(
          `${opts.name} exited before it was ready. Last log lines (${opts.logFile}):\n${tail()}`,
        );
      }
      let ok = false;
      try {
        ok = await opts.ready(signal);
      } catch {
        ok = false;
      }
      if (ok) break;
      if (Date.now() > deadline || opts.signal?.aborted) {
        await svc.stop(500);
        throw new HarnessError(
          `${opts.name} was not ready within ${timeoutMs} ms. Last log lines (${opts.logFile}):\n${tail()}`,
        );
      }
      await sleep(delay);
    }
  }
  return svc;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin; without it stdin is closed (/dev/null). */
  input?: string | Buffer;
  timeoutMs?: number;
  /** Resolve with the exit code instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
}

/** Runs a command to completion with stdout as bytes; throws HarnessError with its output on failure. */
export function runBuffer(
  command: string,
  args: string[],
  opts: RunOptions = {},
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    child.once('error', (err) =>
      reject(new HarnessError(`could not run ${command}: ${err.message}`, { cause: err })),
    );
    child.once('close', (code) => {
      const stdout = Buffer.concat(out);
      if (code !== 0 && !opts.allowFail) {
        const msg = stderr.trim() || stdout.toString('utf8').trim();
        reject(new HarnessError(`${command} ${args.join(' ')} exited ${code}: ${msg}`));
      } else resolve({ code: code ?? -1, stdout, stderr });
    });
    if (child.stdin) {
      // A command that exits before reading its stdin must not crash us with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** Runs a command to completion; throws HarnessError with its output on failure. */
export async function run(
  command: string,
  args: string[],
  opts: RunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runBuffer(command, args, opts);
  return { ...r, stdout: r.stdout.toString('utf8') };
}

/**
 * One doctor check for a command: ok with its first output line when `command args` exits 0,
 * otherwise MISSING with `missing` as the detail and `fix` as the command that fixes it.
 */
export async function commandCheck(
  name: string,
  command: string,
  args: string[],
  missing: string,
  fix: string,
): Promise<{ name: string; ok: boolean; detail: string; fix?: string }> {
  const r = await run(command, args, { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
  return r?.code === 0
    ? { name, ok: true, detail: (r.stdout || r.stderr).trim().split('\n')[0] ?? command }
    : { name, ok: false, detail: missing, fix };
}
