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
  serviceAccountPlan,
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
  getSecret,
  getServiceAccount,
  listNamespaces,
  listSecretsNamed,
  listServiceAccounts,
  type NamespaceObj,
  type SecretBody,
  toSecretState,
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
      return `forbidden (403): ${err.apiMessage || err.reason}; apply the output of "pullkeeper rbac --config FILE" for this cluster (with --per-namespace: a RoleBinding in this namespace)`;
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

async function readClusterState(
  k: KubeClient,
  tenants: TenantConfig[],
  nsFilter: Set<string> | undefined,
  signal: AbortSignal,
): Promise<ClusterState> {
  const namespaces = await listNamespaces(k, signal);
  const nsOf = (t: TenantConfig) =>
    tenantNamespaces(t, namespaces).names.filter((n) => !nsFilter || nsFilter.has(n));
  const wanted = new Set(tenants.flatMap(nsOf));
  const unreadable = new Map<string, string>();
  // ensure: a few namespaces are read one by one (what per-namespace RoleBindings allow, and cheaper).
  const narrow = nsFilter !== undefined && wanted.size <= 5;
  const pull = await readPullSecrets(k, tenants, nsOf, signal, unreadable, narrow);
  // ServiceAccounts: by name where the tenants list them (cluster-wide lists, one per name);
  // every one in the namespaces of tenants with '*' (RBAC grants that per namespace, or
  // cluster-wide when such a tenant selects namespaces by label).
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
  const sas = [
    ...named.filter((s) => wanted.has(s.namespace) && !starNs.has(s.namespace)),
    ...all.filter((s) => starNs.has(s.namespace)),
  ];
  const secrets = new Map<string, SecretState[]>();
  for (const t of tenants) {
    const name = defaultSecretName(t);
    secrets.set(
      t.name,
      pull.filter((s) => s.name === name || isOurs(s, t.name)),
    );
  }
  const serviceAccounts = new Map<string, ServiceAccountState[]>();
  for (const sa of sas) serviceAccounts.set(sa.namespace, [...(serviceAccounts.get(sa.namespace) ?? []), sa]);
  return { namespaces, secrets, serviceAccounts, unreadable };
}

/** A tenant's namespaces that are configured by name but do not exist: failed, with the reason. */
function absentNamespaces(sel: { absent: string[] }): NamespaceReport[] {
  return sel.absent.map((name) => ({
    name,
    secret: 'failed',
    serviceAccounts: 'failed',
    reason: 'namespace does not exist',
  }));
}

/** ServiceAccounts a tenant wants in a namespace: those it lists, or every one there with '*'. */
function wantedServiceAccounts(t: TenantConfig, ns: string, state: ClusterState): string[] {
  return t.serviceAccounts === '*'
    ? (state.serviceAccounts.get(ns) ?? []).map((x) => x.name)
    : t.serviceAccounts;
}

/**
 * Freshness of a tenant's namespaces. `secrets`: each has our Secret, built from the same
 * config and not yet due (nothing to mint). `serviceAccounts`: every wanted ServiceAccount
 * exists and carries our entry (a missing one, or one without the entry, is due: it is
 * patched on this run even when the Secrets are fresh).
 */
