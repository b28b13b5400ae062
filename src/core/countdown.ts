/**
 * Words a person reads at a glance on the status page (pure; time is a parameter):
 * how long until something expires or since it did, and error text with anything
 * token-like taken out before it is shown.
 *
 *   formatDuration(18_720)                         -> '5h 12m'
 *   countdown('…T17:12:00Z', now = '…T12:00:00Z')  -> { text: 'expires in 5h 12m', seconds: 18720 }
 *   countdown('…T11:57:00Z', now = '…T12:00:00Z')  -> { text: 'expired 3m ago', seconds: -180 }
 */

/** 45s, 12m, 5h 12m, 3d 4h: two units at most, rounded down. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(Math.abs(seconds)));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

export interface Countdown {
  text: string;
  /** Seconds until expiry (negative: expired); null when it does not expire or the date is unusable. */
  seconds: number | null;
}

/** "expires in 5h 12m" / "expired 3m ago" / "no expiry". */
export function countdown(expiresAt: string | Date | null | undefined, now: Date): Countdown {
  if (expiresAt === null || expiresAt === undefined || expiresAt === '')
    return { text: 'no expiry', seconds: null };
  const t = typeof expiresAt === 'string' ? Date.parse(expiresAt) : expiresAt.getTime();
  if (Number.isNaN(t)) return { text: 'expiry unknown', seconds: null };
  const seconds = Math.floor((t - now.getTime()) / 1000);
  if (seconds > 0) return { text: `expires in ${formatDuration(seconds)}`, seconds };
  if (seconds === 0) return { text: 'expires now', seconds };
  return { text: `expired ${formatDuration(seconds)} ago`, seconds };
}

/** "3m ago" / "in 2m" (clock skew) for a past event. */
export function ago(at: string | Date | null | undefined, now: Date): string {
  if (at === null || at === undefined || at === '') return 'never';
  const t = typeof at === 'string' ? Date.parse(at) : at.getTime();
  if (Number.isNaN(t)) return 'unknown';
  const seconds = Math.floor((now.getTime() - t) / 1000);
  return seconds >= 0 ? `${formatDuration(seconds)} ago` : `in ${formatDuration(seconds)}`;
}

const REDACTED = '<redacted>';
const RULES: Array<[RegExp, string]> = [
  // JWTs (CI OIDC tokens, registry bearer tokens).
  [/eyJ[\w-]{2,}\.[\w-]{2,}\.[\w-]*/g, REDACTED],
  // Authorization header values.
  [/\b(Bearer|Basic)\s+[\w.~+/=-]{6,}/gi, `$1 ${REDACTED}`],
  // key=value, key: value, "key":"value" for secret-looking keys.
  [
    /\b(password|passwd|pwd|token|access_token|refresh_token|id_token|secret|client_secret|apikey|api_key|auth|authorization)(["']?\s*[:=]\s*["']?)(?!<redacted>|Bearer\s|Basic\s)[^\s"',&;)]+/gi,
    `$1$2${REDACTED}`,
  ],
  // user:password@ in URLs.
  [/(\/\/[^\s/:@]+:)[^\s/@]+@/g, `$1${REDACTED}@`],
  // Long opaque mixed-case strings with digits (API keys, base64 blobs); lower-case hex digests stay.
  [/(?<![\w+/-])(?=[\w+/-]*[A-Z])(?=[\w+/-]*[a-z])(?=[\w+/-]*\d)[\w+/-]{32,}={0,2}/g, REDACTED],
];

/**
 * Takes token-like values out of text meant for display. A second line of defence:
 * the reports the page shows hold no secrets, but error strings come from many places.
 */
export function redactTokenLike(text: string): string {
  let out = text;
  for (const [re, to] of RULES) out = out.replace(re, to);
  return out;
}
