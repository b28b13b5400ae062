import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyDefaultImageTag,
  formatImageRef,
  goQuote,
  type ImageRef,
  InvalidImageRefError,
  imageTagOrDefault,
  parseImageRef,
} from './image-ref.js';

const SHA256 = `sha256:${'a1'.repeat(32)}`;
const SHA384 = `sha384:${'b2'.repeat(48)}`;
const SHA512 = `sha512:${'c3'.repeat(64)}`;
const HEX64 = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a';

interface OkCase {
  name: string;
  input: string;
  want: ImageRef;
  /** kubelet ParseImageName's tag. */
  tag: string;
}

const valid: OkCase[] = [
  // docs/kubelet-parity.md §3.5
  {
    name: 'familiar official image',
    input: 'ubuntu',
    want: { name: 'docker.io/library/ubuntu', domain: 'docker.io', path: 'library/ubuntu' },
    tag: 'latest',
  },
  {
    name: 'familiar official image with tag',
    input: 'ubuntu:22.04',
    want: { name: 'docker.io/library/ubuntu', domain: 'docker.io', path: 'library/ubuntu', tag: '22.04' },
    tag: '22.04',
  },
  {
    name: 'library/ prefix written out',
    input: 'library/ubuntu',
    want: { name: 'docker.io/library/ubuntu', domain: 'docker.io', path: 'library/ubuntu' },
    tag: 'latest',
  },
  {
    name: 'docker.io with single component gains library/',
    input: 'docker.io/ubuntu',
    want: { name: 'docker.io/library/ubuntu', domain: 'docker.io', path: 'library/ubuntu' },
    tag: 'latest',
  },
  {
    name: 'index.docker.io is canonicalized to docker.io',
    input: 'index.docker.io/foo/bar',
    want: { name: 'docker.io/foo/bar', domain: 'docker.io', path: 'foo/bar' },
    tag: 'latest',
  },
  {
    name: 'index.docker.io single component gains library/',
    input: 'index.docker.io/debian',
    want: { name: 'docker.io/library/debian', domain: 'docker.io', path: 'library/debian' },
    tag: 'latest',
  },
  {
    name: 'three components on Docker Hub',
    input: 'foo/bar/baz',
    want: { name: 'docker.io/foo/bar/baz', domain: 'docker.io', path: 'foo/bar/baz' },
    tag: 'latest',
  },
  {
    name: 'first element without dot or port is a Hub namespace',
    input: 'myregistry/foo',
    want: { name: 'docker.io/myregistry/foo', domain: 'docker.io', path: 'myregistry/foo' },
    tag: 'latest',
  },
  {
    name: 'first element with port is a domain',
    input: 'myregistry:5000/foo',
    want: { name: 'myregistry:5000/foo', domain: 'myregistry:5000', path: 'foo' },
    tag: 'latest',
  },
  {
    name: 'localhost is a domain',
    input: 'localhost/foo',
    want: { name: 'localhost/foo', domain: 'localhost', path: 'foo' },
    tag: 'latest',
  },
  {
    name: 'uppercase first element is a domain',
    input: 'MyHost/foo',
    want: { name: 'MyHost/foo', domain: 'MyHost', path: 'foo' },
    tag: 'latest',
  },
  {
    name: 'registry-1.docker.io is not an alias',
    input: 'registry-1.docker.io/library/ubuntu',
    want: {
      name: 'registry-1.docker.io/library/ubuntu',
      domain: 'registry-1.docker.io',
      path: 'library/ubuntu',
    },
    tag: 'latest',
  },
  {
    name: 'ECR repository with tag',
    input: '123.dkr.ecr.us-west-2.amazonaws.com/app:v1',
    want: {
      name: '123.dkr.ecr.us-west-2.amazonaws.com/app',
      domain: '123.dkr.ecr.us-west-2.amazonaws.com',
      path: 'app',
      tag: 'v1',
    },
    tag: 'v1',
  },
  {
    name: 'ACR nested repository',
    input: 'myreg.azurecr.io/a/b',
    want: { name: 'myreg.azurecr.io/a/b', domain: 'myreg.azurecr.io', path: 'a/b' },
    tag: 'latest',
  },
  {
    name: 'IPv6 domain with port and tag',
    input: '[::1]:5000/foo:v2',
    want: { name: '[::1]:5000/foo', domain: '[::1]:5000', path: 'foo', tag: 'v2' },
    tag: 'v2',
  },
  {
    name: 'digest suppresses the default tag',
    input: `nginx@${SHA256}`,
    want: { name: 'docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx', digest: SHA256 },
    tag: '',
  },
  {
    name: 'tag and digest',
    input: `nginx:1.25@${SHA256}`,
    want: {
      name: 'docker.io/library/nginx',
      domain: 'docker.io',
      path: 'library/nginx',
      tag: '1.25',
      digest: SHA256,
    },
    tag: '1.25',
  },
  // edge cases
  {
    name: 'IPv6 domain without port',
    input: '[::1]/foo',
    want: { name: '[::1]/foo', domain: '[::1]', path: 'foo' },
    tag: 'latest',
  },
  {
    name: 'full IPv6 address',
    input: '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
    want: {
      name: '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
      domain: '[fc00:1:2:3:4:5:6:7]:5000',
      path: 'library/debian',
    },
    tag: 'latest',
  },
  {
    name: 'IPv4 domain with port',
    input: '192.168.0.1:8/debian',
    want: { name: '192.168.0.1:8/debian', domain: '192.168.0.1:8', path: 'debian' },
    tag: 'latest',
  },
  {
    name: 'domain with port, nested path and tag',
    input: 'example.com:443/team/app:2024.01-rc_1',
    want: {
      name: 'example.com:443/team/app',
      domain: 'example.com:443',
      path: 'team/app',
      tag: '2024.01-rc_1',
    },
    tag: '2024.01-rc_1',
  },
  {
    name: 'localhost with port',
    input: 'localhost:5000/a',
    want: { name: 'localhost:5000/a', domain: 'localhost:5000', path: 'a' },
    tag: 'latest',
  },
  {
    name: 'bare localhost is a Hub image',
    input: 'localhost',
    want: { name: 'docker.io/library/localhost', domain: 'docker.io', path: 'library/localhost' },
    tag: 'latest',
  },
  {
    name: 'bare localhost:5000 is a Hub image with tag 5000',
    input: 'localhost:5000',
    want: {
      name: 'docker.io/library/localhost',
      domain: 'docker.io',
      path: 'library/localhost',
      tag: '5000',
    },
    tag: '5000',
  },
  {
    name: 'all-uppercase domain',
    input: 'FOO/bar',
    want: { name: 'FOO/bar', domain: 'FOO', path: 'bar' },
    tag: 'latest',
  },
  {
    name: 'punycode domain',
    input: 'xn--n3h.com:18080/foo',
    want: { name: 'xn--n3h.com:18080/foo', domain: 'xn--n3h.com:18080', path: 'foo' },
    tag: 'latest',
  },
  {
    name: 'underscore in first element keeps it on Docker Hub',
    input: 'test_com/foo',
    want: { name: 'docker.io/test_com/foo', domain: 'docker.io', path: 'test_com/foo' },
    tag: 'latest',
  },
  {
    name: 'invalid host that is a valid path leaves domain empty (upstream quirk)',
    input: 'a_b.c/d',
    want: { name: 'a_b.c/d', domain: '', path: 'a_b.c/d' },
    tag: 'latest',
  },
  {
    name: 'sha384 digest',
    input: `nginx@${SHA384}`,
    want: { name: 'docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx', digest: SHA384 },
    tag: '',
  },
  {
    name: 'sha512 digest',
    input: `quay.io/org/app:v1@${SHA512}`,
    want: { name: 'quay.io/org/app', domain: 'quay.io', path: 'org/app', tag: 'v1', digest: SHA512 },
    tag: 'v1',
  },
  {
    name: 'explicit latest with digest',
    input: `nginx:latest@${SHA256}`,
    want: {
      name: 'docker.io/library/nginx',
      domain: 'docker.io',
      path: 'library/nginx',
      tag: 'latest',
      digest: SHA256,
    },
    tag: 'latest',
  },
  {
    name: 'uppercase tag is allowed',
    input: 'nginx:LATEST',
    want: { name: 'docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx', tag: 'LATEST' },
    tag: 'LATEST',
  },
  {
    name: 'tag may start with underscore',
    input: 'nginx:_x',
    want: { name: 'docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx', tag: '_x' },
    tag: '_x',
  },
  {
    name: 'tag of 128 characters',
    input: `nginx:${'t'.repeat(128)}`,
    want: {
      name: 'docker.io/library/nginx',
      domain: 'docker.io',
      path: 'library/nginx',
      tag: 't'.repeat(128),
    },
    tag: 't'.repeat(128),
  },
  {
    name: 'double underscore separator',
    input: 'a__b',
    want: { name: 'docker.io/library/a__b', domain: 'docker.io', path: 'library/a__b' },
    tag: 'latest',
  },
  {
    name: 'run of dashes separator',
    input: 'a-----b',
    want: { name: 'docker.io/library/a-----b', domain: 'docker.io', path: 'library/a-----b' },
    tag: 'latest',
  },
  {
    name: 'single-character components',
    input: 'd/t',
    want: { name: 'docker.io/d/t', domain: 'docker.io', path: 'd/t' },
    tag: 'latest',
  },
  {
    name: '64 hex characters are allowed after a domain',
    input: `docker.io/${HEX64}`,
    want: { name: `docker.io/library/${HEX64}`, domain: 'docker.io', path: `library/${HEX64}` },
    tag: 'latest',
  },
  {
    name: '63 hex characters are a name',
    input: HEX64.slice(1),
    want: {
      name: `docker.io/library/${HEX64.slice(1)}`,
      domain: 'docker.io',
      path: `library/${HEX64.slice(1)}`,
    },
    tag: 'latest',
  },
  {
    name: 'path of exactly 255 characters',
    input: `example.com/${'a'.repeat(255)}`,
    want: { name: `example.com/${'a'.repeat(255)}`, domain: 'example.com', path: 'a'.repeat(255) },
    tag: 'latest',
  },
  {
    name: 'Hub path of 255 characters including library/',
    input: 'a'.repeat(247),
    want: {
      name: `docker.io/library/${'a'.repeat(247)}`,
      domain: 'docker.io',
      path: `library/${'a'.repeat(247)}`,
    },
    tag: 'latest',
  },
];

