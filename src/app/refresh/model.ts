/**
 * What a refresh works with: the options, the report, names and namespaces of a
 * tenant, and the run every step shares (config, options, clients, report).
 */
import { createHash } from 'node:crypto';
import type { PullkeeperConfig, TenantConfig } from '../../config/schema.js';
import type { SecretResolver } from '../../config/secret-ref.js';
import { PullkeeperError } from '../../core/errors.js';
import { KubeApiError, type KubeClient } from '../../kube/client.js';
import type { NamespaceObj } from '../../kube/resources.js';
import type { CredentialCache, MintReportEntry } from '../mint.js';

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
  nodes?: import('../push.js').PushResult['nodes'];
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

export function sha256(text: string): string {
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

export function clusterOf(t: TenantConfig, config: PullkeeperConfig): string {
  const name = t.cluster ?? config.clusters[0]?.name;
  if (!name)
    throw new RefreshError(`tenant ${t.name}: no cluster configured; add one under "clusters" in the config`);
  return name;
}

export function describeKubeError(err: unknown): string {
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

/** A tenant's namespaces that are configured by name but do not exist: failed, with the reason. */
export function absentNamespaces(sel: { absent: string[] }): NamespaceReport[] {
  return sel.absent.map((name) => ({
    name,
    secret: 'failed',
    serviceAccounts: 'failed',
    reason: 'namespace does not exist',
  }));
}

/** One refresh in progress: what every step reads, and the report they fill in. */
export interface Run {
  config: PullkeeperConfig;
  opts: RefreshOptions;
  /** The tenants of this run (--tenant), in config order. */
  tenants: TenantConfig[];
  /** Only these namespaces (ensure). */
  nsFilter?: Set<string>;
  signal: AbortSignal;
  now: () => Date;
  secrets: SecretResolver;
  dryRun: boolean;
  concurrency: number;
  report: RefreshReport;
  /** One client per cluster, shared by every tenant on it (made on first use). */
  clientOf: (cluster: string) => Promise<KubeClient>;
  clients: Map<string, KubeClient>;
}
