/**
 * The identities a Lambda has, against the harness apiserver: an EKS token
 * (presigned STS GetCallerIdentity) checked by a TokenReview webhook the way
 * aws-iam-authenticator checks it, against moto's STS; and an AKS Entra ID
 * token checked by the apiserver's own JWT authenticator trusting the Entra
 * fake's issuer (--authentication-config); and a GKE Google access token
 * (service-account key, or workload identity federation) checked at the Google
 * fake's tokeninfo by the same webhook, as GKE maps Google accounts by email.
 * A refresh runs through all three.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { refresh, refreshFailed } from '../../src/app/refresh.js';
import { parseConfig } from '../../src/config/load.js';
import { createSecretResolver } from '../../src/config/secret-ref.js';
import { KubeApiError, KubeClient } from '../../src/kube/client.js';
import {
  AKS_SERVER_APP_ID,
  ClusterAccessError,
  connectionFor,
  kubeClientFor,
} from '../../src/kube/connect.js';
import { eksToken } from '../../src/kube/eks-token.js';
import { kubernetesNodeLister } from '../../src/nodes/inventory.js';
import { type EntraAcrFake, startEntraAcr } from '../harness/cloud/entra-acr.js';
import { type GoogleFake, type ServiceAccountKey, startGoogle } from '../harness/cloud/google.js';
import { type MotoComponent, startMoto } from '../harness/cloud/moto.js';
import { type OidcIssuer, startOidcIssuer } from '../harness/cloud/oidc-issuer.js';
import { type EksWebhook, startEksWebhook } from '../harness/cluster/eks-webhook.js';
import { type Cluster, rbacConfigFor, startCluster } from '../harness/cluster/index.js';
import { startOidcMirror } from '../harness/cluster/oidc-mirror.js';

const EKS_CLUSTER = 'pk-test';
const AKS_SCOPE = `${AKS_SERVER_APP_ID}/.default`;
const REGISTRY_PASS = `cap-${Math.random().toString(36).slice(2)}`;

let dir: string;
let moto: MotoComponent;
let entra: EntraAcrFake;
let google: GoogleFake;
let idp: OidcIssuer;
let gkeKey: ServiceAccountKey;
let hook: EksWebhook;
let cluster: Cluster;
const stops: Array<() => Promise<void>> = [];
const leaked: string[] = [REGISTRY_PASS];
const noSecrets = (text: string) => {
  for (const s of leaked) assert.ok(!text.includes(s), 'a token or password reached the output');
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pk-cluster-auth-'));
  [moto, entra, google, idp] = await Promise.all([
    startMoto({ dir }),
    startEntraAcr({ dir, tls: true }),
    startGoogle({ dir }),
    startOidcIssuer(),
  ]);
  stops.push(
    () => moto.stop(),
    () => entra.stop(),
    () => google.stop(),
    () => idp.stop(),
  );
  gkeKey = await google.makeServiceAccountKey({
    projectId: 'pk-test',
    clientEmail: 'pullkeeper@pk-test.iam.gserviceaccount.com',
  });
  leaked.push(gkeKey.private_key.slice(40, 120));
  leaked.push(entra.info.clientSecret);
  hook = await startEksWebhook({
    dir,
    clusterId: EKS_CLUSTER,
    stsEndpoint: moto.info.endpoint,
    keys: { [moto.info.accessKeyId]: moto.info.secretAccessKey },
    // moto answers every key with arn:aws:sts::<account>:user/moto; map that account's principals.
    mapArn: (arn) =>
      arn.split(':')[4] === moto.info.accountId
        ? { username: 'eks:pullkeeper', groups: ['pullkeeper-eks'] }
        : undefined,
    google: { tokeninfoUrl: google.info.tokeninfoUrl },
  });
  stops.push(() => hook.stop());
  const tid = entra.info.tenantId;
  const mirror = await startOidcMirror({
    dir,
    discoveryURL: `${entra.info.baseUrl}/${tid}/.well-known/openid-configuration`,
    caPem: entra.info.caCertPem!,
  });
  stops.push(() => mirror.stop());
  cluster = await startCluster({
    dir: join(dir, 'cluster'),
    authn: {
      tokenWebhook: { url: hook.url, caPem: hook.caPem },
      jwt: [
        {
          issuer: `https://sts.windows.net/${tid}/`,
          discoveryURL: mirror.discoveryURL,
          caPem: mirror.caPem,
          audiences: [AKS_SERVER_APP_ID],
          usernameClaim: 'oid',
          usernamePrefix: 'aad:',
        },
      ],
    },
  });
  stops.unshift(() => cluster.stop());
  // MSAL (@azure/identity) must trust the Entra fake's self-signed certificate.
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), entra.info.caCertPem!]);
});
after(async () => {
  for (const s of stops) await s().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

const ca = () => Buffer.from(cluster.info.caData, 'base64').toString();
async function whoAmI(token: string): Promise<string> {
  return whoIs(new KubeClient({ server: cluster.info.server, ca: ca(), token: async () => token }));
}
/** SelfSubjectReview through `c` (closed afterwards): the user name the apiserver sees. */
async function whoIs(c: KubeClient): Promise<string> {
  try {
    const r = await c.request<{ status?: { userInfo?: { username?: string } } }>(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
    );
    return r.status?.userInfo?.username ?? '';
  } finally {
    c.close();
  }
}
const refused = async (token: string) => {
  await assert.rejects(whoAmI(token), (e) => e instanceof KubeApiError && e.status === 401);
};
const awsCreds = () => ({ accessKeyId: moto.info.accessKeyId, secretAccessKey: moto.info.secretAccessKey });
/** A `clusters[]` entry for the harness apiserver as an EKS cluster, signed with moto's keys. */
const eksEntry = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  eks: {
    cluster: EKS_CLUSTER,
    region: 'us-east-1',
    server: cluster.info.server,
    caData: cluster.info.caData,
    stsEndpoint: moto.info.endpoint,
    credentials: {
      accessKeyId: { value: moto.info.accessKeyId },
      secretAccessKey: { value: moto.info.secretAccessKey },
    },
    ...extra,
  },
});

