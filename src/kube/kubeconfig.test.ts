import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KubeconfigError, loadInCluster, loadKubeconfig } from './kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'pk-kubeconfig-'));
const b64 = (s: string) => Buffer.from(s).toString('base64');
function config(user: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const f = join(dir, `kc-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    f,
    `apiVersion: v1
kind: Config
clusters:
  - name: c
    cluster: { server: 'https://10.0.0.1:6443', certificate-authority-data: '${b64('CA-PEM')}' }
  - name: other
    cluster: { server: 'https://other:6443', certificate-authority: ca.pem, insecure-skip-tls-verify: true }
users:
  - name: u
    user: ${JSON.stringify(user)}
contexts:
  - name: main
    context: { cluster: c, user: u }
  - name: second
    context: { cluster: other, user: u }
current-context: ${extra.current ?? 'main'}
`,
  );
  return f;
}
writeFileSync(join(dir, 'ca.pem'), 'OTHER-CA');
writeFileSync(join(dir, 'client.crt'), 'CERT-PEM');
writeFileSync(join(dir, 'token'), 'file-token\n');

describe('loadKubeconfig', () => {
  it('a token user on the current context: server, inline CA, the token', async () => {
    const a = await loadKubeconfig(config({ token: 'tok-1' }));
    assert.equal(a.server, 'https://10.0.0.1:6443');
    assert.equal(a.ca?.toString(), 'CA-PEM');
    assert.equal(await a.token?.(), 'tok-1');
    assert.equal(a.insecureSkipTLSVerify, undefined);
  });
  it('a named context; files relative to the kubeconfig; client certificate; insecure flag', async () => {
    const a = await loadKubeconfig(
      config({ 'client-certificate': 'client.crt', 'client-key-data': b64('KEY-PEM') }),
      'second',
    );
    assert.equal(a.server, 'https://other:6443');
    assert.equal(a.ca?.toString(), 'OTHER-CA');
    assert.equal(a.cert?.toString(), 'CERT-PEM');
    assert.equal(a.key?.toString(), 'KEY-PEM');
    assert.equal(a.insecureSkipTLSVerify, true);
    assert.equal(a.token, undefined);
  });
  it('tokenFile is read (trimmed); basic auth becomes a header', async () => {
    assert.equal(await (await loadKubeconfig(config({ tokenFile: 'token' }))).token?.(), 'file-token');
    const basic = await loadKubeconfig(config({ username: 'ann', password: 'pw' }));
    assert.equal(basic.headers.Authorization, `Basic ${b64('ann:pw')}`);
  });
  it('an exec plugin: runs with its args and env, gets KUBERNETES_EXEC_INFO, gives its token', async () => {
    const plugin = join(dir, 'plugin.sh');
    writeFileSync(
      plugin,
      `#!/bin/sh\necho "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"exec-$1-$PK_X-$(echo "$KUBERNETES_EXEC_INFO" | grep -c ExecCredential)\\"}}"\n`,
    );
    chmodSync(plugin, 0o755);
    const a = await loadKubeconfig(
      config({
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: plugin,
          args: ['a1'],
          env: [{ name: 'PK_X', value: 'x1' }],
        },
      }),
    );
    assert.equal(await a.token?.(), 'exec-a1-x1-1');
  });
  it('an exec plugin that fails: a KubeconfigError that says to run it by hand', async () => {
    await assert.rejects(
      loadKubeconfig(config({ exec: { command: '/bin/false' } })),
      (e: Error) => e instanceof KubeconfigError && /run it by hand/.test(e.message),
    );
  });
  it('legacy auth-provider, unknown context, no current-context: clear errors', async () => {
    await assert.rejects(
      loadKubeconfig(config({ 'auth-provider': { name: 'oidc' } })),
      /legacy auth-provider.*exec credential plugin/,
    );
    await assert.rejects(loadKubeconfig(config({ token: 't' }), 'nope'), /no context named nope/);
    await assert.rejects(loadKubeconfig(config({ token: 't' }, { current: "''" })), /no current-context/);
  });
});

describe('loadInCluster', () => {
  it('reads the ServiceAccount token and CA; without the service env it says so', async () => {
    writeFileSync(join(dir, 'ca.crt'), 'SA-CA');
    const saved = { ...process.env };
    try {
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      const a = await loadInCluster(dir);
      assert.equal(a.server, 'https://10.96.0.1:443');
      assert.equal(a.ca?.toString(), 'SA-CA');
      assert.equal(await a.token?.(), 'file-token');
      delete process.env.KUBERNETES_SERVICE_HOST;
      await assert.rejects(loadInCluster(dir), /not in a pod/);
    } finally {
      process.env = saved;
    }
  });
});
