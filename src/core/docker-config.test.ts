import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AUTH_FIELD_FORMAT_MESSAGE,
  type DockerConfig,
  DockerConfigError,
  type DockerConfigFormat,
  InvalidSecretDataError,
  MAX_SECRET_DATA_BYTES,
  mergeDockerConfigs,
  mergeManagedEntries,
  nodeDockerConfigSearchPaths,
  parseDockerConfig,
  renderDockerConfigJson,
  secretDataBytes,
  selectNodeDockerConfig,
  validateDockerConfigJsonSecretData,
  validateSecretDataSize,
} from './docker-config.js';

const SECRET = 'hunter2-s3cr3t';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unpadded = (s: string): string => b64(s).replace(/=+$/, '');
const configJson = (auths: Record<string, unknown>): string => JSON.stringify({ auths });

describe('parseDockerConfig: the auth field (docs/kubelet-parity.md §1.3)', () => {
  const cases: Array<{ name: string; auth: string; want: { username: string; password: string } }> = [
    {
      name: 'unpadded decodes with RawStdEncoding',
      auth: 'dXNlcjpwYXNz',
      want: { username: 'user', password: 'pass' },
    },
    {
      name: 'padded decodes with StdEncoding; split at the first colon only',
      auth: 'dXNlcjpwYXNzOjE=',
      want: { username: 'user', password: 'pass:1' },
    },
    { name: 'empty password', auth: 'dTo=', want: { username: 'u', password: '' } },
    {
      name: 'trailing newline is trimmed for the padding test and skipped by the decoder',
      auth: 'dTo=\n',
      want: { username: 'u', password: '' },
    },
    {
      name: 'newlines inside the value are skipped',
      auth: 'dXNl\ncjpw\r\nYXNz',
      want: { username: 'user', password: 'pass' },
    },
    { name: 'empty username', auth: b64(':p'), want: { username: '', password: 'p' } },
    {
      name: 'non-zero trailing bits are accepted (Go is not strict)',
      auth: 'dTp=',
      want: { username: 'u', password: '' },
    },
    { name: 'UTF-8 password', auth: b64('user:pässwörd'), want: { username: 'user', password: 'pässwörd' } },
    {
      name: 'unpadded form of a value that needs padding',
      auth: unpadded('ab:c'),
      want: { username: 'ab', password: 'c' },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = parseDockerConfig(configJson({ 'quay.io': { auth: c.auth } }), 'config.json');
      assert.deepEqual(got, { auths: { 'quay.io': c.want } });
    });
  }

  const bad: Array<{ name: string; auth: string; detail?: RegExp }> = [
    { name: 'no colon ("nocolon")', auth: 'bm9jb2xvbg==' },
    { name: 'no colon, unpadded', auth: unpadded('nocolon') },
    { name: 'padding after a full quantum', auth: 'dXNlcjpwYXNz=', detail: /input byte 12/ },
    {
      name: 'padding on an unpadded-length value ("=" decides StdEncoding)',
      auth: 'dTo==',
      detail: /input byte 4/,
    },
    { name: 'missing padding character', auth: 'dQ=', detail: /input byte 3/ },
    { name: 'invalid character', auth: 'dX!lcjpwYXNz', detail: /input byte 2/ },
    { name: 'URL-safe alphabet is not accepted', auth: 'dXNlcj_wYXNz', detail: /input byte 6/ },
    { name: 'a single trailing character cannot be decoded', auth: 'dXNlcjpwYXNzA', detail: /input byte 12/ },
    {
      name: 'spaces are illegal even though TrimSpace is used for the padding test',
      auth: ' dTo=',
      detail: /input byte 0/,
    },
    { name: 'data after padding', auth: 'dTo=dTo=', detail: /input byte 4/ },
    { name: 'padding inside an unpadded value', auth: 'dTo=dTo', detail: /input byte 3/ },
    { name: 'URL-safe "-" in the last partial quantum', auth: 'dXNlcjpwYX-', detail: /input byte 10/ },
    {
      name: 'invalid character deep inside a long value',
      auth: `${'QUFB'.repeat(5000)}!QUFB`,
      detail: /input byte 20000/,
    },
    { name: 'trailing spaces make the value illegal', auth: 'dTo=  ', detail: /input byte 4/ },
  ];
  for (const c of bad) {
    test(`rejects: ${c.name}`, () => {
      const text = configJson({ 'quay.io': { auth: c.auth } });
      assert.throws(
        () => parseDockerConfig(text, 'config.json'),
        (err: unknown) => {
          assert.ok(err instanceof DockerConfigError);
          assert.ok(err.message.includes(AUTH_FIELD_FORMAT_MESSAGE), err.message);
          assert.ok(err.message.includes('"quay.io"'), err.message);
          assert.ok(err.message.startsWith('invalid config.json'), err.message);
          assert.ok(!err.message.includes(c.auth.trim()), 'message must not echo the auth value');
          if (c.detail) assert.match(err.message, c.detail);
          assert.equal(err.format, 'config.json');
          assert.equal(err.registry, 'quay.io');
          return true;
        },
      );
    });
  }
});

