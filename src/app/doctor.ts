/**
 * `pullkeeper doctor`: checks each piece a user can get wrong, and says how to
 * fix it. Each check is independent; one failing never hides the others.
 */
import type { PullkeeperConfig, SecretRef, TenantConfig } from '../config/schema.js';
import { createSecretResolver, describeSecretRef } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import type { KubeClient } from '../kube/client.js';
import { CredentialCache, mintCredentials } from './mint.js';

export interface DoctorFinding {
  /** `secret`, `registry`, `cluster`, `node`. */
  area: string;
  /** What was checked: `registries[1] prod-ecr`, `secret fromSsm /pk/x`. */
  subject: string;
  ok: boolean;
  detail: string;
  /** What to do about a failure (or a warning). */
  fix?: string;
  /** ok, but worth fixing (more permission than needed): printed as WARN, does not fail. */
  warning?: boolean;
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
  // First: an endpoint that did not answer (or whose TLS is not trusted) says nothing about the credential.
  if (
    /cannot reach|did not answer|could not be reached|not trusted|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ETIMEDOUT|timed out/.test(
      error,
    )
  )
    return 'the registry or its token endpoint could not be reached from here (or its TLS certificate is not trusted), so the credential was not tested: check the host name, DNS, the network route and any proxy; set verifyEndpoint for a private endpoint, PULLKEEPER_EXTRA_CA_CERTS for a private CA';
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
  /** Called as each check finishes, with its findings (progress on a terminal). */
  onProgress?: (findings: DoctorFinding[], done: number, total: number) => void,
): Promise<DoctorFinding[]> {
  let done = 0;
  const results = await Promise.allSettled(
    checks.map(async (c) => {
      try {
        const f = await c(config, signal);
        onProgress?.(f, ++done, checks.length);
        return f;
      } catch (err) {
        onProgress?.([], ++done, checks.length);
        throw err;
      }
    }),
  );
  return results.flatMap((r, i) =>
    r.status === 'fulfilled'
      ? r.value
      : [
          {
            area: 'doctor',
            subject: `check ${i + 1}`,
            ok: false,
            // Errors we throw on purpose say what went wrong and what to do (and carry no secret).
            detail:
              r.reason instanceof PullkeeperError
                ? r.reason.message
                : `the check itself failed (${(r.reason as Error)?.name ?? 'error'})`,
          },
        ],
  );
}

/** SelfSubjectAccessReview: may the config's identity do this? */
async function allowed(
  k: KubeClient,
  /** namespace '' asks about every namespace at once (a cluster-wide list). */
  attrs: { namespace: string; group: string; resource: string; verb: string; name?: string },
  signal: AbortSignal,
): Promise<boolean> {
  const r = await k.request<{ status?: { allowed?: boolean } }>(
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: attrs },
      },
      signal,
    },
  );
  return r.status?.allowed === true;
}

/** The verbs refresh needs in each of a tenant's namespaces (what `pullkeeper rbac` grants), for SelfSubjectAccessReview. */
export function tenantVerbs(
  t: TenantConfig,
  name: string,
): Array<{ group: string; resource: string; verb: string; name?: string }> {
  return [
    { group: '', resource: 'secrets', verb: 'list', name },
    { group: '', resource: 'secrets', verb: 'create' },
    { group: '', resource: 'secrets', verb: 'patch', name },
    ...(t.serviceAccounts === '*'
      ? [
          { group: '', resource: 'serviceaccounts', verb: 'list' },
          { group: '', resource: 'serviceaccounts', verb: 'patch' },
        ]
      : t.serviceAccounts.flatMap((sa) => [
          { group: '', resource: 'serviceaccounts', verb: 'list', name: sa },
          { group: '', resource: 'serviceaccounts', verb: 'patch', name: sa },
        ])),
    { group: '', resource: 'events', verb: 'create' },
  ];
}

/** A Secret name no config uses: if the identity may read it, it may read Secrets it does not need. */
export const UNUSED_SECRET_PROBE = 'pullkeeper-doctor-not-a-pull-secret';

/**
 * Least privilege: may the identity read Secrets pullkeeper never needs (one in kube-system
 * under a name no tenant uses, or every Secret in the cluster)? A warning, not a failure.
 */
async function excessSecretReads(
  k: KubeClient,
  cluster: string,
  config: PullkeeperConfig,
  signal: AbortSignal,
): Promise<DoctorFinding> {
  const extra: string[] = [];
  if (
    await allowed(
      k,
      { namespace: 'kube-system', group: '', resource: 'secrets', verb: 'get', name: UNUSED_SECRET_PROBE },
      signal,
    )
  )
    extra.push('get Secrets in kube-system');
  if (await allowed(k, { namespace: '', group: '', resource: 'secrets', verb: 'list' }, signal))
    extra.push('list every Secret in the cluster');
  const subject = `${cluster} Secret access`;
  if (!extra.length)
    return { area: 'cluster', subject, ok: true, detail: "only the tenants' Secret names can be read" };
  return {
    area: 'cluster',
    subject,
    ok: true,
    warning: true,
    detail: `the identity can read Secrets it does not need: ${extra.join('; ')}`,
    fix: `apply \`pullkeeper rbac --config FILE${config.clusters.length > 1 ? ` --cluster ${cluster}` : ''}\` (Secrets limited to the tenants' names) and remove the broader bindings of this identity (kubectl get clusterrolebindings,rolebindings -A -o wide)`,
  };
}

