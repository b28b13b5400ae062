/**
 * The status page as a person sees it: the real API (createApp + the real use
 * cases) served over HTTP, after a real refresh against the harness (a
 * kube-apiserver with the shipped RBAC, a registry, one SSH node), with one
 * registry whose password is wrong and one node that cannot be reached. Headless
 * Chromium (Debian's, driven by playwright-core) loads `/` with JavaScript
 * disabled, signs in with HTTP Basic, and reads the page; a screenshot is kept in
 * test-artifacts/status-page.png.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ServerType, serve } from '@hono/node-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { apiDeps } from '../../src/app/compose.js';
import { createLogger } from '../../src/app/log.js';
import { parseConfig } from '../../src/config/load.js';
import { createApp } from '../../src/http/app.js';
import { rbacConfigFor, writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';
import { freePort } from '../harness/ports.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = join(import.meta.dirname, '..', '..');
const SCREENSHOT = join(ROOT, 'test-artifacts', 'status-page.png');
const REG = { username: 'ci-puller', password: 'status-pass-6b1d0e' };
const WRONG = { username: 'old-puller', password: 'stale-pass-91c4aa' };
const API_TOKEN = 'pk-status-token-5e2a7c19';
const TEAM_A_TOKEN = 'pk-team-a-token-0d83b6f2';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

let h: Harness;
let dir: string;
let server: ServerType | undefined;
let base: string;
let browser: Browser | undefined;
const logs: string[] = [];
/** Everything that must never reach the page: passwords, tokens, the Secret's bytes. */
const secrets: string[] = [
  REG.password,
  WRONG.password,
  API_TOKEN,
  TEAM_A_TOKEN,
  Buffer.from(`${REG.username}:${REG.password}`).toString('base64'),
];

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the status page test needs Debian's chromium; run \`bash scripts/setup.sh test\``,
    );
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-extensions',
      '--disable-sync',
      '--no-first-run',
      '--mute-audio',
    ],
  });
}

/** The text as rendered: what a person reads (innerText, not textContent, on purpose). */
async function seen(page: Page, selector: string): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what this test checks
  return page.locator(selector).first().innerText();
}

async function withContext<T>(
  o: { credentials?: { username: string; password: string } },
  fn: (page: Page, ctx: BrowserContext) => Promise<T>,
): Promise<T> {
  const ctx = await browser!.newContext({
    javaScriptEnabled: false,
    viewport: { width: 1200, height: 900 },
    ...(o.credentials ? { httpCredentials: o.credentials } : {}),
  });
  try {
    return await fn(await ctx.newPage(), ctx);
  } finally {
    await ctx.close();
  }
}

