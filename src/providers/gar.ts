/**
 * Google Artifact Registry and gcr.io: an OAuth2 access token (username
 * `oauth2accesstoken`, about 1 h) from google-auth-library: a service-account
 * key, a workload identity federation config (`external_account`, including
 * AWS -> GCP from Lambda), or Application Default Credentials. A key's
 * `token_uri` is honoured (google-auth-library's JWT client always posts to
 * Google's endpoint, so its transport is redirected when the key names another).
 * `checkRepositories` asks Artifact Registry that each repository exists, with
 * @google-cloud/artifact-registry, loaded only then (it costs ~200 ms to load).
 */
import type { RegistryConfigOf } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import { withRetry } from './retry.js';
import type { CredentialProvider, MintContext, MintedToken } from './types.js';

export const GOOGLE_DOCKER_USERNAME = 'oauth2accesstoken';
export const GOOGLE_TOKEN_LIFETIME_MS = 3600 * 1000;
export const GOOGLE_DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

export class GarError extends PullkeeperError {}

type GarConfig = RegistryConfigOf<'gar'>;

interface ServiceAccountKeyJson {
  type?: string;
  client_email?: string;
  private_key?: string;
  private_key_id?: string;
  token_uri?: string;
}

function parseJson(
  cfg: GarConfig,
  text: string,
  what: string,
): ServiceAccountKeyJson & Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v))
      return v as ServiceAccountKeyJson & Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new GarError(`registry ${cfg.name}: ${what} is not a JSON object; download the key JSON again`);
}

/** Why Google refused, with what to do; `via` says which credential was used (the fixes differ). */
export function googleReason(err: unknown, via: 'key' | 'federation' | 'adc' = 'key'): string {
  const e = err as {
    response?: {
      status?: number;
      data?: {
        error?: string | { code?: number; message?: string; status?: string };
        error_description?: string;
      };
    };
    name?: string;
    code?: string;
  };
  const data = e?.response?.data;
  const desc = (data?.error_description ?? '').slice(0, 160);
  if (data?.error === 'invalid_grant')
    return via === 'federation'
      ? `invalid_grant from the token exchange (STS): ${desc}; check the workload identity provider (audience, issuer, allowed audiences, attribute condition) and the subject token in credential_source`
      : `invalid_grant: the key is disabled, deleted or wrong (${desc.slice(0, 80)}); create a new key`;
  if (typeof data?.error === 'object' && data.error) {
    // Google's JSON error format (IAM Credentials, Artifact Registry): {error: {code, message, status}}.
    const g = data.error;
    const msg = `${g.status ?? g.code ?? 'error'}: ${(g.message ?? '').slice(0, 200)}`;
    return g.status === 'PERMISSION_DENIED' && via === 'federation'
      ? `service account impersonation refused (${msg}); grant the federated principal roles/iam.workloadIdentityUser on the service account`
      : msg;
  }
  if (data?.error) return `${data.error}${desc ? `: ${desc}` : ''}`;
  if (e?.response?.status) return `HTTP ${e.response.status}`;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  return e?.code ?? e?.name ?? 'error';
}

function retryableGoogle(err: unknown): boolean {
  const s = (err as { response?: { status?: number } })?.response?.status;
  return s === 429 || (s !== undefined && s >= 500) || (err as { code?: string })?.code === 'ECONNRESET';
}

type GoogleAuthClient = import('google-auth-library').AuthClient;