describe('parseDockerConfig: formats and fields (docs/kubelet-parity.md §1.2)', () => {
  const cases: Array<{ name: string; format: DockerConfigFormat; text: string; want: DockerConfig }> = [
    {
      name: 'config.json with username/password/email',
      format: 'config.json',
      text: configJson({ 'quay.io': { username: 'u', password: SECRET, email: 'u@example.com' } }),
      want: { auths: { 'quay.io': { username: 'u', password: SECRET, email: 'u@example.com' } } },
    },
    {
      name: 'auth overrides username and password',
      format: 'config.json',
      text: configJson({ r: { username: 'other', password: 'other', auth: b64('user:pass') } }),
      want: { auths: { r: { username: 'user', password: 'pass' } } },
    },
    {
      name: 'empty auth leaves username and password',
      format: 'config.json',
      text: configJson({ r: { username: 'u', password: 'p', auth: '' } }),
      want: { auths: { r: { username: 'u', password: 'p' } } },
    },
    {
      name: 'config.json without auths is valid and empty',
      format: 'config.json',
      text: '{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}',
      want: { auths: {} },
    },
    {
      name: 'config.json auths null is empty',
      format: 'config.json',
      text: '{"auths":null}',
      want: { auths: {} },
    },
    {
      name: 'config.json top-level null is empty (Go)',
      format: 'config.json',
      text: 'null',
      want: { auths: {} },
    },
    {
      name: 'ignored entry fields: identitytoken, registrytoken, serveraddress',
      format: 'config.json',
      text: configJson({
        r: {
          username: 'u',
          password: 'p',
          identitytoken: 'tok',
          registrytoken: 5,
          serveraddress: 'https://r',
        },
      }),
      want: { auths: { r: { username: 'u', password: 'p' } } },
    },
    {
      name: 'ignored top-level fields: credsStore, credHelpers, HttpHeaders, unknown',
      format: 'config.json',
      text: JSON.stringify({
        auths: { r: { username: 'u', password: 'p' } },
        credsStore: 'osxkeychain',
        credHelpers: { 'gcr.io': 'gcloud' },
        HttpHeaders: { 'User-Agent': 'x' },
        experimental: [1, 2],
      }),
      want: { auths: { r: { username: 'u', password: 'p' } } },
    },
    {
      name: 'field names match case-insensitively, as Go encoding/json does',
      format: 'config.json',
      text: '{"Auths":{"r":{"USERNAME":"u","Password":"p","EMAIL":"e"}}}',
      want: { auths: { r: { username: 'u', password: 'p', email: 'e' } } },
    },
    {
      name: 'Go folding also maps U+017F (long s) to s',
      format: 'config.json',
      text: '{"auths":{"r":{"u\u017fername":"x","pa\u017f\u017fword":"y"}}}',
      want: { auths: { r: { username: 'x', password: 'y' } } },
    },
    {
      name: 'case variants of auths are decoded into the same map',
      format: 'config.json',
      text: '{"auths":{"a":{"username":"1","password":"1"}},"AUTHS":{"b":{"username":"2","password":"2"}}}',
      want: { auths: { a: { username: '1', password: '1' }, b: { username: '2', password: '2' } } },
    },
    {
      name: 'null fields are left empty',
      format: 'config.json',
      text: configJson({ r: { username: null, password: 'p', auth: null } }),
      want: { auths: { r: { username: '', password: 'p' } } },
    },
    {
      name: 'a null entry has empty credentials',
      format: 'config.json',
      text: configJson({ r: null }),
      want: { auths: { r: { username: '', password: '' } } },
    },
    {
      name: 'keys are kept as written',
      format: 'config.json',
      text: `{"auths":{"https://index.docker.io/v1/":{"auth":"${b64('a:b')}"},"__proto__":{"auth":"${b64('c:d')}"}}}`,
      want: JSON.parse(
        '{"auths":{"https://index.docker.io/v1/":{"username":"a","password":"b"},"__proto__":{"username":"c","password":"d"}}}',
      ),
    },
    {
      name: 'dockercfg bare map',
      format: 'dockercfg',
      text: JSON.stringify({ 'quay.io': { auth: b64('user:pass'), email: 'e@x' } }),
      want: { auths: { 'quay.io': { username: 'user', password: 'pass', email: 'e@x' } } },
    },
    { name: 'dockercfg empty map', format: 'dockercfg', text: '{}', want: { auths: {} } },
    {
      name: 'dockercfg given a config.json document reads "auths" as a registry with empty credentials',
      format: 'dockercfg',
      text: configJson({ 'quay.io': { auth: b64('user:pass') } }),
      want: { auths: { auths: { username: '', password: '' } } },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(parseDockerConfig(c.text, c.format), c.want);
    });
  }

  const bad: Array<{ name: string; format: DockerConfigFormat; text: string; message: RegExp }> = [
    {
      name: 'invalid JSON',
      format: 'config.json',
      text: `{"auths": {"r": {"password": "${SECRET}"`,
      message: /invalid config\.json: not valid JSON/,
    },
    {
      name: 'invalid JSON, dockercfg',
      format: 'dockercfg',
      text: `${SECRET}`,
      message: /invalid \.dockercfg: not valid JSON.*no "auths" wrapper/,
    },
    { name: 'empty text', format: 'config.json', text: '', message: /not valid JSON/ },
    {
      name: 'top-level array',
      format: 'config.json',
      text: `["${SECRET}"]`,
      message: /top level must be a JSON object, got array/,
    },
    { name: 'top-level string, dockercfg', format: 'dockercfg', text: `"${SECRET}"`, message: /got string/ },
    {
      name: 'auths is a string',
      format: 'config.json',
      text: `{"auths":"${SECRET}"}`,
      message: /"auths" must be an object/,
    },
    { name: 'auths is an array', format: 'config.json', text: '{"auths":[]}', message: /got array/ },
    {
      name: 'HttpHeaders is not an object of strings',
      format: 'config.json',
      text: '{"HttpHeaders":{"a":1}}',
      message: /"HttpHeaders" must be an object/,
    },
    {
      name: 'entry is a string',
      format: 'config.json',
      text: configJson({ r: SECRET }),
      message: /entry "r": must be an object/,
    },
    {
      name: 'entry is an array, dockercfg',
      format: 'dockercfg',
      text: '{"r":[]}',
      message: /entry "r": must be an object.*got array/,
    },
    {
      name: 'username is a number',
      format: 'config.json',
      text: configJson({ r: { username: 5 } }),
      message: /field "username" must be a string, got number/,
    },
    {
      name: 'password is an object',
      format: 'config.json',
      text: configJson({ r: { password: { v: SECRET } } }),
      message: /field "password" must be a string, got object/,
    },
    {
      name: 'auth is a bool',
      format: 'dockercfg',
      text: '{"r":{"auth":true}}',
      message: /field "auth" must be a string, got bool/,
    },
    {
      name: 'userinfo in a key is redacted in the message',
      format: 'config.json',
      text: configJson({ [`https://bob:${SECRET}@quay.io`]: { auth: 'bm9jb2xvbg==' } }),
      message: /entry "<redacted>@quay\.io"/,
    },
  ];
  for (const c of bad) {
    test(`rejects: ${c.name}`, () => {
      assert.throws(
        () => parseDockerConfig(c.text, c.format),
        (err: unknown) => {
          assert.ok(err instanceof DockerConfigError);
          assert.match(err.message, c.message);
          assert.ok(!err.message.includes(SECRET), 'message must not contain file contents');
          assert.equal(err.cause, undefined, 'no cause that could quote the input');
          assert.equal(err.format, c.format);
          return true;
        },
      );
    });
  }
});