describe('status page in headless Chromium', { timeout: 300_000 }, () => {
  before(async () => {
    // Fail first, and loudly, when the browser is not installed.
    browser = await launch();
    dir = await mkdtemp(join(tmpdir(), 'pk-status-page-'));
    h = await startHarness({ cluster: true, registry: { auth: 'htpasswd' }, nodes: 1 });
    await h.registry!.allow(REG.username, REG.password);
    await h.cluster!.createNamespace('team-a-1', { tenant: 'team-a' });
    await h.cluster!.createNamespace('team-b-1', { tenant: 'team-b' });
    const id = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      config: rbacConfigFor([
        { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } } },
        { name: 'team-b', namespaces: { matchLabels: { tenant: 'team-b' } } },
      ]),
    });
    const kubeconfig = join(dir, 'kubeconfig');
    writeTokenKubeconfig(kubeconfig, h.cluster!.info, id.token);
    const node = h.nodes!.info.nodes[0]!;
    // node-gone is pinned like any node, but nothing listens on its port: unreachable.
    const gonePort = await freePort();
    const known = join(dir, 'known_hosts');
    const key = node.hostKeyLine.split(' ').slice(1).join(' ');
    await writeFile(known, `${node.hostKeyLine}\n[127.0.0.1]:${gonePort} ${key}\n`);
    // Expires in 5h 12m (and some seconds, so the countdown still says 12m when the page loads).
    const expiresAt = new Date(Date.now() + (5 * 3600 + 12 * 60 + 55) * 1000).toISOString();
    const config = parseConfig({
      clusters: [{ name: 'test', kubeconfig }],
      registries: [
        {
          name: 'team-reg',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: REG.username },
          password: { value: REG.password },
          expiresAt,
        },
        {
          name: 'stale-reg',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: WRONG.username },
          password: { value: WRONG.password },
        },
      ],
      tenants: [
        { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } }, registries: ['team-reg'] },
        { name: 'team-b', namespaces: { matchLabels: { tenant: 'team-b' } }, registries: ['stale-reg'] },
      ],
      nodes: {
        inventory: [
          { name: node.name, address: node.address },
          { name: 'node-gone', address: '127.0.0.1', port: gonePort },
        ],
        registries: ['team-reg'],
        ssh: {
          privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
          knownHosts: { fromFile: known },
        },
      },
      api: {
        auth: {
          tokens: [
            { name: 'ops', sha256: sha(API_TOKEN), tenants: '*' },
            { name: 'team-a-ci', sha256: sha(TEAM_A_TOKEN), tenants: ['team-a'] },
          ],
        },
      },
    });
    const app = createApp({
      ...apiDeps({ config: async () => config, logger: createLogger({ sink: (l) => logs.push(l) }) }),
    });
    const port = await new Promise<number>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
        resolve(info.port),
      );
    });
    base = `http://127.0.0.1:${port}`;
    // A real refresh through the API: Secrets for team-a, none for team-b (its registry refuses
    // the password), config.json on the reachable node, a failure for the other.
    const res = await fetch(`${base}/v1/refresh`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(120_000),
    });
    const report = (await res.json()) as {
      registries: Array<{ name: string; status: string }>;
      nodes: Array<{ name: string; status: string }>;
    };
    assert.equal(res.status, 502, 'the refresh reports its failures');
    assert.deepEqual(report.registries.map((r) => `${r.name}:${r.status}`).sort(), [
      'stale-reg:failed',
      'team-reg:minted',
    ]);
    assert.deepEqual(
      report.nodes.map((n) => `${n.name}:${n.status}`).sort(),
      [`${node.name}:written`, 'node-gone:failed'].sort(),
    );
    const s = await h.cluster!.admin.core.readNamespacedSecret({
      namespace: 'team-a-1',
      name: 'pullkeeper-team-a',
    });
    secrets.push(s.data!['.dockerconfigjson']!);
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await h?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    const all = logs.join('\n');
    for (const s of secrets) assert.ok(!all.includes(s), 'no secret in the server logs');
  });

  test('without credentials: 401 asking for Basic credentials, a sign-in page, no status', async () => {
    // Headless Chromium has nobody to ask: the challenge ends the navigation.
    await withContext({}, async (page) => {
      await assert.rejects(page.goto(`${base}/`), /ERR_INVALID_AUTH_CREDENTIALS/);
    });
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="pullkeeper status", charset="UTF-8"');
    const text = await res.text();
    assert.match(text, /Sign in to see the pullkeeper status/);
    assert.doesNotMatch(text, /team-a|team-b|node-gone/);
  });

  test('a wrong token: 401 again', async () => {
    await withContext({ credentials: { username: 'me', password: 'pk-not-a-token-1234' } }, async (page) => {
      const res = await page.goto(`${base}/`);
      assert.equal(res?.status(), 401);
    });
  });

  test('signed in with the API token (HTTP Basic, no JavaScript): failures first, in words', async (t) => {
    await withContext({ credentials: { username: 'ops', password: API_TOKEN } }, async (page) => {
      const res = await page.goto(`${base}/`);
      assert.equal(res?.status(), 200);
      assert.match(res?.headers()['content-type'] ?? '', /^text\/html; charset=utf-8$/i);
      assert.equal(res?.headers()['cache-control'], 'no-store');
      const html = await res!.text();
      for (const s of secrets) assert.ok(!html.includes(s), 'no password, token or Secret data in the HTML');
      assert.equal(await page.locator('script').count(), 0);

      // The summary line at the top: stale-reg failed, node-gone failed, team-b's Secret missing.
      assert.equal((await seen(page, '#summary')).trim(), '3 problems');
      const problems = await seen(page, '#problems');
      assert.match(problems, /FAILED\s+Registry stale-reg: verification failed/);
      assert.match(problems, /FAILED\s+Node node-gone: connection refused/);
      assert.match(problems, /MISSING\s+Tenant team-b, namespace team-b-1/);

      const top = async (selector: string) => {
        const box = await page.locator(selector).first().boundingBox();
        assert.ok(box, `${selector} is visible`);
        return box.y;
      };
      const row = (section: string, name: string) => `#${section} tr:has(th:text-is("${name}"))`;
      // Failures above healthy ones: the problems list above everything, then worst-first rows.
      assert.ok((await top('#summary')) < (await top('#problems')));
      assert.ok((await top('#problems')) < (await top('#registries')));
      assert.ok((await top(row('registries', 'stale-reg'))) < (await top(row('registries', 'team-reg'))));
      assert.ok(
        (await top('#tenants h3:has-text("Tenant team-b")')) <
          (await top('#tenants h3:has-text("Tenant team-a")')),
      );
      const nodeName = h.nodes!.info.nodes[0]!.name;
      assert.ok((await top(row('nodes', 'node-gone'))) < (await top(row('nodes', nodeName))));

      // The countdowns, computed by the server.
      assert.match(await seen(page, row('registries', 'team-reg')), /OK\s+.*expires in 5h 1[0-2]m/s);
      const teamA = await seen(page, row('tenants', 'team-a-1'));
      assert.match(teamA, /OK/);
      assert.match(teamA, /expires in 5h 1[0-2]m/);
      assert.match(await seen(page, row('registries', 'stale-reg')), /FAILED/);
      assert.match(await seen(page, row('tenants', 'team-b-1')), /MISSING/);
      assert.match(
        await seen(page, row('nodes', nodeName)),
        new RegExp(`^OK\\s+${nodeName}\\s+written\\s+\\d+s ago`),
      );
      assert.match(
        await seen(page, row('nodes', 'node-gone')),
        /^FAILED\s+node-gone\s+failed\s+\d+s ago\s+\S/,
      );
      assert.match(await seen(page, 'header'), /signed in as token ops/);

      await mkdir(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      t.diagnostic(`screenshot: ${relative(process.cwd(), SCREENSHOT)}`);
    });
  });

  test('a token for one tenant sees that tenant only', async () => {
    await withContext({ credentials: { username: 'ci', password: TEAM_A_TOKEN } }, async (page) => {
      const res = await page.goto(`${base}/`);
      assert.equal(res?.status(), 200);
      const text = await seen(page, 'main');
      assert.match(text, /Tenant team-a/);
      assert.doesNotMatch(text, /team-b|stale-reg/);
    });
  });
});
