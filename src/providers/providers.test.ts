import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { googleReason } from '../cloud/google-auth.js';
import { parseConfig } from '../config/load.js';
import { createSecretResolver } from '../config/secret-ref.js';
import { jwtExpiry } from './acr.js';
import { ecrHost, ecrProvider } from './ecr.js';
import { redactSecrets } from './redact.js';
import { defaultProviders, ProviderRegistry } from './registry.js';
import { TimeoutError, withRetry } from './retry.js';
import { staticProvider } from './static.js';
import type { CredentialProvider } from './types.js';
import { isLoopbackHost, parseChallenge, registryHostOfKey } from './verify.js';

describe('parseChallenge', () => {
  const cases: Array<[string, string | null, ReturnType<typeof parseChallenge>]> = [
    [
      'distribution token',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io' } },
    ],
    [
      'ACR with scope',
      'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io",scope="repository:x:pull"',
      {
        scheme: 'bearer',
        params: {
          realm: 'https://r.azurecr.io/oauth2/token',
          service: 'r.azurecr.io',
          scope: 'repository:x:pull',
        },
      },
    ],
    ['basic', 'Basic realm="Registry Realm"', { scheme: 'basic', params: { realm: 'Registry Realm' } }],
    [
      'scheme case and spaces',
      'bearer  realm = "a" , service=b',
      { scheme: 'bearer', params: { realm: 'a', service: 'b' } },
    ],
    ['escaped quote', 'Basic realm="a \\"b\\""', { scheme: 'basic', params: { realm: 'a "b"' } }],
    ['unknown scheme', 'Negotiate abc', undefined],
    ['absent', null, undefined],
  ];
  for (const [name, header, want] of cases) test(name, () => assert.deepEqual(parseChallenge(header), want));
});

describe('hosts', () => {
  const loop: Array<[string, boolean]> = [
    ['127.0.0.1:5000', true],
    ['127.1.2.3', true],
    ['localhost:5000', true],
    ['[::1]:5000', true],
    ['10.0.0.1:5000', false],
    ['127.0.0.1.example.com', false],
    ['myreg.azurecr.io', false],
  ];
  for (const [h, want] of loop) test(`isLoopbackHost ${h}`, () => assert.equal(isLoopbackHost(h), want));
  const keys: Array<[string, string]> = [
    ['https://index.docker.io/v1/', 'registry-1.docker.io'],
    ['docker.io', 'registry-1.docker.io'],
    ['quay.io/org', 'quay.io'],
    ['http://127.0.0.1:5000', '127.0.0.1:5000'],
    ['123456789012.dkr.ecr.us-west-2.amazonaws.com', '123456789012.dkr.ecr.us-west-2.amazonaws.com'],
  ];
  for (const [k, want] of keys)
    test(`registryHostOfKey ${k}`, () => assert.equal(registryHostOfKey(k), want));
  test('ecrHost: China regions use amazonaws.com.cn', () => {
    assert.equal(ecrHost('123456789012', 'cn-north-1'), '123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn');
    assert.equal(ecrHost('123456789012', 'eu-west-1'), '123456789012.dkr.ecr.eu-west-1.amazonaws.com');
  });
});

describe('provider registry', () => {
  test('a second provider for a kind is refused', () => {
    const r = new ProviderRegistry().register('static', async () => staticProvider as CredentialProvider);
    assert.throws(
      () => r.register('static', async () => staticProvider as CredentialProvider),
      /already registered/,
    );
  });
  test('every kind of the schema has a built-in provider, loaded on first use', async () => {
    const r = defaultProviders();
    assert.deepEqual(r.kinds().sort(), ['acr', 'dockerconfig', 'ecr', 'gar', 'static']);
    assert.equal((await r.get('static')).kind, 'static');
  });
  test('ECR identity: registries differing only in account ids share one mint', () => {
    const c = parseConfig({
      registries: [
        { name: 'a', kind: 'ecr', region: 'us-west-2', registryIds: ['111111111111'] },
        { name: 'b', kind: 'ecr', region: 'us-west-2', registryIds: ['222222222222'] },
        { name: 'c', kind: 'ecr', region: 'us-east-1' },
        { name: 'd', kind: 'ecr', region: 'us-west-2', roleArn: 'arn:aws:iam::333333333333:role/pull' },
      ],
    });
    const keys = c.registries.map((r) => ecrProvider.identityKey(r as never));
    assert.equal(keys[0], keys[1]);
    assert.notEqual(keys[0], keys[2]);
    assert.notEqual(keys[0], keys[3]);
  });
});

describe('static provider', () => {
  const mint = (username: string, password: string) => {
    const cfg = parseConfig({
      registries: [
        {
          name: 's',
          kind: 'static',
          server: 'icr.io',
          username: { value: username },
          password: { value: password },
        },
      ],
    }).registries[0]!;
    return staticProvider.mint(cfg as never, {
      secrets: createSecretResolver({ env: {} }),
      signal: new AbortController().signal,
      timeoutMs: 1000,
      now: () => new Date(),
    });
  };
  test('IBM iamapikey: a trailing newline of a file secret is dropped', async () => {
    const t = await mint('iamapikey', 'key-123\n');
    assert.equal(t.username, 'iamapikey');
    assert.equal(t.password, 'key-123');
  });
  test('a username with ":" is refused (kubelet splits auth at the first ":")', async () => {
    await assert.rejects(mint('a:b', 'p'), /contains ":"/);
  });
  test('an empty password is refused', async () => {
    await assert.rejects(mint('u', ''), /password resolved to an empty value/);
  });
});

