/**
 * The package as users install it: `npm pack` (prepack builds dist/), then
 * `npm install --omit=dev ./pullkeeper-0.1.0.tgz` into an empty directory, then
 * both CLIs run from node_modules/.bin without a TypeScript loader: every
 * command's --help, --version, `pullkeeper image`, the kubelet credential
 * provider answering from a file, and `pullkeeper mint` against moto's ECR
 * (a cloud SDK loaded lazily from a bundled chunk).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PULLKEEPER_CLI, PULLKEEPER_NODE_CLI } from '../../src/cli/help.js';
import { VERSION } from '../../src/version.js';
import { type MotoComponent, startMoto } from '../harness/cloud/moto.js';

const REPO = join(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'pk-package-'));
const app = join(dir, 'app');
const bin = (name: string) => join(app, 'node_modules/.bin', name);
let moto: MotoComponent | undefined;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (spawn, never spawnSync: moto answers while it runs). */
function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? dir,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

async function ok(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

// The bins are `#!/usr/bin/env node` scripts: Node 24 (this process's) first on PATH.
const env = { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env.PATH ?? ''}` };

before(
  async () => {
    const [started] = await Promise.all([
      startMoto({ dir }),
      ok('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: REPO, timeoutMs: 300_000 }),
    ]);
    moto = started;
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    assert.equal(tgz, `pullkeeper-${VERSION}.tgz`);
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), '{"name":"pk-user","private":true}\n');
    await ok(
      'npm',
      [
        'install',
        '--omit=dev',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--loglevel=error',
        join(dir, tgz!),
      ],
      { cwd: app, timeoutMs: 600_000 },
    );
  },
  { timeout: 900_000 },
);
after(async () => {
  await moto?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('npm pack, then npm install --omit=dev of the tarball', { timeout: 600_000 }, () => {
  test('the package ships compiled JavaScript and no TypeScript loader', () => {
    const pkg = join(app, 'node_modules/pullkeeper');
    assert.ok(existsSync(join(pkg, 'dist/pullkeeper.mjs')));
    assert.ok(existsSync(join(pkg, 'dist/pullkeeper-node.mjs')));
    assert.ok(!existsSync(join(pkg, 'src')), 'the TypeScript source is not in the package');
    assert.ok(!existsSync(join(app, 'node_modules/tsx')), 'tsx is installed: it must be a devDependency');
    assert.ok(!existsSync(join(app, 'node_modules/typescript')));
  });

  test('--version of both CLIs', async () => {
    assert.equal((await ok(bin('pullkeeper'), ['--version'], { env })).trim(), VERSION);
    assert.equal((await ok(bin('pullkeeper-node'), ['--version'], { env })).trim(), VERSION);
  });

  test("every command's --help", async () => {
    for (const [cli, table] of [
      ['pullkeeper', PULLKEEPER_CLI],
      ['pullkeeper-node', PULLKEEPER_NODE_CLI],
    ] as const) {
      for (const name of Object.keys(table.commands)) {
        const out = await ok(bin(cli), [...name.split(' '), '--help'], { env });
        assert.match(out, new RegExp(`${cli} ${name}`), `${cli} ${name} --help`);
      }
    }
  });

  test('pullkeeper image nginx', async () => {
    const out = JSON.parse(await ok(bin('pullkeeper'), ['image', 'nginx'], { env }));
    assert.equal(out.name, 'docker.io/library/nginx');
    assert.equal(out.criImage, 'nginx:latest');
    assert.equal(out.defaultPullPolicy, 'Always');
  });

  test('pullkeeper-node credential-provider answers from a file', async () => {
    const creds = join(dir, 'credentials.json');
    const auth = Buffer.from('robot:pk-package-test-password').toString('base64');
    writeFileSync(creds, JSON.stringify({ auths: { 'registry.example.com': { auth } } }));
    const request = JSON.stringify({
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      kind: 'CredentialProviderRequest',
      image: 'registry.example.com/team/app:1.0',
    });
    const out = JSON.parse(
      await ok(bin('pullkeeper-node'), ['credential-provider', '--credentials', creds], {
        env,
        input: request,
      }),
    );
    assert.equal(out.kind, 'CredentialProviderResponse');
    assert.deepEqual(out.auth, {
      'registry.example.com': { username: 'robot', password: 'pk-package-test-password' },
    });
  });

  test('pullkeeper mint loads the AWS SDK from its bundled chunk and mints from moto', async () => {
    const config = join(dir, 'pullkeeper.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        registries: [
          {
            name: 'ecr',
            kind: 'ecr',
            region: 'us-east-1',
            endpoint: moto!.info.endpoint,
            registryIds: [moto!.info.accountId],
            verify: false,
          },
        ],
      }),
    );
    const out = await ok(bin('pullkeeper'), ['mint', '--config', config, '--json'], {
      env: { ...env, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' },
    });
    const report = JSON.parse(out);
    assert.equal(report.registries[0].status, 'minted', report.registries[0].error);
    assert.ok(!out.includes(`${moto!.info.accountId}-auth-token`), 'the token is not printed');
  });
});
