/**
 * Azure Container Registry: an Entra ID token from @azure/identity (client
 * secret, federated token / workload identity, managed identity, or the
 * default chain) exchanged at `POST https://<login>/oauth2/exchange`
 * (grant_type=access_token, service, tenant, access_token) for an ACR refresh
 * token; docker username is the null GUID and the password is that refresh
 * token, whose own `exp` is the expiry (Azure/acr docs/AAD-OAuth.md;
 * docs/providers.md `acr`). @azure/container-registry has no token API, so the
 * POST is ours. A repository-scoped token (scope map) is the tenant-scoped option.
 */
import { azureCredential, type TokenCredential } from '../cloud/azure-identity.js';
import type { RegistryConfigOf } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import { redactSecrets } from './redact.js';
import { netReason, retryableStatus, withRetry } from './retry.js';
import type { CredentialProvider, MintContext, MintedToken } from './types.js';

export const ACR_NULL_GUID = '00000000-0000-0000-0000-000000000000';
/** `az acr login` tokens: documented 3 h. */
export const ACR_REFRESH_TOKEN_LIFETIME_MS = 3 * 3600 * 1000;
const ACR_SCOPE = 'https://containerregistry.azure.net/.default';
const ARM_SCOPE = 'https://management.azure.com/.default';

export class AcrError extends PullkeeperError {}

type AcrConfig = RegistryConfigOf<'acr'>;

/** The `exp` claim of a JWT, without verifying it (the registry does that). */
export function jwtExpiry(token: string): Date | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`HTTP ${status}`);
  }
}

async function entraToken(cfg: AcrConfig, cred: TokenCredential, ctx: MintContext): Promise<string> {
  const scope = cfg.audience === 'arm' ? ARM_SCOPE : ACR_SCOPE;
  try {
    const t = await withRetry(
      async (signal) => {
        const r = await cred.getToken(scope, { abortSignal: signal, tenantId: cfg.tenantId });
        if (!r) throw new AcrError('no token');
        return r;
      },
      {
        timeoutMs: ctx.timeoutMs,
        signal: ctx.signal,
        retryable: (e) => {
          const s = (e as { statusCode?: number }).statusCode;
          return s !== undefined && retryableStatus(s);
        },
      },
    );
    return t.token;
  } catch (err) {
    throw new AcrError(
      `registry ${cfg.name}: Entra ID token for tenant ${cfg.tenantId} failed: ${entraReason(err)}`,
      {
        cause: err,
      },
    );
  }
}

/** AADSTS codes users hit, with the fix. Never echoes the request. */
function entraReason(err: unknown): string {
  const msg = String((err as Error)?.message ?? '');
  const code = /AADSTS(\d+)/.exec(msg)?.[1];
  switch (code) {
    case '90002':
      return 'AADSTS90002: tenant not found; check tenantId';
    case '700016':
      return 'AADSTS700016: application (clientId) not found in the tenant; check clientId and tenantId';
    case '7000215':
      return 'AADSTS7000215: invalid client secret; check the secret reference (and that the secret has not expired)';
    case '7000222':
      return 'AADSTS7000222: the client secret has expired; create a new one';
    case '70021':
      return 'AADSTS70021: no federated credential matches the token (issuer/subject/audience api://AzureADTokenExchange)';
    case undefined:
      break;
    default:
      return `AADSTS${code}; see https://login.microsoftonline.com/error?code=${code}`;
  }
  const name = (err as Error)?.name;
  // MSAL could not talk to the authority at all: a network or TLS problem, not the credential.
  if (/endpoints_resolution_error|network_error|ENOTFOUND|ECONNREFUSED|certificate/i.test(msg))
    return `the Entra ID authority (authorityHost) did not answer or its TLS certificate is not trusted (${/endpoints_resolution_error|network_error/.exec(msg)?.[0] ?? netReason(err)}); check authorityHost and the network route from here; for a private CA or TLS inspection set PULLKEEPER_EXTRA_CA_CERTS`;
  if (name === 'CredentialUnavailableError')
    return 'no Azure identity available here; configure credential in the registry';
  if (/timed out/i.test(msg)) return 'timed out';
  return netReason(err);
}

