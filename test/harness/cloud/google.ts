/**
 * An in-process Google OAuth 2.0 token endpoint for service-account keys.
 *
 * Follows developers.google.com/identity/protocols/oauth2/service-account
 * ("Using OAuth 2.0 for Server to Server Applications", HTTP/REST section):
 * POST form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`;
 * the JWT is RS256-signed with the key's private key, header `kid` = private_key_id
 * (optional), claims iss = client_email, scope (space separated), aud = the token
 * endpoint, iat, exp at most one hour after iat, optional sub; success is
 * `{access_token, expires_in: 3599, token_type: "Bearer"}`; errors are RFC 6749 §5.2
 * bodies (`invalid_grant` with status 400, e.g. "Invalid JWT Signature.").
 * With `target_audience` instead of scope an `id_token` is returned (same page,
 * "ID tokens" / Cloud Run service-to-service docs).
 * Key file layout: cloud.google.com/iam/docs/keys-create-delete (the JSON key
 * file: type, project_id, private_key_id, private_key, client_email, client_id,
 * auth_uri, token_uri, auth_provider_x509_cert_url, client_x509_cert_url,
 * universe_domain). Token introspection: GET /tokeninfo?access_token= as
 * oauth2.googleapis.com/tokeninfo answers it.
 *
 * Workload identity federation (cloud.google.com/iam/docs/workload-identity-federation,
 * the STS reference cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token and
 * the IAM Credentials reference .../projects.serviceAccounts/generateAccessToken):
 * POST /v1/token (sts.googleapis.com) with form grant_type =
 * urn:ietf:params:oauth:grant-type:token-exchange, audience =
 * //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/V,
 * scope, requested_token_type = urn:ietf:params:oauth:token-type:access_token,
 * subject_token (an OIDC ID token: signature by the provider's issuer JWKS, `iss`,
 * `aud` among the provider's allowed audiences, default `https:` + the provider's
 * name, unexpired), subject_token_type jwt or id_token -> {access_token,
 * issued_token_type, token_type: Bearer, expires_in}; errors are 400 invalid_grant /
 * invalid_request bodies. Then POST
 * /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken with that federated token
 * as bearer, JSON {scope: [...], lifetime: "3600s"} -> {accessToken, expireTime}; a
 * principal the account does not trust (roles/iam.workloadIdentityUser) gets 403
 * PERMISSION_DENIED.
 *
 * `aud`: Google documents `https://oauth2.googleapis.com/token`, and clients send
 * either that (google-auth-library-java since PR #833, gtoken) or the key's
 * token_uri (google-auth-python). Both are accepted, like Google accepts its own
 * aliases; anything else fails the audience check.
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import type { Component } from '../types.js';
import {
  type DecodedJwt,
  decodeJwt,
  type FailOptions,
  type Failure,
  type FailureKind,
  FailureQueue,
  type FakeRequest,
  type JsonObject,
  type MintListener,
  MintLog,
  type MintRecord,
  makeSelfSignedCert,
  newRsaKey,
  nowSec,
  publicJwk,
  type Reply,
  type RequestLogEntry,
  type Route,
  randomId,
  signJwt,
  startFakeServer,
  type TlsMaterial,
  verifyJwt,
} from './common.js';

export const GOOGLE_DOCKER_USERNAME = 'oauth2accesstoken';
export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** Audiences Google's token endpoint has been addressed by (current + legacy). */
const GOOGLE_AUDIENCES = [
  GOOGLE_TOKEN_AUDIENCE,
  'https://www.googleapis.com/oauth2/v4/token',
  'https://accounts.google.com/o/oauth2/token',
];

export type GoogleEndpoint = 'token' | 'sts' | 'generateAccessToken';

/** A service-account key file, field for field as the IAM console/API writes it. */
export interface ServiceAccountKey {
  type: 'service_account';
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  auth_uri: string;
  token_uri: string;
  auth_provider_x509_cert_url: string;
  client_x509_cert_url: string;
  universe_domain: string;
}

export interface GoogleOptions {
  /** Needed only for `tls: true`. */
  dir?: string;
  tls?: boolean | TlsMaterial;
  /** `expires_in` of access tokens; default 3599. */
  tokenLifetimeSec?: number;
  port?: number;
  signal?: AbortSignal;
}