describe('parseImageRef: valid references', () => {
  for (const c of valid) {
    test(c.name, () => {
      const got = parseImageRef(c.input);
      assert.deepEqual(got, c.want);
      assert.equal(imageTagOrDefault(got), c.tag);
    });
  }
});

interface ErrCase {
  name: string;
  input: string;
  message: string;
}

const invalid: ErrCase[] = [
  // docs/kubelet-parity.md §3.5
  {
    name: 'uppercase familiar name',
    input: 'Nginx',
    message: 'invalid reference format: repository name (library/Nginx) must be lowercase',
  },
  {
    name: 'uppercase Hub path component',
    input: 'foo/Bar',
    message: 'invalid reference format: repository name (foo/Bar) must be lowercase',
  },
  { name: 'short sha256 digest', input: 'nginx@sha256:abc', message: 'invalid reference format' },
  // lowercase rule: the name as split, up to the first colon
  {
    name: 'uppercase path after a real domain',
    input: 'example.com/Foo:v1',
    message: 'invalid reference format: repository name (Foo) must be lowercase',
  },
  {
    name: 'uppercase name with digest reports up to the first colon',
    input: `Foo@${SHA256}`,
    message: 'invalid reference format: repository name (library/Foo@sha256) must be lowercase',
  },
  {
    name: 'uppercase 64 hex is not an identifier',
    input: HEX64.toUpperCase(),
    message: `invalid reference format: repository name (library/${HEX64.toUpperCase()}) must be lowercase`,
  },
  {
    name: 'uppercase domain that is not a host but lowercases to a path',
    input: 'FOO_BAR/x',
    message: 'repository name must be lowercase',
  },
  // identifiers
  {
    name: 'bare 64-hex identifier',
    input: HEX64,
    message: `invalid repository name (${HEX64}), cannot specify 64-byte hexadecimal strings`,
  },
  // grammar
  { name: 'empty string', input: '', message: 'invalid reference format' },
  { name: 'trailing slash', input: 'foo/', message: 'invalid reference format' },
  { name: 'domain only with slash', input: 'docker.io/', message: 'invalid reference format' },
  { name: 'double slash', input: 'foo//bar', message: 'invalid reference format' },
  { name: 'triple slash', input: 'docker///docker', message: 'invalid reference format' },
  { name: 'leading slash', input: '/foo', message: 'invalid reference format' },
  { name: 'triple underscore', input: 'a___b', message: 'invalid reference format' },
  { name: 'double period', input: 'a..b', message: 'invalid reference format' },
  { name: 'period then underscore', input: 'dock_.er/docker', message: 'invalid reference format' },
  { name: 'leading dash', input: '-docker', message: 'invalid reference format' },
  { name: 'trailing dash in namespace', input: 'docker-/docker', message: 'invalid reference format' },
  { name: 'leading underscore', input: '_docker/_docker', message: 'invalid reference format' },
  { name: 'leading dash in domain', input: '-docker.io/docker/docker', message: 'invalid reference format' },
  { name: 'URL scheme', input: 'https://github.com/docker/docker', message: 'invalid reference format' },
  { name: 'empty tag', input: 'foo:', message: 'invalid reference format' },
  { name: 'empty digest', input: 'foo@', message: 'invalid reference format' },
  { name: 'tag of 129 characters', input: `nginx:${'t'.repeat(129)}`, message: 'invalid reference format' },
  { name: 'tag starting with a period', input: 'nginx:.x', message: 'invalid reference format' },
  { name: 'tag starting with a dash', input: 'nginx:-x', message: 'invalid reference format' },
  { name: 'two tags', input: 'nginx:a:b', message: 'invalid reference format' },
  { name: 'digest before tag', input: `nginx@${SHA256}:v1`, message: 'invalid reference format' },
  { name: 'space', input: 'nginx latest', message: 'invalid reference format' },
  { name: 'IPv6 with zone id', input: '[fe80::1%eth0]:5000/foo', message: 'invalid reference format' },
  { name: 'IPv6 with zone id, no port', input: '[fe80::1%eth0]/foo', message: 'invalid reference format' },
  {
    name: 'IPv4-mapped IPv6',
    input: '[2001:db8:3:4::192.0.2.33]:5000/debian',
    message: 'invalid reference format',
  },
  { name: 'IPv6 without brackets', input: 'fc00::1:5000/debian', message: 'invalid reference format' },
  { name: 'non-numeric port', input: 'localhost:abc/foo', message: 'invalid reference format' },
  { name: 'empty port', input: 'example.com:/foo', message: 'invalid reference format' },
  // length
  {
    name: 'path of 256 characters',
    input: `example.com/${'a'.repeat(256)}`,
    message: 'repository name must not be more than 255 characters',
  },
  {
    name: 'Hub path of 256 characters including library/',
    input: 'a'.repeat(248),
    message: 'repository name must not be more than 255 characters',
  },
  // digests (go-digest)
  {
    name: 'sha256 digest of wrong length',
    input: `nginx@sha256:${'a'.repeat(40)}`,
    message: 'invalid checksum digest length',
  },
  {
    name: 'sha512 digest with sha256 length',
    input: `nginx@sha512:${'a'.repeat(64)}`,
    message: 'invalid checksum digest length',
  },
  {
    name: 'uppercase hex in digest',
    input: `nginx@sha256:${'A'.repeat(64)}`,
    message: 'invalid checksum digest format',
  },
  {
    name: 'unknown algorithm',
    input: `nginx@md5:${'a'.repeat(32)}`,
    message: 'unsupported digest algorithm',
  },
  {
    name: 'unknown algorithm with multi-part name',
    input: `nginx@sha256+b64:${'a'.repeat(64)}`,
    message: 'unsupported digest algorithm',
  },
  {
    name: 'uppercase algorithm after a tag',
    input: `nginx:v1@SHA256:${'a'.repeat(64)}`,
    message: 'invalid checksum digest format',
  },
  {
    name: 'uppercase algorithm without a tag trips the lowercase check first',
    input: `nginx@SHA256:${'a'.repeat(64)}`,
    message: 'invalid reference format: repository name (library/nginx@SHA256) must be lowercase',
  },
];

