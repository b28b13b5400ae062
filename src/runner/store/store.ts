/**
 * The image store under a state dir; implements ImageSource for the runner.
 *
 *   <state>/blobs/sha256/<hex>                 manifests, indexes, configs (verified, content-addressed)
 *   <state>/layers/sha256/<diff_id hex>/rootfs  one unpacked layer (an overlayfs lowerdir), shared by images
 *   <state>/layers/sha256/<diff_id hex>/layer.json   what the unpack reported (implicit dirs, skipped entries)
 *   <state>/tmp/                               downloads in progress; never read as content
 *   <state>/images.json                        the index: reference -> manifest digest, config, diff_ids
 *
 * Content is committed by rename only after its digest (and, for layers, the
 * diff_id of the uncompressed tar) has been verified, so a failed or hostile
 * pull leaves nothing but a temp dir that is removed at once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { PullkeeperError } from '../../core/errors.js';
import {
  applyDefaultImageTag,
  DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY,
  decideCachedImage,
  describeCredentialSource,
  formatImageRef,
  goQuote,
  type ImagePullCredentialsVerificationPolicy,
  type ImageRef,
  type KeyringCredential,
  mergePullCredentials,
  normalizePlatform,
  type Platform,
  parseImageRef,
  platformMatches,
  type RecordedCredential,
  type SourcedDockerConfig,
  selectPlatform,
} from '../../core/index.js';
import { DistributionClient } from '../../oci/client.js';
import { assertSha256, sha256Of } from '../../oci/digest.js';
import { DigestMismatchError, RegistryNotFoundError, UnsupportedMediaTypeError } from '../../oci/errors.js';
import {
  type Descriptor,
  type ImageConfigFile,
  type ImageManifest,
  imageConfigSchema,
  LAYER_MEDIA_TYPES,
  parseManifest,
} from '../../oci/manifest.js';
import { pool } from '../../util/concurrency.js';
import { type NodeCredentialsOptions, pullKeyring, readNodeDockerConfig } from '../credentials.js';
import type {
  EnsureImageRequest,
  ImageEvent,
  ImageRuntimeConfig,
  ImageSource,
  PulledImage,
} from '../image-source.js';
import { type ImageRecord, readIndex, recordKey, updateIndex } from './image-index.js';
import { ImageBudget, type StoreLimits, storeLimits } from './limits.js';
import { credentialHash, loadRecordKey, podCredentialHashes, sourcedPodSecrets } from './pull-records.js';
import { checkAcrossLayers, type UnpackReport, unpackLayer } from './unpack.js';

export { DEFAULT_MAX_IMAGE_BYTES } from './limits.js';
export const DEFAULT_STATE_DIR = '/var/lib/pullkeeper';
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** `ErrImageNeverPull`: absent with policy Never. */
export class ImageNeverPullError extends PullkeeperError {
  readonly reason = 'ErrImageNeverPull';
}

/** Every credential failed (kubelet's aggregate), or the anonymous pull failed. */
export class ImagePullError extends PullkeeperError {
  readonly reason = 'ErrImagePull';
  /** The keyring keys tried, in order (`<anonymous>` for none). Never a secret. */
  readonly tried: string[];
  readonly errors: Error[];
  constructor(message: string, tried: string[], errors: Error[]) {
    super(message, { cause: errors[0] });
    this.tried = tried;
    this.errors = errors;
  }
}

export interface PullProgress {
  layersTotal: number;
  layersDone: number;
  /** Compressed bytes to download for layers not yet in the store. */
  bytesTotal: number;
  bytesDone: number;
}

export interface ImageStoreOptions {
  stateDir?: string;
  /** Where node credentials come from (kubelet's search order under rootDir). */
  nodeCredentials?: NodeCredentialsOptions;
  /** The node's platform (default: linux and this process's architecture). */
  platform?: Platform;
  /** Layers downloaded and unpacked at once (default 3). */
  concurrency?: number;
  /** Uncompressed file bytes of the whole image (default 16 GiB); counted while the layers stream. */
  maxImageBytes?: number;
  /** Uncompressed file bytes of one layer (default: maxImageBytes). */
  maxLayerBytes?: number;
  /** Tar entries plus implicit directories over all layers (default 1,000,000). */
  maxImageInodes?: number;
  /** One PAX or GNU long-name header (default 1 MiB). */
  maxPaxHeaderBytes?: number;
  keepSetuid?: boolean;
  timeoutMs?: number;
  /** Registries reached over plain http besides loopback ones. */
  insecureRegistries?: readonly string[];
  onRequest?: (method: string, url: string) => void;
  onProgress?: (p: PullProgress) => void;
}

