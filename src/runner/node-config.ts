/**
 * The node runner's configuration file (YAML or JSON), validated with zod:
 *
 * ```yaml
 * stateDir: /run/pullkeeper-node
 * defaultHandler: runc
 * runtimeHandlers:              # RuntimeClass handler (DNS label) -> OCI runtime
 *   runc: { binary: runc }
 *   crun: { binary: crun }
 * nodeName: node-1              # default: os.hostname()
 * hostIP: 192.0.2.2             # default: the first non-internal IPv4 address
 * bridge: { name: pkr-br0, subnet: 10.215.0.0/24 }
 * clusterDomain: cluster.local
 * logMaxBytes: 10485760
 * alwaysPullImages: false
 * # KEP-2535 (kubelet 1.35 defaults): a cached image pulled with a pod's Secret is used by
 * # another pod only after the registry accepts that pod's credentials.
 * imagePullCredentialsVerificationPolicy: NeverVerifyPreloadedImages
 * preloadedImagesVerificationAllowlist: []   # only with NeverVerifyAllowlistedImages
 * allowPrivileged: false           # securityContext.privileged: true is refused unless true
 * seccompProfileRoot: /var/lib/kubelet/seccomp   # seccompProfile: Localhost profiles are read here
 * imageLimits:                  # bounds on what one image may unpack (the pull flags of the same names)
 *   maxImageBytes: 17179869184  # file bytes of all layers (--max-image-bytes)
 *   maxLayerBytes: 4294967296   # file bytes of one layer (--max-layer-bytes; default maxImageBytes)
 *   maxImageInodes: 1000000     # entries of all layers (--max-image-inodes)
 *   maxPaxHeaderBytes: 1048576  # one PAX / GNU long-name header (--max-pax-header-bytes)
 * ```
 *
 * `verifyCachedCredentials` (a boolean, before the policy existed) still
 * works as a deprecated alias: true is `AlwaysVerify`, false is
 * `NeverVerify`; setting it together with the policy is refused.
 */
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { parse } from 'yaml';
import * as z from 'zod';
import { PullkeeperError } from '../core/errors.js';
import {
  AllowlistPatternError,
  compileAllowlist,
  DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY,
  IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES,
  type ImagePullCredentialsVerificationPolicy,
} from '../core/index.js';
import { DEFAULT_SECCOMP_PROFILE_ROOT, type NodeConfig } from './plan.js';
import { DEFAULT_STATE_ROOT } from './pod-state.js';
import { HANDLER_PATTERN } from './runtime-class.js';

export class NodeConfigError extends PullkeeperError {}

const schema = z.strictObject({
  stateDir: z.string().optional(),
  defaultHandler: z.string().optional(),
  runtimeHandlers: z
    .record(
      z.string().regex(HANDLER_PATTERN, 'a handler name must be a DNS label'),
      z.strictObject({ binary: z.string().min(1), globalArgs: z.array(z.string()).optional() }),
    )
    .optional(),
  nodeName: z.string().optional(),
  hostIP: z.string().optional(),
  bridge: z
    .strictObject({
      name: z
        .string()
        .regex(/^pkr-[a-z0-9-]{1,11}$/, 'the bridge name must start with pkr- (15 characters at most)'),
      subnet: z.string().regex(/^\d+\.\d+\.\d+\.0\/24$/, 'only a /24 subnet (a.b.c.0/24) is supported'),
    })
    .optional(),
  clusterDomain: z.string().optional(),
  logMaxBytes: z.number().int().min(1024).optional(),
  alwaysPullImages: z.boolean().optional(),
  imagePullCredentialsVerificationPolicy: z.enum(IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES).optional(),
  preloadedImagesVerificationAllowlist: z.array(z.string()).optional(),
  /** Deprecated alias of imagePullCredentialsVerificationPolicy (true: AlwaysVerify, false: NeverVerify). */
  verifyCachedCredentials: z.boolean().optional(),
  allowPrivileged: z.boolean().optional(),
  seccompProfileRoot: z.string().startsWith('/', 'seccompProfileRoot must be an absolute path').optional(),
  imageLimits: z
    .strictObject({
      maxImageBytes: z.number().int().positive().optional(),
      maxLayerBytes: z.number().int().positive().optional(),
      maxImageInodes: z.number().int().positive().optional(),
      maxPaxHeaderBytes: z.number().int().positive().optional(),
    })
    .optional(),
  /** `run --kubeconfig` pulls with the broker's answer for the pod's ServiceAccount (docs/pod-credentials.md). */
  podCredentials: z
    .strictObject({
      broker: z.url(),
      audience: z.string().min(1),
      caFile: z.string().min(1).optional(),
      timeoutSeconds: z.number().positive().max(60).default(5),
    })
    .optional(),
});
export type NodeConfigFile = z.infer<typeof schema>;

