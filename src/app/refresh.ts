/**
 * The refresh use case: mint what is due, then make every tenant namespace's
 * pull Secret and ServiceAccounts match, writing only what changed. Called by
 * `pullkeeper refresh`, the scheduled function, POST /v1/refresh and ensure.
 */
import { createHash } from 'node:crypto';
import type { PullkeeperConfig, TenantConfig } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { refreshAt } from '../core/expiry.js';
import {
  credentialsToDockerConfig,
  renderDockerConfigJson,
  validateDockerConfigJsonSecretData,
  validateSecretDataSize,
} from '../core/index.js';
import {
  EXPIRES_ANNOTATION,
  HASH_ANNOTATION,
  isOurs,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type NamespacePlan,
  planTenant,
  REFRESH_ANNOTATION,
  REGISTRIES_ANNOTATION,
  type SecretState,
  type ServiceAccountState,
  secretRefreshDue,
  TENANT_LABEL,
} from '../core/rotation-plan.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import {
  addImagePullSecret,
  applySecret,
  createEvent,
  createSecret,
  deleteSecret,
  getServiceAccount,
  listNamespaces,
  listSecrets,
  listServiceAccounts,
  type NamespaceObj,
} from '../kube/resources.js';
import { type CredentialCache, type MintReportEntry, mapBounded, mintCredentials } from './mint.js';

export const CONFIG_HASH_ANNOTATION = 'pullkeeper.dev/config-hash';
/** Credentials that never expire are still re-read this often (a password rotated in SSM is picked up). */
export const STATIC_REFRESH_MS = 60 * 60 * 1000;

export type SecretOutcome = 'created' | 'updated' | 'unchanged' | 'failed' | 'conflict' | 'pruned';
export interface NamespaceReport {
  name: string;
  secret: SecretOutcome;
  serviceAccounts: 'patched' | 'unchanged' | 'failed';
  reason?: string;
}
export interface TenantReport {
  name: string;
  cluster: string;
  /** True when every namespace was fresh and nothing was minted for this tenant. */
  fresh?: boolean;
  namespaces: NamespaceReport[];
}
export interface RefreshReport {
  dryRun: boolean;
  registries: MintReportEntry[];
  mintCalls: number;
  tenants: TenantReport[];
  /** Write requests sent to the API servers (0 on a run with nothing to change). */
  writes: number;
  /** Requests sent in all, and connections opened (connection reuse shows here). */
  requests: number;
  connections: number;
  /** The node push, when run (see src/app/push.ts). */
  nodes?: import('./push.js').PushResult['nodes'];
  /** With dryRun: the plan as a diff (`+ create ns/name`, `~ update`, ...). */
  plan?: string[];
}

export class RefreshError extends PullkeeperError {}

