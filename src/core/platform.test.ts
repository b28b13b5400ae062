import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatPlatform,
  matchingManifests,
  NoMatchingPlatformError,
  normalizePlatform,
  type Platform,
  platformMatches,
  platformPreference,
  platformRank,
  selectPlatform,
} from './platform.js';

/** `linux/arm/v7` -> { os, architecture, variant } (no normalization). */
function p(spec: string): Platform {
  const [os = '', architecture = '', variant] = spec.split('/');
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

const DIGEST = `sha256:${'9f'.repeat(32)}`;

const normalizations: Array<{ name: string; input: Platform; defaultOS?: string; want: Platform }> = [
  { name: 'x86_64 is amd64', input: p('linux/x86_64'), want: p('linux/amd64') },
  { name: 'x86-64 is amd64', input: p('linux/x86-64'), want: p('linux/amd64') },
  { name: 'amd64 v1 drops the variant', input: p('linux/amd64/v1'), want: p('linux/amd64') },
  { name: 'amd64 v3 keeps the variant', input: p('linux/amd64/v3'), want: p('linux/amd64/v3') },
  { name: 'aarch64 is arm64', input: p('linux/aarch64'), want: p('linux/arm64') },
  { name: 'arm64 variant 8 dropped', input: p('linux/arm64/8'), want: p('linux/arm64') },
  { name: 'arm64 variant v8 dropped', input: p('linux/arm64/v8'), want: p('linux/arm64') },
  { name: 'arm64 variant v8.0 dropped', input: p('linux/arm64/v8.0'), want: p('linux/arm64') },
  { name: 'arm64 variant v8.2 kept', input: p('linux/arm64/v8.2'), want: p('linux/arm64/v8.2') },
  { name: 'arm64 variant 9 is v9', input: p('linux/arm64/9'), want: p('linux/arm64/v9') },
  { name: 'arm64 variant v9.0 is v9', input: p('linux/arm64/v9.0'), want: p('linux/arm64/v9') },
  { name: 'armhf is arm/v7', input: p('linux/armhf'), want: p('linux/arm/v7') },
  { name: 'armhf ignores a written variant', input: p('linux/armhf/v6'), want: p('linux/arm/v7') },
  { name: 'armel is arm/v6', input: p('linux/armel'), want: p('linux/arm/v6') },
  { name: 'arm without variant is v7', input: p('linux/arm'), want: p('linux/arm/v7') },
  { name: 'arm variant 7 is v7', input: p('linux/arm/7'), want: p('linux/arm/v7') },
  { name: 'arm variant 6 is v6', input: p('linux/arm/6'), want: p('linux/arm/v6') },
  { name: 'arm variant 5 is v5', input: p('linux/arm/5'), want: p('linux/arm/v5') },
  { name: 'arm variant 8 is v8', input: p('linux/arm/8'), want: p('linux/arm/v8') },
  { name: 'i386 is 386', input: p('linux/i386'), want: p('linux/386') },
  { name: 'OS lowercased', input: p('Linux/amd64'), want: p('linux/amd64') },
  { name: 'macos is darwin', input: p('MacOS/arm64'), want: p('darwin/arm64') },
  { name: 'architecture and variant lowercased', input: p('linux/AARCH64/V8'), want: p('linux/arm64') },
  { name: 'unknown architecture passes through', input: p('linux/riscv64'), want: p('linux/riscv64') },
  {
    name: 'empty variant omitted',
    input: { os: 'linux', architecture: 'amd64', variant: '' },
    want: p('linux/amd64'),
  },
  {
    name: 'empty OS stays empty without default',
    input: p('/amd64'),
    want: { os: '', architecture: 'amd64' },
  },
  { name: 'empty OS takes the default OS', input: p('/amd64'), defaultOS: 'Linux', want: p('linux/amd64') },
  { name: 'unknown/unknown stays unknown', input: p('unknown/unknown'), want: p('unknown/unknown') },
];

describe('normalizePlatform', () => {
  for (const c of normalizations) {
    test(c.name, () => assert.deepEqual(normalizePlatform(c.input, c.defaultOS), c.want));
  }
});

const preferences: Array<{ name: string; host: Platform; want: string[] }> = [
  { name: 'amd64', host: p('linux/amd64'), want: ['linux/amd64', 'linux/386'] },
  { name: 'x86_64 is normalized first', host: p('linux/x86_64'), want: ['linux/amd64', 'linux/386'] },
  { name: 'amd64 v2', host: p('linux/amd64/v2'), want: ['linux/amd64/v2', 'linux/amd64', 'linux/386'] },
  {
    name: 'amd64 v4',
    host: p('linux/amd64/v4'),
    want: ['linux/amd64/v4', 'linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64', 'linux/386'],
  },
  {
    name: 'amd64 with a non-numeric variant',
    host: p('linux/amd64/vx'),
    want: ['linux/amd64/vx', 'linux/386'],
  },
  { name: '386 has no fallback', host: p('linux/386'), want: ['linux/386'] },
  {
    name: 'arm/v8',
    host: p('linux/arm/v8'),
    want: ['linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5'],
  },
  { name: 'arm/v7', host: p('linux/arm/v7'), want: ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5'] },
  {
    name: 'arm without variant is v7',
    host: p('linux/arm'),
    want: ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5'],
  },
  { name: 'arm/v6', host: p('linux/arm/v6'), want: ['linux/arm/v6', 'linux/arm/v5'] },
  { name: 'arm/v5', host: p('linux/arm/v5'), want: ['linux/arm/v5'] },
  { name: 'arm/v4 has no fallback', host: p('linux/arm/v4'), want: ['linux/arm/v4'] },
  {
    name: 'arm64',
    host: p('linux/arm64'),
    want: ['linux/arm64', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5'],
  },
  {
    name: 'aarch64/v8 is normalized first',
    host: p('linux/aarch64/v8'),
    want: ['linux/arm64', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5'],
  },
  {
    name: 'arm64 v8.2',
    host: p('linux/arm64/v8.2'),
    want: [
      'linux/arm64/v8.2',
      'linux/arm64/v8.1',
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ],
  },
  {
    name: '#3 arm64 v9 also runs v8.5 and below, then arm/v8 (not arm/v9)',
    host: p('linux/arm64/v9'),
    want: [
      'linux/arm64/v9',
      'linux/arm64/v8.5',
      'linux/arm64/v8.4',
      'linux/arm64/v8.3',
      'linux/arm64/v8.2',
      'linux/arm64/v8.1',
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ],
  },
  {
    name: 'arm64 v9.2',
    host: p('linux/arm64/v9.2'),
    want: [
      'linux/arm64/v9.2',
      'linux/arm64/v9.1',
      'linux/arm64/v9',
      'linux/arm64/v8.7',
      'linux/arm64/v8.6',
      'linux/arm64/v8.5',
      'linux/arm64/v8.4',
      'linux/arm64/v8.3',
      'linux/arm64/v8.2',
      'linux/arm64/v8.1',
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ],
  },
  {
    name: 'arm64 v9.5 caps the v8 minor at 9',
    host: p('linux/arm64/v9.5'),
    want: [
      'linux/arm64/v9.5',
      'linux/arm64/v9.4',
      'linux/arm64/v9.3',
      'linux/arm64/v9.2',
      'linux/arm64/v9.1',
      'linux/arm64/v9',
      'linux/arm64/v8.9',
      'linux/arm64/v8.8',
      'linux/arm64/v8.7',
      'linux/arm64/v8.6',
      'linux/arm64/v8.5',
      'linux/arm64/v8.4',
      'linux/arm64/v8.3',
      'linux/arm64/v8.2',
      'linux/arm64/v8.1',
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ],
  },
  // containerd/platforms v1.0.0-rc.2 looks arm64 variants up in a table (issue #13 item 3).
  { name: '#3 arm64 v8.10 is outside the table: nothing', host: p('linux/arm64/v8.10'), want: [] },
  { name: '#3 arm64 v10 is outside the table: nothing', host: p('linux/arm64/v10'), want: [] },
  { name: '#3 arm64 v8.01 is outside the table: nothing', host: p('linux/arm64/v8.01'), want: [] },
  { name: '#3 arm64 v1 is outside the table: nothing', host: p('linux/arm64/v1'), want: [] },
  { name: '#3 arm64 v9.8 is outside the table: nothing', host: p('linux/arm64/v9.8'), want: [] },
  {
    name: '#3 arm64 v9.7 is the last v9 in the table',
    host: p('linux/arm64/v9.7'),
    want: [
      ...[7, 6, 5, 4, 3, 2, 1].map((m) => `linux/arm64/v9.${m}`),
      'linux/arm64/v9',
      ...[9, 8, 7, 6, 5, 4, 3, 2, 1].map((m) => `linux/arm64/v8.${m}`),
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ],
  },
  {
    name: 'arm64 9.0 normalizes to v9 and is in the table',
    host: p('linux/arm64/9.0'),
    want: [
      'linux/arm64/v9',
      ...[5, 4, 3, 2, 1].map((m) => `linux/arm64/v8.${m}`),
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ],
  },
  { name: 'riscv64 has no fallback', host: p('linux/riscv64'), want: ['linux/riscv64'] },
  { name: 'windows amd64', host: p('windows/amd64'), want: ['windows/amd64', 'windows/386'] },
  {
    name: 'absurd variant number expands nothing',
    host: p('linux/amd64/v99999'),
    want: ['linux/amd64/v99999', 'linux/386'],
  },
];

describe('platformPreference', () => {
  for (const c of preferences) {
    test(c.name, () => assert.deepEqual(platformPreference(c.host).map(formatPlatform), c.want));
  }
});

// containerd/platforms compare_test.go TestOnly, as rows.
const onlyMatches: Array<{ host: string; yes: string[]; no: string[] }> = [
  {
    host: 'linux/amd64',
    yes: ['linux/amd64', 'linux/386', 'linux/x86_64', 'linux/amd64/v1'],
    no: ['linux/amd64/v2', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm', 'unknown/unknown'],
  },
  {
    host: 'linux/amd64/v2',
    yes: ['linux/amd64', 'linux/amd64/v1', 'linux/amd64/v2', 'linux/386'],
    no: ['linux/amd64/v3', 'linux/amd64/v4', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    host: 'linux/386',
    yes: ['linux/386', 'linux/i386'],
    no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    host: 'linux/arm/v8',
    yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8'],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    host: 'linux/arm/v7',
    yes: ['linux/arm', 'linux/armhf', 'linux/armel', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7'],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
  },
  {
    host: 'linux/arm/v6',
    yes: ['linux/arm/v5', 'linux/arm/v6', 'linux/armel'],
    no: ['linux/amd64', 'linux/arm', 'linux/arm/v4', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64'],
  },
  {
    host: 'linux/arm/v5',
    yes: ['linux/arm/v5'],
    no: ['linux/amd64', 'linux/arm', 'linux/arm/v4', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm64'],
  },
  {
    host: 'linux/arm64/v9',
    yes: [
      'linux/arm',
      'linux/arm/v5',
      'linux/arm/v8',
      'linux/arm64',
      'linux/arm64/v8',
      'linux/arm64/v8.1',
      'linux/arm64/v8.5',
      'linux/arm64/v9',
      'linux/arm64/v9.0',
    ],
    no: [
      'linux/amd64',
      'linux/arm/v4',
      'windows/amd64',
      'windows/arm',
      'linux/arm64/v8.6',
      'linux/arm64/v9.1',
      'linux/arm/v9',
    ],
  },
  { host: 'linux/arm64/v8.01', yes: [], no: ['linux/arm64/v8.01', 'linux/arm64', 'linux/arm/v7'] },
  { host: 'linux/arm64/v1', yes: [], no: ['linux/arm64/v1', 'linux/arm64', 'linux/arm/v5'] },
  {
    host: 'linux/arm64/v8.1',
    yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v8', 'linux/arm64', 'linux/arm64/v8', 'linux/arm64/v8.1'],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v9', 'linux/arm64/v8.2', 'linux/arm64/v9', 'windows/arm'],
  },
  {
    host: 'linux/arm64',
    yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v8', 'linux/arm64', 'linux/arm64/v8', 'linux/aarch64'],
    no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v9', 'linux/arm64/v8.1', 'linux/arm64/v9', 'windows/arm'],
  },
];

describe('platformMatches', () => {
  for (const row of onlyMatches) {
    for (const candidate of row.yes) {
      test(`${row.host} runs ${candidate}`, () =>
        assert.equal(platformMatches(p(row.host), p(candidate)), true));
    }
    for (const candidate of row.no) {
      test(`${row.host} does not run ${candidate}`, () =>
        assert.equal(platformMatches(p(row.host), p(candidate)), false));
    }
  }
  test('a candidate without OS takes the host OS', () => {
    assert.equal(platformMatches(p('linux/amd64'), { os: '', architecture: 'amd64' }), true);
  });
});

const ranks: Array<{ name: string; host: string; candidate: string; want: number }> = [
  { name: 'the host itself ranks first', host: 'linux/amd64', candidate: 'linux/amd64', want: 0 },
  { name: '386 ranks after amd64', host: 'linux/amd64', candidate: 'linux/386', want: 1 },
  { name: 'arm/v7 on arm64', host: 'linux/arm64', candidate: 'linux/arm/v7', want: 2 },
  { name: 'no match', host: 'linux/amd64', candidate: 'linux/arm64', want: -1 },
];

describe('platformRank', () => {
  for (const c of ranks) {
    test(c.name, () => assert.equal(platformRank(p(c.host), p(c.candidate)), c.want));
  }
});

interface Entry {
  id: string;
  platform?: Platform | null;
}

function entries(...specs: Array<string | null>): Entry[] {
  return specs.map((spec, i) =>
    spec === null ? { id: `#${i} none` } : { id: `#${i} ${spec}`, platform: p(spec) },
  );
}

const selections: Array<{ name: string; host: string; manifests: Entry[]; want: string }> = [
  // docs/kubelet-parity.md §9 vectors
  {
    name: 'amd64 picks amd64 over arm64',
    host: 'linux/amd64',
    manifests: entries('linux/arm64', 'linux/amd64'),
    want: '#1 linux/amd64',
  },
  {
    name: 'amd64 falls back to 386',
    host: 'linux/amd64',
    manifests: entries('linux/386'),
    want: '#0 linux/386',
  },
  {
    name: 'arm64 takes arm64/v8 (normalized)',
    host: 'linux/arm64',
    manifests: entries('linux/arm64/v8', 'linux/amd64'),
    want: '#0 linux/arm64/v8',
  },
  {
    name: 'arm64 falls back to arm/v7',
    host: 'linux/arm64',
    manifests: entries('linux/arm/v7', 'linux/amd64'),
    want: '#0 linux/arm/v7',
  },
  {
    name: 'arm/v7 prefers v7 over v6',
    host: 'linux/arm/v7',
    manifests: entries('linux/arm/v6', 'linux/arm/v7'),
    want: '#1 linux/arm/v7',
  },
  // edge cases
  {
    name: 'amd64 prefers amd64 over an earlier 386',
    host: 'linux/amd64',
    manifests: entries('linux/386', 'linux/amd64'),
    want: '#1 linux/amd64',
  },
  {
    name: 'amd64/v3 prefers v3, then v2',
    host: 'linux/amd64/v3',
    manifests: entries('linux/amd64', 'linux/amd64/v2', 'linux/amd64/v3', 'linux/amd64/v4'),
    want: '#2 linux/amd64/v3',
  },
  {
    name: 'amd64/v3 takes v2 when v3 is absent',
    host: 'linux/amd64/v3',
    manifests: entries('linux/amd64', 'linux/amd64/v4', 'linux/amd64/v2'),
    want: '#2 linux/amd64/v2',
  },
  {
    name: 'plain amd64 does not take amd64/v2',
    host: 'linux/amd64',
    manifests: entries('linux/amd64/v2', 'linux/386'),
    want: '#1 linux/386',
  },
  {
    name: 'duplicates keep index order (stable sort)',
    host: 'linux/amd64',
    manifests: entries('linux/amd64', 'linux/amd64'),
    want: '#0 linux/amd64',
  },
  {
    name: 'attestation entries are skipped',
    host: 'linux/amd64',
    manifests: entries('unknown/unknown', 'linux/amd64', 'unknown/unknown'),
    want: '#1 linux/amd64',
  },
  {
    name: 'entries without platform go last',
    host: 'linux/amd64',
    manifests: entries(null, 'linux/386'),
    want: '#1 linux/386',
  },
  {
    name: 'an entry without platform is the fallback',
    host: 'linux/amd64',
    manifests: entries('linux/arm64', null, null),
    want: '#1 none',
  },
  {
    name: 'null platform is treated like none',
    host: 'linux/amd64',
    manifests: [{ id: 'null', platform: null }, ...entries('linux/s390x')],
    want: 'null',
  },
  {
    name: 'non-canonical entry names match',
    host: 'linux/arm64',
    manifests: entries('Linux/AArch64'),
    want: '#0 Linux/AArch64',
  },
  {
    name: 'armhf entry on an arm/v7 host',
    host: 'linux/arm/v7',
    manifests: entries('linux/arm/v5', 'linux/armhf'),
    want: '#1 linux/armhf',
  },
  {
    name: 'x86_64 host',
    host: 'Linux/x86_64',
    manifests: entries('linux/arm64', 'linux/amd64'),
    want: '#1 linux/amd64',
  },
];

describe('selectPlatform', () => {
  for (const c of selections) {
    test(c.name, () => {
      assert.equal(selectPlatform({ manifests: c.manifests, digest: DIGEST }, p(c.host)).id, c.want);
    });
  }
});

const failures: Array<{ name: string; host: string; manifests: Entry[]; digest?: string; message: string }> =
  [
    // docs/kubelet-parity.md §9 vectors
    {
      name: 'linux host cannot run windows',
      host: 'linux/amd64',
      manifests: entries('windows/amd64'),
      digest: DIGEST,
      message: `no match for platform in manifest ${DIGEST}: not found`,
    },
    {
      name: 'arm/v6 cannot run arm/v7',
      host: 'linux/arm/v6',
      manifests: entries('linux/arm/v7'),
      digest: DIGEST,
      message: `no match for platform in manifest ${DIGEST}: not found`,
    },
    // edge cases
    {
      name: 'only attestations',
      host: 'linux/amd64',
      manifests: entries('unknown/unknown'),
      digest: DIGEST,
      message: `no match for platform in manifest ${DIGEST}: not found`,
    },
    {
      name: 'empty index',
      host: 'linux/amd64',
      manifests: [],
      digest: DIGEST,
      message: `no match for platform in manifest ${DIGEST}: not found`,
    },
    {
      name: '#3 arm64/v10 host matches nothing, not even arm64/v10',
      host: 'linux/arm64/v10',
      manifests: entries('linux/arm64/v10', 'linux/arm64', 'linux/arm/v7'),
      message: 'no match for platform in manifest: not found',
    },
    {
      name: '#3 arm64/v8.10 host matches nothing, not even arm64/v8.10',
      host: 'linux/arm64/v8.10',
      manifests: entries('linux/arm64/v8.10'),
      message: 'no match for platform in manifest: not found',
    },
    {
      name: 'amd64 cannot run arm64',
      host: 'linux/amd64',
      manifests: entries('linux/arm64', 'linux/arm/v7'),
      message: 'no match for platform in manifest: not found',
    },
  ];

describe('selectPlatform: no match', () => {
  for (const c of failures) {
    test(c.name, () => {
      const index =
        c.digest === undefined ? { manifests: c.manifests } : { manifests: c.manifests, digest: c.digest };
      assert.throws(
        () => selectPlatform(index, p(c.host)),
        (err: unknown) => {
          assert.ok(err instanceof NoMatchingPlatformError);
          assert.equal(err.name, 'NoMatchingPlatformError');
          assert.equal(err.message, c.message);
          assert.equal(err.digest, c.digest);
          assert.deepEqual(err.host, p(c.host));
          return true;
        },
      );
    });
  }
});

describe('matchingManifests', () => {
  test('all usable entries, best first, platform-less last', () => {
    const got = matchingManifests(
      entries(
        null,
        'linux/arm/v5',
        'linux/amd64',
        'linux/arm64',
        'linux/arm/v7',
        'unknown/unknown',
        'linux/arm64/v8',
      ),
      p('linux/arm64'),
    );
    assert.deepEqual(
      got.map((e) => e.id),
      ['#3 linux/arm64', '#6 linux/arm64/v8', '#4 linux/arm/v7', '#1 linux/arm/v5', '#0 none'],
    );
  });
});

const formats: Array<{ name: string; input: Platform; want: string }> = [
  { name: 'with variant', input: p('linux/arm/v7'), want: 'linux/arm/v7' },
  { name: 'without variant', input: p('linux/amd64'), want: 'linux/amd64' },
  { name: 'empty variant', input: { os: 'linux', architecture: 'amd64', variant: '' }, want: 'linux/amd64' },
  { name: 'no OS', input: { os: '', architecture: 'amd64' }, want: 'unknown' },
];

describe('formatPlatform', () => {
  for (const c of formats) {
    test(c.name, () => assert.equal(formatPlatform(c.input), c.want));
  }
});
