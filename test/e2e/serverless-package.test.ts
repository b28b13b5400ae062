/**
 * The CloudFormation template `serverless package` builds (offline, no AWS
 * credentials), read as CloudFormation would: the functions find the stack's
 * own fan-out queue, the threshold and the worker cap are stack parameters,
 * and each role may do exactly its side of the queue; and each function's
 * artifact holds only what its bundle can load (issue 22). One packaging run
 * serves every check.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

interface Resource {
  Type: string;
  Properties: Record<string, unknown> & {
    Environment?: { Variables: Record<string, unknown> };
    Role?: unknown;
    Policies?: Array<{ PolicyDocument: { Statement: Statement[] } }>;
  };
}
interface Statement {
  Effect: string;
  Action: string[];
  Resource: unknown;
}

const dir = mkdtempSync(join(tmpdir(), 'pk-sls-package-'));
const out = join(dir, 'artifacts');
let resources: Record<string, Resource> = {};
const FUNCTIONS = ['api', 'refresh', 'worker'];
/** A name each shipped SDK must export (what our code takes from it). */
const EXPORTS: Record<string, string> = {
  '@aws-sdk/client-ecr': 'ECRClient',
  '@aws-sdk/client-ecr-public': 'ECRPUBLICClient',
  '@aws-sdk/client-eks': 'EKSClient',
  '@aws-sdk/client-secrets-manager': 'SecretsManagerClient',
  '@aws-sdk/client-sqs': 'SQSClient',
  '@aws-sdk/client-ssm': 'SSMClient',
  '@aws-sdk/client-sts': 'STSClient',
  '@aws-sdk/credential-provider-node': 'defaultProvider',
  '@google-cloud/artifact-registry': 'ArtifactRegistryClient',
  'google-auth-library': 'GoogleAuth',
  '@azure/identity': 'ClientSecretCredential',
  '@azure/container-registry': 'ContainerRegistryClient',
  ssh2: 'Client',
  jose: 'jwtVerify',
  '@smithy/signature-v4': 'SignatureV4',
};

/** Spawned and awaited (never spawnSync): the whole output is kept for the failure message. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => {
      out += c;
    });
    p.stderr.on('data', (c) => {
      out += c;
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

const QUEUE_REF = { Ref: 'FanoutQueue' };
const QUEUE_ARN = { 'Fn::GetAtt': ['FanoutQueue', 'Arn'] };

function byType(type: string): Array<[string, Resource]> {
  return Object.entries(resources).filter(([, r]) => r.Type === type);
}
function role(fn: string): Statement[] {
  const f = resources[fn]!;
  const name = (f.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
  return resources[name]!.Properties.Policies!.flatMap((p) => p.PolicyDocument.Statement);
}
function actionsOn(statements: Statement[], resource: unknown): string[] {
  return statements
    .filter((s) => s.Effect === 'Allow' && JSON.stringify(s.Resource) === JSON.stringify(resource))
    .flatMap((s) => s.Action)
    .sort();
}
const sqsActions = (statements: Statement[]) =>
  statements.flatMap((s) => s.Action).filter((a) => a.startsWith('sqs:'));

describe('serverless package: the stack wires its own fan-out', { timeout: 600_000 }, () => {
  before(async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
    };
    // The deployer's environment must not matter: the queue comes from the stack.
    delete env.PULLKEEPER_FANOUT_QUEUE_URL;
    delete env.PULLKEEPER_FANOUT_MIN_TENANTS;
    const r = await run(
      process.execPath,
      [
        'node_modules/serverless/bin/serverless.js',
        'package',
        '--package',
        out,
        // A stack parameter set on the command line, as docs/deploy.md shows.
        '--param=fanoutMinTenants=75',
      ],
      env,
    );
    assert.equal(r.code, 0, `serverless package failed:\n${r.out.slice(-4000)}`);
    resources = JSON.parse(await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8'))
      .Resources as Record<string, Resource>;
  });

  test('every function reads the stack queue (Ref FanoutQueue) and the threshold parameter', () => {
    const fns = byType('AWS::Lambda::Function');
    assert.deepEqual(fns.map(([k]) => k).sort(), [
      'ApiLambdaFunction',
      'RefreshLambdaFunction',
      'WorkerLambdaFunction',
    ]);
    for (const [name, f] of fns) {
      const vars = f.Properties.Environment!.Variables;
      assert.deepEqual(vars.PULLKEEPER_FANOUT_QUEUE_URL, QUEUE_REF, `${name}: the queue URL`);
      assert.equal(vars.PULLKEEPER_FANOUT_MIN_TENANTS, '75', `${name}: --param reaches the function`);
    }
  });

  test('the queue has a dead-letter queue; the worker is its SQS consumer with partial failures and a concurrency cap', () => {
    const q = resources.FanoutQueue!.Properties as {
      RedrivePolicy: { deadLetterTargetArn: unknown; maxReceiveCount: number };
      VisibilityTimeout: number;
    };
    assert.deepEqual(q.RedrivePolicy.deadLetterTargetArn, { 'Fn::GetAtt': ['FanoutDeadLetters', 'Arn'] });
    assert.equal(q.RedrivePolicy.maxReceiveCount, 5);
    const worker = resources.WorkerLambdaFunction!.Properties as { Timeout: number };
    assert.ok(q.VisibilityTimeout >= 6 * worker.Timeout, 'visibility timeout at least 6x the worker timeout');
    const maps = byType('AWS::Lambda::EventSourceMapping');
    assert.equal(maps.length, 1, 'one event source: the queue');
    const m = maps[0]![1].Properties as Record<string, unknown>;
    assert.deepEqual(m.EventSourceArn, QUEUE_ARN);
    assert.deepEqual(m.FunctionName, { 'Fn::GetAtt': ['WorkerLambdaFunction', 'Arn'] });
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.deepEqual(m.ScalingConfig, { MaximumConcurrency: 5 }, 'the workerMaxConcurrency default');
  });

  test('IAM: the scheduler may send, the worker may receive and delete, the API neither', () => {
    assert.deepEqual(actionsOn(role('RefreshLambdaFunction'), QUEUE_ARN), ['sqs:SendMessage']);
    assert.deepEqual(sqsActions(role('RefreshLambdaFunction')), ['sqs:SendMessage'], 'refresh: nothing else');
    const w = actionsOn(role('WorkerLambdaFunction'), QUEUE_ARN);
    for (const a of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'])
      assert.ok(w.includes(a), `worker may ${a}`);
    assert.ok(!sqsActions(role('WorkerLambdaFunction')).includes('sqs:SendMessage'), 'worker cannot enqueue');
    assert.deepEqual(sqsActions(role('ApiLambdaFunction')), [], 'the API touches no queue');
  });
});

/** The packages a bundle `require`s (not Node's own, not relative paths). */
function requiredPackages(bundle: string): string[] {
  const names = new Set<string>();
  for (const m of bundle.matchAll(/require\("([^"./][^"]*)"\)/g)) {
    const spec = m[1]!;
    if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
    names.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  }
  return [...names].sort();
}

