/**
 * The seam between the image store (pullkeeper-node pull) and the pod runner
 * (pullkeeper-node run). The store implements ImageSource; the runner only
 * calls it, so the two halves can be built and tested apart.
 */
import type {
  ImagePullCredentialsVerificationPolicy,
  PullPolicy,
  SourcedDockerConfig,
  VerificationAllowlist,
} from '../core/index.js';

/** The parts of an OCI image config (`config` section) the runner needs. */
export interface ImageRuntimeConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  User?: string;
}

/** A kubelet-style event the store reports while it works (Pulling, Pulled, Failed, ErrImageNeverPull, BackOff...). */
export interface ImageEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** The store's bounds on one image (docs/node-runner.md, "Unpack safety"). */
export interface ImageLimits {
  maxImageBytes?: number;
  maxLayerBytes?: number;
  maxImageInodes?: number;
  maxPaxHeaderBytes?: number;
}

export interface EnsureImageRequest {
  /** The image as the pod spec names it (not yet normalized). */
  image: string;
  /** Effective policy: the caller has already applied defaulting and --always-pull-images. */
  policy: PullPolicy;
  /**
   * The pod's imagePullSecrets, parsed, in the pod's order, each with its
   * `source` (Secret namespace/name and uid) when known: the store records
   * and names credentials by it. Node files are the store's own business.
   */
  podSecrets: SourcedDockerConfig[];
  /**
   * Credentials a credential provider answered for this pod (the broker, for its
   * ServiceAccount: source kind `serviceaccount`), tried after the pod's Secrets and the
   * node file, as kubelet orders its plugins' answers; recorded by their source (KEP-2535).
   */
  providerCredentials?: SourcedDockerConfig[];
  /**
   * KEP-2535 `imagePullCredentialsVerificationPolicy` for an image already
   * present (default `NeverVerifyPreloadedImages`, as kubelet 1.35).
   */
  verificationPolicy?: ImagePullCredentialsVerificationPolicy;
  /** `preloadedImagesVerificationAllowlist`, compiled (used with `NeverVerifyAllowlistedImages`). */
  verificationAllowlist?: VerificationAllowlist;
  /**
   * Deprecated alias: true is `verificationPolicy: 'AlwaysVerify'`, false is
   * `'NeverVerify'`; ignored when `verificationPolicy` is given.
   */
  verifyCachedCredentials?: boolean;
  /** Bounds on what a pull may unpack (node config `imageLimits`); unset ones are the store's. */
  limits?: ImageLimits;
  onEvent?: (e: ImageEvent) => void;
  signal?: AbortSignal;
}

export interface PulledImage {
  /** Normalized reference, e.g. `docker.io/library/busybox:latest`. */
  ref: string;
  /** Digest of the platform manifest that was unpacked (`sha256:...`). */
  digest: string;
  /** Absolute paths of the unpacked layer directories, base layer first. Read-only to every consumer. */
  layers: string[];
  config: ImageRuntimeConfig;
  /** True when this call fetched from the registry; false when the store already had it. */
  pulled: boolean;
}

export interface ImageSource {
  ensure(req: EnsureImageRequest): Promise<PulledImage>;
}
