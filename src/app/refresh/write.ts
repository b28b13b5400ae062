/** Step 5's writes: one Secret, one ServiceAccount, each converging under concurrent refreshes. */
import {
  isOurs,
  type NamespacePlan,
  type ServiceAccountState,
  TENANT_LABEL,
} from '../../core/rotation-plan.js';
import { KubeApiError, type KubeClient } from '../../kube/client.js';
import {
  addImagePullSecret,
  applySecret,
  createSecret,
  getSecret,
  getServiceAccount,
  type SecretBody,
  toSecretState,
} from '../../kube/resources.js';
import { describeKubeError, type NamespaceReport, type RefreshReport, sha256 } from './model.js';

/** Writes tried per Secret or ServiceAccount when others keep changing it under us. */
export const WRITE_ATTEMPTS = 5;

type SecretWrite = { outcome: 'created' | 'updated' | 'unchanged' } | { outcome: 'conflict'; reason: string };

/**
 * Creates or updates one pull Secret so that concurrent refreshes converge: a 409 (someone
 * created or changed it since we read) re-reads it. Holding what we would write (ours, this
 * tenant's, same data) it is `unchanged`; still ours but different, the write is retried
 * with the fresh resourceVersion (at most WRITE_ATTEMPTS writes); not ours (and no adopt) or
 * another tenant's, it is a genuine conflict.
 */
export async function writeSecret(
  k: KubeClient,
  b: SecretBody,
  first: { kind: 'create' } | { kind: 'update'; resourceVersion: string },
  want: { tenant: string; adopt: boolean; hash: string },
  signal: AbortSignal,
): Promise<SecretWrite> {
  let next = first;
  let wrote: 'created' | 'updated' = first.kind === 'create' ? 'created' : 'updated';
  for (let attempt = 1; ; attempt++) {
    try {
      if (next.kind === 'create') await createSecret(k, b, signal);
      else await applySecret(k, b, next.resourceVersion, signal);
      return { outcome: wrote };
    } catch (err) {
      const retry =
        err instanceof KubeApiError && (err.status === 409 || (err.status === 404 && next.kind === 'update'));
      if (!retry || attempt >= WRITE_ATTEMPTS) throw err;
    }
    const cur = await getSecret(k, b.namespace, b.name, signal);
    if (!cur) {
      next = { kind: 'create' };
      wrote = 'created';
      continue;
    }
    const s = toSecretState(cur);
    const data = cur.data?.['.dockerconfigjson'];
    if (!isOurs(s) && !want.adopt)
      return {
        outcome: 'conflict',
        reason: `a Secret named ${b.name} appeared while pullkeeper was writing and is not managed by pullkeeper; set adopt: true on the tenant to take it over, or choose another secretName`,
      };
    if (isOurs(s) && !isOurs(s, want.tenant))
      return {
        outcome: 'conflict',
        reason: `Secret ${b.name} belongs to tenant ${s.labels[TENANT_LABEL] ?? '?'}; give the tenants different secretNames`,
      };
    if (
      isOurs(s, want.tenant) &&
      cur.type === 'kubernetes.io/dockerconfigjson' &&
      data !== undefined &&
      sha256(Buffer.from(data, 'base64').toString('utf8')) === want.hash
    )
      return { outcome: 'unchanged' };
    next = { kind: 'update', resourceVersion: s.resourceVersion };
    wrote = 'updated';
  }
}

/**
 * Adds the Secret to one ServiceAccount's imagePullSecrets; the patch is guarded by what we
 * read, so a concurrent change (409/422) re-reads it and tries again. `unchanged` when the
 * entry is already there (another refresh put it) or the ServiceAccount is gone.
 */
async function patchServiceAccount(
  k: KubeClient,
  sa: ServiceAccountState,
  secretName: string,
  signal: AbortSignal,
): Promise<'patched' | 'unchanged'> {
  let cur: ServiceAccountState | undefined = sa;
  for (let attempt = 1; cur && !(cur.imagePullSecrets ?? []).includes(secretName); attempt++) {
    try {
      await addImagePullSecret(k, cur, secretName, signal);
      return 'patched';
    } catch (err) {
      if (!(err instanceof KubeApiError) || ![409, 422].includes(err.status) || attempt >= WRITE_ATTEMPTS)
        throw err;
      cur = await getServiceAccount(k, sa.namespace, sa.name, signal);
    }
  }
  return 'unchanged';
}

/** One namespace's ServiceAccount patches (and the listed ones that do not exist), into its report entry. */
export async function patchServiceAccounts(
  k: KubeClient,
  p: Pick<NamespacePlan, 'namespace' | 'patchServiceAccounts' | 'missingServiceAccounts'>,
  secretName: string,
  r: NamespaceReport,
  report: RefreshReport,
  o: { dryRun: boolean; signal: AbortSignal },
): Promise<void> {
  const fail = (why: string) => {
    r.serviceAccounts = 'failed';
    r.reason = [r.reason, why].filter(Boolean).join('; ');
  };
  if (p.missingServiceAccounts.length)
    fail(`ServiceAccount ${p.missingServiceAccounts.join(', ')} not found`);
  for (const sa of p.patchServiceAccounts) {
    report.plan?.push(`~ patch ${p.namespace}/serviceaccount/${sa.name}: imagePullSecrets += ${secretName}`);
    try {
      const done = o.dryRun ? 'patched' : await patchServiceAccount(k, sa, secretName, o.signal);
      if (done === 'patched' && r.serviceAccounts !== 'failed') r.serviceAccounts = 'patched';
    } catch (err) {
      fail(`ServiceAccount ${sa.name}: ${describeKubeError(err)}`);
    }
  }
}