function tenantFreshness(
  t: TenantConfig,
  config: PullkeeperConfig,
  nsNames: string[],
  state: ClusterState,
  now: Date,
): { secrets: boolean; serviceAccounts: boolean } {
  const name = defaultSecretName(t);
  const cfgHash = tenantConfigHash(t, config);
  const secrets = state.secrets.get(t.name) ?? [];
  const secretsFresh = nsNames.every((ns) => {
    const s = secrets.find((x) => x.namespace === ns && x.name === name);
    return (
      !!s &&
      isOurs(s, t.name) &&
      s.annotations[CONFIG_HASH_ANNOTATION] === cfgHash &&
      !secretRefreshDue(s, now)
    );
  });
  const serviceAccountsFresh = nsNames.every((ns) => {
    const sas = state.serviceAccounts.get(ns) ?? [];
    return wantedServiceAccounts(t, ns, state).every(
      (w) => sas.find((x) => x.name === w)?.imagePullSecrets?.includes(name) ?? false,
    );
  });
  return { secrets: secretsFresh, serviceAccounts: serviceAccountsFresh };
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
    /** Secrets fresh, but a ServiceAccount lacks our entry: patched without minting. */
    const serviceAccountsDue = new Set<TenantConfig>();
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
      const fresh = tenantFreshness(
        t,
        config,
        sel.names.filter((n) => !sel.terminating.includes(n)),
        st,
        now(),
      );
      if (opts.force || !fresh.secrets) due.push(t);
      else if (!fresh.serviceAccounts) serviceAccountsDue.add(t);
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
      tr.namespaces.push(...absentNamespaces(sel));
      if (serviceAccountsDue.has(t)) {
        await applyServiceAccounts(t, await clientOf(cl), st, sel, tr, report, {
          dryRun,
          signal,
          concurrency: opts.concurrency ?? 32,
        });
        opts.onProgress?.(++done, tenants.length, t.name, tr);
        continue;
      }
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
          case 'update': {
            const adopt = s.kind === 'update' && s.adopt;
            report.plan?.push(
              s.kind === 'create'
                ? `+ create ${p.namespace}/${secretName}`
                : `~ update ${p.namespace}/${secretName}${adopt ? ' (adopt)' : ''}`,
            );
            if (o.dryRun) {
              r.secret = s.kind === 'create' ? 'created' : 'updated';
              break;
            }
            const b = body(p.namespace);
            const w = await writeSecret(k, b, s, { tenant: t.name, adopt: t.adopt, hash: hash! }, o.signal);
            if (w.outcome === 'conflict') {
              r.secret = 'conflict';
              r.reason = w.reason;
              await event(p.namespace, 'Warning', 'PullSecretConflict', w.reason);
              break;
            }
            r.secret = w.outcome;
            if (w.outcome === 'created')
              await event(
                p.namespace,
                'Normal',
                'PullSecretCreated',
                `pullkeeper created ${secretName} for tenant ${t.name} (${b.annotations[REGISTRIES_ANNOTATION]}; expires ${b.annotations[EXPIRES_ANNOTATION]})`,
              );
            else if (w.outcome === 'updated')
              await event(
                p.namespace,
                'Normal',
                'PullSecretRotated',
                `pullkeeper rotated ${secretName} for tenant ${t.name} (expires ${b.annotations[EXPIRES_ANNOTATION]})`,
              );
            if (w.outcome === 'created' && missing.length) r.reason = `created without ${failedWhy}`;
            break;
          }
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
      await patchServiceAccounts(k, p, secretName, r, report, o);
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
async function writeSecret(
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
async function patchServiceAccounts(
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

/**
 * A tenant whose Secrets are fresh but some ServiceAccount lacks our entry (recreated by its
 * controller, new under '*'): only those ServiceAccounts are patched; nothing is minted and
 * no Secret is written.
 */
async function applyServiceAccounts(
  t: TenantConfig,
  k: KubeClient,
  st: ClusterState,
  sel: ReturnType<typeof tenantNamespaces>,
  tr: TenantReport,
  report: RefreshReport,
  o: { dryRun: boolean; signal: AbortSignal; concurrency: number },
): Promise<void> {
  const secretName = defaultSecretName(t);
  tr.namespaces.push(...absentNamespaces(sel));
  const live = sel.names.filter((n) => !sel.terminating.includes(n));
  const results = await mapBounded(live, o.concurrency, async (ns): Promise<NamespaceReport> => {
    const r: NamespaceReport = { name: ns, secret: 'unchanged', serviceAccounts: 'unchanged' };
    await patchServiceAccounts(
      k,
      {
        namespace: ns,
        ...serviceAccountPlan(t.serviceAccounts, secretName, st.serviceAccounts.get(ns) ?? []),
      },
      secretName,
      r,
      report,
      o,
    );
    return r;
  });
  tr.namespaces.push(
    ...results,
    ...sel.terminating.map(
      (name): NamespaceReport => ({ name, secret: 'unchanged', serviceAccounts: 'unchanged' }),
    ),
  );
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
