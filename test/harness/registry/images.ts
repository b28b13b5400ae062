/**
 * Deterministic test images and a tiny push/pull client that speaks the
 * distribution HTTP API with fetch.
 *
 * Determinism: tar entries have mtime 0, uid/gid 0, no user/group names and are
 * sorted by path (unless a layer is `raw`); gzip has no name and mtime 0; JSON
 * is built with a fixed key order. The same spec gives the same digests on
 * every run (same machine zlib).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { HarnessError } from '../proc.js';
import type { RegistryInfo } from './index.js';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  inToto: 'application/vnd.in-toto+json',
} as const;

/** What a client sends as manifest Accept (kubelet/containerd's list, docs/kubelet-parity.md §9.3). */
export const MANIFEST_ACCEPT = [
  MediaTypes.dockerManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.ociManifest,
  MediaTypes.ociIndex,
  '*/*',
].join(', ');

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface FileEntry {
  /** Path inside the layer; `/`- and `./`-prefixes are stripped unless the layer is raw. */
  path: string;
  content?: Buffer | string;
  /** Permission bits (and setuid/setgid/sticky); default 0644 for files, 0755 for dirs, 0777 for symlinks. */
  mode?: number;
  type?: EntryType;
  /** Target of a symlink or hardlink. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  uid?: number;
  gid?: number;
}

export type LayerSpec =
  | {
      files: FileEntry[];
      /** Entries exactly as given: no path cleaning, no implied parent dirs, no sorting. */
      raw?: boolean;
      /** gzip level (default 6); 0 gives stored blocks, whose size depends only on the tar size. */
      gzipLevel?: number;
      /** Store the layer uncompressed (OCI `...layer.v1.tar`; OCI media types only). */
      uncompressed?: boolean;
    }
  | { busybox: true }
  | { randomBytes: number; seed: string };

export interface ImageConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageSpec {
  layers: LayerSpec[];
  /** Container config; Env defaults to a standard PATH when omitted. */
  config?: ImageConfig;
  /** Default: linux and this machine's architecture. */
  platform?: Platform;
  mediaTypes?: 'oci' | 'docker';
  /** Manifest annotations (OCI only). */
  annotations?: Record<string, string>;
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export interface BuiltLayer extends Blob {
  /** sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry). */
  diffId: string;
  uncompressedSize: number;
}

export interface BuiltImage {
  /** Manifest digest. */
  digest: string;
  mediaType: string;
  manifest: Blob;
  config: Blob;
  layers: BuiltLayer[];
  platform: Platform;
}

export interface BuiltIndex {
  digest: string;
  mediaType: string;
  index: Blob;
  /** Every manifest the index references, in order (platform images, then attestations). */
  manifests: BuiltImage[];
}

export interface Creds {
  username: string;
  password: string;
}

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const BUSYBOX_APPLETS = [
  '[',
  'basename',
  'cat',
  'chmod',
  'cp',
  'date',
  'dirname',
  'echo',
  'env',
  'false',
  'grep',
  'head',
  'hostname',
  'id',
  'kill',
  'ln',
  'ls',
  'mkdir',
  'mv',
  'nc',
  'printenv',
  'printf',
  'ps',
  'pwd',
  'rm',
  'sed',
  'sh',
  'sleep',
  'stat',
  'tail',
  'tee',
  'test',
  'touch',
  'true',
  'uname',
  'wc',
  'wget',
  'whoami',
];

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function blob(mediaType: string, data: Buffer): Blob {
  return { mediaType, digest: sha256(data), size: data.length, data };
}

export function hostPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    ia32: '386',
    arm: 'arm',
    s390x: 's390x',
    ppc64: 'ppc64le',
  };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

const tarTypes: Record<
  EntryType,
  'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'
> = {
  file: 'file',
  dir: 'directory',
  symlink: 'symlink',
  hardlink: 'link',
  char: 'character-device',
  block: 'block-device',
  fifo: 'fifo',
};

function cleanPath(p: string): string {
  let s = p.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
  s = s.replace(/\/+/g, '/');
  if (!s || s.split('/').some((c) => c === '..' || c === '.')) {
    throw new HarnessError(`layer path ${JSON.stringify(p)} is not clean; use a raw layer for hostile paths`);
  }
  return s;
}

