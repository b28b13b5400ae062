/**
 * Providers end to end: every kind mints a credential that really logs in to
 * the harness registry (token mode: the registry accepts exactly what the
 * cloud fakes mint), one ECR call serves many registries, faults are retried
 * and reported, the last good credential is kept, and no secret reaches any
 * output.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { CredentialCache, type MintOptions, type MintResult, mintCredentials } from '../../src/app/mint.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfigInput } from '../../src/config/schema.js';
import { createSecretResolver } from '../../src/config/secret-ref.js';
import { ecrHost } from '../../src/providers/ecr.js';
import { verifyCredential } from '../../src/providers/verify.js';
import { signJwt } from '../harness/cloud/common.js';
import { startOidcIssuer } from '../harness/cloud/oidc-issuer.js';
import { type Harness, MOTO_ECR_PASSWORD, startHarness } from '../harness/index.js';

let h: Harness;
/** Requests that reached moto's ECR GetAuthorizationToken, counted at a proxy in front of moto. */
let ecrCalls = 0;
let ecrFailNext = 0;
/** AssumeRole calls that reached moto's STS through the proxy. */
let assumeRoleCalls = 0;
/** ECR Public tokens issued by the proxy (moto has no ECR Public; the answer follows the API reference). */
const ecrPublicTokens: string[] = [];
let proxyUrl = '';
let closeProxy: () => void = () => {};
const secretsSeen = new Set<string>();
const STATIC_USER = 'ocir-tenancy/ci-user';
const STATIC_PASS = 'static-pass-0c1f9e2b';

function cfg(registries: PullkeeperConfigInput['registries']) {
  return parseConfig({ registries });
}

function remember(res: MintResult) {
  for (const c of res.credentials.values()) secretsSeen.add(c.password);
}

function assertNoSecrets(text: string) {
  for (const s of [...secretsSeen, STATIC_PASS, MOTO_ECR_PASSWORD, h.cloud!.acr.info.clientSecret])
    assert.ok(!text.includes(s), 'a secret value appeared in output');
}

before(async () => {
  h = await startHarness({ registry: { auth: 'token' }, cloud: { acr: { tls: true } } });
  // Trust the Entra fake's self-signed certificate, as NODE_EXTRA_CA_CERTS would in production.
  setDefaultCACertificates([...getCACertificates('default'), h.cloud!.acr.info.caCertPem!]);
  await h.registry!.allow(STATIC_USER, STATIC_PASS);
  const moto = new URL(h.cloud!.moto!.info.endpoint);
  const srv = createServer((req, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    if (target.endsWith('.GetAuthorizationToken')) {
      ecrCalls++;
      if (ecrFailNext > 0) {
        ecrFailNext--;
        req.resume();
        res.writeHead(500, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'ServerException', message: 'injected' }));
        return;
      }
    }
    if (target === 'SpencerFrontendService.GetAuthorizationToken') {
      // ECR Public API reference, GetAuthorizationToken: one authorizationData object, no proxyEndpoint.
      req.resume();
      const pw = `ecr-public-${ecrPublicTokens.length}-${Date.now().toString(36)}`;
      ecrPublicTokens.push(pw);
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify({
          authorizationData: {
            authorizationToken: Buffer.from(`AWS:${pw}`).toString('base64'),
            expiresAt: Math.floor(Date.now() / 1000) + 12 * 3600 - 60,
          },
        }),
      );
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (/(^|&)Action=AssumeRole(&|$)/.test(body.toString('latin1'))) assumeRoleCalls++;
      const up = httpRequest(
        { host: moto.hostname, port: moto.port, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.end(body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  proxyUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  closeProxy = () => {
    srv.closeAllConnections();
    srv.close();
  };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: h.cloud!.moto!.info.endpoint,
  });
});
after(async () => {
  closeProxy();
  await h?.stop();
});

const registryUrl = () => h.registry!.info.url;

/** Verification once the registry accepts what the fakes minted (its allow-list updates asynchronously). */
const verifyAfterSync: NonNullable<MintOptions['verify']> = async (c, r, s) => {
  await h.credentialsSynced();
  return verifyCredential(c, r, { signal: s });
};

function ecrRegistry(name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    kind: 'ecr' as const,
    region: 'us-east-1',
    endpoint: proxyUrl,
    registryIds: ['123456789012'],
    verifyEndpoint: registryUrl(),
    ...extra,
  };
}