export interface RefreshOptions {
  /** Only these tenants (names); default all. */
  tenants?: string[];
  /** Only these namespaces (ensure). */
  namespaces?: string[];
  dryRun?: boolean;
  /** Mint and write even when the Secrets say they are fresh. */
  force?: boolean;
  signal?: AbortSignal;
  now?: () => Date;
  cache?: CredentialCache;
  secrets?: SecretResolver;
  /** Per-cluster client (tests and the benchmark inject counting clients); default from the config. */
  kube?: (clusterName: string) => Promise<KubeClient>;
  /** Parallel namespace operations. */
  concurrency?: number;
  /** Push node config too (default: when the config has `nodes` and no tenant/namespace filter is given). */
  nodes?: boolean;
  /** Called after each tenant, with its report so far (progress on a TTY). */
  onProgress?: (done: number, total: number, tenant: string, report: TenantReport) => void;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function defaultSecretName(t: TenantConfig): string {
  return t.secretName ?? `pullkeeper-${t.name}`.slice(0, 63).replace(/-+$/, '');
}

/** Namespaces of a tenant from the cluster's list: by names (those that exist) or by label selector. */
export function tenantNamespaces(
  t: TenantConfig,
  all: NamespaceObj[],
): { names: string[]; terminating: string[]; absent: string[] } {
  let picked: NamespaceObj[];
  let absent: string[] = [];
  if ('names' in t.namespaces) {
    const want = new Set(t.namespaces.names);
    picked = all.filter((n) => want.has(n.metadata.name));
    const have = new Set(picked.map((n) => n.metadata.name));
    absent = t.namespaces.names.filter((n) => !have.has(n));
  } else {
    const sel = Object.entries(t.namespaces.matchLabels);
    picked = all.filter((n) => sel.every(([k, v]) => n.metadata.labels?.[k] === v));
  }
  const terminating = picked
    .filter((n) => n.status?.phase === 'Terminating' || n.metadata.deletionTimestamp)
    .map((n) => n.metadata.name);
  return { names: picked.map((n) => n.metadata.name), terminating, absent };
}

/** A fingerprint of what the tenant's Secret is made of (registry configs: references, never values). */
export function tenantConfigHash(t: TenantConfig, config: PullkeeperConfig): string {
  const regs = t.registries.map((r) => config.registries.find((x) => x.name === r));
  return sha256(JSON.stringify({ registries: regs, secretName: defaultSecretName(t) })).slice(0, 16);
}

function clusterOf(t: TenantConfig, config: PullkeeperConfig): string {
  const name = t.cluster ?? config.clusters[0]?.name;
  if (!name)
    throw new RefreshError(`tenant ${t.name}: no cluster configured; add one under "clusters" in the config`);
  return name;
}

function describeKubeError(err: unknown): string {
  if (err instanceof KubeApiError) {
    if (err.status === 403)
      return `forbidden (403): ${err.apiMessage || err.reason}; check the RBAC of infra/kubernetes/rbac.yaml for this namespace`;
    if (err.status === 404) return `not found (404): ${err.apiMessage || err.reason}`;
    return `${err.status} ${err.reason}${err.apiMessage ? `: ${err.apiMessage}` : ''}`;
  }
  const e = err as { code?: string; name?: string; cause?: { code?: string } };
  const what = e?.code ?? e?.cause?.code ?? e?.name ?? 'error';
  if (
    /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT|TimeoutError|AbortError)$/.test(
      what,
    )
  )
    return `${what}: the API server is unreachable; check the cluster's server (or kubeconfig) in the config and that this machine can reach it (\`pullkeeper doctor\` checks every cluster)`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(what))
    return `${what}: the API server's TLS certificate is not trusted; set the cluster's CA in the config`;
  return what;
}

interface ClusterState {
  namespaces: NamespaceObj[];
  /** Secrets by tenant: same-named ones (any owner) plus ours labelled with the tenant. */
  secrets: Map<string, SecretState[]>;
  serviceAccounts: Map<string, ServiceAccountState[]>;
  /** Namespaces whose state could not be read (403...), with the reason. */
  unreadable: Map<string, string>;
}

