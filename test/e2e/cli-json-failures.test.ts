/**
 * The --json promise of both CLIs, command by command (the table covers every
 * command of src/cli/help.ts): whatever fails, stdout holds exactly one JSON
 * document and no stack trace reaches stderr. The failure paths are real: a
 * missing file, a closed port (refused), an address nothing routes to, an
 * apiserver that refuses the identity's verb (403). Each says its real cause:
 * an unreachable cluster never blames RBAC, an unreachable registry never
 * blames the credentials.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PULLKEEPER_CLI, PULLKEEPER_NODE_CLI } from '../../src/cli/help.js';
import { bufferIO } from '../../src/cli/io.js';
import { main as pullkeeper } from '../../src/cli/pullkeeper.js';
import { main as pullkeeperNode } from '../../src/cli/pullkeeper-node.js';
import { type Cluster, startCluster, writeTokenKubeconfig } from '../harness/cluster/index.js';

const dir = mkdtempSync(join(tmpdir(), 'pk-cli-json-'));
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
};
/** A loopback port nothing listens on (refused), and a name that never resolves (RFC 6761 .invalid). */
const CLOSED = 'https://127.0.0.1:1';
const NOWHERE = 'https://api.pullkeeper.invalid:6443';
const PASSWORD = 'json-fail-pass-5e2a';

function kubeconfig(name: string, server: string, token = 'abc') {
  return file(
    name,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
}
function config(name: string, o: { kubeconfig?: string; registry?: string; nodes?: boolean } = {}) {
  return file(
    name,
    JSON.stringify({
      clusters: o.kubeconfig ? [{ name: 'prod', kubeconfig: o.kubeconfig }] : [],
      registries: [
        {
          name: 'reg',
          kind: 'static',
          server: o.registry ?? 'reg.example',
          username: { value: 'u' },
          password: { value: PASSWORD },
          timeoutMs: 3000,
          ...(o.registry ? {} : { verify: false }),
        },
      ],
      tenants: o.kubeconfig ? [{ name: 'a', namespaces: { names: ['team-a'] }, registries: ['reg'] }] : [],
      ...(o.nodes
        ? {
            nodes: {
              inventory: 'kubernetes',
              registries: ['reg'],
              ssh: { privateKey: { value: 'not-a-key' }, timeoutMs: 3000 },
            },
          }
        : {}),
    }),
  );
}

/** A loopback port that was free a moment ago: connecting is refused (fetch blocks low ports like 1 outright). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

let cluster: Cluster;
let registryDown = '';
const cfg: Record<string, string> = {};
before(async () => {
  registryDown = `127.0.0.1:${await closedPort()}`;
  cluster = await startCluster({ dir: join(dir, 'cluster') });
  // An identity with no RBAC at all: every call is 403.
  const id = await cluster.createIdentity({ namespace: 'default', name: 'nobody', rbac: [] });
  cfg.refused = config('refused.json', { kubeconfig: kubeconfig('refused.kc', CLOSED), nodes: true });
  cfg.nowhere = config('nowhere.json', { kubeconfig: kubeconfig('nowhere.kc', NOWHERE), nodes: true });
  const forbiddenKc = join(dir, 'forbidden.kc');
  writeTokenKubeconfig(forbiddenKc, cluster.info, id.token);
  cfg.forbidden = config('forbidden.json', { kubeconfig: forbiddenKc, nodes: true });
  cfg.registryDown = config('registry-down.json', { registry: registryDown });
  cfg.invalid = file('invalid.yaml', 'registries: [{ name: x, kind: nope }]\n');
  cfg.pod = file(
    'pod.yaml',
    'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: c, image: busybox }] }\n',
  );
});
after(() => cluster?.stop());

interface Case {
  argv: string[];
  /** Expected exit code. */
  exit: number;
  /** What the error document's message (or the report) must say. */
  says?: RegExp;
  /** What it must not say (the wrong cause). */
  not?: RegExp;
}
const missing = join(dir, 'missing.yaml');
const RBAC = /RBAC|rbac\.yaml|pullkeeper rbac|ClusterRole|forbidden/i;
/** Blaming the credentials (naming which ones were tried is fine). */
const CREDENTIALS_BLAMED =
  /refused the (credential|issued token)|check .*(user|password)|wrong password|unauthori[sz]ed/i;