describe('each kind mints a credential that logs in to the real registry', () => {
  test('ecr: moto token, expiry from the documented 12 h (moto says 2015), hosts built per account', async () => {
    const res = await mintCredentials(cfg([ecrRegistry('ecr')]), { cache: new CredentialCache() });
    remember(res);
    const r = res.registries[0]!;
    assert.equal(r.status, 'minted', r.error);
    assert.equal(r.verified, true);
    assert.deepEqual(r.hosts, [ecrHost('123456789012', 'us-east-1')]);
    const cred = res.credentials.get('ecr')!;
    assert.equal(cred.username, 'AWS');
    const life = new Date(r.expiresAt!).getTime() - cred.issuedAt.getTime();
    assert.equal(life, 12 * 3600 * 1000);
    assert.match(r.notes?.join() ?? '', /not in the future; assuming the documented 12 h/);
  });

  test('acr: Entra token (client secret, @azure/identity over TLS) exchanged for a refresh token; expiry from its exp', async () => {
    const acr = h.cloud!.acr.info;
    const config = cfg([
      {
        name: 'acr',
        kind: 'acr',
        loginServer: acr.loginServer,
        tenantId: acr.tenantId,
        authorityHost: acr.authorityHost,
        exchangeEndpoint: acr.exchangeEndpoint,
        credential: { clientId: acr.clientId, clientSecret: { value: acr.clientSecret } },
        verifyEndpoint: registryUrl(),
      },
    ]);
    const minted = h.cloud!.acr.minted().length;
    const res = await mintCredentials(config, {
      cache: new CredentialCache(),
      verify: verifyAfterSync,
    });
    remember(res);
    const r = res.registries[0]!;
    assert.equal(r.status, 'minted', r.error);
    assert.equal(r.verified, true);
    assert.equal(h.cloud!.acr.minted().length, minted + 1);
    const rec = h.cloud!.acr.minted().at(-1)!;
    const cred = res.credentials.get('acr')!;
    assert.equal(cred.username, '00000000-0000-0000-0000-000000000000');
    assert.equal(cred.password, rec.password);
    // The refresh token's own exp (the fake: 3 h), not an assumption.
    assert.equal(Math.round((cred.expiresAt!.getTime() - cred.issuedAt.getTime()) / 60_000), 180);
    assert.equal(r.notes, undefined);
  });

  test('acr: workload identity (a federated token from a file) instead of a secret; a token for another subject fails with AADSTS70021', async () => {
    const acr = h.cloud!.acr.info;
    const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const issuer = 'https://oidc.pullkeeper.test/cluster';
    const subject = 'system:serviceaccount:pullkeeper:refresher';
    const client = h.cloud!.acr.addClient({ federated: [{ issuer, subject, keys: [idp.publicKey] }] });
    const now = Math.floor(Date.now() / 1000);
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'pk-wi-')), 'azure-identity-token');
    const writeToken = (sub: string) =>
      writeFileSync(
        tokenFile,
        signJwt(
          { iss: issuer, sub, aud: ['api://AzureADTokenExchange'], iat: now, nbf: now, exp: now + 600 },
          idp.privateKey,
        ),
      );
    const config = cfg([
      {
        name: 'acr-wi',
        kind: 'acr',
        loginServer: acr.loginServer,
        tenantId: acr.tenantId,
        authorityHost: acr.authorityHost,
        exchangeEndpoint: acr.exchangeEndpoint,
        credential: { clientId: client.clientId, federatedToken: { fromFile: tokenFile } },
        verify: false,
      },
    ]);
    writeToken(subject);
    const ok = await mintCredentials(config, { cache: new CredentialCache() });
    remember(ok);
    assert.equal(ok.registries[0]!.status, 'minted', ok.registries[0]!.error);
    writeToken('system:serviceaccount:other:sa');
    const bad = await mintCredentials(config, { cache: new CredentialCache() });
    assert.equal(bad.registries[0]!.status, 'failed');
    assert.match(bad.registries[0]!.error!, /AADSTS70021: no federated credential matches/);
  });

  test('acr: checkRepositories asks the catalog through @azure/container-registry; a missing one names it', async () => {
    const acr = h.cloud!.acr.info;
    h.cloud!.acr.setRepositories(['team-a/api', 'team-a/web', 'team-b/db']);
    const reg = (check: string[]) =>
      cfg([
        {
          name: 'acr-check',
          kind: 'acr',
          loginServer: acr.loginServer,
          tenantId: acr.tenantId,
          authorityHost: acr.authorityHost,
          exchangeEndpoint: acr.exchangeEndpoint,
          credential: { clientId: acr.clientId, clientSecret: { value: acr.clientSecret } },
          checkRepositories: check,
          verify: false,
        },
      ]);
    const ok = await mintCredentials(reg(['team-a/api', 'team-b/db']), { cache: new CredentialCache() });
    remember(ok);
    assert.equal(ok.registries[0]!.status, 'minted', ok.registries[0]!.error);
    const catalogCalls = h.cloud!.acr.requests().filter((r) => r.path === '/acr/v1/_catalog');
    assert.ok(catalogCalls.length >= 2, 'the SDK met the challenge, then listed with a token');
    const missing = await mintCredentials(reg(['team-a/api', 'team-c/secret']), {
      cache: new CredentialCache(),
    });
    assert.equal(missing.registries[0]!.status, 'failed');
    assert.match(
      missing.registries[0]!.error!,
      /registry acr-check: repositories not visible to this identity: team-c\/secret;/,
    );
    assert.ok(!missing.credentials.has('acr-check'));
  });

  test('gar: service-account key with its own token_uri; username oauth2accesstoken', async () => {
    const key = await h.cloud!.google.makeServiceAccountKey({ projectId: 'pk-test' });
    const config = cfg([
      {
        name: 'gar',
        kind: 'gar',
        hosts: [h.registry!.info.host],
        serviceAccountKey: { value: JSON.stringify(key) },
      },
    ]);
    const res = await mintCredentials(config, {
      cache: new CredentialCache(),
      verify: verifyAfterSync,
    });
    remember(res);
    const r = res.registries[0]!;
    assert.equal(r.status, 'minted', r.error);
    assert.equal(r.verified, true);
    assert.equal(res.credentials.get('gar')!.username, 'oauth2accesstoken');
    const life = new Date(r.expiresAt!).getTime() - res.credentials.get('gar')!.issuedAt.getTime();
    assert.ok(life > 3500_000 && life <= 3600_000, `about 1 h, got ${life} ms`);
  });

  test('gar: workload identity federation (external_account): OIDC token file -> STS -> impersonation; logs in; refusals say what to fix', async () => {
    const idp = await startOidcIssuer();
    try {
      const g = h.cloud!.google;
      const sa = 'pullkeeper-wif@pk-test.iam.gserviceaccount.com';
      const sub = 'repo:acme/platform:ref:refs/heads/main';
      g.addServiceAccount(sa);
      const audience = g.addWorkloadIdentityProvider({
        projectNumber: '123456789012',
        pool: 'ci',
        provider: 'oidc',
        issuer: idp.info.issuer,
        jwksUri: idp.info.jwksUri,
        serviceAccounts: { [sa]: [sub] },
      });
      const dir = mkdtempSync(join(tmpdir(), 'pk-wif-'));
      const tokenFile = join(dir, 'oidc-token');
      const credentialConfig = (o: { audience?: string } = {}) => ({
        // What `gcloud iam workload-identity-pools create-cred-config --credential-source-file` writes.
        type: 'external_account',
        audience: o.audience ?? audience,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: `${g.info.baseUrl}/v1/token`,
        service_account_impersonation_url: `${g.info.baseUrl}/v1/projects/-/serviceAccounts/${sa}:generateAccessToken`,
        credential_source: { file: tokenFile },
      });
      const mintWith = async (name: string, conf: object, subject: string) => {
        writeFileSync(tokenFile, await idp.sign({ sub: subject, aud: `https:${audience}` }, { ttlSec: 600 }));
        const res = await mintCredentials(
          cfg([
            {
              name,
              kind: 'gar',
              hosts: [h.registry!.info.host],
              credentialConfig: { value: JSON.stringify(conf) },
            },
          ]),
          { cache: new CredentialCache(), verify: verifyAfterSync },
        );
        remember(res);
        return res;
      };

      const ok = await mintWith('gar-wif', credentialConfig(), sub);
      const r = ok.registries[0]!;
      assert.equal(r.status, 'minted', r.error);
      assert.equal(r.verified, true, 'the impersonated token logs in to the registry');
      const cred = ok.credentials.get('gar-wif')!;
      assert.equal(cred.username, 'oauth2accesstoken');
      assert.equal(g.tokenInfo(cred.password)?.email, sa, 'a token of the impersonated service account');
      const life = new Date(r.expiresAt!).getTime() - cred.issuedAt.getTime();
      assert.ok(life > 3500_000 && life <= 3601_000, `about 1 h (expireTime), got ${life} ms`);
      const paths = g.requests().map((x) => `${x.method} ${x.path}`);
      assert.ok(paths.includes('POST /v1/token'), JSON.stringify(paths));
      assert.ok(paths.includes(`POST /v1/projects/-/serviceAccounts/${sa}:generateAccessToken`));

      // A subject the service account does not trust: impersonation refused, with the IAM fix.
      const denied = await mintWith(
        'gar-wif-denied',
        credentialConfig(),
        'repo:acme/other:ref:refs/heads/main',
      );
      assert.equal(denied.registries[0]!.status, 'failed');
      assert.match(
        denied.registries[0]!.error!,
        /service account impersonation refused \(PERMISSION_DENIED: .*\); grant the federated principal roles\/iam\.workloadIdentityUser/,
      );
      // A provider that does not exist: the STS says invalid_grant, and the message points at the provider.
      const wrong = await mintWith(
        'gar-wif-wrong',
        credentialConfig({ audience: audience.replace('/providers/oidc', '/providers/nope') }),
        sub,
      );
      assert.equal(wrong.registries[0]!.status, 'failed');
      assert.match(
        wrong.registries[0]!.error!,
        /invalid_grant from the token exchange \(STS\): .*check the workload identity provider/,
      );
      // A config that would send the subject token over plain http to a remote host: refused before any call.
      const before = g.requests().length;
      const leaky = await mintWith(
        'gar-wif-http',
        { ...credentialConfig(), token_url: 'http://sts.example.test/v1/token' },
        sub,
      );
      assert.match(
        leaky.registries[0]!.error!,
        /token_url must be https \(plain http only to a loopback address\)/,
      );
      assert.equal(g.requests().length, before);
      assertNoSecrets(JSON.stringify([ok.registries, denied.registries, wrong.registries, leaky.registries]));
    } finally {
      await idp.stop();
    }
  });

  test('gar: checkRepositories through @google-cloud/artifact-registry (REST); absent and forbidden ones named', async () => {
    const g = h.cloud!.google;
    const key = await g.makeServiceAccountKey({
      projectId: 'pk-test',
      clientEmail: 'reader@pk-test.iam.gserviceaccount.com',
    });
    g.addRepository('projects/pk-test/locations/us/repositories/images');
    g.addRepository('projects/pk-test/locations/us/repositories/private', [
      'someone-else@pk-test.iam.gserviceaccount.com',
    ]);
    const reg = (repo: string) =>
      cfg([
        {
          name: 'gar-check',
          kind: 'gar',
          hosts: ['us-docker.pkg.dev'],
          serviceAccountKey: { value: JSON.stringify(key) },
          checkRepositories: [`projects/pk-test/locations/us/repositories/${repo}`],
          apiEndpoint: g.info.baseUrl,
          verify: false,
        },
      ]);
    const ok = await mintCredentials(reg('images'), { cache: new CredentialCache() });
    remember(ok);
    assert.equal(ok.registries[0]!.status, 'minted', ok.registries[0]!.error);
    assert.ok(g.requests().some((r) => r.endpoint === 'repositories.get' && r.status === 200));
    const absent = await mintCredentials(reg('nope'), { cache: new CredentialCache() });
    assert.match(
      absent.registries[0]!.error!,
      /registry gar-check: repository projects\/pk-test\/locations\/us\/repositories\/nope: not found/,
    );
    const denied = await mintCredentials(reg('private'), { cache: new CredentialCache() });
    assert.match(
      denied.registries[0]!.error!,
      /permission denied: grant the service account roles\/artifactregistry.reader/,
    );
    assert.ok(!denied.credentials.has('gar-check'));
  });

  test('static and dockerconfig: values from references log in; a wrong one is caught and not published', async () => {
    process.env.PK_TEST_STATIC = STATIC_PASS;
    const dockerCfg = JSON.stringify({
      auths: { [h.registry!.info.host]: { username: STATIC_USER, password: STATIC_PASS } },
    });
    const config = cfg([
      {
        name: 'ocir',
        kind: 'static',
        server: h.registry!.info.host,
        username: { value: STATIC_USER },
        password: { fromEnv: 'PK_TEST_STATIC' },
      },
      { name: 'legacy', kind: 'dockerconfig', source: { value: dockerCfg }, verify: true },
      {
        name: 'wrong',
        kind: 'static',
        server: h.registry!.info.host,
        username: { value: STATIC_USER },
        password: { value: 'not-the-password' },
      },
    ]);
    const res = await mintCredentials(config, { cache: new CredentialCache() });
    const by = Object.fromEntries(res.registries.map((r) => [r.name, r]));
    assert.equal(by.ocir!.status, 'minted', by.ocir!.error);
    assert.equal(by.ocir!.verified, true);
    assert.equal(by.ocir!.expiresAt, null);
    assert.equal(by.legacy!.status, 'minted', by.legacy!.error);
    assert.equal(by.legacy!.verified, true);
    assert.equal(by.wrong!.status, 'failed');
    assert.equal(by.wrong!.verified, false);
    assert.match(by.wrong!.error!, /refused the credential/);
    assert.ok(!res.credentials.has('wrong'), 'a credential that failed verification is never published');
    assertNoSecrets(JSON.stringify(res.registries));
    assert.ok(!JSON.stringify(res.registries).includes('not-the-password'));
  });
});