async function readClusterState(
  k: KubeClient,
  tenants: TenantConfig[],
  nsFilter: Set<string> | undefined,
  signal: AbortSignal,
): Promise<ClusterState> {
  const namespaces = await listNamespaces(k, signal);
  const wanted = new Set<string>();
  for (const t of tenants)
    for (const n of tenantNamespaces(t, namespaces).names) if (!nsFilter || nsFilter.has(n)) wanted.add(n);
  const unreadable = new Map<string, string>();
  const secrets = new Map<string, SecretState[]>();
  const serviceAccounts = new Map<string, ServiceAccountState[]>();
  const ourSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
  const names = [...new Set(tenants.map(defaultSecretName))];
  let all: SecretState[] = [];
  let sas: ServiceAccountState[] = [];
  const few = nsFilter !== undefined && wanted.size <= 5;
  try {
    if (few) throw new KubeApiError(403, 'narrow', '', 'GET', '');
    // Cluster-wide: 1 list of ours + 1 list per secret name (finds foreign Secrets with our name) + 1 of ServiceAccounts.
    const lists = await Promise.all([
      listSecrets(k, { labelSelector: ourSelector }, signal),
      ...names.map((n) => listSecrets(k, { fieldSelector: `metadata.name=${n}` }, signal)),
    ]);
    all = lists.flat();
    sas = (await listServiceAccounts(k, undefined, signal)).filter((s) => wanted.has(s.namespace));
  } catch (err) {
    if (!(err instanceof KubeApiError) || err.status !== 403) throw err;
    // Namespace-scoped RBAC: read each namespace on its own; one that is forbidden is reported, the rest go on.
    all = [];
    sas = [];
    await mapBounded([...wanted], 16, async (ns) => {
      try {
        const [s, a] = await Promise.all([
          listSecrets(k, { namespace: ns }, signal),
          listServiceAccounts(k, ns, signal),
        ]);
        all.push(...s.filter((x) => names.includes(x.name) || isOurs(x)));
        sas.push(...a);
      } catch (e) {
        unreadable.set(ns, describeKubeError(e));
      }
    });
  }
  const seen = new Set<string>();
  const unique = all.filter((s) => {
    const key = `${s.namespace}/${s.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  for (const t of tenants) {
    const name = defaultSecretName(t);
    secrets.set(
      t.name,
      unique.filter((s) => s.name === name || isOurs(s, t.name)),
    );
  }
  for (const sa of sas) serviceAccounts.set(sa.namespace, [...(serviceAccounts.get(sa.namespace) ?? []), sa]);
  return { namespaces, secrets, serviceAccounts, unreadable };
}

/** A tenant is fresh when each of its namespaces has our Secret, built from the same config, not yet due, and its ServiceAccounts point at it. */
function tenantFresh(
  t: TenantConfig,
  config: PullkeeperConfig,
  nsNames: string[],
  state: ClusterState,
  now: Date,
): boolean {
  const name = defaultSecretName(t);
  const cfgHash = tenantConfigHash(t, config);
  const secrets = state.secrets.get(t.name) ?? [];
  return nsNames.every((ns) => {
    const s = secrets.find((x) => x.namespace === ns && x.name === name);
    if (
      !s ||
      !isOurs(s, t.name) ||
      s.annotations[CONFIG_HASH_ANNOTATION] !== cfgHash ||
      secretRefreshDue(s, now)
    )
      return false;
    const sas = state.serviceAccounts.get(ns) ?? [];
    const wanted = t.serviceAccounts === '*' ? sas.map((x) => x.name) : t.serviceAccounts;
    return wanted.every((w) => sas.find((x) => x.name === w)?.imagePullSecrets?.includes(name) ?? true);
  });
}

export async function refresh(config: PullkeeperConfig, opts: RefreshOptions = {}): Promise<RefreshReport> {
  const signal = opts.signal ?? AbortSignal.timeout(10 * 60 * 1000);
  const now = opts.now ?? (() => new Date());
  const secrets = opts.secrets ?? createSecretResolver({ signal });
  const dryRun = !!opts.dryRun;
  const unknown = (opts.tenants ?? []).filter((n) => !config.tenants.some((t) => t.name === n));
  if (unknown.length)
    throw new RefreshError(
      `unknown tenant ${unknown.join(', ')}; the config defines ${config.tenants.map((t) => t.name).join(', ') || 'none'}: pass one of those to --tenant`,
    );
  const tenants = opts.tenants?.length
    ? config.tenants.filter((t) => opts.tenants!.includes(t.name))
    : config.tenants;
  const nsFilter = opts.namespaces ? new Set(opts.namespaces) : undefined;

  // Clusters: one client each, shared by every tenant on it.
  const clients = new Map<string, KubeClient>();
  const clientOf = async (name: string) => {
    let c = clients.get(name);
    if (!c) {
      if (opts.kube) c = await opts.kube(name);
      else {
        const cl = config.clusters.find((x) => x.name === name);
        if (!cl)
          throw new RefreshError(
            `unknown cluster ${name}: add it under "clusters" in the config, or fix the tenant's "cluster"`,
          );
        c = await kubeClientFor(cl, secrets, config.kubeClient);
      }
      clients.set(name, c);
    }
    return c;
  };

  const report: RefreshReport = {
    dryRun,
    registries: [],
    mintCalls: 0,
    tenants: [],
    writes: 0,
    requests: 0,
    connections: 0,
    ...(dryRun ? { plan: [] } : {}),
  };
  try {
    // 1. Read each cluster's state (a few list calls per cluster).
    const byCluster = new Map<string, TenantConfig[]>();
    for (const t of tenants)
      byCluster.set(clusterOf(t, config), [...(byCluster.get(clusterOf(t, config)) ?? []), t]);
    const states = new Map<string, ClusterState>();
    const clusterErrors = new Map<string, string>();
    await Promise.all(
      [...byCluster].map(async ([cl, ts]) => {
        try {
          states.set(cl, await readClusterState(await clientOf(cl), ts, nsFilter, signal));
        } catch (err) {
          clusterErrors.set(
            cl,
            `cluster ${cl}: ${err instanceof PullkeeperError && !(err instanceof KubeApiError) ? err.message.replace(`cluster ${cl}: `, '') : describeKubeError(err)}`,
          );
        }
      }),
    );

    // 2. Decide what is due; mint only the registries of tenants that are not fresh.
    const due: TenantConfig[] = [];
    const nsOf = new Map<string, ReturnType<typeof tenantNamespaces>>();
    for (const t of tenants) {
      const st = states.get(clusterOf(t, config));
      if (!st) continue;
      const sel = tenantNamespaces(t, st.namespaces);
      if (nsFilter) {
        sel.names = sel.names.filter((n) => nsFilter.has(n));
        sel.terminating = sel.terminating.filter((n) => nsFilter.has(n));
        sel.absent = sel.absent.filter((n) => nsFilter.has(n));
      }
      nsOf.set(t.name, sel);
      if (
        opts.force ||
        !tenantFresh(
          t,
          config,
          sel.names.filter((n) => !sel.terminating.includes(n)),
          st,
          now(),
        )
      )
        due.push(t);
    }
    const pushNodesToo = opts.nodes ?? (!!config.nodes && !opts.tenants?.length && !opts.namespaces);
    if (pushNodesToo && !config.nodes)
      throw new RefreshError('nodes: true, but the config has no "nodes" section');
    const registries = [
      ...new Set([...due.flatMap((t) => t.registries), ...(pushNodesToo ? config.nodes!.registries : [])]),
    ];
    const minted = registries.length
      ? await mintCredentials(config, { registries, signal, now, cache: opts.cache, secrets, force: false })
      : { registries: [], credentials: new Map(), mintCalls: 0 };
    report.registries = minted.registries;
    report.mintCalls = minted.mintCalls;

    // 3. Plan and apply per tenant.
    let done = 0;
    for (const t of tenants) {
      const cl = clusterOf(t, config);
      const st = states.get(cl);
      const tr: TenantReport = { name: t.name, cluster: cl, namespaces: [] };
      report.tenants.push(tr);
      if (!st) {
        tr.namespaces.push({
          name: '*',
          secret: 'failed',
          serviceAccounts: 'failed',
          reason: clusterErrors.get(cl) ?? 'cluster unreachable',
        });
        opts.onProgress?.(++done, tenants.length, t.name, tr);
        continue;
      }
      const sel = nsOf.get(t.name)!;
      for (const ns of sel.absent)
        tr.namespaces.push({
          name: ns,
          secret: 'failed',
          serviceAccounts: 'failed',
          reason: 'namespace does not exist',
        });
      if (!due.includes(t)) {
        tr.fresh = true;
        for (const ns of sel.names)
          tr.namespaces.push({ name: ns, secret: 'unchanged', serviceAccounts: 'unchanged' });
        opts.onProgress?.(++done, tenants.length, t.name, tr);
        continue;
      }
      const k = await clientOf(cl);
      await applyTenant(t, config, k, st, sel, minted, tr, report, {
        dryRun,
        now: now(),
        signal,
        concurrency: opts.concurrency ?? 32,
      });
      opts.onProgress?.(++done, tenants.length, t.name, tr);
    }

    // 4. Nodes: the same credentials, merged into each node's config.json (src/app/push.ts).
    if (pushNodesToo) {
      const { pushNodes } = await import('./push.js');
      const names = new Set(config.nodes!.registries);
      const pushed = await pushNodes(config, {
        credentials: minted.credentials,
        registries: minted.registries.filter((r) => names.has(r.name)),
        check: dryRun,
        signal,
        secrets,
      });
      report.nodes = pushed.nodes;
    }
  } finally {
    for (const c of clients.values()) {
      report.writes += c.stats.writes;
      report.requests += c.stats.requests;
      report.connections += c.stats.connections;
      if (!opts.kube) c.close();
    }
  }
  return report;
}