describe('secret references', () => {
  test('fromEnv: a missing variable names the variable, not a value', async () => {
    const r = createSecretResolver({ env: { OTHER: 'x' } });
    await assert.rejects(
      r.resolve({ fromEnv: 'ACR_SECRET' }),
      /^SecretRefError: secret fromEnv ACR_SECRET: environment variable ACR_SECRET is not set/,
    );
  });
  test('fromFile: a missing file', async () => {
    await assert.rejects(
      createSecretResolver().resolve({ fromFile: '/nonexistent/key' }),
      /secret fromFile \/nonexistent\/key: no such file/,
    );
  });
  test('each reference is read once per resolver', async () => {
    let reads = 0;
    const env = new Proxy({ K: 'v' } as Record<string, string>, {
      get: (t, p) => {
        reads++;
        return t[p as string];
      },
    });
    const r = createSecretResolver({ env });
    await Promise.all([r.resolve({ fromEnv: 'K' }), r.resolve({ fromEnv: 'K' })]);
    await r.resolve({ fromEnv: 'K' });
    assert.equal(reads, 1);
  });
});

describe('retry', () => {
  const signal = new AbortController().signal;
  test('retries what is retryable, up to the bound', async () => {
    let n = 0;
    await assert.rejects(
      withRetry(
        async () => {
          n++;
          throw new Error('503');
        },
        { timeoutMs: 1000, signal, retryable: () => true, baseMs: 1, attempts: 4 },
      ),
      /503/,
    );
    assert.equal(n, 4);
  });
  test('does not retry what is not retryable', async () => {
    let n = 0;
    await assert.rejects(
      withRetry(
        async () => {
          n++;
          throw new Error('403');
        },
        { timeoutMs: 1000, signal, retryable: () => false },
      ),
      /403/,
    );
    assert.equal(n, 1);
  });
  test('each attempt has its own timeout; the error says timed out', async () => {
    let n = 0;
    const hang = (s: AbortSignal) =>
      new Promise<never>((_, rej) => {
        n++;
        s.addEventListener('abort', () => rej(s.reason));
      });
    await assert.rejects(
      withRetry(hang, { timeoutMs: 20, signal, retryable: () => false, baseMs: 1, attempts: 2 }),
      (e) => e instanceof TimeoutError,
    );
    assert.equal(n, 2);
  });
  test('the caller aborting stops at once', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await assert.rejects(
      withRetry(async () => 1, { timeoutMs: 1000, signal: ac.signal, retryable: () => true }),
      /stop/,
    );
  });
});

describe('redaction and JWT expiry', () => {
  test('redactSecrets removes plain, base64 and URL-encoded forms', () => {
    const s = 'p@ss/word+1';
    const text = `a ${s} b ${Buffer.from(s).toString('base64')} c ${encodeURIComponent(s)}`;
    assert.equal(redactSecrets(text, s), 'a <redacted> b <redacted> c <redacted>');
  });
  test('jwtExpiry reads exp; garbage gives undefined', () => {
    const jwt = `x.${Buffer.from(JSON.stringify({ exp: 1_800_000_000 })).toString('base64url')}.y`;
    assert.equal(jwtExpiry(jwt)?.toISOString(), new Date(1_800_000_000_000).toISOString());
    assert.equal(jwtExpiry('not-a-jwt'), undefined);
    assert.equal(jwtExpiry('a.!!!.b'), undefined);
  });
});

test('googleReason: what Google said, and the fix for the credential used', () => {
  const res = (status: number, data: unknown) => ({ response: { status, data } });
  const cases: Array<[unknown, 'key' | 'federation' | 'adc', RegExp]> = [
    [
      res(400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }),
      'key',
      /^invalid_grant: the key is disabled, deleted or wrong \(Invalid JWT Signature\.\); create a new key$/,
    ],
    [
      res(400, {
        error: 'invalid_grant',
        error_description: 'The audience in ID Token [x] does not match the expected audience.',
      }),
      'federation',
      /^invalid_grant from the token exchange \(STS\): The audience in ID Token \[x\] does not match.*check the workload identity provider/,
    ],
    [
      res(403, {
        error: {
          code: 403,
          message: "Permission 'iam.serviceAccounts.getAccessToken' denied",
          status: 'PERMISSION_DENIED',
        },
      }),
      'federation',
      /^service account impersonation refused \(PERMISSION_DENIED: Permission 'iam\.serviceAccounts\.getAccessToken' denied\); grant the federated principal roles\/iam\.workloadIdentityUser/,
    ],
    [
      res(404, { error: { code: 404, message: 'Not found', status: 'NOT_FOUND' } }),
      'key',
      /^NOT_FOUND: Not found$/,
    ],
    [
      res(400, { error: 'invalid_request', error_description: 'Invalid subject_token_type' }),
      'federation',
      /^invalid_request: Invalid subject_token_type$/,
    ],
    [res(502, 'bad gateway'), 'adc', /^HTTP 502$/],
    [{ name: 'TimeoutError' }, 'adc', /^timed out$/],
    [{ code: 'ECONNREFUSED' }, 'key', /^ECONNREFUSED$/],
  ];
  for (const [err, via, want] of cases) assert.match(googleReason(err, via), want);
});