describe('ECR variants', () => {
  test('AssumeRole per registry (moto STS), then the token with the role: a separate identity, one call each', async () => {
    const roleArn = 'arn:aws:iam::123456789012:role/pull';
    const config = cfg([
      ecrRegistry('ecr-role', { roleArn, stsEndpoint: proxyUrl }),
      ecrRegistry('ecr-role-2', { roleArn, stsEndpoint: proxyUrl, registryIds: ['210987654321'] }),
      ecrRegistry('ecr-own'),
    ]);
    const roles = assumeRoleCalls;
    const calls = ecrCalls;
    const res = await mintCredentials(config, { cache: new CredentialCache() });
    remember(res);
    for (const r of res.registries) assert.equal(r.status, 'minted', r.error);
    assert.equal(assumeRoleCalls - roles, 1, 'one AssumeRole for the two registries sharing the role');
    assert.equal(ecrCalls - calls, 2, 'one token per identity: the role, and the function itself');
    assert.match(res.credentials.get('ecr-role')!.source, /as arn:aws:iam::123456789012:role\/pull/);
  });

  test('ECR Public: public.ecr.aws, with the expiry of the answer', async () => {
    const res = await mintCredentials(
      cfg([ecrRegistry('pub', { public: true, verify: false, registryIds: undefined })]),
      {
        cache: new CredentialCache(),
      },
    );
    const r = res.registries[0]!;
    assert.equal(r.status, 'minted', r.error);
    assert.deepEqual(r.hosts, ['public.ecr.aws']);
    assert.equal(res.credentials.get('pub')!.password, ecrPublicTokens.at(-1));
    assert.equal(r.notes, undefined, 'a future expiresAt is trusted');
    secretsSeen.add(ecrPublicTokens.at(-1)!);
  });
});

