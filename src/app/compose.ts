/**
 * The composition root for the functions and the local server: the real use
 * cases behind the HTTP API, the config from the environment, one metrics
 * registry and one credential cache per process (warm invocations reuse them).
 */
import { configFromEnvOnce } from '../config/load.js';
import type { PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver } from '../config/secret-ref.js';
import type { KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import type { ApiPorts, ApiUseCases } from './api-ports.js';
import { PodCredentialBroker } from './broker.js';
import { ensureNamespace, tenantsOfNamespace } from './ensure.js';
import type { Logger } from './log.js';
import { createLogger } from './log.js';
import { Metrics } from './metrics.js';
import { processCache } from './mint.js';
import { type RefreshReport, refresh, refreshFailed } from './refresh.js';
import { lastSeen, statusReport } from './status-report.js';
import { type SaveResult, saveStatus } from './status-store.js';

export const processMetrics = new Metrics();

/**
 * Remembers a report for /v1/status, the status page and the metrics: in this
 * process, and in the status ConfigMap for the other processes (best effort:
 * a failure to save is logged, and the refresh's result stands).
 */
export async function recordReport(
  config: PullkeeperConfig,
  r: RefreshReport,
  o: { signal?: AbortSignal; log?: Logger; now?: Date } = {},
): Promise<SaveResult> {
  const now = o.now ?? new Date();
  lastSeen.add(r.registries, r.nodes, now);
  processMetrics.record(r, now);
  const saved = await saveStatus(
    config,
    { registries: r.registries, nodes: r.nodes ?? [] },
    { now, ...(o.signal && !o.signal.aborted ? { signal: o.signal } : {}) },
  );
  if (saved.error) o.log?.warn('status not saved', { error: saved.error });
  return saved;
}

/** Log line of a report: counts only, no secrets (the report holds none). */
export function summarize(r: RefreshReport): Record<string, unknown> {
  const ns = r.tenants.flatMap((t) => t.namespaces);
  const count = (k: string) => ns.filter((n) => n.secret === k).length;
  return {
    ok: !refreshFailed(r),
    mintCalls: r.mintCalls,
    writes: r.writes,
    registriesFailed: r.registries.filter((x) => x.status === 'failed').map((x) => x.name),
    namespaces: {
      created: count('created'),
      updated: count('updated'),
      unchanged: count('unchanged'),
      failed: count('failed'),
      conflict: count('conflict'),
    },
    nodes: r.nodes
      ? {
          total: r.nodes.length,
          failed: r.nodes.filter((n) => n.status === 'failed').length,
          written: r.nodes.filter((n) => n.status === 'written').length,
        }
      : undefined,
  };
}

/**
 * One broker per loaded config, with long-lived keep-alive clients to its clusters
 * (a warm Lambda or `pullkeeper serve` reuses them, and the verified-token cache).
 */
const brokers = new WeakMap<PullkeeperConfig, PodCredentialBroker>();
export function brokerFor(config: PullkeeperConfig): PodCredentialBroker {
  let b = brokers.get(config);
  if (!b) {
    const clients = new Map<string, Promise<KubeClient>>();
    b = new PodCredentialBroker(config, {
      cache: processCache,
      metrics: processMetrics,
      kube: (name) => {
        let c = clients.get(name);
        if (!c) {
          c = kubeClientFor(config.clusters.find((x) => x.name === name)!, createSecretResolver(), {
            timeoutMs: 5000,
          });
          clients.set(name, c);
          c.catch(() => clients.delete(name));
        }
        return c;
      },
      close: () => {
        for (const c of clients.values())
          c.then(
            (k) => k.close(),
            () => undefined,
          );
        clients.clear();
      },
    });
    brokers.set(config, b);
  }
  return b;
}

export function apiUseCases(): ApiUseCases {
  return {
    podCredentials: (config, authorization, image, ctx) =>
      brokerFor(config).answer(authorization, image, ctx),
    tenants: (c) => c.tenants.map((t) => t.name),
    async refresh(config, req, ctx) {
      const r = await refresh(config, {
        tenants: req.tenants,
        dryRun: req.dryRun,
        force: req.force,
        signal: ctx.signal,
        cache: processCache,
        ...(req.nodes !== undefined ? { nodes: req.nodes } : {}),
      });
      if (!req.dryRun) await recordReport(config, r, { signal: ctx.signal, log: ctx.log });
      ctx.log.info('refresh', summarize(r));
      return { ok: !refreshFailed(r), report: r };
    },
    async tenantsOfNamespace(config, ns, among, ctx) {
      const clients = new Map<string, Awaited<ReturnType<typeof kubeClientFor>>>();
      try {
        return await tenantsOfNamespace(
          config,
          ns,
          async (name) => {
            let c = clients.get(name);
            if (!c) {
              c = await kubeClientFor(
                config.clusters.find((x) => x.name === name)!,
                createSecretResolver({ signal: ctx.signal }),
              );
              clients.set(name, c);
            }
            return c;
          },
          ctx.signal,
          among,
        );
      } finally {
        for (const c of clients.values()) c.close();
      }
    },
    async ensure(config, ns, ctx) {
      const r = await ensureNamespace(config, ns, {
        signal: ctx.signal,
        timeoutMs: ctx.timeoutMs,
        cache: processCache,
        onlyTenants: ctx.tenants,
      });
      ctx.log.info('ensure', { namespace: ns, ready: r.ready, ...summarize(r.refresh) });
      return { ok: r.ready, report: r };
    },
    status: (config, scope, ctx) =>
      statusReport(config, scope.tenants, { signal: ctx.signal, nodes: scope.nodes }),
  };
}

/** Running in AWS Lambda itself (serverless offline sets IS_OFFLINE). */
export function onDeployedLambda(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.AWS_LAMBDA_FUNCTION_NAME) && env.IS_OFFLINE !== 'true';
}

export function apiDeps(
  o: {
    logger?: Logger;
    exposeMetrics?: boolean;
    loopbackOnly?: boolean;
    config?: () => Promise<PullkeeperConfig>;
  } = {},
): ApiPorts {
  return {
    config: o.config ?? (() => configFromEnvOnce()),
    useCases: apiUseCases(),
    metrics: processMetrics,
    logger: o.logger ?? createLogger(),
    exposeMetrics: o.exposeMetrics,
    loopbackOnly: o.loopbackOnly === true && !onDeployedLambda(),
    // api.statusPage.public is for a local demo: a deployed function never serves the page without sign-in.
    allowPublicStatusPage: !onDeployedLambda(),
  };
}