export interface GoogleInfo {
  baseUrl: string;
  /** What generated keys carry as token_uri: `<base>/token`. */
  tokenUri: string;
  tokeninfoUrl: string;
  /** JWKS of the key that signs id_tokens. */
  certsUrl: string;
  caCertPem?: string;
  caCertFile?: string;
}

export interface TokenInfo {
  email: string;
  clientId: string;
  scope: string;
  expiresAt: Date;
}

export interface GoogleFake extends Component<GoogleInfo> {
  /**
   * A new RSA-2048 key for the service account (created on first use) whose
   * token_uri points here. The fake keeps only the public half.
   */
  makeServiceAccountKey(o: { projectId: string; clientEmail?: string }): Promise<ServiceAccountKey>;
  /** Disables (as in `gcloud iam service-accounts keys disable`) one key. */
  disableKey(privateKeyId: string): void;
  failNext(n: number, kind: FailureKind, opts?: FailOptions & { endpoint?: GoogleEndpoint }): void;
  clearFailures(): void;
  /** `expires_in` of the next access tokens. */
  setTokenLifetime(seconds: number): void;
  minted(): MintRecord[];
  onMint(cb: MintListener): () => void;
  accepts(username: string, password: string): MintRecord | undefined;
  tokenInfo(accessToken: string): TokenInfo | undefined;
  requests(): RequestLogEntry[];
  /**
   * Artifact Registry repositories (`projects/P/locations/L/repositories/R`) that
   * `GET /v1/{name}` returns, and which service accounts may read each (default: any).
   */
  addRepository(name: string, readers?: string[]): void;
  /**
   * A workload identity pool provider for OIDC tokens of `issuer` (keys from its JWKS).
   * `serviceAccounts`: which accounts each subject may impersonate (the IAM binding
   * roles/iam.workloadIdentityUser on principal://…/subject/SUB). Returns the
   * provider's audience (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/V`).
   */
  addWorkloadIdentityProvider(o: {
    projectNumber: string;
    pool: string;
    provider: string;
    issuer: string;
    jwksUri: string;
    allowedAudiences?: string[];
    serviceAccounts?: Record<string, string[]>;
  }): string;
  /** A service account (no key) that federated principals may impersonate. */
  addServiceAccount(email: string): void;
}

interface WifProvider {
  audience: string;
  issuer: string;
  jwksUri: string;
  allowedAudiences: string[];
  serviceAccounts: Record<string, string[]>;
}

interface Account {
  email: string;
  clientId: string;
  projectId: string;
  keys: Map<string, { publicKey: KeyObject; disabled: boolean }>;
}

const oauthError = (
  status: number,
  error: string,
  description?: string,
  headers?: Record<string, string>,
): Reply => ({
  status,
  headers,
  body: description === undefined ? { error } : { error, error_description: description },
});

const invalidGrant = (d: string) => oauthError(400, 'invalid_grant', d);
const BAD_SIGNATURE = 'Invalid JWT Signature.';
const BAD_TIME =
  'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.';