/** Per command (the help table's keys), its failure paths. `c()` fills in configs made in before(). */
const PULLKEEPER_CASES: Record<string, (c: typeof cfg) => Case[]> = {
  image: () => [{ argv: ['image', 'UPPER/Case:tag'], exit: 1, says: /./ }],
  creds: () => [{ argv: ['creds', 'busybox', '--secret', missing], exit: 1, says: /missing\.yaml/ }],
  mint: (c) => [
    { argv: ['mint', '--config', missing], exit: 2, says: /missing\.yaml/ },
    {
      argv: ['mint', '--config', c.registryDown!],
      exit: 1,
      says: /cannot reach .*ECONNREFUSED/,
      not: CREDENTIALS_BLAMED,
    },
  ],
  'config check': (c) => [
    { argv: ['config', 'check', missing], exit: 2, says: /missing\.yaml/ },
    { argv: ['config', 'check', c.invalid!], exit: 2, says: /registries\[0\]/ },
  ],
  refresh: (c) => [{ argv: ['refresh', '--config', c.refused!], exit: 1, says: /ECONNREFUSED/, not: RBAC }],
  ensure: (c) => [
    { argv: ['ensure', 'team-a', '--config', c.refused!], exit: 1, says: /ECONNREFUSED/, not: RBAC },
    {
      argv: ['ensure', 'team-a', '--config', c.nowhere!, '--timeout', '10'],
      exit: 1,
      says: /not reachable from here/,
      not: RBAC,
    },
    {
      argv: ['ensure', 'team-a', '--config', c.forbidden!],
      exit: 1,
      says: /forbidden \(403\).*pullkeeper rbac/,
    },
    { argv: ['ensure', '--config', c.refused!], exit: 2, says: /one namespace/ },
  ],
  doctor: (c) => [
    { argv: ['doctor', '--config', c.refused!], exit: 1, says: /ECONNREFUSED/, not: RBAC },
    {
      argv: ['doctor', '--config', c.registryDown!],
      exit: 1,
      says: /could not be reached/,
      not: CREDENTIALS_BLAMED,
    },
    { argv: ['doctor', '--config', c.forbidden!], exit: 1, says: /403/ },
  ],
  rbac: (c) => [
    { argv: ['rbac', '--config', missing], exit: 2, says: /missing\.yaml/ },
    {
      argv: ['rbac', '--config', c.refused!, '--cluster', 'nope'],
      exit: 1,
      says: /pass one of those to --cluster/,
    },
    {
      argv: ['rbac', '--config', c.refused!, '--service-account', 'no-slash'],
      exit: 1,
      says: /expected NAMESPACE\/NAME/,
    },
    {
      argv: ['rbac', '--config', c.refused!, '--service-account', 'a/b', '--user', 'u'],
      exit: 2,
      says: /not both/,
    },
  ],
  serve: () => [{ argv: ['serve', '--config', missing], exit: 2, says: /missing\.yaml/ }],
  push: (c) => [
    { argv: ['push', '--config', c.refused!, '--check'], exit: 1, says: /ECONNREFUSED/, not: RBAC },
    {
      argv: ['push', '--config', c.forbidden!, '--check'],
      exit: 1,
      says: /forbidden \(403\).*pullkeeper-inventory/,
    },
    { argv: ['push', '--config', c.registryDown!], exit: 2, says: /no "nodes" section/ },
  ],
  demo: () => [],
  status: () => [],
  version: () => [],
  help: () => [{ argv: ['help', 'nope'], exit: 2, says: /nope/ }],
  completion: () => [{ argv: ['completion', 'tcsh'], exit: 2, says: /bash, zsh, fish/ }],
};
const NODE_CASES: Record<string, (c: typeof cfg) => Case[]> = {
  pull: () => [
    { argv: ['pull', 'UPPER/Case'], exit: 4, says: /InvalidImageName/ },
    {
      argv: ['pull', `${registryDown}/x:1`, '--state-dir', join(dir, 'store')],
      exit: 1,
      says: /connection refused.*ECONNREFUSED/,
      not: CREDENTIALS_BLAMED,
    },
  ],
  images: () => [],
  gc: () => [],
  // Always JSON on stdout for kubelet: it takes no --json flag, and saying so is one JSON document.
  'credential-provider': () => [{ argv: ['credential-provider'], exit: 2, says: /Unknown option '--json'/ }],
  run: (c) => [
    { argv: ['run', 'missing.yaml'], exit: 1, says: /missing\.yaml: no such file/ },
    { argv: ['run', c.pod!, '--node-config', missing], exit: 1, says: /missing\.yaml/ },
  ],
  stop: () => [{ argv: ['stop', 'ghost', '--state-dir', join(dir, 'pods')], exit: 1, says: /ghost/ }],
  describe: () => [{ argv: ['describe', 'ghost', '--state-dir', join(dir, 'pods')], exit: 1, says: /ghost/ }],
  ps: () => [],
  logs: () => [{ argv: ['logs', 'ghost', '--state-dir', join(dir, 'pods')], exit: 1, says: /ghost/ }],
  // A long-lived process with logs only: --json is refused as one JSON document.
  daemon: () => [{ argv: ['daemon', '--node-config', missing], exit: 2, says: /Unknown option '--json'/ }],
  version: () => [],
  help: () => [{ argv: ['help', 'nope'], exit: 2, says: /nope/ }],
  completion: () => [{ argv: ['completion', 'tcsh'], exit: 2, says: /bash, zsh, fish/ }],
};

