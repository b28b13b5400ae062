import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  alwaysPullImages,
  alwaysPullImagesViolations,
  decidePull,
  defaultPullPolicy,
  isUpdateWithNoNewImages,
  type PodSpecContainers,
  type PullDecision,
  type PullPolicy,
  pullBackoffSeconds,
} from './pull-policy.js';

const SHA256 = `sha256:${'ab'.repeat(32)}`;

const defaults: Array<{ name: string; image: string; want: 'Always' | 'IfNotPresent' }> = [
  // docs/kubelet-parity.md §4.1
  { name: 'no tag means latest', image: 'nginx', want: 'Always' },
  { name: 'explicit latest', image: 'nginx:latest', want: 'Always' },
  { name: 'pinned tag', image: 'nginx:1.25', want: 'IfNotPresent' },
  { name: 'digest suppresses the implicit latest', image: `nginx@${SHA256}`, want: 'IfNotPresent' },
  { name: 'explicit latest with digest', image: `nginx:latest@${SHA256}`, want: 'Always' },
  { name: 'LATEST is case-sensitive', image: 'nginx:LATEST', want: 'IfNotPresent' },
  { name: 'registry with port, no tag', image: 'localhost:5000/app', want: 'Always' },
  { name: 'unparsable image', image: 'Nginx', want: 'IfNotPresent' },
  // edge cases
  { name: 'pinned tag with digest', image: `nginx:1.25@${SHA256}`, want: 'IfNotPresent' },
  { name: 'registry with port and tag', image: 'localhost:5000/app:v1', want: 'IfNotPresent' },
  { name: 'ECR image without tag', image: '123.dkr.ecr.us-west-2.amazonaws.com/app', want: 'Always' },
  { name: 'tag that only starts with latest', image: 'nginx:latest-alpine', want: 'IfNotPresent' },
  { name: 'empty image', image: '', want: 'IfNotPresent' },
  { name: 'bad digest', image: 'nginx@sha256:abc', want: 'IfNotPresent' },
];

describe('defaultPullPolicy', () => {
  for (const c of defaults) {
    test(c.name, () => assert.equal(defaultPullPolicy(c.image), c.want));
  }
});

const decisions: Array<{ name: string; policy: PullPolicy; present: boolean; want: PullDecision }> = [
  { name: 'Always pulls when absent', policy: 'Always', present: false, want: { action: 'pull' } },
  { name: 'Always pulls even when present', policy: 'Always', present: true, want: { action: 'pull' } },
  {
    name: 'IfNotPresent pulls when absent',
    policy: 'IfNotPresent',
    present: false,
    want: { action: 'pull' },
  },
  {
    name: 'IfNotPresent uses the present image',
    policy: 'IfNotPresent',
    present: true,
    want: {
      action: 'use-present',
      reason: 'Pulled',
      message: 'Container image "registry.example/app:v1" already present on machine',
    },
  },
  {
    name: 'Never uses the present image',
    policy: 'Never',
    present: true,
    want: {
      action: 'use-present',
      reason: 'Pulled',
      message: 'Container image "registry.example/app:v1" already present on machine',
    },
  },
  {
    name: 'Never fails when absent',
    policy: 'Never',
    present: false,
    want: {
      action: 'fail',
      reason: 'ErrImageNeverPull',
      message: 'Container image "registry.example/app:v1" is not present with pull policy of Never',
    },
  },
  {
    name: 'an unknown policy behaves like Never (as shouldPullImage does)',
    policy: '' as PullPolicy,
    present: false,
    want: {
      action: 'fail',
      reason: 'ErrImageNeverPull',
      message: 'Container image "registry.example/app:v1" is not present with pull policy of Never',
    },
  },
];

describe('decidePull', () => {
  for (const c of decisions) {
    test(c.name, () => assert.deepEqual(decidePull(c.policy, c.present, 'registry.example/app:v1'), c.want));
  }
  test('the image is quoted as Go %q quotes it', () => {
    assert.deepEqual(decidePull('Never', false, 'a"b'), {
      action: 'fail',
      reason: 'ErrImageNeverPull',
      message: 'Container image "a\\"b" is not present with pull policy of Never',
    });
  });
});

const backoffs: Array<{ name: string; failures: number; want: number }> = [
  { name: 'no failure, no back-off', failures: 0, want: 0 },
  { name: 'first failure', failures: 1, want: 10 },
  { name: 'second failure', failures: 2, want: 20 },
  { name: 'third failure', failures: 3, want: 40 },
  { name: 'fourth failure', failures: 4, want: 80 },
  { name: 'fifth failure', failures: 5, want: 160 },
  { name: 'sixth failure hits the cap', failures: 6, want: 300 },
  { name: 'stays at the cap', failures: 7, want: 300 },
  { name: 'huge count stays at the cap', failures: 10_000, want: 300 },
  { name: 'negative count', failures: -3, want: 0 },
  { name: 'NaN', failures: Number.NaN, want: 0 },
  { name: 'fractional count rounds down', failures: 2.7, want: 20 },
];

