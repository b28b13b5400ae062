import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DockerConfig } from './docker-config.js';
import { InvalidImageRefError } from './image-ref.js';
import {
  buildKeyring,
  DEFAULT_REGISTRY_KEY,
  isDefaultRegistryMatch,
  type KeyringCredential,
  normalizeKeyringKey,
  unionKeyrings,
  urlsMatch,
} from './keyring.js';

/** A config whose every entry's username names the location it came from, so results are readable. */
const configOf = (...locations: string[]): DockerConfig => ({
  auths: Object.fromEntries(locations.map((l) => [l, { username: `u(${l})`, password: `p(${l})` }])),
});

/** The usernames of a lookup, in order. */
const users = (creds: KeyringCredential[]): string[] => creds.map((c) => c.username);

describe('normalizeKeyringKey (docs/kubelet-parity.md §2.1)', () => {
  const cases: Array<{ name: string; location: string; want: string | undefined }> = [
    {
      name: 'Docker Hub v1 URL becomes the host',
      location: 'https://index.docker.io/v1/',
      want: 'index.docker.io',
    },
    { name: 'leading /v1/ is dropped, the rest kept', location: 'myreg.io/v1/team', want: 'myreg.io/team' },
    { name: 'leading /v2/ is dropped', location: 'https://myreg.azurecr.io/v2/', want: 'myreg.azurecr.io' },
    { name: '/v2 without trailing slash is a path', location: 'myreg.io/v2', want: 'myreg.io/v2' },
    { name: 'only a leading /v1/ counts', location: 'myreg.io/team/v1/', want: 'myreg.io/team/v1/' },
    { name: 'http scheme with port', location: 'http://registry.local:8080', want: 'registry.local:8080' },
    { name: 'bare host', location: 'quay.io', want: 'quay.io' },
    { name: 'path "/" is dropped', location: 'quay.io/', want: 'quay.io' },
    { name: 'trailing slash on a longer path is kept', location: 'quay.io/team/', want: 'quay.io/team/' },
    {
      name: 'wildcard host',
      location: '*.dkr.ecr.us-west-2.amazonaws.com',
      want: '*.dkr.ecr.us-west-2.amazonaws.com',
    },
    { name: 'case is kept', location: 'MyReg.io', want: 'MyReg.io' },
    { name: 'IPv6 literal with port', location: '[::1]:5000', want: '[::1]:5000' },
    { name: 'IPv6 zone is unescaped', location: '[fe80::1%25en0]:5000', want: '[fe80::1%en0]:5000' },
    { name: 'query is dropped', location: 'quay.io?team=a', want: 'quay.io' },
    { name: '? ends the host, so it cannot be a glob', location: 'quay.i?', want: 'quay.i' },
    { name: 'fragment is dropped', location: 'quay.io/a#b', want: 'quay.io/a' },
    { name: 'userinfo is dropped', location: 'https://user:pass@quay.io/team', want: 'quay.io/team' },
    { name: 'path is percent-decoded', location: 'myreg.io/a%20b', want: 'myreg.io/a b' },
    { name: 'empty trailing port is kept', location: 'localhost:', want: 'localhost:' },
    { name: 'uppercase scheme is not a scheme', location: 'HTTPS://quay.io', want: 'HTTPS://quay.io' },
    { name: 'empty location', location: '', want: '' },
    { name: 'wildcard in the port: url.Parse fails', location: '*.example.io:*', want: undefined },
    { name: '[ inside the host: invalid IP-literal', location: 'my[reg].io', want: undefined },
    { name: 'bracketed IPv4 is not an IP-literal', location: '[1.2.3.4]:5000', want: undefined },
    { name: 'bracketed glob is not an IP-literal', location: '[*]:5000', want: undefined },
    // Go 1.24.9 (kubelet 1.34.2), not current Go: issue #13 item 2.
    {
      name: '#2 two colons: only the part after the last must be a port',
      location: 'a:b:5000',
      want: 'a:b:5000',
    },
    { name: '#2 two colons with a scheme', location: 'https://host:1:2/v1/', want: 'host:1:2' },
    {
      name: '#2 junk before [: the IP literal starts at the last [',
      location: 'junk[::1]:5000',
      want: '[::1]:5000',
    },
    { name: '#2 junk before [ and a path', location: 'http://a.b[fe80::1]/team', want: '[fe80::1]/team' },
    { name: '#2 IPv4-mapped IPv6 literal is rejected', location: '[::ffff:102:304]:5000', want: undefined },
    { name: '#2 IPv4-mapped in dotted form is rejected', location: '[::ffff:1.2.3.4]', want: undefined },
    { name: '#2 IPv4-mapped, full form', location: '[0:0:0:0:0:ffff:102:304]', want: undefined },
    { name: 'IPv4-compatible (not mapped) is fine', location: '[::102:304]:5000', want: '[::102:304]:5000' },
    { name: 'NAT64 prefix is not IPv4-mapped', location: '[64:ff9b::1.2.3.4]', want: '[64:ff9b::1.2.3.4]' },
    { name: '] before the last [: invalid port', location: 'a]b[::1]x', want: undefined },
    { name: 'last [ without a later ]', location: '[::1]x[', want: undefined },
    { name: 'character not allowed in a host', location: 'a^b.io', want: undefined },
    { name: 'space in the host', location: 'my reg.io', want: undefined },
    { name: 'percent-escaped ASCII in the host', location: 'h%41st.io', want: undefined },
    { name: 'bad escape in the path', location: 'myreg.io/%zz', want: undefined },
    { name: 'control character', location: 'myreg.io/\u0001', want: undefined },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(normalizeKeyringKey(c.location), c.want);
    });
  }
});

