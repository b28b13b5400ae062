import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_NODE_DOCKER_CONFIG_BYTES, MAX_SECRET_DATA_BYTES } from '../core/index.js';
import { PullSecretFileError, readBoundedFile, readCredentialFile } from './pull-secret-file.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const SECRET = 'hunter2-s3cr3t';

describe('readCredentialFile: size limits and hostile files (issue #13 item 8)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pk-secret-file-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('#8 /dev/zero: a clear "larger than 4 MiB" error, not an out-of-memory', async () => {
    await assert.rejects(readCredentialFile('/dev/zero'), (err: unknown) => {
      assert.ok(err instanceof PullSecretFileError);
      assert.match(err.message, /^\/dev\/zero is larger than 4 MiB/);
      return true;
    });
  });

  test('#8 a 6.7 MB config.json (one long auth) is refused from its size', async () => {
    const path = join(dir, 'big.json');
    const auth = b64(`u:${'p'.repeat(5_000_000)}`);
    await writeFile(path, JSON.stringify({ auths: { 'quay.io': { auth } } }));
    await assert.rejects(readCredentialFile(path), (err: unknown) => {
      assert.ok(err instanceof PullSecretFileError);
      assert.match(err.message, /is larger than 4 MiB \(\d+ bytes\)/);
      assert.ok(!err.message.includes(auth.slice(0, 40)));
      return true;
    });
  });

  test('#8 a config.json just under the limit (one long auth) is read', async () => {
    const path = join(dir, 'limit.json');
    const head = '{"auths":{"quay.io":{"auth":"';
    const tail = '"}}}';
    const room = MAX_NODE_DOCKER_CONFIG_BYTES - head.length - tail.length;
    const passwordBytes = Math.floor((room / 4) * 3) - 2 - 3;
    const auth = b64(`u:${'p'.repeat(passwordBytes)}`);
    const text = head + auth + tail;
    assert.ok(text.length <= MAX_NODE_DOCKER_CONFIG_BYTES);
    await writeFile(path, text);
    const got = await readCredentialFile(path);
    assert.equal(got.auths['quay.io']?.username, 'u');
    assert.equal(got.auths['quay.io']?.password.length, passwordBytes);
  });

  test('readBoundedFile: exactly the limit is fine, one byte more is not', async () => {
    const path = join(dir, 'exact');
    await writeFile(path, 'x'.repeat(1024));
    assert.equal((await readBoundedFile(path, 1024)).length, 1024);
    await assert.rejects(readBoundedFile(path, 1023), /larger than 1023 bytes \(1024 bytes\)/);
  });

  test('readBoundedFile: an aborted signal stops the read', async () => {
    await assert.rejects(readBoundedFile('/dev/zero', 1024, AbortSignal.abort()), PullSecretFileError);
  });

  test('a missing file names the path and the errno code', async () => {
    await assert.rejects(readCredentialFile(join(dir, 'nope.json')), /cannot read .*nope\.json: ENOENT/);
  });

  test('a Secret manifest whose value exceeds 1 MiB is refused as the API server would', async () => {
    const path = join(dir, 'secret.yaml');
    const value = JSON.stringify({
      auths: { 'quay.io': { auth: b64(`u:${'p'.repeat(MAX_SECRET_DATA_BYTES)}`) } },
    });
    await writeFile(
      path,
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${b64(value)}\n`,
    );
    await assert.rejects(
      readCredentialFile(path),
      /Secret big: \.dockerconfigjson is \d+ bytes; the API server accepts at most 1048576/,
    );
  });

  test('a JSON Secret manifest is recognised without YAML', async () => {
    const path = join(dir, 'secret.json');
    const value = JSON.stringify({ auths: { 'quay.io': { auth: b64(`u:${SECRET}`) } } });
    await writeFile(
      path,
      JSON.stringify({
        kind: 'Secret',
        type: 'kubernetes.io/dockerconfigjson',
        metadata: { name: 's' },
        data: { '.dockerconfigjson': b64(value) },
      }),
    );
    assert.deepEqual(await readCredentialFile(path), {
      auths: { 'quay.io': { username: 'u', password: SECRET } },
    });
  });

  test('#4 a config.json with duplicate keys is read as the kubelet reads it', async () => {
    const path = join(dir, 'dup.json');
    await writeFile(path, '{"auths":{"q":{"username":"u","password":"p","username":null}}}');
    assert.deepEqual(await readCredentialFile(path), { auths: { q: { username: 'u', password: 'p' } } });
  });

  test('a deeply nested config.json is an error, not a crash', async () => {
    const path = join(dir, 'deep.json');
    await writeFile(path, `{"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    await assert.rejects(readCredentialFile(path), /exceeded max depth/);
  });
});
