/**
 * pullkeeper doctor against real parts: a missing secret reference, a registry
 * whose credential does not log in, a tenant namespace without an RBAC verb, an
 * unreachable node and a node whose host key changed: each reported with its fix.
 * The missing IAM action comes from an ECR endpoint that answers as AWS does
 * when the role lacks ecr:GetAuthorizationToken (moto does not enforce IAM by
 * default): the documented awsJson1_1 AccessDeniedException.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DoctorFinding } from '../../src/app/doctor.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { rbacConfigFor, writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

let h: Harness;
let iamDenied: Server;
const deniedCalls: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'pk-doctor-'));
const REG = { username: 'doc', password: 'doctor-pass-1f0e' };

before(async () => {
  iamDenied = createServer((req, res) => {
    deniedCalls.push(String(req.headers['x-amz-target']));
    req.resume();
    req.on('end', () => {
      res.writeHead(400, {
        'content-type': 'application/x-amz-json-1.1',
        'x-amzn-requestid': 'b3f1c6a0-0000-4000-8000-000000000000',
        'x-amzn-errortype':
          'AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/',
      });
      res.end(
        JSON.stringify({
          __type: 'AccessDeniedException',
          message:
            'User: arn:aws:sts::123456789012:assumed-role/pullkeeper-refresh/pullkeeper is not authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action',
        }),
      );
    });
  });
  await new Promise<void>((ok) => iamDenied.listen(0, '127.0.0.1', ok));
  const iamPort = (iamDenied.address() as { port: number }).port;
  process.env.AWS_ACCESS_KEY_ID ??= 'AKIDEXAMPLEDOCTOR';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'doctor-test-not-a-secret';
  h = await startHarness({ cluster: true, registry: { auth: 'htpasswd' }, nodes: 3 });
  await h.registry!.allow(REG.username, REG.password);
  for (const n of ['doc-a', 'doc-b']) await h.cluster!.createNamespace(n, { tenant: 'doc' });
  // `pullkeeper rbac --per-namespace`, bound in doc-a only: doc-b lacks every tenant verb.
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pk-doc',
    rbac: 'pullkeeper',
    tenantNamespaces: ['doc-a'],
    config: rbacConfigFor([{ name: 'doc', namespaces: { matchLabels: { tenant: 'doc' } } }]),
  });
  const kubeconfig = writeTokenKubeconfig(join(dir, 'kubeconfig'), h.cluster!.info, id.token);
  const known = join(dir, 'known_hosts');
  writeFileSync(known, `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
  await h.nodes!.stopSshd('node-2');
  await h.nodes!.rotateHostKey('node-3');
  writeFileSync(
    join(dir, 'pk.json'),
    JSON.stringify({
      clusters: [{ name: 'test', kubeconfig }],
      registries: [
        {
          name: 'good',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: REG.username },
          password: { value: REG.password },
        },
        {
          name: 'wrong',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: REG.username },
          password: { value: 'not-it-000' },
        },
        {
          name: 'no-iam',
          kind: 'ecr',
          region: 'us-east-1',
          endpoint: `http://127.0.0.1:${iamPort}`,
          registryIds: ['123456789012'],
        },
        {
          name: 'unset',
          kind: 'static',
          server: 'x.test',
          username: { value: 'u' },
          password: { fromEnv: 'PK_DOCTOR_UNSET' },
          verify: false,
        },
      ],
      tenants: [{ name: 'doc', namespaces: { matchLabels: { tenant: 'doc' } }, registries: ['good'] }],
      nodes: {
        inventory: h.nodes!.info.nodes.map((n) => ({ name: n.name, address: n.address })),
        registries: ['good'],
        ssh: {
          privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
          knownHosts: { fromFile: known },
          timeoutMs: 3000,
        },
      },
    }),
  );
});
after(async () => {
  iamDenied?.close();
  await h?.stop();
});

test('each broken piece is reported with its fix; the working ones say ok; exit 1', {
  timeout: 120_000,
}, async () => {
  const io = bufferIO();
  const code = await main(['doctor', '--config', join(dir, 'pk.json'), '--json'], io);
  assert.equal(code, 1, io.stderr.join('\n'));
  const { ok, findings } = JSON.parse(io.stdout.join('\n')) as {
    ok: boolean;
    findings: DoctorFinding[];
  };
  assert.equal(ok, false);
  const find = (area: string, subject: RegExp) => {
    const f = findings.find((x) => x.area === area && subject.test(x.subject));
    assert.ok(
      f,
      `no ${area} finding for ${subject}: ${JSON.stringify(findings.map((x) => [x.area, x.subject]))}`,
    );
    return f;
  };
  const unset = find('secret', /fromEnv PK_DOCTOR_UNSET/);
  assert.equal(unset.ok, false);
  assert.match(unset.fix!, /export the variable/);
  assert.equal(find('registry', /^good /).ok, true);
  const wrong = find('registry', /^wrong /);
  assert.equal(wrong.ok, false);
  assert.match(wrong.detail, /refused the credential/);
  assert.match(wrong.fix!, /did not log in/);
  const iam = find('registry', /^no-iam /);
  assert.equal(iam.ok, false);
  assert.match(iam.detail, /access denied: the identity needs ecr:GetAuthorizationToken/);
  assert.match(iam.fix!, /add the named IAM action to the function role \(infra\/aws\/iam.yml\)/);
  assert.deepEqual(
    deniedCalls,
    ['AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken'],
    'a permission error is not retried',
  );
  assert.equal(find('cluster', /namespace doc-a/).ok, true);
  const b = find('cluster', /namespace doc-b/);
  assert.equal(b.ok, false);
  assert.match(
    b.detail,
    /not allowed: list secrets\/pullkeeper-doc, create secrets, patch secrets\/pullkeeper-doc/,
  );
  assert.match(b.fix!, /RoleBinding/);
  const access = find('cluster', /^test Secret access$/);
  assert.equal(access.warning, undefined, `least privilege: ${access.detail}`);
  const store = find('cluster', /status store pullkeeper-system\/pullkeeper-status/);
  assert.equal(store.ok, true, store.detail);
  assert.equal(find('node', /^node-1 /).ok, true);
  const down = find('node', /^node-2 /);
  assert.equal(down.ok, false);
  assert.match(down.fix!, /sshd runs on the node/);
  const rekeyed = find('node', /^node-3 /);
  assert.equal(rekeyed.ok, false);
  assert.match(rekeyed.fix!, /update the pin/);
  const text = io.stdout.join('\n') + io.stderr.join('\n');
  assert.ok(!text.includes(REG.password) && !text.includes('not-it-000'), 'no secret in the report');
});
