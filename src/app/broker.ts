/**
 * The pod credential broker (POST /v1/credentials, docs/pod-credentials.md): a
 * kubelet credential provider plugin sends the pod's ServiceAccount token
 * (KEP-4412) and an image; the broker verifies the token with the cluster that
 * issued it, finds the tenant of the token's namespace, and answers a
 * CredentialProviderResponse with that tenant's credentials for the image,
 * minted through the same cache as rotation.
 *
 * Verified tokens are cached by the sha256 of the token (never the token), until
 * shortly before they expire and at most `api.serviceAccountTokens.cacheSeconds`.
 * ServiceAccount annotations are read from the API (what the caller sends is never
 * trusted); namespace labels and annotations are cached for a few seconds.
 */
import { createHash } from 'node:crypto';
import type { PullkeeperConfig, ServiceAccountTokensConfig } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import {
  answerProviderRequest,
  type CredentialProviderResponse,
  credentialsToDockerConfig,
  emptyProviderResponse,
  InvalidImageRefError,
  identityFromClaims,
  identityFromReview,
  narrowRegistries,
  normalizeKeyringKey,
  type PodIdentity,
  parseImageRef,
  serviceAccountAllowed,
  unverifiedJwtClaims,
  verifiedUntil,
} from '../core/index.js';
import type { KubeClient } from '../kube/client.js';
import { getNamespace, type NamespaceObj } from '../kube/resources.js';
import { getServiceAccountAnnotations, reviewToken } from '../kube/tokens.js';
import { jwksUriOf, remoteJwks } from './jwks.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { type CredentialCache, mintCredentials, processCache } from './mint.js';
import { tenantNamespaces } from './refresh.js';

/** A token the broker does not accept; `reason` goes to the log only (never to the caller). */
export class TokenRejectedError extends PullkeeperError {}
/** No cluster could answer whether the token is valid: try again. */
export class TokenUnverifiableError extends PullkeeperError {}

export interface BrokerAnswer {
  status: 200 | 400 | 401 | 403 | 404 | 503;
  body: unknown;
  /** For logs and metrics. */
  identity?: PodIdentity;
}

export interface BrokerDeps {
  /** A long-lived client per configured cluster (keep-alive: the broker answers in milliseconds). */
  kube: (cluster: string) => Promise<KubeClient>;
  cache?: CredentialCache;
  metrics?: Metrics;
  now?: () => Date;
  /** Releases the clients (tests, a server shutting down). */
  close?: () => void;
}

/** A small map whose entries expire, bounded (the oldest insertion goes first). */
class TtlMap<V> {
  readonly #m = new Map<string, { v: V; until: number }>();
  constructor(readonly max: number) {}
  get(k: string, now: number): V | undefined {
    const e = this.#m.get(k);
    if (!e) return undefined;
    if (e.until <= now) {
      this.#m.delete(k);
      return undefined;
    }
    return e.v;
  }
  set(k: string, v: V, until: number): void {
    this.#m.delete(k);
    if (this.#m.size >= this.max) this.#m.delete(this.#m.keys().next().value!);
    this.#m.set(k, { v, until });
  }
  get size(): number {
    return this.#m.size;
  }
}

/** Verified tokens kept at most (by hash); the oldest go first beyond it. */
export const MAX_CACHED_TOKENS = 10_000;
/** A token is not reused in its last seconds (the kubelet gets a new one well before). */
const EXPIRY_MARGIN_MS = 10_000;
/** Namespace labels and ServiceAccount annotations are re-read after this long. */
const OBJECT_TTL_MS = 10_000;

const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

export class PodCredentialBroker {
  readonly #tokens = new TtlMap<PodIdentity>(MAX_CACHED_TOKENS);
  readonly #namespaces = new TtlMap<NamespaceObj | null>(4096);
  readonly #serviceAccounts = new TtlMap<Record<string, string> | null>(MAX_CACHED_TOKENS);
  readonly #settings: ServiceAccountTokensConfig;
  readonly #now: () => Date;

  constructor(
    readonly config: PullkeeperConfig,
    readonly deps: BrokerDeps,
  ) {
    if (!config.api?.serviceAccountTokens)
      throw new PullkeeperError('the broker needs api.serviceAccountTokens in the config');
    this.#settings = config.api.serviceAccountTokens;
    this.#now = deps.now ?? (() => new Date());
  }

  close(): void {
    this.deps.close?.();
  }

  /** Verified tokens in the cache now (the benchmark and tests look). */
  get cachedTokens(): number {
    return this.#tokens.size;
  }

  /** The clusters whose tokens are accepted. */
  get clusters(): string[] {
    return this.#settings.clusters ?? this.config.clusters.map((c) => c.name);
  }