describe('one mint per identity, cached until its refresh time', () => {
  test('10 tenants on one ECR identity: one GetAuthorizationToken call per run; a second run in the margin: zero', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `ecr-t${i}`);
    const config = parseConfig({
      clusters: [{ name: 'c', kubeconfig: '/dev/null' }],
      registries: names.map((n, i) => ecrRegistry(n, { registryIds: [String(100000000000 + i)] })),
      tenants: names.map((n) => ({ name: n, namespaces: { names: [n] }, registries: [n] })),
    });
    const cache = new CredentialCache();
    const before = ecrCalls;
    const first = await mintCredentials(config, { cache });
    remember(first);
    assert.equal(ecrCalls - before, 1, 'exactly one call at the endpoint');
    assert.equal(first.mintCalls, 1);
    assert.ok(first.registries.every((r) => r.status === 'minted' && r.verified === true));
    assert.equal(
      new Set(first.registries.map((r) => r.hosts[0])).size,
      10,
      'each registry keyed by its own account host',
    );

    const second = await mintCredentials(config, { cache });
    assert.equal(ecrCalls - before, 1, 'no call on the second run');
    assert.equal(second.mintCalls, 0);
    assert.ok(second.registries.every((r) => r.status === 'cached'));

    // Past the refresh point (half the 12 h lifetime): minted again, once.
    const later = new Date(Date.now() + 7 * 3600 * 1000);
    const third = await mintCredentials(config, { cache, now: () => later });
    assert.equal(ecrCalls - before, 2);
    assert.ok(third.registries.every((r) => r.status === 'minted'));
  });
});

