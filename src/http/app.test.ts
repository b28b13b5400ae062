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
import { bearerFromBasic } from './auth.js';
import { RefreshRequestSchema } from './schemas.js';

const TOKEN_A = 'token-for-team-a-93c1';
const TOKEN_ALL = 'token-for-everything-77de';
/** Names both tenants one by one: not "every tenant" (a tenant added later would not be covered). */
const TOKEN_AB = 'token-for-a-and-b-41f0';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const config = parseConfig({
  clusters: [{ name: 'c', kubeconfig: '/dev/null' }],
  registries: [
    { name: 'r', kind: 'static', server: 'x.io', username: { value: 'u' }, password: { value: 'p' } },
  ],
  tenants: [
    { name: 'team-a', namespaces: { names: ['a1', 'a2', 'shared'] }, registries: ['r'] },
    { name: 'team-b', namespaces: { names: ['b1', 'shared'] }, registries: ['r'] },
  ],
  api: {
    auth: {
      tokens: [
        { name: 'ci-a', sha256: sha(TOKEN_A), tenants: ['team-a'] },
        { name: 'ops', sha256: sha(TOKEN_ALL), tenants: '*' },
        { name: 'ab', sha256: sha(TOKEN_AB), tenants: ['team-a', 'team-b'] },
      ],
    },
  },
});

const publicConfig = parseConfig({
  ...structuredClone(config),
  api: { ...config.api, statusPage: { public: true } },
});

