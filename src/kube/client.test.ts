/**
 * The Kubernetes client against a small in-process HTTP server, over HTTP/1.1 and over
 * HTTP/2 (h2c): rate limit, in-flight limit, retries of safe calls on 429/5xx with
 * Retry-After, and abort while waiting and mid-request. (End to end against a real
 * kube-apiserver: test/e2e.)
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createServer as createH2Server,
  type Http2ServerRequest,
  Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { assertNoListenerLeak } from '../../test/support/listeners.js';
import { KubeApiError, KubeClient, type KubeClientOptions, type KubeTransport } from './client.js';

type Res = ServerResponse | Http2ServerResponse;
/** Responses the fake's handler answered (json()). */
const answered = new WeakSet<Res>();
type Handler = (req: IncomingMessage | Http2ServerRequest, res: Res, n: number) => void;

interface Fake {
  url: string;
  /** Requests seen, by method and path. */
  seen: string[];
  inFlight: number;
  maxInFlight: number;
  closed: number;
  handle: Handler;
  close(): Promise<void>;
}

async function startFake(transport: KubeTransport): Promise<Fake> {
  const sessions = new Set<Http2Session>();
  const fake: Fake = {
    url: '',
    seen: [],
    inFlight: 0,
    maxInFlight: 0,
    closed: 0,
    handle: (_req, res) => json(res, 200, {}),
    close: async () => {
      if ('closeAllConnections' in server) server.closeAllConnections();
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const onRequest = (req: IncomingMessage | Http2ServerRequest, res: Res) => {
    fake.seen.push(`${req.method} ${req.url}`);
    fake.inFlight++;
    fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      fake.inFlight--;
    };
    res.on('finish', finish);
    res.on('close', () => {
      // Closed before an answer was written (HTTP/2's compat layer emits 'finish' on a reset too).
      if (!answered.has(res)) fake.closed++;
      finish();
    });
    req.resume();
    req.on('end', () => fake.handle(req, res, fake.seen.length));
  };
  const server = transport === 'http2' ? createH2Server(onRequest) : createServer(onRequest);
  server.on('session', (s: Http2Session) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function json(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  answered.add(res);
  const h = { 'content-type': 'application/json', ...headers };
  if (res instanceof Http2ServerResponse) res.writeHead(status, h).end(JSON.stringify(body));
  else res.writeHead(status, h).end(JSON.stringify(body));
}

const status = (code: number, reason: string) => ({
  kind: 'Status',
  code,
  reason,
  message: `${reason} (test)`,
});

const clients: KubeClient[] = [];
const fakes: Fake[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const f of fakes) await f.close();
});

for (const transport of ['http1', 'http2'] as const) {
  async function setup(o: KubeClientOptions = {}): Promise<{ fake: Fake; kube: KubeClient }> {
    const fake = await startFake(transport);
    fakes.push(fake);
    const kube = new KubeClient({ server: fake.url }, { transport, ...o });
    clients.push(kube);
    return { fake, kube };
  }

  describe(`KubeClient over ${transport}`, () => {
    test('never more requests in flight than the concurrency', async () => {
      const { fake, kube } = await setup({ concurrency: 3 });
      fake.handle = (_req, res) => setTimeout(() => json(res, 200, { ok: true }), 30);
      const out = await Promise.all(
        Array.from({ length: 12 }, (_, i) => kube.request('GET', `/api/v1/x${i}`)),
      );
      assert.equal(out.length, 12);
      assert.equal(fake.maxInFlight, 3);
      assert.equal(kube.stats.requests, 12);
      assert.ok(kube.stats.connections <= 3, `connections reused (${kube.stats.connections})`);
    });

    test('the token bucket paces requests beyond the burst', async () => {
      const { fake, kube } = await setup({ qps: 20, burst: 2 });
      const start = performance.now();
      await Promise.all(Array.from({ length: 6 }, () => kube.request('GET', '/api/v1/namespaces')));
      // 2 at once, then 4 more tokens at 20/s: at least 200 ms (a lower bound only; the CPU is shared).
      assert.ok(performance.now() - start >= 190, `took ${performance.now() - start} ms`);
      assert.equal(fake.seen.length, 6);
    });

    test('a GET is retried on 429 after the Retry-After seconds, then succeeds', async () => {
      const { fake, kube } = await setup();
      fake.handle = (_req, res, n) =>
        n === 1
          ? json(res, 429, status(429, 'TooManyRequests'), { 'retry-after': '1' })
          : json(res, 200, { n });
      const start = performance.now();
      assert.deepEqual(await kube.request('GET', '/api/v1/namespaces'), { n: 2 });
      assert.ok(performance.now() - start >= 950, 'waited the Retry-After');
      assert.equal(kube.stats.retries, 1);
    });

    test('Retry-After as an HTTP date is honoured', async () => {
      const { fake, kube } = await setup();
      fake.handle = (_req, res, n) =>
        n === 1
          ? json(res, 503, status(503, 'ServiceUnavailable'), {
              'retry-after': new Date(Date.now() + 2000).toUTCString(),
            })
          : json(res, 200, {});
      const start = performance.now();
      await kube.request('GET', '/api/v1/namespaces');
      // The date has a 1 s resolution: at least ~1 s of the 2 s.
      assert.ok(performance.now() - start >= 950, `took ${performance.now() - start} ms`);
      assert.equal(fake.seen.length, 2);
    });

    test('a GET answering 5xx is tried 4 times in all, then the error says what the server said', async () => {
      const { fake, kube } = await setup();
      fake.handle = (_req, res) => json(res, 500, status(500, 'InternalError'));
      await assert.rejects(
        kube.request('GET', '/api/v1/namespaces?limit=5'),
        (e) =>
          e instanceof KubeApiError &&
          e.status === 500 &&
          /GET \/api\/v1\/namespaces: HTTP 500/.test(e.message),
      );
      assert.equal(fake.seen.length, 4);
      assert.equal(kube.stats.retries, 3);
    });

    test('a write is not retried unless the caller says it is safe', async () => {
      const { fake, kube } = await setup();
      fake.handle = (_req, res) => json(res, 503, status(503, 'ServiceUnavailable'), { 'retry-after': '0' });
      await assert.rejects(kube.request('POST', '/api/v1/namespaces/a/secrets', { body: {} }), /HTTP 503/);
      assert.equal(fake.seen.length, 1);
      await assert.rejects(
        kube.request('PATCH', '/api/v1/namespaces/a/secrets/s', { body: {}, retry: true }),
        /HTTP 503/,
      );
      assert.equal(fake.seen.length, 5);
      assert.equal(kube.stats.writes, 5);
    });

    test('4xx other than 429 is not retried', async () => {
      const { fake, kube } = await setup();
      fake.handle = (_req, res) => json(res, 404, status(404, 'NotFound'));
      await assert.rejects(
        kube.request('GET', '/api/v1/namespaces/x'),
        (e) => e instanceof KubeApiError && e.status === 404,
      );
      assert.equal(fake.seen.length, 1);
    });

    test('an abort during a Retry-After wait rejects at once with its reason', async () => {
      const { fake, kube } = await setup();
      fake.handle = (_req, res) => json(res, 429, status(429, 'TooManyRequests'), { 'retry-after': '10' });
      const ac = new AbortController();
      const p = kube.request('GET', '/api/v1/namespaces', { signal: ac.signal });
      while (fake.seen.length < 1) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      const start = performance.now();
      ac.abort(new Error('cancelled'));
      await assert.rejects(p, /cancelled/);
      assert.ok(performance.now() - start < 5_000, 'did not sit out the 10 s');
      assert.equal(fake.seen.length, 1);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    });

    test('an abort mid-request closes the request and is not retried', async () => {
      const { fake, kube } = await setup();
      fake.handle = () => undefined; // never answers
      const ac = new AbortController();
      const p = kube.request('GET', '/api/v1/namespaces', { signal: ac.signal });
      while (fake.seen.length < 1) await new Promise((r) => setTimeout(r, 5));
      ac.abort(new Error('cancelled'));
      await assert.rejects(p, /cancelled/);
      while (fake.closed < 1) await new Promise((r) => setTimeout(r, 5));
      assert.equal(fake.seen.length, 1);
    });

    test('an abort while queued for an in-flight slot leaves the queue without sending', async () => {
      const { fake, kube } = await setup({ concurrency: 1 });
      let release!: () => void;
      fake.handle = (_req, res) => {
        release = () => json(res, 200, {});
      };
      const first = kube.request('GET', '/api/v1/a');
      while (fake.seen.length < 1) await new Promise((r) => setTimeout(r, 5));
      const ac = new AbortController();
      const queued = kube.request('GET', '/api/v1/b', { signal: ac.signal });
      await new Promise((r) => setTimeout(r, 20));
      ac.abort(new Error('cancelled'));
      await assert.rejects(queued, /cancelled/);
      release();
      await first;
      assert.deepEqual(fake.seen, ['GET /api/v1/a']);
      fake.handle = (_req, res) => json(res, 200, {});
      await kube.request('GET', '/api/v1/c');
      assert.deepEqual(fake.seen, ['GET /api/v1/a', 'GET /api/v1/c']);
    });

    test('a request that outlives the timeout fails (a write once, no retry)', async () => {
      const { fake, kube } = await setup({ timeoutMs: 1500 });
      fake.handle = () => undefined;
      await assert.rejects(kube.request('PUT', '/api/v1/namespaces/a/configmaps/c', { body: {} }));
      assert.equal(fake.seen.length, 1);
    });

    test('many paced requests on one signal leave no abort listener (the token bucket removes its own)', async () => {
      const { kube } = await setup({ qps: 200, burst: 1 });
      const ac = new AbortController();
      await assertNoListenerLeak(ac.signal, () =>
        Promise.all(
          Array.from({ length: 40 }, () => kube.request('GET', '/api/v1/namespaces', { signal: ac.signal })),
        ),
      );
    });
  });
}