describe('faults: bounded retries, a clear error naming the registry, the last good credential kept', () => {
  const acrConfig = () => {
    const acr = h.cloud!.acr.info;
    return cfg([
      {
        name: 'acr-faults',
        kind: 'acr',
        loginServer: acr.loginServer,
        tenantId: acr.tenantId,
        authorityHost: acr.authorityHost,
        exchangeEndpoint: acr.exchangeEndpoint,
        credential: { clientId: acr.clientId, clientSecret: { value: acr.clientSecret } },
        verify: false,
        timeoutMs: 1500,
      },
    ]);
  };

  test('ECR 5xx once: retried, minted; 5xx on every attempt: failed with the registry named, bounded calls', async () => {
    const config = cfg([ecrRegistry('ecr-5xx', { verify: false })]);
    ecrFailNext = 1;
    let before = ecrCalls;
    const ok = await mintCredentials(config, { cache: new CredentialCache() });
    assert.equal(ok.registries[0]!.status, 'minted', ok.registries[0]!.error);
    assert.equal(ecrCalls - before, 2);
    ecrFailNext = 10;
    before = ecrCalls;
    const bad = await mintCredentials(config, { cache: new CredentialCache() });
    ecrFailNext = 0;
    assert.equal(bad.registries[0]!.status, 'failed');
    assert.match(bad.registries[0]!.error!, /^registry ecr-5xx: /);
    assert.equal(ecrCalls - before, 3, 'three attempts, then it stops');
  });

  test('ACR 429 and 500 are retried; slow beyond the timeout fails as a timeout; bad credentials name the fix', async () => {
    const fake = h.cloud!.acr;
    fake.failNext(1, 429, { endpoint: 'exchange', retryAfterSeconds: 0 });
    fake.failNext(1, 500, { endpoint: 'exchange' });
    const ok = await mintCredentials(acrConfig(), { cache: new CredentialCache() });
    remember(ok);
    assert.equal(ok.registries[0]!.status, 'minted', ok.registries[0]!.error);

    fake.failNext(3, 'slow', { endpoint: 'exchange', delayMs: 4000 });
    const slow = await mintCredentials(acrConfig(), { cache: new CredentialCache() });
    fake.clearFailures();
    assert.equal(slow.registries[0]!.status, 'failed');
    assert.match(slow.registries[0]!.error!, /registry acr-faults: .*timed out/);

    fake.failNext(1, 'bad-credentials', { endpoint: 'aad-token' });
    const bad = await mintCredentials(acrConfig(), { cache: new CredentialCache() });
    fake.clearFailures();
    assert.equal(bad.registries[0]!.status, 'failed');
    assert.match(
      bad.registries[0]!.error!,
      /registry acr-faults: Entra ID token .* failed: AADSTS7000215: invalid client secret/,
    );
    assertNoSecrets(JSON.stringify([ok.registries, slow.registries, bad.registries]));
  });

  test('a failed re-mint keeps the last good credential cached; the next run uses it', async () => {
    const cache = new CredentialCache();
    const first = await mintCredentials(acrConfig(), { cache });
    remember(first);
    const good = first.credentials.get('acr-faults')!;
    h.cloud!.acr.failNext(5, 500, { endpoint: 'exchange' });
    const failed = await mintCredentials(acrConfig(), { cache, force: true });
    h.cloud!.acr.clearFailures();
    assert.equal(failed.registries[0]!.status, 'failed');
    assert.ok(!failed.credentials.has('acr-faults'), 'nothing to publish from a failed mint');
    const next = await mintCredentials(acrConfig(), { cache });
    assert.equal(next.registries[0]!.status, 'cached');
    assert.equal(next.credentials.get('acr-faults')!.password, good.password);
  });

  test('google: a disabled key is invalid_grant with the fix', async () => {
    const key = await h.cloud!.google.makeServiceAccountKey({
      projectId: 'pk-test',
      clientEmail: 'disabled@pk-test.iam.gserviceaccount.com',
    });
    h.cloud!.google.disableKey(key.private_key_id);
    const res = await mintCredentials(
      cfg([
        {
          name: 'gar-off',
          kind: 'gar',
          hosts: ['us-docker.pkg.dev'],
          serviceAccountKey: { value: JSON.stringify(key) },
          verify: false,
        },
      ]),
      { cache: new CredentialCache() },
    );
    assert.equal(res.registries[0]!.status, 'failed');
    assert.match(res.registries[0]!.error!, /registry gar-off: Google access token failed: invalid_grant/);
    assert.ok(!res.registries[0]!.error!.includes(key.private_key.slice(40, 80)));
  });
});

