/**
 * Who is calling the API. CI systems present an OIDC ID token (GitHub Actions,
 * GitLab CI; docs/deploy.md), verified with jose: the issuer pinned exactly, our
 * own audience, RS256 only, a bounded clock skew, the JWKS fetched once per
 * process and cached (a warm Lambda reuses it). Claims map to tenants by
 * immutable ids. Operators may use static bearer tokens, stored as sha256
 * hashes and compared in constant time. Messages never contain the token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Principal, TenantGrant } from '../app/api-ports.js';
import { jwksUriOf, remoteJwks } from '../app/jwks.js';
import type { ApiConfig } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';

export type { Principal, TenantGrant };

export class AuthError extends PullkeeperError {
  constructor(
    readonly status: 401 | 403,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function allows(grant: TenantGrant, tenant: string): boolean {
  return grant === '*' || grant.includes(tenant);
}

/** `eyJ...`.`eyJ...`.sig: a JWT rather than an opaque static token. */
function looksLikeJwt(token: string): boolean {
  return /^eyJ[\w-]*\.eyJ[\w-]*\.[\w-]+$/.test(token);
}

function unverifiedIssuer(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      iss?: unknown;
    };
    return typeof payload.iss === 'string' ? payload.iss : undefined;
  } catch {
    return undefined;
  }
}

function claimMatches(payload: Record<string, unknown>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => {
    const got = payload[k];
    return (
      (typeof got === 'string' || typeof got === 'number' || typeof got === 'boolean') && String(got) === v
    );
  });
}

function describeJoseError(err: unknown): string {
  const e = err as { code?: string; claim?: string };
  switch (e?.code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired; request a new one in the job';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return e.claim === 'aud'
        ? "the token's audience is not pullkeeper's; request the token with the audience configured in api.auth.oidc"
        : `the token's "${e.claim}" claim is not valid (not yet valid, or missing)`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the token signature does not verify';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the token is not signed with RS256';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return "no key of the issuer's JWKS matches the token";
    case 'ERR_JWKS_TIMEOUT':
      return "the issuer's JWKS did not answer in time";
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return 'the token is malformed';
    default:
      return 'the token could not be verified';
  }
}

/**
 * The status page's HTTP Basic credentials as the bearer token they carry: the
 * password is an API token (or a CI OIDC token), the user name is ignored. Any
 * other header passes through unchanged; a malformed Basic header becomes none
 * (then the authenticator asks for credentials). Only `GET /` uses this.
 *
 *   bearerFromBasic('Basic ' + base64('me:pk-token')) -> 'Bearer pk-token'
 */
export function bearerFromBasic(authorization: string | undefined): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(authorization ?? '');
  if (!m) return /^Basic\b/i.test(authorization ?? '') ? undefined : authorization;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  if (!password || /\s/.test(password)) return undefined;
  return `Bearer ${password}`;
}

export interface Authenticator {
  authenticate(authorization: string | undefined, signal?: AbortSignal): Promise<Principal>;
}

export function createAuthenticator(
  api: ApiConfig | undefined,
  opts: { now?: () => Date } = {},
): Authenticator {
  const oidc = api?.auth.oidc ?? [];
  const tokens = (api?.auth.tokens ?? []).map((t) => ({ ...t, hash: Buffer.from(t.sha256, 'hex') }));
  return {
    async authenticate(authorization, signal = AbortSignal.timeout(10_000)) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      if (!m)
        throw new AuthError(
          401,
          'missing bearer token: send "Authorization: Bearer <CI OIDC token or API token>"',
        );
      const token = m[1]!;
      if (looksLikeJwt(token)) {
        const iss = unverifiedIssuer(token);
        const issuer = oidc.find((o) => o.issuer === iss);
        if (!issuer)
          throw new AuthError(401, "the token's issuer is not trusted (configure it in api.auth.oidc)");
        const jose = await import('jose');
        let uri: string;
        try {
          uri = await jwksUriOf(issuer.issuer, issuer.jwksUri, signal);
        } catch (err) {
          throw new AuthError(401, `cannot load the issuer's keys (${(err as Error).message}); try again`, {
            cause: err,
          });
        }
        const jwks = remoteJwks(jose, uri);
        let payload: Record<string, unknown>;
        try {
          ({ payload } = await jose.jwtVerify(token, jwks, {
            issuer: issuer.issuer,
            audience: issuer.audience,
            algorithms: ['RS256'],
            clockTolerance: issuer.clockToleranceSec,
            requiredClaims: ['exp', 'iat'],
            ...(opts.now ? { currentDate: opts.now() } : {}),
          }));
        } catch (err) {
          throw new AuthError(401, describeJoseError(err), { cause: err });
        }
        const rule = issuer.allow.find((r) => claimMatches(payload, r.claims));
        const sub = typeof payload.sub === 'string' ? payload.sub : '?';
        if (!rule)
          throw new AuthError(
            403,
            `no api.auth.oidc rule of ${issuer.issuer} matches this token (sub ${sub}); rules match on claims such as repository_id or project_id`,
          );
        return { kind: 'oidc', name: `oidc ${issuer.issuer} ${sub}`, tenants: rule.tenants };
      }
      const h = createHash('sha256').update(token).digest();
      // Compare against every hash so the time does not tell which one (or whether any) matched.
      let found: (typeof tokens)[number] | undefined;
      for (const t of tokens) if (timingSafeEqual(h, t.hash) && !found) found = t;
      if (!found) throw new AuthError(401, 'the bearer token is not valid');
      return { kind: 'token', name: `token ${found.name}`, tenants: found.tenants };
    },
  };
}