  /**
   * Who the token speaks for.
   * @throws TokenRejectedError (401) or TokenUnverifiableError (503)
   */
  async verify(token: string, signal: AbortSignal): Promise<PodIdentity> {
    const claims = unverifiedJwtClaims(token);
    if (!JWT.test(token) || !claims) throw new TokenRejectedError('not a JWT');
    const now = this.#now().getTime();
    if (claims.exp !== undefined && claims.exp <= now) throw new TokenRejectedError('expired');
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.#tokens.get(key, now);
    if (hit) return hit;
    const offline = this.#settings.issuers.find(
      (i) => i.issuer === claims.iss && this.clusters.includes(i.cluster),
    );
    const identity = offline
      ? await this.#verifyOffline(token, offline, signal)
      : await this.#verifyByReview(token, signal);
    const until = verifiedUntil(now, claims.exp, this.#settings.cacheSeconds * 1000, EXPIRY_MARGIN_MS);
    if (until > now) this.#tokens.set(key, identity, until);
    return identity;
  }

  async #verifyByReview(token: string, signal: AbortSignal): Promise<PodIdentity> {
    const audience = this.#settings.audience;
    const results = await Promise.allSettled(
      this.clusters.map(async (cluster) => {
        const status = await reviewToken(await this.deps.kube(cluster), token, [audience], signal);
        if (!status.authenticated) return undefined;
        // The apiserver answers the audiences the token is valid for among those asked.
        if (!status.audiences?.includes(audience)) return undefined;
        return identityFromReview(cluster, status.user ?? {});
      }),
    );
    for (const r of results) if (r.status === 'fulfilled' && r.value) return r.value;
    const failed = results
      .map((r, i) => (r.status === 'rejected' ? `${this.clusters[i]}: ${describe(r.reason)}` : undefined))
      .filter((x) => x !== undefined);
    if (failed.length)
      throw new TokenUnverifiableError(`no cluster could review the token (${failed.join('; ')})`);
    throw new TokenRejectedError('no cluster authenticated the token for the audience');
  }

