/**
 * Credentials exactly as kubelet chooses them (docs/kubelet-parity.md §1-2):
 * the node's docker config (first valid file of kubelet's search order under
 * the root dir; files are never merged) and the pod's imagePullSecrets (one
 * keyring, pod order), combined as `union(secrets, node)`.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import {
  buildKeyring,
  DEFAULT_KUBELET_ROOT_DIR,
  type DockerConfig,
  type Keyring,
  nodeDockerConfigSearchPaths,
  type SourcedDockerConfig,
  selectNodeDockerConfig,
  unionKeyrings,
} from '../core/index.js';

export interface NodeCredentialsOptions {
  /** kubelet --root-dir (default /var/lib/kubelet). */
  rootDir?: string;
  /** The kubelet's working directory (default: this process's). */
  cwd?: string;
  /** The kubelet's HOME (default: this process's HOME; undefined when unset). */
  home?: string | undefined;
}

export interface NodeDockerConfig {
  path: string;
  config: DockerConfig;
}

/**
 * Reads the node's docker config the way the kubelet does: the eight
 * candidates in order, the first that parses wins. `undefined`: no node
 * credentials.
 */
export async function readNodeDockerConfig(
  opts: NodeCredentialsOptions = {},
): Promise<NodeDockerConfig | undefined> {
  const home = 'home' in opts ? opts.home : (process.env.HOME ?? safeHome());
  const paths = nodeDockerConfigSearchPaths(
    opts.rootDir ?? DEFAULT_KUBELET_ROOT_DIR,
    opts.cwd ?? process.cwd(),
    home,
  );
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const candidates = await Promise.all(
    paths.map(async (path) => ({
      path,
      text: await readFile(path).then(
        (b) => decoder.decode(b),
        () => undefined,
      ),
    })),
  );
  return selectNodeDockerConfig(candidates);
}

function safeHome(): string | undefined {
  try {
    return homedir() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * kubelet's lookup: pod secrets (one keyring, in pod order), then the node's
 * file, then credential providers' answers. Each config's `source` rides along
 * on its credentials (KEP-2535).
 */
export function pullKeyring(
  podSecrets: readonly SourcedDockerConfig[],
  node: SourcedDockerConfig | undefined,
  providers: readonly SourcedDockerConfig[] = [],
): Keyring {
  return unionKeyrings(
    buildKeyring(...podSecrets),
    buildKeyring(...(node ? [node] : [])),
    buildKeyring(...providers),
  );
}