/** Builds an uncompressed tar from entries (deterministic headers). */
export async function buildTar(files: FileEntry[], raw = false): Promise<Buffer> {
  let entries: FileEntry[];
  if (raw) {
    entries = files;
  } else {
    const byPath = new Map<string, FileEntry>();
    for (const f of files) {
      const path = cleanPath(f.path);
      if (byPath.has(path)) throw new HarnessError(`layer has ${path} twice`);
      byPath.set(path, { ...f, path });
    }
    for (const path of [...byPath.keys()]) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (!byPath.has(parent)) byPath.set(parent, { path: parent, type: 'dir' });
      }
    }
    entries = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
  const p = tarPack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((ok, fail) => {
    p.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    p.on('end', () => ok());
    p.on('error', fail);
  });
  for (const e of entries) {
    const type = e.type ?? (e.linkname !== undefined ? 'symlink' : 'file');
    const tt = tarTypes[type];
    const mode = e.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644);
    const name = type === 'dir' && !raw ? `${e.path}/` : e.path;
    const header = {
      name,
      type: tt,
      mode,
      mtime: new Date(0),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      linkname: e.linkname,
      devmajor: e.devmajor ?? 0,
      devminor: e.devminor ?? 0,
      size: 0,
    };
    if (type === 'file') {
      const content = typeof e.content === 'string' ? Buffer.from(e.content) : (e.content ?? Buffer.alloc(0));
      await new Promise<void>((ok, fail) =>
        p.entry({ ...header, size: content.length }, content, (err) => (err ? fail(err) : ok())),
      );
    } else {
      await new Promise<void>((ok, fail) => p.entry(header, (err) => (err ? fail(err) : ok())));
    }
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Incompressible deterministic bytes: AES-256-CTR keystream keyed by sha256(seed). */
export function seededBytes(n: number, seed: string): Buffer {
  const key = createHash('sha256').update(`pullkeeper-seed:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(n)), cipher.final()]);
}

let busyboxCache: Promise<Buffer> | undefined;

/** The busybox layer's entries: /bin/busybox (static), applet symlinks, /etc/passwd, /etc/group, /tmp. */
export async function busyboxFiles(): Promise<FileEntry[]> {
  busyboxCache ??= readFile('/bin/busybox');
  const bin = await busyboxCache;
  return [
    { path: 'bin/busybox', content: bin, mode: 0o755 },
    ...BUSYBOX_APPLETS.map((a): FileEntry => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    {
      path: 'etc/passwd',
      content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
    },
    { path: 'etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
    { path: 'root', type: 'dir', mode: 0o700 },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
  ];
}

const busyboxLayers = new Map<string, Promise<BuiltLayer>>();

/** Builds one layer blob. The busybox layer is built once per process (it is deterministic). */
export async function buildLayer(spec: LayerSpec, mediaTypes: 'oci' | 'docker' = 'oci'): Promise<BuiltLayer> {
  if ('busybox' in spec) {
    let p = busyboxLayers.get(mediaTypes);
    if (!p) {
      p = buildLayerUncached(spec, mediaTypes);
      busyboxLayers.set(mediaTypes, p);
      p.catch(() => busyboxLayers.delete(mediaTypes));
    }
    return p;
  }
  return buildLayerUncached(spec, mediaTypes);
}

async function buildLayerUncached(spec: LayerSpec, mediaTypes: 'oci' | 'docker'): Promise<BuiltLayer> {
  let tar: Buffer;
  let level = 6;
  let uncompressed = false;
  if ('busybox' in spec) {
    tar = await buildTar(await busyboxFiles());
  } else if ('randomBytes' in spec) {
    tar = await buildTar([
      {
        path: `data/random-${sha256(spec.seed).slice(7, 19)}.bin`,
        content: seededBytes(spec.randomBytes, spec.seed),
      },
    ]);
    level = 1; // incompressible anyway; level 1 is several times faster
  } else {
    tar = await buildTar(spec.files, spec.raw);
    level = spec.gzipLevel ?? 6;
    uncompressed = spec.uncompressed ?? false;
  }
  if (uncompressed && mediaTypes === 'docker')
    throw new HarnessError('uncompressed layers need OCI media types');
  const data = uncompressed ? tar : gzipSync(tar, { level });
  const mediaType = uncompressed
    ? MediaTypes.ociLayerTar
    : mediaTypes === 'docker'
      ? MediaTypes.dockerLayerGzip
      : MediaTypes.ociLayerGzip;
  return { ...blob(mediaType, data), diffId: sha256(tar), uncompressedSize: tar.length };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const descriptor = (b: Blob) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });

/** Assembles config + manifest from built layers (exported for hostile variants). */
export function assembleImage(
  layers: BuiltLayer[],
  opts: Omit<ImageSpec, 'layers'> & { diffIds?: string[] } = {},
): BuiltImage {
  const mt = opts.mediaTypes ?? 'oci';
  const platform = opts.platform ?? hostPlatform();
  const c = opts.config ?? {};
  const containerConfig: Record<string, unknown> = { Env: c.Env ?? [DEFAULT_PATH_ENV] };
  if (c.Entrypoint) containerConfig.Entrypoint = c.Entrypoint;
  if (c.Cmd) containerConfig.Cmd = c.Cmd;
  if (c.WorkingDir) containerConfig.WorkingDir = c.WorkingDir;
  if (c.User) containerConfig.User = c.User;
  if (c.Labels) containerConfig.Labels = c.Labels;
  const configJson: Record<string, unknown> = {
    created: '1970-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
  };
  if (platform.variant) configJson.variant = platform.variant;
  configJson.config = containerConfig;
  configJson.rootfs = { type: 'layers', diff_ids: opts.diffIds ?? layers.map((l) => l.diffId) };
  configJson.history = layers.map((_, i) => ({
    created: '1970-01-01T00:00:00Z',
    created_by: `pullkeeper test layer ${i}`,
  }));
  const config = blob(mt === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig, json(configJson));
  const manifestMt = mt === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const manifestJson: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: manifestMt,
    config: descriptor(config),
    layers: layers.map(descriptor),
  };
  if (opts.annotations && mt === 'oci') manifestJson.annotations = opts.annotations;
  const manifest = blob(manifestMt, json(manifestJson));
  return { digest: manifest.digest, mediaType: manifestMt, manifest, config, layers, platform };
}

/** Builds a complete image in memory. */
export async function buildImage(spec: ImageSpec): Promise<BuiltImage> {
  const mt = spec.mediaTypes ?? 'oci';
  const layers: BuiltLayer[] = [];
  for (const l of spec.layers) layers.push(await buildLayer(l, mt));
  return assembleImage(layers, spec);
}

export function parsePlatform(key: string): Platform {
  const [os, architecture, variant] = key.split('/');
  if (!os || !architecture)
    throw new HarnessError(`platform ${JSON.stringify(key)} is not os/arch[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** A buildx-style attestation manifest for `subject` (platform unknown/unknown in the index). */
export function buildAttestation(subject: BuiltImage): BuiltImage {
  const statement = json({
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://slsa.dev/provenance/v0.2',
    subject: [{ name: 'pullkeeper-test', digest: { sha256: subject.digest.slice(7) } }],
    predicate: { builder: { id: 'pullkeeper-test' } },
  });
  const layer: BuiltLayer = {
    ...blob(MediaTypes.inToto, statement),
    diffId: sha256(statement),
    uncompressedSize: statement.length,
  };
  const config = blob(
    MediaTypes.ociConfig,
    json({
      architecture: 'unknown',
      os: 'unknown',
      config: {},
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    }),
  );
  const manifest = blob(
    MediaTypes.ociManifest,
    json({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: descriptor(config),
      layers: [
        {
          ...descriptor(layer),
          annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' },
        },
      ],
    }),
  );
  return {
    digest: manifest.digest,
    mediaType: MediaTypes.ociManifest,
    manifest,
    config,
    layers: [layer],
    platform: { os: 'unknown', architecture: 'unknown' },
  };
}

export interface IndexOptions {
  mediaTypes?: 'oci' | 'docker';
  /** Add one attestation manifest (platform unknown/unknown) per image (OCI only). */
  attestations?: boolean;
  annotations?: Record<string, string>;
}

/** Builds an image index (or docker manifest list) over `images` keyed by "os/arch[/variant]". */
export function buildIndex(images: Record<string, BuiltImage>, opts: IndexOptions = {}): BuiltIndex {
  const mt = opts.mediaTypes ?? 'oci';
  const entries: Array<Record<string, unknown>> = [];
  const manifests: BuiltImage[] = [];
  const attestations: BuiltImage[] = [];
  for (const [key, img] of Object.entries(images)) {
    const p = parsePlatform(key);
    const platform: Record<string, string> = { architecture: p.architecture, os: p.os };
    if (p.variant) platform.variant = p.variant;
    entries.push({ ...descriptor(img.manifest), platform });
    manifests.push(img);
    if (opts.attestations) {
      if (mt === 'docker') throw new HarnessError('attestations need an OCI index');
      attestations.push(buildAttestation(img));
    }
  }
  for (const a of attestations) {
    const subject = manifests[attestations.indexOf(a)]!;
    entries.push({
      ...descriptor(a.manifest),
      annotations: {
        'vnd.docker.reference.digest': subject.digest,
        'vnd.docker.reference.type': 'attestation-manifest',
      },
      platform: { architecture: 'unknown', os: 'unknown' },
    });
    manifests.push(a);
  }
  const indexMt = mt === 'docker' ? MediaTypes.dockerManifestList : MediaTypes.ociIndex;
  const body: Record<string, unknown> = { schemaVersion: 2, mediaType: indexMt, manifests: entries };
  if (opts.annotations && mt === 'oci') body.annotations = opts.annotations;
  const index = blob(indexMt, json(body));
  return { digest: index.digest, mediaType: indexMt, index, manifests };
}

// ---------------------------------------------------------------------------
// Distribution API client
// ---------------------------------------------------------------------------

export type RegistryTarget = string | RegistryInfo | { info: RegistryInfo };

function baseUrl(t: RegistryTarget): string {
  if (typeof t === 'string') return t.includes('://') ? t.replace(/\/+$/, '') : `http://${t}`;
  return 'info' in t ? t.info.url : t.url;
}

/** `Bearer realm="x",service="y"` -> { scheme, params }. */
export function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(h);
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let r = re.exec(m[2]!); r; r = re.exec(m[2]!)) {
    params[r[1]!.toLowerCase()] = r[2] !== undefined ? r[2].replace(/\\(.)/g, '$1') : (r[3] ?? '');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Ask for push access up front when a token is needed (saves a round trip). */
  push?: boolean;
  signal?: AbortSignal;
}

/**
 * A minimal distribution client: answers the registry's auth challenge
 * (Basic with the caller's credentials; Bearer via the realm, with Basic
 * credentials if given, anonymous otherwise) and caches tokens per scope.
 * Credentials never appear in its errors.
 */
export class RegistryClient {
  readonly url: string;
  readonly #creds: Creds | undefined;
  #basic = false;
  readonly #tokens = new Map<string, string>();
  /** Number of HTTP requests made, including token requests. */
  requests = 0;

  constructor(target: RegistryTarget, creds?: Creds) {
    this.url = baseUrl(target);
    this.#creds = creds;
  }

  #basicHeader(): string {
    return `Basic ${Buffer.from(`${this.#creds!.username}:${this.#creds!.password}`).toString('base64')}`;
  }

  #authFor(repo: string | undefined): string | undefined {
    if (this.#basic && this.#creds) return this.#basicHeader();
    return this.#tokens.get(repo ?? '');
  }

  /** Sends a request to `path` (e.g. `/v2/repo/manifests/tag`), answering one auth challenge. */
  async request(path: string, opts: RequestOptions = {}): Promise<Response> {
    const url = new URL(path, this.url);
    const repo = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(url.pathname)?.[1];
    const send = (auth: string | undefined) => {
      this.requests++;
      const headers: Record<string, string> = { ...opts.headers };
      if (auth) headers.authorization = auth;
      return fetch(url, {
        method: opts.method ?? 'GET',
        headers,
        body: opts.body,
        signal: opts.signal,
        redirect: 'follow',
      });
    };
    const res = await send(this.#authFor(repo));
    if (res.status !== 401) return res;
    const ch = parseChallenge(res.headers.get('www-authenticate') ?? '');
    if (ch.scheme === 'basic') {
      if (!this.#creds || this.#basic) return res;
      await res.arrayBuffer();
      this.#basic = true;
      return send(this.#basicHeader());
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) return res;
    await res.arrayBuffer();
    let scope = ch.params.scope;
    if (opts.push && repo) scope = `repository:${repo}:pull,push`;
    const token = await this.#fetchToken(ch.params.realm, ch.params.service, scope, opts.signal);
    if (typeof token !== 'string') return token;
    this.#tokens.set(repo ?? '', token);
    return send(`Bearer ${token}`);
  }

  /** The token, or the token server's refusal as a Response (header `x-harness-token-error: 1`). */
  async #fetchToken(
    realm: string,
    service?: string,
    scope?: string,
    signal?: AbortSignal,
  ): Promise<string | Response> {
    const u = new URL(realm);
    if (service) u.searchParams.set('service', service);
    if (scope) u.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (this.#creds) headers.authorization = this.#basicHeader();
    this.requests++;
    const r = await fetch(u, { headers, signal });
    const text = await r.text();
    if (!r.ok) {
      return new Response(text, {
        status: r.status,
        headers: {
          'content-type': r.headers.get('content-type') ?? 'text/plain',
          'x-harness-token-error': '1',
        },
      });
    }
    const body = JSON.parse(text) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new HarnessError(`token response from ${u.origin} has no token`);
    return token;
  }

  async #ok(res: Response, what: string): Promise<Response> {
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    throw new HarnessError(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  }

  /** Uploads a blob unless the repository already has it (monolithic POST + PUT). */
  async pushBlob(repo: string, b: Blob, signal?: AbortSignal): Promise<void> {
    const head = await this.request(`/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD', push: true, signal });
    if (head.status === 200) return;
    const start = await this.#ok(
      await this.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST', push: true, signal }),
      `start upload of ${b.digest} to ${repo}`,
    );
    await start.arrayBuffer();
    const loc = start.headers.get('location');
    if (!loc) throw new HarnessError(`upload to ${repo}: no Location header`);
    const u = new URL(loc, this.url);
    u.searchParams.set('digest', b.digest);
    const put = await this.#ok(
      await this.request(u.toString(), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(b.size) },
        body: b.data,
        push: true,
        signal,
      }),
      `upload ${b.digest} to ${repo}`,
    );
    await put.arrayBuffer();
  }

  /** PUT a manifest or index under a tag or digest; returns the digest the registry reports. */
  async putManifest(repo: string, ref: string, m: Blob, signal?: AbortSignal): Promise<string> {
    const res = await this.#ok(
      await this.request(`/v2/${repo}/manifests/${ref}`, {
        method: 'PUT',
        headers: { 'content-type': m.mediaType },
        body: m.data,
        push: true,
        signal,
      }),
      `put manifest ${repo}:${ref}`,
    );
    await res.arrayBuffer();
    return res.headers.get('docker-content-digest') ?? m.digest;
  }

  /** GET a manifest; does not verify the digest (tests do). */
  async getManifest(
    repo: string,
    ref: string,
    signal?: AbortSignal,
  ): Promise<{ status: number; mediaType: string; digest: string | null; data: Buffer }> {
    const res = await this.request(`/v2/${repo}/manifests/${ref}`, {
      headers: { accept: MANIFEST_ACCEPT },
      signal,
    });
    const data = Buffer.from(await res.arrayBuffer());
    return {
      status: res.status,
      mediaType: res.headers.get('content-type') ?? '',
      digest: res.headers.get('docker-content-digest'),
      data,
    };
  }

  /** GET a blob's bytes as served; does not verify the digest. */
  async getBlob(
    repo: string,
    digest: string,
    signal?: AbortSignal,
  ): Promise<{ status: number; data: Buffer }> {
    const res = await this.request(`/v2/${repo}/blobs/${digest}`, { signal });
    return { status: res.status, data: Buffer.from(await res.arrayBuffer()) };
  }
}

export interface PushResult {
  digest: string;
  /** `HOST/repo:tag` or `HOST/repo@digest`. */
  reference: string;
}

function refString(target: RegistryTarget, repo: string, tagOrDigest: string): string {
  const host = new URL(baseUrl(target)).host;
  return tagOrDigest.startsWith('sha256:')
    ? `${host}/${repo}@${tagOrDigest}`
    : `${host}/${repo}:${tagOrDigest}`;
}

async function pushImageWith(
  client: RegistryClient,
  repo: string,
  ref: string,
  image: BuiltImage,
  signal?: AbortSignal,
) {
  for (const b of [image.config, ...image.layers]) await client.pushBlob(repo, b, signal);
  return client.putManifest(repo, ref, image.manifest, signal);
}

/** Pushes an image's blobs and manifest; `tagOrDigest` may be the image's own digest. */
export async function pushImage(
  registry: RegistryTarget,
  repo: string,
  tagOrDigest: string,
  image: BuiltImage,
  creds?: Creds,
  signal?: AbortSignal,
): Promise<PushResult> {
  const client = new RegistryClient(registry, creds);
  const digest = await pushImageWith(client, repo, tagOrDigest, image, signal);
  return { digest, reference: refString(registry, repo, tagOrDigest) };
}

/**
 * Pushes every image by digest, then an index over them under `tag`.
 * `images` is keyed by "os/arch[/variant]" (the index entry's platform).
 */
export async function pushIndex(
  registry: RegistryTarget,
  repo: string,
  tag: string,
  images: Record<string, BuiltImage> | BuiltIndex,
  creds?: Creds,
  opts: IndexOptions & { signal?: AbortSignal } = {},
): Promise<PushResult & { index: BuiltIndex }> {
  const index =
    'index' in images && 'manifests' in images
      ? (images as BuiltIndex)
      : buildIndex(images as Record<string, BuiltImage>, opts);
  const client = new RegistryClient(registry, creds);
  for (const m of index.manifests) await pushImageWith(client, repo, m.digest, m, opts.signal);
  const digest = await client.putManifest(repo, tag, index.index, opts.signal);
  return { digest, reference: refString(registry, repo, tag), index };
}

// ---------------------------------------------------------------------------
// Hostile images
// ---------------------------------------------------------------------------

/**
 * A place a vulnerable unpacker would touch. `base` says what `path` is relative
 * to: the host root, the parent of the rootfs dir, or the rootfs itself.
 * `expect: 'absent'`: must not exist after unpack; `'untouched'`: the test
 * creates it beforehand (any content) and it must keep its content and have
 * link count 1 (so no hardlink to it was made).
 */
export interface Canary {
  path: string;
  base: 'host' | 'rootfsParent' | 'rootfs';
  expect: 'absent' | 'untouched' | 'present';
  /**
   * An `untouched` canary that is a directory (the test makes it with one file
   * inside): its listing, mtime and extended attributes must not change.
   */
  dir?: boolean;
}

export interface HostileImage {
  /**
   * `refuse`: a correct puller must fail the pull (bad digest, diff_id).
   * `refuse-or-contain`: failing is fine, and so is unpacking as long as every canary holds.
   */
  outcome: 'refuse' | 'refuse-or-contain';
  /** What the tag points at. */
  image: BuiltImage;
  /** Blobs to push besides the image's own (e.g. the evil twin's layers). */
  extraBlobs?: Blob[];
  /** After the push, the registry's stored bytes for these digests are replaced. */
  tamper?: Array<{ digest: string; data: Buffer }>;
  canaries: Canary[];
}

export interface HostileBuilder {
  description: string;
  build(): Promise<HostileImage>;
}

/** Enough `..` to climb from any plausible rootfs depth to `/` (24 levels; names stay < 100 bytes). */
const UP = Array.from({ length: 24 }, () => '..').join('/');
const P = 'pullkeeper-hostile';

async function hostile(layers: LayerSpec[], canaries: Canary[]): Promise<HostileImage> {
  const image = await buildImage({
    layers: [{ busybox: true }, ...layers],
    config: { Cmd: ['/bin/sh', '-c', 'echo hostile image ran'] },
  });
  return { image, canaries, outcome: 'refuse-or-contain' };
}

const raw = (...files: FileEntry[]): LayerSpec => ({ files, raw: true });

/** Two images of identical blob sizes whose one file says GOOD or EVIL. */
async function twins() {
  const layer = (word: string) =>
    ({ files: [{ path: 'payload.txt', content: `${word}\n` }], gzipLevel: 0 }) satisfies LayerSpec;
  const spec = (word: string): ImageSpec => ({
    layers: [{ busybox: true }, layer(word)],
    config: { Cmd: ['/bin/cat', '/payload.txt'] },
  });
  const good = await buildImage(spec('GOOD'));
  const evil = await buildImage(spec('EVIL'));
  for (const k of ['manifest', 'config'] as const) {
    if (good[k].size !== evil[k].size) throw new HarnessError(`twins: ${k} sizes differ`);
  }
  if (good.layers[1]!.size !== evil.layers[1]!.size) throw new HarnessError('twins: layer sizes differ');
  return { good, evil };
}

export const hostileImages: Record<string, HostileBuilder> = {
  'dotdot-escape': {
    description:
      'entries named ../pullkeeper-hostile-dotdot and ../../…/tmp/pullkeeper-hostile-dotdot-deep escape the rootfs',
    build: () =>
      hostile(
        [
          raw({ path: `../${P}-dotdot`, content: 'escaped\n' }),
          raw({ path: `${UP}/tmp/${P}-dotdot-deep`, content: 'escaped\n' }),
        ],
        [
          { path: `${P}-dotdot`, base: 'rootfsParent', expect: 'absent' },
          { path: `/tmp/${P}-dotdot-deep`, base: 'host', expect: 'absent' },
        ],
      ),
  },
  'absolute-path': {
    description:
      'an entry named /etc/pullkeeper-hostile-absolute (absolute path; must land inside the rootfs or be refused)',
    build: () =>
      hostile(
        [raw({ path: `/etc/${P}-absolute`, content: 'escaped\n' })],
        [{ path: `/etc/${P}-absolute`, base: 'host', expect: 'absent' }],
      ),
  },
  'symlink-escape-absolute': {
    description:
      'symlink escape -> / then a file escape/tmp/pullkeeper-hostile-symlink-abs written through it',
    build: () =>
      hostile(
        [
          raw(
            { path: 'escape', type: 'symlink', linkname: '/' },
            { path: `escape/tmp/${P}-symlink-abs`, content: 'escaped\n' },
          ),
        ],
        [{ path: `/tmp/${P}-symlink-abs`, base: 'host', expect: 'absent' }],
      ),
  },
  'symlink-escape-relative': {
    description:
      'symlink up -> ../../..(24x) then a file up/tmp/pullkeeper-hostile-symlink-rel written through it',
    build: () =>
      hostile(
        [
          raw(
            { path: 'up', type: 'symlink', linkname: UP },
            { path: `up/tmp/${P}-symlink-rel`, content: 'escaped\n' },
          ),
        ],
        [{ path: `/tmp/${P}-symlink-rel`, base: 'host', expect: 'absent' }],
      ),
  },
  'symlink-escape-cross-layer': {
    description:
      'layer 1: symlink escape -> /tmp; layer 2: file escape/pullkeeper-hostile-symlink-layer (escape across layers)',
    build: () =>
      hostile(
        [
          raw({ path: 'escape', type: 'symlink', linkname: '/tmp' }),
          raw({ path: `escape/${P}-symlink-layer`, content: 'escaped\n' }),
        ],
        [{ path: `/tmp/${P}-symlink-layer`, base: 'host', expect: 'absent' }],
      ),
  },
  'hardlink-escape': {
    description:
      'hardlinks stolen-rel -> ../..(24x)/tmp/pullkeeper-hostile-hardlink-target and stolen-abs -> /tmp/… (outside the rootfs)',
    build: () =>
      hostile(
        [
          raw(
            { path: 'stolen-rel', type: 'hardlink', linkname: `${UP}/tmp/${P}-hardlink-target` },
            { path: 'stolen-abs', type: 'hardlink', linkname: `/tmp/${P}-hardlink-target` },
          ),
        ],
        [{ path: `/tmp/${P}-hardlink-target`, base: 'host', expect: 'untouched' }],
      ),
  },
  'hardlink-through-symlink': {
    description:
      'symlink lnk -> /tmp, then hardlink stolen -> lnk/pullkeeper-hostile-hardlink-sym-target (link() follows the symlink)',
    build: () =>
      hostile(
        [
          raw(
            { path: 'lnk', type: 'symlink', linkname: '/tmp' },
            { path: 'stolen', type: 'hardlink', linkname: `lnk/${P}-hardlink-sym-target` },
          ),
        ],
        [{ path: `/tmp/${P}-hardlink-sym-target`, base: 'host', expect: 'untouched' }],
      ),
  },
  'char-device': {
    description: 'a character device dev/pullkeeper-mem 1:1 (= /dev/mem); must not be created in the rootfs',
    build: () =>
      hostile(
        [
          raw(
            { path: 'dev/', type: 'dir', mode: 0o755 },
            { path: 'dev/pullkeeper-mem', type: 'char', devmajor: 1, devminor: 1, mode: 0o666 },
          ),
        ],
        [{ path: 'dev/pullkeeper-mem', base: 'rootfs', expect: 'absent' }],
      ),
  },
  'block-device': {
    description: 'a block device dev/pullkeeper-loop 7:0 (= /dev/loop0); must not be created in the rootfs',
    build: () =>
      hostile(
        [
          raw(
            { path: 'dev/', type: 'dir', mode: 0o755 },
            { path: 'dev/pullkeeper-loop', type: 'block', devmajor: 7, devminor: 0, mode: 0o666 },
          ),
        ],
        [{ path: 'dev/pullkeeper-loop', base: 'rootfs', expect: 'absent' }],
      ),
  },
  'whiteout-dotdot': {
    description: 'whiteout ../.wh.pullkeeper-hostile-victim deletes a file beside the rootfs',
    build: () =>
      hostile(
        [raw({ path: `../.wh.${P}-victim` })],
        [{ path: `${P}-victim`, base: 'rootfsParent', expect: 'untouched' }],
      ),
  },
  'whiteout-through-symlink': {
    description:
      'layer 1: symlink lnk -> /tmp; layer 2: whiteout lnk/.wh.pullkeeper-hostile-victim-symlink deletes a host file',
    build: () =>
      hostile(
        [
          raw({ path: 'lnk', type: 'symlink', linkname: '/tmp' }),
          raw({ path: `lnk/.wh.${P}-victim-symlink` }),
        ],
        [{ path: `/tmp/${P}-victim-symlink`, base: 'host', expect: 'untouched' }],
      ),
  },
  'whiteout-dotdot-name': {
    description: 'layer 1: dir sub/; layer 2: whiteout sub/.wh... (target "..", i.e. the rootfs itself)',
    build: () =>
      hostile(
        [raw({ path: 'sub/', type: 'dir' }), raw({ path: 'sub/.wh...' })],
        [{ path: 'bin/busybox', base: 'rootfs', expect: 'present' }],
      ),
  },
  'same-layer-whiteout-then-symlink': {
    description:
      'one layer: dir d/, whiteout d/.wh.pullkeeper-hostile-samelayer-wh, then d -> /tmp (the whiteout would be made in /tmp)',
    build: () =>
      hostile(
        [
          raw(
            { path: 'd/', type: 'dir' },
            { path: `d/.wh.${P}-samelayer-wh` },
            { path: 'd', type: 'symlink', linkname: '/tmp' },
          ),
        ],
        [{ path: `/tmp/${P}-samelayer-wh`, base: 'host', expect: 'absent' }],
      ),
  },
  'same-layer-opaque-then-symlink': {
    description:
      'one layer: dir d/, opaque marker d/.wh..wh..opq, then d -> /tmp/pullkeeper-hostile-samelayer-opq (a host dir would be marked opaque)',
    build: () =>
      hostile(
        [
          raw(
            { path: 'd/', type: 'dir' },
            { path: 'd/.wh..wh..opq' },
            { path: 'd', type: 'symlink', linkname: `/tmp/${P}-samelayer-opq` },
          ),
        ],
        [{ path: `/tmp/${P}-samelayer-opq`, base: 'host', expect: 'untouched', dir: true }],
      ),
  },
  'same-layer-dirtime-then-symlink': {
    description:
      'one layer: dir d/ (mtime 0), then d -> /tmp/pullkeeper-hostile-samelayer-time (its time would be set on a host dir)',
    build: () =>
      hostile(
        [
          raw(
            { path: 'd/', type: 'dir' },
            { path: 'd', type: 'symlink', linkname: `/tmp/${P}-samelayer-time` },
          ),
        ],
        [{ path: `/tmp/${P}-samelayer-time`, base: 'host', expect: 'untouched', dir: true }],
      ),
  },
  'diffid-mismatch': {
    description: "the layer blob matches its digest but the config's diff_id for it is wrong",
    build: async () => {
      const bb = await buildLayer({ busybox: true });
      const l = await buildLayer({ files: [{ path: 'payload.txt', content: 'diffid\n' }] });
      const image = assembleImage([bb, l], {
        diffIds: [bb.diffId, sha256('not the layer')],
        config: { Cmd: ['/bin/true'] },
      });
      return { image, canaries: [], outcome: 'refuse' };
    },
  },
  'corrupt-layer-blob': {
    description:
      'the registry serves, for the payload layer digest, a valid gzip tar of the same size whose payload.txt says EVIL',
    build: async () => {
      const { good, evil } = await twins();
      return {
        image: good,
        tamper: [{ digest: good.layers[1]!.digest, data: evil.layers[1]!.data }],
        canaries: [{ path: 'payload.txt', base: 'rootfs', expect: 'absent' }],
        outcome: 'refuse',
      };
    },
  },
  'corrupt-manifest': {
    description:
      'the registry serves, for the manifest digest, a same-size manifest of an EVIL twin image whose blobs exist in the repo',
    build: async () => {
      const { good, evil } = await twins();
      return {
        image: good,
        extraBlobs: [evil.config, ...evil.layers],
        tamper: [{ digest: good.digest, data: evil.manifest.data }],
        canaries: [{ path: 'payload.txt', base: 'rootfs', expect: 'absent' }],
        outcome: 'refuse',
      };
    },
  },
};

/** What `pushHostile` needs from a started registry. */
export interface TamperableRegistry {
  info: RegistryInfo;
  overwriteBlob(digest: string, data: Buffer): Promise<void>;
}

/** Pushes a hostile image under `tag`, then applies its tampering in the registry's storage. */
export async function pushHostile(
  registry: TamperableRegistry,
  repo: string,
  tag: string,
  h: HostileImage,
  creds?: Creds,
): Promise<PushResult> {
  const client = new RegistryClient(registry, creds);
  for (const b of h.extraBlobs ?? []) await client.pushBlob(repo, b);
  const digest = await pushImageWith(client, repo, tag, h.image);
  for (const t of h.tamper ?? []) await registry.overwriteBlob(t.digest, t.data);
  return { digest, reference: refString(registry, repo, tag) };
}
