/**
 * The one bounded-concurrency toolkit: an abortable sleep, a worker pool over
 * a list, a counting semaphore and a token bucket. Every wait takes an
 * AbortSignal and removes its listener when it ends, however it ends, so that
 * thousands of waits on one long-lived signal leave nothing behind (no
 * MaxListenersExceededWarning, no growing listener list).
 */

/** Waits `ms`; rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A signal that aborts when `parent` does or after `timeoutMs`, and a dispose
 * that clears the timer and removes the listener on `parent` (call it when the
 * work is done). `timedOut()` tells a timeout from the parent's abort.
 */
export function linkedSignal(
  parent: AbortSignal | undefined,
  timeoutMs?: number,
): { signal: AbortSignal; timedOut: () => boolean; dispose: () => void } {
  const ac = new AbortController();
  let timedOut = false;
  const onAbort = () => ac.abort(parent?.reason);
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          ac.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'));
        }, timeoutMs);
  if (parent?.aborted) ac.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    timedOut: () => timedOut,
    dispose: () => {
      if (timer) clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

export interface PoolOptions {
  /** Items running at once (at least 1). */
  concurrency: number;
  /** No item starts after it aborts; running items see it through their signal. */
  signal?: AbortSignal;
  /** Asked before each item starts: true starts no more (e.g. a canary gate halted). */
  stop?: () => boolean;
}

/**
 * Runs `fn` over `items`, at most `concurrency` at once, in item order.
 * Results come back in item order; an item that never started (abort, `stop`)
 * is undefined. The first rejection starts no more items and aborts the
 * signal the running ones got (its reason is that error); once they have all
 * settled, `pool` rejects with it. Nothing keeps running after it returns.
 */
export async function pool<T, R>(
  items: readonly T[],
  o: PoolOptions,
  fn: (item: T, i: number, signal: AbortSignal) => Promise<R>,
): Promise<Array<R | undefined>> {
  const results: Array<R | undefined> = Array.from({ length: items.length }, () => undefined);
  // Aborts when the caller's signal does, or with the first failure.
  const link = linkedSignal(o.signal);
  const ac = new AbortController();
  const onLinkAbort = () => ac.abort(link.signal.reason);
  if (link.signal.aborted) onLinkAbort();
  else link.signal.addEventListener('abort', onLinkAbort, { once: true });
  let next = 0;
  let failed = false;
  let first: unknown;
  const worker = async () => {
    while (next < items.length && !failed && !ac.signal.aborted && !o.stop?.()) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i, ac.signal);
      } catch (err) {
        // The first failure is the reason; later ones are usually its abort.
        if (!failed) {
          failed = true;
          first = err;
          ac.abort(err);
        }
      }
    }
  };
  try {
    const n = Math.max(1, Math.min(Math.floor(o.concurrency) || 1, items.length));
    await Promise.all(Array.from({ length: items.length === 0 ? 0 : n }, worker));
  } finally {
    link.signal.removeEventListener('abort', onLinkAbort);
    link.dispose();
  }
  if (failed) throw first;
  return results;
}

/**
 * `pool` for work that must all be done: every result, in item order. Rejects
 * with the first failure, or with the signal's reason when it aborted before
 * every item ran.
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number, signal: AbortSignal) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const out = await pool(items, { concurrency: limit, signal }, fn);
  signal?.throwIfAborted();
  return out as R[];
}

/** Counting semaphore: at most `n` holders; a waiter that aborts leaves the queue. */
export class Semaphore {
  #free: number;
  readonly #queue = new Set<() => void>();
  constructor(n: number) {
    this.#free = Math.max(1, n);
  }

  /** Holders waiting for a slot (for tests and stats). */
  get waiting(): number {
    return this.#queue.size;
  }

  /** Runs `fn` holding a slot; waits for one first (abortable). */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await fn();
    } finally {
      this.#release();
    }
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#queue.delete(grant);
        reject(signal?.reason);
      };
      this.#queue.add(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #release(): void {
    const next = this.#queue.values().next();
    if (next.done) {
      this.#free++;
      return;
    }
    this.#queue.delete(next.value);
    next.value();
  }
}

/** Token bucket: `qps` tokens per second, at most `burst` saved up. `now` is for tests. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token, waiting (abortably) until there is one. */
  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = this.now();
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.qps);
      this.#last = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await sleep(((1 - this.#tokens) / this.qps) * 1000, signal);
    }
  }
}

/**
 * `p`, or the signal's reason as soon as it aborts: for calls that take no
 * signal (google-auth-library's token calls). The call itself runs on; its late
 * answer or error is dropped. The listener is removed either way.
 */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