describe('EKS token', () => {
  test('a presigned GetCallerIdentity token authenticates as the mapped user', async () => {
    const t = await eksToken({
      cluster: EKS_CLUSTER,
      region: 'us-east-1',
      credentials: awsCreds(),
      stsEndpoint: moto.info.endpoint,
    });
    assert.match(t, /^k8s-aws-v1\.[A-Za-z0-9_-]+$/);
    assert.equal(await whoAmI(t), 'eks:pullkeeper');
  });
  test('a token for another cluster, a tampered, an expired or a wrongly signed one is refused', async () => {
    const base = { region: 'us-east-1', credentials: awsCreds(), stsEndpoint: moto.info.endpoint };
    await refused(await eksToken({ ...base, cluster: 'another-cluster' }));
    const good = await eksToken({ ...base, cluster: EKS_CLUSTER });
    const url = Buffer.from(good.slice('k8s-aws-v1.'.length), 'base64url').toString();
    const tampered = url.replace(
      /X-Amz-Signature=([0-9a-f])/,
      (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
    );
    await refused(`k8s-aws-v1.${Buffer.from(tampered).toString('base64url')}`);
    await refused(`k8s-aws-v1.${Buffer.from(`${url}&x-id=GetCallerIdentity`).toString('base64url')}`);
    await refused(await eksToken({ ...base, cluster: EKS_CLUSTER, now: new Date(Date.now() - 16 * 60_000) }));
    await refused(
      await eksToken({
        ...base,
        cluster: EKS_CLUSTER,
        credentials: { ...awsCreds(), secretAccessKey: 'wrong' },
      }),
    );
    const reasons = hook.reviews();
    assert.ok(reasons.includes('token expired'));
    assert.ok(reasons.some((r) => r.startsWith('signature does not match')));
    assert.ok(reasons.some((r) => r.startsWith('non-allowlisted query parameter')));
  });
});

describe('EKS roleArn', () => {
  test('the token is signed as the assumed role (sts:AssumeRole at the stsEndpoint), not as the base identity', async () => {
    const c = parseConfig({
      clusters: [
        eksEntry('eks-role', { roleArn: `arn:aws:iam::${moto.info.accountId}:role/pullkeeper-eks` }),
      ],
      registries: [
        { name: 'r', kind: 'static', server: 'r.test', username: { value: 'u' }, password: { value: 'p' } },
      ],
    }).clusters[0]!;
    const token = await (await connectionFor(c, createSecretResolver())).token!();
    assert.ok(token?.startsWith('k8s-aws-v1.'));
    const url = new URL(Buffer.from(token!.slice('k8s-aws-v1.'.length), 'base64url').toString());
    const keyId = url.searchParams.get('X-Amz-Credential')?.split('/')[0];
    assert.ok(keyId && keyId !== moto.info.accessKeyId, `signed with the role's temporary key (${keyId})`);
    assert.ok(url.searchParams.get('X-Amz-Security-Token'), 'with the session token of the role');
  });
});

describe('AKS token', () => {
  async function entraToken(): Promise<string> {
    const res = await fetch(entra.info.tokenEndpoint, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: entra.info.clientId,
        client_secret: entra.info.clientSecret,
        scope: AKS_SCOPE,
      }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200);
    const t = ((await res.json()) as { access_token: string }).access_token;
    leaked.push(t);
    return t;
  }
  test('an Entra ID token for the AKS server app authenticates; a forged or expired one is refused', async () => {
    const t = await entraToken();
    assert.match(await whoAmI(t), /^aad:/);
    // Forged: same claims, signed by a key the issuer never published.
    const [h, p] = t.split('.');
    const { generateKeyPairSync, sign } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const sig = sign('sha256', Buffer.from(`${h}.${p}`), privateKey).toString('base64url');
    await refused(`${h}.${p}.${sig}`);
    entra.setTokenLifetime(1, 'aad');
    try {
      const short = await entraToken();
      await new Promise((r) => setTimeout(r, 2200));
      await refused(short);
    } finally {
      entra.setTokenLifetime(3599, 'aad');
    }
  });
});

