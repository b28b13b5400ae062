/**
 * The CloudFormation template `serverless package` builds (offline, no AWS
 * credentials), read as CloudFormation would: the functions find the stack's
 * own fan-out queue, the threshold and the worker cap are stack parameters,
 * and each role may do exactly its side of the queue. One packaging run
 * (~1-2 min) serves every check.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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
let resources: Record<string, Resource> = {};

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
    const out = join(dir, 'artifacts');
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
