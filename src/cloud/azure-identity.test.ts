/**
 * @azure/identity with its own retries off: a throttled Entra ID token
 * endpoint (the harness's Entra fake, over TLS as MSAL requires) sees one call
 * per pullkeeper attempt, never the SDK's retries under ours.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { type EntraAcrFake, startEntraAcr } from '../../test/harness/cloud/entra-acr.js';
import { createSecretResolver } from '../config/secret-ref.js';
import { acrProvider } from '../providers/acr.js';
import { azureCredential } from './azure-identity.js';

let fake: EntraAcrFake;
let dir: string;
const tokenCalls = () => fake.requests().filter((r) => r.endpoint === 'aad-token').length;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pk-azure-identity-'));
  fake = await startEntraAcr({ tls: true, dir });
  setDefaultCACertificates([...getCACertificates('default'), fake.info.caCertPem!]);
});
after(async () => {
  await fake?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('azureCredential: the SDK does not retry', () => {
  test('a throttled token endpoint is called once per getToken', async () => {
    const i = fake.info;
    const cred = await azureCredential(
      {
        tenantId: i.tenantId,
        authorityHost: i.authorityHost,
        credential: { clientId: i.clientId, clientSecret: { value: i.clientSecret } },
      },
      createSecretResolver(),
    );
    const before = tokenCalls();
    fake.failNext(10, 429, { endpoint: 'aad-token', retryAfterSeconds: 0 });
    await assert.rejects(cred.getToken('https://containerregistry.azure.net/.default'));
    assert.equal(tokenCalls() - before, 1, 'the SDK retried (it would try 4 times by default)');
    fake.clearFailures();
  });

  test('the acr provider against a throttled Entra ID: at most our 3 attempts (in fact one), then a clear error', async () => {
    const i = fake.info;
    const cfg = {
      name: 'acr',
      kind: 'acr' as const,
      loginServer: i.loginServer,
      tenantId: i.tenantId,
      authorityHost: i.authorityHost,
      exchangeEndpoint: i.exchangeEndpoint,
      credential: { clientId: i.clientId, clientSecret: { value: i.clientSecret } },
      audience: 'acr' as const,
    };
    const ctx = {
      secrets: createSecretResolver(),
      signal: AbortSignal.timeout(60_000),
      timeoutMs: 20_000,
      now: () => new Date(),
    };
    const before = tokenCalls();
    fake.failNext(20, 429, { endpoint: 'aad-token', retryAfterSeconds: 0 });
    await assert.rejects(acrProvider.mint(cfg as never, ctx), (e) => {
      assert.match((e as Error).message, /registry acr: Entra ID token for tenant .* failed: AADSTS50196/);
      assert.doesNotMatch((e as Error).message, new RegExp(i.clientSecret));
      return true;
    });
    // At most our 3 attempts; in fact one: MSAL itself refuses to repeat a request
    // that was answered 429/5xx for its Retry-After (60 s when absent), locally.
    const calls = tokenCalls() - before;
    assert.ok(calls >= 1 && calls <= 3, `${calls} calls to the throttled endpoint`);
    fake.clearFailures();
    const before2 = tokenCalls();
    const minted = await acrProvider.mint(cfg as never, ctx);
    assert.equal(tokenCalls() - before2, 1);
    assert.ok(fake.accepts(minted.username, minted.password));
  });
});
