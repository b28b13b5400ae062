/**
 * Google Artifact Registry and gcr.io: an OAuth2 access token (username
 * `oauth2accesstoken`, about 1 h) from a service-account key, a workload
 * identity federation config (`external_account`, including AWS -> GCP from
 * Lambda), or Application Default Credentials, through src/cloud/google-auth.ts
 * (shared with the GKE cluster connector).
 * `checkRepositories` asks Artifact Registry that each repository exists, with
 * @google-cloud/artifact-registry, loaded only then (it costs ~200 ms to load).
 */

import {
  CLOUD_PLATFORM_SCOPE,
  type GoogleAuthClient,
  GoogleCredentialError,
  type GoogleCredentialKind,
  googleClient,
  googleReason,
  googleToken,
} from '../cloud/google-auth.js';
import type { RegistryConfigOf } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import { TimeoutError, withRetry } from './retry.js';
import type { CredentialProvider, MintContext, MintedToken } from './types.js';

export const GOOGLE_DOCKER_USERNAME = 'oauth2accesstoken';
export const GOOGLE_TOKEN_LIFETIME_MS = 3600 * 1000;

export class GarError extends PullkeeperError {}

type GarConfig = RegistryConfigOf<'gar'>;

function retryableGoogle(err: unknown): boolean {
  const s = (err as { response?: { status?: number } })?.response?.status;
  return s === 429 || (s !== undefined && s >= 500) || (err as { code?: string })?.code === 'ECONNRESET';
}

async function accessToken(
  cfg: GarConfig,
  ctx: MintContext,
): Promise<{ token: string; expiry?: Date; via: string; client: GoogleAuthClient }> {
  const g = await googleClient({
    what: `registry ${cfg.name}`,
    scopes: [CLOUD_PLATFORM_SCOPE],
    ...(cfg.serviceAccountKey ? { serviceAccountKey: await ctx.secrets.resolve(cfg.serviceAccountKey) } : {}),
    ...(cfg.credentialConfig ? { credentialConfig: await ctx.secrets.resolve(cfg.credentialConfig) } : {}),
  });
  // Each attempt's signal (its timeout, the caller's abort) ends the token call at once.
  const r = await withRetry((signal) => googleToken(g, signal), {
    timeoutMs: ctx.timeoutMs,
    signal: ctx.signal,
    retryable: retryableGoogle,
  });
  if (!r.token)
    throw new GarError(
      g.jwt
        ? `registry ${cfg.name}: the token endpoint returned no access_token`
        : `registry ${cfg.name}: Google returned no access token`,
    );
  return { token: r.token, expiry: r.expiry, via: g.via, client: g.client };
}

async function checkRepositories(
  cfg: GarConfig,
  authClient: GoogleAuthClient,
  ctx: MintContext,
): Promise<void> {
  if (!cfg.checkRepositories?.length) return;
  const { ArtifactRegistryClient } = await import('@google-cloud/artifact-registry');
  const api = cfg.apiEndpoint ? new URL(cfg.apiEndpoint) : undefined;
  const client = new ArtifactRegistryClient({
    // The client that just minted (its token is cached); the REST transport (no gRPC) keeps the load small.
    authClient: authClient as never,
    fallback: true,
    ...(api
      ? {
          apiEndpoint: api.hostname,
          port: Number(api.port) || (api.protocol === 'http:' ? 80 : 443),
          protocol: api.protocol.replace(':', ''),
        }
      : {}),
  });
  try {
    for (const name of cfg.checkRepositories) {
      try {
        await client.getRepository({ name }, { timeout: ctx.timeoutMs });
      } catch (err) {
        const code = (err as { code?: number }).code;
        throw new GarError(
          `registry ${cfg.name}: repository ${name}: ${code === 5 ? 'not found' : code === 7 ? 'permission denied: grant the service account roles/artifactregistry.reader on it' : code === 16 ? 'the access token was refused' : `check failed (${code ?? 'error'})`}`,
          { cause: err },
        );
      }
    }
  } finally {
    await client.close();
  }
}

export const garProvider: CredentialProvider<'gar'> = {
  kind: 'gar',
  identityKey: (cfg) =>
    JSON.stringify([
      cfg.serviceAccountKey ?? null,
      cfg.credentialConfig ?? null,
      cfg.checkRepositories ?? [],
    ]),
  async mint(cfg, ctx): Promise<MintedToken> {
    let t: Awaited<ReturnType<typeof accessToken>>;
    try {
      t = await accessToken(cfg, ctx);
    } catch (err) {
      if (err instanceof GoogleCredentialError) throw new GarError(err.message, { cause: err });
      // A timeout is named below, with the registry ("Google access token failed: timed out").
      if (err instanceof PullkeeperError && !(err instanceof TimeoutError)) throw err;
      const via: GoogleCredentialKind = cfg.serviceAccountKey
        ? 'key'
        : cfg.credentialConfig
          ? 'federation'
          : 'adc';
      throw new GarError(`registry ${cfg.name}: Google access token failed: ${googleReason(err, via)}`, {
        cause: err,
      });
    }
    await checkRepositories(cfg, t.client, ctx);
    return {
      username: GOOGLE_DOCKER_USERNAME,
      password: t.token.replace(/\.+$/, ''),
      reportedExpiresAt: t.expiry,
      documentedLifetimeMs: GOOGLE_TOKEN_LIFETIME_MS,
      source: `Google access token (${t.via})`,
    };
  },
  hosts: (cfg) => cfg.hosts,
};
