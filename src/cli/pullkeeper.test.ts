import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TenantReport } from '../app/refresh.js';
import { VERSION } from '../version.js';
import { PULLKEEPER } from './help.js';
import { bufferIO } from './io.js';
import { main } from './pullkeeper.js';
import { tenantProgress } from './refresh-command.js';
import { isLoopbackHost } from './serve-command.js';

const dir = mkdtempSync(join(tmpdir(), 'pk-cli-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const SECRET_PASSWORD = 'cli-test-password-7d1f';
const quaySecret = file(
  'quay-secret.yaml',
  [
    'apiVersion: v1',
    'kind: Secret',
    'metadata: { name: quay }',
    'type: kubernetes.io/dockerconfigjson',
    'data:',
    `  .dockerconfigjson: ${Buffer.from(JSON.stringify({ auths: { 'quay.io': { username: 'robot', password: SECRET_PASSWORD } } })).toString('base64')}`,
  ].join('\n'),
);
const coreosSecret = file(
  'coreos.json',
  JSON.stringify({ auths: { 'quay.io/coreos': { username: 'coreos', password: SECRET_PASSWORD } } }),
);
const nodeConfig = file(
  'config.json',
  JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from(`hub:${SECRET_PASSWORD}`).toString('base64') },
    },
  }),
);
const legacy = file(
  '.dockercfg',
  JSON.stringify({ 'quay.io': { username: 'legacy', password: SECRET_PASSWORD } }),
);

async function cli(...argv: string[]) {
  const io = bufferIO();
  const code = await main(argv, io);
  const all = [...io.stdout, ...io.stderr].join('\n');
  assert.ok(!all.includes(SECRET_PASSWORD), 'a password reached the CLI output');
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

describe('pullkeeper CLI', () => {
  it('image: normalizes and gives the default pull policy', async () => {
    const { code, out } = await cli('image', 'nginx');
    assert.equal(code, 0);
    const info = JSON.parse(out);
    assert.equal(info.name, 'docker.io/library/nginx');
    assert.equal(info.tag, null);
    assert.equal(info.criImage, 'nginx:latest');
    assert.equal(info.defaultPullPolicy, 'Always');
  });
  it('image: an invalid reference is exit 1 with upstream wording', async () => {
    const { code, err } = await cli('image', 'Nginx');
    assert.equal(code, 1);
    assert.match(err, /must be lowercase/);
  });
  it('creds: secrets in pod order, most specific key first, then node files', async () => {
    const { code, out } = await cli(
      'creds',
      'quay.io/coreos/etcd:v3',
      '--secret',
      quaySecret,
      '--secret',
      coreosSecret,
      '--node-config',
      nodeConfig,
    );
    assert.equal(code, 0);
    const lines = out.split('\n');
    assert.match(lines[0]!, /quay\.io\/coreos\/etcd: kubelet tries 2 credential/);
    assert.match(lines[1]!, /1\. key quay\.io\/coreos\s+username coreos\s+password <redacted>/);
    assert.match(lines[2]!, /2\. key quay\.io\s+username robot/);
  });
  it('creds: Docker Hub images fall back to the node file index.docker.io entry', async () => {
    const { out } = await cli('creds', 'nginx', '--secret', quaySecret, '--node-config', nodeConfig);
    assert.match(out, /1\. key index\.docker\.io\s+username hub/);
  });
  it('creds: a legacy .dockercfg is read in its own format', async () => {
    const { out } = await cli('creds', 'quay.io/x', '--secret', legacy);
    assert.match(out, /username legacy/);
  });
  it('creds: no match means anonymous', async () => {
    const { out } = await cli('creds', 'ghcr.io/x/y', '--secret', quaySecret);
    assert.match(out, /no credentials match; kubelet pulls anonymously/);
  });
  it('creds: a Secret of another type is refused with the reason', async () => {
    const opaque = file('opaque.yaml', 'kind: Secret\nmetadata: {name: o}\ntype: Opaque\ndata: {}\n');
    const { code, err } = await cli('creds', 'nginx', '--secret', opaque);
    assert.equal(code, 1);
    assert.match(err, /Secret o has type Opaque; kubelet only uses/);
  });
  it('creds: a bad auth field names the file, never the value', async () => {
    const bad = file(
      'bad.json',
      JSON.stringify({ auths: { 'r.io': { auth: Buffer.from('nocolon').toString('base64') } } }),
    );
    const { code, err } = await cli('creds', 'r.io/x', '--secret', bad);
    assert.equal(code, 1);
    assert.match(err, /bad\.json/);
    assert.match(err, /unable to parse auth field/);
    assert.ok(!err.includes(Buffer.from('nocolon').toString('base64')));
  });
  it('creds: a missing file says which', async () => {
    const { code, err } = await cli('creds', 'nginx', '--secret', join(dir, 'nope.json'));
    assert.equal(code, 1);
    assert.match(err, /cannot read .*nope\.json: ENOENT/);
  });
  it('COMMAND --help prints the usage and exits 0; an unknown flag exits 2', async () => {
    for (const c of ['refresh', 'ensure', 'mint', 'push', 'doctor', 'serve']) {
      const { code, out } = await cli(c, '--help');
      assert.equal(code, 0);
      assert.match(out, new RegExp(`pullkeeper ${c} `));
    }
    const bad = await cli('refresh', '--bogus');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /Unknown option '--bogus'/);
  });
  it('unknown command: exit 2 with usage', async () => {
    const { code, err } = await cli('frobnicate');
    assert.equal(code, 2);
    assert.match(err, /unknown command "frobnicate"/);
  });
  it('COMMAND --help is that command only', async () => {
    const { out } = await cli('refresh', '--help');
    assert.match(out, /^Usage:\n {2}pullkeeper refresh --config FILE/);
    assert.match(out, /Examples:\n {2}pullkeeper refresh --config pullkeeper\.yaml --dry-run/);
    assert.doesNotMatch(out, /pullkeeper mint/);
  });
  it('demo: runs the embedded example and says what the build can do', async () => {
    const { code, out } = await cli('demo');
    assert.equal(code, 0);
    assert.match(out, /demo-coreos@quay\.io\/coreos, demo-robot@quay\.io/);
    assert.match(
      out,
      /This build can: core, mintCredentials, writePullSecrets, pushNodeConfig, nodeRunner, podCredentialBroker\./,
    );
  });
});

