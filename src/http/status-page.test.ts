/**
 * The status page from a StatusReport: what is worst comes first, the words a
 * person reads (countdowns, summary), and what must never be in the HTML
 * (scripts, unescaped names, token-like values from error strings).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StatusReport } from '../app/status-report.js';
import { renderMessagePage, renderStatusPage, statusView } from './status-page.js';

const NOW = new Date('2030-05-01T12:00:00Z');
const at = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000).toISOString();

type Reg = StatusReport['registries'][number];
type Tenant = StatusReport['tenants'][number];
const reg = (name: string, o: Partial<Reg> = {}): Reg => ({
  name,
  kind: 'static',
  expiresAt: null,
  secondsToExpiry: null,
  lastSuccess: at(-5),
  ...o,
});
const report = (o: Partial<StatusReport> = {}): StatusReport => ({
  time: NOW.toISOString(),
  registries: [],
  tenants: [],
  nodes: [],
  ...o,
});
const healthyTenant = (name: string, nss = ['ns-1']): Tenant => ({
  name,
  cluster: 'prod',
  namespaces: nss.map((n) => ({
    name: n,
    secret: 'present',
    hash: 'abcdef012345',
    expiresAt: at(312),
    refreshAt: at(120),
  })),
});

describe('statusView: worst first, in words', () => {
  const cases: Array<{
    name: string;
    report: StatusReport;
    summary: string;
    registries?: string[];
    tenants?: string[];
    nodes?: string[];
    issues?: string[];
  }> = [
    { name: 'nothing to show', report: report(), summary: 'all good', issues: [] },
    {
      name: 'healthy everything',
      report: report({
        registries: [reg('ecr', { expiresAt: at(312), lastSuccess: at(-3) })],
        tenants: [healthyTenant('team-a')],
        nodes: [{ name: 'n1', status: 'written', at: at(-1) }],
      }),
      summary: 'all good',
      registries: ['ecr OK expires in 5h 12m'],
      tenants: ['team-a OK ns-1:OK'],
      nodes: ['n1 OK'],
      issues: [],
    },
    {
      name: 'a failed registry sorts before healthy ones, whatever the names',
      report: report({
        registries: [reg('aaa'), reg('zzz', { lastError: 'verification failed: HTTP 401' }), reg('mmm')],
      }),
      summary: '1 problem',
      registries: ['zzz FAILED no expiry', 'aaa OK no expiry', 'mmm OK no expiry'],
      issues: ['Registry zzz: verification failed: HTTP 401'],
    },
    {
      name: 'expired and soon-expiring registries; one never seen by this process',
      report: report({
        registries: [
          reg('later', { expiresAt: at(600) }),
          reg('soon', { expiresAt: at(20) }),
          reg('gone', { expiresAt: at(-3) }),
          reg('unseen', { lastSuccess: null }),
        ],
      }),
      summary: '1 problem, 1 warning',
      registries: [
        'gone EXPIRED expired 3m ago',
        'soon EXPIRES SOON expires in 20m',
        'unseen NO DATA no expiry',
        'later OK expires in 10h 0m',
      ],
      issues: [
        'Registry gone: the last credential minted has expired',
        'Registry soon: the credential expires within the hour',
      ],
    },
    {
      name: 'tenants with errors or missing Secrets before healthy ones; namespaces worst first',
      report: report({
        tenants: [
          healthyTenant('alpha'),
          {
            name: 'beta',
            cluster: 'prod',
            namespaces: [
              { name: 'b-ok', secret: 'present', expiresAt: at(400) },
              { name: 'b-missing', secret: 'missing' },
              { name: 'b-theirs', secret: 'foreign' },
            ],
          },
          { name: 'gamma', cluster: 'edge', error: 'cluster unreachable (FetchError)', namespaces: [] },
          { name: 'delta', cluster: 'prod', namespaces: [] },
          {
            name: 'epsilon',
            cluster: 'prod',
            namespaces: [{ name: 'e1', secret: 'present', expiresAt: at(600), refreshAt: at(-45) }],
          },
        ],
      }),
      summary: '3 problems, 1 warning',
      tenants: [
        'beta PROBLEM b-missing:MISSING b-theirs:CONFLICT b-ok:OK',
        'gamma FAILED',
        'epsilon WARNING e1:REFRESH OVERDUE',
        'delta NO NAMESPACES',
        'alpha OK ns-1:OK',
      ],
      issues: [
        'Tenant beta, namespace b-missing: no pull Secret of this tenant here yet (or a Secret pullkeeper does not own holds its name)',
        "Tenant beta, namespace b-theirs: the Secret's name is held by another tenant's Secret",
        'Tenant gamma: cluster unreachable (FetchError)',
        'Tenant epsilon, namespace e1: the refresh was due 45m ago; is the schedule running?',
      ],
    },
    {
      name: 'an expired Secret is a problem, one expiring within the hour a warning',
      report: report({
        tenants: [
          {
            name: 't',
            cluster: 'prod',
            namespaces: [
              { name: 'x', secret: 'present', expiresAt: at(59) },
              { name: 'y', secret: 'present', expiresAt: at(-1) },
            ],
          },
        ],
      }),
      summary: '1 problem, 1 warning',
      tenants: ['t PROBLEM y:EXPIRED x:EXPIRES SOON'],
    },
    {
      name: 'failed nodes first, drift a warning',
      report: report({
        nodes: [
          { name: 'a', status: 'unchanged', at: at(-2) },
          { name: 'b', status: 'drift', reason: 'auths differ', at: at(-2) },
          { name: 'c', status: 'failed', reason: 'connect ECONNREFUSED 10.0.0.3:22', at: at(-2) },
          { name: 'd', status: 'written', at: at(-2) },
        ],
      }),
      summary: '1 problem, 1 warning',
      nodes: ['c FAILED', 'b DRIFT', 'a OK', 'd OK'],
      issues: ['Node c: connect ECONNREFUSED 10.0.0.3:22', 'Node b: auths differ'],
    },
    {
      name: 'problems of every kind: all problems listed before any warning',
      report: report({
        registries: [reg('soon', { expiresAt: at(30) }), reg('bad', { lastError: 'boom' })],
        tenants: [{ name: 't', cluster: 'c', namespaces: [{ name: 'm', secret: 'missing' }] }],
        nodes: [{ name: 'n', status: 'failed', at: at(-1) }],
      }),
      summary: '3 problems, 1 warning',
      issues: [
        'Registry bad: boom',
        'Node n: failed',
        'Tenant t, namespace m: no pull Secret of this tenant here yet (or a Secret pullkeeper does not own holds its name)',
        'Registry soon: the credential expires within the hour',
      ],
    },
  ];
  for (const c of cases)
    test(c.name, () => {
      const v = statusView(c.report, NOW);
      assert.equal(v.summary, c.summary);
      if (c.registries)
        assert.deepEqual(
          v.registries.map((r) => `${r.name} ${r.word} ${r.expiry}`),
          c.registries,
        );
      if (c.tenants)
        assert.deepEqual(
          v.tenants.map((t) =>
            [`${t.name} ${t.word}`, ...t.namespaces.map((n) => `${n.name}:${n.word}`)].join(' '),
          ),
          c.tenants,
        );
      if (c.nodes)
        assert.deepEqual(
          v.nodes.map((n) => `${n.name} ${n.word}`),
          c.nodes,
        );
      if (c.issues)
        assert.deepEqual(
          v.issues.map((x) => `${x.what}: ${x.detail}`),
          c.issues,
        );
    });
});

describe('renderStatusPage', () => {
  const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl';
  const mixed = report({
    registries: [
      reg('good', { expiresAt: at(312) }),
      reg('bad', { lastError: `verification failed: registry said Bearer ${JWT} is invalid` }),
    ],
    tenants: [
      healthyTenant('team-ok'),
      {
        name: 'team-<script>alert(1)</script>',
        cluster: 'prod',
        namespaces: [{ name: 'x', secret: 'missing' }],
      },
    ],
    nodes: [{ name: 'node-1', status: 'failed', reason: 'ssh: password=hunter2-pw rejected', at: at(-3) }],
  });
  const html = renderStatusPage(mixed, { now: NOW, viewer: 'token ops' });

  test('a complete HTML document that reloads itself and runs no script', () => {
    assert.match(html, /^<!doctype html><html lang="en">/);
    assert.match(html, /<meta http-equiv="refresh" content="30"\/>/);
    assert.ok(!/<script/i.test(html), 'no script element');
    assert.ok(!/\son\w+=/i.test(html), 'no event handler attribute');
    assert.ok(!/(src|href)="(https?:)?\/\//i.test(html), 'no external resource');
  });
  test('names are escaped', () => {
    assert.ok(html.includes('team-&lt;script&gt;alert(1)&lt;/script&gt;'));
  });
  test('token-like values in error strings are not shown', () => {
    for (const s of [JWT, 'hunter2-pw']) assert.ok(!html.includes(s), `${s.slice(0, 6)}… must not appear`);
    assert.match(html, /registry said Bearer &lt;redacted&gt; is invalid/);
  });
  test('summary first, then problems, then registries, tenants, nodes; failures above healthy rows', () => {
    const pos = (s: string) => {
      const i = html.indexOf(s);
      assert.ok(i >= 0, `${s} is on the page`);
      return i;
    };
    const order = [
      pos('id="summary"'),
      pos('id="problems"'),
      pos('id="registries"'),
      pos('id="tenants"'),
      pos('id="nodes"'),
    ];
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
    assert.match(html, /class="summary problem" role="status">3 problems</);
    assert.ok(pos('<th scope="row">bad</th>') < pos('<th scope="row">good</th>'));
    assert.ok(pos('Tenant team-&lt;script&gt;') < pos('Tenant team-ok'));
    assert.match(html, /expires in 5h 12m/);
    assert.match(html, /signed in as token ops/);
  });
  test('colours always come with words', () => {
    for (const m of html.matchAll(/<span class="badge (\w+)">([^<]*)<\/span>/g))
      assert.ok(m[2]!.trim().length > 0, `badge ${m[1]} has a word`);
  });
  test('all good, public mode banner', () => {
    const ok = renderStatusPage(report({ tenants: [healthyTenant('a')] }), { now: NOW, publicMode: true });
    assert.match(ok, /class="summary ok" role="status">all good</);
    assert.match(ok, /Public mode/);
    assert.ok(!ok.includes('id="problems"'));
  });
  test('many healthy namespaces fold into <details>; the ones needing attention stay visible', () => {
    const nss = Array.from({ length: 30 }, (_, i) => `ns-${String(i).padStart(2, '0')}`);
    const t = healthyTenant('big', nss);
    t.namespaces.push({ name: 'zz-missing', secret: 'missing' });
    const page = renderStatusPage(report({ tenants: [t] }), { now: NOW });
    assert.match(page, /<summary>30 healthy namespaces<\/summary>/);
    assert.ok(page.indexOf('zz-missing') < page.indexOf('<details>'));
  });
});

describe('renderMessagePage', () => {
  test('escapes its text', () => {
    const p = renderMessagePage({ title: 'x', lines: ['<b>y</b>'], code: ['a & b'] });
    assert.ok(p.includes('&lt;b&gt;y&lt;/b&gt;') && p.includes('a &amp; b'));
    assert.ok(!/<script/i.test(p));
  });
});

describe('compiles the same everywhere', () => {
  test("without the repository's tsconfig (bin/pullkeeper.js run from any directory), JSX is hono's", async () => {
    const { readFile } = await import('node:fs/promises');
    const { transform } = await import('esbuild');
    const src = await readFile(new URL('./status-page.tsx', import.meta.url), 'utf8');
    const out = await transform(src, { loader: 'tsx', format: 'esm', tsconfigRaw: {} });
    assert.match(out.code, /from "hono\/jsx\/jsx-runtime"/);
    assert.doesNotMatch(out.code, /React\./);
  });
});
