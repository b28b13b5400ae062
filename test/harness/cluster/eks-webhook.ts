/**
 * An EKS-style token authenticator for the harness apiserver: a TokenReview
 * webhook (--authentication-token-webhook-config-file) that checks a
 * `k8s-aws-v1.` token the way aws-iam-authenticator's `Verify` does
 * (kubernetes-sigs/aws-iam-authenticator pkg/token/token.go)
 * and then asks STS — here moto — who signed it.
 *
 * moto does not check SigV4 signatures, so this webhook also does what real STS
 * does with a presigned URL: it recomputes the signature with the secret of the
 * access key (the harness knows moto's keys) over the request the authenticator
 * replays (host + `x-k8s-aws-id: <this cluster>`), and refuses a mismatch. A
 * token for another cluster, a tampered URL, a foreign query parameter or one
 * older than X-Amz-Date + 15 min is refused.
 *
 * With `google`, the same webhook also stands in for GKE's authenticator: a
 * token without the `k8s-aws-v1.` prefix is looked up at Google's tokeninfo
 * endpoint (the Google fake's), and an unexpired one carrying the account's
 * email (scope userinfo.email) authenticates as that email, as GKE maps
 * Google accounts (cloud.google.com/kubernetes-engine/docs/how-to/iam: "the
 * user name is the email address of the Google account").
 *
 *   const hook = await startEksWebhook({ dir, clusterId: 'prod', stsEndpoint: moto.endpoint, keys: { test: 'test' },
 *     mapArn: (arn) => ({ username: 'pullkeeper', groups: ['pullkeeper'] }) });
 *   startCluster({ dir, authn: { tokenWebhook: { url: hook.url, caPem: hook.caPem } } })
 */
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import { presignGetCallerIdentity } from '../../../src/kube/eks-token.js';
import { makeSelfSignedCert } from '../cloud/common.js';
import { freePort } from '../ports.js';

const PREFIX = 'k8s-aws-v1.';
const ALLOWED = new Set([
  'action',
  'version',
  'x-amz-algorithm',
  'x-amz-credential',
  'x-amz-date',
  'x-amz-expires',
  'x-amz-security-token',
  'x-amz-signature',
  'x-amz-signedheaders',
]);
const PRESIGN_VALID_MS = 15 * 60 * 1000;

export interface EksWebhookOptions {
  dir: string;
  /** The `x-k8s-aws-id` this cluster accepts (the EKS cluster name). */
  clusterId: string;
  /** The STS the tokens must point at (moto's endpoint in tests). */
  stsEndpoint: string;
  /** Access key id -> secret, for the signature check moto skips. */
  keys: Record<string, string>;
  /** Canonical IAM ARN -> Kubernetes user (aws-auth mapRoles / access entries); undefined refuses. */
  mapArn: (arn: string) => { username: string; groups: string[] } | undefined;
  now?: () => Date;
  /** GKE-style Google access tokens, checked at this tokeninfo URL. */
  google?: { tokeninfoUrl: string };
}

