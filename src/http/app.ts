import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ApiPorts, ApiUseCases, CallContext, StatusScope } from '../app/api-ports.js';
import type { Logger } from '../app/log.js';
import { createLogger } from '../app/log.js';
import { CAPABILITIES } from '../app/status.js';
import type { PullkeeperConfig } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import { VERSION } from '../version.js';
import {
  AuthError,
  type Authenticator,
  allows,
  bearerFromBasic,
  createAuthenticator,
  type Principal,
} from './auth.js';
import {
  CredentialsRequestSchema,
  EnsureRequestSchema,
  NamespaceParamSchema,
  RefreshRequestSchema,
  validationErrors,
} from './schemas.js';
import { renderMessagePage, renderStatusPage } from './status-page.js';

export type { ApiPorts, ApiUseCases, CallContext, StatusScope };

/** The API's default body limit when the config has no `api` section (the schema's default). */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024;

/**
 * Node results, node pushes and metrics are fleet-wide: only a caller granted every tenant
 * (`tenants: '*'` on its token or OIDC rule, present and future tenants alike) sees or asks for them.
 */
export const grantedEveryTenant = (p: Principal): boolean => p.tenants === '*';

/** The one answer for a namespace that does not exist and one the caller may not touch. */
const namespaceNotFound = (ns: string) => ({
  error: 'not_found',
  message: `namespace ${ns} is not a namespace of this caller's tenants (or does not exist)`,
});

/** The composition root's ports (src/app/api-ports.ts) plus what only the HTTP layer builds. */
export interface ApiDeps extends ApiPorts {
  authenticator?: (config: PullkeeperConfig) => Authenticator;
}

/** The realm a browser shows when it asks for the status page's credentials. */
export const STATUS_REALM = 'pullkeeper status';

/** `config`: loaded once per request (by the body limit first, when the route has one). */
type Env = { Variables: { requestId: string; log: Logger; config?: PullkeeperConfig } };
type Ctx = Context<Env>;

/** 400 body: what was wrong, field by field. */
function badRequest(message: string, errors?: Array<{ path: string; message: string }>) {
  return { error: 'bad_request', message, ...(errors ? { errors } : {}) };
}

/** An HTML answer of the status page: never cached, no script can run, no framing. */
function page(c: Ctx, body: string, status: 200 | 401 | 403 | 503, headers: Record<string, string> = {}) {
  return c.html(body, status, {
    'cache-control': 'no-store',
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...headers,
  });
}

/**
 * The HTTP API, free of any Lambda import: functions/api.ts adapts it to API
 * Gateway, tests call `app.request()` directly, and `serverless offline` serves it.
 */
