/**
 * Bounded retries with exponential backoff and full jitter, for throttling and
 * 5xx answers (ECR allows 20 GetAuthorizationToken calls/s per account and
 * region; a burst beyond that answers 429 / ThrottlingException). Every attempt
 * gets its own timeout; the caller's AbortSignal ends the whole thing.
 */
import { PullkeeperError } from '../core/errors.js';

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

export class TimeoutError extends PullkeeperError {}

/** Runs `fn` with a per-attempt signal; retries what `retryable` allows, up to `attempts` in all. */
export async function withRetry<T>(
  fn: (signal: AbortSignal, attempt: number) => Promise<T>,
  o: RetryOptions,
): Promise<T> {
  const attempts = o.attempts ?? 3;
  const base = o.baseMs ?? 200;
  const max = o.maxMs ?? 5_000;
  const random = o.random ?? Math.random;
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    o.signal.throwIfAborted();
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = AbortSignal.any([o.signal, timeout]);
    try {
      return await fn(signal, attempt);
    } catch (err) {
      last =
        timeout.aborted && !o.signal.aborted
          ? new TimeoutError(`timed out after ${o.timeoutMs} ms`, { cause: err })
          : err;
      if (o.signal.aborted || attempt === attempts || !(last instanceof TimeoutError || o.retryable(err)))
        throw last;
      const delay = Math.min(max, base * 2 ** (attempt - 1)) * random();
      await sleep(delay, o.signal);
    }
  }
  throw last;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
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