async function applyTenant(
  t: TenantConfig,
  config: PullkeeperConfig,
  k: KubeClient,
  st: ClusterState,
  sel: ReturnType<typeof tenantNamespaces>,
  minted: {
    credentials: Map<string, import('../providers/types.js').RegistryCredential>;
    registries: MintReportEntry[];
  },
  tr: TenantReport,
  report: RefreshReport,
  o: { dryRun: boolean; now: Date; signal: AbortSignal; concurrency: number },
): Promise<void> {
  const secretName = defaultSecretName(t);
  const creds = t.registries.map((r) => minted.credentials.get(r)).filter((c) => c !== undefined);
  const missing = t.registries.filter((r) => !minted.credentials.has(r));
  const failedWhy = missing
    .map((r) => `${r}: ${minted.registries.find((x) => x.name === r)?.error ?? 'failed'}`)
    .join('; ');
  let rendered: string | undefined;
  let hash: string | undefined;
  if (creds.length) {
    rendered = renderDockerConfigJson(credentialsToDockerConfig(creds));
    // The API server's own dockerconfigjson rules, before anything is sent.
    validateDockerConfigJsonSecretData(rendered);
    validateSecretDataSize({ '.dockerconfigjson': rendered });
    hash = sha256(rendered);
  }
  const expiries = creds.map((c) => c.expiresAt).filter((d): d is Date => d !== undefined);
  const earliest = expiries.length ? new Date(Math.min(...expiries.map((d) => d.getTime()))) : undefined;
  const issued = creds.length ? new Date(Math.max(...creds.map((c) => c.issuedAt.getTime()))) : o.now;
  const refresh = earliest
    ? refreshAt(issued, earliest, config.refreshAtFraction)
    : new Date(issued.getTime() + STATIC_REFRESH_MS);
  const plan = planTenant({
    tenant: t.name,
    secretName,
    serviceAccounts: t.serviceAccounts,
    adopt: t.adopt,
    prune: t.prune,
    namespaces: sel.names.filter((n) => !st.unreadable.has(n)),
    terminating: sel.terminating,
    desired: hash
      ? { hash, registries: t.registries.filter((r) => minted.credentials.has(r)), missing }
      : undefined,
    secrets: st.secrets.get(t.name) ?? [],
    serviceAccountsByNamespace: st.serviceAccounts,
  });
  for (const [ns, why] of st.unreadable)
    if (sel.names.includes(ns))
      tr.namespaces.push({ name: ns, secret: 'failed', serviceAccounts: 'failed', reason: why });

  const body = (ns: string) => ({
    namespace: ns,
    name: secretName,
    labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [TENANT_LABEL]: t.name },
    annotations: {
      [HASH_ANNOTATION]: hash!,
      [EXPIRES_ANNOTATION]: earliest?.toISOString() ?? 'never',
      [REFRESH_ANNOTATION]: refresh.toISOString(),
      [REGISTRIES_ANNOTATION]: t.registries.filter((r) => minted.credentials.has(r)).join(','),
      [CONFIG_HASH_ANNOTATION]: tenantConfigHash(t, config),
    },
    dockerconfigjson: rendered!,
  });
  const involved = { kind: 'Secret', name: secretName, apiVersion: 'v1' };
  const event = async (ns: string, type: 'Normal' | 'Warning', reason: string, message: string) => {
    if (o.dryRun) return;
    try {
      await createEvent(k, { namespace: ns, involved, type, reason, message, now: o.now }, o.signal);
    } catch {
      /* events are best effort */
    }
  };

  const results = await mapBounded(
    plan.namespaces,
    o.concurrency,
    async (p: NamespacePlan): Promise<NamespaceReport> => {
      const r: NamespaceReport = { name: p.namespace, secret: 'unchanged', serviceAccounts: 'unchanged' };
      const s = p.secret;
      try {
        switch (s.kind) {
          case 'create':
            report.plan?.push(`+ create ${p.namespace}/${secretName}`);
            if (!o.dryRun) {
              try {
                await createSecret(k, body(p.namespace), o.signal);
              } catch (err) {
                if (err instanceof KubeApiError && err.status === 409) {
                  r.secret = 'conflict';
                  r.reason = `Secret ${secretName} appeared while pullkeeper was writing; the next run decides who owns it`;
                  break;
                }
                throw err;
              }
              await event(
                p.namespace,
                'Normal',
                'PullSecretCreated',
                `pullkeeper created ${secretName} for tenant ${t.name} (${body(p.namespace).annotations[REGISTRIES_ANNOTATION]}; expires ${body(p.namespace).annotations[EXPIRES_ANNOTATION]})`,
              );
            }
            r.secret = 'created';
            if (missing.length) r.reason = `created without ${failedWhy}`;
            break;
          case 'update':
            report.plan?.push(`~ update ${p.namespace}/${secretName}${s.adopt ? ' (adopt)' : ''}`);
            if (!o.dryRun) {
              await applySecret(k, body(p.namespace), s.resourceVersion, o.signal);
              await event(
                p.namespace,
                'Normal',
                'PullSecretRotated',
                `pullkeeper rotated ${secretName} for tenant ${t.name} (expires ${body(p.namespace).annotations[EXPIRES_ANNOTATION]})`,
              );
            }
            r.secret = 'updated';
            break;
          case 'unchanged':
            break;
          case 'conflict':
            r.secret = 'conflict';
            r.reason = s.reason;
            report.plan?.push(`! conflict ${p.namespace}/${secretName}: ${s.reason}`);
            await event(p.namespace, 'Warning', 'PullSecretConflict', s.reason);
            break;
          case 'skip':
            r.secret = 'failed';
            r.reason = missing.length ? `${s.reason} (${failedWhy})` : s.reason;
            report.plan?.push(`! skip ${p.namespace}/${secretName}: ${r.reason}`);
            await event(p.namespace, 'Warning', 'PullSecretRotationFailed', r.reason);
            break;
        }
      } catch (err) {
        r.secret = err instanceof KubeApiError && err.status === 409 ? 'conflict' : 'failed';
        r.reason = describeKubeError(err);
        await event(
          p.namespace,
          'Warning',
          'PullSecretRotationFailed',
          `pullkeeper could not write ${secretName}: ${r.reason}`,
        );
        return r;
      }
      if (p.missingServiceAccounts.length) {
        r.serviceAccounts = 'failed';
        r.reason = [r.reason, `ServiceAccount ${p.missingServiceAccounts.join(', ')} not found`]
          .filter(Boolean)
          .join('; ');
      }
      for (const sa of p.patchServiceAccounts) {
        report.plan?.push(
          `~ patch ${p.namespace}/serviceaccount/${sa.name}: imagePullSecrets += ${secretName}`,
        );
        if (o.dryRun) {
          if (r.serviceAccounts !== 'failed') r.serviceAccounts = 'patched';
          continue;
        }
        try {
          let cur: ServiceAccountState | undefined = sa;
          for (let attempt = 1; cur && !(cur.imagePullSecrets ?? []).includes(secretName); attempt++) {
            try {
              await addImagePullSecret(k, cur, secretName, o.signal);
              break;
            } catch (err) {
              // 409/422: the test op failed (someone changed the list): re-read and try again.
              if (!(err instanceof KubeApiError) || ![409, 422].includes(err.status) || attempt >= 4)
                throw err;
              cur = await getServiceAccount(k, sa.namespace, sa.name, o.signal);
            }
          }
          if (r.serviceAccounts !== 'failed') r.serviceAccounts = 'patched';
        } catch (err) {
          r.serviceAccounts = 'failed';
          r.reason = [r.reason, `ServiceAccount ${sa.name}: ${describeKubeError(err)}`]
            .filter(Boolean)
            .join('; ');
        }
      }
      return r;
    },
  );
  tr.namespaces.push(...results);

  for (const s of plan.prune) {
    report.plan?.push(`- prune ${s.namespace}/${s.name}`);
    const r: NamespaceReport = {
      name: s.namespace,
      secret: 'pruned',
      serviceAccounts: 'unchanged',
      reason: 'namespace no longer belongs to the tenant',
    };
    if (!o.dryRun) {
      try {
        await deleteSecret(k, s.namespace, s.name, s.resourceVersion, o.signal);
      } catch (err) {
        r.secret = 'failed';
        r.reason = `prune: ${describeKubeError(err)}`;
      }
    }
    tr.namespaces.push(r);
  }
  for (const s of plan.orphans)
    tr.namespaces.push({
      name: s.namespace,
      secret: 'unchanged',
      serviceAccounts: 'unchanged',
      reason: `Secret ${s.name} is ours but the namespace no longer belongs to tenant ${t.name}; set prune: true to delete it`,
    });
}

/** True when anything in the report failed (exit 1). */
export function refreshFailed(r: RefreshReport): boolean {
  return (
    r.registries.some((x) => x.status === 'failed') ||
    (r.nodes ?? []).some((n) => n.status === 'failed') ||
    r.tenants.some((t) =>
      t.namespaces.some(
        (n) => n.secret === 'failed' || n.secret === 'conflict' || n.serviceAccounts === 'failed',
      ),
    )
  );
}
