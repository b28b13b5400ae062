/**
 * Steps 4 and 5, plan per tenant and apply: each tenant's desired Secret, the pure plan
 * (src/core/rotation-plan.ts), then per namespace the Secret write, its Event and the
 * ServiceAccount patches; prune and orphans last.
 */
import type { PullkeeperConfig, TenantConfig } from '../../config/schema.js';
import { refreshAt } from '../../core/expiry.js';
import {
  credentialsToDockerConfig,
  renderDockerConfigJson,
  validateDockerConfigJsonSecretData,
  validateSecretDataSize,
} from '../../core/index.js';
import {
  EXPIRES_ANNOTATION,
  HASH_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type NamespacePlan,
  planTenant,
  REFRESH_ANNOTATION,
  REGISTRIES_ANNOTATION,
  type SecretAction,
  type SecretState,
  serviceAccountPlan,
  TENANT_LABEL,
} from '../../core/rotation-plan.js';
import { KubeApiError, type KubeClient } from '../../kube/client.js';
import { createEvent, deleteSecret, type SecretBody } from '../../kube/resources.js';
import type { RegistryCredential } from '../../providers/types.js';
import { mapBounded } from '../../util/concurrency.js';
import type { MintReportEntry } from '../mint.js';
import type { Decision, TenantNamespaces } from './decide.js';
import {
  absentNamespaces,
  CONFIG_HASH_ANNOTATION,
  clusterOf,
  defaultSecretName,
  describeKubeError,
  type NamespaceReport,
  type Run,
  STATIC_REFRESH_MS,
  sha256,
  type TenantReport,
  tenantConfigHash,
} from './model.js';
import type { ClusterState } from './read.js';
import { patchServiceAccounts, writeSecret } from './write.js';

export interface Minted {
  credentials: Map<string, RegistryCredential>;
  registries: MintReportEntry[];
}

/** Plans and applies every tenant in config order (or reports why not), with progress after each. */
export async function applyTenants(
  run: Run,
  read: { states: Map<string, ClusterState>; errors: Map<string, string> },
  d: Decision,
  minted: Minted,
): Promise<void> {
  let done = 0;
  for (const t of run.tenants) {
    const tr = await applyTenantOrReport(run, t, read, d, minted);
    run.opts.onProgress?.(++done, run.tenants.length, t.name, tr);
  }
}

/** One tenant: its cluster unreadable, only ServiceAccounts due, fresh, or due (plan and apply). */
async function applyTenantOrReport(
  run: Run,
  t: TenantConfig,
  read: { states: Map<string, ClusterState>; errors: Map<string, string> },
  d: Decision,
  minted: Minted,
): Promise<TenantReport> {
  const cl = clusterOf(t, run.config);
  const st = read.states.get(cl);
  const tr: TenantReport = { name: t.name, cluster: cl, namespaces: [] };
  run.report.tenants.push(tr);
  if (!st) {
    const reason = read.errors.get(cl) ?? 'cluster unreachable';
    tr.namespaces.push({ name: '*', secret: 'failed', serviceAccounts: 'failed', reason });
    return tr;
  }
  const sel = d.nsOf.get(t.name)!;
  tr.namespaces.push(...absentNamespaces(sel));
  if (d.serviceAccountsDue.has(t)) await applyServiceAccounts(run, t, await run.clientOf(cl), st, sel, tr);
  else if (!d.due.includes(t)) {
    tr.fresh = true;
    for (const ns of sel.names)
      tr.namespaces.push({ name: ns, secret: 'unchanged', serviceAccounts: 'unchanged' });
  } else await applyTenant(run, t, await run.clientOf(cl), st, sel, minted, tr);
  return tr;
}

/** What the tenant's Secret should hold this run, from the credentials that were minted. */
interface Desired {
  secretName: string;
  /** Undefined when no registry of the tenant produced a credential. */
  hash?: string;
  /** Registries of the tenant that failed this run, and why (for reasons). */
  missing: string[];
  failedWhy: string;
  /** The Secret as written in one namespace. */
  body: (ns: string) => SecretBody;
}

