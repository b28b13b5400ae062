/**
 * TEST FIXTURE ONLY: an ImageSource that serves one image, a busybox layer
 * built on this machine (Debian busybox-static copied into a directory with
 * applet symlinks), until the real image store (pullkeeper-node pull) is
 * wired into these tests. It emits the store's Pulled event for a present
 * image; the layer directory is made read-only.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EnsureImageRequest, ImageSource, PulledImage } from '../../../src/runner/image-source.js';

export interface BusyboxImageSource extends ImageSource {
  /** The one layer directory (read-only to consumers). */
  readonly layerDir: string;
  /** Requests seen, in order (tests check what the runner asked for). */
  readonly requests: EnsureImageRequest[];
}

export function busyboxImageSource(root: string): BusyboxImageSource {
  const layer = join(root, 'layers', 'busybox');
  mkdirSync(join(layer, 'bin'), { recursive: true });
  for (const d of ['etc', 'tmp', 'var/www', 'root']) mkdirSync(join(layer, d), { recursive: true });
  copyFileSync('/bin/busybox', join(layer, 'bin', 'busybox'));
  chmodSync(join(layer, 'bin', 'busybox'), 0o755);
  execFileSync('chroot', [layer, '/bin/busybox', '--install', '-s', '/bin']);
  writeFileSync(join(layer, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(layer, 'var', 'www', 'index.html'), 'hello from the image\n');
  chmodSync(join(layer, 'tmp'), 0o1777);
  const requests: EnsureImageRequest[] = [];
  return {
    layerDir: layer,
    requests,
    async ensure(req: EnsureImageRequest): Promise<PulledImage> {
      requests.push(req);
      req.onEvent?.({
        type: 'Normal',
        reason: 'Pulled',
        message: `Container image "${req.image}" already present on machine`,
      });
      return {
        ref: 'docker.io/library/busybox:test',
        digest: `sha256:${'0'.repeat(64)}`,
        layers: [layer],
        config: {
          Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'IMAGE_ONLY=from-image'],
          Cmd: ['sh'],
        },
        pulled: false,
      };
    },
  };
}