describe('renderDockerConfigJson', () => {
  const cases: Array<{ name: string; config: DockerConfig; want: string }> = [
    { name: 'empty', config: { auths: {} }, want: '{"auths":{}}' },
    {
      name: 'one entry with auth',
      config: { auths: { 'quay.io': { username: 'user', password: 'pass' } } },
      want: '{"auths":{"quay.io":{"username":"user","password":"pass","auth":"dXNlcjpwYXNz"}}}',
    },
    {
      name: 'email kept, keys sorted, numeric-looking keys sorted as strings',
      config: {
        auths: {
          'quay.io': { username: 'u', password: 'p', email: 'e@x' },
          '9': { username: 'a', password: 'b' },
          '10': { username: 'a', password: 'b' },
          'gcr.io': { username: 'oauth2accesstoken', password: 'ya29' },
        },
      },
      want:
        '{"auths":{"10":{"username":"a","password":"b","auth":"YTpi"},"9":{"username":"a","password":"b","auth":"YTpi"},' +
        '"gcr.io":{"username":"oauth2accesstoken","password":"ya29","auth":"b2F1dGgyYWNjZXNzdG9rZW46eWEyOQ=="},' +
        '"quay.io":{"username":"u","password":"p","email":"e@x","auth":"dTpw"}}}',
    },
    {
      name: 'UTF-8 password, padded auth',
      config: { auths: { r: { username: 'ü', password: 'p:ä' } } },
      want: `{"auths":{"r":{"username":"ü","password":"p:ä","auth":"${b64('ü:p:ä')}"}}}`,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = renderDockerConfigJson(c.config);
      assert.equal(got, c.want);
      assert.equal(renderDockerConfigJson(c.config), got, 'byte-stable');
      const back = parseDockerConfig(got, 'config.json');
      for (const [key, entry] of Object.entries(c.config.auths)) assert.deepEqual(back.auths[key], entry);
    });
  }

  test('insertion order does not change the bytes', () => {
    const a = { auths: { x: { username: 'a', password: 'b' }, y: { username: 'c', password: 'd' } } };
    const b = { auths: { y: { username: 'c', password: 'd' }, x: { username: 'a', password: 'b' } } };
    assert.equal(renderDockerConfigJson(a), renderDockerConfigJson(b));
  });

  test('rejects a username containing ":" without echoing credentials', () => {
    assert.throws(
      () => renderDockerConfigJson({ auths: { 'quay.io': { username: 'a:b', password: SECRET } } }),
      (err: unknown) =>
        err instanceof DockerConfigError &&
        /"quay\.io".*username contains ":"/.test(err.message) &&
        !err.message.includes(SECRET) &&
        !err.message.includes('a:b'),
    );
  });
});