function desiredSecret(t: TenantConfig, config: PullkeeperConfig, minted: Minted, now: Date): Desired {
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
  const issued = creds.length ? new Date(Math.max(...creds.map((c) => c.issuedAt.getTime()))) : now;
  const refresh = earliest
    ? refreshAt(issued, earliest, config.refreshAtFraction)
    : new Date(issued.getTime() + STATIC_REFRESH_MS);
  const secretName = defaultSecretName(t);
  // The same in every namespace: computed once per tenant, not once per namespace.
  const annotations = {
    [HASH_ANNOTATION]: hash!,
    [EXPIRES_ANNOTATION]: earliest?.toISOString() ?? 'never',
    [REFRESH_ANNOTATION]: refresh.toISOString(),
    [REGISTRIES_ANNOTATION]: t.registries.filter((r) => minted.credentials.has(r)).join(','),
    [CONFIG_HASH_ANNOTATION]: tenantConfigHash(t, config),
  };
  const body = (ns: string): SecretBody => ({
    namespace: ns,
    name: secretName,
    labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [TENANT_LABEL]: t.name },
    annotations: { ...annotations },
    dockerconfigjson: rendered!,
  });
  return { secretName, ...(hash ? { hash } : {}), missing, failedWhy, body };
}

/** What one namespace's apply needs: the run, the tenant, its client and desired Secret, and an Event sender. */
interface TenantApply {
  run: Run;
  t: TenantConfig;
  k: KubeClient;
  desired: Desired;
  event: (ns: string, type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>;
}

/**
 * Events on the tenant's Secret: best effort, none in a dry run, and only the kinds the config's
 * `events` asks for (default `warnings`: a Normal event per namespace and rotation would be a
 * third of a first rotation's writes, and an etcd object per namespace and rotation).
 */
function eventSender(run: Run, k: KubeClient, secretName: string, now: Date): TenantApply['event'] {
  const involved = { kind: 'Secret', name: secretName, apiVersion: 'v1' };
  const wanted = run.config.events ?? 'warnings';
  return async (namespace, type, reason, message) => {
    if (run.dryRun || wanted === 'none' || (wanted === 'warnings' && type === 'Normal')) return;
    try {
      await createEvent(k, { namespace, involved, type, reason, message, now }, run.signal);
    } catch {
      /* events are best effort */
    }
  };
}

/** A due tenant: desired Secret, plan, then every namespace (bounded), prune and orphans. */
async function applyTenant(
  run: Run,
  t: TenantConfig,
  k: KubeClient,
  st: ClusterState,
  sel: TenantNamespaces,
  minted: Minted,
  tr: TenantReport,
): Promise<void> {
  const now = run.now();
  const desired = desiredSecret(t, run.config, minted, now);
  const plan = planTenant({
    tenant: t.name,
    secretName: desired.secretName,
    serviceAccounts: t.serviceAccounts,
    adopt: t.adopt,
    prune: t.prune,
    namespaces: sel.names.filter((n) => !st.unreadable.has(n)),
    terminating: sel.terminating,
    desired: desired.hash
      ? {
          hash: desired.hash,
          registries: t.registries.filter((r) => minted.credentials.has(r)),
          missing: desired.missing,
        }
      : undefined,
    secrets: st.secrets.get(t.name) ?? [],
    serviceAccountsByNamespace: st.serviceAccounts,
  });
  for (const [ns, why] of st.unreadable)
    if (sel.names.includes(ns))
      tr.namespaces.push({ name: ns, secret: 'failed', serviceAccounts: 'failed', reason: why });
  const a: TenantApply = { run, t, k, desired, event: eventSender(run, k, desired.secretName, now) };
  tr.namespaces.push(...(await mapBounded(plan.namespaces, run.concurrency, (p) => applyNamespace(a, p))));
  for (const s of plan.prune) tr.namespaces.push(await pruneSecret(a, s));
  for (const s of plan.orphans)
    tr.namespaces.push({
      name: s.namespace,
      secret: 'unchanged',
      serviceAccounts: 'unchanged',
      reason: `Secret ${s.name} is ours but the namespace no longer belongs to tenant ${t.name}; set prune: true to delete it`,
    });
}

/** One namespace: the Secret action, then (unless the Secret write failed) its ServiceAccounts. */
async function applyNamespace(a: TenantApply, p: NamespacePlan): Promise<NamespaceReport> {
  const r: NamespaceReport = { name: p.namespace, secret: 'unchanged', serviceAccounts: 'unchanged' };
  const name = a.desired.secretName;
  try {
    await applySecretAction(a, p.namespace, p.secret, r);
  } catch (err) {
    r.secret = err instanceof KubeApiError && err.status === 409 ? 'conflict' : 'failed';
    r.reason = describeKubeError(err);
    await a.event(
      p.namespace,
      'Warning',
      'PullSecretRotationFailed',
      `pullkeeper could not write ${name}: ${r.reason}`,
    );
    return r;
  }
  await patchServiceAccounts(a.k, p, name, r, a.run.report, a.run);
  return r;
}

/** The plan's Secret action in one namespace, into its report entry (and the dry-run plan). */
async function applySecretAction(
  a: TenantApply,
  ns: string,
  s: SecretAction,
  r: NamespaceReport,
): Promise<void> {
  const { secretName, missing, failedWhy } = a.desired;
  const plan = a.run.report.plan;
  switch (s.kind) {
    case 'create':
    case 'update':
      plan?.push(
        s.kind === 'create'
          ? `+ create ${ns}/${secretName}`
          : `~ update ${ns}/${secretName}${s.adopt ? ' (adopt)' : ''}`,
      );
      if (a.run.dryRun) r.secret = s.kind === 'create' ? 'created' : 'updated';
      else await writeAndRecord(a, ns, s, r);
      return;
    case 'unchanged':
      return;
    case 'conflict':
      r.secret = 'conflict';
      r.reason = s.reason;
      plan?.push(`! conflict ${ns}/${secretName}: ${s.reason}`);
      await a.event(ns, 'Warning', 'PullSecretConflict', s.reason);
      return;
    case 'skip':
      r.secret = 'failed';
      r.reason = missing.length ? `${s.reason} (${failedWhy})` : s.reason;
      plan?.push(`! skip ${ns}/${secretName}: ${r.reason}`);
      await a.event(ns, 'Warning', 'PullSecretRotationFailed', r.reason);
      return;
  }
}

/** Creates or updates the Secret (converging under concurrent runs) and records the outcome and its Event. */
async function writeAndRecord(
  a: TenantApply,
  ns: string,
  s: Extract<SecretAction, { kind: 'create' | 'update' }>,
  r: NamespaceReport,
): Promise<void> {
  const { secretName, missing, failedWhy, hash } = a.desired;
  const b = a.desired.body(ns);
  const w = await writeSecret(a.k, b, s, { tenant: a.t.name, adopt: a.t.adopt, hash: hash! }, a.run.signal);
  if (w.outcome === 'conflict') {
    r.secret = 'conflict';
    r.reason = w.reason;
    await a.event(ns, 'Warning', 'PullSecretConflict', w.reason);
    return;
  }
  r.secret = w.outcome;
  const expires = b.annotations[EXPIRES_ANNOTATION];
  if (w.outcome === 'created')
    await a.event(
      ns,
      'Normal',
      'PullSecretCreated',
      `pullkeeper created ${secretName} for tenant ${a.t.name} (${b.annotations[REGISTRIES_ANNOTATION]}; expires ${expires})`,
    );
  else if (w.outcome === 'updated')
    await a.event(
      ns,
      'Normal',
      'PullSecretRotated',
      `pullkeeper rotated ${secretName} for tenant ${a.t.name} (expires ${expires})`,
    );
  if (w.outcome === 'created' && missing.length) r.reason = `created without ${failedWhy}`;
}

/** Deletes our Secret in a namespace that left the tenant (prune: true). */
async function pruneSecret(a: TenantApply, s: SecretState): Promise<NamespaceReport> {
  a.run.report.plan?.push(`- prune ${s.namespace}/${s.name}`);
  const r: NamespaceReport = {
    name: s.namespace,
    secret: 'pruned',
    serviceAccounts: 'unchanged',
    reason: 'namespace no longer belongs to the tenant',
  };
  if (a.run.dryRun) return r;
  try {
    await deleteSecret(a.k, s.namespace, s.name, s.resourceVersion, a.run.signal);
  } catch (err) {
    r.secret = 'failed';
    r.reason = `prune: ${describeKubeError(err)}`;
  }
  return r;
}

/**
 * A tenant whose Secrets are fresh but some ServiceAccount lacks our entry (recreated by its
 * controller, new under '*'): only those ServiceAccounts are patched; nothing is minted and
 * no Secret is written.
 */
async function applyServiceAccounts(
  run: Run,
  t: TenantConfig,
  k: KubeClient,
  st: ClusterState,
  sel: TenantNamespaces,
  tr: TenantReport,
): Promise<void> {
  const secretName = defaultSecretName(t);
  const live = sel.names.filter((n) => !sel.terminating.includes(n));
  const results = await mapBounded(live, run.concurrency, async (ns): Promise<NamespaceReport> => {
    const r: NamespaceReport = { name: ns, secret: 'unchanged', serviceAccounts: 'unchanged' };
    const sas = serviceAccountPlan(t.serviceAccounts, secretName, st.serviceAccounts.get(ns) ?? []);
    await patchServiceAccounts(k, { namespace: ns, ...sas }, secretName, r, run.report, run);
    return r;
  });
  tr.namespaces.push(
    ...results,
    ...sel.terminating.map(
      (name): NamespaceReport => ({ name, secret: 'unchanged', serviceAccounts: 'unchanged' }),
    ),
  );
}
