/**
 * The refresh use case: mint what is due, then make every tenant namespace's
 * pull Secret and ServiceAccounts match, writing only what changed. Called by
 * `pullkeeper refresh`, the scheduled function, POST /v1/refresh and ensure.
 *
 * One run reads each cluster's state, decides which tenants are fresh, mints
 * what is due, plans per tenant, applies, and reports; each step is a module of
 * src/app/refresh/ (read, decide, apply + write; the plan itself is the pure
 * src/core/rotation-plan.ts).
 */
import type { PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import type { KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import { mintCredentials } from './mint.js';
import { applyTenants, type Minted } from './refresh/apply.js';
import { type Decision, decideFreshness } from './refresh/decide.js';
import { RefreshError, type RefreshOptions, type RefreshReport, type Run } from './refresh/model.js';
import { readClusters } from './refresh/read.js';

export {
  CONFIG_HASH_ANNOTATION,
  defaultSecretName,
  type NamespaceReport,
  RefreshError,
  type RefreshOptions,
  type RefreshReport,
  type SecretOutcome,
  STATIC_REFRESH_MS,
  type TenantReport,
  tenantConfigHash,
  tenantNamespaces,
} from './refresh/model.js';
export { readPullSecrets } from './refresh/read.js';
export { WRITE_ATTEMPTS } from './refresh/write.js';

export async function refresh(config: PullkeeperConfig, opts: RefreshOptions = {}): Promise<RefreshReport> {
  const run = startRun(config, opts);
  try {
    const clusters = await readClusters(run);
    const decision = decideFreshness(run, clusters.states);
    const minted = await mintWhatIsDue(run, decision);
    await applyTenants(run, clusters, decision, minted);
    await pushNodesIfAsked(run, minted);
  } finally {
    finishRun(run);
  }
  return run.report;
}

/** The run: tenants checked against the config, one lazily made client per cluster, an empty report. */
function startRun(config: PullkeeperConfig, opts: RefreshOptions): Run {
  const signal = opts.signal ?? AbortSignal.timeout(10 * 60 * 1000);
  const secrets = opts.secrets ?? createSecretResolver({ signal });
  const dryRun = !!opts.dryRun;
  const unknown = (opts.tenants ?? []).filter((n) => !config.tenants.some((t) => t.name === n));
  if (unknown.length)
    throw new RefreshError(
      `unknown tenant ${unknown.join(', ')}; the config defines ${config.tenants.map((t) => t.name).join(', ') || 'none'}: pass one of those to --tenant`,
    );
  return {
    config,
    opts,
    tenants: opts.tenants?.length
      ? config.tenants.filter((t) => opts.tenants!.includes(t.name))
      : config.tenants,
    ...(opts.namespaces ? { nsFilter: new Set(opts.namespaces) } : {}),
    signal,
    now: opts.now ?? (() => new Date()),
    secrets,
    dryRun,
    concurrency: opts.concurrency ?? 32,
    report: {
      dryRun,
      registries: [],
      mintCalls: 0,
      tenants: [],
      writes: 0,
      requests: 0,
      connections: 0,
      ...(dryRun ? { plan: [] } : {}),
    },
    ...clusterClients(config, opts, secrets),
  };
}

/** One client per cluster, made on first use (or injected through opts.kube), shared by every tenant on it. */
function clusterClients(
  config: PullkeeperConfig,
  opts: RefreshOptions,
  secrets: SecretResolver,
): Pick<Run, 'clients' | 'clientOf'> {
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
  return { clients, clientOf };
}

/** Whether this run pushes node config too (default: the config has `nodes` and no tenant/namespace filter). */
function pushesNodes(run: Run): boolean {
  const { config, opts } = run;
  const push = opts.nodes ?? (!!config.nodes && !opts.tenants?.length && !opts.namespaces);
  if (push && !config.nodes) throw new RefreshError('nodes: true, but the config has no "nodes" section');
  return push;
}

/** Mints only the registries of tenants that are due (and the nodes' registries when pushing). */
async function mintWhatIsDue(run: Run, d: Decision): Promise<Minted> {
  const nodes = pushesNodes(run) ? run.config.nodes!.registries : [];
  const registries = [...new Set([...d.due.flatMap((t) => t.registries), ...nodes])];
  const minted = registries.length
    ? await mintCredentials(run.config, {
        registries,
        signal: run.signal,
        now: run.now,
        cache: run.opts.cache,
        secrets: run.secrets,
        force: false,
      })
    : { registries: [], credentials: new Map(), mintCalls: 0 };
  run.report.registries = minted.registries;
  run.report.mintCalls = minted.mintCalls;
  return minted;
}

/** Nodes: the same credentials, merged into each node's config.json (src/app/push.ts). */
async function pushNodesIfAsked(run: Run, minted: Minted): Promise<void> {
  if (!pushesNodes(run)) return;
  const { pushNodes } = await import('./push.js');
  const names = new Set(run.config.nodes!.registries);
  const pushed = await pushNodes(run.config, {
    credentials: minted.credentials,
    registries: minted.registries.filter((r) => names.has(r.name)),
    check: run.dryRun,
    signal: run.signal,
    secrets: run.secrets,
  });
  run.report.nodes = pushed.nodes;
}

/** The report's request counters from every client; clients the run made are closed. */
function finishRun(run: Run): void {
  for (const c of run.clients.values()) {
    run.report.writes += c.stats.writes;
    run.report.requests += c.stats.requests;
    run.report.connections += c.stats.connections;
    if (!run.opts.kube) c.close();
  }
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
