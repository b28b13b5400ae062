/**
 * `pullkeeper doctor`: checks each piece a user can get wrong, and says how to
 * fix it. Each check is independent; one failing never hides the others.
 */
import type { PullkeeperConfig, SecretRef } from '../config/schema.js';
import { createSecretResolver, describeSecretRef } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { CredentialCache, mintCredentials } from './mint.js';

export interface DoctorFinding {
  /** `secret`, `registry`, `cluster`, `node`. */
  area: string;
  /** What was checked: `registries[1] prod-ecr`, `secret fromSsm /pk/x`. */
  subject: string;
  ok: boolean;
  detail: string;
  /** What to do about a failure. */
  fix?: string;
}

/** More checks plug in here (cluster RBAC, node SSH) as the adapters provide them. */
export type DoctorCheck = (config: PullkeeperConfig, signal: AbortSignal) => Promise<DoctorFinding[]>;

/** Every secret reference of the config, with where it sits. */
export function secretRefsOf(config: PullkeeperConfig): Array<{ where: string; ref: SecretRef }> {
  const out: Array<{ where: string; ref: SecretRef }> = [];
  const walk = (v: unknown, path: string) => {
    if (!v || typeof v !== 'object') return;
    const keys = Object.keys(v);
    const isRef =
      !Array.isArray(v) &&
      keys.length >= 1 &&
      ['value', 'fromEnv', 'fromFile', 'fromSsm', 'fromSecretsManager'].some((k) => keys.includes(k));
    if (isRef) {
      out.push({ where: path, ref: v as SecretRef });
      return;
    }
    if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(x, `${path}[${i}]`);
    } else for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
  };
  walk(config, '');
  return out;
}

export const checkSecretRefs: DoctorCheck = async (config, signal) => {
  const r = createSecretResolver({ signal });
  return Promise.all(
    secretRefsOf(config).map(async ({ where, ref }) => {
      const subject = `${where} (${describeSecretRef(ref)})`;
      try {
        await r.resolve(ref);
        return { area: 'secret', subject, ok: true, detail: 'resolves' };
      } catch (err) {
        return {
          area: 'secret',
          subject,
          ok: false,
          detail: err instanceof PullkeeperError ? err.message : 'cannot be resolved',
          fix: 'fromEnv: export the variable; fromFile: create the file; fromSsm/fromSecretsManager: create it in the region, and grant the function read access (infra/aws/iam.yml)',
        };
      }
    }),
  );
};

/** Fix hints by the words of a mint error. */
function mintFix(error: string): string {
  if (/ecr:GetAuthorizationToken|ecr-public:GetAuthorizationToken/.test(error))
    return 'add the named IAM action to the function role (infra/aws/iam.yml)';
  if (/AssumeRole/.test(error))
    return 'allow sts:AssumeRole on the role, and name this identity in the role trust policy';
  if (/AADSTS|AcrPull|Entra/.test(error))
    return 'check tenantId, clientId and the secret; grant the identity AcrPull on the registry';
  if (/invalid_grant|Google/.test(error))
    return 'create a new service-account key; grant roles/artifactregistry.reader';
  if (/verification failed/.test(error))
    return 'the credential did not log in: check the registry host, the user and the password; for a private endpoint set verifyEndpoint';
  if (/^secret /.test(error)) return 'fix the secret reference named above';
  return 'see docs/providers.md for this kind';
}

export const checkRegistries: DoctorCheck = async (config, signal) => {
  const res = await mintCredentials(config, { signal, cache: new CredentialCache(), force: true });
  return res.registries.map((r) => ({
    area: 'registry',
    subject: `${r.name} (${r.kind})`,
    ok: r.status !== 'failed',
    detail:
      r.status === 'failed'
        ? (r.error ?? 'failed')
        : `mints${r.verified ? ' and logs in' : r.verified === null ? ' (login check off)' : ''}; expires ${r.expiresAt ?? 'never'}`,
    ...(r.status === 'failed' ? { fix: mintFix(r.error ?? '') } : {}),
  }));
};

export async function runDoctor(
  config: PullkeeperConfig,
  checks: DoctorCheck[],
  signal: AbortSignal,
): Promise<DoctorFinding[]> {
  const results = await Promise.allSettled(checks.map((c) => c(config, signal)));
  return results.flatMap((r, i) =>
    r.status === 'fulfilled'
      ? r.value
      : [
          {
            area: 'doctor',
            subject: `check ${i + 1}`,
            ok: false,
            detail: `the check itself failed (${(r.reason as Error)?.name ?? 'error'})`,
          },
        ],
  );
}
