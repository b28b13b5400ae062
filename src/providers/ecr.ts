/**
 * AWS ECR: GetAuthorizationToken (username AWS, 12 h). One token serves every
 * registry the identity may read, so it is minted once per (identity, region)
 * and the hosts `<account>.dkr.ecr.<region>.amazonaws.com` are built here
 * (registryIds only changes proxyEndpoint: ECR API reference,
 * GetAuthorizationToken; docs/providers.md `ecr`). ECR Public
 * (public.ecr.aws) is minted in us-east-1 and needs sts:GetServiceBearerToken too.
 * Optional AssumeRole per registry (per-tenant accounts). SDKs load lazily.
 */
import type { RegistryConfigOf } from '../config/schema.js';
import { awsReason } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { withRetry } from './retry.js';
import type { CredentialProvider, MintContext, MintedToken } from './types.js';

export const ECR_TOKEN_LIFETIME_MS = 12 * 3600 * 1000;
export const ECR_PUBLIC_HOST = 'public.ecr.aws';

export class EcrError extends PullkeeperError {}

type EcrConfig = RegistryConfigOf<'ecr'>;

interface AwsCreds {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** `<account>.dkr.ecr.<region>.amazonaws.com` (`.amazonaws.com.cn` in China regions). */
export function ecrHost(account: string, region: string): string {
  return `${account}.dkr.ecr.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}

function isThrottleOr5xx(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  const status = e?.$metadata?.httpStatusCode ?? 0;
  return (
    status === 429 ||
    status >= 500 ||
    e?.name === 'ThrottlingException' ||
    e?.name === 'TooManyRequestsException' ||
    e?.name === 'ServerException' ||
    e?.name === 'TypeError' // network
  );
}

async function baseCredentials(cfg: EcrConfig, ctx: MintContext): Promise<AwsCreds | undefined> {
  if (!cfg.credentials) return undefined; // the SDK's default chain: env, IRSA, instance/function role
  const [accessKeyId, secretAccessKey, sessionToken] = await Promise.all([
    ctx.secrets.resolve(cfg.credentials.accessKeyId),
    ctx.secrets.resolve(cfg.credentials.secretAccessKey),
    cfg.credentials.sessionToken ? ctx.secrets.resolve(cfg.credentials.sessionToken) : undefined,
  ]);
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

async function assumeRole(cfg: EcrConfig, creds: AwsCreds | undefined, ctx: MintContext): Promise<AwsCreds> {
  const { STSClient, AssumeRoleCommand } = await import('@aws-sdk/client-sts');
  const sts = new STSClient({
    region: cfg.public ? 'us-east-1' : cfg.region,
    maxAttempts: 1,
    ...(cfg.stsEndpoint ? { endpoint: cfg.stsEndpoint } : {}),
    ...(creds ? { credentials: creds } : {}),
  });
  try {
    const out = await withRetry(
      (signal) =>
        sts.send(
          new AssumeRoleCommand({
            RoleArn: cfg.roleArn,
            RoleSessionName: `pullkeeper-${cfg.name}`.slice(0, 64),
            DurationSeconds: 3600,
            ...(cfg.externalId ? { ExternalId: cfg.externalId } : {}),
          }),
          { abortSignal: signal },
        ),
      { timeoutMs: ctx.timeoutMs, signal: ctx.signal, retryable: isThrottleOr5xx },
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey)
      throw new EcrError(`registry ${cfg.name}: AssumeRole ${cfg.roleArn} returned no credentials`);
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  } catch (err) {
    if (err instanceof EcrError) throw err;
    throw new EcrError(
      `registry ${cfg.name}: AssumeRole ${cfg.roleArn} failed: ${awsReason(err, 'sts:AssumeRole on that role, and the role must trust this identity')}`,
      { cause: err },
    );
  } finally {
    sts.destroy();
  }
}

function decodeToken(cfg: EcrConfig, b64: string | undefined): { username: string; password: string } {
  const text = b64 ? Buffer.from(b64, 'base64').toString('utf8') : '';
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1)
    throw new EcrError(
      `registry ${cfg.name}: the ECR answer's authorizationToken is not base64 of "user:password"`,
    );
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

export const ecrProvider: CredentialProvider<'ecr'> = {
  kind: 'ecr',
  identityKey: (cfg) =>
    JSON.stringify([
      cfg.public ? 'public' : cfg.region,
      cfg.roleArn ?? '',
      cfg.externalId ?? '',
      cfg.endpoint ?? '',
      cfg.stsEndpoint ?? '',
      cfg.credentials ?? null,
    ]),

  async mint(cfg, ctx): Promise<MintedToken> {
    let creds = await baseCredentials(cfg, ctx);
    if (cfg.roleArn) creds = await assumeRole(cfg, creds, ctx);
    const common = {
      maxAttempts: 1, // retries are ours: bounded, with jitter, and counted
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      ...(creds ? { credentials: creds } : {}),
    };
    const action = cfg.public
      ? 'ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken'
      : 'ecr:GetAuthorizationToken (Resource "*")';
    try {
      if (cfg.public) {
        const { ECRPUBLICClient, GetAuthorizationTokenCommand } = await import('@aws-sdk/client-ecr-public');
        const client = new ECRPUBLICClient({ region: 'us-east-1', ...common });
        try {
          const out = await withRetry(
            (signal) => client.send(new GetAuthorizationTokenCommand({}), { abortSignal: signal }),
            { timeoutMs: ctx.timeoutMs, signal: ctx.signal, retryable: isThrottleOr5xx },
          );
          const d = out.authorizationData;
          return {
            ...decodeToken(cfg, d?.authorizationToken),
            reportedExpiresAt: d?.expiresAt ? new Date(d.expiresAt) : undefined,
            documentedLifetimeMs: ECR_TOKEN_LIFETIME_MS,
            defaultHosts: [ECR_PUBLIC_HOST],
            source: `ecr-public GetAuthorizationToken (us-east-1${cfg.roleArn ? `, as ${cfg.roleArn}` : ''})`,
          };
        } finally {
          client.destroy();
        }
      }
      const { ECRClient, GetAuthorizationTokenCommand } = await import('@aws-sdk/client-ecr');
      const client = new ECRClient({ region: cfg.region, ...common });
      try {
        const out = await withRetry(
          (signal) => client.send(new GetAuthorizationTokenCommand({}), { abortSignal: signal }),
          { timeoutMs: ctx.timeoutMs, signal: ctx.signal, retryable: isThrottleOr5xx },
        );
        const d = out.authorizationData?.[0];
        if (!d)
          throw new EcrError(`registry ${cfg.name}: GetAuthorizationToken returned no authorizationData`);
        const proxy = d.proxyEndpoint?.replace(/^https?:\/\//, '').replace(/\/+$/, '');
        return {
          ...decodeToken(cfg, d.authorizationToken),
          reportedExpiresAt: d.expiresAt ? new Date(d.expiresAt) : undefined,
          documentedLifetimeMs: ECR_TOKEN_LIFETIME_MS,
          defaultHosts: proxy ? [proxy] : [],
          source: `ecr GetAuthorizationToken (${cfg.region}${cfg.roleArn ? `, as ${cfg.roleArn}` : ''})`,
        };
      } finally {
        client.destroy();
      }
    } catch (err) {
      if (err instanceof EcrError) throw err;
      throw new EcrError(`registry ${cfg.name}: ${awsReason(err, action)}`, { cause: err });
    }
  },

  hosts(cfg, token) {
    if (cfg.public) return [ECR_PUBLIC_HOST];
    if (cfg.registryIds?.length) return cfg.registryIds.map((id) => ecrHost(id, cfg.region));
    return token.defaultHosts ?? [];
  },
};