/** A config that needs no network for `config check` and `mint` (static registries, verify off). */
const config = file(
  'pk.yaml',
  [
    'clusters: [{ name: prod, kubeconfig: /nonexistent/kubeconfig }]',
    'registries:',
    '  - { name: quay, kind: static, server: quay.io, username: { value: robot }, password: { value: ' +
      SECRET_PASSWORD +
      ' }, verify: false }',
    '  - { name: ghcr, kind: static, server: ghcr.io, username: { value: bot }, password: { value: ' +
      SECRET_PASSWORD +
      ' }, verify: false }',
    'tenants:',
    '  - { name: team-a, namespaces: { matchLabels: { tenant: a } }, registries: [quay] }',
  ].join('\n'),
);

const keysOf = (v: unknown) => Object.keys(v as object).sort();

describe('pullkeeper --json', () => {
  it('image, status, version: parse, with the documented fields', async () => {
    for (const [argv, fields] of [
      [['image', 'nginx', '--json'], PULLKEEPER.image.json.example],
      [['status', '--json'], PULLKEEPER.status.json.example],
      [['version', '--json'], PULLKEEPER.version.json.example],
    ] as const) {
      const { code, out } = await cli(...argv);
      assert.equal(code, 0, argv.join(' '));
      assert.deepEqual(keysOf(JSON.parse(out)), keysOf(fields), argv.join(' '));
    }
    assert.equal(JSON.parse((await cli('version', '--json')).out).version, VERSION);
    assert.equal((await cli('version')).out, VERSION, 'plain version unchanged');
  });
  it('creds --json: keys in order, passwords redacted', async () => {
    const { code, out } = await cli(
      'creds',
      'quay.io/coreos/etcd:v3',
      '--secret',
      quaySecret,
      '--secret',
      coreosSecret,
      '--json',
    );
    assert.equal(code, 0);
    const j = JSON.parse(out);
    assert.deepEqual(keysOf(j), keysOf(PULLKEEPER.creds.json.example));
    assert.equal(j.anonymous, false);
    assert.deepEqual(
      j.credentials.map((c: { key: string; username: string; password: string }) => [
        c.key,
        c.username,
        c.password,
      ]),
      [
        ['quay.io/coreos', 'coreos', '<redacted>'],
        ['quay.io', 'robot', '<redacted>'],
      ],
    );
    const none = JSON.parse((await cli('creds', 'ghcr.io/x/y', '--secret', quaySecret, '--json')).out);
    assert.equal(none.anonymous, true);
    assert.deepEqual(none.credentials, []);
  });
  it('config check --json: the documented shape, valid and invalid', async () => {
    const ok = await cli('config', 'check', config, '--json');
    assert.equal(ok.code, 0, ok.err);
    const j = JSON.parse(ok.out);
    assert.deepEqual(keysOf(j), keysOf(PULLKEEPER['config check'].json.example));
    assert.deepEqual(j.registries, [
      { name: 'quay', kind: 'static' },
      { name: 'ghcr', kind: 'static' },
    ]);
    const bad = await cli('config', 'check', file('bad.yaml', 'registries: []\ntenants: 3\n'), '--json');
    assert.equal(bad.code, 2);
    assert.equal(JSON.parse(bad.out).valid, false);
  });
  it('mint --json: one entry per registry, no secrets', async () => {
    const { code, out } = await cli('mint', '--config', config, '--json');
    assert.equal(code, 0);
    const j = JSON.parse(out);
    assert.deepEqual(keysOf(j), keysOf(PULLKEEPER.mint.json.example));
    assert.deepEqual(
      j.registries.map((r: { name: string; status: string }) => [r.name, r.status]),
      [
        ['quay', 'minted'],
        ['ghcr', 'minted'],
      ],
    );
  });
  it('errors with --json: non-zero exit, message on stderr, { error } on stdout', async () => {
    for (const [argv, code, message] of [
      [['refresh', '--json'], 2, /give --config FILE \(or set PULLKEEPER_CONFIG\)/],
      [
        ['mint', '--config', join(dir, 'absent.yaml'), '--json'],
        2,
        /absent\.yaml.*no such file; pass --config PATH/s,
      ],
      [['mint', '--json', '--bogus'], 2, /Unknown option '--bogus'/],
      [['creds', 'nginx', '--secret', join(dir, 'nope.json'), '--json'], 1, /nope\.json/],
      [['image', 'Nginx', '--json'], 1, /must be lowercase/],
    ] as const) {
      const saved = process.env.PULLKEEPER_CONFIG;
      delete process.env.PULLKEEPER_CONFIG;
      const r = await cli(...argv);
      if (saved !== undefined) process.env.PULLKEEPER_CONFIG = saved;
      assert.equal(r.code, code, argv.join(' '));
      assert.match(r.err, message, argv.join(' '));
      const j = JSON.parse(r.out);
      assert.deepEqual(keysOf(j), ['error']);
      assert.equal(j.error.exitCode, code);
      assert.match(j.error.message, message);
    }
  });
});

