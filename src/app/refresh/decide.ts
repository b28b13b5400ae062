/** Step 2, decide freshness: which tenants need minting, and which only ServiceAccount patches. */
import type { PullkeeperConfig, TenantConfig } from '../../config/schema.js';
import { isOurs, type SecretState, secretRefreshDue } from '../../core/rotation-plan.js';
import {
  CONFIG_HASH_ANNOTATION,
  clusterOf,
  defaultSecretName,
  type Run,
  tenantConfigHash,
  tenantNamespaces,
} from './model.js';
import type { ClusterState } from './read.js';

export type TenantNamespaces = ReturnType<typeof tenantNamespaces>;

export interface Decision {
  /** Tenants to mint for and write (not fresh, or --force). */
  due: TenantConfig[];
  /** Secrets fresh, but a ServiceAccount lacks our entry: patched without minting. */
  serviceAccountsDue: Set<TenantConfig>;
  /** Each tenant's namespaces in its cluster (after the namespace filter). */
  nsOf: Map<string, TenantNamespaces>;
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
  // By namespace once: a scan per namespace made this quadratic in the tenant's namespaces.
  const byNs = new Map<string, SecretState>();
  for (const x of state.secrets.get(t.name) ?? []) if (x.name === name) byNs.set(x.namespace, x);
  const secretsFresh = nsNames.every((ns) => {
    const s = byNs.get(ns);
    // A namespace that could not be read is due: the apply step reports it.
    return (
      !!s &&
      !state.unreadable.has(ns) &&
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

/** Each tenant of a readable cluster: its namespaces, and whether it is due (mint), only its ServiceAccounts are, or it is fresh. */
export function decideFreshness(run: Run, states: Map<string, ClusterState>): Decision {
  const d: Decision = { due: [], serviceAccountsDue: new Set(), nsOf: new Map() };
  const f = run.nsFilter;
  for (const t of run.tenants) {
    const st = states.get(clusterOf(t, run.config));
    if (!st) continue;
    const sel = tenantNamespaces(t, st.namespaces);
    if (f) {
      sel.names = sel.names.filter((n) => f.has(n));
      sel.terminating = sel.terminating.filter((n) => f.has(n));
      sel.absent = sel.absent.filter((n) => f.has(n));
    }
    d.nsOf.set(t.name, sel);
    const terminating = new Set(sel.terminating);
    const live = sel.names.filter((n) => !terminating.has(n));
    const fresh = tenantFreshness(t, run.config, live, st, run.now());
    if (run.opts.force || !fresh.secrets) d.due.push(t);
    else if (!fresh.serviceAccounts) d.serviceAccountsDue.add(t);
  }
  return d;
}
