/**
 * An EKS bearer token, as `aws eks get-token` and aws-iam-authenticator make it
 * (spec-clouds §1): a SigV4-presigned STS GetCallerIdentity GET with the
 * cluster name in the signed header `x-k8s-aws-id`, X-Amz-Expires=60, encoded
 * as `k8s-aws-v1.` + unpadded base64url. Local crypto only; valid 15 minutes
 * after X-Amz-Date (pullkeeper renews it every 10).
 */
export interface EksTokenOptions {
  cluster: string;
  region: string;
  /** Default https://sts.<region>.amazonaws.com (regional; the signing region must match the host). */
  stsEndpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** For tests: the signing time. */
  signingDate?: Date;
}

export async function eksToken(o: EksTokenOptions): Promise<string> {
  const [{ SignatureV4 }, { HttpRequest }, { Hash }] = await Promise.all([
    import('@smithy/signature-v4'),
    import('@smithy/protocol-http'),
    import('@smithy/hash-node'),
  ]);
  const credentials =
    o.credentials ?? (await (await import('@aws-sdk/credential-provider-node')).defaultProvider()());
  const endpoint = new URL(o.stsEndpoint ?? `https://sts.${o.region}.amazonaws.com`);
  const host = endpoint.host;
  const signer = new SignatureV4({
    service: 'sts',
    region: o.region,
    credentials,
    sha256: Hash.bind(null, 'sha256'),
  });
  const req = new HttpRequest({
    method: 'GET',
    protocol: endpoint.protocol,
    hostname: endpoint.hostname,
    ...(endpoint.port ? { port: Number(endpoint.port) } : {}),
    path: '/',
    query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
    headers: { host, 'x-k8s-aws-id': o.cluster },
  });
  const signed = await signer.presign(req, {
    expiresIn: 60,
    ...(o.signingDate ? { signingDate: o.signingDate } : {}),
  });
  const q = Object.entries(signed.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  const url = `${endpoint.protocol}//${host}/?${q}`;
  return `k8s-aws-v1.${Buffer.from(url).toString('base64url')}`;
}
