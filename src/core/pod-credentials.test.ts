import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  identityFromClaims,
  identityFromReview,
  narrowRegistries,
  parseServiceAccountUsername,
  serviceAccountAllowed,
  unverifiedJwtClaims,
  verifiedUntil,
} from './pod-credentials.js';

describe('parseServiceAccountUsername', () => {
  const cases: Array<[string, ReturnType<typeof parseServiceAccountUsername>]> = [
    ['system:serviceaccount:team-a:default', { namespace: 'team-a', name: 'default' }],
    ['system:serviceaccount:team-a:', undefined],
    ['system:serviceaccount::default', undefined],
    ['system:serviceaccount:a:b:c', undefined],
    ['system:node:worker-1', undefined],
    ['admin', undefined],
    ['', undefined],
  ];
  for (const [input, want] of cases)
    test(JSON.stringify(input), () => assert.deepEqual(parseServiceAccountUsername(input), want));
});

describe('identityFromReview', () => {
  test('a pod-bound token: pod name and uid from extra', () => {
    assert.deepEqual(
      identityFromReview('prod', {
        username: 'system:serviceaccount:team-a:default',
        uid: 'sa-uid',
        extra: {
          'authentication.kubernetes.io/pod-name': ['web-1'],
          'authentication.kubernetes.io/pod-uid': ['pod-uid'],
        },
      }),
      {
        cluster: 'prod',
        namespace: 'team-a',
        serviceAccount: 'default',
        serviceAccountUid: 'sa-uid',
        pod: { name: 'web-1', uid: 'pod-uid' },
      },
    );
  });
  test('not bound to a pod', () => {
    assert.deepEqual(identityFromReview('c', { username: 'system:serviceaccount:n:s' }), {
      cluster: 'c',
      namespace: 'n',
      serviceAccount: 's',
    });
  });
  test('a user is not a ServiceAccount', () => {
    assert.equal(identityFromReview('c', { username: 'alice', extra: {} }), undefined);
  });
});

describe('identityFromClaims', () => {
  const sub = 'system:serviceaccount:team-a:default';
  test('subject and private claim agree', () => {
    assert.deepEqual(
      identityFromClaims('c', {
        sub,
        'kubernetes.io': {
          namespace: 'team-a',
          serviceaccount: { name: 'default', uid: 'u1' },
          pod: { name: 'p', uid: 'pu' },
        },
      }),
      {
        cluster: 'c',
        namespace: 'team-a',
        serviceAccount: 'default',
        serviceAccountUid: 'u1',
        pod: { name: 'p', uid: 'pu' },
      },
    );
  });
  test('the private claim names another namespace: refused', () => {
    assert.equal(identityFromClaims('c', { sub, 'kubernetes.io': { namespace: 'team-b' } }), undefined);
  });
  test('the private claim names another ServiceAccount: refused', () => {
    assert.equal(
      identityFromClaims('c', { sub, 'kubernetes.io': { serviceaccount: { name: 'x' } } }),
      undefined,
    );
  });
  test('no subject: refused', () => {
    assert.equal(identityFromClaims('c', {}), undefined);
  });
});

describe('serviceAccountAllowed', () => {
  const cases: Array<['*' | string[] | undefined, string, boolean]> = [
    [undefined, 'default', true],
    ['*', 'anything', true],
    [['builder'], 'builder', true],
    [['builder'], 'default', false],
  ];
  for (const [rule, name, want] of cases)
    test(`${JSON.stringify(rule)} ${name}`, () => assert.equal(serviceAccountAllowed(rule, name), want));
});

describe('narrowRegistries', () => {
  const cases: Array<[string[], string | undefined, string[]]> = [
    [['ecr', 'quay'], undefined, ['ecr', 'quay']],
    [['ecr', 'quay'], 'quay, ghcr', ['quay']],
    [['ecr', 'quay'], 'quay,ecr', ['ecr', 'quay']],
    [['ecr', 'quay'], '', []],
    [['ecr'], ' , ', []],
  ];
  for (const [regs, ann, want] of cases)
    test(`${regs} ${JSON.stringify(ann)}`, () => assert.deepEqual(narrowRegistries(regs, ann), want));
});

describe('verifiedUntil', () => {
  const now = 1_000_000;
  const cases: Array<[number | undefined, number, number, number]> = [
    [now + 3_600_000, 300_000, 10_000, now + 300_000],
    [now + 60_000, 300_000, 10_000, now + 50_000],
    [now + 5_000, 300_000, 10_000, now],
    [undefined, 300_000, 10_000, now],
    [now + 3_600_000, 0, 10_000, now],
  ];
  for (const [exp, max, margin, want] of cases)
    test(`exp ${exp} max ${max}`, () => assert.equal(verifiedUntil(now, exp, max, margin), want));
});

describe('unverifiedJwtClaims', () => {
  const jwt = (payload: unknown) =>
    `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;
  test('exp in ms and iss', () =>
    assert.deepEqual(unverifiedJwtClaims(jwt({ exp: 10, iss: 'https://i' })), {
      exp: 10_000,
      iss: 'https://i',
    }));
  test('not three parts', () => assert.equal(unverifiedJwtClaims('a.b'), undefined));
  test('payload not JSON', () => assert.equal(unverifiedJwtClaims('a.bm90IGpzb24.c'), undefined));
  test('payload not an object', () => assert.equal(unverifiedJwtClaims(jwt(null)), undefined));
});