describe('parseImageRef: invalid references', () => {
  for (const c of invalid) {
    test(c.name, () => {
      assert.throws(
        () => parseImageRef(c.input),
        (err: unknown) => {
          assert.ok(err instanceof InvalidImageRefError);
          assert.equal(err.name, 'InvalidImageRefError');
          assert.equal(err.message, c.message);
          assert.equal(err.reference, c.input);
          return true;
        },
      );
    });
  }
});

test('parseImageRef: long hostile input is rejected quickly', () => {
  const started = performance.now();
  for (const input of [`${'a-'.repeat(20000)}!`, `${'a.'.repeat(20000)}/!`, `${'a'.repeat(50000)}:`]) {
    assert.throws(() => parseImageRef(input), InvalidImageRefError);
  }
  assert.ok(performance.now() - started < 2000);
});

const formats: Array<{ name: string; input: string; want: string }> = [
  { name: 'familiar name', input: 'busybox', want: 'docker.io/library/busybox' },
  { name: 'tag', input: 'busybox:1.36', want: 'docker.io/library/busybox:1.36' },
  { name: 'digest', input: `busybox@${SHA256}`, want: `docker.io/library/busybox@${SHA256}` },
  { name: 'tag and digest', input: `a.io/b:c@${SHA256}`, want: `a.io/b:c@${SHA256}` },
];

