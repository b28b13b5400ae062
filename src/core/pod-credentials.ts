/**
 * The credential broker's rules (docs/pod-credentials.md), pure: who a verified
 * service account token speaks for, which tenants serve that pod, which of their
 * registries it gets, and how long a verified token may be reused.
 *
 * A ServiceAccount's username is `system:serviceaccount:<namespace>:<name>`
 * (k8s.io/apiserver/pkg/authentication/serviceaccount). A token bound to a pod
 * carries the pod's name and uid: a TokenReview answers them in
 * `status.user.extra["authentication.kubernetes.io/pod-name"|"…/pod-uid"]`,
 * the JWT in its private claim `kubernetes.io.pod` (KEP-4412 relies on this
 * binding: the kubelet requests the token bound to the pod it pulls for).
 */

/** Who a verified token speaks for. */
export interface PodIdentity {
  /** The configured cluster that verified the token. */
  cluster: string;
  namespace: string;
  serviceAccount: string;
  serviceAccountUid?: string;
  /** Set for pod-bound tokens (what the kubelet sends). */
  pod?: { name: string; uid?: string };
}

const SA_PREFIX = 'system:serviceaccount:';

/**
 * `system:serviceaccount:team-a:default` -> { namespace: 'team-a', name: 'default' };
 * anything else (a user, a node, a malformed name) -> undefined.
 */
export function parseServiceAccountUsername(
  username: string,
): { namespace: string; name: string } | undefined {
  if (!username.startsWith(SA_PREFIX)) return undefined;
  const parts = username.slice(SA_PREFIX.length).split(':');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  return { namespace: parts[0], name: parts[1] };
}

/** The first value of a TokenReview `extra` entry (`extra` maps to string lists). */
function extraOf(extra: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = extra?.[key];
  const first = Array.isArray(v) ? v[0] : undefined;
  return typeof first === 'string' && first ? first : undefined;
}

/** A TokenReview's `status.user` as a PodIdentity (undefined when it is not a ServiceAccount). */
export function identityFromReview(
  cluster: string,
  user: { username?: string; uid?: string; extra?: Record<string, unknown> },
): PodIdentity | undefined {
  const sa = parseServiceAccountUsername(user.username ?? '');
  if (!sa) return undefined;
  const podName = extraOf(user.extra, 'authentication.kubernetes.io/pod-name');
  const podUid = extraOf(user.extra, 'authentication.kubernetes.io/pod-uid');
  return {
    cluster,
    namespace: sa.namespace,
    serviceAccount: sa.name,
    ...(user.uid ? { serviceAccountUid: user.uid } : {}),
    ...(podName ? { pod: { name: podName, ...(podUid ? { uid: podUid } : {}) } } : {}),
  };
}

/** The verified claims of a service account JWT as a PodIdentity (undefined when they are not one). */
export function identityFromClaims(
  cluster: string,
  claims: Record<string, unknown>,
): PodIdentity | undefined {
  const sa = parseServiceAccountUsername(typeof claims.sub === 'string' ? claims.sub : '');
  if (!sa) return undefined;
  const k8s = (claims['kubernetes.io'] ?? {}) as {
    namespace?: unknown;
    serviceaccount?: { name?: unknown; uid?: unknown };
    pod?: { name?: unknown; uid?: unknown };
  };
  // The private claim must agree with the subject when present.
  if (k8s.namespace !== undefined && k8s.namespace !== sa.namespace) return undefined;
  if (k8s.serviceaccount?.name !== undefined && k8s.serviceaccount.name !== sa.name) return undefined;
  const saUid = typeof k8s.serviceaccount?.uid === 'string' ? k8s.serviceaccount.uid : undefined;
  const podName = typeof k8s.pod?.name === 'string' ? k8s.pod.name : undefined;
  const podUid = typeof k8s.pod?.uid === 'string' ? k8s.pod.uid : undefined;
  return {
    cluster,
    namespace: sa.namespace,
    serviceAccount: sa.name,
    ...(saUid ? { serviceAccountUid: saUid } : {}),
    ...(podName ? { pod: { name: podName, ...(podUid ? { uid: podUid } : {}) } } : {}),
  };
}

/** A tenant's `podCredentials.serviceAccounts` rule: `*` (or no rule) allows any. */
export function serviceAccountAllowed(rule: '*' | readonly string[] | undefined, name: string): boolean {
  return rule === undefined || rule === '*' || rule.includes(name);
}

/**
 * The registries a pod gets: the tenant's, in the tenant's order, narrowed by the
 * ServiceAccount's annotation (comma-separated registry names) when it has one. The
 * annotation only narrows: a name the tenant does not have is ignored.
 *
 *   narrowRegistries(['ecr', 'quay'], undefined)      -> ['ecr', 'quay']
 *   narrowRegistries(['ecr', 'quay'], 'quay, ghcr')   -> ['quay']
 *   narrowRegistries(['ecr', 'quay'], '')             -> []
 */
export function narrowRegistries(
  tenantRegistries: readonly string[],
  annotation: string | undefined,
): string[] {
  if (annotation === undefined) return [...tenantRegistries];
  const wanted = new Set(
    annotation
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  return tenantRegistries.filter((r) => wanted.has(r));
}

/**
 * Until when (ms) a verified token may be reused without asking its cluster again:
 * `marginMs` before its `exp`, and at most `maxMs` from now. Never in the past.
 *
 *   verifiedUntil(now, now + 3600_000, 300_000, 10_000) -> now + 300_000
 *   verifiedUntil(now, now + 5_000, 300_000, 10_000)    -> now   (too close to expiry: not cached)
 */
export function verifiedUntil(
  nowMs: number,
  expMs: number | undefined,
  maxMs: number,
  marginMs: number,
): number {
  const byExp = expMs === undefined ? nowMs : expMs - marginMs;
  return Math.max(nowMs, Math.min(byExp, nowMs + maxMs));
}

/** The unverified `exp` and `iss` of a JWT (to pick a verifier and bound a cache; never trusted). */
export function unverifiedJwtClaims(token: string): { exp?: number; iss?: string } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[0] || !parts[1] || !parts[2]) return undefined;
  try {
    const c = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as {
      exp?: unknown;
      iss?: unknown;
    };
    if (!c || typeof c !== 'object') return undefined;
    return {
      ...(typeof c.exp === 'number' && Number.isFinite(c.exp) ? { exp: c.exp * 1000 } : {}),
      ...(typeof c.iss === 'string' ? { iss: c.iss } : {}),
    };
  } catch {
    return undefined;
  }
}