async function accessToken(
  cfg: GarConfig,
  ctx: MintContext,
): Promise<{ token: string; expiry?: Date; via: string; client: GoogleAuthClient }> {
  const gal = await import('google-auth-library');
  if (cfg.serviceAccountKey) {
    const key = parseJson(cfg, await ctx.secrets.resolve(cfg.serviceAccountKey), 'serviceAccountKey');
    if (key.type && key.type !== 'service_account')
      throw new GarError(
        `registry ${cfg.name}: serviceAccountKey has type "${key.type}"; use credentialConfig for external_account`,
      );
    if (!key.client_email || !key.private_key)
      throw new GarError(`registry ${cfg.name}: serviceAccountKey lacks client_email or private_key`);
    const client = new gal.JWT({
      email: key.client_email,
      key: key.private_key,
      keyId: key.private_key_id,
      scopes: [CLOUD_PLATFORM],
    });
    const tokenUri = key.token_uri;
    if (tokenUri && tokenUri !== GOOGLE_DEFAULT_TOKEN_URI) {
      client.transporter.interceptors.request.add({
        resolved: async (o) => {
          if (String(o.url) === GOOGLE_DEFAULT_TOKEN_URI) o.url = new URL(tokenUri);
          return o;
        },
      });
    }
    const creds = await withRetry(async () => client.authorize(), {
      timeoutMs: ctx.timeoutMs,
      signal: ctx.signal,
      retryable: retryableGoogle,
    });
    if (!creds.access_token)
      throw new GarError(`registry ${cfg.name}: the token endpoint returned no access_token`);
    return {
      token: creds.access_token,
      expiry: creds.expiry_date ? new Date(creds.expiry_date) : undefined,
      via: `service account ${key.client_email}`,
      client,
    };
  }
  const json = cfg.credentialConfig
    ? parseJson(cfg, await ctx.secrets.resolve(cfg.credentialConfig), 'credentialConfig')
    : undefined;
  let client: GoogleAuthClient;
  if (json?.type === 'external_account') {
    // Checked here, then the matching client is built directly (what the library asks of callers
    // instead of fromJSON / GoogleAuth({credentials}), which print a warning on every use).
    checkExternalAccount(cfg, json);
    const source = (json.credential_source ?? {}) as Record<string, unknown>;
    const opts = { ...json, scopes: [CLOUD_PLATFORM] } as never;
    client = source.environment_id
      ? new gal.AwsClient(opts)
      : source.executable
        ? new gal.PluggableAuthClient(opts)
        : new gal.IdentityPoolClient(opts);
  } else {
    const auth = new gal.GoogleAuth({
      scopes: [CLOUD_PLATFORM],
      ...(json ? { credentials: json as never } : {}),
    });
    client = await auth.getClient();
  }
  const r = await withRetry(() => client.getAccessToken(), {
    timeoutMs: ctx.timeoutMs,
    signal: ctx.signal,
    retryable: retryableGoogle,
  });
  if (!r.token) throw new GarError(`registry ${cfg.name}: Google returned no access token`);
  const exp = (client as { credentials?: { expiry_date?: number | null } }).credentials?.expiry_date;
  return {
    token: r.token,
    expiry: exp ? new Date(exp) : undefined,
    via: json ? `workload identity federation (${String(json.type)})` : 'application default credentials',
    client,
  };
}

/**
 * A workload identity federation config must send the subject token only to
 * Google's STS and IAM Credentials endpoints: https, or plain http to a
 * loopback address (a local emulator). Anything else is refused before a
 * token leaves this process.
 */
function checkExternalAccount(cfg: GarConfig, json: Record<string, unknown>): void {
  const bad = (why: string) =>
    new GarError(
      `registry ${cfg.name}: credentialConfig (external_account) ${why}; regenerate it with \`gcloud iam workload-identity-pools create-cred-config\``,
    );
  if (typeof json.audience !== 'string' || !json.audience.startsWith('//iam.googleapis.com/'))
    throw bad(
      'needs audience //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/V',
    );
  if (typeof json.subject_token_type !== 'string') throw bad('needs subject_token_type');
  if (typeof json.credential_source !== 'object' || json.credential_source === null)
    throw bad('needs credential_source');
  for (const key of ['token_url', 'service_account_impersonation_url', 'token_info_url'] as const) {
    const v = json[key];
    if (v === undefined) continue;
    let u: URL;
    try {
      u = new URL(String(v));
    } catch {
      throw bad(`has an invalid ${key}`);
    }
    const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(u.hostname);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
      throw bad(`${key} must be https (plain http only to a loopback address)`);
  }
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
      if (err instanceof PullkeeperError) throw err;
      const via = cfg.serviceAccountKey ? 'key' : cfg.credentialConfig ? 'federation' : 'adc';
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