/** Cluster identity: can it list namespaces, and do each tenant namespace's verbs pass SelfSubjectAccessReview? */
export const checkClusterRbac: DoctorCheck = async (config, signal) => {
  const { kubeClientFor } = await import('../kube/connect.js');
  const { listNamespaces } = await import('../kube/resources.js');
  const { defaultSecretName, tenantNamespaces } = await import('./refresh.js');
  const out: DoctorFinding[] = [];
  for (const cluster of config.clusters) {
    const tenants = config.tenants.filter((t) => (t.cluster ?? config.clusters[0]?.name) === cluster.name);
    let k: Awaited<ReturnType<typeof kubeClientFor>>;
    let nss: Awaited<ReturnType<typeof listNamespaces>>;
    try {
      k = await kubeClientFor(cluster, createSecretResolver({ signal }));
      nss = await listNamespaces(k, signal);
    } catch (err) {
      const { clusterFailure } = await import('../kube/failure.js');
      const rbac =
        'apply the output of "pullkeeper rbac --config FILE" (ClusterRole pullkeeper-inventory: "list" on namespaces) for this identity';
      const f = clusterFailure(err, rbac);
      out.push({
        area: 'cluster',
        subject: cluster.name,
        ok: false,
        detail: `cannot list namespaces: ${f.text}`,
        // Only a 403 is about RBAC; an API server that cannot be reached or refuses the identity is not.
        fix:
          f.kind === 'forbidden'
            ? rbac
            : f.kind === 'unauthorized'
              ? "fix the cluster entry's credentials (kubeconfig user, eks/aks/gke identity); the API server did not accept them"
              : f.kind === 'access' || f.kind === 'other' || f.kind === 'api'
                ? 'fix the cluster entry as the message says (kubeconfig, inCluster, eks, aks or gke)'
                : "check the cluster's server address and that this machine can reach it (network route, VPC, firewall, proxy); its permissions can be checked once it answers",
      });
      continue;
    }
    try {
      out.push({
        area: 'cluster',
        subject: cluster.name,
        ok: true,
        detail: `reachable; ${nss.length} namespaces visible`,
      });
      out.push(await excessSecretReads(k, cluster.name, config, signal));
      for (const t of tenants) {
        for (const ns of tenantNamespaces(t, nss).names) {
          const missing: string[] = [];
          for (const v of tenantVerbs(t, defaultSecretName(t))) {
            if (!(await allowed(k, { namespace: ns, ...v }, signal)))
              missing.push(`${v.verb} ${v.resource}${v.name ? `/${v.name}` : ''}`);
          }
          out.push({
            area: 'cluster',
            subject: `${cluster.name} namespace ${ns} (tenant ${t.name})`,
            ok: missing.length === 0,
            detail: missing.length
              ? `not allowed: ${missing.join(', ')}`
              : 'every verb refresh needs is allowed',
            ...(missing.length
              ? {
                  fix: `apply \`pullkeeper rbac --config FILE\` for this cluster, or bind its ClusterRole pullkeeper-tenant-writer in ${ns} (RoleBinding) when you use --per-namespace`,
                }
              : {}),
          });
        }
      }
    } finally {
      k.close();
    }
  }
  return out;
};