async function exchange(cfg: AcrConfig, aadToken: string, ctx: MintContext): Promise<string> {
  const url = cfg.exchangeEndpoint ?? `https://${cfg.loginServer}/oauth2/exchange`;
  const body = new URLSearchParams({
    grant_type: 'access_token',
    service: cfg.loginServer,
    tenant: cfg.tenantId,
    access_token: aadToken,
  });
  try {
    return await withRetry(
      async (signal) => {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'pullkeeper' },
          body,
          signal,
        });
        const text = await res.text();
        if (!res.ok) throw new HttpError(res.status, text);
        const rt = (JSON.parse(text) as { refresh_token?: unknown }).refresh_token;
        if (typeof rt !== 'string' || !rt)
          throw new AcrError(`registry ${cfg.name}: ${url} answered without a refresh_token`);
        return rt;
      },
      {
        timeoutMs: ctx.timeoutMs,
        signal: ctx.signal,
        retryable: (e) =>
          e instanceof HttpError ? retryableStatus(e.status) : (e as Error)?.name === 'TypeError',
      },
    );
  } catch (err) {
    if (err instanceof AcrError) throw err;
    if (err instanceof HttpError) {
      const hint =
        err.status === 401 || err.status === 403
          ? 'the identity may not pull from this registry: grant it the AcrPull role (or Container Registry Repository Reader) on the registry' +
            (cfg.audience === 'arm' ? ', or use audience: acr if authentication-as-arm is disabled' : '')
          : err.status === 400
            ? 'bad request: check loginServer and tenantId'
            : 'the registry failed; try again later';
      throw new AcrError(
        `registry ${cfg.name}: token exchange at ${url} answered HTTP ${err.status}: ${hint} ${redactSecrets(registryErrorCode(err.body), aadToken)}`.trim(),
        { cause: err },
      );
    }
    throw new AcrError(`registry ${cfg.name}: token exchange at ${url} failed: ${netReason(err)}`, {
      cause: err,
    });
  }
}

/**
 * Asks the registry's catalog (through @azure/container-registry, which runs the
 * same Entra -> ACR exchange itself) whether the identity sees each repository.
 */
async function checkRepositories(cfg: AcrConfig, cred: TokenCredential, ctx: MintContext): Promise<void> {
  const { ContainerRegistryClient } = await import('@azure/container-registry');
  const client = new ContainerRegistryClient(`https://${cfg.loginServer}`, cred, {
    audience: cfg.audience === 'arm' ? 'https://management.azure.com' : 'https://containerregistry.azure.net',
  });
  const want = new Set(cfg.checkRepositories);
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.timeoutMs * 2)]);
  try {
    let seen = 0;
    for await (const name of client.listRepositoryNames({ abortSignal: signal })) {
      want.delete(name);
      if (want.size === 0 || ++seen >= 10_000) break;
    }
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    // Only an answer (401/403) is about the identity's role; no answer is about the network.
    throw new AcrError(
      status
        ? `registry ${cfg.name}: listing repositories failed (HTTP ${status}); the identity needs a role that can read the catalog (AcrPull, or Container Registry Repository Catalog Lister on ABAC registries)`
        : `registry ${cfg.name}: listing repositories failed: https://${cfg.loginServer} could not be reached (${netReason(err)}); check the login server name, DNS and the network route (private endpoint) from here`,
      { cause: err },
    );
  }
  if (want.size)
    throw new AcrError(
      `registry ${cfg.name}: repositories not visible to this identity: ${[...want].join(', ')}; check the names, or grant the identity AcrPull on the registry (or Repository Reader on those repositories)`,
    );
}

/** `{"errors":[{"code":"UNAUTHORIZED",...}]}` -> `(UNAUTHORIZED)`. */
function registryErrorCode(body: string): string {
  try {
    const code = (JSON.parse(body) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
    return code ? `(${code})` : '';
  } catch {
    return '';
  }
}

export const acrProvider: CredentialProvider<'acr'> = {
  kind: 'acr',
  identityKey: (cfg) =>
    JSON.stringify([
      cfg.loginServer,
      cfg.tenantId,
      cfg.credential ?? null,
      cfg.authorityHost ?? '',
      cfg.audience,
      cfg.repositoryToken ?? null,
    ]),

  async mint(cfg, ctx): Promise<MintedToken> {
    if (cfg.repositoryToken) {
      const password = await ctx.secrets.resolve(cfg.repositoryToken.password);
      return {
        username: cfg.repositoryToken.username,
        password,
        reportedExpiresAt: cfg.repositoryToken.expiresAt
          ? new Date(cfg.repositoryToken.expiresAt)
          : undefined,
        source: `ACR repository-scoped token ${cfg.repositoryToken.username}`,
      };
    }
    const cred = await azureCredential(cfg, ctx.secrets);
    const aad = await entraToken(cfg, cred, ctx);
    const rt = await exchange(cfg, aad, ctx);
    if (cfg.checkRepositories?.length) await checkRepositories(cfg, cred, ctx);
    return {
      username: ACR_NULL_GUID,
      password: rt,
      reportedExpiresAt: jwtExpiry(rt),
      documentedLifetimeMs: ACR_REFRESH_TOKEN_LIFETIME_MS,
      source: `ACR refresh token for ${cfg.loginServer} (Entra tenant ${cfg.tenantId}, ${cfg.audience} audience)`,
    };
  },

  hosts: (cfg) => [cfg.loginServer],
};
