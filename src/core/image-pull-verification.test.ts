import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AllowlistPatternError,
  type CachedImageDecision,
  type CachedImageInput,
  compileAllowlist,
  decideCachedImage,
  describeCredentialSource,
  MAX_RECORDED_SECRETS,
  mergePullCredentials,
  type PullCredentialRecord,
  parseAllowlistPattern,
  type RecordedCredential,
} from './image-pull-verification.js';

const IMG = 'reg.example/team-a/app:v1';
const secretA: RecordedCredential = {
  source: { kind: 'secret', name: 'team-a/pull', uid: 'uid-a' },
  hash: 'hash-a',
};
const secretA2: RecordedCredential = {
  source: { kind: 'secret', name: 'team-a/other', uid: 'uid-a2' },
  hash: 'hash-a',
};
const rotatedA: RecordedCredential = { source: secretA.source, hash: 'hash-a-rotated' };
const secretB: RecordedCredential = {
  source: { kind: 'secret', name: 'team-b/pull', uid: 'uid-b' },
  hash: 'hash-b',
};
/** Same name as A's Secret but no uid (a manifest Secret): only its hash can match. */
const noUidA: RecordedCredential = { source: { kind: 'secret', name: 'team-a/pull' }, hash: 'hash-x' };
const byA: PullCredentialRecord = { nodeAccessible: false, secrets: [secretA] };
const byANoUid: PullCredentialRecord = { nodeAccessible: false, secrets: [{ ...noUidA, hash: 'hash-a' }] };
const byNode: PullCredentialRecord = { nodeAccessible: true, secrets: [] };
const emptyRecord: PullCredentialRecord = { nodeAccessible: false, secrets: [] };
const allow = compileAllowlist(['reg.example/team-a/*', 'docker.io/library/busybox']);

const USE =
  'Container image "reg.example/team-a/app:v1" already present on machine and can be accessed by the pod';
const NEVER = 'Container image "reg.example/team-a/app:v1" is not present with pull policy of Never';

