/**
 * The pure rules of retrying: how long to wait before the next attempt.
 *
 * - Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter",
 *   2015): the wait before retry n is uniform in [0, min(cap, base * 2^(n-1))).
 *   Many clients throttled together spread out instead of retrying in step.
 * - `Retry-After` (RFC 9110 §10.2.3): either a non-negative integer of
 *   seconds or an HTTP-date. A server that names a wait gets it (capped by the
 *   caller), instead of the jittered guess.
 *
 * No clock here: the caller passes `now` and the random source.
 */

/** The wait before retry number `retry` (1 = the first retry), full jitter. */
export function fullJitterDelay(retry: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.max(0, ceiling * Math.min(1, Math.max(0, random())));
}

const HTTP_DATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * A `Retry-After` header as milliseconds from `nowMs`, or undefined when it is
 * absent or malformed. A date in the past is 0 (retry now).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // IMF-fixdate is what servers must send; obsolete forms (RFC 850, asctime) Date.parse also reads.
  if (HTTP_DATE.test(v) || /GMT$/.test(v)) {
    const at = Date.parse(v);
    if (Number.isFinite(at)) return Math.max(0, at - nowMs);
  }
  return undefined;
}