describe('secret references against moto SSM and Secrets Manager', () => {
  test('fromSsm and fromSecretsManager (JSON key) resolve; a missing one names the reference, not a value', async () => {
    const { SSMClient, PutParameterCommand } = await import('@aws-sdk/client-ssm');
    const { SecretsManagerClient, CreateSecretCommand } = await import('@aws-sdk/client-secrets-manager');
    const ssm = new SSMClient({});
    const sm = new SecretsManagerClient({});
    await ssm.send(
      new PutParameterCommand({
        Name: '/pullkeeper/ocir-token',
        Value: STATIC_PASS,
        Type: 'SecureString',
        Overwrite: true,
      }),
    );
    await sm.send(
      new CreateSecretCommand({
        Name: 'pk-ocir',
        SecretString: JSON.stringify({ username: STATIC_USER, password: STATIC_PASS }),
      }),
    );
    ssm.destroy();
    sm.destroy();
    const config = cfg([
      {
        name: 'from-ssm',
        kind: 'static',
        server: h.registry!.info.host,
        username: { value: STATIC_USER },
        password: { fromSsm: '/pullkeeper/ocir-token' },
      },
      {
        name: 'from-sm',
        kind: 'static',
        server: h.registry!.info.host,
        username: { fromSecretsManager: 'pk-ocir', key: 'username' },
        password: { fromSecretsManager: 'pk-ocir', key: 'password' },
      },
      {
        name: 'missing',
        kind: 'static',
        server: 'x.io',
        username: { value: 'u' },
        password: { fromSsm: '/pullkeeper/nope' },
        verify: false,
      },
    ]);
    const res = await mintCredentials(config, {
      cache: new CredentialCache(),
      secrets: createSecretResolver(),
    });
    const by = Object.fromEntries(res.registries.map((r) => [r.name, r]));
    assert.equal(by['from-ssm']!.status, 'minted', by['from-ssm']!.error);
    assert.equal(by['from-ssm']!.verified, true);
    assert.equal(by['from-sm']!.status, 'minted', by['from-sm']!.error);
    assert.equal(by.missing!.status, 'failed');
    assert.equal(
      by.missing!.error,
      'secret fromSsm /pullkeeper/nope: not found: check the name and the region',
    );
    assertNoSecrets(JSON.stringify(res.registries));
  });
});

