/**
 * ensureNamespace: make one namespace ready now (its pull Secret present,
 * its ServiceAccounts pointing at it) and return only when it is, read back
 * from the API server. The CI pre-deploy call: a first deploy never races the
 * schedule.
 */
import type { PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { isOurs } from '../core/rotation-plan.js';
import type { KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import { clusterFailureMessage } from '../kube/failure.js';
import { getNamespace, getSecret, getServiceAccount, toSecretState } from '../kube/resources.js';
import {
  defaultSecretName,
  type RefreshOptions,
  type RefreshReport,
  refresh,
  refreshFailed,
  tenantNamespaces,
} from './refresh.js';

export class EnsureError extends PullkeeperError {}

export interface EnsureReport {
  namespace: string;
  tenants: string[];
  ready: boolean;
  /** What is missing when not ready. */
  reasons: string[];
  refresh: RefreshReport;
}

/**
 * The tenants whose namespace selection includes `ns` (asks the cluster for its labels),
 * among `among` when given (the caller's tenants: other tenants' clusters are not asked).
 */
export async function tenantsOfNamespace(
  config: PullkeeperConfig,
  ns: string,
  kube: (cluster: string) => Promise<KubeClient>,
  signal?: AbortSignal,
  among?: readonly string[],
): Promise<string[]> {
  const out: string[] = [];
  const byCluster = new Map<string, typeof config.tenants>();
  for (const t of config.tenants) {
    if (among && !among.includes(t.name)) continue;
    const c = t.cluster ?? config.clusters[0]?.name ?? '';
    byCluster.set(c, [...(byCluster.get(c) ?? []), t]);
  }
  for (const [cluster, ts] of byCluster) {
    let obj: Awaited<ReturnType<typeof getNamespace>>;
    try {
      obj = await getNamespace(await kube(cluster), ns, signal);
    } catch (err) {
      if (err instanceof EnsureError || signal?.aborted) throw err;
      // Unreachable, refused, 401 or 403: each told as what it is (only a 403 is about RBAC).
      throw new EnsureError(
        `cannot read namespace ${ns}: ${clusterFailureMessage(cluster, err, 'apply the output of "pullkeeper rbac --config FILE" (ClusterRole pullkeeper-inventory: "get" on namespaces)')}`,
        { cause: err },
      );
    }
    if (!obj) continue;
    for (const t of ts) if (tenantNamespaces(t, [obj]).names.includes(ns)) out.push(t.name);
  }
  return out;
}

export async function ensureNamespace(
  config: PullkeeperConfig,
  ns: string,
  opts: RefreshOptions & {
    timeoutMs?: number;
    /** Act for these tenants only (the API caller's); default every tenant that owns the namespace. */
    onlyTenants?: readonly string[];
  } = {},
): Promise<EnsureReport> {
  const signal = AbortSignal.any([
    opts.signal ?? new AbortController().signal,
    AbortSignal.timeout(opts.timeoutMs ?? 25_000),
  ]);
  const secrets = opts.secrets ?? createSecretResolver({ signal });
  const clients = new Map<string, KubeClient>();
  const kube =
    opts.kube ??
    (async (name: string) => {
      let c = clients.get(name);
      if (!c) {
        const cl = config.clusters.find((x) => x.name === name);
        if (!cl)
          throw new EnsureError(
            `unknown cluster ${name}: add it under "clusters" in the config, or fix the tenant's "cluster"`,
          );
        c = await kubeClientFor(cl, secrets);
        clients.set(name, c);
      }
      return c;
    });
  try {
    const tenants = await tenantsOfNamespace(config, ns, kube, signal, opts.onlyTenants);
    if (!tenants.length)
      throw new EnsureError(
        `namespace ${ns} belongs to no ${opts.onlyTenants ? `tenant of ${opts.onlyTenants.join(', ') || 'none'}` : 'configured tenant'} (or does not exist): create the namespace, or add it to a tenant's "namespaces" selector in the config`,
      );
    const { onlyTenants: _only, timeoutMs: _timeout, ...refreshOpts } = opts;
    const report = await refresh(config, {
      ...refreshOpts,
      signal,
      secrets,
      kube,
      tenants,
      namespaces: [ns],
    });
    // Read back: ready means the API server has it now.
    const reasons: string[] = [];
    for (const name of tenants) {
      const t = config.tenants.find((x) => x.name === name)!;
      const k = await kube(t.cluster ?? config.clusters[0]!.name);
      const secretName = defaultSecretName(t);
      const s = await getSecret(k, ns, secretName, signal);
      if (!s || !isOurs(toSecretState(s), name) || !s.data?.['.dockerconfigjson'])
        reasons.push(`Secret ${ns}/${secretName} is not there`);
      const sas = t.serviceAccounts === '*' ? [] : t.serviceAccounts;
      for (const sa of sas) {
        const cur = await getServiceAccount(k, ns, sa, signal);
        if (!cur?.imagePullSecrets?.includes(secretName))
          reasons.push(`ServiceAccount ${ns}/${sa} does not list ${secretName}`);
      }
    }
    if (refreshFailed(report))
      for (const t of report.tenants)
        for (const n of t.namespaces)
          if (
            n.reason &&
            (n.secret === 'failed' || n.serviceAccounts === 'failed' || n.secret === 'conflict')
          )
            reasons.push(`${n.name}: ${n.reason}`);
    return { namespace: ns, tenants, ready: reasons.length === 0, reasons, refresh: report };
  } finally {
    for (const c of clients.values()) c.close();
  }
}
