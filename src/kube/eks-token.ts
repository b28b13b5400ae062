/**
 * EKS bearer token, as `aws eks get-token` and aws-iam-authenticator make it
 * (aws-cli customizations/eks/get_token.py, aws-iam-authenticator pkg/token/token.go): an STS GetCallerIdentity GET request presigned with SigV4,
 * with `x-k8s-aws-id: <cluster>` among the signed headers, X-Amz-Expires=60,
 * encoded as `k8s-aws-v1.` + unpadded base64url of the URL. The server accepts
 * it until X-Amz-Date + 15 min; we use it for at most 14 min (the CLI's
 * TOKEN_EXPIRATION_MINS) and mint a new one after that: local crypto only.
 */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

export const EKS_TOKEN_PREFIX = 'k8s-aws-v1.';
export const EKS_CLUSTER_ID_HEADER = 'x-k8s-aws-id';
/** How long we use one token (the CLI reports now + 14 min). */
export const EKS_TOKEN_USE_MS = 14 * 60 * 1000;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const bytes = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof d === 'string'
    ? d
    : d instanceof ArrayBuffer
      ? new Uint8Array(d)
      : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** node:crypto behind the Checksum interface the signer expects (HMAC when given a secret). */
class Sha256 {
  private readonly h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    /* single use */
  }
}

/** RFC 3986 query encoding, as SigV4 canonicalizes it. */
function encode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export interface EksTokenOptions {
  cluster: string;
  region: string;
  credentials: AwsCredentials;
  /** Default https://sts.<region>.amazonaws.com (the signing region must match the host). */
  stsEndpoint?: string;
  now?: Date;
}

/** Builds the presigned URL (exported for tests and the harness verifier). */
export async function presignGetCallerIdentity(opts: EksTokenOptions): Promise<string> {
  const endpoint = new URL(opts.stsEndpoint ?? `https://sts.${opts.region}.amazonaws.com`);
  const host = endpoint.host;
  const signer = new SignatureV4({
    service: 'sts',
    region: opts.region,
    credentials: opts.credentials,
    sha256: Sha256,
  });
  const presigned = await signer.presign(
    {
      method: 'GET',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : undefined,
      path: '/',
      query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
      headers: { host, [EKS_CLUSTER_ID_HEADER]: opts.cluster },
    } as never,
    { expiresIn: 60, ...(opts.now ? { signingDate: opts.now } : {}) },
  );
  const query = Object.entries(presigned.query ?? {})
    .map(([k, v]) => `${encode(k)}=${encode(String(v))}`)
    .join('&');
  return `${endpoint.protocol}//${host}/?${query}`;
}

/** The bearer token: `k8s-aws-v1.` + base64url(presigned URL), no padding. */
export async function eksToken(opts: EksTokenOptions): Promise<string> {
  return EKS_TOKEN_PREFIX + Buffer.from(await presignGetCallerIdentity(opts)).toString('base64url');
}