export interface StoredImage extends ImageRecord {
  ref: string;
}

export function hostPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    ia32: '386',
    arm: 'arm',
    ppc64: 'ppc64le',
  };
  return normalizePlatform({ os: process.platform, architecture: arch[process.arch] ?? process.arch });
}

function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** The kubelet-style aggregate of errors: one message, or `[a, b]`. */
function aggregate(errors: Error[]): string {
  return errors.length === 1 ? errors[0]!.message : `[${errors.map((e) => e.message).join(', ')}]`;
}

/** The old boolean mapped onto the policy; the policy wins when both are given. */
function verificationPolicyOf(req: EnsureImageRequest): ImagePullCredentialsVerificationPolicy {
  if (req.verificationPolicy) return req.verificationPolicy;
  if (req.verifyCachedCredentials === true) return 'AlwaysVerify';
  if (req.verifyCachedCredentials === false) return 'NeverVerify';
  return DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY;
}

/** `"127.0.0.1:5000" (Secret "team-b/pull")`, `<anonymous>`: a credential by where it came from, never its value. */
function triedLabel(cred: KeyringCredential | undefined): string {
  if (!cred) return '<anonymous>';
  return `${JSON.stringify(cred.key)} (${describeCredentialSource(cred.source)})`;
}

/** One credential's failure, named by where the credential came from; `cause` is the registry's answer. */
export class CredentialRefusedError extends PullkeeperError {}

