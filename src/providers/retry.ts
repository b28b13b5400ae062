/**
 * Bounded retries with exponential backoff and full jitter, for throttling and
 * 5xx answers (ECR allows 20 GetAuthorizationToken calls/s per account and
 * region; a burst beyond that answers 429 / ThrottlingException). Every attempt
 * gets its own timeout; the caller's AbortSignal ends the whole thing. The
 * loop itself is the shared one (src/util/retry.ts).
 */
import { retry, TimeoutError } from '../util/retry.js';

export { TimeoutError };

export interface RetryOptions {
  attempts?: number;
  baseMs?: number;
  maxMs?: number;
  timeoutMs: number;
  signal: AbortSignal;
  /** True for errors worth another attempt. */
  retryable: (err: unknown) => boolean;
  /** For tests: the random source of the jitter. */
  random?: () => number;
}

/**
 * Runs `fn` with a per-attempt signal; retries what `retryable` allows, up to
 * `attempts` in all (default 3, 200 ms base, 5 s cap): the providers' defaults
 * over the shared helper (src/util/retry.ts).
 */
export function withRetry<T>(
  fn: (signal: AbortSignal, attempt: number) => Promise<T>,
  o: RetryOptions,
): Promise<T> {
  return retry(fn, {
    attempts: o.attempts ?? 3,
    baseMs: o.baseMs ?? 200,
    maxDelayMs: o.maxMs ?? 5_000,
    timeoutMs: o.timeoutMs,
    signal: o.signal,
    retryable: o.retryable,
    ...(o.random ? { random: o.random } : {}),
  });
}

/** HTTP statuses worth a retry: throttling and server errors. */
export function retryableStatus(status: number): boolean {
  return status === 429 || status === 408 || status >= 500;
}

/** A failed network call in a few words (a timeout, a socket error code), never request data. */
export function netReason(err: unknown): string {
  if (err instanceof TimeoutError) return 'timed out';
  const e = err as { name?: string; cause?: { code?: unknown } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  return e?.name ?? 'error';
}
