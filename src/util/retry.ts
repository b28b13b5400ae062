/**
 * The one retry helper: bounded attempts, full-jitter backoff, a timeout per
 * attempt, the server's `Retry-After` when it names one, a bound on the whole
 * time spent, and the caller's AbortSignal ending everything at once (every
 * listener it added is removed when it returns). The rules (jitter,
 * Retry-After parsing) are pure, in src/core/backoff.ts.
 */
import { fullJitterDelay } from '../core/backoff.js';
import { PullkeeperError } from '../core/errors.js';
import { linkedSignal, sleep } from './concurrency.js';

/** One attempt ran out of time (its own timeout, not the caller's abort). */
export class TimeoutError extends PullkeeperError {}

export interface RetryOptions {
  /** Attempts in all (at least 1). */
  attempts: number;
  /** Full-jitter base and cap of the wait between attempts (default 200 ms, 5 s). */
  baseMs?: number;
  maxDelayMs?: number;
  /** Time limit of each attempt; the attempt's signal aborts and a TimeoutError (retryable) replaces its error. */
  timeoutMs?: number;
  /** No attempt starts, and no wait is begun, that would end later than this after the start. */
  maxElapsedMs?: number;
  /** Ends the whole thing: the running attempt's signal aborts, a wait stops at once. */
  signal?: AbortSignal;
  /** True for errors worth another attempt (timeouts always are). */
  retryable: (err: unknown, attempt: number) => boolean;
  /** The wait the server asked for (Retry-After), in ms, when the error carries one. */
  retryAfterMs?: (err: unknown) => number | undefined;
  /** Cap of an honoured Retry-After (default 30 s). */
  maxRetryAfterMs?: number;
  /** Called before each wait (stats, logs). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** For tests: the jitter's random source and the clock of maxElapsedMs. */
  random?: () => number;
  now?: () => number;
}

/**
 * Runs `fn(signal, attempt)` until it resolves, the error is not retryable,
 * the attempts or the time bound are used up, or the caller aborts. Rejects
 * with the last attempt's error (a TimeoutError for an attempt that timed out),
 * or the signal's reason once the caller aborted.
 */
export async function retry<T>(
  fn: (signal: AbortSignal, attempt: number) => Promise<T>,
  o: RetryOptions,
): Promise<T> {
  const attempts = Math.max(1, Math.floor(o.attempts));
  const now = o.now ?? (() => performance.now());
  const start = now();
  const remaining = () =>
    o.maxElapsedMs === undefined ? Number.POSITIVE_INFINITY : o.maxElapsedMs - (now() - start);
  for (let attempt = 1; ; attempt++) {
    o.signal?.throwIfAborted();
    const limit = Math.min(o.timeoutMs ?? Number.POSITIVE_INFINITY, remaining());
    const link = linkedSignal(o.signal, Number.isFinite(limit) ? Math.max(0, limit) : undefined);
    let err: unknown;
    try {
      return await fn(link.signal, attempt);
    } catch (e) {
      err =
        link.timedOut() && !o.signal?.aborted
          ? new TimeoutError(`timed out after ${Math.round(limit)} ms`, { cause: e })
          : e;
    } finally {
      link.dispose();
    }
    // The caller gave up: its reason, whatever the attempt made of the abort.
    if (o.signal?.aborted) throw o.signal.reason;
    if (attempt >= attempts || !(err instanceof TimeoutError || o.retryable(err, attempt))) throw err;
    const hinted = o.retryAfterMs?.(err);
    const delay =
      hinted !== undefined
        ? Math.min(hinted, o.maxRetryAfterMs ?? 30_000)
        : fullJitterDelay(attempt, o.baseMs ?? 200, o.maxDelayMs ?? 5_000, o.random ?? Math.random);
    if (delay >= remaining()) throw err;
    o.onRetry?.(err, attempt, delay);
    await sleep(delay, o.signal);
  }
}