describe('pullkeeper progress', () => {
  const ttyIO = () => {
    const io = bufferIO();
    const progress: string[] = [];
    return Object.assign(io, { isTTY: true, progress: (l: string) => progress.push(l), lines: progress });
  };
  it('mint: one line per registry on a terminal, cleared at the end', async () => {
    const io = ttyIO();
    assert.equal(await main(['mint', '--config', config], io), 0);
    assert.deepEqual(io.lines, ['minting 2 registr(ies)…', '[1/2] quay: minted', '[2/2] ghcr: minted', '']);
    assert.match(io.stdout[0]!, /^REGISTRY\s+KIND/);
  });
  it('nothing on a non-terminal or with --json; stdout unchanged', async () => {
    const plain = bufferIO();
    const lines: string[] = [];
    Object.assign(plain, { isTTY: false, progress: (l: string) => lines.push(l) });
    assert.equal(await main(['mint', '--config', config], plain), 0);
    const json = ttyIO();
    assert.equal(await main(['mint', '--config', config, '--json'], json), 0);
    assert.deepEqual([lines, json.lines], [[], []]);
    const tty = ttyIO();
    await main(['mint', '--config', config], tty);
    assert.deepEqual(tty.stdout, plain.stdout);
  });
});

describe('refresh progress line', () => {
  for (const [name, tr, want] of [
    ['fresh', { name: 't', cluster: 'c', fresh: true, namespaces: [] }, 'fresh, nothing to do'],
    [
      'mixed',
      {
        name: 't',
        cluster: 'c',
        namespaces: [
          { name: 'a', secret: 'created', serviceAccounts: 'patched' },
          { name: 'b', secret: 'unchanged', serviceAccounts: 'unchanged' },
          { name: 'c', secret: 'created', serviceAccounts: 'patched' },
        ],
      },
      '3 namespace(s): secrets 2 created, 1 unchanged',
    ],
    ['none', { name: 't', cluster: 'c', namespaces: [] }, '0 namespace(s): secrets none'],
  ] as const) {
    it(name, () => assert.equal(tenantProgress(tr as unknown as TenantReport), want));
  }
});

