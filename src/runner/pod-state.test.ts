import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { atomicWrite } from './pod-state.js';

test('atomicWrite: overlapping writes of one file all succeed, the last call wins, no temp file is left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pk-atomic-'));
  try {
    const path = join(dir, 'status.json');
    // A supervisor updates status.json from several events at once (a stop during a restart).
    await Promise.all(Array.from({ length: 50 }, (_, i) => atomicWrite(path, `{"n":${i}}`)));
    assert.equal(await readFile(path, 'utf8'), '{"n":49}');
    assert.deepEqual(await readdir(dir), ['status.json']);
    // A failed write (its directory is gone) rejects, and later writes still go through.
    await assert.rejects(atomicWrite(join(dir, 'missing', 'x.json'), '{}'), { code: 'ENOENT' });
    await atomicWrite(path, '{"n":"after"}');
    assert.equal(await readFile(path, 'utf8'), '{"n":"after"}');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
