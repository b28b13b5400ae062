/**
 * KEP-2535 "Ensure Secret Pulled Images": may a pod use an image that is
 * already on the node, or must its credentials be checked against the
 * registry first? Pure: the store supplies the pull record and the hashes.
 *
 * Follows kubelet 1.35, where the `KubeletEnsureSecretPulledImages` gate is
 * beta and on by default (alpha and off in 1.33-1.34):
 * `pkg/kubelet/images/pullmanager/image_pull_policies.go` (the four
 * `imagePullCredentialsVerificationPolicy` values and the allowlist rules),
 * `image_pull_manager.go` (`MustAttemptImagePull`: which records let a pod
 * through) and `pkg/kubelet/images/image_manager.go` (`EnsureImageExists`:
 * the events, `Never` when verification is required).
 *
 *   policy                         an image present on the node is used without asking the registry when
 *   NeverVerify                    always (any pod may use any cached image: unsafe on shared nodes)
 *   NeverVerifyPreloadedImages     it has no pull record (preloaded), or the record lets the pod through (default)
 *   NeverVerifyAllowlistedImages   its name is on `preloadedImagesVerificationAllowlist`, else as AlwaysVerify
 *   AlwaysVerify                   the record lets the pod through (a preloaded image is always checked)
 *
 * A record lets a pod through when it was pulled with node-wide credentials
 * or none (`nodePodsAccessible`), or when one of the pod's own pull Secret
 * credentials has the recorded hash (or is the same Secret object, by uid).
 */
import { PullkeeperError } from './errors.js';
import { goQuote, parseImageRef } from './image-ref.js';
import type { CredentialSource } from './keyring.js';
import { decidePull, type PullPolicy } from './pull-policy.js';

export const IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES = [
  'NeverVerify',
  'NeverVerifyPreloadedImages',
  'NeverVerifyAllowlistedImages',
  'AlwaysVerify',
] as const;
export type ImagePullCredentialsVerificationPolicy =
  (typeof IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES)[number];
/** kubelet 1.35's default. */
export const DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY: ImagePullCredentialsVerificationPolicy =
  'NeverVerifyPreloadedImages';

/** A `preloadedImagesVerificationAllowlist` entry kubelet would refuse. */
export class AllowlistPatternError extends PullkeeperError {}

/** The allowlist, compiled: exact image names and `/*` prefixes (kept with their trailing `/`). */
export interface VerificationAllowlist {
  exact: ReadonlySet<string>;
  prefixes: readonly string[];
}

/**
 * One allowlist entry, checked as kubelet's `getAllowlistImagePattern`: no
 * surrounding spaces; `*` only as a trailing `/*` (a prefix of whole path
 * segments, at least a registry host); otherwise a fully qualified image name
 * without tag or digest.
 *
 *   parseAllowlistPattern('registry.example/team-a/*') // { prefix: true, value: 'registry.example/team-a/' }
 *   parseAllowlistPattern('docker.io/library/busybox') // { prefix: false, value: 'docker.io/library/busybox' }
 *   parseAllowlistPattern('busybox')                   // throws: not fully qualified
 *   parseAllowlistPattern('reg.io/app:v1')             // throws: a tag
 */
export function parseAllowlistPattern(pattern: string): { prefix: boolean; value: string } {
  const bad = (why: string) =>
    new AllowlistPatternError(
      `preloadedImagesVerificationAllowlist entry ${JSON.stringify(pattern)}: ${why}; write a fully qualified image ` +
        'name without tag or digest (docker.io/library/busybox), or a prefix ending in /* (registry.example/team-a/*)',
    );
  if (pattern !== pattern.trim()) throw bad('leading or trailing spaces are not allowed');
  const prefix = pattern.endsWith('/*');
  const value = prefix ? pattern.slice(0, -1) : pattern;
  if (value.length === 0) throw bad('the pattern is too short');
  if (value.includes('*')) throw bad("only a trailing '/*' wildcard is allowed");
  if (prefix) {
    if (value.length === 1) throw bad('at least a registry host name is required');
    return { prefix: true, value };
  }
  let name: string;
  try {
    const ref = parseImageRef(value);
    name = ref.name;
    if (ref.tag !== undefined || ref.digest !== undefined)
      throw bad('neither a tag nor a digest is accepted');
  } catch (err) {
    if (err instanceof AllowlistPatternError) throw err;
    throw bad(`not an image name (${(err as Error).message})`);
  }
  if (name !== value) throw bad(`not fully qualified (kubelet reads it as ${name})`);
  return { prefix: false, value };
}

