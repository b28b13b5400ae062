/** Step 1, read each cluster's state: only the calls RBAC limited to names allows (`pullkeeper rbac`). */
import type { TenantConfig } from '../../config/schema.js';
import { PullkeeperError } from '../../core/errors.js';
import { namespaceListSelector } from '../../core/namespace-selector.js';
import { isOurs, type SecretState, type ServiceAccountState } from '../../core/rotation-plan.js';
import { KubeApiError, type KubeClient } from '../../kube/client.js';
import {
  listNamespaces,
  listSecretsNamed,
  listServiceAccounts,
  type NamespaceObj,
} from '../../kube/resources.js';
import { mapBounded } from '../../util/concurrency.js';
import { clusterOf, defaultSecretName, describeKubeError, type Run, tenantNamespaces } from './model.js';

export interface ClusterState {
  namespaces: NamespaceObj[];
  /** Secrets by tenant: those under the tenant's Secret name (any owner, any namespace) plus ours labelled with the tenant. */
  secrets: Map<string, SecretState[]>;
  serviceAccounts: Map<string, ServiceAccountState[]>;
  /** Namespaces whose state could not be read (403...), with the reason. */
  unreadable: Map<string, string>;
}

const isForbidden = (err: unknown) => err instanceof KubeApiError && err.status === 403;

/**
 * Reads what RBAC limited to names allows (`pullkeeper rbac`): one cluster-wide list per
 * name (`fieldSelector=metadata.name=NAME`); where that is forbidden (RoleBindings per
 * namespace), the same list in each namespace, and a namespace that is forbidden too is
 * recorded in `unreadable`. `perNamespace` skips the cluster-wide try (ensure: a few namespaces).
 */
async function readByName<T>(
  names: string[],
  namespaces: string[],
  wide: ((name: string) => Promise<T[]>) | undefined,
  inNamespace: (ns: string) => Promise<T[]>,
  unreadable: Map<string, string>,
): Promise<T[]> {
  if (wide) {
    try {
      return (await Promise.all(names.map(wide))).flat();
    } catch (err) {
      if (!isForbidden(err)) throw err;
    }
  }
  const out: T[] = [];
  await mapBounded(namespaces, 16, async (ns) => {
    try {
      out.push(...(await inNamespace(ns)));
    } catch (e) {
      unreadable.set(ns, describeKubeError(e));
    }
  });
  return out;
}

/**
 * The pull Secrets under the tenants' names: everywhere (cluster-wide lists), or in the given
 * namespaces when only those may be read. Never a Secret list without a name (status report).
 */