describe('pullkeeper mint (CLI)', () => {
  test('--json report, exit 1 when one failed, --registry selects; no secret in stdout or stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pk-mint-cli-'));
    const file = join(dir, 'pullkeeper.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        registries: [
          ecrRegistry('prod-ecr'),
          {
            name: 'ocir',
            kind: 'static',
            server: h.registry!.info.host,
            username: { value: STATIC_USER },
            password: { value: STATIC_PASS },
          },
          {
            name: 'broken',
            kind: 'static',
            server: h.registry!.info.host,
            username: { value: STATIC_USER },
            password: { value: 'wrong-password-1' },
          },
        ],
      }),
    );
    const io = bufferIO();
    const code = await main(['mint', '--config', file, '--json'], io);
    const out = io.stdout.join('\n');
    assert.equal(code, 1, io.stderr.join('\n'));
    const report = JSON.parse(out) as { registries: Array<Record<string, unknown>> };
    assert.deepEqual(
      report.registries.map((r) => [r.name, r.status, r.verified]),
      [
        ['prod-ecr', report.registries[0]!.status, true],
        ['ocir', 'minted', true],
        ['broken', 'failed', false],
      ],
    );
    assert.ok(['minted', 'cached'].includes(String(report.registries[0]!.status)));
    for (const r of report.registries)
      assert.deepEqual(Object.keys(r).slice(0, 6), [
        'name',
        'kind',
        'hosts',
        'status',
        'expiresAt',
        'verified',
      ]);
    assertNoSecrets(out + io.stderr.join('\n'));
    assert.ok(!out.includes('wrong-password-1'));

    const io2 = bufferIO();
    assert.equal(await main(['mint', '--config', file, '--registry', 'ocir'], io2), 0);
    assert.match(io2.stdout[0]!, /^REGISTRY\s+KIND\s+STATUS\s+VERIFIED\s+EXPIRES\s+HOSTS$/);
    assert.match(io2.stdout[1]!, /^ocir\s+static\s+minted\s+yes\s+never\s/);
    assertNoSecrets(io2.stdout.join('\n'));

    const io3 = bufferIO();
    writeFileSync(join(dir, 'bad.yaml'), 'registries:\n  - name: x\n    kind: ecr\n    region: mars\n');
    assert.equal(await main(['mint', '--config', join(dir, 'bad.yaml')], io3), 2);
    assert.match(io3.stderr.join('\n'), /registries\[0\]\.region: must be an AWS region/);
  });
});