describe('urlsMatch (docs/kubelet-parity.md §2.2)', () => {
  const cases: Array<{ name: string; glob: string; target: string; want: boolean }> = [
    { name: 'wildcard label', glob: '*.azurecr.io', target: 'myreg.azurecr.io/a/b', want: true },
    {
      name: 'several wildcard labels',
      glob: '*.dkr.ecr.*.amazonaws.com',
      target: '1.dkr.ecr.eu-west-1.amazonaws.com/a',
      want: true,
    },
    { name: 'label count differs', glob: '*.azurecr.io', target: 'a.b.azurecr.io/x', want: false },
    { name: 'wildcard inside a label', glob: 'my*.io', target: 'myreg.io/x', want: true },
    { name: 'wildcard inside a label, no match', glob: 'my*.io', target: 'yourreg.io/x', want: false },
    { name: 'wildcard matches the empty string', glob: 'myreg*.io', target: 'myreg.io/x', want: true },
    { name: 'path prefix is a plain string prefix', glob: 'reg.io/a', target: 'reg.io/ab', want: true },
    { name: 'path must be a prefix', glob: 'reg.io/a', target: 'reg.io/b', want: false },
    { name: 'ports equal', glob: 'localhost:5000', target: 'localhost:5000/foo', want: true },
    { name: 'no port vs port', glob: 'localhost', target: 'localhost:5000/foo', want: false },
    { name: 'port vs no port', glob: 'localhost:5000', target: 'localhost/foo', want: false },
    { name: 'wildcard never matches a port', glob: 'localhost:*', target: 'localhost:5000/foo', want: false },
    { name: 'wildcard label does not cover the port', glob: '*', target: 'localhost:5000/foo', want: false },
    { name: 'empty port equals no port', glob: 'localhost:', target: 'localhost/foo', want: true },
    { name: 'case-sensitive', glob: 'MyReg.io', target: 'myreg.io/x', want: false },
    { name: 'IPv6 with port', glob: '[::1]:5000', target: '[::1]:5000/foo', want: true },
    { name: 'IPv6 port differs', glob: '[::1]:5000', target: '[::1]:5001/foo', want: false },
    {
      name: 'upstream: wildcard host with port-like path',
      glob: 'prefix.*.io/path:1111',
      target: 'prefix.docker.io/path/subpath:1111/foo/bar',
      want: false,
    },
    { name: 'unparsable glob never matches', glob: '*.io:*', target: 'a.io/x', want: false },
    { name: 'unparsable target never matches', glob: '*', target: 'a[b]/x', want: false },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(urlsMatch(c.glob, c.target), c.want);
    });
  }
});

describe('isDefaultRegistryMatch (docs/kubelet-parity.md §2.3, upstream test)', () => {
  const cases: Array<{ name: string; image: string; want: boolean }> = [
    { name: 'two segments, no domain', image: 'foo/bar', want: true },
    { name: 'docker.io', image: 'docker.io/foo/bar', want: true },
    { name: 'index.docker.io', image: 'index.docker.io/foo/bar', want: true },
    { name: 'single segment', image: 'foo', want: true },
    { name: 'empty', image: '', want: false },
    { name: 'empty first segment', image: '/foo', want: false },
    { name: 'registry with a dot', image: 'registry.tld/foo/bar', want: false },
    { name: 'registry with a port', image: 'registry:5000/foo/bar', want: false },
    { name: 'suffix docker.io is not Docker Hub', image: 'myhostdocker.io/foo/bar', want: false },
    { name: 'localhost counts (no dot, no colon)', image: 'localhost/foo', want: true },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(isDefaultRegistryMatch(c.image), c.want);
    });
  }
});

