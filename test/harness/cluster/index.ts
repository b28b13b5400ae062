/**
 * A real Kubernetes API for tests: etcd + kube-apiserver built from Go modules
 * (build.sh), on free loopback ports, with RBAC on, a random admin token, a
 * throw-away CA and service-account signing key. No controller-manager runs:
 * namespaces get no `default` ServiceAccount by themselves (createNamespace
 * adds it) and deleted namespaces stay Terminating.
 *
 *   const cluster = await startCluster({ dir });
 *   const ns = await cluster.createNamespace(undefined, { tenant: 'team-a' });
 *   const id = await cluster.createIdentity({ namespace: 'pullkeeper-system', name: 'pullkeeper', rbac: 'pullkeeper' });
 *   // run pullkeeper with id.kubeConfig: exactly the RBAC of infra/kubernetes/rbac.yaml
 *   await cluster.stop();
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ApiException,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  type V1PolicyRule,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { freePort } from '../ports.js';
import { commandCheck, HarnessError, run, type Service, startService } from '../proc.js';
import type { Component, DoctorCheck } from '../types.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = join(here, '..', '..', '..');
/** The RBAC that pullkeeper ships; createIdentity({rbac: 'pullkeeper'}) applies exactly this. */
export const RBAC_YAML = join(repoRoot, 'infra', 'kubernetes', 'rbac.yaml');
/** The ClusterRole of rbac.yaml that the per-namespace variant binds with RoleBindings. */
export const TENANT_WRITER_ROLE = 'pullkeeper-tenant-writer';
const HARNESS_MANAGER = 'pullkeeper-harness';
/** First build on a 2-core VM: 258 s with the Go modules already downloaded (downloading adds a few minutes). */
const BUILD_MINUTES = '~5';

export interface ClusterInfo {
  /** https://127.0.0.1:PORT */
  server: string;
  /** base64 of the PEM CA that signed the apiserver's serving cert (KubeConfig caData). */
  caData: string;
  /** Bearer token of a system:masters user, random per start (test-only). */
  adminToken: string;
  /** A kubeconfig for humans and tools (`KUBECONFIG=... kubectl get ns`). */
  kubeconfigPath: string;
  /**
   * With StartClusterOptions.nodeIdentity: a kubelet's own user, `system:node:<name>` in group
   * `system:nodes` (a static token; no RBAC is bound to it here), and NodeRestriction admission on.
   */
  node?: { name: string; token: string };
}

/** Typed API clients for one identity. */
export interface ClusterClient {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
  authorization: AuthorizationV1Api;
  /** Generic client (apply any manifest; server-side apply via PatchStrategy.ServerSideApply). */
  objects: KubernetesObjectApi;
}

export interface Identity {
  namespace: string;
  name: string;
  /** `system:serviceaccount:<namespace>:<name>` */
  username: string;
  /** A bound ServiceAccount token from the TokenRequest API. */
  token: string;
  expiresAt: Date;
  kubeConfig: KubeConfig;
  client: ClusterClient;
}

export interface CreateIdentityOptions {
  namespace: string;
  name: string;
  /**
   * 'pullkeeper' applies what `pullkeeper rbac` prints to this ServiceAccount: for `config`
   * when given, else infra/kubernetes/rbac.yaml (generated for infra/examples/plain.yaml);
   * rules make a ClusterRole.
   */
  rbac: 'pullkeeper' | V1PolicyRule[];
  /** With rbac 'pullkeeper': the test's pullkeeper config (the object written to its config file). */
  config?: unknown;
  /** With rbac 'pullkeeper': apply this YAML instead (what `pullkeeper rbac --service-account NS/NAME` printed). */
  yaml?: string;
  /**
   * Only with rbac 'pullkeeper': the per-namespace variant (`pullkeeper rbac --per-namespace`).
   * The tenant-writer role is bound with one RoleBinding in each of these namespaces only.
   */
  tenantNamespaces?: string[];
  /** TokenRequest lifetime; the API server's minimum is 600. */
  expirationSeconds?: number;
}

