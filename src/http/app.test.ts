/**
 * The HTTP layer: authentication, authorization by tenant, validation with
 * precise 400s, body limits, request ids; the use cases behind it are recorded
 * so each test can assert that a refused request reached none of them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '../app/log.js';
import { parseConfig } from '../config/load.js';
import { type ApiUseCases, createApp } from './app.js';
import { RefreshRequestSchema } from './schemas.js';

const TOKEN_A = 'token-for-team-a-93c1';
const TOKEN_ALL = 'token-for-everything-77de';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const config = parseConfig({
  clusters: [{ name: 'c', kubeconfig: '/dev/null' }],
  registries: [
    { name: 'r', kind: 'static', server: 'x.io', username: { value: 'u' }, password: { value: 'p' } },
  ],
  tenants: [
    { name: 'team-a', namespaces: { names: ['a1', 'a2'] }, registries: ['r'] },
    { name: 'team-b', namespaces: { names: ['b1'] }, registries: ['r'] },
  ],
  api: {
    auth: {
      tokens: [
        { name: 'ci-a', sha256: sha(TOKEN_A), tenants: ['team-a'] },
        { name: 'ops', sha256: sha(TOKEN_ALL), tenants: '*' },
      ],
    },
  },
});

function setup(opts: { failConfig?: boolean; refreshOk?: boolean } = {}) {
  const calls: Array<[string, unknown]> = [];
  const logs: string[] = [];
  const useCases: ApiUseCases = {
    tenants: (c) => c.tenants.map((t) => t.name),
    async refresh(_c, req) {
      calls.push(['refresh', req]);
      return { ok: opts.refreshOk ?? true, report: { registries: [], tenants: [], writes: 0 } };
    },
    async tenantsOfNamespace(c, ns) {
      return c.tenants
        .filter((t) => 'names' in t.namespaces && t.namespaces.names.includes(ns))
        .map((t) => t.name);
    },
    async ensure(_c, ns, ctx) {
      calls.push(['ensure', { ns, timeoutMs: ctx.timeoutMs }]);
      return { ok: true, report: { namespace: ns } };
    },
    async status(_c, tenants) {
      calls.push(['status', tenants]);
      return { tenants };
    },
  };
  const app = createApp({
    config: async () => {
      if (opts.failConfig) throw new Error('broken');
      return config;
    },
    useCases,
    logger: createLogger({ sink: (l) => logs.push(l) }),
  });
  const req = (
    method: string,
    path: string,
    o: { token?: string; body?: string; headers?: Record<string, string> } = {},
  ) =>
    app.request(path, {
      method,
      headers: {
        ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
        ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...o.headers,
      },
      ...(o.body !== undefined ? { body: o.body } : {}),
    });
  return { req, calls, logs };
}

describe('authentication and authorization', () => {
  const cases: Array<[string, string, string, { token?: string; body?: string }, number, RegExp]> = [
    ['no token', 'POST', '/v1/refresh', {}, 401, /missing bearer token/],
    ['a wrong token', 'POST', '/v1/refresh', { token: 'nope-nope-nope' }, 401, /not valid/],
    [
      'a tenant the caller may not refresh',
      'POST',
      '/v1/refresh',
      { token: TOKEN_A, body: '{"tenants":["team-b"]}' },
      403,
      /may not refresh tenant team-b/,
    ],
    [
      'an unknown tenant',
      'POST',
      '/v1/refresh',
      { token: TOKEN_ALL, body: '{"tenants":["team-z"]}' },
      404,
      /unknown tenant team-z/,
    ],
    [
      "ensure of another tenant's namespace",
      'POST',
      '/v1/namespaces/b1/ensure',
      { token: TOKEN_A },
      403,
      /may not ensure namespace b1/,
    ],
    [
      'ensure of a namespace no tenant owns',
      'POST',
      '/v1/namespaces/zz/ensure',
      { token: TOKEN_ALL },
      404,
      /belongs to no configured tenant/,
    ],
    ['status without a token', 'GET', '/v1/status', {}, 401, /missing bearer token/],
  ];
  for (const [name, method, path, o, code, msg] of cases) {
    test(`${name}: ${code}, nothing called, no token in the answer or the logs`, async () => {
      const { req, calls, logs } = setup();
      const res = await req(method, path, o);
      assert.equal(res.status, code);
      const text = await res.text();
      assert.match(JSON.parse(text).message, msg);
      assert.deepEqual(
        calls.filter(([k]) => k !== 'status' || code === 200),
        [],
      );
      for (const t of [TOKEN_A, TOKEN_ALL]) assert.ok(!text.includes(t) && !logs.join('\n').includes(t));
      if (code === 401) assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    });
  }
  test("refresh with no tenants named: the caller's own tenants only", async () => {
    const { req, calls } = setup();
    const res = await req('POST', '/v1/refresh', { token: TOKEN_A });
    assert.equal(res.status, 200);
    assert.deepEqual(calls, [
      ['refresh', { dryRun: false, force: false, tenants: ['team-a'], nodes: false }],
    ]);
  });
  test('node push: only for a caller allowed every tenant', async () => {
    const { req, calls } = setup();
    const denied = await req('POST', '/v1/refresh', { token: TOKEN_A, body: '{"nodes":true}' });
    assert.equal(denied.status, 403);
    assert.deepEqual(calls, []);
    assert.equal(
      (await req('POST', '/v1/refresh', { token: TOKEN_ALL, body: '{"nodes":true}' })).status,
      200,
    );
    assert.deepEqual(calls, [
      ['refresh', { dryRun: false, force: false, nodes: true, tenants: ['team-a', 'team-b'] }],
    ]);
  });
  test('ensure of an own namespace reaches the use case with the timeout', async () => {
    const { req, calls } = setup();
    const res = await req('POST', '/v1/namespaces/a2/ensure', {
      token: TOKEN_A,
      body: '{"timeoutSeconds":5}',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(calls, [['ensure', { ns: 'a2', timeoutMs: 5000 }]]);
  });
  test("status lists only the caller's tenants", async () => {
    const { req } = setup();
    const res = await req('GET', '/v1/status', { token: TOKEN_A });
    assert.deepEqual(await res.json(), { tenants: ['team-a'] });
  });
  test('a broken config: 503 with Retry-After, no detail', async () => {
    const { req } = setup({ failConfig: true });
    const res = await req('POST', '/v1/refresh', { token: TOKEN_A });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '60');
    assert.doesNotMatch(await res.text(), /broken/);
  });
  test('a failed refresh is a 502 with the report', async () => {
    const { req } = setup({ refreshOk: false });
    const res = await req('POST', '/v1/refresh', { token: TOKEN_A });
    assert.equal(res.status, 502);
    assert.equal(((await res.json()) as { ok: boolean }).ok, false);
  });
});

describe('validation', () => {
  const cases: Array<[string, string, string, number, RegExp]> = [
    ['malformed JSON', '/v1/refresh', '{"tenants":', 400, /not valid JSON/],
    ['an unknown field', '/v1/refresh', '{"tenant":["team-a"]}', 400, /unknown field tenant/],
    ['a wrong type, with its path', '/v1/refresh', '{"tenants":"team-a"}', 400, /"path":"tenants"/],
    [
      'a bad element, with its index',
      '/v1/refresh',
      '{"tenants":["team-a","Bad_Name"]}',
      400,
      /"path":"tenants\[1\]".*DNS label/,
    ],
    ['dryRun not a boolean', '/v1/refresh', '{"dryRun":"yes"}', 400, /"path":"dryRun"/],
    [
      'ensure timeout out of range',
      '/v1/namespaces/a1/ensure',
      '{"timeoutSeconds":600}',
      400,
      /"path":"timeoutSeconds"/,
    ],
    ['an invalid namespace name', '/v1/namespaces/Not_A_Label/ensure', '{}', 400, /"path":"ns"/],
    [
      'an oversized body',
      '/v1/refresh',
      JSON.stringify({ tenants: ['x'], pad: 'x'.repeat(70_000) }),
      413,
      /too large/,
    ],
  ];
  for (const [name, path, body, code, msg] of cases) {
    test(`${name}: ${code}`, async () => {
      const { req, calls } = setup();
      const res = await req('POST', path, { token: TOKEN_ALL, body });
      assert.equal(res.status, code);
      assert.match(await res.text(), msg);
      assert.deepEqual(calls, []);
    });
  }
  test('a request id is echoed when sane, made up otherwise', async () => {
    const { req } = setup();
    assert.equal(
      (await req('GET', '/healthz', { headers: { 'x-request-id': 'ci-123' } })).headers.get('x-request-id'),
      'ci-123',
    );
    const made = (await req('GET', '/healthz', { headers: { 'x-request-id': 'bad id\n' } })).headers.get(
      'x-request-id',
    );
    assert.match(made ?? '', /^[0-9a-f-]{36}$/);
  });
  test('property: any JSON body is either a valid request or a 400 naming fields; never a 5xx', async () => {
    const { req } = setup();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.json(),
          fc
            .record(
              { tenants: fc.array(fc.string(), { maxLength: 3 }), dryRun: fc.anything() },
              { requiredKeys: [] },
            )
            .map((v) => JSON.stringify(v)),
        ),
        async (body) => {
          const res = await req('POST', '/v1/refresh', { token: TOKEN_ALL, body });
          assert.ok(res.status < 500, `status ${res.status} for ${body}`);
          if (res.status === 400) {
            const j = (await res.json()) as { errors?: Array<{ path: string }>; message: string };
            assert.ok(j.message);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
  test('property: the refresh schema accepts exactly DNS-label tenant lists', () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/), { maxLength: 5 }),
        (tenants) => {
          assert.ok(RefreshRequestSchema.safeParse({ tenants }).success);
        },
      ),
    );
    fc.assert(
      fc.property(
        fc.string().filter((s) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) || s.length > 63),
        (bad) => {
          assert.ok(!RefreshRequestSchema.safeParse({ tenants: [bad] }).success);
        },
      ),
    );
  });
});

describe('metrics route', () => {
  test('GET /metrics is served only when asked (local server), as Prometheus text after a refresh', async () => {
    const { Metrics } = await import('../app/metrics.js');
    const metrics = new Metrics();
    const useCases: ApiUseCases = {
      tenants: (c) => c.tenants.map((t) => t.name),
      refresh: async () => ({
        ok: true,
        report: {
          registries: [
            {
              name: 'r',
              kind: 'static',
              status: 'minted',
              expiresAt: new Date(Date.now() + 3600_000).toISOString(),
            },
          ],
          tenants: [{ name: 'team-a', namespaces: [{ name: 'a1', secret: 'created' }] }],
        },
      }),
      tenantsOfNamespace: async () => [],
      ensure: async () => ({ ok: true, report: {} }),
      status: async () => ({}),
    };
    const local = createApp({
      config: async () => config,
      useCases,
      metrics,
      exposeMetrics: true,
      logger: createLogger({ sink: () => undefined }),
    });
    await local.request('/v1/refresh', { method: 'POST', headers: { authorization: `Bearer ${TOKEN_ALL}` } });
    const res = await local.request('/metrics');
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^pullkeeper_rotations_total\{tenant="team-a"\} 1$/m);
    assert.match(text, /^pullkeeper_credential_expiry_seconds\{registry="r",kind="static"\} \d+$/m);
    const lambda = createApp({
      config: async () => config,
      useCases,
      metrics,
      logger: createLogger({ sink: () => undefined }),
    });
    assert.equal((await lambda.request('/metrics')).status, 404);
  });
});
