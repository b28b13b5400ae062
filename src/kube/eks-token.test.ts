import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EKS_TOKEN_PREFIX, eksToken, presignGetCallerIdentity } from './eks-token.js';

const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-a-real-secret', sessionToken: 'a/b+c=' };
const ALLOWED = [
  'Action',
  'Version',
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-Security-Token',
  'X-Amz-Signature',
  'X-Amz-SignedHeaders',
];

test('the presigned URL is what aws-iam-authenticator accepts', async () => {
  const url = new URL(
    await presignGetCallerIdentity({
      cluster: 'prod',
      region: 'us-west-2',
      credentials: creds,
      now: new Date('2026-01-02T03:04:05Z'),
    }),
  );
  assert.equal(url.origin, 'https://sts.us-west-2.amazonaws.com');
  assert.equal(url.pathname, '/');
  assert.deepEqual([...url.searchParams.keys()].sort(), [...ALLOWED].sort());
  assert.equal(url.searchParams.get('Action'), 'GetCallerIdentity');
  assert.equal(url.searchParams.get('X-Amz-Expires'), '60');
  assert.equal(url.searchParams.get('X-Amz-SignedHeaders'), 'host;x-k8s-aws-id');
  assert.equal(url.searchParams.get('X-Amz-Date'), '20260102T030405Z');
  assert.equal(url.searchParams.get('X-Amz-Credential'), 'AKIDEXAMPLE/20260102/us-west-2/sts/aws4_request');
  assert.equal(url.searchParams.get('X-Amz-Security-Token'), 'a/b+c=');
});

test('the token: prefix + unpadded base64url; the signature binds the cluster name', async () => {
  const at = new Date('2026-01-02T03:04:05Z');
  const a = await eksToken({ cluster: 'prod', region: 'us-east-1', credentials: creds, now: at });
  const b = await eksToken({ cluster: 'staging', region: 'us-east-1', credentials: creds, now: at });
  for (const t of [a, b]) assert.match(t, /^k8s-aws-v1\.[A-Za-z0-9_-]+$/);
  const sig = (t: string) =>
    new URL(Buffer.from(t.slice(EKS_TOKEN_PREFIX.length), 'base64url').toString()).searchParams.get(
      'X-Amz-Signature',
    );
  assert.notEqual(sig(a), sig(b));
  assert.equal(a, await eksToken({ cluster: 'prod', region: 'us-east-1', credentials: creds, now: at }));
});
