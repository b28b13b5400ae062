/**
 * The answer of a kubelet credential provider (`credentialprovider.kubelet.k8s.io/v1`,
 * k8s.io/kubelet/pkg/apis/credentialprovider/v1): which of a docker config's
 * credentials match an image (kubelet's keyring rules), how the kubelet may
 * cache the answer (`cacheKeyType`) and for how long (`cacheDuration`, never
 * past the earliest expiry among the credentials returned). Pure: the node
 * plugin (src/runner/credential-provider.ts) and the broker (src/app/broker.ts)
 * both answer through here.
 */
import type { DockerConfig } from './docker-config.js';
import { parseImageRef } from './image-ref.js';
import { buildKeyring, urlsMatch } from './keyring.js';

export const CREDENTIAL_PROVIDER_API_VERSION = 'credentialprovider.kubelet.k8s.io/v1';

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

/**
 * No credential: empty `auth`, cached for `seconds` (0s: the kubelet asks again on the
 * next pull, so a credential that appears later is used at once).
 */
export function emptyProviderResponse(seconds = 0): CredentialProviderResponse {
  return {
    apiVersion: CREDENTIAL_PROVIDER_API_VERSION,
    kind: 'CredentialProviderResponse',
    cacheKeyType: 'Registry',
    cacheDuration: goDuration(seconds),
    auth: {},
  };
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
  req: { image: string },
  creds: ProviderCredentials,
  now: number,
): CredentialProviderResponse {
  const keyring = buildKeyring(creds.config);
  const matches = keyring.lookup(req.image);
  const base = { apiVersion: CREDENTIAL_PROVIDER_API_VERSION, kind: 'CredentialProviderResponse' as const };
  if (matches.length === 0) return emptyProviderResponse(0);
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