describe('serve: api.metrics.public only on loopback', () => {
  for (const [host, want] of [
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.5', false],
    ['127.0.0.1.example.com', false],
  ] as const)
    it(`${host}: ${want ? 'loopback' : 'not loopback'}`, () => assert.equal(isLoopbackHost(host), want));
  it('a public /metrics on a non-loopback host: refused before listening, saying why', async () => {
    const pub = file(
      'pk-public-metrics.yaml',
      `${readFileSync(config, 'utf8')}\napi: { metrics: { public: true } }\n`,
    );
    const { code, err } = await cli('serve', '--config', pub, '--host', '0.0.0.0', '--port', '0');
    assert.equal(code, 2);
    assert.match(
      err,
      /api\.metrics\.public serves \/metrics without auth, so it is allowed only on a loopback address; --host 0\.0\.0\.0 is not one/,
    );
  });
});

describe('pullkeeper errors say what to do next', () => {
  it('missing --config names the flag, the variable, an example and the help', async () => {
    const saved = process.env.PULLKEEPER_CONFIG;
    delete process.env.PULLKEEPER_CONFIG;
    try {
      for (const c of ['mint', 'refresh', 'doctor', 'serve']) {
        const { code, err } = await cli(c);
        assert.equal(code, 2, c);
        assert.ok(
          err.includes(`give --config FILE (or set PULLKEEPER_CONFIG), e.g. \`pullkeeper ${c} --config`),
          err,
        );
        assert.ok(err.includes(`pullkeeper help ${c}`), err);
      }
    } finally {
      if (saved !== undefined) process.env.PULLKEEPER_CONFIG = saved;
    }
  });
  it('an unknown registry lists the ones the config defines', async () => {
    const { code, err } = await cli('mint', '--config', config, '--registry', 'quya');
    assert.equal(code, 2);
    assert.match(err, /unknown registry "quya"; .* defines quay, ghcr: pass one of those to --registry/);
  });
  it('config without check, and a positional where none goes', async () => {
    const c = await cli('config', 'chek');
    assert.equal(c.code, 2);
    assert.match(c.err, /unknown subcommand "chek"; did you mean check\?/);
    const e = await cli('ensure', '--config', config);
    assert.equal(e.code, 2);
    assert.match(e.err, /give one namespace, e\.g\. `pullkeeper ensure team-a-prod/);
  });
  it('a missing kubeconfig and an unreachable cluster say what to fix', async () => {
    const missing = await cli('refresh', '--config', config, '--json');
    assert.equal(missing.code, 1);
    assert.match(
      JSON.parse(missing.out).tenants[0].namespaces[0].reason,
      /^cluster prod: cannot load kubeconfig \/nonexistent\/kubeconfig \(.*\); fix the cluster's kubeconfig \(path, current-context or the cluster's context in the config\)/,
    );
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    const kc = file(
      'kubeconfig.yaml',
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1", insecure-skip-tls-verify: true } }]',
        'users: [{ name: u, user: { token: not-a-secret } }]',
        'contexts: [{ name: c, context: { cluster: c, user: u } }]',
        'current-context: c',
      ].join('\n'),
    );
    const refused = file('refused.yaml', readFileSync(config, 'utf8').replace('/nonexistent/kubeconfig', kc));
    const r = await cli('refresh', '--config', refused);
    assert.equal(r.code, 1);
    assert.match(
      r.out,
      /cluster prod: ECONNREFUSED: the API server is unreachable; check the cluster's server \(or kubeconfig\) in the config .*`pullkeeper doctor`/,
    );
  });
});
