import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnsupportedMediaTypeError } from './errors.js';
import { MediaType, parseManifest } from './manifest.js';

const d = (n: string) => `sha256:${n.repeat(64).slice(0, 64)}`;
const manifest = {
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  config: { mediaType: MediaType.ociConfig, digest: d('a'), size: 10 },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('b'), size: 20 }],
};
const index = {
  schemaVersion: 2,
  mediaType: MediaType.ociIndex,
  manifests: [
    {
      mediaType: MediaType.ociManifest,
      digest: d('c'),
      size: 30,
      platform: { os: 'linux', architecture: 'amd64' },
    },
  ],
};
const buf = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('parseManifest', () => {
  const kinds: Array<[string, string, unknown, 'manifest' | 'index']> = [
    ['OCI manifest by Content-Type', MediaType.ociManifest, manifest, 'manifest'],
    [
      'Docker v2 manifest',
      MediaType.dockerManifest,
      { ...manifest, mediaType: MediaType.dockerManifest },
      'manifest',
    ],
    ['OCI index', MediaType.ociIndex, index, 'index'],
    [
      'Docker manifest list',
      `${MediaType.dockerList}; charset=utf-8`,
      { ...index, mediaType: MediaType.dockerList },
      'index',
    ],
    ['generic Content-Type falls back to the body mediaType', 'application/json', index, 'index'],
    ['no media type at all: an index by shape', '', { schemaVersion: 2, manifests: [] }, 'index'],
  ];
  for (const [name, ct, body, kind] of kinds)
    it(name, () => assert.equal(parseManifest(ct, buf(body), 'x').kind, kind));

  const refused: Array<[string, string, Buffer, RegExp]> = [
    ['schema1 signed', MediaType.dockerSchema1Signed, buf({ schemaVersion: 1, fsLayers: [] }), /schema1/],
    ['schema1 by body only', 'application/json', buf({ schemaVersion: 1, name: 'x' }), /schema1/],
    ['unknown media type', 'application/vnd.example+json', buf(manifest), /unsupported manifest media type/],
    ['not JSON', MediaType.ociManifest, Buffer.from('<html>'), /not JSON/],
    ['malformed manifest', MediaType.ociManifest, buf({ schemaVersion: 2, layers: 'x' }), /malformed/],
  ];
  for (const [name, ct, body, msg] of refused) {
    it(`refuses ${name}`, () =>
      assert.throws(
        () => parseManifest(ct, body, 'x'),
        (e: unknown) => e instanceof UnsupportedMediaTypeError && msg.test((e as Error).message),
      ));
  }
});
