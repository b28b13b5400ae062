/**
 * Loads pullkeeper.yaml once: bounded read, YAML parse, zod validation. Errors
 * name the file, the path inside it (`registries[2].region`) and what is
 * expected; they never echo a value from the file (it may hold a secret).
 */
import { open } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type * as z from 'zod';
import { PullkeeperError } from '../core/errors.js';
import { type PullkeeperConfig, PullkeeperConfigSchema } from './schema.js';

/** pullkeeper.yaml larger than this is refused (a real one is a few KB). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface ConfigIssue {
  /** `registries[2].region`, or `(root)`. */
  path: string;
  message: string;
}

export class ConfigError extends PullkeeperError {
  readonly file: string;
  readonly issues: ConfigIssue[];
  constructor(file: string, issues: ConfigIssue[], options?: { cause?: unknown }) {
    const lines = issues.map((i) => `  ${i.path}: ${i.message}`);
    super(
      `${file}: invalid pullkeeper config (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}\nSee docs/providers.md for every key.`,
      options,
    );
    this.file = file;
    this.issues = issues;
  }
}

/** `['registries', 2, 'region']` -> `registries[2].region`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(root)';
}

function issueMessage(issue: z.core.$ZodIssue): string {
  // Never include the received value: only what was expected.
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_union':
      if ('discriminator' in issue && issue.discriminator)
        return `${issue.message} (field "${String(issue.discriminator)}")`;
      return issue.message;
    default:
      return issue.message;
  }
}

/** Validates an already-parsed object (from YAML, JSON, or an HTTP body). */
export function parseConfig(value: unknown, file = '<config>'): PullkeeperConfig {
  const res = PullkeeperConfigSchema.safeParse(value ?? {});
  if (res.success) return res.data;
  const issues: ConfigIssue[] = res.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys' && i.keys.length === 1)
      return { path: formatPath([...i.path, i.keys[0]!]), message: 'unknown key' };
    return { path: formatPath(i.path), message: issueMessage(i) };
  });
  throw new ConfigError(file, issues);
}

/** Parses YAML (or JSON) text. */
export function parseConfigText(text: string, file = '<config>'): PullkeeperConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      throw new ConfigError(
        file,
        [
          {
            path: pos ? `line ${pos.line}, column ${pos.col}` : '(root)',
            message: `not valid YAML: ${err.code}`,
          },
        ],
        { cause: err },
      );
    }
    throw err;
  }
  if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc)))
    throw new ConfigError(file, [
      { path: '(root)', message: 'expected a mapping with registries, tenants, nodes' },
    ]);
  return parseConfig(doc, file);
}

/** Reads at most MAX_CONFIG_BYTES (+1, to detect more) of a file. */
export async function readBounded(path: string, limit: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > limit) throw new RangeError(`larger than ${limit} bytes`);
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

export async function loadConfigFile(path: string): Promise<PullkeeperConfig> {
  let bytes: Buffer;
  try {
    bytes = await readBounded(path, MAX_CONFIG_BYTES);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file; pass --config PATH or set PULLKEEPER_CONFIG'
        : err instanceof RangeError
          ? `${err.message}; a pullkeeper config is a few KB`
          : `cannot read it (${code ?? (err as Error).message})`;
    throw new ConfigError(path, [{ path: '(file)', message: why }], { cause: err });
  }
  return parseConfigText(bytes.toString('utf8'), path);
}

/**
 * Where a function finds its config: `PULLKEEPER_CONFIG` is a file path
 * (bundled with the function, or mounted), `ssm:/parameter/name`, or
 * `secretsmanager:secret-id`. Loaded once per process (a warm Lambda reuses it).
 */
export async function loadConfigFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<PullkeeperConfig> {
  const where = env.PULLKEEPER_CONFIG ?? 'pullkeeper.yaml';
  const { createSecretResolver } = await import('./secret-ref.js');
  const r = createSecretResolver({ env });
  if (where.startsWith('ssm:')) return parseConfigText(await r.resolve({ fromSsm: where.slice(4) }), where);
  if (where.startsWith('secretsmanager:'))
    return parseConfigText(
      await r.resolve({ fromSecretsManager: where.slice('secretsmanager:'.length) }),
      where,
    );
  return loadConfigFile(where);
}

let envConfig: { key: string; value: Promise<PullkeeperConfig> } | undefined;
/** loadConfigFromEnv, memoized per PULLKEEPER_CONFIG value; a failure is not cached. */
export function configFromEnvOnce(env: NodeJS.ProcessEnv = process.env): Promise<PullkeeperConfig> {
  const key = env.PULLKEEPER_CONFIG ?? '';
  if (!envConfig || envConfig.key !== key) {
    const value = loadConfigFromEnv(env);
    envConfig = { key, value };
    value.catch(() => {
      if (envConfig?.value === value) envConfig = undefined;
    });
  }
  return envConfig.value;
}
