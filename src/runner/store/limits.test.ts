/** The store's bounds: defaults, the shared budget, and the node config keys that set them for pods. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadNodeConfig, NodeConfigError } from '../node-config.js';
import {
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_MAX_IMAGE_INODES,
  DEFAULT_MAX_PAX_HEADER_BYTES,
  ImageBudget,
  ImageTooLargeError,
  LayerTooLargeError,
  storeLimits,
  TooManyInodesError,
  type UnpackLimitError,
} from './limits.js';

describe('store limits', () => {
  test('defaults; the layer bound follows the image bound unless set', () => {
    assert.deepEqual(storeLimits(), {
      maxImageBytes: DEFAULT_MAX_IMAGE_BYTES,
      maxLayerBytes: DEFAULT_MAX_IMAGE_BYTES,
      maxImageInodes: DEFAULT_MAX_IMAGE_INODES,
      maxPaxHeaderBytes: DEFAULT_MAX_PAX_HEADER_BYTES,
    });
    assert.equal(storeLimits({ maxImageBytes: 100 }).maxLayerBytes, 100);
    assert.equal(storeLimits({ maxImageBytes: 100, maxLayerBytes: 10 }).maxLayerBytes, 10);
  });

  const cases: Array<{
    name: string;
    run: (b: ImageBudget) => void;
    error?: [typeof UnpackLimitError, string, RegExp];
  }> = [
    { name: 'up to the bound', run: (b) => b.take(50, 5, 'x') },
    {
      name: 'bytes past the image bound (with what earlier layers used)',
      run: (b) => b.take(51, 0, 'big'),
      error: [
        ImageTooLargeError,
        '--max-image-bytes',
        /more than 100 bytes \(at "big", .*raise --max-image-bytes \(pullkeeper-node pull\) or imageLimits\.maxImageBytes \(node config\)/,
      ],
    },
    {
      name: 'entries past the inode bound',
      run: (b) => b.take(0, 6, 'many'),
      error: [TooManyInodesError, '--max-image-inodes', /more than 10 files, .*imageLimits\.maxImageInodes/],
    },
    {
      name: 'one layer past the layer bound',
      run: (b) => b.checkLayer(41, 'l'),
      error: [LayerTooLargeError, '--max-layer-bytes', /the layer unpacks to more than 40 bytes/],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const b = new ImageBudget(storeLimits({ maxImageBytes: 100, maxLayerBytes: 40, maxImageInodes: 10 }), {
        bytes: 50,
        inodes: 5,
      });
      if (!c.error) return c.run(b);
      const [cls, limit, message] = c.error;
      assert.throws(
        () => c.run(b),
        (err: Error & { limit?: string }) =>
          err instanceof cls && err.limit === limit && message.test(err.message),
      );
    });
  }

  test('node config imageLimits: read, and checked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pk-limits-'));
    try {
      const ok = join(dir, 'ok.yaml');
      await writeFile(ok, 'imageLimits:\n  maxImageBytes: 1000\n  maxImageInodes: 50\n');
      assert.deepEqual((await loadNodeConfig(ok)).imageLimits, { maxImageBytes: 1000, maxImageInodes: 50 });
      assert.equal((await loadNodeConfig(undefined)).imageLimits, undefined);
      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, 'imageLimits:\n  maxLayerBytes: -1\n  maxInodes: 3\n');
      await assert.rejects(
        loadNodeConfig(bad),
        (err: Error) =>
          err instanceof NodeConfigError &&
          /imageLimits\.maxLayerBytes/.test(err.message) &&
          /maxInodes/.test(err.message),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