describe('formatImageRef', () => {
  for (const c of formats) {
    test(c.name, () => assert.equal(formatImageRef(parseImageRef(c.input)), c.want));
  }
});

const defaults: Array<{ name: string; input: string; want: string }> = [
  // docs/kubelet-parity.md §3.6
  { name: 'familiar name gains :latest', input: 'busybox', want: 'busybox:latest' },
  { name: 'digest is unchanged', input: `busybox@${SHA256}`, want: `busybox@${SHA256}` },
  // edge cases
  { name: 'tag is unchanged', input: 'busybox:1.36', want: 'busybox:1.36' },
  { name: 'tag and digest is unchanged', input: `busybox:1@${SHA256}`, want: `busybox:1@${SHA256}` },
  { name: 'explicit latest is unchanged', input: 'busybox:latest', want: 'busybox:latest' },
  { name: 'not domain-qualified', input: 'library/busybox', want: 'library/busybox:latest' },
  { name: 'qualified name keeps its form', input: 'docker.io/busybox', want: 'docker.io/busybox:latest' },
  { name: 'domain with port', input: 'localhost:5000/app', want: 'localhost:5000/app:latest' },
  { name: 'IPv6 domain', input: '[::1]:5000/app', want: '[::1]:5000/app:latest' },
];

describe('applyDefaultImageTag', () => {
  for (const c of defaults) {
    test(c.name, () => assert.equal(applyDefaultImageTag(c.input), c.want));
  }
});