export async function startGoogle(opts: GoogleOptions = {}): Promise<GoogleFake> {
  let tls: (TlsMaterial & { certFile?: string }) | undefined;
  if (opts.tls === true) {
    if (!opts.dir) throw new Error('startGoogle: tls: true needs dir for the certificate');
    tls = await makeSelfSignedCert(opts.dir);
  } else if (opts.tls) {
    tls = opts.tls;
  }
  const idSigning = await newRsaKey();
  const idKid = randomId(20);
  const failures = new FailureQueue();
  const mints = new MintLog();
  const accounts = new Map<string, Account>();
  const issued = new Map<string, TokenInfo>();
  let lifetime = opts.tokenLifetimeSec ?? 3599;
  let base = '';

  /** A service account's access token (what tokeninfo, Artifact Registry and the registry accept). */
  function issueAccessToken(account: Account, scope: string, seconds: number) {
    const now = nowSec();
    const accessToken = `ya29.c.${randomBytes(150).toString('base64url')}`;
    const expiresAt = new Date((now + seconds) * 1000);
    issued.set(accessToken, { email: account.email, clientId: account.clientId, scope, expiresAt });
    mints.add({
      kind: 'google',
      username: GOOGLE_DOCKER_USERNAME,
      password: accessToken,
      expiresAt,
      issuedAt: new Date(now * 1000),
      subject: account.email,
      audience: scope,
    });
    return { accessToken, expiresAt };
  }

  function token(req: FakeRequest): Reply {
    const f = req.form;
    const grant = f.get('grant_type');
    if (grant !== JWT_BEARER)
      return oauthError(400, 'unsupported_grant_type', `Invalid grant_type: ${grant ?? ''}`);
    const assertion = f.get('assertion');
    if (!assertion) return oauthError(400, 'invalid_request', 'Missing required parameter: assertion');
    let d: DecodedJwt;
    try {
      d = decodeJwt(assertion);
    } catch {
      return invalidGrant(BAD_SIGNATURE);
    }
    const c = d.payload;
    const account = typeof c.iss === 'string' ? accounts.get(c.iss) : undefined;
    if (!account) return invalidGrant('Invalid grant: account not found');
    const kid = typeof d.header.kid === 'string' ? d.header.kid : undefined;
    const candidates = [...account.keys.entries()]
      .filter(([id, k]) => !k.disabled && (kid === undefined || id === kid))
      .map(([, k]) => k.publicKey);
    try {
      verifyJwt(assertion, candidates);
    } catch {
      return invalidGrant(BAD_SIGNATURE);
    }
    const okAud = [`${base}/token`, `${base}/oauth2/v4/token`, ...GOOGLE_AUDIENCES];
    if (typeof c.aud !== 'string' || !okAud.includes(c.aud)) {
      return invalidGrant(
        `Invalid JWT: Failed audience check. The right audience is ${GOOGLE_TOKEN_AUDIENCE}`,
      );
    }
    const now = nowSec();
    const { iat, exp } = c;
    if (
      typeof iat !== 'number' ||
      typeof exp !== 'number' ||
      exp - iat > 3600 ||
      exp <= iat ||
      exp <= now ||
      iat > now + 300
    ) {
      return invalidGrant(BAD_TIME);
    }
    if (typeof c.target_audience === 'string' && c.target_audience) {
      const idToken = signJwt(
        {
          aud: c.target_audience,
          azp: account.clientId,
          email: account.email,
          email_verified: true,
          exp: now + 3600,
          iat: now,
          iss: 'https://accounts.google.com',
          sub: account.clientId,
        },
        idSigning.privateKey,
        { kid: idKid },
      );
      return { status: 200, body: { id_token: idToken } };
    }
    const scope = typeof c.scope === 'string' ? c.scope.trim() : '';
    if (!scope) return oauthError(400, 'invalid_scope', 'Invalid OAuth scope or ID token audience provided.');
    const { accessToken } = issueAccessToken(account, scope, lifetime);
    return { status: 200, body: { access_token: accessToken, expires_in: lifetime, token_type: 'Bearer' } };
  }

  function tokeninfo(req: FakeRequest): Reply {
    const t = req.url.searchParams.get('access_token') ?? req.form.get('access_token');
    const info = t ? issued.get(t) : undefined;
    if (!info || info.expiresAt <= new Date()) return oauthError(400, 'invalid_token', 'Invalid Value');
    const body: Record<string, string> = {
      azp: info.clientId,
      aud: info.clientId,
      scope: info.scope,
      exp: String(Math.floor(info.expiresAt.getTime() / 1000)),
      expires_in: String(Math.max(0, Math.floor((info.expiresAt.getTime() - Date.now()) / 1000))),
      access_type: 'online',
    };
    if (/(^| )(email|https:\/\/www\.googleapis\.com\/auth\/userinfo\.email)( |$)/.test(info.scope)) {
      body.email = info.email;
      body.email_verified = 'true';
    }
    return { status: 200, body };
  }

  function onFailure(f: Failure): Reply | undefined {
    if (f.kind === 429) {
      return oauthError(429, 'rate_limit_exceeded', 'Rate Limit Exceeded', {
        'retry-after': String(f.retryAfterSeconds),
      });
    }
    if (f.kind === 500) return oauthError(500, 'internal_failure', 'Backend Error');
    if (f.kind === 'bad-credentials') return invalidGrant(BAD_SIGNATURE);
    return undefined;
  }

  // Artifact Registry REST v1 "projects.locations.repositories.get"
  // (cloud.google.com/artifact-registry/docs/reference/rest/v1/projects.locations.repositories/get):
  // GET https://artifactregistry.googleapis.com/v1/{name=projects/*/locations/*/repositories/*} with a
  // Bearer access token (scope cloud-platform) -> a Repository {name, format, ...}; errors in Google's
  // JSON error format {"error": {code, message, status}} (cloud.google.com/apis/design/errors).
  const repositories = new Map<string, string[] | undefined>();
  const googleError = (code: number, status: string, message: string): Reply => ({
    status: code,
    body: { error: { code, message, status } },
  });
  /**
   * A self-signed JWT used directly as the bearer ("Addendum: Service account authorization
   * without OAuth", developers.google.com/identity/protocols/oauth2/service-account#jwt-auth):
   * RS256 with kid = private_key_id, iss = sub = the client email, and either aud =
   * `https://<service>/` or a `scope` claim; at most one hour. Returns the account's email.
   */
  function selfSignedEmail(jwt: string): string | undefined {
    if (!jwt.startsWith('eyJ')) return undefined;
    try {
      const d = decodeJwt(jwt);
      const c = d.payload;
      const account = typeof c.iss === 'string' && c.iss === c.sub ? accounts.get(c.iss) : undefined;
      const key = account && typeof d.header.kid === 'string' ? account.keys.get(d.header.kid) : undefined;
      if (!account || !key || key.disabled) return undefined;
      verifyJwt(jwt, [key.publicKey]);
      const now = nowSec();
      if (typeof c.exp !== 'number' || c.exp <= now || typeof c.iat !== 'number' || c.exp - c.iat > 3600)
        return undefined;
      const audOk = c.aud === 'https://artifactregistry.googleapis.com/' || typeof c.scope === 'string';
      return audOk ? account.email : undefined;
    } catch {
      return undefined;
    }
  }

  function getRepository(req: FakeRequest): Reply {
    const auth = req.headers.authorization ?? '';
    const bearer = /^bearer /i.test(auth) ? auth.slice(7).trim() : '';
    const issuedInfo = issued.get(bearer);
    const email =
      issuedInfo && issuedInfo.expiresAt > new Date() ? issuedInfo.email : selfSignedEmail(bearer);
    if (!email) return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    const name = req.url.pathname.slice('/v1/'.length);
    const readers = repositories.get(name);
    if (!repositories.has(name) || (readers && !readers.includes(email)))
      // Google answers 403 for both "absent" and "not allowed" unless the caller may list the location.
      return googleError(
        repositories.has(name) ? 403 : 404,
        repositories.has(name) ? 'PERMISSION_DENIED' : 'NOT_FOUND',
        repositories.has(name)
          ? `Permission 'artifactregistry.repositories.get' denied on resource '${name}'`
          : `Requested entity was not found.`,
      );
    return {
      status: 200,
      body: { name, format: 'DOCKER', mode: 'STANDARD_REPOSITORY', createTime: '2026-01-01T00:00:00Z' },
    };
  }

  const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
  const wifProviders = new Map<string, WifProvider>();
  /** Federated access tokens: the principal they stand for, and the provider. */
  const federated = new Map<
    string,
    { principal: string; subject: string; provider: WifProvider; expiresAt: Date }
  >();

  async function issuerKeys(jwksUri: string): Promise<KeyObject[]> {
    const res = await fetch(jwksUri, { signal: AbortSignal.timeout(5000) });
    const { keys } = (await res.json()) as { keys: JsonObject[] };
    return keys.map((k) => createPublicKey({ key: k as never, format: 'jwk' }));
  }

  async function stsToken(req: FakeRequest): Promise<Reply> {
    const f = req.form;
    if (f.get('grant_type') !== TOKEN_EXCHANGE)
      return oauthError(400, 'unsupported_grant_type', `Invalid grant_type: ${f.get('grant_type') ?? ''}`);
    if (f.get('requested_token_type') !== 'urn:ietf:params:oauth:token-type:access_token')
      return oauthError(400, 'invalid_request', 'Invalid requested_token_type.');
    const type = f.get('subject_token_type');
    if (
      type !== 'urn:ietf:params:oauth:token-type:jwt' &&
      type !== 'urn:ietf:params:oauth:token-type:id_token'
    )
      return oauthError(400, 'invalid_request', `Invalid subject_token_type: ${type ?? ''}`);
    const provider = wifProviders.get(f.get('audience') ?? '');
    if (!provider)
      return invalidGrant(
        'Invalid value for "audience". This value should be the full resource name of the Identity Provider.',
      );
    const subject = f.get('subject_token') ?? '';
    let d: DecodedJwt;
    try {
      d = verifyJwt(subject, await issuerKeys(provider.jwksUri));
    } catch {
      return invalidGrant('Invalid JWT signature.');
    }
    const c = d.payload;
    if (c.iss !== provider.issuer)
      return invalidGrant(`The issuer in ID Token ${String(c.iss)} does not match the expected ones.`);
    const auds = Array.isArray(c.aud) ? c.aud : [c.aud];
    if (!auds.some((a) => typeof a === 'string' && provider.allowedAudiences.includes(a)))
      return invalidGrant(
        `The audience in ID Token [${auds.join(', ')}] does not match the expected audience.`,
      );
    const now = nowSec();
    if (typeof c.exp !== 'number' || c.exp <= now) return invalidGrant('ID Token has expired.');
    if (typeof c.sub !== 'string' || !c.sub) return invalidGrant('The ID Token has no sub.');
    const accessToken = `ya29.d.${randomBytes(120).toString('base64url')}`;
    const expiresAt = new Date((now + lifetime) * 1000);
    const pool = provider.audience.replace(/^\/\//, '').replace(/\/providers\/[^/]+$/, '');
    federated.set(accessToken, {
      principal: `principal://${pool}/subject/${c.sub}`,
      subject: c.sub,
      provider,
      expiresAt,
    });
    return {
      status: 200,
      body: {
        access_token: accessToken,
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        token_type: 'Bearer',
        expires_in: lifetime,
      },
    };
  }

  function generateAccessToken(req: FakeRequest): Reply {
    const auth = req.headers.authorization ?? '';
    const fed = federated.get(/^bearer /i.test(auth) ? auth.slice(7).trim() : '');
    if (!fed || fed.expiresAt <= new Date())
      return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    const email = decodeURIComponent(
      /serviceAccounts\/([^/:]+):generateAccessToken$/.exec(req.url.pathname)?.[1] ?? '',
    );
    const account = accounts.get(email);
    if (!account || !(fed.provider.serviceAccounts[email] ?? []).includes(fed.subject))
      return googleError(
        403,
        'PERMISSION_DENIED',
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
      );
    const scope = req.form.getAll('scope').join(' ').trim();
    if (!scope) return googleError(400, 'INVALID_ARGUMENT', 'Scope required.');
    const m = /^(\d+)s$/.exec(req.form.get('lifetime') ?? '3600s');
    const seconds = m ? Math.min(Number(m[1]), lifetime + 1) : lifetime + 1;
    const { accessToken, expiresAt } = issueAccessToken(account, scope, seconds);
    return {
      status: 200,
      body: { accessToken, expireTime: expiresAt.toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  const routes: Route[] = [
    {
      method: 'POST',
      path: /^\/v1\/token$/,
      endpoint: 'sts',
      mints: true,
      handle: stsToken,
      onFailure,
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/-\/serviceAccounts\/[^/]+:generateAccessToken$/,
      endpoint: 'generateAccessToken',
      mints: true,
      handle: generateAccessToken,
      onFailure,
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/repositories\/[^/]+$/,
      endpoint: 'repositories.get',
      mints: false,
      handle: getRepository,
    },
    {
      method: 'POST',
      path: /^\/(oauth2\/v4\/)?token$/,
      endpoint: 'token',
      mints: true,
      handle: token,
      onFailure,
    },
    {
      method: '*',
      path: /^\/(oauth2\/v3\/)?tokeninfo$/,
      endpoint: 'tokeninfo',
      mints: false,
      handle: tokeninfo,
    },
    {
      method: 'GET',
      path: /^\/oauth2\/v3\/certs$/,
      endpoint: 'certs',
      mints: false,
      handle: () => ({ status: 200, body: { keys: [publicJwk(idSigning.publicKey, idKid)] } }),
    },
  ];

  const server = await startFakeServer({
    routes: () => routes,
    failures,
    tls,
    port: opts.port,
    signal: opts.signal,
    notFound: (req) => oauthError(404, 'not_found', `no route for ${req.method} ${req.url.pathname}`),
  });
  base = server.baseUrl;

  const info: GoogleInfo = {
    baseUrl: base,
    tokenUri: `${base}/token`,
    tokeninfoUrl: `${base}/tokeninfo`,
    certsUrl: `${base}/oauth2/v3/certs`,
    ...(tls ? { caCertPem: tls.certPem, ...(tls.certFile ? { caCertFile: tls.certFile } : {}) } : {}),
  };

  return {
    info,
    stop: () => server.close(),
    async makeServiceAccountKey({ projectId, clientEmail }) {
      const email = clientEmail ?? `pullkeeper-test-${randomId(3)}@${projectId}.iam.gserviceaccount.com`;
      let account = accounts.get(email);
      if (!account) {
        // client_id: the service account's 21-digit unique id.
        const clientId = `1${Array.from(randomBytes(20), (b) => String(b % 10)).join('')}`;
        account = { email, clientId, projectId, keys: new Map() };
        accounts.set(email, account);
      }
      const { privateKey, publicKey } = await newRsaKey();
      const privateKeyId = randomBytes(20).toString('hex');
      account.keys.set(privateKeyId, { publicKey, disabled: false });
      return {
        type: 'service_account',
        project_id: projectId,
        private_key_id: privateKeyId,
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: email,
        client_id: account.clientId,
        auth_uri: 'https://accounts.google.com/o/oauth2/auth',
        token_uri: info.tokenUri,
        auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
        client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(email)}`,
        universe_domain: 'googleapis.com',
      };
    },
    disableKey(privateKeyId) {
      for (const a of accounts.values()) {
        const k = a.keys.get(privateKeyId);
        if (k) k.disabled = true;
      }
    },
    failNext: (n, kind, o) => failures.push(n, kind, o),
    clearFailures: () => failures.clear(),
    setTokenLifetime(seconds) {
      if (!(seconds > 0)) throw new RangeError('token lifetime must be > 0');
      lifetime = Math.floor(seconds);
    },
    minted: () => mints.list(),
    onMint: (cb) => mints.on(cb),
    accepts: (u, p) => mints.find(u, p),
    tokenInfo(t) {
      const i = issued.get(t);
      return i && i.expiresAt > new Date() ? { ...i } : undefined;
    },
    requests: () => [...server.log],
    addRepository(name, readers) {
      repositories.set(name, readers);
    },
    addWorkloadIdentityProvider(o) {
      const audience = `//iam.googleapis.com/projects/${o.projectNumber}/locations/global/workloadIdentityPools/${o.pool}/providers/${o.provider}`;
      wifProviders.set(audience, {
        audience,
        issuer: o.issuer,
        jwksUri: o.jwksUri,
        allowedAudiences: o.allowedAudiences ?? [`https:${audience}`],
        serviceAccounts: o.serviceAccounts ?? {},
      });
      return audience;
    },
    addServiceAccount(email) {
      if (accounts.has(email)) return;
      const clientId = `1${Array.from(randomBytes(20), (b) => String(b % 10)).join('')}`;
      accounts.set(email, {
        email,
        clientId,
        projectId: email.split('@')[1]?.split('.')[0] ?? 'p',
        keys: new Map(),
      });
    },
  };
}

/**
 * Signs the service-account assertion the way the docs describe (node:crypto
 * only): for tests and for code that must not depend on google-auth-library.
 */
export function signServiceAccountAssertion(
  key: Pick<ServiceAccountKey, 'private_key' | 'private_key_id' | 'client_email' | 'token_uri'>,
  claims: {
    scope?: string;
    aud?: string;
    iat?: number;
    exp?: number;
    sub?: string;
    target_audience?: string;
  } = {},
): string {
  const iat = claims.iat ?? nowSec();
  const payload: JsonObject = {
    iss: key.client_email,
    aud: claims.aud ?? key.token_uri,
    iat,
    exp: claims.exp ?? iat + 3600,
  };
  if (claims.scope !== undefined) payload.scope = claims.scope;
  if (claims.sub !== undefined) payload.sub = claims.sub;
  if (claims.target_audience !== undefined) payload.target_audience = claims.target_audience;
  return signJwt(payload, createPrivateKey(key.private_key), { kid: key.private_key_id });
}
