/**
 * One in-process server that plays Microsoft Entra ID (the token endpoint of a
 * tenant) and the OAuth endpoints of an Azure Container Registry login server.
 * Neither has an emulator, so this follows the public protocol:
 *
 * - Entra ID client-credentials flow: learn.microsoft.com "Microsoft identity
 *   platform and the OAuth 2.0 client credentials flow" (request fields,
 *   `{token_type, expires_in, ext_expires_in, access_token}`, the error body
 *   `{error, error_description: "AADSTSnnn: …", error_codes, timestamp,
 *   trace_id, correlation_id, error_uri}`), "Microsoft identity platform
 *   certificate credentials" (client_assertion), "Workload identity federation"
 *   (federated client_assertion, audience `api://AzureADTokenExchange`), and the
 *   AADSTS codes in "Microsoft Entra authentication and authorization error codes".
 * - OpenID discovery as MSAL reads it: `<authority>/v2.0/.well-known/openid-configuration`
 *   (AzureAD/microsoft-authentication-library-for-js, msal-common
 *   `Authority.defaultOpenIdConfigurationEndpoint`, `isOpenIdConfigResponse` needs
 *   authorization_endpoint, token_endpoint, issuer, jwks_uri). MSAL.js sends
 *   instance discovery to the HARD-CODED `https://login.microsoftonline.com/common/discovery/instance`
 *   (`Constants.AAD_INSTANCE_DISCOVERY_ENDPT`), never to a custom host; @azure/identity
 *   skips it only with `disableInstanceDiscovery: true` (it then lists the host in
 *   `knownAuthorities`). `/…/discovery/instance` is served here anyway for clients
 *   that ask the authority host (MSAL Python/.NET style). MSAL also rejects any
 *   non-https authority (`UrlString.validateAsUri`: "authority_uri_insecure"), so
 *   @azure/identity needs `tls` here; plain fetch clients can use http.
 * - ACR: Azure/acr `docs/AAD-OAuth.md` (GET /v2/ challenge, POST /oauth2/exchange
 *   grant_type=access_token, POST /oauth2/token grant_type=refresh_token with
 *   repeatable scope, refresh/access token claim sets, null-GUID docker username);
 *   errors in the registry format `{"errors":[{code,message,detail}]}` (distribution
 *   spec). GET /oauth2/token with Basic auth is the fallback containerd uses after
 *   ACR answers 400 to a POST password grant (containerd `remotes/docker/authorizer.go`:
 *   "As of January 2022, ACR is known to return 400").
 *   [U] exact status/code of exchange errors: ACR does not document them; 401
 *   UNAUTHORIZED / 400 BADREQUEST are used.
 */
import { createPublicKey, type JsonWebKey, KeyObject } from 'node:crypto';
import { parseScope } from '../token-scope.js';
import type { Component } from '../types.js';
import {
  basicAuth,
  type DecodedJwt,
  decodeJwt,
  type FailOptions,
  type Failure,
  type FailureKind,
  FailureQueue,
  type FakeRequest,
  isObject,
  type JsonObject,
  JwtError,
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
  uuid,
  verifyJwt,
} from './common.js';

export const ACR_NULL_GUID = '00000000-0000-0000-0000-000000000000';
export const ACR_AUDIENCE = 'https://containerregistry.azure.net';
export const ACR_SCOPE = `${ACR_AUDIENCE}/.default`;
export const ARM_SCOPE = 'https://management.azure.com/.default';
export const FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';
const ARM_AUDIENCES = [
  'https://management.azure.com',
  'https://management.azure.com/',
  'https://management.core.windows.net',
  'https://management.core.windows.net/',
];
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Endpoint names for `failNext(…, { endpoint })` and the request log. */
export type EntraAcrEndpoint = 'aad-token' | 'exchange' | 'acr-token';

