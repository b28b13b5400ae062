/**
 * Every part of the harness together, the way later features will use it:
 * credentials minted by the cloud endpoints log in to the real registry,
 * travel through a real cluster as a kubernetes.io/dockerconfigjson Secret
 * written with pullkeeper's shipped RBAC, come back through kubelet's keyring,
 * and pull the image; config files go to three SSH nodes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import {
  buildKeyring,
  type DockerConfig,
  parseDockerConfig,
  renderDockerConfigJson,
} from '../../src/core/index.js';
import { ACR_NULL_GUID, ACR_SCOPE } from '../harness/cloud/index.js';
import { apiStatus, rbacConfigFor } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';
import { sftpRead, sftpRename, sftpWrite, withSftp } from '../harness/nodes/ssh.js';
import { run } from '../harness/proc.js';
import { buildImage, pushImage, RegistryClient } from '../harness/registry/images.js';

let h: Harness;
const minted: string[] = [];
/** Fails if any credential minted in this file appears in a string. */
const noSecrets = (text: string) => {
  for (const s of minted) assert.ok(!text.includes(s), 'a minted credential reached the output');
};

async function post(url: string, form: Record<string, string>): Promise<Record<string, string>> {
  const res = await fetch(url, {
    method: 'POST',
    body: new URLSearchParams(form),
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(res.status, 200, `POST ${new URL(url).pathname} answered ${res.status}`);
  return (await res.json()) as Record<string, string>;
}

describe('harness smoke: cluster + registry + nodes + cloud', { timeout: 180_000 }, () => {
  before(async () => {
    h = await startHarness({ cluster: true, registry: { auth: 'token' }, nodes: 3, cloud: true });
  });
  after(async () => {
    await h?.stop();
  });

  test('ECR token from moto pushes an image; skopeo + umoci pull it back with a config.json we render', async () => {
    const moto = h.cloud!.info.moto!;
    const ecr = new ECRClient({
      endpoint: moto.endpoint,
      region: moto.region,
      credentials: { accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey },
    });
    const out = await ecr.send(new GetAuthorizationTokenCommand({}), {
      abortSignal: AbortSignal.timeout(10_000),
    });
    ecr.destroy();
    const decoded = Buffer.from(out.authorizationData?.[0]?.authorizationToken ?? '', 'base64').toString();
    const colon = decoded.indexOf(':');
    const creds = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    minted.push(creds.password);
    assert.equal(creds.username, 'AWS');

    const registry = h.registry!.info;
    const image = await buildImage({ layers: [{ busybox: true }], config: { Cmd: ['/bin/sh'] } });
    const pushed = await pushImage(h.registry!, 'team/app', 'v1', image, creds);
    assert.equal(pushed.digest, image.digest);

    // Anonymous pull is refused by the real registry.
    const anon = await new RegistryClient(registry).getManifest('team/app', 'v1');
    assert.equal(anon.status, 401);

    // The reference tools read our rendered config.json as their auth file.
    const dir = await mkdtemp(join(h.dir, 'pull-'));
    const authfile = join(dir, 'config.json');
    await writeFile(authfile, renderDockerConfigJson({ auths: { [registry.host]: creds } }), { mode: 0o600 });
    const copy = await run('skopeo', [
      'copy',
      '--quiet',
      '--src-authfile',
      authfile,
      '--src-tls-verify=false',
      `docker://${registry.host}/team/app:v1`,
      `oci:${dir}/oci:v1`,
    ]);
    noSecrets(copy.stdout + copy.stderr);
    await run('umoci', ['unpack', '--rootless', '--image', `${dir}/oci:v1`, `${dir}/bundle`]);
    assert.ok(existsSync(`${dir}/bundle/rootfs/bin/busybox`), 'unpacked rootfs has /bin/busybox');
  });

  test('ACR refresh token: minted, stored as a pull Secret with the shipped RBAC, resolved by the keyring, pulls', async () => {
    const acr = h.cloud!.acr.info;
    const aad = await post(acr.tokenEndpoint, {
      grant_type: 'client_credentials',
      client_id: acr.clientId,
      client_secret: acr.clientSecret,
      scope: ACR_SCOPE,
    });
    const { refresh_token } = await post(acr.exchangeEndpoint, {
      grant_type: 'access_token',
      service: acr.loginServer,
      tenant: acr.tenantId,
      access_token: aad.access_token!,
    });
    assert.ok(refresh_token);
    minted.push(aad.access_token!, refresh_token);
    // The refresh token carries its real expiry (3 h by default in the fake, as documented for ACR).
    const exp = JSON.parse(Buffer.from(refresh_token.split('.')[1]!, 'base64url').toString()).exp as number;
    assert.ok(Math.abs(exp - Date.now() / 1000 - 3 * 3600) < 120, 'refresh token exp is about now + 3 h');
    await h.credentialsSynced();

    const cluster = h.cluster!;
    const ns = await cluster.createNamespace(undefined, { tenant: 'team-a' });
    const id = await cluster.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      config: rbacConfigFor([{ name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } } }]),
    });
    const registry = h.registry!.info;
    const config: DockerConfig = {
      auths: { [registry.host]: { username: ACR_NULL_GUID, password: refresh_token } },
    };
    await id.client.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'pullkeeper-team-a', labels: { 'app.kubernetes.io/managed-by': 'pullkeeper' } },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': Buffer.from(renderDockerConfigJson(config)).toString('base64') },
      },
    });

    // The shipped RBAC is least privilege: admin-only actions are refused.
    const refused = await id.client.core.deleteNamespace({ name: ns }).then(
      () => undefined,
      (err: unknown) => apiStatus(err),
    );
    assert.equal(refused?.code, 403);
    noSecrets(JSON.stringify(refused));

    // Back out of the cluster, through kubelet's keyring, into a pull.
    const secret = await id.client.core.readNamespacedSecret({ namespace: ns, name: 'pullkeeper-team-a' });
    const stored = Buffer.from(secret.data?.['.dockerconfigjson'] ?? '', 'base64').toString();
    const keyring = buildKeyring(parseDockerConfig(stored, 'config.json'));
    const [cred, ...more] = keyring.lookup(`${registry.host}/team/app:v1`);
    assert.equal(more.length, 0);
    assert.equal(cred?.username, ACR_NULL_GUID);
    const pulled = await new RegistryClient(registry, cred).getManifest('team/app', 'v1');
    assert.equal(pulled.status, 200);
    // A credential the fakes never minted is refused.
    const forged = await new RegistryClient(registry, {
      username: ACR_NULL_GUID,
      password: 'forged',
    }).getManifest('team/app', 'v1');
    assert.equal(forged.status, 401);
  });

  test('SFTP: write config.json to 3 nodes, read back 3 different files', async () => {
    const nodes = h.nodes!;
    assert.equal(nodes.info.nodes.length, 3);
    const config = renderDockerConfigJson({ auths: { 'registry.test': { username: 'u', password: 'p' } } });
    await Promise.all(
      nodes.info.nodes.map(async (node) => {
        await nodes.writeFile(node.name, '/var/lib/kubelet/whoami', `I am ${node.name}\n`);
        await withSftp(nodes.info, node, async (sftp) => {
          await sftpWrite(sftp, '/var/lib/kubelet/.config.json.tmp', config);
          await sftpRename(sftp, '/var/lib/kubelet/.config.json.tmp', '/var/lib/kubelet/config.json');
        });
      }),
    );
    const whoami = await Promise.all(
      nodes.info.nodes.map((node) =>
        withSftp(nodes.info, node, (sftp) => sftpRead(sftp, '/var/lib/kubelet/whoami')),
      ),
    );
    assert.deepEqual(
      whoami.map((b) => b.toString()),
      nodes.info.nodes.map((n) => `I am ${n.name}\n`),
    );
    for (const node of nodes.info.nodes) {
      assert.equal((await nodes.readFile(node.name, '/var/lib/kubelet/config.json'))?.toString(), config);
    }
    // Each node's /var/lib/kubelet is private: the host's has none of it.
    assert.equal(existsSync('/var/lib/kubelet/whoami'), false);
  });

  test('the harness reports what it started and how long each part took', () => {
    for (const part of ['cluster', 'registry', 'nodes', 'cloud', 'total']) {
      assert.equal(typeof h.timings[part], 'number', part);
    }
    const info = h.info() as Record<string, unknown>;
    assert.deepEqual(Object.keys(info).sort(), ['cloud', 'cluster', 'dir', 'nodes', 'registry']);
  });
});
