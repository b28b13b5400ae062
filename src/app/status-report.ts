/**
 * GET /v1/status and the status page: per registry its expiry and last
 * success, per tenant and namespace the Secret's hash and age, per node the
 * last push result. Read from the cluster (the Secrets' annotations and the
 * status ConfigMap, src/app/status-store.ts) and from what this process last
 * saw; no secret value.
 */
import type { PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver } from '../config/secret-ref.js';
import { namespaceListSelector } from '../core/namespace-selector.js';
import { EXPIRES_ANNOTATION, HASH_ANNOTATION, isOurs, REFRESH_ANNOTATION } from '../core/rotation-plan.js';
import {
  emptyStatusRecord,
  mergeSeen,
  newestOf,
  type SeenNode,
  type SeenRegistry,
} from '../core/status-record.js';
import type { KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import { listNamespaces } from '../kube/resources.js';
import { defaultSecretName, readPullSecrets, tenantNamespaces } from './refresh.js';
import { readStatusRecord, statusStoreOf } from './status-store.js';

export interface StatusNamespace {
  name: string;
  /** present: our Secret is there; missing: not yet (or a Secret we do not own holds the name); foreign: another tenant's. */
  secret: 'present' | 'missing' | 'foreign';
  hash?: string;
  expiresAt?: string;
  refreshAt?: string;
}
export interface StatusReport {
  time: string;
  registries: Array<{
    name: string;
    kind: string;
    expiresAt: string | null;
    secondsToExpiry: number | null;
    lastSuccess: string | null;
    lastError?: string;
  }>;
  tenants: Array<{ name: string; cluster: string; error?: string; namespaces: StatusNamespace[] }>;
  /** Absent for a caller not granted every tenant: node results are fleet-wide. */
  nodes?: Array<{ name: string; status: string; reason?: string; at: string }>;
  /** Set when the stored status could not be read: registries and nodes are then this process's view only. */
  storeError?: string;
}

/** What this process saw last (a warm function or the local server keeps it), as the stored record does. */
export const lastSeen = {
  record: emptyStatusRecord(),
  add(registries: readonly SeenRegistry[], nodes: readonly SeenNode[] | undefined, now = new Date()) {
    this.record = mergeSeen(this.record, { registries, nodes: nodes ?? [] }, now);
  },
};

/**
 * The status of `tenantNames` (their namespaces, and the registries they use).
 * Nodes, and the registries only they use, are included only with `nodes: true`
 * (default): the API sets it only for a caller granted every tenant.
 */
export async function statusReport(
  config: PullkeeperConfig,
  tenantNames: string[],
  o: {
    signal?: AbortSignal;
    now?: Date;
    kube?: (cluster: string) => Promise<KubeClient>;
    nodes?: boolean;
  } = {},
): Promise<StatusReport> {
  const withNodes = o.nodes ?? true;
  const now = o.now ?? new Date();
  const signal = o.signal ?? AbortSignal.timeout(20_000);
  const clients = new Map<string, KubeClient>();
  const kube =
    o.kube ??
    (async (name: string) => {
      let c = clients.get(name);
      if (!c) {
        c = await kubeClientFor(
          config.clusters.find((x) => x.name === name)!,
          createSecretResolver({ signal }),
        );
        clients.set(name, c);
      }
      return c;
    });
  const tenants = config.tenants.filter((t) => tenantNames.includes(t.name));
  const out: StatusReport = {
    time: now.toISOString(),
    registries: [],
    tenants: [],
    ...(withNodes ? { nodes: [] } : {}),
  };
  // Registries and nodes: the stored record (any process's last run), or this process's when newer.
  let seen = lastSeen.record;
  if (statusStoreOf(config)) {
    try {
      const stored = await readStatusRecord(config, { signal, kube });
      if (stored) seen = newestOf(stored, seen);
    } catch (err) {
      out.storeError = (err as Error).message;
    }
  }
  const wantedRegistries = new Set([
    ...tenants.flatMap((t) => t.registries),
    ...(withNodes ? (config.nodes?.registries ?? []) : []),
  ]);
  for (const r of config.registries.filter((x) => wantedRegistries.has(x.name))) {
    const e = seen.registries[r.name];
    const exp = e?.expiresAt ?? null;
    out.registries.push({
      name: r.name,
      kind: r.kind,
      expiresAt: exp,
      secondsToExpiry: exp ? Math.round((Date.parse(exp) - now.getTime()) / 1000) : null,
      lastSuccess: e?.lastSuccess ?? null,
      ...(e?.status === 'failed' && e.error ? { lastError: e.error } : {}),
    });
  }
  try {
    const byCluster = new Map<string, typeof tenants>();
    for (const t of tenants) {
      const c = t.cluster ?? config.clusters[0]?.name ?? '';
      byCluster.set(c, [...(byCluster.get(c) ?? []), t]);
    }
    for (const [cluster, ts] of byCluster) {
      try {
        const k = await kube(cluster);
        const namespaces = await listNamespaces(
          k,
          signal,
          namespaceListSelector(ts.map((t) => t.namespaces)),
        );
        // By name only (what `pullkeeper rbac` allows): cluster-wide, or per tenant namespace.
        const ours = await readPullSecrets(k, ts, (t) => tenantNamespaces(t, namespaces).names, signal);
        for (const t of ts) {
          const name = defaultSecretName(t);
          const nss = tenantNamespaces(t, namespaces).names.sort();
          out.tenants.push({
            name: t.name,
            cluster,
            namespaces: nss.map((ns): StatusNamespace => {
              const s = ours.find((x) => x.namespace === ns && x.name === name);
              if (!s) return { name: ns, secret: 'missing' };
              if (!isOurs(s, t.name)) return { name: ns, secret: 'foreign' };
              const refreshAt = s.annotations[REFRESH_ANNOTATION];
              const expiresAt = s.annotations[EXPIRES_ANNOTATION];
              return {
                name: ns,
                secret: 'present',
                hash: s.annotations[HASH_ANNOTATION]?.slice(0, 12),
                ...(expiresAt ? { expiresAt } : {}),
                ...(refreshAt ? { refreshAt } : {}),
              };
            }),
          });
        }
      } catch (err) {
        for (const t of ts)
          out.tenants.push({
            name: t.name,
            cluster,
            error: `cluster unreachable (${(err as Error).name})`,
            namespaces: [],
          });
      }
    }
  } finally {
    if (!o.kube) for (const c of clients.values()) c.close();
  }
  if (out.nodes)
    for (const [name, n] of Object.entries(seen.nodes).sort(([a], [b]) => a.localeCompare(b)))
      out.nodes.push({ name, status: n.status, ...(n.reason ? { reason: n.reason } : {}), at: n.at });
  return out;
}
