/**
 * `make demo ARGS=--once` as CI runs it: the demo brings up the local stack,
 * runs every use case against serverless offline, stops, and exits 0 with a
 * report line per use case; nothing of it is left on the machine.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'demo/run.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 540_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('make demo --once: every use case works on the local stack and nothing is left behind', {
  timeout: 600_000,
}, async (t) => {
  const r = await runDemo(['--once']);
  t.diagnostic(`demo output:\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /serverless offline \(the Lambda bundles\) on http:\/\/127\.0\.0\.1:\d+/);
  // The refresh CI triggers through the API, reported per registry, tenant namespace and node.
  for (const re of [
    /POST \/v1\/refresh \{\}: 200/,
    /report: registry team-a-registry: minted, login verified/,
    /report: registry team-b-acr: minted, login verified/,
    /report: tenant team-a namespace team-a-prod: secret created, serviceAccounts patched/,
    /report: tenant team-b namespace team-b-prod: secret created, serviceAccounts patched/,
    /report: node node-1: written/,
    /report: node node-3: written/,
  ])
    assert.match(out, re);
  assert.match(out, /use case 1 ok: pod team-a-prod\/app Running on node-1 .*PostStart hook ran/);
  assert.match(out, /log app: team-a app up: image of team-a, PostStart hook ran at \d\d:\d\d:\d\d/);
  assert.match(out, /log agent: platform agent up: image of platform/);
  assert.match(out, /node-1 image store: 127\.0\.0\.1:\d+\/team-a\/app:v1/);
  assert.match(out, /use case 2 ok: pod team-b-prod\/borrow refused on node-1 \(.*HTTP 401\)/);
  assert.match(out, /before the refresh, a pull on node-2 fails: .*HTTP 401/);
  assert.match(out, /report: tenant team-a namespace team-a-prod: secret updated/);
  assert.match(
    out,
    /use case 3 ok: Secrets rotated in team-a-dev, team-a-prod; pod team-a-prod\/after-refresh Running/,
  );
  assert.match(out, /status page ok: http:\/\/127\.0\.0\.1:\d+\/ \(200/);
  assert.match(out, /all use cases ok in [\d.]+ s\. Status page: http:\/\/127\.0\.0\.1:\d+\//);
  const dir = /stopped: nothing left behind \((\S+) removed/.exec(out)?.[1];
  assert.ok(dir, 'the demo says it stopped cleanly');
  assert.equal(existsSync(dir), false, `${dir} is gone`);
  // No secret in what the demo prints: the passwords live only in files under its (removed) dir.
  assert.doesNotMatch(out + r.stderr, /pk_demo_/);
});

test('make demo without --once stays up with a working status page until Ctrl-C, then stops cleanly', {
  timeout: 300_000,
}, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/run.ts', '--api', 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        if (stdout.includes('Ctrl-C stops everything')) resolve();
      });
      child.on('close', () => reject(new Error(`the demo exited before it was up:\n${stdout}\n${stderr}`)));
    });
    const url = /Status page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout)![1]!;
    const passwordFile = /the password is in (\S+)\)/.exec(stdout)![1]!;
    const password = readFileSync(passwordFile, 'utf8');
    const page = await fetch(url, {
      headers: { authorization: `Basic ${Buffer.from(`me:${password}`).toString('base64')}` },
    });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /team-a-prod/);
    assert.ok(!html.includes(password), 'the page does not show the token');
    assert.equal((await fetch(url)).status, 401, 'no page without the token');
  } finally {
    child.kill('SIGINT');
  }
  const code = await exited;
  t.diagnostic(stdout.split('\n').slice(-3).join('\n'));
  assert.equal(code, 0, stderr);
  const dir = /stopped: nothing left behind \((\S+) removed/.exec(stdout)?.[1];
  assert.ok(dir, `the demo says it stopped cleanly:\n${stdout.slice(-800)}\n${stderr}`);
  assert.equal(existsSync(dir), false);
});

test('the demo rejects bad arguments with exit 2 and the usage', async () => {
  const r = await runDemo(['--api', 'docker']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--api is offline or serve, not docker/);
  const u = await runDemo(['--bogus']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /Usage: npm run demo/);
});