export interface Cluster extends Component<ClusterInfo> {
  /** The system:masters client. */
  readonly admin: ClusterClient;
  readonly pids: { etcd: number; apiserver: number };
  /** Start-up, ms since startCluster was called: certs/keys made, etcd ready, total; apiserver: from etcd ready to /readyz 200. */
  readonly timings: { certsMs: number; etcdMs: number; apiserverMs: number; totalMs: number };
  readonly logFiles: { etcd: string; apiserver: string };
  kubeConfigFor(token: string): KubeConfig;
  clientFor(token: string): ClusterClient;
  /** Creates a namespace (random `t-xxxxxxxx` name when omitted) and its `default` ServiceAccount. */
  createNamespace(name?: string, labels?: Record<string, string>): Promise<string>;
  createServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount>;
  /** ServiceAccount + RBAC + TokenRequest token; waits until the API server authorizes it. */
  createIdentity(opts: CreateIdentityOptions): Promise<Identity>;
  /** Kills kube-apiserver (SIGKILL, no drain): requests in flight fail. etcd keeps running. */
  killApiserver(): Promise<void>;
  /** Starts kube-apiserver again on the same port and data after killApiserver(). */
  startApiserver(): Promise<void>;
}

export interface StartClusterOptions {
  /** Scratch directory (created): certs, tokens, etcd data, logs, kubeconfig. */
  dir: string;
  /** Cancels start-up only (a started cluster is stopped with stop()). */
  signal?: AbortSignal;
  /** Directory holding bin/kube-apiserver and bin/etcd; default: build.sh's cache. */
  binDir?: string;
  readyTimeoutMs?: number;
  /**
   * Extra authenticators (default: none; the static admin token and ServiceAccount tokens
   * always work). `tokenWebhook`: --authentication-token-webhook-config-file pointing at
   * an https TokenReview endpoint (the EKS verifier in eks-webhook.ts). `jwt`:
   * --authentication-config with these JWT issuers (the Entra fake for AKS tokens).
   */
  authn?: {
    tokenWebhook?: { url: string; caPem: string };
    jwt?: JwtIssuer[];
  };
  /**
   * A node user for a kubelet (ClusterInfo.node) and the NodeRestriction admission plugin
   * (off by default in kube-apiserver; on in real clusters), which limits what node users may
   * change and, with ServiceAccountNodeAudienceRestriction (beta, on since 1.33), which token
   * audiences a node may request. The Node authorizer stays off: RBAC alone authorizes the node.
   */
  nodeIdentity?: { name: string };
}

/** One `jwt` entry of an AuthenticationConfiguration (apiserver.config.k8s.io/v1). */
export interface JwtIssuer {
  /** Must equal the tokens' `iss`. */
  issuer: string;
  /** Where discovery is fetched when it is not `<issuer>/.well-known/openid-configuration`. */
  discoveryURL?: string;
  /** PEM CA for the discovery and JWKS endpoints. */
  caPem?: string;
  audiences: string[];
  usernameClaim: string;
  usernamePrefix: string;
}

// ---------------------------------------------------------------------------
// binaries

/**
 * Where a build script of the harness caches what it builds from the tools module:
 * `<cache>/<prefix>-<key>`, the key being sha256 of tools/go.mod + tools/go.sum + the script
 * (the scripts compute the same key).
 */
export function toolsCacheDir(prefix: string, buildScript: string): string {
  const tools = join(here, 'tools');
  const hash = createHash('sha256');
  for (const f of [join(tools, 'go.mod'), join(tools, 'go.sum'), buildScript]) {
    hash.update(readFileSync(f));
  }
  const root =
    process.env.PULLKEEPER_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pullkeeper');
  return join(root, `${prefix}-${hash.digest('hex').slice(0, 16)}`);
}

/** The directory build.sh caches kube-apiserver and etcd into. */
export function cachedBinDir(): string {
  return toolsCacheDir('kube', join(here, 'build.sh'));
}

function binariesIn(dir: string): { apiserver: string; etcd: string } | undefined {
  const apiserver = join(dir, 'bin', 'kube-apiserver');
  const etcd = join(dir, 'bin', 'etcd');
  return existsSync(apiserver) && existsSync(etcd) ? { apiserver, etcd } : undefined;
}

// ---------------------------------------------------------------------------
// doctor

