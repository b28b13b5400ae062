/**
 * Cluster access, from a `clusters[]` entry: a kubeconfig file (any auth
 * (tokens, client certificates, exec plugins; kubeconfig.ts),
 * in-cluster config, or the identities a Lambda has: EKS (a presigned STS
 * GetCallerIdentity, eks-token.ts), AKS (an Entra ID token for the AKS
 * server app), GKE (a Google access token); docs/deploy.md.
 */
import { readFile } from 'node:fs/promises';
import { azureCredential } from '../cloud/azure-identity.js';
import type { ClusterConfig } from '../config/schema.js';
import type { SecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { KubeClient, type KubeClientOptions, type KubeConnection } from './client.js';
import { expandHome, loadInCluster, loadKubeconfig } from './kubeconfig.js';

export class ClusterAccessError extends PullkeeperError {}

/** The AKS AAD server application, the same for every cluster and tenant. */
export const AKS_SERVER_APP_ID = '6dae42f8-4368-4678-94ff-3960e28e3630';
const EKS_TOKEN_REFRESH_MS = 10 * 60 * 1000;

/** Caches a token until `ttlMs` passes. */
function cachedToken(mint: () => Promise<string>, ttlMs: number): () => Promise<string> {
  let cur: { value: Promise<string>; at: number } | undefined;
  return () => {
    if (!cur || performance.now() - cur.at > ttlMs) {
      const value = mint();
      cur = { value, at: performance.now() };
      value.catch(() => {
        cur = undefined;
      });
    }
    return cur.value;
  };
}

export async function connectionFor(
  cluster: ClusterConfig,
  secrets: SecretResolver,
): Promise<KubeConnection> {
  if ('kubeconfig' in cluster || 'inCluster' in cluster) {
    let access: Awaited<ReturnType<typeof loadKubeconfig>>;
    try {
      access =
        'inCluster' in cluster
          ? await loadInCluster()
          : await loadKubeconfig(cluster.kubeconfig, cluster.context);
    } catch (err) {
      throw new ClusterAccessError(
        `cluster ${cluster.name}: cannot load ${'inCluster' in cluster ? 'the in-cluster config' : `kubeconfig ${cluster.kubeconfig}`} (${(err as Error).message.split('\n')[0]}); ${'inCluster' in cluster ? 'run pullkeeper in a pod with a ServiceAccount, or give the cluster a kubeconfig in the config' : "fix the cluster's kubeconfig (path, current-context or the cluster's context in the config)"}`,
        { cause: err },
      );
    }
    const { token, server, ca, cert, key, headers, insecureSkipTLSVerify } = access;
    return {
      server,
      headers,
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(insecureSkipTLSVerify ? { insecureSkipTLSVerify } : {}),
      ...(token ? { token } : {}),
    };
  }
  const caOf = (data?: string) => (data ? Buffer.from(data, 'base64') : undefined);
  if ('eks' in cluster) {
    const e = cluster.eks;
    let server = e.server;
    let ca = e.caData;
    if (!server || !ca) {
      const { EKSClient, DescribeClusterCommand } = await import('@aws-sdk/client-eks');
      const eks = new EKSClient({ region: e.region });
      try {
        const out = await eks.send(new DescribeClusterCommand({ name: e.cluster }));
        server ??= out.cluster?.endpoint;
        ca ??= out.cluster?.certificateAuthority?.data;
        const status = out.cluster?.status;
        if (status && status !== 'ACTIVE' && status !== 'UPDATING')
          throw new ClusterAccessError(`cluster ${cluster.name}: EKS cluster ${e.cluster} is ${status}`);
      } catch (err) {
        if (err instanceof ClusterAccessError) throw err;
        throw new ClusterAccessError(
          `cluster ${cluster.name}: eks:DescribeCluster ${e.cluster} failed (${(err as Error).name}); grant eks:DescribeCluster or set server and caData`,
          { cause: err },
        );
      } finally {
        eks.destroy();
      }
    }
    if (!server)
      throw new ClusterAccessError(`cluster ${cluster.name}: no endpoint for EKS cluster ${e.cluster}`);
    const creds = e.credentials
      ? {
          accessKeyId: await secrets.resolve(e.credentials.accessKeyId),
          secretAccessKey: await secrets.resolve(e.credentials.secretAccessKey),
          ...(e.credentials.sessionToken
            ? { sessionToken: await secrets.resolve(e.credentials.sessionToken) }
            : {}),
        }
      : undefined;
    return {
      server,
      ca: caOf(ca),
      token: cachedToken(async () => {
        // Static keys from the config, else the function's own role (environment, IRSA, instance profile);
        // with roleArn, that identity assumes the role and the token is signed as the role.
        // The signer (only EKS clusters load it) and the credentials, at once.
        // The chain's first link, the environment (a Lambda's role keys), needs no SDK to read.
        const [base, { eksToken }] = await Promise.all([
          creds ??
            envKeys() ??
            import('@aws-sdk/credential-provider-node').then((m) => m.defaultProvider()()),
          import('./eks-token.js'),
        ]);
        const credentials = e.roleArn ? await eksAssumeRole(cluster.name, e, base) : base;
        return eksToken({
          cluster: e.cluster,
          region: e.region,
          credentials,
          ...(e.stsEndpoint ? { stsEndpoint: e.stsEndpoint } : {}),
        });
      }, EKS_TOKEN_REFRESH_MS),
    };
  }
  if ('aks' in cluster) {
    const a = cluster.aks;
    // The SDK's retries are off: KubeClient's are the only ones.
    const cred = await azureCredential(a, secrets);
    return {
      server: a.server,
      ca: caOf(a.caData),
      // @azure/identity caches the token and refreshes it before expiry.
      token: async (signal) => {
        const t = await cred.getToken(`${AKS_SERVER_APP_ID}/.default`, signal ? { abortSignal: signal } : {});
        if (!t)
          throw new ClusterAccessError(`cluster ${cluster.name}: no Entra ID token for the AKS server app`);
        return t.token;
      },
    };
  }
  const g = cluster.gke;
  const { googleClient, googleReason, cachedGoogleToken, CLOUD_PLATFORM_SCOPE } = await import(
    '../cloud/google-auth.js'
  );
  let google: Awaited<ReturnType<typeof googleClient>>;
  try {
    google = await googleClient({
      what: `cluster ${cluster.name}`,
      // GKE maps a token to its Google account by email (as gke-gcloud-auth-plugin asks for it).
      scopes: [CLOUD_PLATFORM_SCOPE, 'https://www.googleapis.com/auth/userinfo.email'],
      ...(g.serviceAccountKey ? { serviceAccountKey: await secrets.resolve(g.serviceAccountKey) } : {}),
      ...(g.credentialConfig ? { credentialConfig: await secrets.resolve(g.credentialConfig) } : {}),
    });
  } catch (err) {
    throw new ClusterAccessError((err as Error).message, { cause: err });
  }
  const client = google.client;
  return {
    server: g.server,
    ca: caOf(g.caData),
    // The client caches the token and refreshes it before expiry; GKE wants it without trailing dots.
    token: async (signal) => {
      try {
        return ((await cachedGoogleToken(client, signal)).token ?? '').replace(/\.+$/, '');
      } catch (err) {
        throw new ClusterAccessError(
          `cluster ${cluster.name}: Google access token failed: ${googleReason(err, google.kind)}`,
          { cause: err },
        );
      }
    },
  };
}

type AwsKeys = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/**
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, as the SDK's fromEnv reads
 * them; not when AWS_PROFILE is set (the SDK's chain then skips the environment too).
 */
function envKeys(): AwsKeys | undefined {
  if (process.env.AWS_PROFILE) return undefined;
  const { AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret, AWS_SESSION_TOKEN: session } = process.env;
  return id && secret
    ? { accessKeyId: id, secretAccessKey: secret, ...(session ? { sessionToken: session } : {}) }
    : undefined;
}

/** sts:AssumeRole for an `eks:` cluster's roleArn (at its stsEndpoint when set); one hour, renewed with the token. */
async function eksAssumeRole(
  name: string,
  e: { region: string; roleArn?: string; stsEndpoint?: string },
  credentials: AwsKeys,
): Promise<AwsKeys> {
  const { STSClient, AssumeRoleCommand } = await import('@aws-sdk/client-sts');
  const sts = new STSClient({
    region: e.region,
    credentials,
    ...(e.stsEndpoint ? { endpoint: e.stsEndpoint } : {}),
  });
  try {
    const out = await sts.send(
      new AssumeRoleCommand({
        RoleArn: e.roleArn,
        RoleSessionName: `pullkeeper-${name}`.slice(0, 64),
        DurationSeconds: 3600,
      }),
      { abortSignal: AbortSignal.timeout(15_000) },
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  } catch (err) {
    throw new ClusterAccessError(
      `cluster ${name}: sts:AssumeRole ${e.roleArn} failed (${(err as Error).name}: ${(err as Error).message}); allow sts:AssumeRole on that role for the function's identity, and name that identity in the role's trust policy`,
      { cause: err },
    );
  } finally {
    sts.destroy();
  }
}

export async function kubeClientFor(
  cluster: ClusterConfig,
  secrets: SecretResolver,
  o?: KubeClientOptions,
): Promise<KubeClient> {
  return new KubeClient(await connectionFor(cluster, secrets), o);
}

/** Reads a kubeconfig's server (for messages). */
export async function kubeconfigServer(path: string): Promise<string | undefined> {
  try {
    return /server:\s*(\S+)/.exec(await readFile(expandHome(path), 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}