async function runJson(cli: typeof pullkeeper, argv: string[]) {
  const io = bufferIO();
  const code = await cli([...argv, '--json'], io);
  const stdout = io.stdout.join('\n');
  const stderr = io.stderr.join('\n');
  let doc: unknown;
  assert.doesNotThrow(
    () => {
      doc = JSON.parse(stdout);
    },
    `stdout is one JSON document: ${JSON.stringify(stdout.slice(0, 300))}`,
  );
  assert.doesNotMatch(stderr, /^\s+at .+:\d+:\d+\)?$/m, `no stack trace on stderr:\n${stderr}`);
  assert.ok(!`${stdout}${stderr}`.includes(PASSWORD), 'no secret in the output');
  return { code, doc, text: `${JSON.stringify(doc)}\n${stderr}` };
}

for (const [cliName, cli, help, cases] of [
  ['pullkeeper', pullkeeper, PULLKEEPER_CLI, PULLKEEPER_CASES],
  ['pullkeeper-node', pullkeeperNode, PULLKEEPER_NODE_CLI, NODE_CASES],
] as const) {
  describe(`${cliName} --json on failure`, { timeout: 180_000 }, () => {
    test('the table covers every command of the help table', () => {
      assert.deepEqual(Object.keys(cases).sort(), Object.keys(help.commands).sort());
    });
    for (const command of Object.keys(help.commands)) {
      test(`${command}: an unknown flag is a usage error as one JSON document`, async () => {
        const r = await runJson(cli, [...command.split(' '), '--no-such-flag']);
        assert.equal(r.code, 2);
        assert.equal((r.doc as { error?: { exitCode?: number } }).error?.exitCode, 2);
      });
      test(`${command}: its failure paths, each one JSON document with the real cause`, async () => {
        for (const c of cases[command]!(cfg)) {
          const r = await runJson(cli, c.argv);
          assert.equal(r.code, c.exit, `${c.argv.join(' ')}: exit code\n${r.text}`);
          if (c.says) assert.match(r.text, c.says, c.argv.join(' '));
          if (c.not) assert.doesNotMatch(r.text, c.not, `${c.argv.join(' ')}: the wrong cause`);
        }
      });
    }
  });
}