  async #verifyOffline(
    token: string,
    o: ServiceAccountTokensConfig['issuers'][number],
    signal: AbortSignal,
  ): Promise<PodIdentity> {
    const jose = await import('jose');
    let uri: string;
    try {
      uri = await jwksUriOf(o.issuer, o.jwksUri, signal);
    } catch (err) {
      throw new TokenUnverifiableError(`cannot load the keys of ${o.issuer} (${describe(err)})`, {
        cause: err,
      });
    }
    const jwks = remoteJwks(jose, uri);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jose.jwtVerify(token, jwks, {
        issuer: o.issuer,
        audience: this.#settings.audience,
        algorithms: ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'],
        clockTolerance: o.clockToleranceSec,
        requiredClaims: ['exp', 'iat', 'sub'],
        currentDate: this.#now(),
      }));
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code === 'ERR_JWKS_TIMEOUT')
        throw new TokenUnverifiableError(`the keys of ${o.issuer} did not load in time`, { cause: err });
      throw new TokenRejectedError(`offline verification failed (${code || 'invalid'})`, { cause: err });
    }
    const id = identityFromClaims(o.cluster, payload);
    if (!id) throw new TokenRejectedError('the token is not a ServiceAccount token');
    return id;
  }

  async #namespace(cluster: string, ns: string, signal: AbortSignal): Promise<NamespaceObj | undefined> {
    const key = `${cluster}/${ns}`;
    const now = this.#now().getTime();
    const hit = this.#namespaces.get(key, now);
    if (hit !== undefined) return hit ?? undefined;
    const obj = await getNamespace(await this.deps.kube(cluster), ns, signal);
    this.#namespaces.set(key, obj ?? null, now + OBJECT_TTL_MS);
    return obj;
  }

  async #annotations(id: PodIdentity, signal: AbortSignal): Promise<Record<string, string> | undefined> {
    const key = `${id.cluster}/${id.namespace}/${id.serviceAccount}`;
    const now = this.#now().getTime();
    const hit = this.#serviceAccounts.get(key, now);
    if (hit !== undefined) return hit ?? undefined;
    const a = await getServiceAccountAnnotations(
      await this.deps.kube(id.cluster),
      id.namespace,
      id.serviceAccount,
      signal,
    );
    this.#serviceAccounts.set(key, a ?? null, now + OBJECT_TTL_MS);
    return a;
  }

  /** The tenants whose namespaces include the identity's namespace, in config order. */
  async tenantsOf(id: PodIdentity, signal: AbortSignal): Promise<PullkeeperConfig['tenants']> {
    const first = this.config.clusters[0]?.name;
    const candidates = this.config.tenants.filter((t) => (t.cluster ?? first) === id.cluster);
    if (candidates.length === 0) return [];
    const byName = candidates.every((t) => 'names' in t.namespaces);
    // A name rule needs no call (the verified token proves the namespace exists); labels do.
    const obj: NamespaceObj | undefined = byName
      ? { metadata: { name: id.namespace } }
      : await this.#namespace(id.cluster, id.namespace, signal);
    if (!obj) return [];
    return candidates.filter((t) => tenantNamespaces(t, [obj]).names.includes(id.namespace));
  }

  /** The answer to one request (the authorization header and the body's image, checked by the route's schema). */
  async answer(
    authorization: string | undefined,
    image: string,
    ctx: { signal: AbortSignal; log: Logger },
  ): Promise<BrokerAnswer> {
    const metrics = this.deps.metrics;
    const deny = (status: 401 | 403, tenant = 'none'): BrokerAnswer => {
      metrics?.recordPodCredential(tenant, 'denied');
      return status === 401
        ? { status, body: { error: 'unauthorized', message: 'a valid service account token is required' } }
        : {
            status,
            body: { error: 'forbidden', message: 'this ServiceAccount may not pull through pullkeeper' },
          };
    };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) {
      ctx.log.warn('pod credentials refused', { reason: 'no bearer token' });
      return deny(401);
    }
    try {
      parseImageRef(image);
    } catch (err) {
      if (!(err instanceof InvalidImageRefError)) throw err;
      return {
        status: 400,
        body: { error: 'bad_request', message: `"image" is not a valid image reference: ${err.message}` },
      };
    }
    let id: PodIdentity;
    try {
      id = await this.verify(m[1]!, ctx.signal);
    } catch (err) {
      if (err instanceof TokenRejectedError) {
        ctx.log.warn('pod credentials refused', { reason: err.message });
        return deny(401);
      }
      if (err instanceof TokenUnverifiableError) {
        ctx.log.error('pod credentials unavailable', { reason: err.message });
        return {
          status: 503,
          body: { error: 'unavailable', message: 'the token could not be verified now; try again' },
        };
      }
      throw err;
    }
    const who = {
      cluster: id.cluster,
      namespace: id.namespace,
      serviceAccount: id.serviceAccount,
      ...(id.pod ? { pod: id.pod.name, podUid: id.pod.uid } : {}),
      image,
    };
    const owners = await this.tenantsOf(id, ctx.signal);
    if (owners.length === 0) {
      ctx.log.info('pod credentials', { ...who, tenants: [], keys: [], reason: 'namespace of no tenant' });
      metrics?.recordPodCredential('none', 'denied');
      return { status: 200, body: emptyProviderResponse(0), identity: id };
    }
    const allowed = owners.filter((t) =>
      serviceAccountAllowed(t.podCredentials?.serviceAccounts, id.serviceAccount),
    );
    if (allowed.length === 0) {
      ctx.log.warn('pod credentials refused', {
        ...who,
        tenants: owners.map((t) => t.name),
        reason: 'ServiceAccount not allowed by tenants[].podCredentials.serviceAccounts',
      });
      return deny(403, owners[0]!.name);
    }
    const annotations = await this.#annotations(id, ctx.signal);
    const narrowing = annotations?.[this.#settings.registriesAnnotation];
    const registries = [...new Set(allowed.flatMap((t) => narrowRegistries(t.registries, narrowing)))];
    const response = await this.#respond(image, registries, ctx);
    const keys = Object.keys(response.auth);
    const tenantLabel = allowed.map((t) => t.name).join(',');
    ctx.log.info('pod credentials', {
      ...who,
      tenants: allowed.map((t) => t.name),
      registries,
      keys,
      cacheKeyType: response.cacheKeyType,
      cacheDuration: response.cacheDuration,
    });
    metrics?.recordPodCredential(tenantLabel, keys.length ? 'allowed' : 'denied');
    return { status: 200, body: response, identity: id };
  }

  async #respond(
    image: string,
    registries: string[],
    ctx: { signal: AbortSignal; log: Logger },
  ): Promise<CredentialProviderResponse> {
    if (registries.length === 0) return emptyProviderResponse(0);
    const minted = await mintCredentials(this.config, {
      registries,
      signal: ctx.signal,
      cache: this.deps.cache ?? processCache,
      now: this.#now,
    });
    const failed = minted.registries.filter((r) => r.status === 'failed');
    if (failed.length)
      ctx.log.warn('pod credentials: mint failed', {
        registries: failed.map((r) => ({ name: r.name, error: r.error })),
      });
    const creds = registries.map((r) => minted.credentials.get(r)).filter((c) => c !== undefined);
    const expiry = new Map<string, number>();
    const claimed = new Set<string>();
    for (const c of creds)
      for (const h of c.hosts) {
        const k = normalizeKeyringKey(h);
        if (k === undefined || claimed.has(k)) continue;
        claimed.add(k);
        if (c.expiresAt) expiry.set(k, c.expiresAt.getTime());
      }
    return answerProviderRequest(
      { image },
      { config: credentialsToDockerConfig(creds), expiry },
      this.#now().getTime(),
    );
  }
}

function describe(err: unknown): string {
  if (err instanceof PullkeeperError) return err.message;
  return (err as Error)?.name ?? 'error';
}
