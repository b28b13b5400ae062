/**
 * Google token calls honour the AbortSignal: google-auth-library takes none,
 * so they are raced against it. A token endpoint that never answers (a tiny
 * in-process server named by the key's token_uri) must not hold a caller that
 * gave up, nor an attempt past its timeout.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createSecretResolver } from '../config/secret-ref.js';
import { garProvider } from '../providers/gar.js';
import { CLOUD_PLATFORM_SCOPE, cachedGoogleToken, googleClient, googleToken } from './google-auth.js';

let tokenUri: string;
let seen = 0;
const server = createServer((req) => {
  seen++;
  req.resume(); // and never answer
});
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = () =>
  JSON.stringify({
    type: 'service_account',
    client_email: 'puller@test-project.iam.gserviceaccount.com',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    private_key_id: 'k1',
    token_uri: tokenUri,
  });

before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  tokenUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function waitForRequest(n: number): Promise<void> {
  while (seen < n) await new Promise((r) => setTimeout(r, 5));
}

describe('Google token calls and the AbortSignal', () => {
  test('googleToken (a key: a JWT grant) rejects at once when the caller aborts', async () => {
    const g = await googleClient({ what: 'test', scopes: [CLOUD_PLATFORM_SCOPE], serviceAccountKey: key() });
    const ac = new AbortController();
    const before = seen;
    const p = googleToken(g, ac.signal);
    await waitForRequest(before + 1);
    ac.abort(new Error('cancelled'));
    await assert.rejects(p, /cancelled/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  test('cachedGoogleToken (per request, the GKE connector) rejects at once when the caller aborts', async () => {
    const g = await googleClient({ what: 'test', scopes: [CLOUD_PLATFORM_SCOPE], serviceAccountKey: key() });
    const ac = new AbortController();
    const before = seen;
    const p = cachedGoogleToken(g.client, ac.signal);
    await waitForRequest(before + 1);
    ac.abort(new Error('cancelled'));
    await assert.rejects(p, /cancelled/);
  });

  test('the gar provider: each attempt times out, three attempts, then a "timed out" error', async () => {
    const before = seen;
    const started = performance.now();
    await assert.rejects(
      garProvider.mint(
        {
          name: 'gar',
          kind: 'gar',
          hosts: ['europe-docker.pkg.dev'],
          serviceAccountKey: { value: key() },
        } as never,
        {
          secrets: createSecretResolver(),
          signal: AbortSignal.timeout(120_000),
          timeoutMs: 200,
          now: () => new Date(),
        },
      ),
      (e) => /registry gar: Google access token failed: timed out/.test((e as Error).message),
    );
    assert.equal(seen - before, 3);
    // Far below the caller's 120 s: the attempts did end (bound generous: the CPU is shared).
    assert.ok(performance.now() - started < 60_000);
  });
});