describe('buildKeyring lookup (docs/kubelet-parity.md §2.4)', () => {
  const cases: Array<{ name: string; locations: string[]; image: string; want: string[] }> = [
    {
      name: 'ECR wildcard, image with tag',
      locations: ['*.dkr.ecr.us-west-2.amazonaws.com'],
      image: '123.dkr.ecr.us-west-2.amazonaws.com/app:v1',
      want: ['*.dkr.ecr.us-west-2.amazonaws.com'],
    },
    {
      name: 'ECR wildcard in two labels',
      locations: ['*.dkr.ecr.*.amazonaws.com'],
      image: '123.dkr.ecr.eu-central-1.amazonaws.com/app',
      want: ['*.dkr.ecr.*.amazonaws.com'],
    },
    {
      name: 'ACR wildcard',
      locations: ['*.azurecr.io'],
      image: 'myreg.azurecr.io/a/b',
      want: ['*.azurecr.io'],
    },
    { name: 'ACR wildcard, 4 labels vs 3', locations: ['*.azurecr.io'], image: 'a.b.azurecr.io/x', want: [] },
    {
      name: 'https URL with /v2/ is the host',
      locations: ['https://myreg.azurecr.io/v2/'],
      image: 'myreg.azurecr.io/a/b',
      want: ['https://myreg.azurecr.io/v2/'],
    },
    {
      name: 'path key, deeper image',
      locations: ['myreg.azurecr.io/a'],
      image: 'myreg.azurecr.io/a/b',
      want: ['myreg.azurecr.io/a'],
    },
    {
      name: 'path key, string-prefix quirk',
      locations: ['myreg.azurecr.io/a'],
      image: 'myreg.azurecr.io/ab',
      want: ['myreg.azurecr.io/a'],
    },
    {
      name: 'path key, other path',
      locations: ['myreg.azurecr.io/a'],
      image: 'myreg.azurecr.io/b',
      want: [],
    },
    {
      name: 'Docker Hub v1 URL via the fallback',
      locations: ['https://index.docker.io/v1/'],
      image: 'nginx',
      want: ['https://index.docker.io/v1/'],
    },
    {
      name: 'Docker Hub key does not cover quay.io',
      locations: ['https://index.docker.io/v1/'],
      image: 'quay.io/foo',
      want: [],
    },
    { name: 'docker.io key matches directly', locations: ['docker.io'], image: 'nginx', want: ['docker.io'] },
    {
      name: 'registry-1.docker.io never matches Docker Hub',
      locations: ['registry-1.docker.io'],
      image: 'nginx',
      want: [],
    },
    {
      name: '*.docker.io never matches Docker Hub',
      locations: ['*.docker.io'],
      image: 'docker.io/library/nginx',
      want: [],
    },
    {
      name: 'ports equal',
      locations: ['localhost:5000'],
      image: 'localhost:5000/foo',
      want: ['localhost:5000'],
    },
    {
      name: 'key without port, image with port',
      locations: ['localhost'],
      image: 'localhost:5000/foo',
      want: [],
    },
    { name: 'key with port, image without', locations: ['localhost:5000'], image: 'localhost/foo', want: [] },
    {
      name: 'most specific first, every match returned',
      locations: ['quay.io', 'quay.io/coreos', '*.quay.io'],
      image: 'quay.io/coreos/etcd',
      want: ['quay.io/coreos', 'quay.io'],
    },
    { name: 'case-sensitive key', locations: ['MyReg.io'], image: 'myreg.io/x', want: [] },
    {
      name: 'IPv6 literal with port',
      locations: ['[::1]:5000'],
      image: '[::1]:5000/foo',
      want: ['[::1]:5000'],
    },
    // Edge cases beyond the spec table.
    {
      name: 'http URL with port',
      locations: ['http://registry.local:8080'],
      image: 'registry.local:8080/team/app:1',
      want: ['http://registry.local:8080'],
    },
    {
      name: 'myreg.io/v2 without slash is a path key',
      locations: ['myreg.io/v2'],
      image: 'myreg.io/app',
      want: [],
    },
    {
      name: 'myreg.io/v2 path key matches v2* paths',
      locations: ['myreg.io/v2'],
      image: 'myreg.io/v2app',
      want: ['myreg.io/v2'],
    },
    {
      name: 'wildcard in the port is ignored',
      locations: ['localhost:*'],
      image: 'localhost:5000/foo',
      want: [],
    },
    {
      name: 'Docker Hub: docker.io matches directly, index.docker.io is not consulted',
      locations: ['docker.io', 'https://index.docker.io/v1/'],
      image: 'library/nginx:1.25',
      want: ['docker.io'],
    },
    {
      name: 'Docker Hub fallback also covers index.docker.io-written images',
      locations: ['index.docker.io'],
      image: 'index.docker.io/foo/bar',
      want: ['index.docker.io'],
    },
    {
      name: 'fallback only for the exact key index.docker.io',
      locations: ['index.docker.io/v2'],
      image: 'nginx',
      want: [],
    },
    {
      name: 'fallback quirk: localhost images get Docker Hub credentials',
      locations: ['https://index.docker.io/v1/'],
      image: 'localhost/foo',
      want: ['https://index.docker.io/v1/'],
    },
    {
      name: 'no fallback for registries with a dot',
      locations: ['index.docker.io'],
      image: 'my.reg/foo',
      want: [],
    },
    {
      name: 'a match suppresses the fallback',
      locations: ['*', 'index.docker.io'],
      image: 'localhost/foo',
      want: ['*'],
    },
    {
      name: 'digest is dropped before matching',
      locations: ['quay.io/a'],
      image: `quay.io/a@sha256:${'0'.repeat(64)}`,
      want: ['quay.io/a'],
    },
    {
      name: '#2 a key with junk before [ is keyed as the IP literal and matches',
      locations: ['junk[::1]:5000'],
      image: '[::1]:5000/foo',
      want: ['junk[::1]:5000'],
    },
    {
      name: '#2 an IPv4-mapped image gets nothing, not even from *',
      locations: ['*', '[::ffff:102:304]', 'https://index.docker.io/v1/'],
      image: '[::ffff:102:304]/foo',
      want: [],
    },
    {
      name: '#2 an IPv4-mapped image with a port gets nothing from *:5000',
      locations: ['*:5000'],
      image: '[::ffff:102:304]:5000/foo',
      want: [],
    },
    {
      name: '* covers an unported IPv6 image that is not IPv4-mapped',
      locations: ['*'],
      image: '[::102:304]/foo',
      want: ['*'],
    },
    {
      name: 'unparsable entries are skipped, others kept',
      locations: ['my[reg].io', 'quay.io'],
      image: 'quay.io/x',
      want: ['quay.io'],
    },
    { name: 'empty keyring', locations: [], image: 'nginx', want: [] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = buildKeyring(configOf(...c.locations)).lookup(c.image);
      assert.deepEqual(
        users(got),
        c.want.map((l) => `u(${l})`),
      );
    });
  }

  test('upstream vector prefix.*.io/path:1111: the target is a URL, not an image reference', () => {
    const kr = buildKeyring(configOf('prefix.*.io/path:1111'));
    assert.deepEqual(kr.keys, ['prefix.*.io/path:1111']);
    assert.equal(urlsMatch('prefix.*.io/path:1111', 'prefix.docker.io/path/subpath:1111/foo/bar'), false);
    assert.throws(() => kr.lookup('prefix.docker.io/path/subpath:1111/foo/bar'), InvalidImageRefError);
    assert.deepEqual(kr.lookup('prefix.docker.io/path/subpath'), []);
  });

  test('each credential carries password and the matched key', () => {
    const kr = buildKeyring(configOf('quay.io', 'https://index.docker.io/v1/'));
    assert.deepEqual(kr.lookup('quay.io/coreos/etcd:v3'), [
      { username: 'u(quay.io)', password: 'p(quay.io)', key: 'quay.io' },
    ]);
    assert.deepEqual(kr.lookup('nginx'), [
      {
        username: 'u(https://index.docker.io/v1/)',
        password: 'p(https://index.docker.io/v1/)',
        key: DEFAULT_REGISTRY_KEY,
      },
    ]);
  });

  test('index is deduplicated and reverse byte sorted', () => {
    const kr = buildKeyring(
      configOf('quay.io', 'https://quay.io', 'quay.io/coreos', '*.quay.io', 'Quay.io', 'gcr.io'),
    );
    assert.deepEqual(kr.keys, ['quay.io/coreos', 'quay.io', 'gcr.io', 'Quay.io', '*.quay.io']);
  });

  test('several secrets with the same key keep their order', () => {
    const first: DockerConfig = { auths: { 'quay.io': { username: 'first', password: '1' } } };
    const second: DockerConfig = { auths: { 'https://quay.io/v1/': { username: 'second', password: '2' } } };
    const third: DockerConfig = { auths: { 'quay.io': { username: 'third', password: '3' } } };
    assert.deepEqual(users(buildKeyring(first, second, third).lookup('quay.io/x')), [
      'first',
      'second',
      'third',
    ]);
    assert.deepEqual(users(buildKeyring(third, second, first).lookup('quay.io/x')), [
      'third',
      'second',
      'first',
    ]);
  });

  test('one keyring from several secrets sorts across them (unlike a union)', () => {
    const broad: DockerConfig = { auths: { 'quay.io': { username: 'broad', password: '1' } } };
    const narrow: DockerConfig = { auths: { 'quay.io/coreos': { username: 'narrow', password: '2' } } };
    assert.deepEqual(users(buildKeyring(broad, narrow).lookup('quay.io/coreos/etcd')), ['narrow', 'broad']);
    assert.deepEqual(
      users(unionKeyrings(buildKeyring(broad), buildKeyring(narrow)).lookup('quay.io/coreos/etcd')),
      ['broad', 'narrow'],
    );
  });

  test('returned credentials are copies', () => {
    const kr = buildKeyring(configOf('quay.io'));
    const got = kr.lookup('quay.io/x');
    got[0]!.password = 'changed';
    assert.equal(kr.lookup('quay.io/x')[0]!.password, 'p(quay.io)');
  });

  test('an unparsable image throws InvalidImageRefError', () => {
    assert.throws(() => buildKeyring(configOf('quay.io')).lookup('Quay.io/Foo'), InvalidImageRefError);
    assert.throws(() => buildKeyring().lookup('nginx@sha256:abc'), InvalidImageRefError);
  });
});