function defaultHostIP(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * KEP-2535 settings of a node config: the policy (the deprecated boolean
 * mapped onto it, with a warning), the allowlist checked as kubelet checks it.
 */
export function verificationFrom(file: NodeConfigFile): {
  policy: ImagePullCredentialsVerificationPolicy;
  allowlist: string[];
  warnings: string[];
} {
  const warnings: string[] = [];
  const { imagePullCredentialsVerificationPolicy: set, verifyCachedCredentials: old } = file;
  if (set !== undefined && old !== undefined) {
    throw new NodeConfigError(
      'the node config sets both imagePullCredentialsVerificationPolicy and verifyCachedCredentials; ' +
        'remove verifyCachedCredentials (deprecated: true is AlwaysVerify, false is NeverVerify)',
    );
  }
  let policy = set ?? DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY;
  if (old !== undefined) {
    policy = old ? 'AlwaysVerify' : 'NeverVerify';
    warnings.push(
      `verifyCachedCredentials is deprecated; it means imagePullCredentialsVerificationPolicy: ${policy} here. ` +
        `Write that instead, or drop both for kubelet's default (${DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY})`,
    );
  }
  const allowlist = file.preloadedImagesVerificationAllowlist ?? [];
  if (allowlist.length > 0 && policy !== 'NeverVerifyAllowlistedImages') {
    throw new NodeConfigError(
      `preloadedImagesVerificationAllowlist is only used with imagePullCredentialsVerificationPolicy: ` +
        `NeverVerifyAllowlistedImages (the policy here is ${policy}); set that policy or remove the list`,
    );
  }
  try {
    compileAllowlist(allowlist);
  } catch (err) {
    if (err instanceof AllowlistPatternError) throw new NodeConfigError(err.message, { cause: err });
    throw err;
  }
  return { policy, allowlist, warnings };
}

/** Defaults merged with a config file's (already parsed) content. */
export function nodeConfigFrom(file: NodeConfigFile, overrides: { stateDir?: string } = {}): NodeConfig {
  const handlers = file.runtimeHandlers ?? { runc: { binary: 'runc' }, crun: { binary: 'crun' } };
  const defaultHandler = file.defaultHandler ?? ('runc' in handlers ? 'runc' : Object.keys(handlers)[0]!);
  if (!(defaultHandler in handlers)) {
    throw new NodeConfigError(
      `defaultHandler "${defaultHandler}" is not one of runtimeHandlers; add it or change defaultHandler`,
    );
  }
  const verification = verificationFrom(file);
  return {
    stateRoot: overrides.stateDir ?? file.stateDir ?? process.env.PULLKEEPER_NODE_STATE ?? DEFAULT_STATE_ROOT,
    runtimes: { defaultHandler, handlers },
    nodeName: file.nodeName ?? hostname(),
    hostIP: file.hostIP ?? defaultHostIP(),
    bridge: file.bridge ?? { name: 'pkr-br0', subnet: '10.215.0.0/24' },
    clusterDomain: file.clusterDomain ?? 'cluster.local',
    logMaxBytes: file.logMaxBytes ?? 10 * 1024 * 1024,
    alwaysPullImages: file.alwaysPullImages ?? false,
    imagePullCredentialsVerificationPolicy: verification.policy,
    preloadedImagesVerificationAllowlist: verification.allowlist,
    warnings: verification.warnings,
    allowPrivileged: file.allowPrivileged ?? false,
    seccompProfileRoot: file.seccompProfileRoot ?? DEFAULT_SECCOMP_PROFILE_ROOT,
    ...(file.imageLimits ? { imageLimits: file.imageLimits } : {}),
    ...(file.podCredentials ? { podCredentials: file.podCredentials } : {}),
  };
}

export async function loadNodeConfig(
  path: string | undefined,
  overrides: { stateDir?: string } = {},
): Promise<NodeConfig> {
  if (!path) return nodeConfigFrom({}, overrides);
  let raw: unknown;
  try {
    raw = parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new NodeConfigError(`cannot read the node config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    throw new NodeConfigError(
      `node config ${path} is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return nodeConfigFrom(r.data, overrides);
}