/** Compiles `preloadedImagesVerificationAllowlist`; throws {@link AllowlistPatternError} on the first bad entry. */
export function compileAllowlist(patterns: readonly string[]): VerificationAllowlist {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    const r = parseAllowlistPattern(p);
    if (r.prefix) prefixes.push(r.value);
    else exact.add(r.value);
  }
  return { exact, prefixes };
}

/** Whether an image (as a pod writes it: `busybox`, `reg.io/a/b:v1`) is on the allowlist, by its normalized name. */
export function allowlistMatches(list: VerificationAllowlist, image: string): boolean {
  let name: string;
  try {
    name = parseImageRef(image).name;
  } catch {
    return false;
  }
  return list.exact.has(name) || list.prefixes.some((p) => name.startsWith(p));
}

/** One pull Secret credential that pulled (or was verified for) an image: where it came from and its keyed hash. */
export interface RecordedCredential {
  source: CredentialSource;
  hash: string;
}

/**
 * Which credentials an image was pulled with (kubelet's `ImagePullCredentials`).
 * `nodeAccessible`: pulled with node-wide credentials or anonymously, so any pod on the node may use it.
 */
export interface PullCredentialRecord {
  nodeAccessible: boolean;
  secrets: RecordedCredential[];
}

export interface CachedImageInput {
  /** The effective imagePullPolicy. */
  pullPolicy: PullPolicy;
  /** The image as the pod writes it (quoted into messages, matched against the allowlist). */
  image: string;
  present: boolean;
  /** The store's record of who pulled it; undefined: preloaded (no record). */
  record?: PullCredentialRecord | undefined;
  /** The pod's own pull Secret credentials for this image, in keyring order, with their hashes. */
  podCredentials: readonly RecordedCredential[];
  policy: ImagePullCredentialsVerificationPolicy;
  allowlist?: VerificationAllowlist | undefined;
}

export type CachedImageWhy =
  | 'policy NeverVerify'
  | 'preloaded'
  | 'allowlisted'
  | 'pulled with node credentials'
  | 'same credential'
  | 'same Secret';

export type CachedImageDecision =
  | { action: 'pull' }
  | { action: 'fail'; reason: 'ErrImageNeverPull'; message: string }
  | {
      action: 'use-cached';
      why: CachedImageWhy;
      message: string;
      /** The pod's credential to add to the record (a new Secret with a known hash, or a rotated one). */
      remember?: RecordedCredential;
    }
  | { action: 'verify'; why: 'no pull record' | 'no matching credential' };

/** Same kind, name and uid (both absent counts): nothing new to record. */
function sameCoordinates(a: CredentialSource, b: CredentialSource): boolean {
  return a.kind === b.kind && a.name === b.name && (a.uid ?? '') === (b.uid ?? '');
}

/** The same Secret object: trusted only with a uid on both sides (a name alone can be reused). */
function sameSecret(a: CredentialSource, b: CredentialSource): boolean {
  return a.kind === b.kind && a.name === b.name && a.uid !== undefined && a.uid !== '' && a.uid === b.uid;
}

/**
 * The whole decision for one container's image (kubelet's
 * `EnsureImageExists` with KEP-2535 on):
 *
 *   absent, IfNotPresent (or Always)          -> pull
 *   absent, Never                             -> fail ErrImageNeverPull
 *   present, no verification required         -> use-cached
 *   present, verification required, Never     -> fail ErrImageNeverPull (kubelet's "not present" message)
 *   present, verification required            -> verify (ask the registry with the pod's credentials)
 */
