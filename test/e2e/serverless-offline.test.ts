/**
 * The functions as users run them locally: `serverless offline` (osls +
 * serverless-offline + serverless-esbuild) serving serverless.yml's HTTP API.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../harness/ports.js';
import { type Service, startService } from '../harness/proc.js';

let offline: Service;
let base: string;

describe('serverless offline', { timeout: 120_000 }, () => {
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pk-offline-'));
    const [httpPort, lambdaPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${httpPort}`;
    offline = await startService({
      name: 'serverless offline',
      command: process.execPath,
      args: [
        'node_modules/serverless/bin/serverless.js',
        'offline',
        'start',
        '--httpPort',
        String(httpPort),
        '--lambdaPort',
        String(lambdaPort),
      ],
      env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' },
      logFile: join(dir, 'offline.log'),
      readyTimeoutMs: 90_000,
      ready: async (signal) => (await fetch(`${base}/healthz`, { signal })).ok,
    });
  });
  after(async () => {
    await offline?.stop();
  });

  test('GET /healthz answers through the bundled Lambda', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, 'ok');
  });
  test('POST /v1/refresh says not-implemented and changes nothing', async () => {
    const res = await fetch(`${base}/v1/refresh`, { method: 'POST' });
    assert.equal(res.status, 501);
    const body = (await res.json()) as { status: string; changed: number };
    assert.equal(body.status, 'not-implemented');
    assert.equal(body.changed, 0);
  });
  test('stopping by PID ends the process', async () => {
    await offline.stop();
    const { code, signal } = await offline.exited;
    assert.ok(code !== null || signal !== null);
  });
});