describe('mergeDockerConfigs (earlier argument wins)', () => {
  const u = (username: string) => ({ username, password: `${username}-pw` });
  const cases: Array<{ name: string; inputs: DockerConfig[]; want: DockerConfig }> = [
    { name: 'no inputs', inputs: [], want: { auths: {} } },
    { name: 'single input is copied', inputs: [{ auths: { a: u('1') } }], want: { auths: { a: u('1') } } },
    {
      name: 'same key: first argument wins',
      inputs: [{ auths: { 'quay.io': u('fresh') } }, { auths: { 'quay.io': u('stale'), 'gcr.io': u('g') } }],
      want: { auths: { 'quay.io': u('fresh'), 'gcr.io': u('g') } },
    },
    {
      name: 'three inputs, priority by position',
      inputs: [
        { auths: { a: u('1') } },
        { auths: { a: u('2'), b: u('2') } },
        { auths: { a: u('3'), b: u('3'), c: u('3') } },
      ],
      want: { auths: { a: u('1'), b: u('2'), c: u('3') } },
    },
    {
      name: 'keys are literal: quay.io and https://quay.io/v1/ are both kept',
      inputs: [{ auths: { 'quay.io': u('1') } }, { auths: { 'https://quay.io/v1/': u('2') } }],
      want: { auths: { 'quay.io': u('1'), 'https://quay.io/v1/': u('2') } },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const snapshot = structuredClone(c.inputs);
      const got = mergeDockerConfigs(...c.inputs);
      assert.deepEqual(got, c.want);
      assert.deepEqual(c.inputs, snapshot, 'inputs unchanged');
      for (const input of c.inputs)
        for (const e of Object.values(got.auths)) assert.ok(!Object.values(input.auths).includes(e));
    });
  }
});

describe('mergeManagedEntries', () => {
  const ours = (username: string) => ({ username, password: `${username}-pw` });
  const rendered = (username: string) => ({
    username,
    password: `${username}-pw`,
    auth: b64(`${username}:${username}-pw`),
  });
  const theirs = { auth: b64('them:x'), identitytoken: 'keep-me', extra: { n: 1.5 } };

  const cases: Array<{
    name: string;
    existing: unknown;
    managed: DockerConfig;
    previous: string[];
    want: Record<string, unknown>;
    managedKeys: string[];
    adopted?: string[];
  }> = [
    {
      name: 'no existing file',
      existing: undefined,
      managed: { auths: { 'quay.io': ours('q') } },
      previous: [],
      want: { auths: { 'quay.io': rendered('q') } },
      managedKeys: ['quay.io'],
    },
    {
      name: 'existing null document',
      existing: null,
      managed: { auths: {} },
      previous: [],
      want: { auths: {} },
      managedKeys: [],
    },
    {
      name: 'keeps top-level fields and unmanaged entries, adds ours at the end in sorted order',
      existing: { credsStore: 'desktop', auths: { 'gcr.io': theirs }, HttpHeaders: { a: 'b' } },
      managed: { auths: { 'z.io': ours('z'), 'a.io': ours('a') } },
      previous: [],
      want: {
        credsStore: 'desktop',
        auths: { 'gcr.io': theirs, 'a.io': rendered('a'), 'z.io': rendered('z') },
        HttpHeaders: { a: 'b' },
      },
      managedKeys: ['a.io', 'z.io'],
    },
    {
      name: 'replaces our entries in place and removes ones no longer managed',
      existing: { auths: { 'old.io': rendered('old'), 'gcr.io': theirs, 'quay.io': rendered('stale') } },
      managed: { auths: { 'quay.io': ours('fresh') } },
      previous: ['old.io', 'quay.io'],
      want: { auths: { 'gcr.io': theirs, 'quay.io': rendered('fresh') } },
      managedKeys: ['quay.io'],
    },
    {
      name: 'adds auths when the file has none, after the other fields',
      existing: { credHelpers: { 'gcr.io': 'gcloud' } },
      managed: { auths: { 'quay.io': ours('q') } },
      previous: ['gone.io'],
      want: { credHelpers: { 'gcr.io': 'gcloud' }, auths: { 'quay.io': rendered('q') } },
      managedKeys: ['quay.io'],
    },
    {
      name: 'auths null is treated as empty',
      existing: { auths: null },
      managed: { auths: { 'quay.io': ours('q') } },
      previous: [],
      want: { auths: { 'quay.io': rendered('q') } },
      managedKeys: ['quay.io'],
    },
    {
      name: 'overwriting an entry we did not own is reported as adopted',
      existing: { auths: { 'quay.io': theirs } },
      managed: { auths: { 'quay.io': ours('q') } },
      previous: [],
      want: { auths: { 'quay.io': rendered('q') } },
      managedKeys: ['quay.io'],
      adopted: ['quay.io'],
    },
    {
      name: 'a case variant of auths is left alone',
      existing: { Auths: { 'x.io': theirs } },
      managed: { auths: { 'quay.io': ours('q') } },
      previous: [],
      want: { Auths: { 'x.io': theirs }, auths: { 'quay.io': rendered('q') } },
      managedKeys: ['quay.io'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const before = JSON.stringify(c.existing);
      const got = mergeManagedEntries(c.existing, c.managed, c.previous);
      assert.deepEqual(got.json, c.want);
      assert.equal(JSON.stringify(got.json), JSON.stringify(c.want), 'field order');
      assert.deepEqual(got.managedKeys, c.managedKeys);
      assert.deepEqual(got.adopted, c.adopted ?? []);
      assert.equal(JSON.stringify(c.existing), before, 'existing not modified');
      // Idempotent: merging again with what we just wrote changes nothing.
      const again = mergeManagedEntries(JSON.parse(JSON.stringify(got.json)), c.managed, got.managedKeys);
      assert.equal(JSON.stringify(again.json), JSON.stringify(got.json));
      assert.deepEqual(again.adopted, []);
    });
  }

  test('unmanaged values are the same objects (untouched)', () => {
    const existing = { auths: { 'gcr.io': theirs }, other: { deep: [1, 2] } };
    const got = mergeManagedEntries(existing, { auths: {} }, []);
    assert.equal((got.json.auths as Record<string, unknown>)['gcr.io'], theirs);
    assert.equal(got.json.other, existing.other);
  });

  test('the result parses as a kubelet config.json', () => {
    const got = mergeManagedEntries({ auths: { 'gcr.io': theirs } }, { auths: { 'quay.io': ours('q') } }, []);
    assert.deepEqual(parseDockerConfig(JSON.stringify(got.json), 'config.json'), {
      auths: { 'gcr.io': { username: 'them', password: 'x' }, 'quay.io': ours('q') },
    });
  });

  const bad: Array<{ name: string; existing: unknown; message: RegExp }> = [
    { name: 'array document', existing: [SECRET], message: /not a JSON object \(got array\); back it up/ },
    { name: 'string document', existing: SECRET, message: /got string/ },
    { name: 'auths is a string', existing: { auths: SECRET }, message: /"auths" of type string/ },
    { name: 'auths is an array', existing: { auths: [] }, message: /"auths" of type array/ },
  ];
  for (const c of bad) {
    test(`rejects: ${c.name}`, () => {
      assert.throws(
        () => mergeManagedEntries(c.existing, { auths: {} }, []),
        (err: unknown) =>
          err instanceof DockerConfigError && c.message.test(err.message) && !err.message.includes(SECRET),
      );
    });
  }
});

