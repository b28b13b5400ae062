/**
 * An OIDC issuer's signing keys, for jose: the JWKS URI from the issuer's
 * discovery document (`<issuer>/.well-known/openid-configuration`, cached per
 * process; a failed discovery is retried next time) unless configured, and one
 * remote key set per URI (jose caches the keys, with a refetch cooldown). Module
 * scope: warm invocations reuse them. Used by the API's CI OIDC auth and the pod
 * credential broker's offline verification.
 */
type Jose = typeof import('jose');
export type RemoteJwks = ReturnType<Jose['createRemoteJWKSet']>;

const jwksCache = new Map<string, RemoteJwks>();
const discoveryCache = new Map<string, Promise<string>>();

export async function jwksUriOf(
  issuer: string,
  configured: string | undefined,
  signal: AbortSignal,
): Promise<string> {
  if (configured) return configured;
  let p = discoveryCache.get(issuer);
  if (!p) {
    p = (async () => {
      const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal });
      if (!res.ok) throw new Error(`discovery answered HTTP ${res.status}`);
      const doc = (await res.json()) as { jwks_uri?: unknown };
      if (typeof doc.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
      return doc.jwks_uri;
    })();
    discoveryCache.set(issuer, p);
    p.catch(() => discoveryCache.delete(issuer));
  }
  return p;
}

/** The remote key set of `uri`, made once per process. */
export function remoteJwks(jose: Jose, uri: string): RemoteJwks {
  let jwks = jwksCache.get(uri);
  if (!jwks) {
    jwks = jose.createRemoteJWKSet(new URL(uri), { timeoutDuration: 5000, cooldownDuration: 30_000 });
    jwksCache.set(uri, jwks);
  }
  return jwks;
}
