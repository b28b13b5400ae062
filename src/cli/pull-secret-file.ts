import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PullkeeperError } from '../core/errors.js';
import {
  type DockerConfig,
  MAX_NODE_DOCKER_CONFIG_BYTES,
  MAX_SECRET_DATA_BYTES,
  parseDockerConfig,
} from '../core/index.js';

export class PullSecretFileError extends PullkeeperError {}

/** How long reading one credential file may take (a FIFO or /dev/stdin may never end). */
const READ_TIMEOUT_MS = 30_000;

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

/**
 * Reads at most `limit` bytes of `path`. A regular file larger than `limit`
 * is refused from its size alone; anything else (a device such as /dev/zero,
 * a FIFO) is read until `limit + 1` bytes have arrived, then refused. Memory
 * is bounded by `limit + 1` whatever the file is.
 *
 *   await readBoundedFile('/root/.docker/config.json', MAX_NODE_DOCKER_CONFIG_BYTES)  // Buffer
 *   await readBoundedFile('/dev/zero', 1024)
 *   // throws PullSecretFileError: /dev/zero is larger than 1024 bytes …
 *
 * @throws PullSecretFileError when the file cannot be read, is too large, or
 * `signal` aborts between reads.
 */
export async function readBoundedFile(path: string, limit: number, signal?: AbortSignal): Promise<Buffer> {
  const tooLarge = (size?: number): PullSecretFileError =>
    new PullSecretFileError(
      `${path} is larger than ${formatBytes(limit)}${size === undefined ? '' : ` (${size} bytes)`}, the most ` +
        'pullkeeper reads from a credential file; real docker config files and Secrets are far smaller ' +
        `(a Secret holds at most ${formatBytes(MAX_SECRET_DATA_BYTES)}): check the path`,
    );
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (cause) {
    throw new PullSecretFileError(`cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, {
      cause,
    });
  }
  try {
    const stat = await handle.stat();
    if (stat.isFile() && stat.size > limit) throw tooLarge(stat.size);
    const capacity = stat.isFile() ? Math.min(stat.size, limit) + 1 : limit + 1;
    let buf = Buffer.allocUnsafe(capacity);
    let length = 0;
    for (;;) {
      signal?.throwIfAborted();
      if (length === buf.length) {
        // A regular file that grew after stat: make room, up to limit + 1.
        if (length > limit) break;
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, limit + 1));
        buf.copy(bigger, 0, 0, length);
        buf = bigger;
      }
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > limit) throw tooLarge();
    return buf.subarray(0, length);
  } catch (cause) {
    if (cause instanceof PullSecretFileError) throw cause;
    throw new PullSecretFileError(
      `cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).name ?? cause}`,
      { cause },
    );
  } finally {
    await handle.close();
  }
}

/**
 * Reads credentials the way an operator has them at hand: a docker
 * `config.json`, a legacy `.dockercfg`, or a Kubernetes Secret manifest
 * (YAML or JSON) of type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg.
 * Files over `MAX_NODE_DOCKER_CONFIG_BYTES` (4 MiB) are refused, and a
 * Secret's value over `MAX_SECRET_DATA_BYTES` (1 MiB, as the API server
 * enforces). Errors name the file and the problem, never a credential.
 */
export async function readCredentialFile(path: string): Promise<DockerConfig> {
  const bytes = await readBoundedFile(
    path,
    MAX_NODE_DOCKER_CONFIG_BYTES,
    AbortSignal.timeout(READ_TIMEOUT_MS),
  );
  // Keep a byte order mark: Go rejects such a file, and so does parseDockerConfig.
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  const format = basename(path) === '.dockercfg' || path.endsWith('.dockercfg') ? 'dockercfg' : 'config.json';
  if (/^[ \t\r\n]*\{/.test(text)) {
    // JSON: a docker config or a Secret manifest written as JSON. JSON.parse (iterative in V8,
    // memory proportional to the text) only tells the two apart; the config itself is read
    // the way the kubelet reads it.
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      doc = undefined;
    }
    if (isSecretManifest(doc)) return fromSecret(path, doc);
    return parseConfig(path, text, format);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new PullSecretFileError(`${path} is neither JSON nor YAML; expected a docker config or a Secret`, {
      cause,
    });
  }
  if (isSecretManifest(doc)) return fromSecret(path, doc);
  return parseConfig(path, text, format);
}

function parseConfig(path: string, text: string, format: 'config.json' | 'dockercfg'): DockerConfig {
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

function isSecretManifest(doc: unknown): doc is SecretLike {
  return doc !== null && typeof doc === 'object' && (doc as { kind?: unknown }).kind === 'Secret';
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
  const stringValue = s.stringData?.[key];
  const dataValue = s.data?.[key];
  const raw =
    typeof stringValue === 'string'
      ? stringValue
      : typeof dataValue === 'string' && dataValue
        ? Buffer.from(dataValue, 'base64').toString('utf8')
        : undefined;
  if (!raw) {
    throw new PullSecretFileError(`Secret ${name} has no ${key} key; kubelet would ignore it`);
  }
  const size = Buffer.byteLength(raw, 'utf8');
  if (size > MAX_SECRET_DATA_BYTES) {
    throw new PullSecretFileError(
      `Secret ${name}: ${key} is ${size} bytes; the API server accepts at most ${MAX_SECRET_DATA_BYTES} bytes of ` +
        'Secret data, so the kubelet could never see it: split the registries over several Secrets',
    );
  }
  try {
    return parseDockerConfig(raw, format);
  } catch (cause) {
    throw new PullSecretFileError(`Secret ${name}: ${(cause as Error).message}`, { cause });
  }
}