describe('nodeDockerConfigSearchPaths (docs/kubelet-parity.md §1.1)', () => {
  const cases: Array<{ name: string; root: string; cwd: string; home: string | undefined; want: string[] }> =
    [
      {
        name: 'defaults',
        root: '/var/lib/kubelet',
        cwd: '/',
        home: '/root',
        want: [
          '/var/lib/kubelet/config.json',
          '/config.json',
          '/root/.docker/config.json',
          '/.docker/config.json',
          '/var/lib/kubelet/.dockercfg',
          '/.dockercfg',
          '/root/.dockercfg',
          '/.dockercfg',
        ],
      },
      {
        name: 'cwd elsewhere, trailing slashes cleaned',
        root: '/var/lib/kubelet/',
        cwd: '/opt/k8s/',
        home: '/home/kube/',
        want: [
          '/var/lib/kubelet/config.json',
          '/opt/k8s/config.json',
          '/home/kube/.docker/config.json',
          '/.docker/config.json',
          '/var/lib/kubelet/.dockercfg',
          '/opt/k8s/.dockercfg',
          '/home/kube/.dockercfg',
          '/.dockercfg',
        ],
      },
      {
        name: 'empty HOME: UserHomeDir fails, "" is kept and resolves against cwd',
        root: '/var/lib/kubelet',
        cwd: '/srv',
        home: '',
        want: [
          '/var/lib/kubelet/config.json',
          '/srv/config.json',
          '/srv/.docker/config.json',
          '/.docker/config.json',
          '/var/lib/kubelet/.dockercfg',
          '/srv/.dockercfg',
          '/srv/.dockercfg',
          '/.dockercfg',
        ],
      },
      {
        name: 'unset HOME behaves like empty HOME',
        root: '/var/lib/kubelet',
        cwd: '/',
        home: undefined,
        want: [
          '/var/lib/kubelet/config.json',
          '/config.json',
          '/.docker/config.json',
          '/.docker/config.json',
          '/var/lib/kubelet/.dockercfg',
          '/.dockercfg',
          '/.dockercfg',
          '/.dockercfg',
        ],
      },
      {
        name: 'relative root dir and relative HOME resolve against cwd',
        root: 'kubelet/../state',
        cwd: '/data',
        home: 'home',
        want: [
          '/data/state/config.json',
          '/data/config.json',
          '/data/home/.docker/config.json',
          '/.docker/config.json',
          '/data/state/.dockercfg',
          '/data/.dockercfg',
          '/data/home/.dockercfg',
          '/.dockercfg',
        ],
      },
    ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(nodeDockerConfigSearchPaths(c.root, c.cwd, c.home), c.want);
    });
  }
});