describe('serverless package: lean per-function artifacts', { timeout: 600_000 }, () => {
  for (const fn of FUNCTIONS)
    test(`${fn}: no type packages, maps or packages its bundle cannot load; each one it can load is there and loads`, async () => {
      const zip = join(out, `${fn}.zip`);
      const to = join(dir, 'unpacked', fn);
      await mkdir(to, { recursive: true });
      const unzip = await run('unzip', ['-q', '-o', zip, '-d', to], process.env);
      assert.equal(unzip.code, 0, unzip.out);
      const list = await run('unzip', ['-Z1', zip], process.env);
      const files = list.out.split('\n').filter((f) => f && !f.endsWith('/'));
      assert.ok(files.includes(`functions/${fn}.js`), `${fn}: the bundle is at the handler's path`);
      assert.deepEqual(
        files.filter((f) => /(^|\/)@types\/|\.d\.[cm]?ts$|\.map$|\.npmrc$|(^|\/)package-lock\.json$/.test(f)),
        [],
        `${fn}: no type declarations, source maps or npm files`,
      );
      const shipped = [
        ...new Set(
          files
            .filter((f) => f.startsWith('node_modules/'))
            .map((f) =>
              f
                .split('/')
                .slice(1, f.split('/')[1]!.startsWith('@') ? 3 : 2)
                .join('/'),
            ),
        ),
      ].sort();
      const bundle = await readFile(join(to, 'functions', `${fn}.js`), 'utf8');
      // A package loaded with a real import() would see only `default` of a one-file CommonJS package.
      assert.doesNotMatch(bundle, /\bimport\("[^"./]/, `${fn}: packages are loaded with require()`);
      const needed = requiredPackages(bundle).filter((p) => !['cpu-features'].includes(p));
      // Exactly the packages the bundle can require: nothing more (client-node, type packages,
      // another function's SDK), nothing less (a require that would fail on Lambda).
      assert.deepEqual(shipped, needed, `${fn}: node_modules holds exactly what the bundle requires`);
      assert.ok(!shipped.includes('@kubernetes/client-node'), `${fn}: no client-node`);
      for (const p of shipped) {
        const files = (await run('unzip', ['-Z1', zip, `node_modules/${p}/*`], process.env)).out
          .split('\n')
          .filter(Boolean);
        assert.deepEqual(
          files.sort(),
          [`node_modules/${p}/index.js`, `node_modules/${p}/package.json`],
          `${p}: one file`,
        );
        assert.ok(EXPORTS[p], `${p}: a package the test knows (add it to EXPORTS)`);
      }
      // Each shipped SDK loads from the artifact alone (outside the repository: no fallback to its
      // node_modules) and has the export the code takes from it.
      const req = createRequire(join(to, 'functions', `${fn}.js`));
      for (const p of shipped) {
        const path = req.resolve(p);
        assert.ok(path.startsWith(to), `${p} resolves inside the artifact (${path})`);
        const check = await run(
          process.execPath,
          [
            '-e',
            `const m = require(${JSON.stringify(path)}); if (typeof m[${JSON.stringify(EXPORTS[p])}] !== 'function') { console.error(Object.keys(m).slice(0, 9)); process.exit(1); }`,
          ],
          process.env,
        );
        assert.equal(check.code, 0, `${p}: exports ${EXPORTS[p]} (${check.out})`);
      }
      const size = (await Promise.all(files.map((f) => stat(join(to, f))))).reduce((a, s) => a + s.size, 0);
      assert.ok(size < 50 * 1024 * 1024, `${fn}: unpacked ${size} bytes, far under Lambda's 250 MB`);
    });
});