/** GKE: who a Google access token belongs to (its email), or why it is refused. */
async function verifyGoogleToken(
  token: string,
  tokeninfoUrl: string,
): Promise<{ ok: true; email: string } | { ok: false; reason: string }> {
  const res = await fetch(`${tokeninfoUrl}?access_token=${encodeURIComponent(token)}`, {
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) return { ok: false, reason: `google tokeninfo answered ${res.status}` };
  const info = (await res.json()) as { email?: string; email_verified?: string; expires_in?: string };
  if (!info.email || info.email_verified !== 'true')
    return { ok: false, reason: 'google token carries no verified email (scope userinfo.email)' };
  if (!(Number(info.expires_in) > 0)) return { ok: false, reason: 'google token expired' };
  return { ok: true, email: info.email };
}

export interface EksWebhook {
  url: string;
  caPem: string;
  /** Outcomes in order: 'ok' or the refusal reason. */
  reviews(): string[];
  stop(): Promise<void>;
}

/** `arn:aws:sts::A:assumed-role/R/S` -> `arn:aws:iam::A:role/R`; others unchanged. */
export function canonicalArn(arn: string): string {
  const m = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : arn;
}

/** aws-iam-authenticator's checks plus STS's signature check; returns the URL to replay, or why not. */
export async function verifyEksToken(
  token: string,
  o: Pick<EksWebhookOptions, 'clusterId' | 'stsEndpoint' | 'keys' | 'now'>,
): Promise<{ ok: true; url: URL } | { ok: false; reason: string }> {
  const no = (reason: string) => ({ ok: false as const, reason });
  if (token.length > 4096) return no('token too large');
  if (!token.startsWith(PREFIX)) return no('missing k8s-aws-v1. prefix');
  const b64 = token.slice(PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(b64)) return no('not unpadded base64url');
  let url: URL;
  try {
    url = new URL(Buffer.from(b64, 'base64url').toString('utf8'));
  } catch {
    return no('not a URL');
  }
  const sts = new URL(o.stsEndpoint);
  if (url.protocol !== sts.protocol || url.host !== sts.host) return no(`unexpected STS host ${url.host}`);
  if (url.pathname !== '/') return no('unexpected path');
  const q = new Map<string, string>();
  for (const [k, v] of url.searchParams) {
    if (!ALLOWED.has(k.toLowerCase())) return no(`non-allowlisted query parameter ${k}`);
    q.set(k.toLowerCase(), v);
  }
  if (q.get('action') !== 'GetCallerIdentity') return no('unexpected action');
  if (!(q.get('x-amz-signedheaders') ?? '').split(';').includes('x-k8s-aws-id'))
    return no('x-k8s-aws-id is not signed');
  const expires = Number(q.get('x-amz-expires'));
  if (!Number.isInteger(expires) || expires < 0 || expires > 900) return no('bad X-Amz-Expires');
  const date = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(q.get('x-amz-date') ?? '');
  if (!date) return no('bad X-Amz-Date');
  const signedAt = new Date(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!));
  const now = (o.now ?? (() => new Date()))();
  if (now.getTime() > signedAt.getTime() + PRESIGN_VALID_MS) return no('token expired');
  // STS's part: the signature over the request the authenticator replays.
  const cred = (q.get('x-amz-credential') ?? '').split('/');
  const [keyId, , region] = cred;
  const secret = keyId ? o.keys[keyId] : undefined;
  if (!secret || !region) return no('unknown access key');
  const expected = new URL(
    await presignGetCallerIdentity({
      cluster: o.clusterId,
      region,
      credentials: {
        accessKeyId: keyId!,
        secretAccessKey: secret,
        ...(q.has('x-amz-security-token') ? { sessionToken: q.get('x-amz-security-token')! } : {}),
      },
      stsEndpoint: o.stsEndpoint,
      now: signedAt,
    }),
  );
  if (expected.searchParams.get('X-Amz-Signature') !== q.get('x-amz-signature'))
    return no('signature does not match (another cluster, or a tampered token)');
  return { ok: true, url };
}

/**
 * GET the presigned URL with the headers the authenticator adds. moto serves every AWS
 * service on one port and picks the service from an Authorization header's credential
 * scope (an unsigned GET goes to S3), so the replay repeats the URL's X-Amz-Credential
 * there; moto ignores signatures, which verifyEksToken checked.
 */
function replay(url: URL, clusterId: string): Promise<{ status: number; text: string }> {
  const credential = url.searchParams.get('X-Amz-Credential') ?? '';
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        headers: {
          authorization: `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=host;x-k8s-aws-id, Signature=-`,
          'x-k8s-aws-id': clusterId,
          accept: 'application/json',
        },
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('STS did not answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

export async function startEksWebhook(o: EksWebhookOptions): Promise<EksWebhook> {
  const tls = await makeSelfSignedCert(o.dir);
  const log: string[] = [];
  const port = await freePort();
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
        apiVersion?: string;
        spec?: { token?: string };
      };
      const reply = (status: Record<string, unknown>) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ apiVersion: review.apiVersion, kind: 'TokenReview', status }));
      };
      const refuse = (reason: string) => {
        log.push(reason);
        reply({ authenticated: false, error: reason });
      };
      try {
        const token = review.spec?.token ?? '';
        if (o.google && !token.startsWith(PREFIX)) {
          const g = await verifyGoogleToken(token, o.google.tokeninfoUrl);
          if (!g.ok) return refuse(g.reason);
          log.push('ok google');
          return reply({
            authenticated: true,
            user: { username: g.email, groups: ['system:authenticated'] },
          });
        }
        const v = await verifyEksToken(token, o);
        if (!v.ok) return refuse(v.reason);
        // Ask STS who signed it, as the authenticator does.
        const r = await replay(v.url, o.clusterId);
        const text = r.text;
        if (r.status !== 200) return refuse(`STS answered ${r.status}`);
        const arn = /"Arn"\s*:\s*"([^"]+)"/.exec(text)?.[1] ?? /<Arn>([^<]+)<\/Arn>/.exec(text)?.[1];
        const account =
          /"Account"\s*:\s*"(\d+)"/.exec(text)?.[1] ?? /<Account>(\d+)<\/Account>/.exec(text)?.[1];
        if (!arn) return refuse('no Arn in the STS answer');
        const user = o.mapArn(canonicalArn(arn));
        if (!user) return refuse(`ARN ${canonicalArn(arn)} is not mapped`);
        log.push('ok');
        reply({
          authenticated: true,
          user: {
            username: user.username,
            uid: `aws-iam-authenticator:${account ?? ''}:${canonicalArn(arn)}`,
            groups: user.groups,
            extra: { arn: [arn], canonicalArn: [canonicalArn(arn)] },
          },
        });
      } catch (err) {
        refuse(`webhook error: ${(err as Error).message}`);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `https://127.0.0.1:${port}/authenticate`,
    caPem: tls.certPem,
    reviews: () => [...log],
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