describe('selectNodeDockerConfig (docs/kubelet-parity.md §1.1)', () => {
  const good = (user: string) => configJson({ 'quay.io': { auth: b64(`${user}:pw`) } });
  const goodCfg = (user: string) => JSON.stringify({ 'quay.io': { auth: b64(`${user}:pw`) } });
  const badAuth = configJson({ 'quay.io': { auth: 'bm9jb2xvbg==' } });
  const paths = nodeDockerConfigSearchPaths('/var/lib/kubelet', '/', '/root');
  const [rootJson, cwdJson, homeJson, slashJson, rootCfg, cwdCfg, homeCfg] = paths as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const creds = (user: string) => ({ auths: { 'quay.io': { username: user, password: 'pw' } } });

  const cases: Array<{
    name: string;
    files: Record<string, string>;
    want: { path: string; config: DockerConfig } | undefined;
  }> = [
    { name: 'no files at all', files: {}, want: undefined },
    {
      name: 'root-dir config.json wins over later ones (no merging)',
      files: { [rootJson]: good('root'), [homeJson]: good('home'), [rootCfg]: goodCfg('cfg') },
      want: { path: rootJson, config: creds('root') },
    },
    {
      name: 'missing files are skipped',
      files: { [homeJson]: good('home') },
      want: { path: homeJson, config: creds('home') },
    },
    {
      name: 'invalid JSON is skipped',
      files: { [rootJson]: '{not json', [cwdJson]: good('cwd') },
      want: { path: cwdJson, config: creds('cwd') },
    },
    {
      name: 'a bad auth fails the whole file and the search moves on',
      files: { [rootJson]: badAuth, [slashJson]: good('slash') },
      want: { path: slashJson, config: creds('slash') },
    },
    {
      name: 'config.json without auths stops the search; .dockercfg is not consulted',
      files: { [rootJson]: '{"credsStore":"desktop"}', [homeJson]: good('home'), [rootCfg]: goodCfg('cfg') },
      want: { path: rootJson, config: { auths: {} } },
    },
    {
      name: '.dockercfg only when no config.json is valid',
      files: { [rootJson]: badAuth, [cwdJson]: '[]', [cwdCfg]: goodCfg('cwd'), [homeCfg]: goodCfg('home') },
      want: { path: cwdCfg, config: creds('cwd') },
    },
    {
      name: 'invalid .dockercfg files are skipped too',
      files: { [rootCfg]: goodCfg('x').slice(1), [homeCfg]: goodCfg('home') },
      want: { path: homeCfg, config: creds('home') },
    },
    {
      name: 'nothing valid anywhere',
      files: { [rootJson]: badAuth, [rootCfg]: '"str"' },
      want: undefined,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const candidates = paths.map((path) => ({ path, text: c.files[path] }));
      assert.deepEqual(selectNodeDockerConfig(candidates), c.want);
    });
  }

  test('config.json candidates are tried before .dockercfg even if listed after', () => {
    const got = selectNodeDockerConfig([
      { path: '/a/.dockercfg', text: goodCfg('cfg') },
      { path: '/b/config.json', text: good('json') },
    ]);
    assert.deepEqual(got, { path: '/b/config.json', config: creds('json') });
  });
});

describe('validateDockerConfigJsonSecretData (docs/kubelet-parity.md §8)', () => {
  const ok: Array<{ name: string; value: string }> = [
    { name: 'auths object', value: configJson({ 'quay.io': { auth: b64('u:p') } }) },
    { name: 'empty object (auths not required)', value: '{}' },
    { name: 'object without auths', value: '{"quay.io":{}}' },
    { name: 'null (Go unmarshals it into a nil map without error)', value: 'null' },
    { name: 'surrounding whitespace', value: ' \n{}\n' },
  ];
  for (const c of ok) {
    test(`accepts: ${c.name}`, () => {
      validateDockerConfigJsonSecretData(c.value);
    });
  }

  const bad: Array<{ name: string; value: string; key?: '.dockercfg'; reason: string }> = [
    { name: 'empty value', value: '', reason: 'unexpected end of JSON input' },
    { name: 'whitespace only', value: '  ', reason: 'unexpected end of JSON input' },
    {
      name: 'array',
      value: `["${SECRET}"]`,
      reason: 'json: cannot unmarshal array into Go value of type map[string]interface {}',
    },
    {
      name: 'string',
      value: `"${SECRET}"`,
      reason: 'json: cannot unmarshal string into Go value of type map[string]interface {}',
    },
    {
      name: 'number',
      value: '42',
      reason: 'json: cannot unmarshal number into Go value of type map[string]interface {}',
    },
    {
      name: 'bool',
      value: 'true',
      reason: 'json: cannot unmarshal bool into Go value of type map[string]interface {}',
    },
    {
      name: 'truncated: Go reports the end of input',
      value: `{"auths":{"r":{"password":"${SECRET}"}}`,
      reason: 'unexpected end of JSON input',
    },
    {
      name: 'syntax error',
      value: `{"auths":{"r":{"password":"${SECRET}"}},}`,
      reason: 'invalid JSON syntax',
    },
    {
      name: 'number out of float64 range',
      value: '{"a":1e400}',
      reason: 'json: cannot unmarshal a number outside the float64 range',
    },
    { name: '.dockercfg key', value: '[]', key: '.dockercfg', reason: 'json: cannot unmarshal array' },
  ];
  for (const c of bad) {
    test(`rejects: ${c.name}`, () => {
      const field = `data[${c.key ?? '.dockerconfigjson'}]`;
      assert.throws(
        () => validateDockerConfigJsonSecretData(c.value, c.key),
        (err: unknown) => {
          assert.ok(err instanceof InvalidSecretDataError);
          assert.equal(err.field, field);
          assert.ok(
            err.message.startsWith(`${field}: Invalid value: "<secret contents redacted>": ${c.reason}`),
            err.message,
          );
          assert.ok(!err.message.includes(SECRET));
          return true;
        },
      );
    });
  }
});

