import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PullkeeperError } from '../core/errors.js';
import { type DockerConfig, parseDockerConfig } from '../core/index.js';

export class PullSecretFileError extends PullkeeperError {}

/**
 * Reads credentials the way an operator has them at hand: a docker
 * `config.json`, a legacy `.dockercfg`, or a Kubernetes Secret manifest
 * (YAML or JSON) of type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg.
 * Errors name the file and the problem, never a credential.
 */
export async function readCredentialFile(path: string): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new PullSecretFileError(`cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, {
      cause,
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new PullSecretFileError(`${path} is neither JSON nor YAML; expected a docker config or a Secret`, {
      cause,
    });
  }
  if (doc && typeof doc === 'object' && (doc as { kind?: unknown }).kind === 'Secret') {
    return fromSecret(path, doc as SecretLike);
  }
  const format = basename(path) === '.dockercfg' || path.endsWith('.dockercfg') ? 'dockercfg' : 'config.json';
  try {
    return parseDockerConfig(text, format);
  } catch (cause) {
    throw new PullSecretFileError(`${path}: ${(cause as Error).message}`, { cause });
  }
}

interface SecretLike {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  metadata?: { name?: string };
}

function fromSecret(path: string, s: SecretLike): DockerConfig {
  const name = s.metadata?.name ?? path;
  const keyAndFormat =
    s.type === 'kubernetes.io/dockerconfigjson'
      ? (['.dockerconfigjson', 'config.json'] as const)
      : s.type === 'kubernetes.io/dockercfg'
        ? (['.dockercfg', 'dockercfg'] as const)
        : undefined;
  if (!keyAndFormat) {
    // kubelet silently ignores such secrets; an operator asked for it, so say it.
    throw new PullSecretFileError(
      `Secret ${name} has type ${s.type ?? '(none)'}; kubelet only uses kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg pull secrets`,
    );
  }
  const [key, format] = keyAndFormat;
  const raw =
    s.stringData?.[key] ?? (s.data?.[key] ? Buffer.from(s.data[key], 'base64').toString('utf8') : undefined);
  if (!raw) {
    throw new PullSecretFileError(`Secret ${name} has no ${key} key; kubelet would ignore it`);
  }
  try {
    return parseDockerConfig(raw, format);
  } catch (cause) {
    throw new PullSecretFileError(`Secret ${name}: ${(cause as Error).message}`, { cause });
  }
}
