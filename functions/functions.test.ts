/** The Lambda handlers in-process, with API Gateway v2 and SQS events as Lambda delivers them. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { VERSION } from '../src/version.js';

const dir = mkdtempSync(join(tmpdir(), 'pk-fn-'));
const TOKEN = 'fn-test-token-0a1b2c';
const cfgFile = join(dir, 'pullkeeper.json');
writeFileSync(
  cfgFile,
  JSON.stringify({
    registries: [
      {
        name: 'hub',
        kind: 'static',
        server: 'https://index.docker.io/v1/',
        username: { value: 'u' },
        password: { value: 'fn-pass-99' },
        verify: false,
      },
    ],
    api: {
      auth: {
        tokens: [{ name: 'ops', sha256: createHash('sha256').update(TOKEN).digest('hex'), tenants: '*' }],
      },
    },
  }),
);
process.env.PULLKEEPER_CONFIG = cfgFile;
process.env.PULLKEEPER_LOG_LEVEL = 'error';
const { handler: api } = await import('./api.js');
const { handler: refresh } = await import('./refresh.js');
const { handler: worker } = await import('./worker.js');

function httpEvent(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): LambdaEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'example.test', ...headers },
    isBase64Encoded: false,
    ...(body !== undefined ? { body } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'api',
      domainName: 'example.test',
      domainPrefix: 'example',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '22/Nov/2026:00:00:00 +0000',
      timeEpoch: 0,
    },
  } as unknown as LambdaEvent;
}
const ctx = {} as LambdaContext;

describe('Lambda handlers', () => {
  it('api: GET /healthz answers ok with the version', async () => {
    const res = await api(httpEvent('GET', '/healthz'), ctx);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse(res.body ?? ''), { status: 'ok', version: VERSION });
  });
  it('api: POST /v1/refresh without a token is 401 and names what to send', async () => {
    const res = await api(httpEvent('POST', '/v1/refresh'), ctx);
    assert.equal(res.statusCode, 401);
    assert.match(JSON.parse(res.body ?? '').message, /Authorization: Bearer/);
  });
  it('api: POST /v1/refresh with a token and no tenants configured: 403, nothing to refresh', async () => {
    const res = await api(httpEvent('POST', '/v1/refresh', { authorization: `Bearer ${TOKEN}` }), ctx);
    assert.equal(res.statusCode, 403);
    assert.doesNotMatch(res.body ?? '', /fn-pass-99|fn-test-token/);
  });
  it('api: an unknown route is a JSON 404 that names the capabilities route', async () => {
    const res = await api(httpEvent('GET', '/nope'), ctx);
    assert.equal(res.statusCode, 404);
    assert.match(JSON.parse(res.body ?? '').message, /\/v1\/capabilities/);
  });
  it('refresh: the scheduled handler runs inline and reports the registries', async () => {
    const report = (await refresh()) as { mode: string; tenants: unknown[] };
    assert.equal(report.mode, 'inline');
    assert.deepEqual(report.tenants, []);
  });
  it('worker: a malformed message is dropped (not redelivered); the batch answers partial failures', async () => {
    const res = await worker({ Records: [{ messageId: 'm1', body: '{"v":1,"type":"nope"}' }] });
    assert.deepEqual(res, { batchItemFailures: [] });
  });
  it('worker: a tenant that is not configured fails its message only', async () => {
    const res = await worker({
      Records: [
        { messageId: 'bad', body: JSON.stringify({ v: 1, type: 'tenant', tenant: 'ghost' }) },
        { messageId: 'junk', body: 'not json' },
      ],
    });
    assert.deepEqual(res, { batchItemFailures: [{ itemIdentifier: 'bad' }] });
  });
  it('VERSION matches package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    assert.equal(VERSION, pkg.version);
  });
});
