/**
 * The local stack behind `make demo`: the test harness's real parts (a
 * kube-apiserver, a registry, SSH nodes in network namespaces, the Entra ID +
 * ACR token exchange endpoints, a CI OIDC issuer), seeded with two tenants' private images, a pullkeeper.yaml that
 * matches them, and the HTTP API under `serverless offline` (or
 * `pullkeeper serve`). Everything is started by PID and stopped by PID.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { type EntraAcrFake, startEntraAcr } from '../test/harness/cloud/entra-acr.js';
import { type OidcIssuer, startOidcIssuer } from '../test/harness/cloud/oidc-issuer.js';
import { rbacConfigFor, writeTokenKubeconfig } from '../test/harness/cluster/index.js';
import { type Harness, startHarness } from '../test/harness/index.js';
import { freePort } from '../test/harness/ports.js';
import { type Service, startService } from '../test/harness/proc.js';
import { buildImage, pushImage } from '../test/harness/registry/images.js';

const exec = promisify(execFile);
export const REPO_ROOT = resolve(import.meta.dirname, '..');

/** A registry user: a tenant's robot account, limited to its repositories. */
export interface RobotAccount {
  username: string;
  password: string;
  /** Repository prefixes the registry lets it read. */
  repositories: string[];
  /** The file the config's secret reference reads (`password: { fromFile }`). */
  passwordFile: string;
}

