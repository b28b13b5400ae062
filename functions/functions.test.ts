import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { VERSION } from '../src/version.js';
import { handler as api } from './api.js';
import { handler as refresh } from './refresh.js';

function httpEvent(method: string, path: string): LambdaEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'example.test' },
    isBase64Encoded: false,
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
  it('api: POST /v1/refresh says it is not implemented and changes nothing', async () => {
    const res = await api(httpEvent('POST', '/v1/refresh'), ctx);
    assert.equal(res.statusCode, 501);
    const body = JSON.parse(res.body ?? '');
    assert.equal(body.status, 'not-implemented');
    assert.equal(body.changed, 0);
  });
  it('api: an unknown route is a JSON 404 that names the capabilities route', async () => {
    const res = await api(httpEvent('GET', '/nope'), ctx);
    assert.equal(res.statusCode, 404);
    assert.match(JSON.parse(res.body ?? '').message, /\/v1\/capabilities/);
  });
  it('refresh: the scheduled handler reports not-implemented', async () => {
    const report = await refresh();
    assert.equal(report.status, 'not-implemented');
  });
  it('VERSION matches package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    assert.equal(VERSION, pkg.version);
  });
});