describe('secret data size (1 MiB total)', () => {
  const cases: Array<{
    name: string;
    data: Record<string, string | Uint8Array>;
    bytes: number;
    ok: boolean;
  }> = [
    { name: 'empty', data: {}, bytes: 0, ok: true },
    {
      name: 'exactly 1 MiB',
      data: { '.dockerconfigjson': 'x'.repeat(MAX_SECRET_DATA_BYTES) },
      bytes: MAX_SECRET_DATA_BYTES,
      ok: true,
    },
    {
      name: 'one byte over',
      data: { '.dockerconfigjson': 'x'.repeat(MAX_SECRET_DATA_BYTES + 1) },
      bytes: MAX_SECRET_DATA_BYTES + 1,
      ok: false,
    },
    {
      name: 'values are summed, keys not counted',
      data: {
        a: 'x'.repeat(MAX_SECRET_DATA_BYTES / 2),
        ['k'.repeat(100)]: 'x'.repeat(MAX_SECRET_DATA_BYTES / 2 + 1),
      },
      bytes: MAX_SECRET_DATA_BYTES + 1,
      ok: false,
    },
    { name: 'strings count as UTF-8', data: { a: 'ä€😀' }, bytes: 2 + 3 + 4, ok: true },
    { name: 'byte arrays count their length', data: { a: new Uint8Array(10), b: 'xy' }, bytes: 12, ok: true },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(secretDataBytes(c.data), c.bytes);
      if (c.ok) validateSecretDataSize(c.data);
      else
        assert.throws(
          () => validateSecretDataSize(c.data),
          (err: unknown) =>
            err instanceof InvalidSecretDataError &&
            err.field === 'data' &&
            err.message.startsWith('data: Too long: may not be more than 1048576 bytes'),
        );
    });
  }
});

