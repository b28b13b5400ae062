import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  credentialHash,
  loadRecordKey,
  PULL_RECORDS_KEY_FILE,
  podCredentialHashes,
  sourcedPodSecrets,
} from './pull-records.js';

const dirs: string[] = [];
async function fresh(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pk-pull-records-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('the store key of credential hashes', () => {
  test('made once (32 bytes, 0600) and reused', async () => {
    const dir = join(await fresh(), 'state');
    const k1 = await loadRecordKey(dir);
    assert.equal(k1.length, 32);
    const st = await stat(join(dir, PULL_RECORDS_KEY_FILE));
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(await loadRecordKey(dir), k1);
  });
  test('a wider mode is tightened; a malformed key is replaced', async () => {
    const dir = await fresh();
    const path = join(dir, PULL_RECORDS_KEY_FILE);
    const k1 = await loadRecordKey(dir);
    await chmod(path, 0o644);
    assert.deepEqual(await loadRecordKey(dir), k1);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await writeFile(path, 'short');
    const k2 = await loadRecordKey(dir);
    assert.equal(k2.length, 32);
    assert.notDeepEqual(k2, k1);
    assert.deepEqual(await readFile(path), k2);
  });
});

describe('credential hashes', () => {
  const key1 = Buffer.alloc(32, 1);
  const key2 = Buffer.alloc(32, 2);
  const cred = { username: 'robot', password: 'hunter2' };
  test('keyed: same credential and key, same hash; another key or password, another hash; never the secret', () => {
    const h = credentialHash(key1, cred);
    assert.match(h, /^hmac-sha256:[0-9a-f]{64}$/);
    assert.equal(credentialHash(key1, { ...cred }), h);
    assert.notEqual(credentialHash(key2, cred), h);
    assert.notEqual(credentialHash(key1, { ...cred, password: 'hunter3' }), h);
    // User and password are not simply concatenated: "ab"+"c" differs from "a"+"bc".
    assert.notEqual(
      credentialHash(key1, { username: 'ab', password: 'c' }),
      credentialHash(key1, { username: 'a', password: 'bc' }),
    );
    assert.ok(!h.includes('hunter2'));
  });
  test("the pod's credentials for an image, in keyring order, each named by its Secret", () => {
    const a = {
      auths: { 'reg.example': { username: 'a', password: 'pa' } },
      source: { kind: 'secret' as const, name: 'ns/a' },
    };
    const b = { auths: { 'reg.example/team': { username: 'b', password: 'pb' } } };
    const got = podCredentialHashes(key1, 'reg.example/team/app', [a, b]);
    // The more specific key first (kubelet's keyring), whatever the Secret order.
    assert.deepEqual(
      got.map((c) => c.source),
      [
        { kind: 'secret', name: 'imagePullSecrets[1]' },
        { kind: 'secret', name: 'ns/a' },
      ],
    );
    assert.equal(got[1]!.hash, credentialHash(key1, { username: 'a', password: 'pa' }));
    assert.deepEqual(podCredentialHashes(key1, 'other.example/app', [a, b]), []);
    assert.equal(sourcedPodSecrets([a])[0], a, 'a source given is kept');
  });
});