type Row = [name: string, input: Partial<CachedImageInput>, want: CachedImageDecision];
const rows: Row[] = [
  // Presence and pull policy come first, whatever the verification policy.
  ['absent, IfNotPresent: pull', { present: false }, { action: 'pull' }],
  ['Always: pull even when present', { pullPolicy: 'Always', record: byA }, { action: 'pull' }],
  [
    'absent, Never: ErrImageNeverPull',
    { present: false, pullPolicy: 'Never' },
    { action: 'fail', reason: 'ErrImageNeverPull', message: NEVER },
  ],
  // NeverVerifyPreloadedImages (the default).
  [
    'default: preloaded image (no record) is used',
    { record: undefined, podCredentials: [secretB] },
    { action: 'use-cached', why: 'preloaded', message: USE },
  ],
  [
    'default: same Secret and hash uses the cache',
    { record: byA, podCredentials: [secretA] },
    { action: 'use-cached', why: 'same credential', message: USE },
  ],
  [
    "default: tenant B's credential is checked against the registry",
    { record: byA, podCredentials: [secretB] },
    { action: 'verify', why: 'no matching credential' },
  ],
  [
    'default: no pod credential at all is checked',
    { record: byA, podCredentials: [] },
    { action: 'verify', why: 'no matching credential' },
  ],
  [
    'default: the second of two pod credentials matches',
    { record: byA, podCredentials: [secretB, secretA] },
    { action: 'use-cached', why: 'same credential', message: USE },
  ],
  [
    'default: another Secret with the same content matches and is remembered',
    { record: byA, podCredentials: [secretA2] },
    { action: 'use-cached', why: 'same credential', message: USE, remember: secretA2 },
  ],
  [
    'default: the same Secret (uid) rotated matches and its new hash is remembered',
    { record: byA, podCredentials: [rotatedA] },
    { action: 'use-cached', why: 'same Secret', message: USE, remember: rotatedA },
  ],
  [
    'default: same credential, same namespace/name, no uid: used, nothing to remember',
    { record: byANoUid, podCredentials: [{ ...noUidA, hash: 'hash-a' }] },
    { action: 'use-cached', why: 'same credential', message: USE },
  ],
  [
    'default: same namespace/name without a uid is not the same Secret',
    { record: byANoUid, podCredentials: [noUidA] },
    { action: 'verify', why: 'no matching credential' },
  ],
  [
    'default: pulled with node credentials or anonymously: any pod',
    { record: byNode, podCredentials: [secretB] },
    { action: 'use-cached', why: 'pulled with node credentials', message: USE },
  ],
  [
    'default: a record with no credentials is checked',
    { record: emptyRecord, podCredentials: [secretA] },
    { action: 'verify', why: 'no matching credential' },
  ],
  [
    'default: Never with a credential that does not match: ErrImageNeverPull',
    { pullPolicy: 'Never', record: byA, podCredentials: [secretB] },
    { action: 'fail', reason: 'ErrImageNeverPull', message: NEVER },
  ],
  [
    'default: Never with the matching credential uses the cache',
    { pullPolicy: 'Never', record: byA, podCredentials: [secretA] },
    { action: 'use-cached', why: 'same credential', message: USE },
  ],
  // NeverVerify.
  [
    'NeverVerify: anyone uses anything cached',
    { policy: 'NeverVerify', record: byA, podCredentials: [secretB] },
    { action: 'use-cached', why: 'policy NeverVerify', message: USE },
  ],
  [
    'NeverVerify: Never and present is used',
    { policy: 'NeverVerify', pullPolicy: 'Never', record: byA },
    { action: 'use-cached', why: 'policy NeverVerify', message: USE },
  ],
  // AlwaysVerify.
  [
    'AlwaysVerify: a preloaded image is checked',
    { policy: 'AlwaysVerify', record: undefined, podCredentials: [secretA] },
    { action: 'verify', why: 'no pull record' },
  ],
  [
    "AlwaysVerify: A's own Secret still matches its record",
    { policy: 'AlwaysVerify', record: byA, podCredentials: [secretA] },
    { action: 'use-cached', why: 'same credential', message: USE },
  ],
  [
    'AlwaysVerify: B is checked',
    { policy: 'AlwaysVerify', record: byA, podCredentials: [secretB] },
    { action: 'verify', why: 'no matching credential' },
  ],
  [
    'AlwaysVerify: node-accessible record is used',
    { policy: 'AlwaysVerify', record: byNode },
    { action: 'use-cached', why: 'pulled with node credentials', message: USE },
  ],
  // NeverVerifyAllowlistedImages.
  [
    'allowlist: a prefix match is never checked, even when pulled with a Secret',
    { policy: 'NeverVerifyAllowlistedImages', allowlist: allow, record: byA, podCredentials: [secretB] },
    { action: 'use-cached', why: 'allowlisted', message: USE },
  ],
  [
    'allowlist: an unlisted preloaded image is checked',
    {
      policy: 'NeverVerifyAllowlistedImages',
      allowlist: allow,
      image: 'reg.example/team-b/app:v1',
      record: undefined,
    },
    { action: 'verify', why: 'no pull record' },
  ],
  [
    'allowlist: familiar names are normalized (busybox)',
    {
      policy: 'NeverVerifyAllowlistedImages',
      allowlist: allow,
      image: 'busybox',
      record: byA,
      podCredentials: [secretB],
    },
    {
      action: 'use-cached',
      why: 'allowlisted',
      message: 'Container image "busybox" already present on machine and can be accessed by the pod',
    },
  ],
  [
    'allowlist: a prefix matches whole segments only',
    {
      policy: 'NeverVerifyAllowlistedImages',
      allowlist: allow,
      image: 'reg.example/team-a-evil/app:v1',
      record: byA,
      podCredentials: [secretB],
    },
    { action: 'verify', why: 'no matching credential' },
  ],
  [
    'allowlist: no list at all verifies',
    { policy: 'NeverVerifyAllowlistedImages', record: byA, podCredentials: [secretB] },
    { action: 'verify', why: 'no matching credential' },
  ],
];