export async function readPullSecrets(
  k: KubeClient,
  tenants: TenantConfig[],
  namespacesOf: (t: TenantConfig) => string[],
  signal: AbortSignal,
  unreadable = new Map<string, string>(),
  narrow = false,
): Promise<SecretState[]> {
  const nsNames = new Map<string, Set<string>>();
  for (const t of tenants)
    for (const ns of namespacesOf(t))
      nsNames.set(ns, (nsNames.get(ns) ?? new Set()).add(defaultSecretName(t)));
  const all = await readByName(
    [...new Set(tenants.map(defaultSecretName))],
    [...nsNames.keys()],
    narrow ? undefined : (n) => listSecretsNamed(k, n, undefined, signal),
    async (ns) =>
      (await Promise.all([...nsNames.get(ns)!].map((n) => listSecretsNamed(k, n, ns, signal)))).flat(),
    unreadable,
  );
  const seen = new Set<string>();
  return all.filter((s) => {
    const key = `${s.namespace}/${s.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export async function readClusterState(
  k: KubeClient,
  tenants: TenantConfig[],
  nsFilter: Set<string> | undefined,
  signal: AbortSignal,
): Promise<ClusterState> {
  // When every tenant pins one label key, the server filters: only candidate namespaces come back.
  const namespaces = await listNamespaces(k, signal, namespaceListSelector(tenants.map((t) => t.namespaces)));
  const nsOf = (t: TenantConfig) =>
    tenantNamespaces(t, namespaces).names.filter((n) => !nsFilter || nsFilter.has(n));
  const wanted = new Set(tenants.flatMap(nsOf));
  const unreadable = new Map<string, string>();
  // ensure: a few namespaces are read one by one (what per-namespace RoleBindings allow, and cheaper).
  const narrow = nsFilter !== undefined && wanted.size <= 5;
  const pull = await readPullSecrets(k, tenants, nsOf, signal, unreadable, narrow);
  const sas = await readServiceAccounts(k, tenants, nsOf, wanted, unreadable, narrow, signal);
  const secrets = new Map<string, SecretState[]>();
  for (const t of tenants) {
    const name = defaultSecretName(t);
    secrets.set(
      t.name,
      pull.filter((s) => s.name === name || isOurs(s, t.name)),
    );
  }
  const serviceAccounts = new Map<string, ServiceAccountState[]>();
  for (const sa of sas) {
    const list = serviceAccounts.get(sa.namespace);
    if (list) list.push(sa);
    else serviceAccounts.set(sa.namespace, [sa]);
  }
  return { namespaces, secrets, serviceAccounts, unreadable };
}

/**
 * ServiceAccounts: by name where the tenants list them (cluster-wide lists, one per name);
 * every one in the namespaces of tenants with '*' (RBAC grants that per namespace, or
 * cluster-wide when such a tenant selects namespaces by label).
 */
async function readServiceAccounts(
  k: KubeClient,
  tenants: TenantConfig[],
  nsOf: (t: TenantConfig) => string[],
  wanted: Set<string>,
  unreadable: Map<string, string>,
  narrow: boolean,
  signal: AbortSignal,
): Promise<ServiceAccountState[]> {
  const readable = [...wanted].filter((ns) => !unreadable.has(ns));
  const star = tenants.filter((t) => t.serviceAccounts === '*');
  const starNs = new Set(star.flatMap(nsOf));
  const saNames = [...new Set(tenants.flatMap((t) => (t.serviceAccounts === '*' ? [] : t.serviceAccounts)))];
  const [named, all] = await Promise.all([
    readByName(
      saNames,
      readable.filter((ns) => !starNs.has(ns)),
      narrow ? undefined : (n) => listServiceAccounts(k, undefined, signal, n),
      async (ns) => (await Promise.all(saNames.map((n) => listServiceAccounts(k, ns, signal, n)))).flat(),
      unreadable,
    ),
    readByName(
      ['*'],
      readable.filter((ns) => starNs.has(ns)),
      narrow || !star.some((t) => 'matchLabels' in t.namespaces)
        ? undefined
        : () => listServiceAccounts(k, undefined, signal),
      (ns) => listServiceAccounts(k, ns, signal),
      unreadable,
    ),
  ]);
  return [
    ...named.filter((s) => wanted.has(s.namespace) && !starNs.has(s.namespace)),
    ...all.filter((s) => starNs.has(s.namespace)),
  ];
}

/** Every cluster of the run's tenants, read in parallel; a cluster that fails is kept with its reason. */
export async function readClusters(
  run: Run,
): Promise<{ states: Map<string, ClusterState>; errors: Map<string, string> }> {
  const byCluster = new Map<string, TenantConfig[]>();
  for (const t of run.tenants) {
    const cl = clusterOf(t, run.config);
    byCluster.set(cl, [...(byCluster.get(cl) ?? []), t]);
  }
  const states = new Map<string, ClusterState>();
  const errors = new Map<string, string>();
  await Promise.all(
    [...byCluster].map(async ([cl, ts]) => {
      try {
        states.set(cl, await readClusterState(await run.clientOf(cl), ts, run.nsFilter, run.signal));
      } catch (err) {
        errors.set(
          cl,
          `cluster ${cl}: ${err instanceof PullkeeperError && !(err instanceof KubeApiError) ? err.message.replace(`cluster ${cl}: `, '') : describeKubeError(err)}`,
        );
      }
    }),
  );
  return { states, errors };
}
