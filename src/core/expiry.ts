/**
 * When a credential must be refreshed, from its real lifetime (pure; time is a
 * parameter). Fixed schedules that ignore the token's own expiry let
 * credentials lapse, so every decision here starts from `expiresAt`.
 */

/** Refresh at the latest this long before expiry, whatever the fraction says. */
export const MIN_REFRESH_MARGIN_MS = 10 * 60 * 1000;

export interface EffectiveExpiry {
  expiresAt: Date;
  /** True when the reported expiry was missing or unusable and the documented lifetime was assumed. */
  assumed: boolean;
  /** Why the reported value was not used (for the report). */
  note?: string;
}

/**
 * The expiry to plan with. A reported expiry at or before the issue time (moto's
 * ECR tokens say 2015-01-01) is never trusted: the documented lifetime is assumed
 * and the note says so. A reported expiry later than the documented lifetime is
 * capped to it when one is known (a clock skew or a fake must not stretch it).
 *
 *   effectiveExpiry(new Date('2015-01-01T00:00:00Z'), T, 12h) -> { expiresAt: T+12h, assumed: true }
 *   effectiveExpiry(T+11h, T, 12h)                            -> { expiresAt: T+11h, assumed: false }
 *   effectiveExpiry(undefined, T, undefined)                  -> undefined (does not expire)
 */
export function effectiveExpiry(
  reported: Date | undefined,
  issuedAt: Date,
  documentedLifetimeMs: number | undefined,
): EffectiveExpiry | undefined {
  const reportedOk = reported !== undefined && !Number.isNaN(reported.getTime()) && reported > issuedAt;
  if (reportedOk) {
    if (
      documentedLifetimeMs !== undefined &&
      reported.getTime() - issuedAt.getTime() > documentedLifetimeMs * 1.05
    ) {
      return {
        expiresAt: new Date(issuedAt.getTime() + documentedLifetimeMs),
        assumed: true,
        note: `reported expiry ${reported.toISOString()} is beyond the documented lifetime; using ${hours(documentedLifetimeMs)}`,
      };
    }
    return { expiresAt: reported, assumed: false };
  }
  if (documentedLifetimeMs === undefined) {
    if (reported === undefined) return undefined;
    return {
      expiresAt: issuedAt,
      assumed: true,
      note: 'reported expiry is already past and no lifetime is documented',
    };
  }
  return {
    expiresAt: new Date(issuedAt.getTime() + documentedLifetimeMs),
    assumed: true,
    note:
      reported === undefined
        ? `no expiry reported; assuming the documented ${hours(documentedLifetimeMs)}`
        : `reported expiry ${Number.isNaN(reported.getTime()) ? 'is invalid' : `${reported.toISOString()} is not in the future`}; assuming the documented ${hours(documentedLifetimeMs)}`,
  };
}

/**
 * The moment to refresh: after `fraction` of the lifetime, and never later
 * than MIN_REFRESH_MARGIN_MS (or a tenth of the lifetime, if shorter) before expiry.
 *
 *   refreshAt(T, T+12h, 0.5) -> T+6h
 *   refreshAt(T, T+15min, 0.5) -> T+7.5min
 *   refreshAt(T, T+12h, 0.99) -> T+11h50min
 */
export function refreshAt(issuedAt: Date, expiresAt: Date, fraction: number): Date {
  const life = expiresAt.getTime() - issuedAt.getTime();
  if (life <= 0) return issuedAt;
  const byFraction = issuedAt.getTime() + life * fraction;
  const margin = Math.min(MIN_REFRESH_MARGIN_MS, life / 10);
  return new Date(Math.min(byFraction, expiresAt.getTime() - margin));
}

/** True when a credential issued at `issuedAt` and expiring at `expiresAt` must be re-minted at `now`. */
export function needsRefresh(
  now: Date,
  issuedAt: Date,
  expiresAt: Date | undefined,
  fraction: number,
): boolean {
  if (expiresAt === undefined) return false;
  return now >= refreshAt(issuedAt, expiresAt, fraction);
}

function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 1
    ? `${Number.isInteger(h) ? h : h.toFixed(1)} h lifetime`
    : `${Math.round(ms / 60_000)} min lifetime`;
}