describe('unionKeyrings (docs/kubelet-parity.md §1.5, §2.4)', () => {
  const cases: Array<{ name: string; secret: string[]; node: string[]; image: string; want: string[] }> = [
    {
      name: 'secret keyring first, then node, no cross-keyring sorting',
      secret: ['quay.io'],
      node: ['quay.io/coreos'],
      image: 'quay.io/coreos/etcd',
      want: ['secret:quay.io', 'node:quay.io/coreos'],
    },
    {
      name: 'Docker Hub fallback is per keyring',
      secret: ['quay.io'],
      node: ['index.docker.io'],
      image: 'nginx',
      want: ['node:index.docker.io'],
    },
    {
      name: 'both keyrings fall back independently',
      secret: ['https://index.docker.io/v1/'],
      node: ['index.docker.io'],
      image: 'nginx',
      want: ['secret:https://index.docker.io/v1/', 'node:index.docker.io'],
    },
    {
      name: 'a direct match in one keyring does not stop the other one falling back',
      secret: ['docker.io'],
      node: ['index.docker.io'],
      image: 'nginx',
      want: ['secret:docker.io', 'node:index.docker.io'],
    },
    { name: 'nothing matches anywhere', secret: ['quay.io'], node: ['gcr.io'], image: 'nginx', want: [] },
  ];
  const tagged = (prefix: string, locations: string[]): DockerConfig => ({
    auths: Object.fromEntries(locations.map((l) => [l, { username: `${prefix}:${l}`, password: 'x' }])),
  });
  for (const c of cases) {
    test(c.name, () => {
      const union = unionKeyrings(
        buildKeyring(tagged('secret', c.secret)),
        buildKeyring(tagged('node', c.node)),
      );
      assert.deepEqual(users(union.lookup(c.image)), c.want);
    });
  }

  test('nested unions concatenate in order', () => {
    const a = buildKeyring(tagged('a', ['quay.io']));
    const b = buildKeyring(tagged('b', ['quay.io']));
    const c = buildKeyring(tagged('c', ['quay.io']));
    assert.deepEqual(users(unionKeyrings(a, unionKeyrings(b, c)).lookup('quay.io/x')), [
      'a:quay.io',
      'b:quay.io',
      'c:quay.io',
    ]);
  });

  test('empty union returns nothing but still validates the image', () => {
    assert.deepEqual(unionKeyrings().lookup('nginx'), []);
    assert.throws(() => unionKeyrings().lookup('Nginx'), InvalidImageRefError);
  });
});

describe('buildKeyring keys under Go 1.24.9 (issue #13 item 2)', () => {
  test('#2 a host with two colons is a key (SplitHostPort fails: one label, no port)', () => {
    const kr = buildKeyring(configOf('a:b:5000', 'quay.io'));
    assert.deepEqual(kr.keys, ['quay.io', 'a:b:5000']);
  });
  test('#2 junk[::1]:5000 is indexed as [::1]:5000', () => {
    assert.deepEqual(buildKeyring(configOf('junk[::1]:5000')).keys, ['[::1]:5000']);
  });
  test('#2 an IPv4-mapped key is dropped', () => {
    assert.deepEqual(buildKeyring(configOf('[::ffff:102:304]:5000')).keys, []);
  });
});
