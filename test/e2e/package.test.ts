/**
 * The package as users install it: `npm pack` (prepack builds dist/), then
 * `npm install --omit=dev ./pullkeeper-0.1.0.tgz` into an empty directory, then
 * both CLIs run from node_modules/.bin without a TypeScript loader: every
 * command's --help, --version, `pullkeeper image`, the kubelet credential
 * provider answering from a file, and `pullkeeper mint` against moto's ECR
 * (a cloud SDK loaded lazily from a bundled chunk).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PULLKEEPER_CLI, PULLKEEPER_NODE_CLI } from '../../src/cli/help.js';
import { VERSION } from '../../src/version.js';
import { type MotoComponent, motoEcrRegistry, startMoto } from '../harness/cloud/moto.js';
import { type RunOptions, run } from '../harness/proc.js';

const REPO = join(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'pk-package-'));
const app = join(dir, 'app');
const bin = (name: string) => join(app, 'node_modules/.bin', name);
let moto: MotoComponent | undefined;

/** Runs a command to completion (spawn, never spawnSync: moto answers while it runs); fails with its stderr. */
async function ok(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return (await run(cmd, args, { cwd: dir, ...opts })).stdout;
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
        registries: [motoEcrRegistry(moto!.info)],
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