export function decideCachedImage(input: CachedImageInput): CachedImageDecision {
  const base = decidePull(input.pullPolicy, input.present, input.image);
  if (base.action !== 'use-present') return base;
  const use = (why: CachedImageWhy, remember?: RecordedCredential): CachedImageDecision => ({
    action: 'use-cached',
    why,
    message: `Container image ${goQuote(input.image)} already present on machine and can be accessed by the pod`,
    ...(remember ? { remember } : {}),
  });
  const required = verificationRequired(input);
  if (required !== true) return use(required);
  const v = matchRecord(input.record, input.podCredentials);
  if (v.action === 'verify' && input.pullPolicy === 'Never') {
    // kubelet: present but not accessible with these credentials reads as not present.
    return {
      action: 'fail',
      reason: 'ErrImageNeverPull',
      message: `Container image ${goQuote(input.image)} is not present with pull policy of Never`,
    };
  }
  return v.action === 'use-cached' ? use(v.why, v.remember) : v;
}

/** kubelet's `RequireCredentialVerificationForImage`: true, or why no check is needed. */
function verificationRequired(input: CachedImageInput): true | CachedImageWhy {
  switch (input.policy) {
    case 'NeverVerify':
      return 'policy NeverVerify';
    case 'NeverVerifyPreloadedImages':
      return input.record === undefined ? 'preloaded' : true;
    case 'NeverVerifyAllowlistedImages':
      return input.allowlist && allowlistMatches(input.allowlist, input.image) ? 'allowlisted' : true;
    case 'AlwaysVerify':
      return true;
  }
}

/** kubelet's record check in `MustAttemptImagePull`. */
function matchRecord(
  record: PullCredentialRecord | undefined,
  pod: readonly RecordedCredential[],
):
  | { action: 'use-cached'; why: CachedImageWhy; remember?: RecordedCredential }
  | { action: 'verify'; why: 'no pull record' | 'no matching credential' } {
  if (!record) return { action: 'verify', why: 'no pull record' };
  if (record.nodeAccessible) return { action: 'use-cached', why: 'pulled with node credentials' };
  for (const p of pod) {
    for (const r of record.secrets) {
      if (r.hash !== '' && p.hash === r.hash) {
        // Another Secret with the same content: remember it too (kubelet does).
        return sameCoordinates(p.source, r.source)
          ? { action: 'use-cached', why: 'same credential' }
          : { action: 'use-cached', why: 'same credential', remember: p };
      }
      if (sameSecret(p.source, r.source)) {
        // The same Secret object, its content rotated: trusted, and the new hash recorded.
        return { action: 'use-cached', why: 'same Secret', remember: p };
      }
    }
  }
  return { action: 'verify', why: 'no matching credential' };
}

/** At most this many Secrets per record (kubelet stops adding at 100). */
export const MAX_RECORDED_SECRETS = 100;

/**
 * Adds what a successful pull or check proved to a record (kubelet's
 * `pulledRecordMergeNewCreds`): node-wide access wins over per-Secret
 * entries; a Secret already recorded (same source) gets its new hash.
 */
export function mergePullCredentials(
  record: PullCredentialRecord | undefined,
  add: { nodeAccessible: true } | { secret: RecordedCredential },
): PullCredentialRecord {
  if ('nodeAccessible' in add || record?.nodeAccessible) return { nodeAccessible: true, secrets: [] };
  const secrets = (record?.secrets ?? []).filter(
    (s) => !(s.source.kind === add.secret.source.kind && s.source.name === add.secret.source.name),
  );
  secrets.push({ source: { ...add.secret.source }, hash: add.secret.hash });
  // Bounded like kubelet's (writeRecordWhileMatchingLimit): the oldest entries go first.
  return { nodeAccessible: false, secrets: secrets.slice(-MAX_RECORDED_SECRETS) };
}

/** A credential source for people: `Secret "team-b/pull"`, `file /tmp/b.json`, `node file /var/lib/kubelet/config.json`. */
export function describeCredentialSource(source: CredentialSource | undefined): string {
  if (!source) return 'node credentials';
  switch (source.kind) {
    case 'secret':
      return `Secret ${JSON.stringify(source.name)}`;
    case 'file':
      return `pull secret file ${source.name}`;
    case 'node':
      return `node file ${source.name}`;
    case 'serviceaccount':
      return `pod credentials of ServiceAccount ${JSON.stringify(source.name)}`;
  }
}