describe('pullBackoffSeconds', () => {
  for (const c of backoffs) {
    test(c.name, () => assert.equal(pullBackoffSeconds(c.failures), c.want));
  }
});

interface Ctr {
  name: string;
  image?: string;
  imagePullPolicy?: string;
}

const mutations: Array<{ name: string; spec: PodSpecContainers<Ctr>; want: PodSpecContainers<Ctr> }> = [
  {
    name: 'init, regular and ephemeral containers all become Always',
    spec: {
      initContainers: [{ name: 'init', image: 'a', imagePullPolicy: 'Never' }],
      containers: [
        { name: 'main', image: 'b', imagePullPolicy: 'IfNotPresent' },
        { name: 'side', image: 'c' },
      ],
      ephemeralContainers: [{ name: 'debug', image: 'd', imagePullPolicy: 'Never' }],
    },
    want: {
      initContainers: [{ name: 'init', image: 'a', imagePullPolicy: 'Always' }],
      containers: [
        { name: 'main', image: 'b', imagePullPolicy: 'Always' },
        { name: 'side', image: 'c', imagePullPolicy: 'Always' },
      ],
      ephemeralContainers: [{ name: 'debug', image: 'd', imagePullPolicy: 'Always' }],
    },
  },
  {
    name: 'absent lists stay absent',
    spec: { containers: [{ name: 'main', image: 'b' }] },
    want: { containers: [{ name: 'main', image: 'b', imagePullPolicy: 'Always' }] },
  },
  { name: 'empty spec', spec: {}, want: {} },
];

describe('alwaysPullImages', () => {
  for (const c of mutations) {
    test(c.name, () => {
      const before = structuredClone(c.spec);
      const got = alwaysPullImages(c.spec);
      assert.deepEqual(got, c.want);
      assert.deepEqual(c.spec, before, 'input is not mutated');
    });
  }
  test('other spec fields are kept', () => {
    const spec = { restartPolicy: 'Never', containers: [{ name: 'm', image: 'x' }] };
    assert.deepEqual(alwaysPullImages(spec), {
      restartPolicy: 'Never',
      containers: [{ name: 'm', image: 'x', imagePullPolicy: 'Always' }],
    });
  });
});

const violations: Array<{ name: string; spec: PodSpecContainers; want: string[] }> = [
  {
    name: 'every non-Always container is reported, in visiting order',
    spec: {
      ephemeralContainers: [{ imagePullPolicy: 'Never' }],
      containers: [{ imagePullPolicy: 'Always' }, { imagePullPolicy: 'IfNotPresent' }],
      initContainers: [{}],
    },
    want: [
      'spec.initContainers[0].imagePullPolicy: Unsupported value: "": supported values: "Always"',
      'spec.containers[1].imagePullPolicy: Unsupported value: "IfNotPresent": supported values: "Always"',
      'spec.ephemeralContainers[0].imagePullPolicy: Unsupported value: "Never": supported values: "Always"',
    ],
  },
  {
    name: 'a mutated spec has no violations',
    spec: alwaysPullImages({ containers: [{ imagePullPolicy: 'Never' }], initContainers: [{}] }),
    want: [],
  },
  { name: 'empty spec', spec: {}, want: [] },
];

describe('alwaysPullImagesViolations', () => {
  for (const c of violations) {
    test(c.name, () => assert.deepEqual(alwaysPullImagesViolations(c.spec), c.want));
  }
});

const updates: Array<{ name: string; old: PodSpecContainers; new: PodSpecContainers; want: boolean }> = [
  {
    name: 'same images',
    old: { containers: [{ image: 'a' }, { image: 'b' }] },
    new: { containers: [{ image: 'b' }, { image: 'a' }] },
    want: true,
  },
  {
    name: 'a new image',
    old: { containers: [{ image: 'a' }] },
    new: { containers: [{ image: 'a' }, { image: 'c' }] },
    want: false,
  },
  {
    name: 'image moved from init to regular containers counts as known',
    old: { initContainers: [{ image: 'a' }], containers: [{ image: 'b' }] },
    new: { containers: [{ image: 'a' }] },
    want: true,
  },
  {
    name: 'new ephemeral container image',
    old: { containers: [{ image: 'a' }] },
    new: { containers: [{ image: 'a' }], ephemeralContainers: [{ image: 'busybox' }] },
    want: false,
  },
  {
    name: 'images compare as written, not normalized',
    old: { containers: [{ image: 'nginx' }] },
    new: { containers: [{ image: 'docker.io/library/nginx' }] },
    want: false,
  },
  { name: 'both empty', old: {}, new: {}, want: true },
];

describe('isUpdateWithNoNewImages', () => {
  for (const c of updates) {
    test(c.name, () => assert.equal(isUpdateWithNoNewImages(c.old, c.new), c.want));
  }
});