/** A workload-identity federated credential on an app registration. */
export interface FederatedCredential {
  issuer: string;
  subject: string;
  /** Default `['api://AzureADTokenExchange']`. */
  audiences?: string[];
  /** Keys that sign the external token: PEM, KeyObject or JWK. */
  keys?: Array<string | KeyObject | JsonWebKey>;
  /** Or a JWKS URL fetched on demand (127.0.0.1 only in tests). */
  jwksUri?: string;
}

export interface EntraClient {
  clientId: string;
  /** Object id of the service principal (the `oid`/`sub` of its tokens). */
  objectId: string;
  clientSecret?: string;
  /** Public keys of certificate credentials (client_assertion with iss = sub = clientId). */
  certificates?: Array<string | KeyObject>;
  federated?: FederatedCredential[];
}

export interface EntraAcrOptions {
  /** Needed only for `tls: true` (the generated certificate goes there). */
  dir?: string;
  /** Serve https with a generated self-signed certificate (true) or the given one. */
  tls?: boolean | TlsMaterial;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  /** The ACR service name (`<name>.azurecr.io` in Azure). Default `127.0.0.1:<port>`. */
  service?: string;
  /** ACR refresh token (the docker password) lifetime; default 3 h (MS docs: `az acr login` token valid 3 hours). */
  refreshTokenLifetimeSec?: number;
  /** ACR access token lifetime; default 75 min (the exp - iat of the access token sample in AAD-OAuth.md). */
  accessTokenLifetimeSec?: number;
  /** Entra access token `expires_in`; default 3599. */
  aadTokenLifetimeSec?: number;
  /** Accept ARM-audience AAD tokens at /oauth2/exchange (false = "authentication-as-arm" disabled). Default true. */
  acceptArmAudience?: boolean;
  /** Repository names the ACR catalog lists (`GET /acr/v1/_catalog`); default none. */
  repositories?: string[];
  port?: number;
  signal?: AbortSignal;
}

export interface EntraAcrInfo {
  baseUrl: string;
  /** For @azure/identity `authorityHost` (needs https: start with `tls`). */
  authorityHost: string;
  tenantId: string;
  clientId: string;
  /** Test-only secret of the default client. */
  clientSecret: string;
  /** `<base>/<tenant>/oauth2/v2.0/token`. */
  tokenEndpoint: string;
  openidConfiguration: string;
  jwksUri: string;
  /** ACR service name / login server (what `service=` must be). */
  loginServer: string;
  /** `<base>/oauth2/token`, the realm of the /v2/ challenge. */
  realm: string;
  exchangeEndpoint: string;
  acrScope: string;
  /** PEM of the self-signed certificate when tls is on. */
  caCertPem?: string;
  caCertFile?: string;
}

export interface EntraAcrFake extends Component<EntraAcrInfo> {
  /** Registers another app registration / service principal in the tenant. */
  addClient(c?: Partial<EntraClient>): EntraClient;
  /** Replaces the repository names the catalog lists. */
  setRepositories(names: string[]): void;
  /** The next `n` token requests (optionally of one endpoint) fail this way. */
  failNext(n: number, kind: FailureKind, opts?: FailOptions & { endpoint?: EntraAcrEndpoint }): void;
  clearFailures(): void;
  /** Lifetime of the ACR refresh token (default), ACR access token or Entra token. */
  setTokenLifetime(seconds: number, which?: 'refresh' | 'access' | 'aad'): void;
  /** ACR refresh tokens issued, as docker credentials (null-GUID username). */
  minted(): MintRecord[];
  onMint(cb: MintListener): () => void;
  /** The minted, unexpired credential matching exactly, if any (for a registry that must accept only these). */
  accepts(username: string, password: string): MintRecord | undefined;
  /** Checks an ACR access token from /oauth2/token; returns its claims. */
  verifyAccessToken(token: string): JsonObject | undefined;
  /** Every request served (no secrets: paths only). */
  requests(): RequestLogEntry[];
  jwks(): { keys: JsonObject[] };
  publicKeyPem(): string;
}

