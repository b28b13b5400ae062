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
 * verifyCachedCredentials: false   # KEP-2535: a pod may use a cached image only if its own credentials can read it
 * allowPrivileged: false           # securityContext.privileged: true is refused unless true
 * seccompProfileRoot: /var/lib/kubelet/seccomp   # seccompProfile: Localhost profiles are read here
 * ```
 */
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { parse } from 'yaml';
import { z } from 'zod';
import { PullkeeperError } from '../core/errors.js';
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
  verifyCachedCredentials: z.boolean().optional(),
  allowPrivileged: z.boolean().optional(),
  seccompProfileRoot: z.string().startsWith('/', 'seccompProfileRoot must be an absolute path').optional(),
});
export type NodeConfigFile = z.infer<typeof schema>;

function defaultHostIP(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
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
  return {
    stateRoot: overrides.stateDir ?? file.stateDir ?? process.env.PULLKEEPER_NODE_STATE ?? DEFAULT_STATE_ROOT,
    runtimes: { defaultHandler, handlers },
    nodeName: file.nodeName ?? hostname(),
    hostIP: file.hostIP ?? defaultHostIP(),
    bridge: file.bridge ?? { name: 'pkr-br0', subnet: '10.215.0.0/24' },
    clusterDomain: file.clusterDomain ?? 'cluster.local',
    logMaxBytes: file.logMaxBytes ?? 10 * 1024 * 1024,
    alwaysPullImages: file.alwaysPullImages ?? false,
    verifyCachedCredentials: file.verifyCachedCredentials ?? false,
    allowPrivileged: file.allowPrivileged ?? false,
    seccompProfileRoot: file.seccompProfileRoot ?? DEFAULT_SECCOMP_PROFILE_ROOT,
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