describe('GKE token', () => {
  const gkeCluster = (auth: Record<string, unknown>) =>
    parseConfig({
      clusters: [{ name: 'gke', gke: { server: cluster.info.server, caData: cluster.info.caData, ...auth } }],
      registries: [
        { name: 'r', kind: 'static', server: 'r.test', username: { value: 'u' }, password: { value: 'p' } },
      ],
    }).clusters[0]!;
  const who = async (auth: Record<string, unknown>) =>
    whoIs(await kubeClientFor(gkeCluster(auth), createSecretResolver()));
  test('a service-account key (its token_uri honoured) authenticates as the account email', async () => {
    assert.equal(await who({ serviceAccountKey: { value: JSON.stringify(gkeKey) } }), gkeKey.client_email);
    assert.ok(hook.reviews().includes('ok google'));
    assert.ok(
      google.requests().some((r) => r.endpoint === 'token'),
      'the key minted at the fake, not at Google',
    );
  });
  test('workload identity federation (external_account): an OIDC token file exchanged at STS, then impersonation', async () => {
    const sa = 'pullkeeper-wif@pk-test.iam.gserviceaccount.com';
    google.addServiceAccount(sa);
    const audience = google.addWorkloadIdentityProvider({
      projectNumber: '123456789012',
      pool: 'lambda',
      provider: 'oidc',
      issuer: idp.info.issuer,
      jwksUri: idp.info.jwksUri,
      serviceAccounts: { [sa]: ['pullkeeper-function'] },
    });
    const tokenFile = join(dir, 'gke-oidc-token');
    await writeFile(
      tokenFile,
      await idp.sign({ sub: 'pullkeeper-function', aud: `https:${audience}` }, { ttlSec: 600 }),
    );
    const credentialConfig = {
      type: 'external_account',
      audience,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${google.info.baseUrl}/v1/token`,
      service_account_impersonation_url: `${google.info.baseUrl}/v1/projects/-/serviceAccounts/${sa}:generateAccessToken`,
      credential_source: { file: tokenFile },
    };
    assert.equal(await who({ credentialConfig: { value: JSON.stringify(credentialConfig) } }), sa);
  });
  test('a disabled key or a hostile config is refused with what to do', async () => {
    const off = await google.makeServiceAccountKey({
      projectId: 'pk-test',
      clientEmail: 'off@pk-test.iam.gserviceaccount.com',
    });
    google.disableKey(off.private_key_id);
    await assert.rejects(
      who({ serviceAccountKey: { value: JSON.stringify(off) } }),
      /cluster gke: Google access token failed: invalid_grant: the key is disabled, deleted or wrong .*create a new key/,
    );
    await assert.rejects(
      who({ credentialConfig: { value: JSON.stringify({ type: 'external_account', audience: 'x' }) } }),
      (e) =>
        e instanceof ClusterAccessError &&
        /^cluster gke: credentialConfig \(external_account\) needs audience \/\/iam\.googleapis\.com\//.test(
          e.message,
        ),
    );
  });
});

let threeClusters: ReturnType<typeof parseConfig> | undefined;

describe('refresh through EKS, AKS and GKE identities', () => {
  test('each cluster entry mints its own token; Secrets land with the shipped RBAC bound to those users', async () => {
    // The ClusterRoles `pullkeeper rbac` prints for these tenants, bound to the cloud identities instead of the ServiceAccount.
    await cluster.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      config: rbacConfigFor(
        ['eks', 'aks', 'gke'].map((via) => ({ name: `on-${via}`, namespaces: { matchLabels: { via } } })),
        {
          nodes: {
            inventory: 'kubernetes',
            registries: ['placeholder'],
            ssh: { privateKey: { value: 'k' } },
          },
        },
      ),
    });
    const aadUser = `aad:${(
      await whoAmI(
        await (async () => {
          const res = await fetch(entra.info.tokenEndpoint, {
            method: 'POST',
            body: new URLSearchParams({
              grant_type: 'client_credentials',
              client_id: entra.info.clientId,
              client_secret: entra.info.clientSecret,
              scope: AKS_SCOPE,
            }),
          });
          const tok = ((await res.json()) as { access_token: string }).access_token;
          leaked.push(tok);
          return tok;
        })(),
      )
    ).slice(4)}`;
    for (const [user, tag] of [
      ['eks:pullkeeper', 'eks'],
      [aadUser, 'aks'],
      [gkeKey.client_email, 'gke'],
    ] as const)
      for (const role of ['pullkeeper-inventory', 'pullkeeper-tenant-writer'])
        await cluster.admin.rbac.createClusterRoleBinding({
          body: {
            metadata: { name: `${role}-${tag}` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
            subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
          },
        });
    await cluster.createNamespace('via-eks', { via: 'eks' });
    await cluster.createNamespace('via-aks', { via: 'aks' });
    await cluster.createNamespace('via-gke', { via: 'gke' });
    const cfg = parseConfig({
      clusters: [
        eksEntry('eks'),
        {
          name: 'aks',
          aks: {
            server: cluster.info.server,
            caData: cluster.info.caData,
            tenantId: entra.info.tenantId,
            authorityHost: entra.info.authorityHost,
            credential: { clientId: entra.info.clientId, clientSecret: { value: entra.info.clientSecret } },
          },
        },
        {
          name: 'gke',
          gke: {
            server: cluster.info.server,
            caData: cluster.info.caData,
            serviceAccountKey: { value: JSON.stringify(gkeKey) },
          },
        },
      ],
      registries: [
        {
          name: 'reg',
          kind: 'static',
          server: 'r.test',
          username: { value: 'u' },
          password: { value: REGISTRY_PASS },
          verify: false,
        },
      ],
      tenants: [
        { name: 'on-eks', cluster: 'eks', namespaces: { matchLabels: { via: 'eks' } }, registries: ['reg'] },
        { name: 'on-aks', cluster: 'aks', namespaces: { matchLabels: { via: 'aks' } }, registries: ['reg'] },
        { name: 'on-gke', cluster: 'gke', namespaces: { matchLabels: { via: 'gke' } }, registries: ['reg'] },
      ],
    });
    threeClusters = cfg;
    // RBAC reaches the authorizer a moment after the bindings are written.
    let r = await refresh(cfg, { nodes: false });
    for (let i = 0; i < 20 && refreshFailed(r); i++) {
      await new Promise((res) => setTimeout(res, 250));
      r = await refresh(cfg, { nodes: false });
    }
    noSecrets(JSON.stringify(r));
    assert.equal(refreshFailed(r), false, JSON.stringify(r.tenants));
    assert.deepEqual(
      r.tenants.map((t) => [t.name, t.cluster, t.namespaces.map((n) => n.name)]),
      [
        ['on-eks', 'eks', ['via-eks']],
        ['on-aks', 'aks', ['via-aks']],
        ['on-gke', 'gke', ['via-gke']],
      ],
    );
    const s = await cluster.admin.core.readNamespacedSecret({
      namespace: 'via-aks',
      name: 'pullkeeper-on-aks',
    });
    const field = s.metadata?.managedFields?.find((f) => f.manager === 'pullkeeper');
    // Created with POST as field manager pullkeeper (a same-named Secret appearing meanwhile is a conflict, not taken over).
    assert.ok(field, 'fields owned by the pullkeeper manager');
    assert.ok(hook.reviews().includes('ok'));
  });

  test('the node inventory lists Nodes through each identity (the pullkeeper-inventory ClusterRole only)', async () => {
    assert.ok(threeClusters, 'the refresh test above set up the three cluster entries');
    await cluster.admin.core.createNode({ body: { metadata: { name: 'inv-node', labels: { pool: 'a' } } } });
    for (const c of threeClusters.clusters) {
      const lister = kubernetesNodeLister(c, { secrets: createSecretResolver() });
      const nodes = await lister.listNodes({ pool: 'a' });
      assert.deepEqual(
        nodes.map((n) => n.name),
        ['inv-node'],
        `cluster ${c.name}: the selector is applied`,
      );
      assert.deepEqual(
        (await lister.getNodes!(['inv-node', 'gone'])).map((n) => n.name),
        ['inv-node'],
        `cluster ${c.name}: by name, a missing Node left out`,
      );
    }
  });
});
