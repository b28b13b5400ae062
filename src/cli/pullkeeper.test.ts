import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bufferIO } from './io.js';
import { main } from './pullkeeper.js';

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
  it('demo: runs the embedded example and says what the build can do', async () => {
    const { code, out } = await cli('demo');
    assert.equal(code, 0);
    assert.match(out, /demo-coreos@quay\.io\/coreos, demo-robot@quay\.io/);
    assert.match(
      out,
      /This build can: core, mintCredentials, writePullSecrets, pushNodeConfig, nodeRunner\./,
    );
  });
});
