/**
 * The cloud fakes against their documented protocols. Run:
 *   node --import tsx --test test/harness/cloud/cloud.test.ts
 * Tokens are never printed: comparisons that involve one use assert.ok(bool, text).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { decodeJwt, type JsonObject, nowSec, signJwt } from './common.js';
import {
  ACR_NULL_GUID,
  ACR_SCOPE,
  ARM_SCOPE,
  CLOUD_PLATFORM_SCOPE,
  type Cloud,
  checkCloud,
  checkMoto,
  FEDERATED_AUDIENCE,
  GOOGLE_DOCKER_USERNAME,
  GOOGLE_TOKEN_AUDIENCE,
  MOTO_ACCOUNT_ID,
  MOTO_ECR_EXPIRES_AT,
  type ServiceAccountKey,
  signServiceAccountAssertion,
  startCloud,
  startEntraAcr,
} from './index.js';

interface Res {
  status: number;
  headers: Headers;
  body: JsonObject;
}

async function post(
  url: string,
  fields: Record<string, string | string[]>,
  signal?: AbortSignal,
): Promise<Res> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) form.append(k, x);
  const r = await fetch(url, { method: 'POST', body: form, signal: signal ?? AbortSignal.timeout(10_000) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? (JSON.parse(text) as JsonObject) : {} };
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Res> {
  const r = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? (JSON.parse(text) as JsonObject) : {} };
}

const claims = (jwt: unknown): JsonObject => decodeJwt(String(jwt)).payload;
const str = (v: unknown): string => {
  assert.equal(typeof v, 'string', 'expected a string field');
  return v as string;
};
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

let dir: string;
let cloud: Cloud;
let motoOk = false;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pullkeeper-cloud-'));
  motoOk = (await checkMoto()).every((c) => c.ok);
  const t0 = Date.now();
  cloud = await startCloud({ dir, moto: motoOk });
  const ms = Date.now() - t0;
  // Visible with --test-reporter=spec; no secrets here.
  process.stdout.write(`# startCloud (moto=${motoOk}) ready in ${ms} ms\n`);
});

after(async () => {
  await cloud?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('doctor', () => {
  test('checkCloud reports moto and openssl', async () => {
    const checks = await checkCloud();
    assert.ok(checks.some((c) => c.name === 'moto'));
    assert.ok(checks.some((c) => c.name === 'openssl'));
    for (const c of checks) if (!c.ok) assert.ok(c.fix, `${c.name} has a fix command`);
  });

  test('info is plain JSON', () => {
    const round = JSON.parse(JSON.stringify(cloud.info)) as unknown;
    assert.deepEqual(round, cloud.info);
  });
});

describe('ECR (moto)', () => {
  test('GetAuthorizationToken through @aws-sdk/client-ecr', async (t) => {
    if (!motoOk) return t.skip('moto not installed (see checkMoto)');
    const m = cloud.info.moto!;
    const ecr = new ECRClient({
      region: m.region,
      endpoint: m.endpoint,
      credentials: { accessKeyId: m.accessKeyId, secretAccessKey: m.secretAccessKey },
    });
    try {
      const out = await ecr.send(new GetAuthorizationTokenCommand({}));
      const data = out.authorizationData?.[0];
      assert.ok(data?.authorizationToken, 'authorizationToken present');
      const decoded = Buffer.from(data.authorizationToken, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      assert.equal(decoded.slice(0, i), 'AWS');
      assert.ok(
        decoded.slice(i + 1) === `${MOTO_ACCOUNT_ID}-auth-token`,
        'moto password is <account>-auth-token',
      );
      assert.equal(data.proxyEndpoint, `https://${MOTO_ACCOUNT_ID}.dkr.ecr.${m.region}.amazonaws.com`);
      // moto 5.2.1 hard-codes 2015-01-01 (server local time; started with TZ=UTC).
      // The real service returns now + 12 h. If this fails, moto changed: revisit expiry handling in tests.
      assert.deepEqual(data.expiresAt, MOTO_ECR_EXPIRES_AT);
    } finally {
      ecr.destroy();
    }
  });
});

describe('Entra ID + ACR', () => {
  async function aadToken(scope = ACR_SCOPE, secret?: string): Promise<Res> {
    const a = cloud.acr.info;
    return post(a.tokenEndpoint, {
      client_id: a.clientId,
      client_secret: secret ?? a.clientSecret,
      scope,
      grant_type: 'client_credentials',
    });
  }

  async function exchange(aad: string, tenant = cloud.acr.info.tenantId): Promise<Res> {
    const a = cloud.acr.info;
    return post(a.exchangeEndpoint, {
      grant_type: 'access_token',
      service: a.loginServer,
      tenant,
      access_token: aad,
    });
  }

  test('discovery documents have what MSAL reads', async () => {
    const a = cloud.acr.info;
    const oc = await get(a.openidConfiguration);
    assert.equal(oc.status, 200);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'issuer', 'jwks_uri'])
      assert.ok(k in oc.body, k);
    assert.equal(oc.body.token_endpoint, a.tokenEndpoint);
    const authz = encodeURIComponent(`${a.authorityHost}/${a.tenantId}/oauth2/v2.0/authorize`);
    const di = await get(
      `${a.baseUrl}/common/discovery/instance?api-version=1.1&authorization_endpoint=${authz}`,
    );
    assert.equal(di.status, 200);
    assert.equal(di.body.tenant_discovery_endpoint, a.openidConfiguration);
    assert.ok(Array.isArray(di.body.metadata));
    const jwks = await get(a.jwksUri);
    assert.equal((jwks.body.keys as unknown[]).length, 1);
    const bad = await get(`${a.baseUrl}/not-a-tenant/v2.0/.well-known/openid-configuration`);
    assert.equal(bad.status, 400);
  });

  test('full flow: challenge -> AAD token -> exchange -> refresh token -> access token', async () => {
    const a = cloud.acr.info;
    // 1. challenge
    const ch = await get(`${a.baseUrl}/v2/`);
    assert.equal(ch.status, 401);
    const www = ch.headers.get('www-authenticate') ?? '';
    assert.equal(www, `Bearer realm="${a.realm}",service="${a.loginServer}"`);
    assert.equal((ch.body.errors as JsonObject[])[0]?.code, 'UNAUTHORIZED');

    // 2. Entra client credentials
    const tok = await aadToken();
    assert.equal(tok.status, 200);
    assert.equal(tok.body.token_type, 'Bearer');
    assert.equal(tok.body.expires_in, 3599);
    assert.equal(tok.body.ext_expires_in, 3599);
    const aadClaims = claims(tok.body.access_token);
    assert.equal(aadClaims.aud, 'https://containerregistry.azure.net');
    assert.equal(aadClaims.tid, a.tenantId);
    assert.equal(aadClaims.appid, a.clientId);
    assert.equal(typeof aadClaims.oid, 'string');
    assert.ok(Math.abs(Number(aadClaims.exp) - (nowSec() + 3599)) < 30);

    // 3. exchange
    const before = cloud.acr.minted().length;
    const ex = await exchange(str(tok.body.access_token));
    assert.equal(ex.status, 200);
    const rt = str(ex.body.refresh_token);
    const rtc = claims(rt);
    assert.equal(rtc.iss, 'Azure Container Registry');
    assert.equal(rtc.aud, a.loginServer);
    assert.equal(rtc.grant_type, 'refresh_token');
    assert.equal(rtc.tenant, a.tenantId);
    assert.ok(Math.abs(Number(rtc.exp) - (nowSec() + 3 * 3600)) < 60, 'refresh token exp is now + 3 h');

    // minted() lists the docker credential
    const minted = cloud.acr.minted();
    assert.equal(minted.length, before + 1);
    const m = minted.at(-1)!;
    assert.equal(m.kind, 'acr');
    assert.equal(m.username, ACR_NULL_GUID);
    assert.ok(m.password === rt, 'minted password is the refresh token');
    assert.equal(m.expiresAt.getTime(), Number(rtc.exp) * 1000);
    assert.ok(cloud.accepts(ACR_NULL_GUID, rt), 'cloud.accepts the minted credential');
    assert.equal(cloud.accepts(ACR_NULL_GUID, `${rt}x`), undefined);

    // 4. access token, scope repeated
    const at = await post(a.realm, {
      grant_type: 'refresh_token',
      service: a.loginServer,
      scope: ['repository:team/app:pull', 'repository:team/base:pull,push'],
      refresh_token: rt,
    });
    assert.equal(at.status, 200);
    const atc = claims(at.body.access_token);
    assert.deepEqual(atc.access, [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'team/base', actions: ['pull', 'push'] },
    ]);
    assert.equal(atc.grant_type, 'access_token');
    assert.ok(cloud.acr.verifyAccessToken(str(at.body.access_token)));
    const v2 = await get(`${a.baseUrl}/v2/`, { authorization: `Bearer ${str(at.body.access_token)}` });
    assert.equal(v2.status, 200);

    // containerd's fallback: GET realm with Basic <null guid>:<refresh token>
    const q = `service=${encodeURIComponent(a.loginServer)}&scope=${encodeURIComponent('repository:team/app:pull')}`;
    const g = await get(`${a.realm}?${q}`, { authorization: basic(ACR_NULL_GUID, rt) });
    assert.equal(g.status, 200);
    assert.ok(typeof g.body.access_token === 'string');
    const g401 = await get(`${a.realm}?${q}`, { authorization: basic(ACR_NULL_GUID, 'nope') });
    assert.equal(g401.status, 401);
    const pw = await post(a.realm, {
      grant_type: 'password',
      service: a.loginServer,
      username: ACR_NULL_GUID,
      password: rt,
    });
    assert.equal(pw.status, 400, 'POST password grant is refused like ACR does (containerd then uses GET)');
  });

  test('refresh token lifetime is configurable (75 min)', async () => {
    cloud.acr.setTokenLifetime(75 * 60);
    try {
      const ex = await exchange(str((await aadToken()).body.access_token));
      assert.ok(Math.abs(Number(claims(ex.body.refresh_token).exp) - (nowSec() + 75 * 60)) < 60);
    } finally {
      cloud.acr.setTokenLifetime(3 * 3600);
    }
  });

  test('exchange validates the AAD token', async () => {
    const aad = str((await aadToken()).body.access_token);
    const wrongTenant = await exchange(aad, '11111111-1111-1111-1111-111111111111');
    assert.equal(wrongTenant.status, 401);
    assert.equal((wrongTenant.body.errors as JsonObject[])[0]?.code, 'UNAUTHORIZED');
    const [h, p] = aad.split('.');
    const forged = await exchange(`${h}.${p}.${Buffer.from('x').toString('base64url')}`);
    assert.equal(forged.status, 401);
    // ARM audience accepted (authentication-as-arm enabled by default)
    const arm = await aadToken(ARM_SCOPE);
    assert.equal(claims(arm.body.access_token).aud, 'https://management.azure.com');
    assert.equal((await exchange(str(arm.body.access_token))).status, 200);
    // refresh token for another service is refused at /oauth2/token
    const rt = str((await exchange(aad)).body.refresh_token);
    const other = await post(cloud.acr.info.realm, {
      grant_type: 'refresh_token',
      service: 'other.azurecr.io',
      refresh_token: rt,
    });
    assert.equal(other.status, 400);
  });

  test('wrong secret and bad requests get AADSTS error bodies', async () => {
    const wrong = await aadToken(ACR_SCOPE, 'not-the-secret');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_client');
    assert.deepEqual(wrong.body.error_codes, [7000215]);
    assert.match(str(wrong.body.error_description), /^AADSTS7000215: /);
    for (const k of ['timestamp', 'trace_id', 'correlation_id', 'error_uri']) assert.ok(k in wrong.body, k);
    const noDefault = await aadToken('https://containerregistry.azure.net/user_impersonation');
    assert.equal(noDefault.body.error, 'invalid_scope');
    const unknown = await post(cloud.acr.info.tokenEndpoint, {
      client_id: '22222222-2222-2222-2222-222222222222',
      client_secret: 'x',
      scope: ACR_SCOPE,
      grant_type: 'client_credentials',
    });
    assert.equal(unknown.status, 400);
    assert.deepEqual(unknown.body.error_codes, [700016]);
  });

  test('federated client assertion (workload identity)', async () => {
    const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const issuer = 'https://oidc.example.test/cluster';
    const subject = 'system:serviceaccount:pullkeeper:controller';
    const client = cloud.acr.addClient({
      federated: [{ issuer, subject, keys: [idp.publicKey] }],
    });
    const now = nowSec();
    const mk = (sub: string) =>
      signJwt(
        { iss: issuer, sub, aud: [FEDERATED_AUDIENCE], iat: now, nbf: now, exp: now + 600 },
        idp.privateKey,
      );
    const req = (assertion: string) =>
      post(cloud.acr.info.tokenEndpoint, {
        client_id: client.clientId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: ACR_SCOPE,
        grant_type: 'client_credentials',
      });
    const ok = await req(mk(subject));
    assert.equal(ok.status, 200);
    assert.equal(claims(ok.body.access_token).appidacr, '2');
    const wrong = await req(mk('system:serviceaccount:other:sa'));
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.body.error_codes, [70021]);
    const forgedKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = signJwt(
      { iss: issuer, sub: subject, aud: FEDERATED_AUDIENCE, iat: now, exp: now + 600 },
      forgedKey.privateKey,
    );
    const bad = await req(forged);
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body.error_codes, [700027]);
  });

  test('failure injection: 500, 429 + Retry-After, slow, bad-credentials', async () => {
    const acr = cloud.acr;
    acr.failNext(1, 500);
    const e500 = await aadToken();
    assert.equal(e500.status, 500);
    assert.equal(e500.body.error, 'server_error');
    assert.match(str(e500.body.error_description), /^AADSTS\d+: /);

    acr.failNext(1, 429, { retryAfterSeconds: 7 });
    const e429 = await aadToken();
    assert.equal(e429.status, 429);
    assert.equal(e429.headers.get('retry-after'), '7');
    assert.equal(e429.body.error, 'temporarily_unavailable');

    acr.failNext(1, 'bad-credentials');
    const bad = await aadToken();
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error, 'invalid_client');
    assert.deepEqual(bad.body.error_codes, [7000215]);

    // endpoint filter: the AAD call passes, the exchange fails
    const aad = str((await aadToken()).body.access_token);
    acr.failNext(1, 429, { endpoint: 'exchange', retryAfterSeconds: 2 });
    const x429 = await exchange(aad);
    assert.equal(x429.status, 429);
    assert.equal(x429.headers.get('retry-after'), '2');
    assert.equal((x429.body.errors as JsonObject[])[0]?.code, 'TOOMANYREQUESTS');
    acr.failNext(1, 'bad-credentials', { endpoint: 'exchange' });
    assert.equal((await exchange(aad)).status, 401);
    acr.failNext(1, 500, { endpoint: 'exchange' });
    assert.equal((await exchange(aad)).status, 500);

    // slow: a client with a short timeout gives up; one with patience gets the token
    acr.failNext(1, 'slow', { delayMs: 2000 });
    await assert.rejects(
      post(acr.info.tokenEndpoint, {}, AbortSignal.timeout(200)),
      (e: Error) => e.name === 'TimeoutError' || e.name === 'AbortError',
    );
    acr.failNext(1, 'slow', { delayMs: 300 });
    const t0 = Date.now();
    const slow = await aadToken();
    assert.equal(slow.status, 200);
    assert.ok(Date.now() - t0 >= 290, 'slow response was delayed');

    const log = acr.requests();
    assert.ok(
      log.some((r) => r.injected === 'slow' && r.status === 0),
      'abandoned slow request logged',
    );
    assert.ok(
      log.every((r) => !r.path.includes('?')),
      'log holds paths only',
    );
  });
});

describe('Google service-account token endpoint', () => {
  let key: ServiceAccountKey;
  before(async () => {
    key = await cloud.google.makeServiceAccountKey({ projectId: 'pullkeeper-test' });
  });

  const tokenReq = (assertion: string, grant = 'urn:ietf:params:oauth:grant-type:jwt-bearer') =>
    post(key.token_uri, { grant_type: grant, assertion });

  test('key JSON has the Google key-file fields', () => {
    assert.deepEqual(Object.keys(key), [
      'type',
      'project_id',
      'private_key_id',
      'private_key',
      'client_email',
      'client_id',
      'auth_uri',
      'token_uri',
      'auth_provider_x509_cert_url',
      'client_x509_cert_url',
      'universe_domain',
    ]);
    assert.equal(key.type, 'service_account');
    assert.ok(key.private_key.startsWith('-----BEGIN PRIVATE KEY-----\n'), 'PKCS#8 PEM');
    assert.match(key.private_key_id, /^[0-9a-f]{40}$/);
    assert.match(key.client_id, /^\d{21}$/);
    assert.match(key.client_email, /@pullkeeper-test\.iam\.gserviceaccount\.com$/);
    assert.equal(key.token_uri, cloud.google.info.tokenUri);
  });

  test('assertion -> access token; minted() and tokeninfo', async () => {
    const r = await tokenReq(signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE }));
    assert.equal(r.status, 200);
    assert.equal(r.body.token_type, 'Bearer');
    assert.equal(r.body.expires_in, 3599);
    const at = str(r.body.access_token);
    assert.ok(at.startsWith('ya29.'), 'access token starts with ya29.');
    const m = cloud.google.minted().at(-1)!;
    assert.equal(m.kind, 'google');
    assert.equal(m.username, GOOGLE_DOCKER_USERNAME);
    assert.ok(m.password === at, 'minted password is the access token');
    assert.equal(m.subject, key.client_email);
    assert.ok(Math.abs(m.expiresAt.getTime() - (Date.now() + 3599_000)) < 5000);
    assert.ok(cloud.accepts(GOOGLE_DOCKER_USERNAME, at));
    const info = await get(`${cloud.google.info.tokeninfoUrl}?access_token=${encodeURIComponent(at)}`);
    assert.equal(info.status, 200);
    assert.equal(info.body.scope, CLOUD_PLATFORM_SCOPE);
    assert.equal(info.body.azp, key.client_id);
    // Google's documented audience is accepted too
    const r2 = await tokenReq(
      signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE, aud: GOOGLE_TOKEN_AUDIENCE }),
    );
    assert.equal(r2.status, 200);
    // lifetime setting
    cloud.google.setTokenLifetime(120);
    try {
      const r3 = await tokenReq(signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE }));
      assert.equal(r3.body.expires_in, 120);
    } finally {
      cloud.google.setTokenLifetime(3599);
    }
  });

  test('id token with target_audience', async () => {
    const r = await tokenReq(
      signServiceAccountAssertion(key, { target_audience: 'https://svc.example.test' }),
    );
    assert.equal(r.status, 200);
    const c = claims(r.body.id_token);
    assert.equal(c.aud, 'https://svc.example.test');
    assert.equal(c.email, key.client_email);
  });

  test('invalid assertions get Google OAuth error bodies', async () => {
    const other = await cloud.google.makeServiceAccountKey({ projectId: 'pullkeeper-test' });
    const cases: Array<[string, string, string | RegExp]> = [
      [
        'signed by another key',
        signServiceAccountAssertion(
          { ...other, client_email: key.client_email, private_key_id: key.private_key_id },
          {
            scope: CLOUD_PLATFORM_SCOPE,
          },
        ),
        'Invalid JWT Signature.',
      ],
      [
        'wrong aud',
        signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE, aud: 'https://example.test/token' }),
        /Failed audience check/,
      ],
      [
        'longer than an hour',
        signServiceAccountAssertion(key, {
          scope: CLOUD_PLATFORM_SCOPE,
          iat: nowSec(),
          exp: nowSec() + 3601,
        }),
        /short-lived token/,
      ],
      [
        'expired',
        signServiceAccountAssertion(key, {
          scope: CLOUD_PLATFORM_SCOPE,
          iat: nowSec() - 4000,
          exp: nowSec() - 400,
        }),
        /short-lived token/,
      ],
      [
        'unknown account',
        signServiceAccountAssertion(
          { ...key, client_email: 'nobody@x.iam.gserviceaccount.com' },
          { scope: CLOUD_PLATFORM_SCOPE },
        ),
        /account not found/,
      ],
    ];
    for (const [name, assertion, desc] of cases) {
      const r = await tokenReq(assertion);
      assert.equal(r.status, 400, name);
      assert.equal(r.body.error, 'invalid_grant', name);
      if (typeof desc === 'string') assert.equal(r.body.error_description, desc, name);
      else assert.match(str(r.body.error_description), desc, name);
    }
    const noScope = await tokenReq(signServiceAccountAssertion(key));
    assert.equal(noScope.body.error, 'invalid_scope');
    const grant = await tokenReq(
      signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE }),
      'client_credentials',
    );
    assert.equal(grant.body.error, 'unsupported_grant_type');
    // a disabled key stops working
    const k3 = await cloud.google.makeServiceAccountKey({
      projectId: 'pullkeeper-test',
      clientEmail: key.client_email,
    });
    assert.equal(
      (await tokenReq(signServiceAccountAssertion(k3, { scope: CLOUD_PLATFORM_SCOPE }))).status,
      200,
    );
    cloud.google.disableKey(k3.private_key_id);
    const disabled = await tokenReq(signServiceAccountAssertion(k3, { scope: CLOUD_PLATFORM_SCOPE }));
    assert.equal(disabled.body.error, 'invalid_grant');
  });

  test('failure injection: 500, 429 + Retry-After, slow, bad-credentials', async () => {
    const g = cloud.google;
    const ok = () => tokenReq(signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE }));
    const n = g.minted().length;
    g.failNext(2, 500);
    assert.equal((await ok()).status, 500);
    const second = await ok();
    assert.equal(second.status, 500);
    assert.equal(second.body.error, 'internal_failure');
    g.failNext(1, 429, { retryAfterSeconds: 3 });
    const r429 = await ok();
    assert.equal(r429.status, 429);
    assert.equal(r429.headers.get('retry-after'), '3');
    assert.equal(r429.body.error, 'rate_limit_exceeded');
    g.failNext(1, 'bad-credentials');
    const bad = await ok();
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
    assert.equal(g.minted().length, n, 'nothing minted by failed requests');
    g.failNext(1, 'slow', { delayMs: 2000 });
    await assert.rejects(
      post(key.token_uri, { grant_type: 'x' }, AbortSignal.timeout(200)),
      (e: Error) => e.name === 'TimeoutError' || e.name === 'AbortError',
    );
    assert.equal((await ok()).status, 200);
    assert.equal(g.minted().length, n + 1);
  });
});

describe('onMint and TLS mode', () => {
  test('onMint fires for both fakes and can be removed', async () => {
    const seen: string[] = [];
    const off = cloud.onMint((m) => seen.push(m.kind));
    const key = await cloud.google.makeServiceAccountKey({ projectId: 'p-onmint' });
    await post(key.token_uri, {
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE }),
    });
    const a = cloud.acr.info;
    const aad = await post(a.tokenEndpoint, {
      client_id: a.clientId,
      client_secret: a.clientSecret,
      scope: ACR_SCOPE,
      grant_type: 'client_credentials',
    });
    await post(a.exchangeEndpoint, {
      grant_type: 'access_token',
      service: a.loginServer,
      tenant: a.tenantId,
      access_token: str(aad.body.access_token),
    });
    off();
    await post(key.token_uri, {
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: signServiceAccountAssertion(key, { scope: CLOUD_PLATFORM_SCOPE }),
    });
    assert.deepEqual(seen, ['google', 'acr']);
    const all = cloud.minted();
    assert.ok(
      all.every((m, i) => i === 0 || m.issuedAt >= all[i - 1]!.issuedAt),
      'minted() is in issue order',
    );
  });

  test('https with a self-signed certificate (for MSAL, which refuses http authorities)', async () => {
    const t0 = Date.now();
    const fake = await startEntraAcr({ dir, tls: true, service: 'pullkeeper.azurecr.io' });
    const ms = Date.now() - t0;
    process.stdout.write(`# entra-acr with tls ready in ${ms} ms\n`);
    try {
      assert.ok(fake.info.baseUrl.startsWith('https://127.0.0.1:'));
      assert.equal(fake.info.loginServer, 'pullkeeper.azurecr.io');
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(fake.info.openidConfiguration, { ca: fake.info.caCertPem }, (res) => {
          let s = '';
          res.on('data', (d) => {
            s += d;
          });
          res.on('end', () => resolve(s));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal((JSON.parse(body) as JsonObject).token_endpoint, fake.info.tokenEndpoint);
      // without the CA the certificate is rejected
      await assert.rejects(fetch(fake.info.openidConfiguration));
    } finally {
      await fake.stop();
    }
  });
});