const defaultErrors: ErrCase[] = [
  {
    name: '#1 reads as kubelet 1.34.2 (parsers.ParseImageName): "couldn\'t parse image name"',
    input: 'Busybox',
    message:
      'couldn\'t parse image name "Busybox": invalid reference format: repository name (library/Busybox) must be lowercase',
  },
  {
    name: 'uppercase name',
    input: 'Nginx',
    message:
      'couldn\'t parse image name "Nginx": invalid reference format: repository name (library/Nginx) must be lowercase',
  },
  { name: 'empty image', input: '', message: 'couldn\'t parse image name "": invalid reference format' },
  {
    name: 'quotes are escaped as Go does',
    input: 'a"b',
    message: 'couldn\'t parse image name "a\\"b": invalid reference format',
  },
];

describe('applyDefaultImageTag: unparsable images', () => {
  for (const c of defaultErrors) {
    test(c.name, () => {
      assert.throws(
        () => applyDefaultImageTag(c.input),
        (err: unknown) => {
          assert.ok(err instanceof InvalidImageRefError);
          assert.equal(err.message, c.message);
          assert.equal(err.reference, c.input);
          assert.ok(err.cause instanceof InvalidImageRefError);
          return true;
        },
      );
    });
  }
});

const quotes: Array<{ name: string; input: string; want: string }> = [
  { name: 'plain', input: 'nginx:1.25', want: '"nginx:1.25"' },
  { name: 'empty', input: '', want: '""' },
  { name: 'quote and backslash', input: 'a"b\\c', want: '"a\\"b\\\\c"' },
  { name: 'named control escapes', input: '\x07\b\f\n\r\t\v', want: '"\\a\\b\\f\\n\\r\\t\\v"' },
  { name: 'other ASCII controls', input: '\x00\x1b\x7f', want: '"\\x00\\x1b\\x7f"' },
  { name: 'printable unicode kept', input: 'café ☃', want: '"café ☃"' },
  { name: 'non-ASCII space escaped', input: '\u00a0', want: '"\\u00a0"' },
  { name: 'C1 control escaped', input: '\u0085', want: '"\\u0085"' },
  { name: 'astral format char escaped', input: '\u{e0001}', want: '"\\U000e0001"' },
  { name: 'lone surrogate becomes U+FFFD', input: '\ud800', want: '"\ufffd"' },
];

describe('goQuote', () => {
  for (const c of quotes) {
    test(c.name, () => assert.equal(goQuote(c.input), c.want));
  }
});