/** Go ≥ 1.24 for the build, the cached binaries, openssl for the test CA. */
export async function checkCluster(): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const fix = 'bash test/harness/cluster/build.sh';
  const bins = binariesIn(cachedBinDir());
  const go = await run('go', ['version'], { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
  const m = go?.code === 0 ? /go(\d+)\.(\d+)(?:\.(\d+))?/.exec(go.stdout) : null;
  if (!m) {
    checks.push({
      name: 'go',
      ok: Boolean(bins),
      detail: bins
        ? 'not installed (not needed: the binaries are cached)'
        : 'not installed; needed once to build kube-apiserver and etcd',
      fix: 'install Go 1.24 or newer (https://go.dev/dl/), then bash test/harness/cluster/build.sh',
    });
  } else {
    const [maj, min] = [Number(m[1]), Number(m[2])];
    const ok = maj > 1 || (maj === 1 && min >= 24);
    checks.push({
      name: 'go',
      ok: ok || Boolean(bins),
      detail: ok
        ? go!.stdout.trim()
        : `${go!.stdout.trim()} is older than 1.24 (the tools module needs 1.24)`,
      ...(ok ? {} : { fix: 'install Go 1.24 or newer (https://go.dev/dl/)' }),
    });
  }
  checks.push(
    bins
      ? { name: 'kube-apiserver + etcd', ok: true, detail: `cached in ${join(cachedBinDir(), 'bin')}` }
      : {
          name: 'kube-apiserver + etcd',
          ok: false,
          detail: `not built yet (expected in ${join(cachedBinDir(), 'bin')}); the build takes ${BUILD_MINUTES} minutes on 2 cores, once`,
          fix,
        },
  );
  checks.push(
    await commandCheck(
      'openssl',
      'openssl',
      ['version'],
      'not found; needed for the test CA',
      'apt-get install -y openssl',
    ),
  );
  return checks;
}

// ---------------------------------------------------------------------------
// errors

/** Status of a failed API call: `code` (HTTP) and the Status `reason` (the body may come as a string or as parsed JSON, depending on client-node's version). */
export function apiStatus(err: unknown): { code: number; reason?: string; message?: string } | undefined {
  if (!(err instanceof ApiException)) return undefined;
  let body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      /* not JSON */
    }
  }
  const status = (body && typeof body === 'object' ? body : {}) as { reason?: string; message?: string };
  return { code: err.code, reason: status.reason, message: status.message };
}

// ---------------------------------------------------------------------------
// clients

export function kubeConfigFor(info: Pick<ClusterInfo, 'server' | 'caData'>, token: string): KubeConfig {
  const kc = new KubeConfig();
  // A distinct user name per token: client-node keys credential caches by user name.
  const user = `u-${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
  kc.loadFromOptions({
    clusters: [{ name: 'pullkeeper-test', server: info.server, caData: info.caData, skipTLSVerify: false }],
    users: [{ name: user, token }],
    contexts: [{ name: 'pullkeeper-test', cluster: 'pullkeeper-test', user }],
    currentContext: 'pullkeeper-test',
  });
  return kc;
}

export function clientFor(info: Pick<ClusterInfo, 'server' | 'caData'>, token: string): ClusterClient {
  const kubeConfig = kubeConfigFor(info, token);
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    rbac: kubeConfig.makeApiClient(RbacAuthorizationV1Api),
    authorization: kubeConfig.makeApiClient(AuthorizationV1Api),
    objects: KubernetesObjectApi.makeApiClient(kubeConfig),
  };
}

// ---------------------------------------------------------------------------
// start

const execFileP = promisify(execFile);

/**
 * kube-apiserver's own environment. Start-up allocates a lot and is CPU-bound on 2 cores:
 * no garbage collection below 1 GiB of heap. Set PULLKEEPER_APISERVER_GOGC=default to compare.
 */
const APISERVER_ENV: Record<string, string> =
  process.env.PULLKEEPER_APISERVER_GOGC === 'default' ? {} : { GOGC: 'off', GOMEMLIMIT: '1GiB' };

async function makeCerts(dir: string): Promise<{ caPem: string; certFile: string; keyFile: string }> {
  const ca = { crt: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  const certFile = join(dir, 'apiserver.crt');
  const keyFile = join(dir, 'apiserver.key');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'];
  const openssl = async (args: string[]) => {
    try {
      await execFileP('openssl', args, { timeout: 20_000 });
    } catch (err) {
      throw new HarnessError(`openssl ${args[0]} failed (is openssl installed?): ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    ca.key,
    '-out',
    ca.crt,
    '-subj',
    '/CN=pullkeeper-test-ca',
  ]);
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-CA',
    ca.crt,
    '-CAkey',
    ca.key,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-subj',
    '/CN=kube-apiserver',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc',
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'extendedKeyUsage=serverAuth',
  ]);
  return { caPem: await readFile(ca.crt, 'utf8'), certFile, keyFile };
}