export interface StackOptions {
  /** `offline`: serverless offline (the Lambda bundle, as deployed); `serve`: `pullkeeper serve` (faster start). */
  api: 'offline' | 'serve';
  port?: number;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface Stack {
  dir: string;
  harness: Harness;
  idp: OidcIssuer;
  /** Entra ID + ACR token exchange (tenant B's registry is an "Azure Container Registry"). */
  acr: EntraAcrFake;
  api: Service;
  /** http://127.0.0.1:PORT */
  base: string;
  configFile: string;
  registryHost: string;
  /** Static robot accounts (tenant B's credential is minted through Entra ID and ACR instead). */
  robots: Record<'team-a' | 'platform', RobotAccount>;
  /** Every secret value of the stack (robot passwords, the Entra client secret, minted ACR tokens). */
  secretValues(): string[];
  /** The operator's API token (status page password); a CI job uses an OIDC token instead. */
  operatorToken: string;
  /** A CI OIDC token of the platform pipeline (allowed every tenant), as GitHub Actions would mint it. */
  ciToken(): Promise<string>;
  /** Tenant namespaces by tenant. */
  namespaces: Record<'team-a' | 'team-b', string[]>;
  stop(): Promise<void>;
}

const secret = () => randomBytes(18).toString('base64url');

/** A small app image: busybox plus one file that tells the tenants apart. */
async function appImage(owner: string) {
  return buildImage({
    layers: [{ busybox: true }, { files: [{ path: 'etc/app-owner', content: `${owner}\n` }] }],
    config: { Cmd: ['sh'] },
  });
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), 'pullkeeper-demo-'));
  let harness: Harness | undefined;
  let idp: OidcIssuer | undefined;
  let acr: EntraAcrFake | undefined;
  let api: Service | undefined;
  const stop = async () => {
    await api?.stop();
    await Promise.allSettled([harness?.stop(), idp?.stop(), acr?.stop()]);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const t0 = performance.now();
    o.log('  starting kube-apiserver + etcd, the registry, 3 SSH nodes and the CI OIDC issuer…');
    [harness, idp] = await Promise.all([
      startHarness({
        dir: join(dir, 'harness'),
        cluster: true,
        registry: { auth: 'token' },
        nodes: 3,
        ...(o.signal ? { signal: o.signal } : {}),
      }),
      startOidcIssuer(),
    ]);
    const h = harness;
    const reg = h.registry!;
    o.log(
      `  kube-apiserver ${h.cluster!.info.server}, registry ${reg.info.host}, ` +
        `nodes ${h.nodes!.info.nodes.map((n) => `${n.name} ${n.address}`).join(', ')}, ` +
        `CI OIDC issuer ${idp.info.issuer} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );

    // Robot accounts: tenant A and the node-wide platform images; tenant B's registry is an ACR.
    const secretsDir = join(dir, 'secrets');
    await mkdir(secretsDir, { mode: 0o700 });
    const robots = {} as Stack['robots'];
    for (const [who, repos] of [
      ['team-a', ['team-a/']],
      ['platform', ['platform/']],
    ] as const) {
      const r: RobotAccount = {
        username: `${who}-puller`,
        password: secret(),
        repositories: [...repos],
        passwordFile: join(secretsDir, `${who}-password`),
      };
      await writeFile(r.passwordFile, r.password, { mode: 0o600 });
      await reg.allow(r.username, r.password);
      reg.limitRepositories(r.username, r.repositories);
      robots[who] = r;
    }
    // Tenant B: Entra ID client credentials -> ACR /oauth2/exchange -> an ACR refresh token (3 h) as the
    // docker password, for a registry whose login server is the local one. It reads team-b/ only.
    await mkdir(join(dir, 'acr'));
    acr = await startEntraAcr({ dir: join(dir, 'acr'), tls: true, service: reg.info.host });
    const acrFake = acr;
    acrFake.onMint((m) => {
      reg.limitRepositories(m.username, ['team-b/']);
      void reg.allow(m.username, m.password);
    });
    const acrSecretFile = join(secretsDir, 'team-b-entra-client-secret');
    await writeFile(acrSecretFile, acrFake.info.clientSecret, { mode: 0o600 });
    o.log(`  Entra ID + ACR token exchange for tenant B on ${acrFake.info.baseUrl} (https)`);
    const pusher = { username: 'demo-pusher', password: secret() };
    await reg.allow(pusher.username, pusher.password);
    await pushImage(reg, 'team-a/app', 'v1', await appImage('team-a'), pusher);
    await pushImage(reg, 'team-b/api', 'v1', await appImage('team-b'), pusher);
    await pushImage(reg, 'platform/agent', 'v1', await appImage('platform'), pusher);
    o.log(`  private images pushed: ${reg.info.host}/team-a/app:v1, team-b/api:v1, platform/agent:v1`);

    // Tenant namespaces and pullkeeper's own identity (least privilege, as `pullkeeper rbac` prints it).
    const namespaces = { 'team-a': ['team-a-dev', 'team-a-prod'], 'team-b': ['team-b-prod'] };
    for (const [tenant, nss] of Object.entries(namespaces))
      for (const ns of nss) await h.cluster!.createNamespace(ns, { tenant });
    const id = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      // What `pullkeeper rbac` prints for the two tenants below.
      config: rbacConfigFor(
        Object.keys(namespaces).map((tenant) => ({ name: tenant, namespaces: { matchLabels: { tenant } } })),
      ),
    });
    const kubeconfig = join(dir, 'kubeconfig');
    writeTokenKubeconfig(kubeconfig, h.cluster!.info, id.token);
    const knownHosts = join(dir, 'known_hosts');
    await writeFile(knownHosts, `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);

    const operatorToken = `pk_demo_${secret()}`;
    const { createHash } = await import('node:crypto');
    const configFile = join(dir, 'pullkeeper.yaml');
    const staticReg = (name: string, r: RobotAccount) => ({
      name,
      kind: 'static',
      server: reg.info.host,
      username: { value: r.username },
      password: { fromFile: r.passwordFile },
    });
    const config = {
      clusters: [{ name: 'local', kubeconfig }],
      registries: [
        staticReg('team-a-registry', robots['team-a']),
        {
          name: 'team-b-acr',
          kind: 'acr',
          loginServer: reg.info.host,
          tenantId: acrFake.info.tenantId,
          authorityHost: acrFake.info.authorityHost,
          exchangeEndpoint: acrFake.info.exchangeEndpoint,
          credential: { clientId: acrFake.info.clientId, clientSecret: { fromFile: acrSecretFile } },
        },
        staticReg('platform-registry', robots.platform),
      ],
      tenants: [
        {
          name: 'team-a',
          namespaces: { matchLabels: { tenant: 'team-a' } },
          registries: ['team-a-registry'],
        },
        {
          name: 'team-b',
          namespaces: { matchLabels: { tenant: 'team-b' } },
          registries: ['team-b-acr'],
        },
      ],
      nodes: {
        inventory: h.nodes!.info.nodes.map((n) => ({ name: n.name, address: n.address })),
        registries: ['platform-registry'],
        ssh: {
          privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
          knownHosts: { fromFile: knownHosts },
        },
      },
      api: {
        auth: {
          oidc: [
            {
              issuer: idp.info.issuer,
              audience: 'pullkeeper',
              allow: [{ claims: { repository_id: '1001' }, tenants: '*' }],
            },
          ],
          tokens: [
            {
              name: 'operator',
              sha256: createHash('sha256').update(operatorToken).digest('hex'),
              tenants: '*',
            },
          ],
        },
      },
    };
    await writeFile(
      configFile,
      `# Written by the pullkeeper demo for its local stack (removed when the demo stops).\n${stringify(config)}`,
      { mode: 0o600 },
    );
    const check = await exec(process.execPath, ['bin/pullkeeper.js', 'config', 'check', configFile], {
      cwd: REPO_ROOT,
    }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`the demo's pullkeeper.yaml is invalid: ${err.stderr || err.stdout}`);
    });
    o.log(`  ${configFile}: ${check.stdout.trim().split('\n').at(-1)}`);

    const port = o.port ?? (await freePort());
    const base = `http://127.0.0.1:${port}`;
    const env = {
      ...process.env,
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
      PULLKEEPER_CONFIG: configFile,
      // Trust the Entra fake's self-signed certificate, as a private CA is trusted in production.
      ...(acrFake.info.caCertFile ? { PULLKEEPER_EXTRA_CA_CERTS: acrFake.info.caCertFile } : {}),
    };
    o.log(
      o.api === 'offline'
        ? '  starting serverless offline (esbuild bundles each function first; about 30 s)…'
        : '  starting pullkeeper serve…',
    );
    const t1 = performance.now();
    api = await startService({
      name: o.api === 'offline' ? 'serverless offline' : 'pullkeeper serve',
      command: process.execPath,
      args:
        o.api === 'offline'
          ? [
              'node_modules/serverless/bin/serverless.js',
              'offline',
              'start',
              '--httpPort',
              String(port),
              '--lambdaPort',
              String(await freePort()),
            ]
          : ['bin/pullkeeper.js', 'serve', '--config', configFile, '--port', String(port)],
      cwd: REPO_ROOT,
      env,
      logFile: join(dir, 'api.log'),
      readyTimeoutMs: 180_000,
      ...(o.signal ? { signal: o.signal } : {}),
      ready: async (signal) => (await fetch(`${base}/healthz`, { signal })).ok,
    });
    o.log(
      `  ${o.api === 'offline' ? 'serverless offline (the Lambda bundles)' : 'pullkeeper serve'} on ${base} ` +
        `(${((performance.now() - t1) / 1000).toFixed(1)} s; log ${join(dir, 'api.log')})`,
    );
    const issuer = idp;
    return {
      dir,
      harness: h,
      idp: issuer,
      acr: acrFake,
      api,
      base,
      configFile,
      registryHost: reg.info.host,
      robots,
      secretValues: () => [
        ...Object.values(robots).map((r) => r.password),
        acrFake.info.clientSecret,
        ...acrFake.minted().map((m) => m.password),
        operatorToken,
        pusher.password,
      ],
      operatorToken,
      namespaces,
      ciToken: () =>
        issuer.sign({
          aud: 'pullkeeper',
          sub: 'repo:acme/platform:ref:refs/heads/main',
          repository: 'acme/platform',
          repository_id: '1001',
          ref: 'refs/heads/main',
        }),
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
