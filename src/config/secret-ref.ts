/**
 * Resolves secret references (`value`, `fromEnv`, `fromFile`, `fromSsm`,
 * `fromSecretsManager`) once per invocation. Errors name the reference (the
 * variable, file, parameter or secret id), never its value. The AWS SDK clients
 * load lazily, only when a reference of their kind is used; the usual AWS
 * configuration applies (region, credentials, AWS_ENDPOINT_URL_SSM /
 * AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL for test endpoints).
 */
import { PullkeeperError } from '../core/errors.js';
import { readBounded } from './load.js';
import type { SecretRef } from './schema.js';

/** A secret file or value larger than this is refused (Secrets Manager's own limit is 64 KiB). */
export const MAX_SECRET_BYTES = 256 * 1024;

export class SecretRefError extends PullkeeperError {
  readonly ref: string;
  constructor(ref: string, message: string, options?: { cause?: unknown }) {
    super(`secret ${ref}: ${message}`, options);
    this.ref = ref;
  }
}

/** How a reference is named in messages: never its value. */
export function describeSecretRef(ref: SecretRef): string {
  if ('value' in ref) return 'value (inline)';
  if ('fromEnv' in ref) return `fromEnv ${ref.fromEnv}`;
  if ('fromFile' in ref) return `fromFile ${ref.fromFile}`;
  if ('fromSsm' in ref) return `fromSsm ${ref.fromSsm}`;
  return `fromSecretsManager ${ref.fromSecretsManager}${ref.key ? ` key ${ref.key}` : ''}`;
}

export interface SecretResolverOptions {
  env?: NodeJS.ProcessEnv;
  region?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface SecretResolver {
  resolve(ref: SecretRef): Promise<string>;
}

/** One resolver per invocation: each reference is fetched at most once. */
export function createSecretResolver(opts: SecretResolverOptions = {}): SecretResolver {
  const env = opts.env ?? process.env;
  const cache = new Map<string, Promise<string>>();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const region = (r?: string) => r ?? opts.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const signal = () =>
    opts.signal
      ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)])
      : AbortSignal.timeout(timeoutMs);

  const fetchOne = async (ref: SecretRef): Promise<string> => {
    const name = describeSecretRef(ref);
    if ('value' in ref) return ref.value;
    if ('fromEnv' in ref) {
      const v = env[ref.fromEnv];
      if (v === undefined || v === '')
        throw new SecretRefError(name, `environment variable ${ref.fromEnv} is not set (or empty)`);
      return v;
    }
    if ('fromFile' in ref) {
      try {
        return (await readBounded(ref.fromFile, MAX_SECRET_BYTES)).toString('utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new SecretRefError(
          name,
          code === 'ENOENT'
            ? 'no such file'
            : err instanceof RangeError
              ? `file is ${err.message}`
              : `cannot read the file (${code ?? 'error'})`,
          { cause: err },
        );
      }
    }
    if ('fromSsm' in ref) {
      const { SSMClient, GetParameterCommand } = await import('@aws-sdk/client-ssm');
      const client = new SSMClient({ region: region(ref.region), maxAttempts: 3 });
      try {
        const out = await client.send(new GetParameterCommand({ Name: ref.fromSsm, WithDecryption: true }), {
          abortSignal: signal(),
        });
        const v = out.Parameter?.Value;
        if (v === undefined) throw new SecretRefError(name, 'the parameter has no value');
        return v;
      } catch (err) {
        if (err instanceof SecretRefError) throw err;
        throw new SecretRefError(
          name,
          awsReason(err, 'ssm:GetParameter (and kms:Decrypt for SecureString)'),
          {
            cause: err,
          },
        );
      } finally {
        client.destroy();
      }
    }
    const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    const client = new SecretsManagerClient({ region: region(ref.region), maxAttempts: 3 });
    try {
      const out = await client.send(new GetSecretValueCommand({ SecretId: ref.fromSecretsManager }), {
        abortSignal: signal(),
      });
      const v =
        out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString('utf8') : undefined);
      if (v === undefined) throw new SecretRefError(name, 'the secret has no value');
      if (!ref.key) return v;
      let obj: unknown;
      try {
        obj = JSON.parse(v);
      } catch {
        throw new SecretRefError(name, `"key" is set but the secret is not a JSON object`);
      }
      const field = (obj as Record<string, unknown>)?.[ref.key];
      if (typeof field !== 'string')
        throw new SecretRefError(name, `the JSON secret has no string field "${ref.key}"`);
      return field;
    } catch (err) {
      if (err instanceof SecretRefError) throw err;
      throw new SecretRefError(name, awsReason(err, 'secretsmanager:GetSecretValue'), { cause: err });
    } finally {
      client.destroy();
    }
  };

  return {
    resolve(ref) {
      const key = JSON.stringify(ref);
      let p = cache.get(key);
      if (!p) {
        p = fetchOne(ref);
        cache.set(key, p);
        // A failed lookup may be retried by a later call in the same invocation.
        p.catch(() => cache.delete(key));
      }
      return p;
    },
  };
}

/** An AWS error as a sentence that names the fix, without echoing request data. */
export function awsReason(err: unknown, action: string): string {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  switch (e?.name) {
    case 'ParameterNotFound':
    case 'ResourceNotFoundException':
      return 'not found: check the name and the region';
    case 'AccessDeniedException':
    case 'AccessDenied':
      return `access denied: the identity needs ${action}`;
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'ExpiredTokenException':
      return 'the AWS credentials were refused (expired or wrong keys)';
    case 'AbortError':
    case 'TimeoutError':
      return 'timed out';
    default:
      return `AWS call failed (${e?.name ?? 'error'}${e?.$metadata?.httpStatusCode ? `, HTTP ${e.$metadata.httpStatusCode}` : ''})`;
  }
}