export function createApp(deps?: ApiDeps): Hono<Env> {
  const app = new Hono<Env>();
  const baseLog = deps?.logger ?? createLogger();
  const authenticators = new WeakMap<PullkeeperConfig, Authenticator>();

  app.use('*', async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && /^[\w.-]{1,100}$/.test(incoming) ? incoming : crypto.randomUUID();
    c.set('requestId', requestId);
    c.set('log', baseLog.child({ requestId }));
    await next();
    c.header('x-request-id', requestId);
  });

  app.get('/healthz', (c) => c.json({ status: 'ok', version: VERSION }));
  app.get('/v1/capabilities', (c) => c.json({ version: VERSION, capabilities: CAPABILITIES }));

  if (!deps?.useCases) {
    app.get('/', (c) =>
      page(
        c,
        renderMessagePage({
          title: 'pullkeeper is not configured',
          lines: [
            'This server has no pullkeeper configuration, so there is no status to show.',
            'Write a pullkeeper.yaml (registries, clusters, tenants; examples in infra/examples/), check it, and start the server with it:',
          ],
          code: [
            'pullkeeper config check pullkeeper.yaml',
            'pullkeeper serve --config pullkeeper.yaml',
            '# on AWS Lambda: set PULLKEEPER_CONFIG (docs/deploy.md)',
          ],
        }),
        200,
      ),
    );
  } else {
    const uc = deps.useCases;
    const loadConfig = deps.config;
    /** api.maxBodyBytes of the current config (a body limit per config object). */
    const limits = new WeakMap<PullkeeperConfig, MiddlewareHandler<Env>>();
    const limitOf = (config: PullkeeperConfig | undefined): MiddlewareHandler<Env> => {
      const cached = config && limits.get(config);
      if (cached) return cached;
      const maxSize = config?.api?.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
      const mw = bodyLimit({
        maxSize,
        onError: (c) =>
          c.json(
            badRequest(`the request body is too large (at most ${maxSize} bytes, api.maxBodyBytes)`),
            413,
          ),
      });
      if (config) limits.set(config, mw);
      return mw;
    };
    const limit: MiddlewareHandler<Env> = async (c, next) => {
      let config: PullkeeperConfig | undefined;
      try {
        config = await loadConfig();
        c.set('config', config);
      } catch {
        // authorize() answers 503 and logs why; the default limit guards the body meanwhile.
      }
      return limitOf(config)(c, next);
    };
    /** The config, or undefined after logging why it could not be loaded. */
    const configOf = async (c: Ctx): Promise<PullkeeperConfig | undefined> => {
      const loaded = c.get('config');
      if (loaded) return loaded;
      try {
        const config = await loadConfig();
        c.set('config', config);
        return config;
      } catch (err) {
        c.get('log').error('config', {
          err: err instanceof PullkeeperError ? err : { name: (err as Error).name },
        });
        return undefined;
      }
    };
    const authenticatorOf = (config: PullkeeperConfig): Authenticator => {
      let auth = authenticators.get(config);
      if (!auth) {
        auth = (deps.authenticator ?? ((cfg) => createAuthenticator(cfg.api)))(config);
        authenticators.set(config, auth);
      }
      return auth;
    };
    /** Config + principal, or a response. */
    const authorize = async (c: Ctx) => {
      const config = await configOf(c);
      if (!config) {
        return {
          res: c.json(
            {
              error: 'unavailable',
              message: 'pullkeeper is not configured correctly; see the function logs',
            },
            503,
            { 'retry-after': '60' },
          ),
        };
      }
      try {
        const principal = await authenticatorOf(config).authenticate(
          c.req.header('authorization'),
          c.req.raw.signal,
        );
        c.get('log').info('authenticated', { principal: principal.name });
        return { config, principal };
      } catch (err) {
        if (err instanceof AuthError) {
          c.get('log').warn('unauthorized', { status: err.status, reason: err.message });
          return {
            res: c.json(
              { error: err.status === 401 ? 'unauthorized' : 'forbidden', message: err.message },
              err.status,
              err.status === 401 ? { 'www-authenticate': 'Bearer' } : {},
            ),
          };
        }
        throw err;
      }
    };
    const readJson = async (c: Ctx): Promise<{ body: unknown } | { res: Response }> => {
      const text = await c.req.text();
      if (!text.trim()) return { body: {} };
      if (!/^application\/json\b/i.test(c.req.header('content-type') ?? 'application/json'))
        return { res: c.json(badRequest('send the body as application/json'), 415) };
      try {
        return { body: JSON.parse(text) };
      } catch {
        return { res: c.json(badRequest('the body is not valid JSON'), 400) };
      }
    };
    const ctxOf = (c: Ctx, principal: Principal): CallContext => ({
      signal: c.req.raw.signal,
      principal,
      log: c.get('log'),
      requestId: c.get('requestId'),
    });

    app.post('/v1/refresh', limit, async (c) => {
      const a = await authorize(c);
      if ('res' in a) return a.res;
      const j = await readJson(c);
      if ('res' in j) return j.res;
      const parsed = RefreshRequestSchema.safeParse(j.body);
      if (!parsed.success)
        return c.json(badRequest('invalid refresh request', validationErrors(parsed.error)), 400);
      const known = uc.tenants(a.config);
      const asked = parsed.data.tenants ?? known.filter((t) => allows(a.principal.tenants, t));
      const unknown = asked.filter((t) => !known.includes(t));
      if (unknown.length)
        return c.json({ error: 'not_found', message: `unknown tenant ${unknown.join(', ')}` }, 404);
      const denied = asked.filter((t) => !allows(a.principal.tenants, t));
      if (denied.length)
        return c.json(
          { error: 'forbidden', message: `this caller may not refresh tenant ${denied.join(', ')}` },
          403,
        );
      if (asked.length === 0)
        return c.json({ error: 'forbidden', message: 'this caller may refresh no tenant' }, 403);
      // Node config is fleet-wide: only a caller allowed every tenant pushes it (by default when it names no tenant).
      const everyTenant = grantedEveryTenant(a.principal);
      if (parsed.data.nodes && !everyTenant)
        return c.json(
          { error: 'forbidden', message: 'pushing node config needs a caller allowed every tenant ("*")' },
          403,
        );
      const nodes =
        parsed.data.nodes ??
        (everyTenant && parsed.data.tenants === undefined && a.config.nodes !== undefined);
      const { ok, report } = await uc.refresh(
        a.config,
        { ...parsed.data, tenants: asked, nodes },
        ctxOf(c, a.principal),
      );
      if (report && typeof report === 'object') deps.metrics?.record(report as never, new Date());
      return c.json({ ok, requestId: c.get('requestId'), ...(report as object) }, ok ? 200 : 502);
    });

    // /metrics: Prometheus text of this process. Per-tenant and node series are fleet-wide, so it takes
    // the API's bearer auth and a caller granted every tenant; or no auth with api.metrics.public,
    // honoured only when the server listens on loopback only.
    if (deps.exposeMetrics && deps.metrics) {
      const metrics = deps.metrics;
      app.get('/metrics', async (c) => {
        const config = await configOf(c);
        const open = config?.api?.metrics.public === true && deps.loopbackOnly === true;
        if (!open) {
          const a = await authorize(c);
          if ('res' in a) return a.res;
          if (!grantedEveryTenant(a.principal))
            return c.json(
              {
                error: 'forbidden',
                message: 'metrics cover every tenant and node: they need a caller granted every tenant ("*")',
              },
              403,
            );
        }
        return c.text(metrics.prometheus(), 200, { 'content-type': 'text/plain; version=0.0.4' });
      });
    }

    app.post('/v1/namespaces/:ns/ensure', limit, async (c) => {
      const a = await authorize(c);
      if ('res' in a) return a.res;
      const ns = NamespaceParamSchema.safeParse(c.req.param('ns'));
      if (!ns.success)
        return c.json(
          badRequest('invalid namespace', [{ path: 'ns', message: ns.error.issues[0]!.message }]),
          400,
        );
      const j = await readJson(c);
      if ('res' in j) return j.res;
      const parsed = EnsureRequestSchema.safeParse(j.body);
      if (!parsed.success)
        return c.json(badRequest('invalid ensure request', validationErrors(parsed.error)), 400);
      const ctx = ctxOf(c, a.principal);
      // Only the caller's tenants are looked at (their clusters asked), so a namespace of another
      // tenant and one that does not exist get the same answer, from the same calls.
      const mine = uc.tenants(a.config).filter((t) => allows(a.principal.tenants, t));
      let owners: Awaited<ReturnType<typeof uc.tenantsOfNamespace>> = [];
      try {
        owners = mine.length ? await uc.tenantsOfNamespace(a.config, ns.data, mine, ctx) : [];
      } catch (err) {
        // The cluster could not be asked (unreachable, 401, 403): a 503 the caller may retry, never
        // a 500, and no detail in the answer (the log has the cause).
        c.get('log').error('ensure: cluster not asked', { error: (err as Error)?.message ?? String(err) });
        return c.json(
          {
            error: 'unavailable',
            message:
              'the cluster could not be asked about this namespace; try again later (the function logs say why)',
            requestId: c.get('requestId'),
          },
          503,
          { 'retry-after': '30' },
        );
      }
      if (owners.length === 0) return c.json(namespaceNotFound(ns.data), 404);
      const { ok, report } = await uc.ensure(a.config, ns.data, {
        ...ctx,
        timeoutMs: parsed.data.timeoutSeconds * 1000,
        tenants: owners,
      });
      return c.json(
        { ok, requestId: c.get('requestId'), ...(report as object) },
        ok ? 200 : 503,
        ok ? {} : { 'retry-after': '10' },
      );
    });

    // The pod credential broker (docs/pod-credentials.md): its callers are pods, by their
    // ServiceAccount token (KEP-4412), never the API's tokens. Errors say nothing that helps
    // an attacker; the log says why.
    app.post('/v1/credentials', limit, async (c) => {
      const config = await configOf(c);
      if (!config)
        return c.json(
          { error: 'unavailable', message: 'pullkeeper is not configured correctly; see the function logs' },
          503,
          { 'retry-after': '60' },
        );
      if (!config.api?.serviceAccountTokens || !uc.podCredentials)
        return c.json(
          {
            error: 'not_found',
            message: 'the pod credential broker is off: configure api.serviceAccountTokens',
          },
          404,
        );
      const authorization = c.req.header('authorization');
      if (!/^Bearer\s+\S+\s*$/i.test(authorization ?? '')) {
        c.get('log').warn('pod credentials refused', { reason: 'no bearer token' });
        deps.metrics?.recordPodCredential('none', 'denied');
        return c.json({ error: 'unauthorized', message: 'a valid service account token is required' }, 401, {
          'www-authenticate': 'Bearer',
        });
      }
      const j = await readJson(c);
      if ('res' in j) return j.res;
      const parsed = CredentialsRequestSchema.safeParse(j.body);
      if (!parsed.success)
        return c.json(badRequest('invalid credentials request', validationErrors(parsed.error)), 400);
      const r = await uc.podCredentials(config, authorization, parsed.data.image, {
        signal: c.req.raw.signal,
        log: c.get('log'),
      });
      return c.json(
        r.body as object,
        r.status,
        r.status === 401
          ? { 'www-authenticate': 'Bearer', 'cache-control': 'no-store' }
          : { 'cache-control': 'no-store' },
      );
    });

    app.get('/v1/status', async (c) => {
      const a = await authorize(c);
      if ('res' in a) return a.res;
      const tenants = uc.tenants(a.config).filter((t) => allows(a.principal.tenants, t));
      return c.json(
        await uc.status(a.config, { tenants, nodes: grantedEveryTenant(a.principal) }, ctxOf(c, a.principal)),
      );
    });

    // The status page: what GET /v1/status says, for a person with a browser (docs/status-page.md).
    // Browsers send no bearer token without JavaScript: here (only here) HTTP Basic
    // credentials are accepted, the password being an API token or CI token.
    app.get('/', async (c) => {
      const config = await configOf(c);
      if (!config)
        return page(
          c,
          renderMessagePage({
            title: 'pullkeeper is not configured correctly',
            lines: ['The configuration could not be loaded; the server logs say why.'],
          }),
          503,
          { 'retry-after': '60' },
        );
      const publicMode = (config.api?.statusPage.public ?? false) && deps.allowPublicStatusPage !== false;
      let principal: Principal;
      if (publicMode) {
        principal = { kind: 'public', name: 'anyone (api.statusPage.public)', tenants: '*' };
      } else {
        try {
          principal = await authenticatorOf(config).authenticate(
            bearerFromBasic(c.req.header('authorization')),
            c.req.raw.signal,
          );
          c.get('log').info('authenticated', { principal: principal.name });
        } catch (err) {
          if (!(err instanceof AuthError)) throw err;
          c.get('log').warn('unauthorized', { status: err.status, reason: err.message });
          if (err.status === 401)
            return page(
              c,
              renderMessagePage({
                title: 'Sign in to see the pullkeeper status',
                lines: [
                  'Sign in with any user name and an API token (or a CI OIDC token) as the password.',
                  `Why: ${err.message}`,
                ],
              }),
              401,
              { 'www-authenticate': `Basic realm="${STATUS_REALM}", charset="UTF-8"` },
            );
          return page(c, renderMessagePage({ title: 'Not allowed', lines: [err.message] }), 403);
        }
      }
      const tenants = uc.tenants(config).filter((t) => allows(principal.tenants, t));
      const report = await uc.status(
        config,
        { tenants, nodes: grantedEveryTenant(principal) },
        ctxOf(c, principal),
      );
      return page(
        c,
        renderStatusPage(report, {
          now: deps.now?.() ?? new Date(),
          viewer: principal.name,
          publicMode,
        }),
        200,
      );
    });
  }

  app.notFound((c) =>
    c.json(
      { error: 'not_found', message: `no route for ${c.req.method} ${c.req.path}; see GET /v1/capabilities` },
      404,
    ),
  );
  app.onError((err, c) => {
    // Never echo the error's details: they may carry request data.
    c.get('log')?.error('unhandled', { name: err.name });
    return c.json(
      { error: 'internal', message: 'internal error; see the function logs', requestId: c.get('requestId') },
      500,
    );
  });
  return app;
}