function httpOk(url: string, opts: { ca?: string; token?: string; signal: AbortSignal }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca: opts.ca,
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        signal: opts.signal,
        timeout: 2000,
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function httpGetOk(url: string, signal: AbortSignal): Promise<boolean> {
  try {
    const res = await fetch(url, { signal });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

export async function startCluster(opts: StartClusterOptions): Promise<Cluster> {
  const t0 = performance.now();
  const binDir = opts.binDir ?? cachedBinDir();
  const bins = binariesIn(binDir);
  if (!bins) {
    throw new HarnessError(
      `kube-apiserver/etcd not found in ${binDir}/bin. Build them once (${BUILD_MINUTES} minutes): bash test/harness/cluster/build.sh`,
    );
  }
  const dir = opts.dir;
  const certDir = join(dir, 'certs');
  const dataDir = join(dir, 'etcd');
  await mkdir(certDir, { recursive: true });
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const adminToken = randomBytes(24).toString('base64url');
  const node = opts.nodeIdentity
    ? { name: opts.nodeIdentity.name, token: randomBytes(24).toString('base64url') }
    : undefined;
  const logFiles = { etcd: join(dir, 'etcd.log'), apiserver: join(dir, 'kube-apiserver.log') };
  const started: Service[] = [];
  const track = (s: Service) => {
    started.push(s);
    return { s, ms: performance.now() - t0 };
  };
  // Aborted when any part fails, so the other start-up stops waiting and stops its process.
  const failed = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const server = `https://127.0.0.1:${apiPort}`;

  // etcd starts while the keys and certs are made; kube-apiserver waits for both. (Started
  // before etcd serves, it sat in gRPC's 1 s reconnect backoff: ~0.5 s slower overall.)
  const etcdP = startService({
    name: 'etcd',
    command: bins.etcd,
    args: [
      '--name=pk',
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=pk=${peerUrl}`,
      '--unsafe-no-fsync', // test data only: no fsync, much faster writes
      // Single member on loopback: elect itself in ~0.1 s instead of ~0.4 s.
      '--heartbeat-interval=10',
      '--election-timeout=100',
      '--log-level=warn',
    ],
    logFile: logFiles.etcd,
    ready: (sig) => httpGetOk(`${etcdUrl}/health`, sig),
    readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
    signal,
  }).then(track);
  const setupP = (async () => {
    const certs = await makeCerts(certDir);
    const sa = generateKeyPairSync('ec', {
      namedCurve: 'prime256v1',
      privateKeyEncoding: { type: 'sec1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    await Promise.all([
      writeFile(join(dir, 'sa.key'), sa.privateKey, { mode: 0o600 }),
      writeFile(join(dir, 'sa.pub'), sa.publicKey),
      writeFile(
        join(dir, 'tokens.csv'),
        `${adminToken},admin,admin-uid,system:masters\n` +
          (node ? `${node.token},system:node:${node.name},node-${node.name},system:nodes\n` : ''),
        { mode: 0o600 },
      ),
    ]);
    return { certs, ms: performance.now() - t0 };
  })();
  const authnArgs = await authnFlags(dir, opts.authn);
  const launchApiserver = (caPem: string, certFile: string, keyFile: string, sig: AbortSignal) =>
    startService({
      name: 'kube-apiserver',
      command: bins.apiserver,
      args: [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${certDir}`,
        `--tls-cert-file=${certFile}`,
        `--tls-private-key-file=${keyFile}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--authorization-mode=RBAC',
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        // 127.0.0.1 is not a valid Endpoints address: skip the `kubernetes` Service endpoint loop.
        '--endpoint-reconciler-type=none',
        '--profiling=false',
        ...(node ? ['--enable-admission-plugins=NodeRestriction'] : []),
        ...authnArgs,
        // Debugging aid, e.g. PULLKEEPER_APISERVER_FLAGS='-v=6' to log every request.
        ...(process.env.PULLKEEPER_APISERVER_FLAGS?.split(/\s+/).filter(Boolean) ?? []),
      ],
      env: { ...process.env, ...APISERVER_ENV },
      logFile: logFiles.apiserver,
      ready: (rs) => httpOk(`${server}/readyz`, { ca: caPem, token: adminToken, signal: rs }),
      readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      signal: sig,
    });
  const apiP = Promise.all([setupP, etcdP])
    .then(([{ certs }]) => launchApiserver(certs.caPem, certs.certFile, certs.keyFile, signal))
    .then(track);

  let parts: [Awaited<typeof setupP>, Awaited<typeof etcdP>, Awaited<typeof apiP>];
  try {
    parts = await Promise.all([setupP, etcdP, apiP]);
  } catch (err) {
    failed.abort();
    await Promise.allSettled([etcdP, apiP]);
    await Promise.all(started.map((s) => s.stop(3000)));
    throw err;
  }
  const [{ certs, ms: certsMs }, { s: etcd, ms: etcdMs }, { s: apiserver, ms: totalMs }] = parts;
  const info: ClusterInfo = {
    server,
    caData: Buffer.from(certs.caPem).toString('base64'),
    adminToken,
    kubeconfigPath: join(dir, 'kubeconfig'),
    ...(node ? { node } : {}),
  };
  await writeKubeconfig(info);
  const timings = {
    certsMs: Math.round(certsMs),
    etcdMs: Math.round(etcdMs),
    apiserverMs: Math.round(totalMs - Math.max(certsMs, etcdMs)),
    totalMs: Math.round(totalMs),
  };
  const relaunch = () =>
    launchApiserver(certs.caPem, certs.certFile, certs.keyFile, new AbortController().signal);
  return makeCluster({ info, etcd, apiserver, dataDir, timings, logFiles, relaunch });
}

/** Files and flags for StartClusterOptions.authn. */
async function authnFlags(dir: string, authn: StartClusterOptions['authn']): Promise<string[]> {
  const args: string[] = [];
  if (authn?.tokenWebhook) {
    const file = join(dir, 'token-webhook.kubeconfig');
    const doc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'webhook',
          cluster: {
            server: authn.tokenWebhook.url,
            'certificate-authority-data': Buffer.from(authn.tokenWebhook.caPem).toString('base64'),
          },
        },
      ],
      users: [{ name: 'apiserver', user: {} }],
      contexts: [{ name: 'webhook', context: { cluster: 'webhook', user: 'apiserver' } }],
      'current-context': 'webhook',
    };
    await writeFile(file, stringify(doc), { mode: 0o600 });
    // No cache: a refused token must stay refused, an accepted one is checked each time.
    args.push(
      `--authentication-token-webhook-config-file=${file}`,
      '--authentication-token-webhook-version=v1',
      '--authentication-token-webhook-cache-ttl=0s',
    );
  }
  if (authn?.jwt?.length) {
    const file = join(dir, 'authentication-config.yaml');
    const doc = {
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'AuthenticationConfiguration',
      jwt: authn.jwt.map((j) => ({
        issuer: {
          url: j.issuer,
          ...(j.discoveryURL ? { discoveryURL: j.discoveryURL } : {}),
          ...(j.caPem ? { certificateAuthority: j.caPem } : {}),
          audiences: j.audiences,
        },
        claimMappings: { username: { claim: j.usernameClaim, prefix: j.usernamePrefix } },
      })),
    };
    await writeFile(file, stringify(doc));
    args.push(`--authentication-config=${file}`);
  }
  return args;
}

async function writeKubeconfig(info: ClusterInfo): Promise<void> {
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'pullkeeper-test',
        cluster: { server: info.server, 'certificate-authority-data': info.caData },
      },
    ],
    users: [{ name: 'admin', user: { token: info.adminToken } }],
    contexts: [{ name: 'pullkeeper-test', context: { cluster: 'pullkeeper-test', user: 'admin' } }],
    'current-context': 'pullkeeper-test',
  };
  await writeFile(info.kubeconfigPath, stringify(doc), { mode: 0o600 });
}

// ---------------------------------------------------------------------------
// the cluster object

function makeCluster(p: {
  info: ClusterInfo;
  etcd: Service;
  apiserver: Service;
  dataDir: string;
  timings: Cluster['timings'];
  logFiles: Cluster['logFiles'];
  relaunch: () => Promise<Service>;
}): Cluster {
  const { info } = p;
  const admin = clientFor(info, info.adminToken);
  let stopping: Promise<void> | undefined;
  let apiserver = p.apiserver;

  const createServiceAccount = async (namespace: string, name: string) => {
    try {
      return await admin.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    } catch (err) {
      if (apiStatus(err)?.code !== 409) throw err;
      return admin.core.readNamespacedServiceAccount({ namespace, name });
    }
  };

  const createNamespace = async (name?: string, labels?: Record<string, string>) => {
    const ns = name ?? `t-${randomBytes(4).toString('hex')}`;
    await admin.core.createNamespace({ body: { metadata: { name: ns, labels } } });
    await createServiceAccount(ns, 'default');
    return ns;
  };

  const ensureNamespace = async (ns: string) => {
    try {
      await admin.core.createNamespace({ body: { metadata: { name: ns } } });
      await createServiceAccount(ns, 'default');
    } catch (err) {
      if (apiStatus(err)?.code !== 409) throw err;
    }
  };

  const createIdentity = async (o: CreateIdentityOptions): Promise<Identity> => {
    await ensureNamespace(o.namespace);
    const manifests =
      o.rbac === 'pullkeeper'
        ? await pullkeeperManifests(o.namespace, o.name, o.tenantNamespaces, o.config, o.yaml)
        : customManifests(o.namespace, o.name, o.rbac);
    // The status store's namespace (pullkeeper-system by default) exists, as `pullkeeper rbac` output makes it.
    for (const m of manifests as Obj[])
      if (m.kind === 'RoleBinding' && (m.roleRef as { name: string }).name.startsWith('pullkeeper-status'))
        await ensureNamespace(m.metadata!.namespace!);
    for (const m of manifests) {
      await admin.objects.patch(
        m,
        undefined,
        undefined,
        HARNESS_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
    }
    const tr = await admin.core.createNamespacedServiceAccountToken({
      namespace: o.namespace,
      name: o.name,
      body: { spec: { audiences: [], expirationSeconds: o.expirationSeconds ?? 600 } },
    });
    const token = tr.status?.token;
    if (!token) throw new HarnessError(`TokenRequest for ${o.namespace}/${o.name} returned no token`);
    const client = clientFor(info, token);
    await waitAuthorized(client, manifests, o);
    await waitPolicyActive(client, manifests, o);
    return {
      namespace: o.namespace,
      name: o.name,
      username: `system:serviceaccount:${o.namespace}:${o.name}`,
      token,
      expiresAt: new Date(tr.status?.expirationTimestamp ?? Date.now()),
      kubeConfig: client.kubeConfig,
      client,
    };
  };

  return {
    info,
    admin,
    get pids() {
      return { etcd: p.etcd.pid, apiserver: apiserver.pid };
    },
    async killApiserver() {
      await apiserver.stop(0);
    },
    async startApiserver() {
      apiserver = await p.relaunch();
    },
    timings: p.timings,
    logFiles: p.logFiles,
    kubeConfigFor: (token) => kubeConfigFor(info, token),
    clientFor: (token) => clientFor(info, token),
    createNamespace,
    createServiceAccount,
    createIdentity,
    stop() {
      stopping ??= (async () => {
        // kube-apiserver first (its shutdown still talks to etcd). It stops serving and
        // drains within a few ms of TERM, then often idles ~1 s in the ServiceCIDR
        // allocator's worker period before exiting: KILL it after 300 ms (nothing
        // of it is kept: the etcd data is removed below).
        await apiserver.stop(300);
        await p.etcd.stop(5000);
        await rm(p.dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------
// RBAC manifests

type Obj = KubernetesObject & Record<string, unknown>;
interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/**
 * A config that only serves `createIdentity({rbac: 'pullkeeper', config})`: the tenants as
 * given (with `registries` defaulting to one placeholder), placeholder cluster and registries.
 */
export function rbacConfigFor(
  tenants: Array<{ name: string; namespaces: unknown; registries?: string[]; [k: string]: unknown }>,
  extra: Record<string, unknown> = {},
): unknown {
  const ts = tenants.map((t) => ({ ...t, registries: t.registries ?? ['placeholder'] }));
  const regs = [...new Set(['placeholder', ...ts.flatMap((t) => t.registries)])];
  return {
    clusters: [{ name: 'test', kubeconfig: '-' }],
    registries: regs.map((name) => ({
      name,
      kind: 'static',
      server: `${name}.registry.test`,
      username: { value: 'u' },
      password: { value: 'p' },
    })),
    tenants: ts,
    ...extra,
  };
}

/**
 * What `pullkeeper rbac` prints (src/app/rbac.ts), re-targeted at the ServiceAccount
 * namespace/name: for `config` generated for that identity, else infra/kubernetes/rbac.yaml
 * (generated for infra/examples/plain.yaml). The ServiceAccount, the binding subjects and the
 * admission policy's username move to the identity; cluster-scoped objects (ClusterRoles,
 * policies) and bindings get a per-identity name unless the identity is the shipped one, so
 * several identities with different configs live in one cluster. `tenantNamespaces`: the
 * namespaced rules are bound with a RoleBinding in each of these namespaces instead of
 * cluster-wide (what --per-namespace prints, plus the RoleBindings a label-selected tenant
 * needs).
 */
export async function pullkeeperManifests(
  namespace: string,
  name: string,
  tenantNamespaces?: string[],
  config?: unknown,
  yaml?: string,
): Promise<KubernetesObject[]> {
  let objs: Obj[];
  const generated = config !== undefined || yaml !== undefined;
  if (yaml !== undefined) {
    objs = parseAllDocuments(yaml)
      .map((d) => {
        if (d.errors.length) throw new HarnessError(`pullkeeper rbac output: ${d.errors[0]!.message}`);
        return d.toJS() as Obj | null;
      })
      .filter((o): o is Obj => o !== null);
  } else if (config !== undefined) {
    const { parseConfig } = await import('../../../src/config/load.js');
    const { generateRbac } = await import('../../../src/app/rbac.js');
    objs = generateRbac(parseConfig(config, '<test config>'), {
      subject: { kind: 'ServiceAccount', namespace, name },
      perNamespace: tenantNamespaces !== undefined,
    }).objects.map((o) => o.object as Obj);
  } else {
    const docs = parseAllDocuments(await readFile(RBAC_YAML, 'utf8'));
    objs = docs
      .map((d) => {
        if (d.errors.length) throw new HarnessError(`${RBAC_YAML}: ${d.errors[0]!.message}`);
        return d.toJS() as Obj | null;
      })
      .filter((o): o is Obj => o !== null);
  }
  const sa = objs.find((o) => o.kind === 'ServiceAccount');
  if (!sa?.metadata?.name || !sa.metadata.namespace) {
    throw new HarnessError(`${RBAC_YAML} has no namespaced ServiceAccount`);
  }
  const shipped = { namespace: sa.metadata.namespace, name: sa.metadata.name };
  const shippedUser = `system:serviceaccount:${shipped.namespace}:${shipped.name}`;
  const user = `system:serviceaccount:${namespace}:${name}`;
  // Objects keep their names only for the shipped identity (pullkeeper-system/pullkeeper).
  const same = namespace === 'pullkeeper-system' && name === 'pullkeeper';
  const own = (n: string) => (same ? n : `${n}.${namespace}.${name}`);
  const retarget = (subjects: Subject[] = []) =>
    subjects.map((s) =>
      s.kind === 'ServiceAccount' && s.name === shipped.name && s.namespace === shipped.namespace
        ? { ...s, name, namespace }
        : s,
    );
  const roleRefOf = (o: Obj) => {
    const r = o.roleRef as { kind: string; name: string; apiGroup: string };
    return { ...r, name: own(r.name) };
  };
  const out: Obj[] = [];
  const boundIn = new Set<string>();
  let tenantBindingSeen = false;
  for (const o of objs) {
    const meta = { ...o.metadata };
    switch (o.kind) {
      case 'Namespace':
        continue; // the identity's namespace is made by createIdentity
      case 'ServiceAccount':
        out.push({ ...o, metadata: { ...meta, name, namespace } });
        break;
      case 'ClusterRole':
        out.push({ ...o, metadata: { ...meta, name: own(meta.name!) } });
        break;
      case 'ClusterRoleBinding': {
        const roleRef = o.roleRef as { kind: string; name: string };
        const subjects = retarget(o.subjects as Subject[]);
        if (tenantNamespaces && roleRef.kind === 'ClusterRole' && roleRef.name === TENANT_WRITER_ROLE) {
          tenantBindingSeen = true;
          for (const ns of tenantNamespaces) {
            boundIn.add(ns);
            out.push({
              ...o,
              kind: 'RoleBinding',
              metadata: { ...meta, name: own(meta.name!), namespace: ns },
              roleRef: roleRefOf(o),
              subjects,
            });
          }
          break;
        }
        out.push({ ...o, metadata: { ...meta, name: own(meta.name!) }, roleRef: roleRefOf(o), subjects });
        break;
      }
      case 'RoleBinding': {
        const roleRef = o.roleRef as { name: string };
        if (roleRef.name === TENANT_WRITER_ROLE) {
          tenantBindingSeen = true;
          boundIn.add(meta.namespace!);
        }
        out.push({
          ...o,
          metadata: {
            ...meta,
            name: own(meta.name!),
            namespace: meta.namespace === shipped.namespace ? namespace : meta.namespace,
          },
          roleRef: roleRefOf(o),
          subjects: retarget(o.subjects as Subject[]),
        });
        break;
      }
      case 'ValidatingAdmissionPolicy': {
        const spec = o.spec as { matchConditions?: Array<{ name: string; expression: string }> };
        out.push({
          ...o,
          metadata: { ...meta, name: own(meta.name!) },
          spec: {
            ...spec,
            matchConditions: spec.matchConditions?.map((c) => ({
              ...c,
              expression: c.expression.replaceAll(`'${shippedUser}'`, `'${user}'`),
            })),
          },
        });
        break;
      }
      case 'ValidatingAdmissionPolicyBinding': {
        const spec = o.spec as { policyName: string };
        out.push({
          ...o,
          metadata: { ...meta, name: own(meta.name!) },
          spec: { ...spec, policyName: own(spec.policyName) },
        });
        break;
      }
      default:
        out.push(o);
    }
  }
  if (tenantNamespaces && generated) {
    // Label-selected tenants: the RoleBindings `pullkeeper rbac --per-namespace` says to add by hand.
    tenantBindingSeen = true;
    for (const ns of tenantNamespaces.filter((n) => !boundIn.has(n)))
      out.push({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: own(TENANT_WRITER_ROLE), namespace: ns },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: own(TENANT_WRITER_ROLE),
        },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      } as Obj);
  }
  if (tenantNamespaces && !tenantBindingSeen) {
    throw new HarnessError(`${RBAC_YAML} has no ClusterRoleBinding to ${TENANT_WRITER_ROLE}`);
  }
  return out;
}

function customManifests(namespace: string, name: string, rules: V1PolicyRule[]): KubernetesObject[] {
  const roleName = `harness:${namespace}:${name}`;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: roleName },
      rules,
    } as Obj,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: roleName },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    } as Obj,
  ];
}

/**
 * RBAC reaches the authorizer through an informer: a request right after the binding was
 * written can still get 403. Ask as the identity itself (authn + authz) until every
 * binding's first concrete rule is allowed.
 */
async function waitAuthorized(
  client: ClusterClient,
  manifests: KubernetesObject[],
  o: CreateIdentityOptions,
): Promise<void> {
  const rulesOf = (roleName: string): V1PolicyRule[] =>
    o.rbac === 'pullkeeper'
      ? (((
          manifests.find((m) => m.kind === 'ClusterRole' && m.metadata?.name === roleName) as Obj | undefined
        )?.rules as V1PolicyRule[] | undefined) ?? [])
      : o.rbac;
  const probes: { namespace?: string; rule: V1PolicyRule }[] = [];
  for (const m of manifests as Obj[]) {
    if (m.kind !== 'ClusterRoleBinding' && m.kind !== 'RoleBinding') continue;
    const rule = rulesOf((m.roleRef as { name: string }).name).find(
      (r) => r.resources?.[0] && r.resources[0] !== '*' && r.verbs[0] && r.verbs[0] !== '*',
    );
    if (rule) probes.push({ namespace: m.kind === 'RoleBinding' ? m.metadata?.namespace : undefined, rule });
  }
  const deadline = Date.now() + 10_000;
  for (const { namespace, rule } of probes) {
    const attrs = {
      group: rule.apiGroups?.[0] ?? '',
      resource: rule.resources![0]!,
      verb: rule.verbs[0]!,
      ...(rule.resourceNames?.[0] ? { name: rule.resourceNames[0] } : {}),
      ...(namespace ? { namespace } : {}),
    };
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      const r = await client.authorization.createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: attrs } },
      });
      if (r.status?.allowed) break;
      if (Date.now() > deadline) {
        throw new HarnessError(
          `identity ${o.namespace}/${o.name} still not allowed to ${attrs.verb} ${attrs.resource} after 10 s: ${r.status?.reason ?? ''}`,
        );
      }
      await new Promise((res) => setTimeout(res, delay));
    }
  }
}

/**
 * Admission policies also reach the API server through an informer (a second or two): until
 * the identity's dry-run create of an Opaque Secret is denied by the Secret-writes policy,
 * wait, so tests see the policy in force.
 */
async function waitPolicyActive(
  client: ClusterClient,
  manifests: KubernetesObject[],
  o: CreateIdentityOptions,
): Promise<void> {
  if (!manifests.some((m) => m.kind === 'ValidatingAdmissionPolicy')) return;
  const writer = (manifests as Obj[]).find(
    (m) => m.kind === 'RoleBinding' && (m.roleRef as { name: string }).name.startsWith(TENANT_WRITER_ROLE),
  );
  const namespace = writer?.metadata?.namespace ?? o.namespace;
  const deadline = Date.now() + 15_000;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    let why = 'the dry-run create was allowed';
    try {
      await client.core.createNamespacedSecret({
        namespace,
        dryRun: 'All',
        body: { metadata: { name: 'pullkeeper-harness-probe' }, type: 'Opaque' },
      });
    } catch (err) {
      const st = apiStatus(err);
      if (st?.code === 422 || /ValidatingAdmissionPolicy/.test(st?.message ?? '')) return;
      why = `${st?.code ?? ''} ${st?.message ?? (err as Error).message}`;
    }
    if (Date.now() > deadline)
      throw new HarnessError(
        `the Secret-writes admission policy for ${o.namespace}/${o.name} is not in force after 15 s: ${why}`,
      );
    await new Promise((res) => setTimeout(res, delay));
  }
}

/**
 * Writes a kubeconfig (JSON, which is YAML) for one bearer token against the
 * harness apiserver, as a user would hand pullkeeper (`clusters[].kubeconfig`).
 */
export function writeTokenKubeconfig(
  path: string,
  info: Pick<ClusterInfo, 'server' | 'caData'>,
  token: string,
): string {
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: info.server, 'certificate-authority-data': info.caData } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
  return path;
}
