/**
 * Google credentials, shared by the `gar` registry provider and the `gke`
 * cluster connector: a google-auth-library client from a service-account key
 * (its `token_uri` honoured), a workload identity federation config
 * (`external_account`: checked, then its client built directly), or
 * Application Default Credentials. google-auth-library is loaded only here,
 * only when a Google credential is used.
 */
import { PullkeeperError } from '../core/errors.js';
import { abortable } from '../util/concurrency.js';

export const GOOGLE_DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

export class GoogleCredentialError extends PullkeeperError {}

export type GoogleAuthClient = import('google-auth-library').AuthClient;
export type GoogleCredentialKind = 'key' | 'federation' | 'adc';

export interface GoogleClient {
  client: GoogleAuthClient;
  kind: GoogleCredentialKind;
  /** For reports: `service account x@p.iam.gserviceaccount.com`, `workload identity federation (external_account)`. */
  via: string;
  /** Set for a key: the JWT client (`authorize()` returns the token and its expiry). */
  jwt?: import('google-auth-library').JWT;
}

function parseJson(what: string, field: string, text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new GoogleCredentialError(`${what}: ${field} is not a JSON object; download the key JSON again`);
}

/**
 * A workload identity federation config must send the subject token only to
 * Google's STS and IAM Credentials endpoints: https, or plain http to a
 * loopback address (a local emulator). Anything else is refused before a
 * token leaves this process.
 */
export function checkExternalAccount(what: string, json: Record<string, unknown>): void {
  const bad = (why: string) =>
    new GoogleCredentialError(
      `${what}: credentialConfig (external_account) ${why}; regenerate it with \`gcloud iam workload-identity-pools create-cred-config\``,
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

/**
 * The client for one Google credential. `what` names its owner in errors
 * (`registry gar`, `cluster prod`); the JSON texts come from secret references.
 */
export async function googleClient(o: {
  what: string;
  scopes: string[];
  serviceAccountKey?: string;
  credentialConfig?: string;
}): Promise<GoogleClient> {
  const gal = await import('google-auth-library');
  if (o.serviceAccountKey !== undefined) {
    const key = parseJson(o.what, 'serviceAccountKey', o.serviceAccountKey);
    if (key.type && key.type !== 'service_account')
      throw new GoogleCredentialError(
        `${o.what}: serviceAccountKey has type "${String(key.type)}"; use credentialConfig for external_account`,
      );
    if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string')
      throw new GoogleCredentialError(`${o.what}: serviceAccountKey lacks client_email or private_key`);
    const jwt = new gal.JWT({
      email: key.client_email,
      key: key.private_key,
      ...(typeof key.private_key_id === 'string' ? { keyId: key.private_key_id } : {}),
      scopes: o.scopes,
    });
    // google-auth-library always posts to Google's endpoint: redirect it when the key names another.
    const tokenUri = typeof key.token_uri === 'string' ? key.token_uri : undefined;
    if (tokenUri && tokenUri !== GOOGLE_DEFAULT_TOKEN_URI) {
      jwt.transporter.interceptors.request.add({
        resolved: async (r) => {
          if (String(r.url) === GOOGLE_DEFAULT_TOKEN_URI) r.url = new URL(tokenUri);
          return r;
        },
      });
    }
    return { client: jwt, jwt, kind: 'key', via: `service account ${key.client_email}` };
  }
  const json =
    o.credentialConfig !== undefined ? parseJson(o.what, 'credentialConfig', o.credentialConfig) : undefined;
  if (json?.type === 'external_account') {
    // Checked here, then the matching client is built directly (what the library asks of callers
    // instead of fromJSON / GoogleAuth({credentials}), which print a warning on every use).
    checkExternalAccount(o.what, json);
    const source = json.credential_source as Record<string, unknown>;
    const opts = { ...json, scopes: o.scopes } as never;
    const client = source.environment_id
      ? new gal.AwsClient(opts)
      : source.executable
        ? new gal.PluggableAuthClient(opts)
        : new gal.IdentityPoolClient(opts);
    return { client, kind: 'federation', via: 'workload identity federation (external_account)' };
  }
  const auth = new gal.GoogleAuth({ scopes: o.scopes, ...(json ? { credentials: json as never } : {}) });
  return {
    client: await auth.getClient(),
    kind: json ? 'federation' : 'adc',
    via: json ? `credential config (${String(json.type)})` : 'application default credentials',
  };
}

/**
 * google-auth-library takes no AbortSignal: these race its token calls against
 * the signal, so an abort (the caller's, or an attempt's timeout) rejects at
 * once with its reason; a late answer is dropped.
 */

/** A fresh access token and its expiry (a key: a new JWT grant; other clients: see cachedGoogleToken). */
export async function googleToken(
  g: GoogleClient,
  signal?: AbortSignal,
): Promise<{ token: string | undefined; expiry: Date | undefined }> {
  if (g.jwt) {
    const creds = await abortable(g.jwt.authorize(), signal);
    return {
      token: creds.access_token ?? undefined,
      expiry: creds.expiry_date ? new Date(creds.expiry_date) : undefined,
    };
  }
  return cachedGoogleToken(g.client, signal);
}

/** The client's token, refreshed only when it is about to expire (per-request use: the GKE connector). */
export async function cachedGoogleToken(
  client: GoogleAuthClient,
  signal?: AbortSignal,
): Promise<{ token: string | undefined; expiry: Date | undefined }> {
  const r = await abortable(client.getAccessToken(), signal);
  const exp = (client as { credentials?: { expiry_date?: number | null } }).credentials?.expiry_date;
  return { token: r.token ?? undefined, expiry: exp ? new Date(exp) : undefined };
}

/** Why Google refused, with what to do; `via` says which credential was used (the fixes differ). */
export function googleReason(err: unknown, via: GoogleCredentialKind = 'key'): string {
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
