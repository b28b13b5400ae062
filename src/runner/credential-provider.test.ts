import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  answerProviderRequest,
  goDuration,
  jwtExpiry,
  parseProviderCredentials,
  parseProviderRequest,
} from './credential-provider.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const req = (image: string) => ({
  apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
  kind: 'CredentialProviderRequest' as const,
  image,
});
const jwt = (exp: number) =>
  `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;

describe('answerProviderRequest', () => {
  const file = JSON.stringify({
    auths: {
      'quay.io': { username: 'q', password: 'qp' },
      'quay.io/team': { username: 't', password: 'tp' },
      '*.azurecr.io': {
        username: '00000000-0000-0000-0000-000000000000',
        password: jwt(NOW / 1000 + 3 * 3600),
      },
      'https://index.docker.io/v1/': { username: 'hub', password: 'hp' },
    },
    pullkeeperExpiry: { 'quay.io': '2026-01-01T00:45:00Z' },
  });
  const creds = parseProviderCredentials(file);

  const cases: Array<
    [string, string, ReturnType<typeof answerProviderRequest>['auth'], string, string | undefined]
  > = [
    [
      'glob host, expiry from the JWT',
      'myreg.azurecr.io/app:v1',
      {
        '*.azurecr.io': {
          username: '00000000-0000-0000-0000-000000000000',
          password: jwt(NOW / 1000 + 3 * 3600),
        },
      },
      'Registry',
      '3h0m0s',
    ],
    [
      'path key first, Image cache key, earliest expiry',
      'quay.io/team/app',
      { 'quay.io/team': { username: 't', password: 'tp' }, 'quay.io': { username: 'q', password: 'qp' } },
      'Image',
      '45m0s',
    ],
    [
      'Docker Hub fallback key',
      'nginx',
      { 'index.docker.io': { username: 'hub', password: 'hp' } },
      'Registry',
      undefined,
    ],
    ['no match: empty auth, not cached', 'gcr.io/x/y', {}, 'Registry', '0s'],
  ];
  for (const [name, image, auth, keyType, duration] of cases) {
    it(name, () => {
      const r = answerProviderRequest(req(image), creds, NOW);
      assert.equal(r.kind, 'CredentialProviderResponse');
      assert.equal(r.apiVersion, 'credentialprovider.kubelet.k8s.io/v1');
      assert.deepEqual(r.auth, auth);
      assert.deepEqual(Object.keys(r.auth), Object.keys(auth));
      assert.equal(r.cacheKeyType, keyType);
      assert.equal(r.cacheDuration, duration);
    });
  }
  it('an expired credential is returned with cacheDuration 0s', () => {
    const r = answerProviderRequest(req('quay.io/x'), creds, Date.parse('2026-01-02T00:00:00Z'));
    assert.equal(r.cacheDuration, '0s');
  });
});

describe('parseProviderRequest', () => {
  it('accepts kubelet v1 requests', () =>
    assert.equal(parseProviderRequest(JSON.stringify(req('a/b'))).image, 'a/b'));
  it('refuses other API versions', () =>
    assert.throws(
      () =>
        parseProviderRequest(
          JSON.stringify({ ...req('a'), apiVersion: 'credentialprovider.kubelet.k8s.io/v1alpha1' }),
        ),
      /not supported/,
    ));
  it('refuses non-JSON', () => assert.throws(() => parseProviderRequest('nope'), /not JSON/));
  it('refuses a request without image', () =>
    assert.throws(() => parseProviderRequest(JSON.stringify({ ...req('a'), image: undefined })), /image/));
});

describe('goDuration / jwtExpiry', () => {
  for (const [s, want] of [
    [0, '0s'],
    [-5, '0s'],
    [59.9, '59s'],
    [60, '1m0s'],
    [3725, '1h2m5s'],
    [90000, '25h0m0s'],
  ] as const) {
    it(`${s}s -> ${want}`, () => assert.equal(goDuration(s), want));
  }
  it('reads exp from a JWT and nothing from other strings', () => {
    assert.equal(jwtExpiry(jwt(1700000000)), 1700000000000);
    assert.equal(jwtExpiry('plain-password'), undefined);
    assert.equal(jwtExpiry('a.b.c'), undefined);
  });
});