/** The registry's answer for one credential, prefixed with the credential's name (Secret, file). */
function namedError(cred: KeyringCredential | undefined, err: Error): Error {
  if (!cred?.source) return err;
  return new CredentialRefusedError(`${describeCredentialSource(cred.source)}: ${err.message}`, {
    cause: err,
  });
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(3).replace(/\.?0+$/, '')}s`;
}

export class ImageStore implements ImageSource {
  readonly stateDir: string;
  readonly #opts: ImageStoreOptions;
  readonly #platform: Platform;
  #recordKey: Promise<Buffer> | undefined;

  constructor(opts: ImageStoreOptions = {}) {
    this.stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    this.#opts = opts;
    this.#platform = opts.platform ?? hostPlatform();
  }

  /** The bounds of one pull: the request's (node config), else the store's options, else the defaults. */
  #limits(req: EnsureImageRequest): StoreLimits {
    const o = this.#opts;
    const r = req.limits ?? {};
    return storeLimits({
      maxImageBytes: r.maxImageBytes ?? o.maxImageBytes,
      maxLayerBytes: r.maxLayerBytes ?? o.maxLayerBytes,
      maxImageInodes: r.maxImageInodes ?? o.maxImageInodes,
      maxPaxHeaderBytes: r.maxPaxHeaderBytes ?? o.maxPaxHeaderBytes,
    });
  }

  get #blobs() {
    return join(this.stateDir, 'blobs', 'sha256');
  }
  get #layers() {
    return join(this.stateDir, 'layers', 'sha256');
  }
  get #tmp() {
    return join(this.stateDir, 'tmp');
  }

  layerRoot(diffId: string): string {
    return join(this.#layers, hexOf(diffId), 'rootfs');
  }

  async #init(): Promise<void> {
    for (const d of [this.#blobs, this.#layers, this.#tmp]) await mkdir(d, { recursive: true, mode: 0o700 });
  }

  #client(registry: string, cred: KeyringCredential | undefined): DistributionClient {
    const plain = this.#opts.insecureRegistries?.includes(registry) ? true : undefined;
    return new DistributionClient({
      registry,
      credential: cred,
      plainHttp: plain,
      insecureHosts: this.#opts.insecureRegistries ?? [],
      timeoutMs: this.#opts.timeoutMs,
      onRequest: this.#opts.onRequest,
    });
  }

  /** The stored record a reference names, if every layer of it is still present. */
  async lookup(ref: ImageRef): Promise<ImageRecord | undefined> {
    const index = await readIndex(this.stateDir);
    let rec: ImageRecord | undefined;
    if (ref.digest !== undefined) {
      rec = Object.values(index.images).find(
        (r) => r.name === ref.name && (r.digest === ref.digest || r.indexDigest === ref.digest),
      );
    } else {
      rec = index.images[`${ref.name}:${ref.tag ?? 'latest'}`];
    }
    if (!rec) return undefined;
    for (const l of rec.layers) if (!existsSync(this.layerRoot(l))) return undefined;
    if (!existsSync(join(this.#blobs, hexOf(rec.config)))) return undefined;
    return rec;
  }

  async ensure(req: EnsureImageRequest): Promise<PulledImage> {
    const emit = (e: ImageEvent) => req.onEvent?.(e);
    let ref: ImageRef;
    try {
      applyDefaultImageTag(req.image);
      ref = parseImageRef(req.image);
    } catch (err) {
      // kubelet: event InspectFailed, waiting reason InvalidImageName.
      const detail = err instanceof Error ? err.message : String(err);
      emit({
        type: 'Warning',
        reason: 'InspectFailed',
        message: `Failed to apply default image tag ${goQuote(req.image)}: ${detail}`,
      });
      throw err;
    }
    const present = req.policy === 'Always' ? undefined : await this.lookup(ref);
    // KEP-2535: may this pod use the cached image, or must the registry confirm its credentials first?
    const decision = decideCachedImage({
      pullPolicy: req.policy,
      image: req.image,
      present: present !== undefined,
      record: present?.credentials,
      podCredentials: present?.credentials
        ? podCredentialHashes(await this.#key(), ref.name, [
            ...req.podSecrets,
            ...(req.providerCredentials ?? []),
          ])
        : [],
      policy: verificationPolicyOf(req),
      allowlist: req.verificationAllowlist,
    });
    switch (decision.action) {
      case 'fail':
        emit({ type: 'Warning', reason: decision.reason, message: decision.message });
        throw new ImageNeverPullError(decision.message);
      case 'use-cached':
        if (decision.remember) await this.#remember(present!, { secret: decision.remember });
        emit({ type: 'Normal', reason: 'Pulled', message: decision.message });
        return this.#result(ref, present!, false);
      case 'verify':
        return this.#verify(ref, present!, req, emit);
      case 'pull':
        return this.#pull(ref, req, emit);
    }
  }

  /** The store's key for credential hashes (made on first use). */
  #key(): Promise<Buffer> {
    this.#recordKey ??= loadRecordKey(this.stateDir);
    return this.#recordKey;
  }

  async #credentials(
    ref: ImageRef,
    podSecrets: readonly SourcedDockerConfig[],
    providers: readonly SourcedDockerConfig[] = [],
  ): Promise<KeyringCredential[]> {
    const node = await readNodeDockerConfig(this.#opts.nodeCredentials ?? {});
    const nodeConfig = node
      ? { ...node.config, source: { kind: 'node' as const, name: node.path } }
      : undefined;
    return pullKeyring(sourcedPodSecrets(podSecrets), nodeConfig, providers).lookup(ref.name);
  }

  /** What a successful pull or check with `cred` proves (kubelet's trackedToImagePullCreds). */
  async #proof(
    cred: KeyringCredential | undefined,
  ): Promise<{ nodeAccessible: true } | { secret: RecordedCredential }> {
    // Node files and anonymous access serve every pod on the node alike.
    if (!cred?.source || cred.source.kind === 'node') return { nodeAccessible: true };
    return { secret: { source: cred.source, hash: credentialHash(await this.#key(), cred) } };
  }

  /** Adds a proof to the index records of a present image (every reference to the same manifest). */
  async #remember(
    rec: ImageRecord,
    add: { nodeAccessible: true } | { secret: RecordedCredential },
  ): Promise<void> {
    await updateIndex(this.stateDir, (index) => {
      for (const r of Object.values(index.images)) {
        if (r.name === rec.name && r.digest === rec.digest) {
          r.credentials = mergePullCredentials(r.credentials, add);
        }
      }
      return index;
    });
  }

  /**
   * KEP-2535: the image is present but the pod's credentials are not on its
   * record, so ask the registry: one HEAD on the stored manifest per
   * candidate credential, in kubelet's keyring order (pod Secrets, then the
   * node file; anonymous when none match). The first that may read it is
   * recorded and the cached image is used. kubelet pulls again here; a HEAD
   * proves the same access without moving layers. If the registry no longer
   * has that manifest, this becomes a normal pull.
   */
  async #verify(
    ref: ImageRef,
    rec: ImageRecord,
    req: EnsureImageRequest,
    emit: (e: ImageEvent) => void,
  ): Promise<PulledImage> {
    const creds = await this.#credentials(ref, req.podSecrets, req.providerCredentials);
    const errors: Error[] = [];
    const tried: string[] = [];
    let gone = false;
    for (const cred of creds.length > 0 ? creds : [undefined]) {
      tried.push(triedLabel(cred));
      try {
        await this.#client(ref.domain, cred).canReadManifest(ref.path, rec.digest, req.signal);
      } catch (err) {
        if (req.signal?.aborted || !(err instanceof PullkeeperError)) throw err;
        if (err instanceof RegistryNotFoundError) gone = true;
        errors.push(namedError(cred, err));
        continue;
      }
      await this.#remember(rec, await this.#proof(cred));
      emit({
        type: 'Normal',
        reason: 'Pulled',
        message: `Container image ${goQuote(req.image)} already present on machine and can be accessed by the pod`,
      });
      return this.#result(ref, rec, false);
    }
    if (gone) return this.#pull(ref, req, emit);
    const message = `Failed to pull image ${goQuote(req.image)}: ${aggregate(errors)}`;
    emit({ type: 'Warning', reason: 'Failed', message });
    throw new ImagePullError(
      `${message} (the image is cached on this node, but no credential of the pod may read it; credentials tried, in order: ${tried.join(', ')})`,
      tried,
      errors,
    );
  }

  async #pull(ref: ImageRef, req: EnsureImageRequest, emit: (e: ImageEvent) => void): Promise<PulledImage> {
    const t0 = performance.now();
    emit({ type: 'Normal', reason: 'Pulling', message: `Pulling image ${goQuote(req.image)}` });
    await this.#init();
    const creds = await this.#credentials(ref, req.podSecrets, req.providerCredentials);
    const errors: Error[] = [];
    const tried: string[] = [];
    for (const cred of creds.length > 0 ? creds : [undefined]) {
      tried.push(triedLabel(cred));
      try {
        const rec = await this.#pullWith(ref, cred, this.#limits(req), req.signal);
        const ms = performance.now() - t0;
        emit({
          type: 'Normal',
          reason: 'Pulled',
          message: `Successfully pulled image ${goQuote(req.image)} in ${formatDuration(ms)} (${formatDuration(ms)} including waiting). Image size: ${rec.size} bytes.`,
        });
        return this.#result(ref, rec, true);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        if (!(err instanceof Error)) throw err;
        if (!(err instanceof PullkeeperError)) {
          // A local failure (disk, permissions) is not the credential's fault: stop here.
          emit({
            type: 'Warning',
            reason: 'Failed',
            message: `Failed to pull image ${goQuote(req.image)}: ${err.message}`,
          });
          throw err;
        }
        errors.push(namedError(cred, err));
      }
    }
    const message = `Failed to pull image ${goQuote(req.image)}: ${aggregate(errors)}`;
    emit({ type: 'Warning', reason: 'Failed', message });
    throw new ImagePullError(`${message} (credentials tried, in order: ${tried.join(', ')})`, tried, errors);
  }

  async #storeBlob(digest: string, bytes: Buffer): Promise<void> {
    const path = join(this.#blobs, hexOf(digest));
    if (existsSync(path)) return;
    const tmp = join(this.#tmp, `blob-${randomBytes(6).toString('hex')}`);
    await writeFile(tmp, bytes, { mode: 0o600 });
    await rename(tmp, path);
  }

  async #pullWith(
    ref: ImageRef,
    cred: KeyringCredential | undefined,
    limits: StoreLimits,
    signal?: AbortSignal,
  ): Promise<ImageRecord> {
    const client = this.#client(ref.domain, cred);
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const what = `${ref.name}${ref.digest ? `@${ref.digest}` : `:${reference}`}`;
    let m = await client.getManifest(ref.path, reference, signal);
    let parsed = parseManifest(m.mediaType, m.bytes, what);
    let indexDigest: string | undefined;
    let expectConfigPlatform = true;
    if (parsed.kind === 'index') {
      indexDigest = m.digest;
      await this.#storeBlob(m.digest, m.bytes);
      const chosen = selectPlatform({ manifests: parsed.index.manifests, digest: m.digest }, this.#platform);
      expectConfigPlatform = chosen.platform === undefined || chosen.platform === null;
      assertSha256(chosen.digest, what);
      m = await client.getManifest(ref.path, chosen.digest, signal);
      parsed = parseManifest(m.mediaType, m.bytes, `${what} (${chosen.digest})`);
      if (parsed.kind !== 'manifest') {
        throw new UnsupportedMediaTypeError(`${what}: an index entry points at another index; not supported`);
      }
    }
    const manifest: ImageManifest = parsed.manifest;
    assertSha256(manifest.config.digest, what);
    const configBytes = await client.getBlobBytes(ref.path, manifest.config.digest, MAX_CONFIG_BYTES, signal);
    const configParsed = imageConfigSchema.safeParse(JSON.parse(configBytes.toString('utf8')));
    if (!configParsed.success) {
      throw new UnsupportedMediaTypeError(
        `${what}: the image config is malformed (${configParsed.error.message.slice(0, 200)})`,
      );
    }
    const config: ImageConfigFile = configParsed.data;
    if (expectConfigPlatform && config.os !== undefined && config.architecture !== undefined) {
      const p: Platform = { os: config.os, architecture: config.architecture, variant: config.variant };
      if (!platformMatches(this.#platform, p)) {
        throw new UnsupportedMediaTypeError(
          `${what}: the image is for ${config.os}/${config.architecture}, which this node cannot run; push an image ` +
            'for the node platform or a multi-arch index',
        );
      }
    }
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new UnsupportedMediaTypeError(
        `${what}: the config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`,
      );
    }
    for (const [i, l] of manifest.layers.entries()) {
      assertSha256(l.digest, what);
      assertSha256(diffIds[i]!, what);
      if (LAYER_MEDIA_TYPES[l.mediaType] === undefined) {
        throw new UnsupportedMediaTypeError(
          `${what}: layer ${i + 1} has unsupported media type ${JSON.stringify(l.mediaType)}`,
        );
      }
    }
    // Layers already in the store count against the image's bounds from the start; new ones are
    // counted while they stream and committed only once the whole image passed.
    const unique = [...new Set(diffIds)];
    const cached = new Map<string, UnpackReport>();
    for (const d of unique) {
      const meta = await this.#layerMeta(d);
      if (meta) cached.set(d, meta);
    }
    const used = { bytes: 0, inodes: 0 };
    for (const r of cached.values()) {
      used.bytes += r.fileBytes;
      used.inodes += r.entries + r.implicitDirs.length;
    }
    const budget = new ImageBudget(limits, used);
    const fresh = await this.#fetchLayers(
      client,
      ref.path,
      manifest.layers.filter((_, i) => !cached.has(diffIds[i]!)),
      diffIds.filter((d) => !cached.has(d)),
      manifest.layers.length,
      budget,
      signal,
    );
    try {
      // Cross-layer rules need every layer (cached ones included: they may be shared).
      const metas = diffIds.map((d) => {
        const f = fresh.get(d);
        return f
          ? { dir: join(f.work, 'rootfs'), implicitDirs: f.report.implicitDirs }
          : { dir: this.layerRoot(d), implicitDirs: cached.get(d)!.implicitDirs };
      });
      checkAcrossLayers(metas);
      for (const [diffId, f] of fresh) await this.#commitLayer(f.work, diffId);
    } finally {
      for (const f of fresh.values()) await rm(f.work, { recursive: true, force: true });
    }
    await this.#storeBlob(m.digest, m.bytes);
    await this.#storeBlob(manifest.config.digest, configBytes);
    const rec: ImageRecord = {
      name: ref.name,
      digest: m.digest,
      config: manifest.config.digest,
      layers: diffIds,
      size: manifest.layers.reduce((a, l) => a + l.size, 0),
      pulledAt: new Date().toISOString(),
    };
    if (ref.digest === undefined) rec.tag = ref.tag ?? 'latest';
    if (indexDigest !== undefined) rec.indexDigest = indexDigest;
    const proof = await this.#proof(cred);
    await updateIndex(this.stateDir, (index) => {
      const key = recordKey(rec.tag !== undefined ? rec : { name: rec.name, digest: ref.digest });
      // KEP-2535: who pulled it; what earlier pulls of the same manifest proved is kept.
      const old = index.images[key];
      rec.credentials = mergePullCredentials(old?.digest === rec.digest ? old.credentials : undefined, proof);
      index.images[key] = rec;
      return index;
    });
    return rec;
  }

  /** What the unpack of a stored layer reported, or undefined when the layer is not in the store. */
  async #layerMeta(diffId: string): Promise<UnpackReport | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.#layers, hexOf(diffId), 'layer.json'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return JSON.parse(text) as UnpackReport;
  }

  /**
   * Downloads and unpacks `layers` (not in the store) into temp dirs, at most
   * `concurrency` at once, all counting against `budget`. The first failure
   * stops the others and removes every temp dir; on success the caller commits
   * (or removes) the returned dirs.
   */
  async #fetchLayers(
    client: DistributionClient,
    repo: string,
    layers: Descriptor[],
    diffIds: string[],
    layersTotal: number,
    budget: ImageBudget,
    signal?: AbortSignal,
  ): Promise<Map<string, { work: string; report: UnpackReport }>> {
    // The same layer twice in one image is fetched once.
    const unique = [...new Map(layers.map((l, i) => [diffIds[i]!, { l, diffId: diffIds[i]! }])).values()];
    const progress: PullProgress = {
      layersTotal,
      layersDone: layersTotal - unique.length,
      bytesTotal: unique.reduce((a, t) => a + t.l.size, 0),
      bytesDone: 0,
    };
    this.#opts.onProgress?.({ ...progress });
    const done = new Map<string, { work: string; report: UnpackReport }>();
    try {
      // The first failure aborts the others (their signal) and is the reason.
      await pool(
        unique,
        { concurrency: Math.max(1, this.#opts.concurrency ?? 3), ...(signal ? { signal } : {}) },
        async (t, _i, sig) => {
          const r = await this.#fetchLayer(client, repo, t.l, t.diffId, budget, sig, (n) => {
            progress.bytesDone += n;
            this.#opts.onProgress?.({ ...progress });
          });
          done.set(t.diffId, r);
          progress.layersDone++;
          this.#opts.onProgress?.({ ...progress });
        },
      );
      // Aborted between two layers: not every layer is here.
      signal?.throwIfAborted();
    } catch (err) {
      for (const r of done.values()) await rm(r.work, { recursive: true, force: true });
      throw err;
    }
    return done;
  }

  /** Moves a verified layer into the store (a concurrent pull may have committed it first). */
  async #commitLayer(work: string, diffId: string): Promise<void> {
    try {
      await rename(work, join(this.#layers, hexOf(diffId)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  }

  /** One layer into a temp dir: digest, diff_id and unpack checked while it streams. */
  async #fetchLayer(
    client: DistributionClient,
    repo: string,
    l: Descriptor,
    diffId: string,
    budget: ImageBudget,
    signal: AbortSignal,
    onBytes: (n: number) => void,
  ): Promise<{ work: string; report: UnpackReport }> {
    const work = join(this.#tmp, `layer-${hexOf(diffId).slice(0, 12)}-${randomBytes(6).toString('hex')}`);
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    try {
      const blob = await client.openBlob(repo, l.digest, l.size, signal);
      const diffHash = createHash('sha256');
      const counter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          onBytes(chunk.length);
          cb(null, chunk);
        },
      });
      const hasher = new Transform({
        transform(chunk: Buffer, _e, cb) {
          diffHash.update(chunk);
          cb(null, chunk);
        },
      });
      const compression = LAYER_MEDIA_TYPES[l.mediaType];
      const decompress =
        compression === 'gzip'
          ? createGunzip({ chunkSize: 128 * 1024 })
          : compression === 'zstd'
            ? createZstdDecompress({ chunkSize: 128 * 1024 })
            : undefined;
      const stages = [blob, counter, ...(decompress ? [decompress] : []), hasher] as const;
      const tarStream = hasher;
      const piping = pipeline(stages as unknown as [NodeJS.ReadableStream, ...NodeJS.ReadWriteStream[]], {
        signal,
      });
      const unpacking = unpackLayer(tarStream, {
        dest: rootfs,
        budget,
        keepSetuid: this.#opts.keepSetuid,
        signal,
      });
      // Whichever fails first fails the layer; the other is torn down with it.
      let report: UnpackReport;
      try {
        [, report] = await Promise.all([
          piping,
          unpacking.catch((err) => {
            blob.destroy(err);
            throw err;
          }),
        ]);
      } catch (err) {
        // The digest check sits at the source: a digest error explains any tar error that followed it.
        const verifyError = await piping.then(
          () => undefined,
          (e: unknown) => e,
        );
        if (verifyError instanceof DigestMismatchError) throw verifyError;
        throw err;
      }
      const actualDiff = `sha256:${diffHash.digest('hex')}`;
      if (actualDiff !== diffId) {
        throw new DigestMismatchError(`layer ${l.digest} (uncompressed)`, diffId, actualDiff);
      }
      await writeFile(join(work, 'layer.json'), JSON.stringify({ ...report, digest: l.digest, diffId }), {
        mode: 0o600,
      });
      return { work, report };
    } catch (err) {
      await rm(work, { recursive: true, force: true });
      throw err;
    }
  }

  async #result(ref: ImageRef, rec: ImageRecord, pulled: boolean): Promise<PulledImage> {
    const bytes = await readFile(join(this.#blobs, hexOf(rec.config)));
    if (sha256Of(bytes) !== rec.config) {
      throw new DigestMismatchError(`stored config ${rec.config}`, rec.config, sha256Of(bytes));
    }
    const cfg = imageConfigSchema.parse(JSON.parse(bytes.toString('utf8'))).config ?? {};
    const config: ImageRuntimeConfig = {};
    if (cfg.Env) config.Env = cfg.Env;
    if (cfg.Entrypoint) config.Entrypoint = cfg.Entrypoint;
    if (cfg.Cmd) config.Cmd = cfg.Cmd;
    if (cfg.WorkingDir) config.WorkingDir = cfg.WorkingDir;
    if (cfg.User) config.User = cfg.User;
    const shown =
      ref.digest !== undefined
        ? formatImageRef({ ...ref, tag: undefined })
        : formatImageRef({ ...ref, tag: ref.tag ?? 'latest' });
    return {
      ref: shown,
      digest: rec.digest,
      layers: rec.layers.map((l) => this.layerRoot(l)),
      config,
      pulled,
    };
  }

  /** Every image in the index. */
  async list(): Promise<StoredImage[]> {
    const index = await readIndex(this.stateDir);
    return Object.entries(index.images)
      .map(([ref, r]) => ({ ref, ...r }))
      .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  /**
   * Drops `remove` references from the index, then deletes blobs and layers
   * no image references, and leftovers in tmp/. Layers in use by running
   * containers must stay referenced (the runner keeps their images).
   */
  async gc(
    remove: readonly string[] = [],
  ): Promise<{ removedImages: string[]; removedLayers: number; removedBlobs: number }> {
    const removedImages: string[] = [];
    const keys = remove.map((r) => {
      const ref = parseImageRef(r);
      return ref.digest !== undefined ? `${ref.name}@${ref.digest}` : `${ref.name}:${ref.tag ?? 'latest'}`;
    });
    await mkdir(this.stateDir, { recursive: true });
    const index = await updateIndex(this.stateDir, (idx) => {
      for (const k of keys) {
        if (idx.images[k]) {
          delete idx.images[k];
          removedImages.push(k);
        }
      }
      return idx;
    });
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>();
    for (const r of Object.values(index.images)) {
      keepBlobs.add(hexOf(r.digest));
      keepBlobs.add(hexOf(r.config));
      if (r.indexDigest) keepBlobs.add(hexOf(r.indexDigest));
      for (const l of r.layers) keepLayers.add(hexOf(l));
    }
    let removedLayers = 0;
    let removedBlobs = 0;
    for (const name of await readdir(this.#layers).catch(() => [] as string[])) {
      if (keepLayers.has(name)) continue;
      await rm(join(this.#layers, name), { recursive: true, force: true });
      removedLayers++;
    }
    for (const name of await readdir(this.#blobs).catch(() => [] as string[])) {
      if (keepBlobs.has(name)) continue;
      await rm(join(this.#blobs, name), { force: true });
      removedBlobs++;
    }
    for (const name of await readdir(this.#tmp).catch(() => [] as string[])) {
      const p = join(this.#tmp, name);
      const st = await stat(p).catch(() => undefined);
      // In-progress pulls of other processes are young; leftovers of crashed ones are old.
      if (st && Date.now() - st.mtimeMs > 60 * 60 * 1000) await rm(p, { recursive: true, force: true });
    }
    return { removedImages, removedLayers, removedBlobs };
  }
}
