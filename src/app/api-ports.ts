/**
 * The ports between the HTTP API (src/http) and the use cases (src/app): what a route may ask
 * of the application, and what the composition root hands the API. Both layers import these
 * downward; src/app imports nothing from src/http.
 */
import type { PullkeeperConfig } from '../config/schema.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { StatusReport } from './status-report.js';

/** Which tenants a caller may act for: every one (`'*'`, present and future) or the ones named. */
export type TenantGrant = '*' | string[];

/** Who called the API (a CI OIDC token, an API token, or nobody on a public status page). */
export interface Principal {
  /** public: nobody signed in, the status page's opt-in public mode (`api.statusPage.public`). */
  kind: 'oidc' | 'token' | 'public';
  /** For logs: `oidc https://token.actions.githubusercontent.com repo:org/app:ref:refs/heads/main`, or the token's name. */
  name: string;
  tenants: TenantGrant;
}

/** A refresh as the API asks for it (the body of POST /v1/refresh, validated by src/http/schemas.ts). */
export interface RefreshInput {
  tenants?: string[] | undefined;
  registries?: string[] | undefined;
  dryRun: boolean;
  nodes?: boolean | undefined;
  force: boolean;
}

/** What a use case gets besides its input. */
export interface CallContext {
  signal: AbortSignal;
  principal: Principal;
  log: Logger;
  requestId: string;
}

/** The use cases behind the API, injected (src/app composes the real ones; tests may pass others). */
export interface ApiUseCases {
  /** The tenants' names, for authorization and for 404s. */
  tenants(config: PullkeeperConfig): string[];
  refresh(
    config: PullkeeperConfig,
    req: RefreshInput & { tenants: string[] },
    ctx: CallContext,
  ): Promise<{ ok: boolean; report: unknown }>;
  /**
   * Which of `among` (the caller's tenants) own a namespace (may ask their clusters, and only
   * theirs). Empty: not a namespace of those tenants, or no such namespace.
   */
  tenantsOfNamespace(
    config: PullkeeperConfig,
    namespace: string,
    among: string[],
    ctx: CallContext,
  ): Promise<string[]>;
  /** Makes the namespace ready for `tenants` only (the caller's tenants that own it). */
  ensure(
    config: PullkeeperConfig,
    namespace: string,
    ctx: CallContext & { timeoutMs: number; tenants: string[] },
  ): Promise<{ ok: boolean; report: unknown }>;
  /** The status of `scope.tenants`; node results only with `scope.nodes` (a caller granted every tenant). */
  status(config: PullkeeperConfig, scope: StatusScope, ctx: CallContext): Promise<StatusReport>;
  /**
   * The pod credential broker (POST /v1/credentials): verifies the service account token in
   * `authorization` itself (not the API's callers) and answers a CredentialProviderResponse.
   * Absent: the route answers 404.
   */
  podCredentials?(
    config: PullkeeperConfig,
    authorization: string | undefined,
    image: string,
    ctx: { signal: AbortSignal; log: Logger },
  ): Promise<{ status: 200 | 400 | 401 | 403 | 404 | 503; body: unknown }>;
}

export interface StatusScope {
  tenants: string[];
  nodes: boolean;
}

export interface ApiPorts {
  /** Loads pullkeeper.yaml once per process; throws a ConfigError when it is broken. */
  config: () => Promise<PullkeeperConfig>;
  useCases?: ApiUseCases;
  metrics?: Metrics;
  logger?: Logger;
  /** Serve GET /metrics (Prometheus text): locally, not behind API Gateway. Authenticated unless public (below). */
  exposeMetrics?: boolean;
  /**
   * The server listens on a loopback address only (`pullkeeper serve --host 127.0.0.1`):
   * only then is `api.metrics.public` honoured.
   */
  loopbackOnly?: boolean;
  /**
   * Honour `api.statusPage.public` (default true). The composition root sets false
   * on a deployed Lambda: a public endpoint never serves the page without sign-in.
   */
  allowPublicStatusPage?: boolean;
  /** The clock of the status page's countdowns (tests). */
  now?: () => Date;
}
