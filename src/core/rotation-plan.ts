/**
 * Desired pull secrets vs what the cluster has: what to create, update, leave,
 * prune or report as a conflict (pure; the kube adapter reads the state and
 * applies the plan). The cluster is the state: a Secret carries our label, the
 * content hash and the credentials' expiry, so an unchanged one is recognised
 * without reading its data and a fresh one without minting.
 */

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'pullkeeper';
export const TENANT_LABEL = 'pullkeeper.dev/tenant';
export const HASH_ANNOTATION = 'pullkeeper.dev/content-hash';
export const EXPIRES_ANNOTATION = 'pullkeeper.dev/expires-at';
export const REFRESH_ANNOTATION = 'pullkeeper.dev/refresh-at';
export const REGISTRIES_ANNOTATION = 'pullkeeper.dev/registries';

/** A Secret as the plan needs it (no data). */
export interface SecretState {
  namespace: string;
  name: string;
  resourceVersion: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  type?: string;
}

export interface ServiceAccountState {
  namespace: string;
  name: string;
  resourceVersion: string;
  /** Names in `imagePullSecrets`, in order; undefined when the field is absent. */
  imagePullSecrets?: string[];
}

export interface DesiredSecret {
  /** sha256 hex of the rendered `.dockerconfigjson`. */
  hash: string;
  /** Registries rendered in, in priority order. */
  registries: string[];
  /** Registries of the tenant that failed this run (their entries are missing). */
  missing: string[];
}

export interface TenantPlanInput {
  tenant: string;
  secretName: string;
  /** `'*'`: every ServiceAccount of the namespace. */
  serviceAccounts: '*' | string[];
  adopt: boolean;
  prune: boolean;
  /** The tenant's namespaces now. */
  namespaces: string[];
  /** Namespaces that exist but are being deleted: nothing is written there. */
  terminating?: string[];
  /** Undefined when no registry of the tenant produced a credential. */
  desired?: DesiredSecret;
  /** Every Secret named `secretName`, and every Secret of ours labelled with this tenant. */
  secrets: SecretState[];
  serviceAccountsByNamespace: Map<string, ServiceAccountState[]>;
}

export type SecretAction =
  | { kind: 'create' }
  | { kind: 'update'; resourceVersion: string; adopt: boolean }
  | { kind: 'unchanged' }
  | { kind: 'conflict'; reason: string }
  | { kind: 'skip'; reason: string };

export interface NamespacePlan {
  namespace: string;
  secret: SecretAction;
  /** ServiceAccounts that need our entry added. */
  patchServiceAccounts: ServiceAccountState[];
  /** Configured ServiceAccounts that do not exist in the namespace. */
  missingServiceAccounts: string[];
}

export interface TenantPlan {
  tenant: string;
  namespaces: NamespacePlan[];
  /** Our Secrets of this tenant in namespaces that are no longer the tenant's (deleted only with prune). */
  prune: SecretState[];
  /** Same, kept because prune is off (reported). */
  orphans: SecretState[];
}

export function isOurs(s: SecretState, tenant?: string): boolean {
  return (
    s.labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
    (tenant === undefined || s.labels[TENANT_LABEL] === tenant)
  );
}

/**
 * One namespace's ServiceAccounts: the wanted ones (listed, or every one with '*') that lack
 * `secretName` in imagePullSecrets, and the listed ones that do not exist.
 */
export function serviceAccountPlan(
  serviceAccounts: '*' | string[],
  secretName: string,
  sas: ServiceAccountState[],
): Pick<NamespacePlan, 'patchServiceAccounts' | 'missingServiceAccounts'> {
  const wanted = serviceAccounts === '*' ? sas.map((s) => s.name) : serviceAccounts;
  const have = new Map(sas.map((s) => [s.name, s]));
  return {
    missingServiceAccounts: wanted.filter((n) => !have.has(n)),
    patchServiceAccounts: wanted
      .map((n) => have.get(n))
      .filter((s): s is ServiceAccountState => !!s && !(s.imagePullSecrets ?? []).includes(secretName)),
  };
}

/**
 * Plans one tenant.
 *
 *   no Secret yet                          -> create
 *   ours, same hash                        -> unchanged (no write)
 *   ours, other hash                       -> update (guarded by resourceVersion)
 *   not ours, adopt: false                 -> conflict (left alone, reported)
 *   ours but another tenant's              -> conflict
 *   no credential, or some missing + exists -> skip (the last good Secret stays)
 */
export function planTenant(input: TenantPlanInput): TenantPlan {
  const terminating = new Set(input.terminating ?? []);
  const inTenant = new Set(input.namespaces);
  const byNs = new Map<string, SecretState>();
  for (const s of input.secrets) if (s.name === input.secretName) byNs.set(s.namespace, s);

  const namespaces = [...input.namespaces].sort().map((ns): NamespacePlan => {
    const existing = byNs.get(ns);
    const { patchServiceAccounts, missingServiceAccounts } = serviceAccountPlan(
      input.serviceAccounts,
      input.secretName,
      input.serviceAccountsByNamespace.get(ns) ?? [],
    );
    let secret: SecretAction;
    if (terminating.has(ns)) secret = { kind: 'skip', reason: 'namespace is terminating' };
    else if (!input.desired)
      secret = { kind: 'skip', reason: 'no registry of the tenant produced a credential' };
    else if (!existing) secret = { kind: 'create' };
    else if (!isOurs(existing)) {
      secret = input.adopt
        ? { kind: 'update', resourceVersion: existing.resourceVersion, adopt: true }
        : {
            kind: 'conflict',
            reason: `a Secret named ${input.secretName} exists and is not managed by pullkeeper; set adopt: true on the tenant to take it over, or choose another secretName`,
          };
    } else if (!isOurs(existing, input.tenant))
      secret = {
        kind: 'conflict',
        reason: `Secret ${input.secretName} belongs to tenant ${existing.labels[TENANT_LABEL] ?? '?'}; give the tenants different secretNames`,
      };
    else if (input.desired.missing.length)
      secret = {
        kind: 'skip',
        reason: `not updated: registr${input.desired.missing.length === 1 ? 'y' : 'ies'} ${input.desired.missing.join(', ')} failed this run; the last good Secret stays`,
      };
    else if (existing.annotations[HASH_ANNOTATION] === input.desired.hash) secret = { kind: 'unchanged' };
    else secret = { kind: 'update', resourceVersion: existing.resourceVersion, adopt: false };
    // A ServiceAccount is pointed at the Secret only where the Secret is (or will be) ours.
    const saOk =
      secret.kind === 'create' ||
      secret.kind === 'update' ||
      secret.kind === 'unchanged' ||
      (secret.kind === 'skip' && !!existing && isOurs(existing, input.tenant));
    return {
      namespace: ns,
      secret,
      patchServiceAccounts: saOk && !terminating.has(ns) ? patchServiceAccounts : [],
      missingServiceAccounts,
    };
  });
  const stale = input.secrets.filter((s) => isOurs(s, input.tenant) && !inTenant.has(s.namespace));
  return {
    tenant: input.tenant,
    namespaces,
    prune: input.prune ? stale : [],
    orphans: input.prune ? [] : stale,
  };
}

/** When a Secret is due for a refresh, from its annotations (undefined: no annotation, treat as due). */
export function secretRefreshDue(s: SecretState, now: Date): boolean {
  const at = s.annotations[REFRESH_ANNOTATION];
  if (!at) return true;
  const t = Date.parse(at);
  return Number.isNaN(t) || now.getTime() >= t;
}