describe('parseDockerConfig: Go encoding/json parity (issue #13)', () => {
  const hub = { username: 'user', password: 'pass' };
  const ok: Array<{ name: string; format: DockerConfigFormat; text: string; want: DockerConfig }> = [
    {
      name: '#4 duplicate entry field: {"username":"u","username":null} keeps u',
      format: 'config.json',
      text: '{"auths":{"q":{"username":"u","password":"p","username":null}}}',
      want: { auths: { q: { username: 'u', password: 'p' } } },
    },
    {
      name: '#4 duplicate entry field: the last string wins',
      format: 'dockercfg',
      text: '{"q":{"username":"a","Username":"b","password":"p"}}',
      want: { auths: { q: { username: 'b', password: 'p' } } },
    },
    {
      name: '#4 duplicate "auths": a later null resets the map',
      format: 'config.json',
      text: '{"auths":{"q":{"auth":"dXNlcjpwYXNz"}},"auths":null}',
      want: { auths: {} },
    },
    {
      name: '#4 duplicate "auths": later objects add to the same map',
      format: 'config.json',
      text: '{"auths":{"a":{"auth":"dXNlcjpwYXNz"}},"Auths":{"b":{"auth":"dXNlcjpwYXNz"}}}',
      want: { auths: { a: hub, b: hub } },
    },
    {
      name: '#4 duplicate registry key: the last occurrence replaces the entry',
      format: 'config.json',
      text: '{"auths":{"q":{"username":"a","password":"1"},"q":{"username":"b"}}}',
      want: { auths: { q: { username: 'b', password: '' } } },
    },
    {
      name: '#5 10,000 levels in an ignored field are fine',
      format: 'config.json',
      text: `{"x":${'['.repeat(9_999)}${']'.repeat(9_999)},"auths":{"q":{"auth":"dXNlcjpwYXNz"}}}`,
      want: { auths: { q: hub } },
    },
    {
      name: '#6 lone surrogate escape in a username decodes to U+FFFD',
      format: 'config.json',
      text: '{"auths":{"q":{"username":"a\\ud800b","password":"p"}}}',
      want: { auths: { q: { username: 'a\ufffdb', password: 'p' } } },
    },
    {
      name: '#6 lone surrogate escape in a registry key decodes to U+FFFD',
      format: 'dockercfg',
      text: '{"q\\udc00":{"username":"u","password":"p"}}',
      want: { auths: { 'q\ufffd': { username: 'u', password: 'p' } } },
    },
    {
      name: 'a byte order mark inside the decoded username is kept, as in Go',
      format: 'config.json',
      text: configJson({ q: { auth: b64('\ufeffu:p') } }),
      want: { auths: { q: { username: '\ufeffu', password: 'p' } } },
    },
  ];
  for (const c of ok) test(c.name, () => assert.deepEqual(parseDockerConfig(c.text, c.format), c.want));

  const bad: Array<{ name: string; format: DockerConfigFormat; text: string; message: RegExp }> = [
    {
      name: '#4 {"auths":{"q":"s"},"auths":null} is an error: the first value is bad',
      format: 'config.json',
      text: '{"auths":{"q":"s"},"auths":null}',
      message: /entry "q": must be an object/,
    },
    {
      name: '#4 a bad auth in an entry later replaced is still an error',
      format: 'config.json',
      text: '{"auths":{"q":{"auth":"bm9jb2xvbg=="},"q":{"username":"u"}}}',
      message: /unable to parse auth field/,
    },
    {
      name: '#4 a wrongly typed HttpHeaders later set to null is still an error',
      format: 'config.json',
      text: '{"HttpHeaders":[],"HttpHeaders":null}',
      message: /"HttpHeaders" must be an object of string header values/,
    },
    {
      name: '#5 10,001 levels in an ignored field: exceeded max depth',
      format: 'config.json',
      text: `{"x":${'['.repeat(10_000)}${']'.repeat(10_000)},"auths":{}}`,
      message: /not valid JSON \(exceeded max depth/,
    },
    {
      name: '#5 exceeded max depth wins over an earlier bad entry',
      format: 'config.json',
      text: `{"auths":{"q":5},"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
      message: /exceeded max depth/,
    },
    {
      name: 'duplicate keys do not hide a syntax error after them',
      format: 'dockercfg',
      text: '{"q":{"username":"u"},"q":null,}',
      message: /not valid JSON/,
    },
  ];
  for (const c of bad) {
    test(`rejects: ${c.name}`, () => {
      assert.throws(
        () => parseDockerConfig(c.text, c.format),
        (err: unknown) => err instanceof DockerConfigError && c.message.test(err.message),
      );
    });
  }

  test('#7 a million nested arrays: an error, not a stack overflow', () => {
    const text = `{"x":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;
    assert.throws(() => parseDockerConfig(text, 'config.json'), /exceeded max depth/);
  });

  test('#8 a long auth (6 MiB) decodes, with a newline inside (exact decoder path)', () => {
    const password = 'p'.repeat(6 * 1024 * 1024);
    const auth = b64(`u:${password}`);
    const withNewline = `${auth.slice(0, 1000)}\n${auth.slice(1000)}`;
    for (const value of [auth, withNewline, auth.replace(/=+$/, '')]) {
      const got = parseDockerConfig(configJson({ q: { auth: value } }), 'config.json');
      assert.equal(got.auths.q?.username, 'u');
      assert.equal(got.auths.q?.password.length, password.length);
    }
  });

  test('#8 an auth with a million trailing spaces is decided in linear time (no regex backtracking)', () => {
    const auth = `dTo=${' '.repeat(1_000_000)}x`;
    assert.throws(() => parseDockerConfig(configJson({ q: { auth } }), 'config.json'), /illegal base64 data/);
  });
});

describe('validateDockerConfigJsonSecretData: hostile input (issue #13)', () => {
  test('#7 a 10,000-level array in a valid Secret value is accepted, without recursion', () => {
    validateDockerConfigJsonSecretData(`{"auths":{},"x":${'['.repeat(9_999)}${']'.repeat(9_999)}}`);
  });
  test('#7 a million levels: exceeded max depth, not a RangeError', () => {
    assert.throws(
      () => validateDockerConfigJsonSecretData(`{"x":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`),
      (err: unknown) => err instanceof InvalidSecretDataError && /exceeded max depth/.test(err.message),
    );
  });
  test('#5 10,001 levels is rejected as Go rejects it', () => {
    assert.throws(
      () => validateDockerConfigJsonSecretData(`{"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`),
      /exceeded max depth/,
    );
  });
  test('#7 a number out of range deep inside is found without recursion', () => {
    assert.throws(
      () => validateDockerConfigJsonSecretData(`{"x":${'['.repeat(9_999)}1e999${']'.repeat(9_999)}}`),
      /outside the float64 range/,
    );
  });
  test('#4 duplicate keys are fine for map[string]interface{}', () => {
    validateDockerConfigJsonSecretData('{"auths":{"q":"s"},"auths":null}');
  });
});
