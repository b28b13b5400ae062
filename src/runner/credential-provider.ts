/**
 * kubelet's credential provider exec plugin protocol
 * (`credentialprovider.kubelet.k8s.io/v1`), answered from the credentials
 * pullkeeper pushed to the node.
 *
 * The credentials file is a docker config.json. pullkeeper's node push may add
 * a top-level `pullkeeperExpiry` map (`{"<registry key>": "<RFC 3339>"}`),
 * which docker and kubelet ignore; without it a password that is a JWT gives
 * its `exp`. The response's `cacheDuration` is the time left until the
 * earliest expiry among the returned credentials, so kubelet never caches a
 * credential past its lifetime. A non-matching image gets an empty `auth`
 * and `cacheDuration: 0s`, so a credential pushed later is used at once.
 */
import { z } from 'zod';
import { PullkeeperError } from '../core/errors.js';
import {
  buildKeyring,
  type DockerConfig,
  normalizeKeyringKey,
  parseDockerConfig,
  parseImageRef,
  urlsMatch,
} from '../core/index.js';

export const CREDENTIAL_PROVIDER_API_VERSION = 'credentialprovider.kubelet.k8s.io/v1';

export class CredentialProviderError extends PullkeeperError {}

const requestSchema = z.object({
  apiVersion: z.string(),
  kind: z.literal('CredentialProviderRequest'),
  image: z.string().min(1),
  serviceAccountToken: z.string().optional(),
  serviceAccountAnnotations: z.record(z.string(), z.string()).optional(),
});
export type CredentialProviderRequest = z.infer<typeof requestSchema>;

export interface CredentialProviderResponse {
  apiVersion: string;
  kind: 'CredentialProviderResponse';
  cacheKeyType: 'Image' | 'Registry' | 'Global';
  cacheDuration?: string;
  auth: Record<string, { username: string; password: string }>;
}

export interface ProviderCredentials {
  config: DockerConfig;
  /** Normalized keyring key -> expiry (ms since epoch). */
  expiry: Map<string, number>;
}

/** Parses the request kubelet writes on stdin. */
export function parseProviderRequest(text: string): CredentialProviderRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new CredentialProviderError(
      'the request on stdin is not JSON; kubelet sends a CredentialProviderRequest',
      {
        cause,
      },
    );
  }
  const r = requestSchema.safeParse(doc);
  if (!r.success) {
    throw new CredentialProviderError(
      `the request on stdin is not a CredentialProviderRequest (${r.error.issues.map((i) => i.path.join('.') || i.message).join(', ')})`,
    );
  }
  if (r.data.apiVersion !== CREDENTIAL_PROVIDER_API_VERSION) {
    throw new CredentialProviderError(
      `apiVersion ${JSON.stringify(r.data.apiVersion)} is not supported; set apiVersion: ${CREDENTIAL_PROVIDER_API_VERSION} in the CredentialProviderConfig`,
    );
  }
  return r.data;
}

/** A JWT's `exp` in ms, if the string is a JWT with one. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the credentials file's text: auths plus pullkeeper's expiry map. */
export function parseProviderCredentials(text: string): ProviderCredentials {
  const config = parseDockerConfig(text, 'config.json');
  const expiry = new Map<string, number>();
  const doc = JSON.parse(text) as { pullkeeperExpiry?: unknown };
  const declared = doc?.pullkeeperExpiry;
  if (declared && typeof declared === 'object') {
    for (const [k, v] of Object.entries(declared as Record<string, unknown>)) {
      const key = normalizeKeyringKey(k);
      const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
      if (key !== undefined && Number.isFinite(ms)) expiry.set(key, ms);
    }
  }
  for (const [k, e] of Object.entries(config.auths)) {
    const key = normalizeKeyringKey(k);
    if (key === undefined || expiry.has(key)) continue;
    const exp = jwtExpiry(e.password);
    if (exp !== undefined) expiry.set(key, exp);
  }
  return { config, expiry };
}

/** Go's time.Duration String for whole seconds: `1h2m3s`, `45m0s`, `0s`. */
export function goDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s === 0) return '0s';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

function hostOf(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash);
}

/**
 * The response for one request. `auth` is keyed by the keyring key that
 * matched (the pattern, e.g. `*.azurecr.io` or `quay.io/team`), most specific
 * first as kubelet's keyring orders them.
 *
 * cacheKeyType: `Registry` when no key with a path covers the image's
 * registry (one answer serves the whole registry); `Image` otherwise (the
 * answer depends on the repository).
 */
export function answerProviderRequest(
  req: CredentialProviderRequest,
  creds: ProviderCredentials,
  now: number,
): CredentialProviderResponse {
  const keyring = buildKeyring(creds.config);
  const matches = keyring.lookup(req.image);
  const base = { apiVersion: CREDENTIAL_PROVIDER_API_VERSION, kind: 'CredentialProviderResponse' as const };
  if (matches.length === 0) return { ...base, cacheKeyType: 'Registry', cacheDuration: '0s', auth: {} };
  const auth: CredentialProviderResponse['auth'] = {};
  let earliest: number | undefined;
  for (const m of matches) {
    if (Object.hasOwn(auth, m.key)) continue;
    auth[m.key] = { username: m.username, password: m.password };
    const exp = creds.expiry.get(m.key);
    if (exp !== undefined) earliest = earliest === undefined ? exp : Math.min(earliest, exp);
  }
  // Any key with a path that covers this registry makes the answer repository-specific.
  const registry = parseImageRef(req.image).domain;
  const pathKey = keyring.keys.some((k) => k.includes('/') && urlsMatch(hostOf(k), registry));
  const res: CredentialProviderResponse = { ...base, cacheKeyType: pathKey ? 'Image' : 'Registry', auth };
  if (earliest !== undefined) res.cacheDuration = goDuration((earliest - now) / 1000);
  return res;
}
