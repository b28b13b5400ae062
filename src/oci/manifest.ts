/**
 * Manifest media types and the shapes we read (zod at the boundary: a
 * registry's JSON is untrusted input).
 */
import * as z from 'zod';
import { UnsupportedMediaTypeError } from './errors.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** containerd's manifest Accept list (docs/kubelet-parity.md §9.3). */
export const MANIFEST_ACCEPT = [
  MediaType.dockerManifest,
  MediaType.dockerList,
  MediaType.ociManifest,
  MediaType.ociIndex,
  '*/*',
].join(', ');

export const LAYER_MEDIA_TYPES: Readonly<Record<string, 'gzip' | 'none' | 'zstd'>> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

const descriptor = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Descriptor = z.infer<typeof descriptor>;

const platform = z.object({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
});

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;

export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptor.extend({ platform: platform.optional().nullable() })),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

export const imageConfigSchema = z.object({
  os: z.string().optional(),
  architecture: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .object({
      Env: z.array(z.string()).nullish(),
      Entrypoint: z.array(z.string()).nullish(),
      Cmd: z.array(z.string()).nullish(),
      WorkingDir: z.string().nullish(),
      User: z.string().nullish(),
    })
    .passthrough()
    .nullish(),
  rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(z.string()) }),
});
export type ImageConfigFile = z.infer<typeof imageConfigSchema>;

export type ParsedManifest =
  | { kind: 'index'; index: ImageIndex }
  | { kind: 'manifest'; manifest: ImageManifest };

/**
 * Classifies and validates a manifest body. The media type is the response's
 * Content-Type, else the body's `mediaType` field. Docker schema1 is refused.
 */
export function parseManifest(contentType: string, bytes: Buffer, what: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new UnsupportedMediaTypeError(`${what}: the manifest is not JSON`, { cause });
  }
  const declared = (doc as { mediaType?: unknown })?.mediaType;
  const header = contentType.split(';')[0]!.trim().toLowerCase();
  let mt = header;
  if (mt === '' || mt === 'application/json' || mt === 'application/octet-stream' || mt === 'text/plain') {
    mt = typeof declared === 'string' ? declared : '';
  }
  if (mt === '' && (doc as { manifests?: unknown })?.manifests !== undefined) mt = MediaType.ociIndex;
  if (mt === '' && (doc as { layers?: unknown })?.layers !== undefined) mt = MediaType.ociManifest;
  if (
    mt === MediaType.dockerSchema1 ||
    mt === MediaType.dockerSchema1Signed ||
    (doc as { schemaVersion?: unknown })?.schemaVersion === 1
  ) {
    throw new UnsupportedMediaTypeError(
      `${what}: Docker schema1 manifests are deprecated and not supported; rebuild and push the image with a ` +
        'current builder (Docker v2 schema 2 or OCI)',
    );
  }
  const fail = (cause: unknown) =>
    new UnsupportedMediaTypeError(`${what}: malformed ${mt} (${(cause as Error).message.slice(0, 200)})`, {
      cause,
    });
  if (mt === MediaType.ociIndex || mt === MediaType.dockerList) {
    const r = imageIndexSchema.safeParse(doc);
    if (!r.success) throw fail(r.error);
    return { kind: 'index', index: r.data };
  }
  if (mt === MediaType.ociManifest || mt === MediaType.dockerManifest) {
    const r = imageManifestSchema.safeParse(doc);
    if (!r.success) throw fail(r.error);
    return { kind: 'manifest', manifest: r.data };
  }
  throw new UnsupportedMediaTypeError(
    `${what}: unsupported manifest media type ${JSON.stringify(mt)}; expected an OCI or Docker v2 image manifest or index`,
  );
}
