import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { atomicWrite, PodDir } from './pod-state.js';

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

test('PodDir.appendEvent: events emitted without waiting are read back in the order they were emitted', async () => {
  const root = await mkdtemp(join(tmpdir(), 'pk-events-'));
  try {
    const dir = new PodDir(root, 'ns_pod');
    await mkdir(dir.dir, { recursive: true });
    // The planner emits events fire-and-forget: the image store's "Failed to pull image …" and then
    // the planner's "Error: ErrImagePull". A reader takes the first Failed event as the cause.
    const pending = Array.from({ length: 200 }, (_, i) =>
      dir.appendEvent({
        time: '2026-11-29T00:00:00.000Z',
        type: 'Warning',
        reason: 'Failed',
        message: `m${i}`,
      }),
    );
    await Promise.all(pending);
    const got = (await dir.readEvents()).map((e) => e.message);
    assert.deepEqual(
      got,
      Array.from({ length: 200 }, (_, i) => `m${i}`),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