function setup(
  opts: {
    failConfig?: boolean;
    refreshOk?: boolean;
    config?: typeof config;
    allowPublicStatusPage?: boolean;
  } = {},
) {
  const calls: Array<[string, unknown]> = [];
  /** tenantsOfNamespace lookups: [namespace, the tenants asked about]. */
  const lookups: Array<[string, string[]]> = [];
  const logs: string[] = [];
  const useCases: ApiUseCases = {
    tenants: (c) => c.tenants.map((t) => t.name),
    async refresh(_c, req) {
      calls.push(['refresh', req]);
      return { ok: opts.refreshOk ?? true, report: { registries: [], tenants: [], writes: 0 } };
    },
    async tenantsOfNamespace(c, ns, among) {
      lookups.push([ns, among]);
      return c.tenants
        .filter((t) => among.includes(t.name))
        .filter((t) => 'names' in t.namespaces && t.namespaces.names.includes(ns))
        .map((t) => t.name);
    },
    async ensure(_c, ns, ctx) {
      calls.push(['ensure', { ns, timeoutMs: ctx.timeoutMs, tenants: ctx.tenants }]);
      return { ok: true, report: { namespace: ns } };
    },
    async status(_c, scope) {
      calls.push(['status', scope.tenants]);
      return {
        time: '2030-05-01T12:00:00.000Z',
        registries: [],
        tenants: scope.tenants.map((name) => ({
          name,
          cluster: 'c',
          namespaces: [{ name: `${name}-ns`, secret: 'present' as const, expiresAt: '2030-05-01T17:12:00Z' }],
        })),
        ...(scope.nodes
          ? { nodes: [{ name: 'node-secret-1', status: 'written', at: '2030-05-01T11:00:00Z' }] }
          : {}),
      };
    },
  };
  const app = createApp({
    config: async () => {
      if (opts.failConfig) throw new Error('broken');
      return opts.config ?? config;
    },
    useCases,
    logger: createLogger({ sink: (l) => logs.push(l) }),
    now: () => new Date('2030-05-01T12:00:00Z'),
    ...(opts.allowPublicStatusPage !== undefined
      ? { allowPublicStatusPage: opts.allowPublicStatusPage }
      : {}),
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
  return { req, calls, logs, lookups };
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
      404,
      /namespace b1 is not a namespace of this caller's tenants \(or does not exist\)/,
    ],
    [
      'ensure of a namespace no tenant owns',
      'POST',
      '/v1/namespaces/zz/ensure',
      { token: TOKEN_ALL },
      404,
      /namespace zz is not a namespace of this caller's tenants \(or does not exist\)/,
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
    assert.deepEqual(calls, [['ensure', { ns: 'a2', timeoutMs: 5000, tenants: ['team-a'] }]]);
  });
  test("status lists only the caller's tenants", async () => {
    const { req } = setup();
    const res = await req('GET', '/v1/status', { token: TOKEN_A });
    const body = (await res.json()) as { tenants: Array<{ name: string }> };
    assert.deepEqual(
      body.tenants.map((t) => t.name),
      ['team-a'],
    );
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
    [
      'a body over the default api.maxBodyBytes (16 KiB)',
      '/v1/refresh',
      JSON.stringify({ tenants: ['x'], pad: 'x'.repeat(17_000) }),
      413,
      /too large \(at most 16384 bytes, api\.maxBodyBytes\)/,
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
  const metricsUseCases: ApiUseCases = {
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
    status: async () => ({ time: new Date().toISOString(), registries: [], tenants: [], nodes: [] }),
  };
  const metricsApp = async (o: {
    config?: typeof config;
    exposeMetrics?: boolean;
    loopbackOnly?: boolean;
  }) => {
    const { Metrics } = await import('../app/metrics.js');
    const metrics = new Metrics();
    const app = createApp({
      config: async () => o.config ?? config,
      useCases: metricsUseCases,
      metrics,
      ...(o.exposeMetrics !== undefined ? { exposeMetrics: o.exposeMetrics } : {}),
      ...(o.loopbackOnly !== undefined ? { loopbackOnly: o.loopbackOnly } : {}),
      logger: createLogger({ sink: () => undefined }),
    });
    await app.request('/v1/refresh', { method: 'POST', headers: { authorization: `Bearer ${TOKEN_ALL}` } });
    return app;
  };
  const get = (app: Awaited<ReturnType<typeof metricsApp>>, token?: string) =>
    app.request('/metrics', token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const publicMetrics = parseConfig({
    ...structuredClone(config),
    api: { ...config.api, metrics: { public: true } },
  });

  test('GET /metrics is served only when asked (local server), as Prometheus text, to a caller granted every tenant', async () => {
    const local = await metricsApp({ exposeMetrics: true });
    const res = await get(local, TOKEN_ALL);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^pullkeeper_rotations_total\{tenant="team-a"\} 1$/m);
    assert.match(text, /^pullkeeper_credential_expiry_seconds\{registry="r",kind="static"\} \d+$/m);
    const lambda = await metricsApp({});
    assert.equal((await get(lambda, TOKEN_ALL)).status, 404);
  });
  const roles: Array<
    [string, { config?: typeof config; loopbackOnly?: boolean }, string | undefined, number]
  > = [
    ['no token', {}, undefined, 401],
    ['a wrong token', {}, 'nope-nope-nope', 401],
    ["one tenant's token", {}, TOKEN_A, 403],
    ['a token naming every tenant one by one (not "*")', {}, TOKEN_AB, 403],
    ['a token granted every tenant ("*")', {}, TOKEN_ALL, 200],
    [
      'api.metrics.public on a loopback-only server, no token',
      { config: publicMetrics, loopbackOnly: true },
      undefined,
      200,
    ],
    [
      'api.metrics.public on a server not bound to loopback, no token',
      { config: publicMetrics, loopbackOnly: false },
      undefined,
      401,
    ],
    ['api.metrics.public where loopback is not known, no token', { config: publicMetrics }, undefined, 401],
  ];
  for (const [name, o, token, code] of roles)
    test(`/metrics, ${name}: ${code}`, async () => {
      const res = await get(await metricsApp({ ...o, exposeMetrics: true }), token);
      assert.equal(res.status, code);
      const text = await res.text();
      if (code !== 200) assert.doesNotMatch(text, /pullkeeper_rotations_total|team-a/);
    });
});

describe('scoping per role: status, status page, ensure', () => {
  const roles: Array<{
    role: string;
    token: string;
    tenants: string[];
    nodes: boolean;
    ensureShared: string[];
  }> = [
    { role: 'team-a token', token: TOKEN_A, tenants: ['team-a'], nodes: false, ensureShared: ['team-a'] },
    {
      role: 'token naming both tenants (not "*")',
      token: TOKEN_AB,
      tenants: ['team-a', 'team-b'],
      nodes: false,
      ensureShared: ['team-a', 'team-b'],
    },
    {
      role: 'token granted every tenant',
      token: TOKEN_ALL,
      tenants: ['team-a', 'team-b'],
      nodes: true,
      ensureShared: ['team-a', 'team-b'],
    },
  ];
  for (const r of roles) {
    test(`${r.role}: GET /v1/status shows its tenants; nodes ${r.nodes ? 'shown' : 'absent'}`, async () => {
      const { req, calls } = setup();
      const res = await req('GET', '/v1/status', { token: r.token });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { tenants: Array<{ name: string }>; nodes?: unknown[] };
      assert.deepEqual(
        body.tenants.map((t) => t.name),
        r.tenants,
      );
      assert.equal('nodes' in body, r.nodes);
      assert.deepEqual(calls, [['status', r.tenants]]);
    });
    test(`${r.role}: the status page shows its tenants; nodes ${r.nodes ? 'shown' : 'withheld, saying why'}`, async () => {
      const { req } = setup();
      const res = await req('GET', '/', { headers: { authorization: basic('me', r.token) } });
      assert.equal(res.status, 200);
      const html = await res.text();
      for (const t of ['team-a', 'team-b']) assert.equal(html.includes(`Tenant ${t}`), r.tenants.includes(t));
      assert.equal(html.includes('node-secret-1'), r.nodes);
      assert.equal(html.includes('Nodes are shown only to callers granted every tenant'), !r.nodes);
    });
    test(`${r.role}: ensure of a namespace two tenants share acts for its own tenants only`, async () => {
      const { req, calls } = setup();
      const res = await req('POST', '/v1/namespaces/shared/ensure', { token: r.token });
      assert.equal(res.status, 200);
      assert.deepEqual(calls, [['ensure', { ns: 'shared', timeoutMs: 20_000, tenants: r.ensureShared }]]);
    });
  }
  test("ensure: another tenant's namespace and a non-existent one get identical answers, from the same lookups", async () => {
    const { req, calls, lookups } = setup();
    const answer = async (ns: string) => {
      const res = await req('POST', `/v1/namespaces/${ns}/ensure`, { token: TOKEN_A });
      const body = (await res.json()) as Record<string, unknown>;
      return {
        status: res.status,
        headers: [...res.headers.entries()].filter(([k]) => k !== 'x-request-id').sort(),
        body: JSON.stringify(body).replaceAll(ns, 'NS'),
      };
    };
    const foreign = await answer('b1');
    const missing = await answer('nope1');
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign, missing);
    assert.deepEqual(lookups, [
      ['b1', ['team-a']],
      ['nope1', ['team-a']],
    ]);
    assert.deepEqual(calls, []);
  });
  test('api.maxBodyBytes is honoured', async () => {
    const small = parseConfig({ ...structuredClone(config), api: { ...config.api, maxBodyBytes: 1024 } });
    const { req, calls } = setup({ config: small });
    const pad = (n: number) => JSON.stringify({ tenants: ['team-a'], dryRun: false }).padEnd(n, ' ');
    const big = await req('POST', '/v1/refresh', { token: TOKEN_ALL, body: pad(1500) });
    assert.equal(big.status, 413);
    assert.match(await big.text(), /at most 1024 bytes, api\.maxBodyBytes/);
    assert.deepEqual(calls, []);
    const fits = await req('POST', '/v1/refresh', { token: TOKEN_ALL, body: pad(1000) });
    assert.equal(fits.status, 200);
  });
  test('without a configuration there is no refresh route (no 501 placeholder)', async () => {
    const res = await createApp().request('/v1/refresh', { method: 'POST' });
    assert.equal(res.status, 404);
  });
});

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('bearerFromBasic', () => {
  const cases: Array<[string, string | undefined, string | undefined]> = [
    ['Basic user:token -> the token', basic('me', 'pk-tok-1'), 'Bearer pk-tok-1'],
    ['any user name, even empty', basic('', 'pk-tok-1'), 'Bearer pk-tok-1'],
    ['a password with a colon', basic('me', 'a:b'), 'Bearer a:b'],
    ['a Bearer header passes through', 'Bearer pk-tok-1', 'Bearer pk-tok-1'],
    ['no header', undefined, undefined],
    ['Basic without a colon', `Basic ${Buffer.from('justtoken').toString('base64')}`, undefined],
    ['Basic with an empty password', basic('me', ''), undefined],
    ['Basic with whitespace in the password', basic('me', 'a b'), undefined],
    ['Basic with non-base64', 'Basic %%%', undefined],
  ];
  for (const [name, header, want] of cases) test(name, () => assert.equal(bearerFromBasic(header), want));
});

describe('status page at /', () => {
  const isPage = (res: Response) => {
    assert.match(res.headers.get('content-type') ?? '', /^text\/html; charset=utf-8$/i);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  };
  test('without credentials: 401 asking the browser for Basic credentials; nothing read', async () => {
    const { req, calls } = setup();
    const res = await req('GET', '/');
    assert.equal(res.status, 401);
    isPage(res);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="pullkeeper status", charset="UTF-8"');
    assert.match(await res.text(), /Sign in with any user name and an API token/);
    assert.deepEqual(calls, []);
  });
  const signIns: Array<[string, string | undefined, number, string[] | null]> = [
    ['Basic with an API token as the password', basic('anyone', TOKEN_A), 200, ['team-a']],
    ['Basic with the all-tenants token', basic('ops', TOKEN_ALL), 200, ['team-a', 'team-b']],
    ['a Bearer token (curl)', `Bearer ${TOKEN_A}`, 200, ['team-a']],
    ['Basic with a wrong password', basic('anyone', 'wrong-token-123'), 401, null],
    ['Basic with the token as the user name', basic(TOKEN_A, ''), 401, null],
  ];
  for (const [name, authorization, code, tenants] of signIns)
    test(`${name}: ${code}`, async () => {
      const { req, calls, logs } = setup();
      const res = await req('GET', '/', authorization ? { headers: { authorization } } : {});
      assert.equal(res.status, code);
      isPage(res);
      const html = await res.text();
      assert.deepEqual(calls, tenants ? [['status', tenants]] : []);
      if (tenants) {
        for (const t of ['team-a', 'team-b'])
          assert.equal(
            html.includes(`Tenant ${t}`),
            tenants.includes(t),
            `tenant ${t} shown: ${tenants.includes(t)}`,
          );
        assert.match(html, /expires in 5h 12m/);
        assert.match(html, /all good/);
      }
      for (const t of [TOKEN_A, TOKEN_ALL]) assert.ok(!html.includes(t) && !logs.join('\n').includes(t));
    });
  test('Basic credentials are accepted on / only: /v1/* stays bearer-only', async () => {
    const { req, calls } = setup();
    const res = await req('GET', '/v1/status', { headers: { authorization: basic('me', TOKEN_ALL) } });
    assert.equal(res.status, 401);
    assert.deepEqual(calls, []);
  });
  test('api.statusPage.public: every tenant without sign-in, with a banner saying so', async () => {
    const { req, calls } = setup({ config: publicConfig });
    const res = await req('GET', '/');
    assert.equal(res.status, 200);
    isPage(res);
    assert.deepEqual(calls, [['status', ['team-a', 'team-b']]]);
    assert.match(await res.text(), /Public mode/);
    assert.equal((await req('GET', '/v1/status')).status, 401, 'the API itself stays closed');
  });
  test('api.statusPage.public is ignored where the deployment forbids it (a deployed Lambda)', async () => {
    const { req, calls } = setup({ config: publicConfig, allowPublicStatusPage: false });
    assert.equal((await req('GET', '/')).status, 401);
    assert.deepEqual(calls, []);
  });
  test('a broken config: an HTML 503, no detail', async () => {
    const { req } = setup({ failConfig: true });
    const res = await req('GET', '/', { headers: { authorization: basic('me', TOKEN_A) } });
    assert.equal(res.status, 503);
    isPage(res);
    assert.doesNotMatch(await res.text(), /broken/);
  });
  test('no configuration at all: a page saying how to configure pullkeeper', async () => {
    const res = await createApp().request('/');
    assert.equal(res.status, 200);
    isPage(res);
    const html = await res.text();
    assert.match(html, /pullkeeper is not configured/);
    assert.match(html, /pullkeeper serve --config pullkeeper.yaml/);
  });
});