describe('decideCachedImage (KEP-2535)', () => {
  for (const [name, input, want] of rows) {
    test(name, () => {
      const full: CachedImageInput = {
        pullPolicy: 'IfNotPresent',
        image: IMG,
        present: true,
        podCredentials: [],
        policy: 'NeverVerifyPreloadedImages',
        ...input,
      };
      assert.deepEqual(decideCachedImage(full), want);
    });
  }
});

describe('preloadedImagesVerificationAllowlist entries (kubelet getAllowlistImagePattern)', () => {
  const ok: Array<[string, { prefix: boolean; value: string }]> = [
    ['reg.example/team-a/*', { prefix: true, value: 'reg.example/team-a/' }],
    ['reg.example/*', { prefix: true, value: 'reg.example/' }],
    ['docker.io/library/busybox', { prefix: false, value: 'docker.io/library/busybox' }],
    ['localhost:5000/app', { prefix: false, value: 'localhost:5000/app' }],
  ];
  for (const [p, want] of ok) test(`accepts ${p}`, () => assert.deepEqual(parseAllowlistPattern(p), want));
  const bad: Array<[string, RegExp]> = [
    [' reg.example/a', /leading or trailing spaces/],
    ['reg.example/a ', /leading or trailing spaces/],
    ['', /too short/],
    ['*', /only a trailing '\/\*'/],
    ['/*', /registry host name is required/],
    ['reg.example/*/app', /only a trailing '\/\*'/],
    ['reg.example/a*', /only a trailing '\/\*'/],
    ['busybox', /not fully qualified \(kubelet reads it as docker.io\/library\/busybox\)/],
    ['reg.example/app:v1', /neither a tag nor a digest/],
    [`reg.example/app@sha256:${'a'.repeat(64)}`, /neither a tag nor a digest/],
    ['Reg.Example/App', /not an image name/],
  ];
  for (const [p, re] of bad) {
    test(`refuses ${JSON.stringify(p)}`, () => {
      assert.throws(
        () => parseAllowlistPattern(p),
        (err: Error) =>
          err instanceof AllowlistPatternError &&
          re.test(err.message) &&
          /write a fully qualified/.test(err.message),
      );
    });
  }
  test('compileAllowlist stops at the first bad entry', () => {
    assert.throws(() => compileAllowlist(['reg.example/*', 'nope:tag']), AllowlistPatternError);
  });
});

describe('mergePullCredentials (kubelet pulledRecordMergeNewCreds)', () => {
  test('first Secret on no record', () => {
    assert.deepEqual(mergePullCredentials(undefined, { secret: secretA }), byA);
  });
  test('a second Secret is added; the same Secret with a new hash replaces its entry', () => {
    const two = mergePullCredentials(byA, { secret: secretB });
    assert.deepEqual(two.secrets, [secretA, secretB]);
    assert.deepEqual(mergePullCredentials(two, { secret: rotatedA }).secrets, [secretB, rotatedA]);
  });
  test('node-wide access wins and clears per-Secret entries, and stays', () => {
    assert.deepEqual(mergePullCredentials(byA, { nodeAccessible: true }), byNode);
    assert.deepEqual(mergePullCredentials(byNode, { secret: secretB }), byNode);
  });
  test(`bounded to ${MAX_RECORDED_SECRETS} Secrets, oldest dropped`, () => {
    let r: PullCredentialRecord | undefined;
    for (let i = 0; i <= MAX_RECORDED_SECRETS; i++) {
      r = mergePullCredentials(r, {
        secret: { source: { kind: 'secret', name: `ns/s${i}` }, hash: `h${i}` },
      });
    }
    assert.equal(r!.secrets.length, MAX_RECORDED_SECRETS);
    assert.equal(r!.secrets[0]!.source.name, 'ns/s1');
  });
});

test('describeCredentialSource names the credential, never its value', () => {
  assert.equal(describeCredentialSource(secretB.source), 'Secret "team-b/pull"');
  assert.equal(
    describeCredentialSource({ kind: 'file', name: '/tmp/b.yaml' }),
    'pull secret file /tmp/b.yaml',
  );
  assert.equal(
    describeCredentialSource({ kind: 'node', name: '/var/lib/kubelet/config.json' }),
    'node file /var/lib/kubelet/config.json',
  );
  assert.equal(describeCredentialSource(undefined), 'node credentials');
});