/** The status ConfigMap (statusStore): its namespace exists, and the identity may create, read and update it. */
export const checkStatusStore: DoctorCheck = async (config, signal) => {
  const { statusStoreOf } = await import('./status-store.js');
  const ref = statusStoreOf(config);
  if (!ref) return [];
  const cluster = config.clusters.find((c) => c.name === ref.cluster);
  if (!cluster) return [];
  const { kubeClientFor } = await import('../kube/connect.js');
  const { getNamespace } = await import('../kube/resources.js');
  const subject = `${ref.cluster} status store ${ref.namespace}/${ref.name}`;
  const fix = `apply \`pullkeeper rbac --config FILE\` (namespace ${ref.namespace}, ClusterRole pullkeeper-status and its RoleBinding), set statusStore.namespace/name to where you keep it, or set statusStore: false`;
  let k: Awaited<ReturnType<typeof kubeClientFor>>;
  try {
    k = await kubeClientFor(cluster, createSecretResolver({ signal }));
  } catch (err) {
    return [{ area: 'cluster', subject, ok: false, detail: (err as Error).message, fix }];
  }
  try {
    if (!(await getNamespace(k, ref.namespace, signal)))
      return [
        { area: 'cluster', subject, ok: false, detail: `namespace ${ref.namespace} does not exist`, fix },
      ];
    const missing: string[] = [];
    for (const [verb, name] of [
      ['create', undefined],
      ['get', ref.name],
      ['update', ref.name],
    ] as const) {
      const ok = await allowed(
        k,
        { namespace: ref.namespace, group: '', resource: 'configmaps', verb, ...(name ? { name } : {}) },
        signal,
      );
      if (!ok) missing.push(`${verb} configmaps${name ? `/${name}` : ''}`);
    }
    return [
      {
        area: 'cluster',
        subject,
        ok: missing.length === 0,
        detail: missing.length
          ? `not allowed: ${missing.join(', ')} (the status page would show only what each process saw)`
          : 'the last mint and push results can be kept here',
        ...(missing.length ? { fix } : {}),
      },
    ];
  } catch (err) {
    const { clusterFailure } = await import('../kube/failure.js');
    const f = clusterFailure(err, fix);
    return [
      {
        area: 'cluster',
        subject,
        ok: false,
        detail: `cannot check: ${f.text}`,
        // An API server that cannot be reached says nothing about the RBAC: the cluster finding above has the fix.
        ...(f.kind === 'forbidden' ? { fix } : {}),
      },
    ];
  } finally {
    k.close();
  }
};

/** Nodes: each one reachable over SSH with the pinned host key (a read-only drift check). */
export const checkNodes: DoctorCheck = async (config, signal) => {
  if (!config.nodes) return [];
  const { pushNodes } = await import('./push.js');
  const r = await pushNodes(config, { check: true, signal });
  return r.nodes.map((n) => ({
    area: 'node',
    subject: `${n.name} (${n.address})`,
    ok: n.status !== 'failed',
    detail:
      n.status === 'failed'
        ? (n.reason ?? 'failed')
        : n.notes?.some((x) => x.startsWith('host key would be trusted on first use'))
          ? `reachable, no pin or record yet: its host key would be trusted on first use by the next push; config.json ${n.status}`
          : `reachable, host key matches the pin; config.json ${n.status}`,
    ...(n.status === 'failed'
      ? {
          fix: /trust on first use is refused/.test(n.reason ?? '')
            ? 'pin the node in nodes.ssh.knownHosts, or set nodes.ssh.trustOnFirstUse: { allowWithKubernetesInventory: true }'
            : /host key/i.test(n.reason ?? '')
              ? 'update the pin in nodes.ssh.knownHosts (ssh-keyscan the node, compare the fingerprint out of band)'
              : 'check that sshd runs on the node, the address and port, and that the key in nodes.ssh.privateKey is authorized',
        }
      : {}),
  }));
};

/**
 * Nodes: trust on first use. Refused with `inventory: kubernetes` unless allowed (and then the
 * risk is named); otherwise the record of accepted keys must be readable, or no unpinned node is pushed.
 */
export const checkHostKeyTrust: DoctorCheck = async (config, signal) => {
  const nodes = config.nodes;
  if (!nodes) return [];
  const { firstUseRefusal, trustOnFirstUseOf } = await import('../config/schema.js');
  const t = trustOnFirstUseOf(nodes);
  if (!t.enabled) return [];
  const subject = 'nodes.ssh.trustOnFirstUse';
  const refused = firstUseRefusal(nodes);
  if (refused)
    return [
      {
        area: 'node',
        subject,
        ok: false,
        detail: refused,
        fix: 'pin every node in nodes.ssh.knownHosts (ssh-keyscan, fingerprints checked on the nodes), or set nodes.ssh.trustOnFirstUse: { allowWithKubernetesInventory: true }',
      },
    ];
  const { openHostKeyBook } = await import('./host-key-store.js');
  try {
    const book = await openHostKeyBook(config, { signal });
    book.close();
    return [
      {
        area: 'node',
        subject,
        ok: true,
        detail:
          `keys accepted on first use are recorded in ${book.place} and enforced from then on` +
          (nodes.inventory === 'kubernetes'
            ? '; allowed with inventory: kubernetes (allowWithKubernetesInventory): a Node that registers is trusted on its first use'
            : ''),
      },
    ];
  } catch (err) {
    return [
      {
        area: 'node',
        subject,
        ok: false,
        detail: (err as Error).message,
        fix: 'let pullkeeper read and update the status ConfigMap (`pullkeeper rbac --config FILE` grants it), or pin the nodes in nodes.ssh.knownHosts',
      },
    ];
  }
};

export const ALL_CHECKS: DoctorCheck[] = [
  checkSecretRefs,
  checkRegistries,
  checkClusterRbac,
  checkStatusStore,
  checkHostKeyTrust,
  checkNodes,
];