interface TokenInput {
  tenant: string;
  form: URLSearchParams;
  headers: FakeRequest['headers'];
}

function aadError(
  status: number,
  error: string,
  code: number,
  message: string,
  extra: Record<string, string> = {},
): Reply {
  const traceId = uuid();
  const correlationId = uuid();
  const ts = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  return {
    status,
    headers: extra,
    body: {
      error,
      error_description: `AADSTS${code}: ${message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${ts}`,
      error_codes: [code],
      timestamp: ts,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    },
  };
}

function acrError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Reply {
  return { status, headers, body: { errors: [{ code, message, detail: null }] } };
}

function toKey(k: string | KeyObject | JsonWebKey): KeyObject {
  if (typeof k === 'string') return createPublicKey(k);
  if (k instanceof KeyObject) return k.type === 'private' ? createPublicKey(k) : k;
  return createPublicKey({ key: k, format: 'jwk' });
}

export async function startEntraAcr(opts: EntraAcrOptions = {}): Promise<EntraAcrFake> {
  let tls: (TlsMaterial & { certFile?: string }) | undefined;
  if (opts.tls === true) {
    if (!opts.dir) throw new Error('startEntraAcr: tls: true needs dir for the certificate');
    tls = await makeSelfSignedCert(opts.dir);
  } else if (opts.tls) {
    tls = opts.tls;
  }
  const signing = await newRsaKey();
  const kid = randomId(10);
  const tenantId = opts.tenantId ?? uuid();
  const failures = new FailureQueue();
  const mints = new MintLog();
  const clients = new Map<string, EntraClient>();
  const lifetimes = {
    refresh: opts.refreshTokenLifetimeSec ?? 3 * 3600,
    access: opts.accessTokenLifetimeSec ?? 75 * 60,
    aad: opts.aadTokenLifetimeSec ?? 3599,
  };
  const acceptArm = opts.acceptArmAudience ?? true;

  const addClient = (c: Partial<EntraClient> = {}): EntraClient => {
    const client: EntraClient = {
      clientId: c.clientId ?? uuid(),
      objectId: c.objectId ?? uuid(),
      clientSecret: c.clientSecret ?? (c.certificates || c.federated ? undefined : `fake~${randomId(18)}`),
      certificates: c.certificates,
      federated: c.federated,
    };
    clients.set(client.clientId, client);
    return client;
  };
  const defaultClient = addClient({ clientId: opts.clientId, clientSecret: opts.clientSecret });

  // base/service are known once listening; routes read them lazily.
  let base = '';
  let service = opts.service ?? '';
  const tokenEndpointOf = (t: string) => `${base}/${t}/oauth2/v2.0/token`;
  const knownTenant = (t: string) => t === tenantId || t === 'organizations' || t === 'common';

  function openidConfig(t: string, v2: boolean): JsonObject {
    const tid = t === tenantId ? tenantId : '{tenantid}';
    const host = new URL(base).host;
    const pfx = `${base}/${t}`;
    return {
      token_endpoint: v2 ? `${pfx}/oauth2/v2.0/token` : `${pfx}/oauth2/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: v2 ? `${pfx}/discovery/v2.0/keys` : `${pfx}/discovery/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: v2 ? `${base}/${tid}/v2.0` : `https://sts.windows.net/${tid}/`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
      authorization_endpoint: v2 ? `${pfx}/oauth2/v2.0/authorize` : `${pfx}/oauth2/authorize`,
      device_authorization_endpoint: `${pfx}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: v2 ? `${pfx}/oauth2/v2.0/logout` : `${pfx}/oauth2/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'tid', 'ver', 'oid'],
      kerberos_endpoint: `${pfx}/kerberos`,
      tenant_region_scope: null,
      cloud_instance_name: host,
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
      rbac_url: 'https://pas.windows.net',
    };
  }

  function jwksOf(): { keys: JsonObject[] } {
    return { keys: [{ ...publicJwk(signing.publicKey, kid), x5t: kid }] };
  }

  async function keysOf(fc: FederatedCredential): Promise<KeyObject[]> {
    const keys = (fc.keys ?? []).map(toKey);
    if (fc.jwksUri) {
      const r = await fetch(fc.jwksUri, { signal: AbortSignal.timeout(5000) });
      const body = (await r.json()) as unknown;
      if (isObject(body) && Array.isArray(body.keys)) {
        for (const k of body.keys) keys.push(createPublicKey({ key: k as JsonWebKey, format: 'jwk' }));
      }
    }
    return keys;
  }

  /** Returns an error reply, or undefined when the client authenticated. */
  async function authenticateClient(client: EntraClient, inp: TokenInput): Promise<Reply | undefined> {
    const basic = basicAuth(inp.headers);
    const secret =
      inp.form.get('client_secret') ?? (basic?.user === client.clientId ? basic.pass : undefined);
    const assertion = inp.form.get('client_assertion');
    if (secret !== undefined && secret !== null) {
      if (client.clientSecret === undefined || secret !== client.clientSecret) {
        return aadError(
          401,
          'invalid_client',
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${client.clientId}'.`,
        );
      }
      return undefined;
    }
    if (!assertion) {
      return aadError(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    if (inp.form.get('client_assertion_type') !== ASSERTION_TYPE) {
      return aadError(
        400,
        'invalid_request',
        900144,
        "The request body must contain the following parameter: 'client_assertion_type'.",
      );
    }
    let d: DecodedJwt;
    try {
      d = decodeJwt(assertion);
    } catch {
      return aadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
    }
    const { iss, sub, exp, nbf } = d.payload;
    const aud = ([] as unknown[]).concat(d.payload.aud ?? []);
    let keys: KeyObject[];
    if (iss === client.clientId || sub === client.clientId) {
      // Certificate credential: iss = sub = client_id, aud = the token endpoint.
      if (iss !== sub) {
        return aadError(
          401,
          'invalid_client',
          700021,
          "Client assertion application identifier doesn't match 'client_id' parameter.",
        );
      }
      const okAud = [tokenEndpointOf(inp.tenant), `${base}/${inp.tenant}/v2.0`, tokenEndpointOf(tenantId)];
      if (!aud.some((a) => okAud.includes(String(a)))) {
        return aadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed (audience).');
      }
      keys = (client.certificates ?? []).map(toKey);
    } else {
      const fc = (client.federated ?? []).find(
        (f) =>
          f.issuer === iss &&
          f.subject === sub &&
          aud.some((a) => (f.audiences ?? [FEDERATED_AUDIENCE]).includes(String(a))),
      );
      if (!fc) {
        return aadError(
          400,
          'invalid_request',
          70021,
          `No matching federated identity record found for presented assertion. Assertion Issuer: '${String(iss)}'. Assertion Subject: '${String(sub)}'. Assertion Audience: '${aud.join(',')}'.`,
        );
      }
      try {
        keys = await keysOf(fc);
      } catch {
        return aadError(401, 'invalid_client', 700027, 'Client assertion failed signature validation.');
      }
    }
    try {
      verifyJwt(assertion, keys);
    } catch {
      return aadError(401, 'invalid_client', 700027, 'Client assertion failed signature validation.');
    }
    const now = nowSec();
    if (typeof exp !== 'number' || exp <= now || (typeof nbf === 'number' && nbf > now + 300)) {
      return aadError(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
    }
    return undefined;
  }

  async function aadToken(req: FakeRequest, tenant: string): Promise<Reply> {
    const form = req.form;
    if (!knownTenant(tenant)) {
      return aadError(
        400,
        'invalid_request',
        90002,
        `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
      );
    }
    const grant = form.get('grant_type');
    if (!grant) {
      return aadError(
        400,
        'invalid_request',
        900144,
        "The request body must contain the following parameter: 'grant_type'.",
      );
    }
    if (grant !== 'client_credentials') {
      return aadError(
        400,
        'unsupported_grant_type',
        70003,
        `The app requested an unsupported grant type '${grant}'.`,
      );
    }
    const basic = basicAuth(req.headers);
    const clientId = form.get('client_id') ?? basic?.user;
    if (!clientId) {
      return aadError(
        400,
        'invalid_request',
        900144,
        "The request body must contain the following parameter: 'client_id'.",
      );
    }
    const scope = form.get('scope');
    if (!scope) {
      return aadError(
        400,
        'invalid_request',
        900144,
        "The request body must contain the following parameter: 'scope'.",
      );
    }
    const scopes = scope.split(' ').filter(Boolean);
    if (scopes.length !== 1 || !scopes[0]!.endsWith('/.default')) {
      return aadError(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const client = clients.get(clientId);
    if (!client) {
      return aadError(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }
    const denied = await authenticateClient(client, { tenant, form, headers: req.headers });
    if (denied) return denied;
    const resource = scopes[0]!.slice(0, -'/.default'.length);
    const now = nowSec();
    const exp = now + lifetimes.aad;
    // v1.0 access token claims, as Azure resources (ARM, ACR) receive them.
    const token = signJwt(
      {
        aud: resource,
        iss: `https://sts.windows.net/${tenantId}/`,
        iat: now,
        nbf: now,
        exp,
        aio: randomId(12),
        appid: client.clientId,
        appidacr: form.get('client_assertion') ? '2' : '1',
        idp: `https://sts.windows.net/${tenantId}/`,
        idtyp: 'app',
        oid: client.objectId,
        rh: randomId(8),
        sub: client.objectId,
        tid: tenantId,
        uti: randomId(8),
        ver: '1.0',
      },
      signing.privateKey,
      { x5t: kid, kid },
    );
    return {
      status: 200,
      body: {
        token_type: 'Bearer',
        expires_in: lifetimes.aad,
        ext_expires_in: lifetimes.aad,
        access_token: token,
      },
    };
  }

  function checkAadToken(token: string, tenant: string): JsonObject | string {
    let d: DecodedJwt;
    try {
      d = verifyJwt(token, signing.publicKey);
    } catch (e) {
      return e instanceof JwtError ? `access token ${e.message}` : 'access token invalid';
    }
    const p = d.payload;
    if (typeof p.exp !== 'number' || p.exp <= nowSec()) return 'access token expired';
    if (p.tid !== tenant || p.iss !== `https://sts.windows.net/${tenant}/`)
      return 'access token tenant mismatch';
    const aud = String(p.aud);
    const okAud = [ACR_AUDIENCE, `${ACR_AUDIENCE}/`, ...(acceptArm ? ARM_AUDIENCES : [])];
    if (!okAud.includes(aud)) return `access token audience ${aud} not accepted`;
    return p;
  }

  function exchange(req: FakeRequest): Reply {
    const f = req.form;
    const grant = f.get('grant_type');
    if (grant !== 'access_token') {
      return acrError(
        400,
        'UNSUPPORTED',
        `grant_type '${grant ?? ''}' is not supported here (only access_token; access_token_refresh_token and refresh_token are deprecated)`,
      );
    }
    const svc = f.get('service');
    const aad = f.get('access_token');
    // `tenant` is optional (ACR REST reference, "Authentication - Exchange Aad Access Token For Acr
    // Refresh Token": grant_type and service required; tenant and access_token optional form fields;
    // @azure/container-registry sends no tenant). Without it, the token's own tenant is used.
    const tenant = f.get('tenant') ?? tenantId;
    if (!svc || !aad) return acrError(400, 'BADREQUEST', 'service and access_token are required');
    if (svc !== service) return acrError(400, 'BADREQUEST', `service '${svc}' is not this registry`);
    const claims = checkAadToken(aad, tenant);
    if (typeof claims === 'string') return acrError(401, 'UNAUTHORIZED', claims);
    const now = nowSec();
    const exp = now + lifetimes.refresh;
    const rt = signJwt(
      {
        jti: uuid(),
        sub: claims.oid,
        nbf: now,
        exp,
        iat: now,
        iss: 'Azure Container Registry',
        aud: service,
        version: '1.0',
        rid: randomId(16),
        grant_type: 'refresh_token',
        appid: claims.appid,
        tenant,
        permissions: { actions: ['*'], notActions: [] },
        roles: [],
      },
      signing.privateKey,
      { kid },
    );
    mints.add({
      kind: 'acr',
      username: ACR_NULL_GUID,
      password: rt,
      expiresAt: new Date(exp * 1000),
      issuedAt: new Date(now * 1000),
      subject: String(claims.appid),
      audience: service,
    });
    return { status: 200, body: { refresh_token: rt } };
  }

  function checkAcrToken(
    token: string,
    kind: 'refresh_token' | 'access_token',
    svc: string,
  ): JsonObject | undefined {
    try {
      const p = verifyJwt(token, signing.publicKey).payload;
      if (p.iss !== 'Azure Container Registry' || p.aud !== svc || p.grant_type !== kind) return undefined;
      if (typeof p.exp !== 'number' || p.exp <= nowSec()) return undefined;
      return p;
    } catch {
      return undefined;
    }
  }

  function accessToken(rt: JsonObject, scopes: string[]): Reply {
    const now = nowSec();
    const access = scopes.map(parseScope).filter((s) => s !== undefined);
    const at = signJwt(
      {
        jti: uuid(),
        sub: rt.sub,
        nbf: now,
        exp: now + lifetimes.access,
        iat: now,
        iss: 'Azure Container Registry',
        aud: service,
        version: '1.0',
        rid: rt.rid,
        access,
        roles: [],
        grant_type: 'access_token',
        appid: rt.appid,
        tenant: rt.tenant,
      },
      signing.privateKey,
      { kid },
    );
    return { status: 200, body: { access_token: at } };
  }

  const unauthorized = () =>
    acrError(
      401,
      'UNAUTHORIZED',
      'authentication required, visit https://aka.ms/acr/authorization for more information.',
    );

  function acrTokenPost(req: FakeRequest): Reply {
    const f = req.form;
    const grant = f.get('grant_type');
    if (grant === 'password') {
      // containerd tries this first with username+password, then falls back to GET.
      return acrError(400, 'BADREQUEST', 'grant_type password is not supported for this credential');
    }
    if (grant !== 'refresh_token')
      return acrError(400, 'BADREQUEST', `unsupported grant_type '${grant ?? ''}'`);
    const svc = f.get('service');
    const token = f.get('refresh_token');
    if (!svc || !token) return acrError(400, 'BADREQUEST', 'service and refresh_token are required');
    if (svc !== service) return acrError(400, 'BADREQUEST', `service '${svc}' is not this registry`);
    const rt = checkAcrToken(token, 'refresh_token', svc);
    if (!rt) return unauthorized();
    return accessToken(rt, f.getAll('scope'));
  }

  function acrTokenGet(req: FakeRequest): Reply {
    const q = req.url.searchParams;
    const creds = basicAuth(req.headers);
    const svc = q.get('service');
    if (!creds || !svc || svc !== service) return unauthorized();
    const rec = creds.user === ACR_NULL_GUID ? mints.find(creds.user, creds.pass) : undefined;
    const rt = rec ? checkAcrToken(creds.pass, 'refresh_token', svc) : undefined;
    if (!rt) return unauthorized();
    return accessToken(rt, q.getAll('scope'));
  }

  function v2(req: FakeRequest): Reply {
    const auth = req.headers.authorization ?? '';
    if (/^bearer /i.test(auth) && checkAcrToken(auth.slice(7).trim(), 'access_token', service)) {
      return { status: 200, headers: { 'docker-distribution-api-version': 'registry/2.0' }, body: {} };
    }
    const b = basicAuth(req.headers);
    if (b && mints.find(b.user, b.pass)) {
      return { status: 200, headers: { 'docker-distribution-api-version': 'registry/2.0' }, body: {} };
    }
    return acrError(
      401,
      'UNAUTHORIZED',
      'authentication required, visit https://aka.ms/acr/authorization for more information.',
      {
        'www-authenticate': `Bearer realm="${base}/oauth2/token",service="${service}"`,
        'docker-distribution-api-version': 'registry/2.0',
      },
    );
  }

  // ACR data plane "Repository - Get List" (learn.microsoft.com/rest/api/containerregistry/repository/get-list):
  // GET /acr/v1/_catalog?last=&n= -> {"repositories": [...]}, paged by a Link rel="next" header, with the
  // access token scope registry:catalog:* (Azure/acr docs/AAD-OAuth.md, "Calling the catalog API").
  let repositories = [...(opts.repositories ?? [])].sort();
  function catalog(req: FakeRequest): Reply {
    const auth = req.headers.authorization ?? '';
    const at = /^bearer /i.test(auth)
      ? checkAcrToken(auth.slice(7).trim(), 'access_token', service)
      : undefined;
    const access = (at?.access ?? []) as Array<{ type?: string; name?: string; actions?: string[] }>;
    if (!access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions?.includes('*'))) {
      return acrError(
        401,
        'UNAUTHORIZED',
        'authentication required, visit https://aka.ms/acr/authorization for more information.',
        {
          'www-authenticate': `Bearer realm="${base}/oauth2/token",service="${service}",scope="registry:catalog:*"`,
        },
      );
    }
    const q = req.url.searchParams;
    const n = Math.max(1, Math.min(1000, Number(q.get('n') ?? 100) || 100));
    const last = q.get('last');
    const from = last ? repositories.findIndex((r) => r > last) : 0;
    const page = from < 0 ? [] : repositories.slice(from, from + n);
    const more = from >= 0 && from + n < repositories.length;
    return {
      status: 200,
      headers: more
        ? { link: `</acr/v1/_catalog?last=${encodeURIComponent(page.at(-1)!)}&n=${n}>; rel="next"` }
        : {},
      body: { repositories: page },
    };
  }

  function aadFailure(f: Failure): Reply | undefined {
    if (f.kind === 429) {
      return aadError(
        429,
        'temporarily_unavailable',
        50196,
        'The server terminated an operation because it encountered a client request loop or too many requests.',
        { 'retry-after': String(f.retryAfterSeconds) },
      );
    }
    if (f.kind === 500)
      return aadError(500, 'server_error', 90033, 'A transient error has occurred. Please try again.');
    if (f.kind === 'bad-credentials') {
      return aadError(
        401,
        'invalid_client',
        7000215,
        'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
      );
    }
    return undefined;
  }

  function acrFailure(f: Failure): Reply | undefined {
    if (f.kind === 429) {
      return acrError(429, 'TOOMANYREQUESTS', 'too many requests', {
        'retry-after': String(f.retryAfterSeconds),
      });
    }
    if (f.kind === 500) return acrError(500, 'UNKNOWN', 'unknown error');
    if (f.kind === 'bad-credentials') return unauthorized();
    return undefined;
  }

  const tenantOf = (p: string) => decodeURIComponent(p.split('/')[1] ?? '');
  const routes: Route[] = [
    {
      method: 'GET',
      path: /^(\/[^/]+)?\/discovery\/instance\/?$/,
      endpoint: 'instance-discovery',
      mints: false,
      handle: (req) => {
        const authz = req.url.searchParams.get('authorization_endpoint') ?? '';
        let t = 'common';
        try {
          t = new URL(authz).pathname.split('/')[1] || 'common';
        } catch {
          /* keep common */
        }
        const host = new URL(base).host;
        return {
          status: 200,
          body: {
            tenant_discovery_endpoint: `${base}/${t}/v2.0/.well-known/openid-configuration`,
            'api-version': '1.1',
            metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
          },
        };
      },
    },
    {
      method: 'GET',
      path: /^\/[^/]+(\/v2\.0)?\/\.well-known\/openid-configuration$/,
      endpoint: 'openid-configuration',
      mints: false,
      handle: (req) => {
        const t = tenantOf(req.url.pathname);
        if (!knownTenant(t)) {
          return {
            status: 400,
            body: { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${t}' not found.` },
          };
        }
        return { status: 200, body: openidConfig(t, req.url.pathname.includes('/v2.0/')) };
      },
    },
    {
      method: 'GET',
      path: /^\/[^/]+\/discovery(\/v2\.0)?\/keys$/,
      endpoint: 'jwks',
      mints: false,
      handle: () => ({ status: 200, body: jwksOf() }),
    },
    {
      method: 'POST',
      path: /^\/[^/]+\/oauth2\/v2\.0\/token$/,
      endpoint: 'aad-token',
      mints: true,
      handle: (req) => aadToken(req, tenantOf(req.url.pathname)),
      onFailure: aadFailure,
    },
    {
      method: 'POST',
      path: /^\/oauth2\/exchange$/,
      endpoint: 'exchange',
      mints: true,
      handle: exchange,
      onFailure: acrFailure,
    },
    {
      method: 'POST',
      path: /^\/oauth2\/token$/,
      endpoint: 'acr-token',
      mints: true,
      handle: acrTokenPost,
      onFailure: acrFailure,
    },
    {
      method: 'GET',
      path: /^\/oauth2\/token$/,
      endpoint: 'acr-token',
      mints: true,
      handle: acrTokenGet,
      onFailure: acrFailure,
    },
    { method: 'GET', path: /^\/v2\/?$/, endpoint: 'v2', mints: false, handle: v2 },
    { method: 'GET', path: /^\/acr\/v1\/_catalog$/, endpoint: 'catalog', mints: false, handle: catalog },
  ];

  const server = await startFakeServer({
    routes: () => routes,
    failures,
    tls,
    port: opts.port,
    signal: opts.signal,
    notFound: (req) =>
      req.url.pathname.startsWith('/v2/') || req.url.pathname.startsWith('/oauth2/')
        ? acrError(404, 'NOT_FOUND', 'not found')
        : {
            status: 404,
            body: { error: 'not_found', error_description: `no route for ${req.method} ${req.url.pathname}` },
          },
  });
  base = server.baseUrl;
  if (!service) service = `127.0.0.1:${server.port}`;

  const info: EntraAcrInfo = {
    baseUrl: base,
    authorityHost: base,
    tenantId,
    clientId: defaultClient.clientId,
    clientSecret: defaultClient.clientSecret ?? '',
    tokenEndpoint: tokenEndpointOf(tenantId),
    openidConfiguration: `${base}/${tenantId}/v2.0/.well-known/openid-configuration`,
    jwksUri: `${base}/${tenantId}/discovery/v2.0/keys`,
    loginServer: service,
    realm: `${base}/oauth2/token`,
    exchangeEndpoint: `${base}/oauth2/exchange`,
    acrScope: ACR_SCOPE,
    ...(tls ? { caCertPem: tls.certPem, ...(tls.certFile ? { caCertFile: tls.certFile } : {}) } : {}),
  };

  return {
    info,
    stop: () => server.close(),
    addClient,
    setRepositories(names) {
      repositories = [...names].sort();
    },
    failNext: (n, kind, o) => failures.push(n, kind, o),
    clearFailures: () => failures.clear(),
    setTokenLifetime(seconds, which = 'refresh') {
      if (!(seconds > 0)) throw new RangeError('token lifetime must be > 0');
      lifetimes[which] = Math.floor(seconds);
    },
    minted: () => mints.list(),
    onMint: (cb) => mints.on(cb),
    accepts: (u, p) => mints.find(u, p),
    verifyAccessToken: (t) => checkAcrToken(t, 'access_token', service),
    requests: () => [...server.log],
    jwks: jwksOf,
    publicKeyPem: () => signing.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
