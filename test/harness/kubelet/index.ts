/**
 * A real kubelet node for tests: Debian's containerd (1.6) with a private
 * config (root, state, sockets, runc root, CNI config and IPAM data all under
 * the caller's dir) and kubelet v1.34.2 built from the cluster harness's Go
 * tools module (kubelet/build.sh), registered with the harness apiserver under
 * a random node name. The sandbox ("pause") image comes from the harness
 * registry: a busybox image that sleeps, pushed there, pulled into containerd
 * and tagged as containerd's `sandbox_image`. Both processes are started and
 * stopped by PID; pods are deleted and leftover containers killed through our
 * own runc root on stop.
 *
 *   const h = await startHarness({ cluster: true, registry: { auth: 'token' }, kubelet: {} });
 *   await h.cluster!.admin.core.createNamespacedPod({ namespace, body: h.kubelet!.pod({ name, image }) });
 *   const outcome = await h.kubelet!.waitOutcome(namespace, name);  // 'Running' | 'ErrImagePull' | ...
 *
 * Facts this module relies on (measured on the project VM, docs/harness.md):
 * runc cannot lower oom_score_adj here, so containerd runs with
 * `restrict_oom_score_adj = true`; no controller-manager runs, so pods set
 * `automountServiceAccountToken: false`.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { type Cluster, toolsCacheDir } from '../cluster/index.js';
import { freePort } from '../ports.js';
import { commandCheck, HarnessError, run, type Service, startService } from '../proc.js';
import { buildImage, pushImage } from '../registry/images.js';
import type { Registry } from '../registry/index.js';
import type { Component, DoctorCheck } from '../types.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** What containerd's CRI plugin runs as every pod's sandbox; we tag the harness image with this name. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
/** Debian's CNI plugins (package containernetworking-plugins). */
const CNI_BIN_DIR = '/usr/lib/cni';
const CNI_PLUGINS = ['bridge', 'host-local', 'loopback'];
/** Bridges this module creates: `pkk<6 hex>`; pods get a random /24 of 10.214.0.0/16. */
export const KUBELET_BRIDGE_PREFIX = 'pkk';
/**
 * Owner markers: `<id>.json` = { pid of the test process, dir, bridge }, so removeKubeletLeftovers()
 * (`harness down`) cleans up after a crashed run and spares live harnesses.
 */
const OWNER_DIR = '/run/pullkeeper-kubelet';
const BUILD_MINUTES = '~2 (after kube-apiserver is built; ~6 from empty Go caches)';

/** One provider entry of a CredentialProviderConfig (kubelet.config.k8s.io/v1). */
export interface CredentialProviderEntry {
  name: string;
  /** Default: the harness registry's host. */
  matchImages?: string[];
  defaultCacheDuration?: string;
  apiVersion?: string;
  args?: string[];
  env?: { name: string; value: string }[];
  /** KEP-4412: the kubelet requests the pod's ServiceAccount token for this audience and passes it. */
  tokenAttributes?: {
    serviceAccountTokenAudience: string;
    cacheType: 'ServiceAccount' | 'Token';
    requireServiceAccount?: boolean;
    requiredServiceAccountAnnotationKeys?: string[];
    optionalServiceAccountAnnotationKeys?: string[];
  };
}

export interface KubeletOptions {
  /** Default `<dir>/root`: where the kubelet looks for `config.json` first. */
  rootDir?: string;
  /** The kubelet runs these exec plugins; each `name` must be an executable in binDir. */
  credentialProviders?: { binDir: string; providers: CredentialProviderEntry[] };
  /** Extra KubeletConfiguration fields (merged over the harness's). */
  config?: Record<string, unknown>;
  /**
   * Start only. 'admin' (default): the kubelet uses the cluster's system:masters token.
   * 'node': it authenticates as `system:node:<nodeName>` (group system:nodes) with the built-in
   * ClusterRole `system:node` bound to that user, and the apiserver runs NodeRestriction
   * (startHarness sets the cluster's nodeIdentity); no Node authorizer runs.
   */
  identity?: 'admin' | 'node';
}

export interface KubeletInfo {
  nodeName: string;
  rootDir: string;
  dir: string;
  /** unix socket of the private containerd. */
  containerdSocket: string;
  /** The kubelet's working directory and $HOME (both empty: its config.json search sees only rootDir). */
  cwd: string;
  home: string;
  logFiles: { containerd: string; kubelet: string };
  /** The CredentialProviderConfig file, when credentialProviders were given. */
  credentialProviderConfig?: string;
  pauseImage: string;
  /** Pods' /24 and the CNI bridge. */
  podSubnet: string;
  bridge: string;
}

/** How a pod's first container ended up, as the kubelet reports it. */
export type PodOutcome =
  | 'Running'
  | 'ErrImagePull'
  | 'ImagePullBackOff'
  | 'ErrImageNeverPull'
  | 'InvalidImageName'
  | (string & {});

export interface PodSpecOptions {
  name: string;
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets?: string[];
  command?: string[];
  /** Skip pod networking (CNI) for pods that only test pulls. */
  hostNetwork?: boolean;
}

export interface Kubelet extends Component<KubeletInfo> {
  readonly pids: { containerd: number; kubelet: number };
  /** Start-up, ms: containerd ready, pause image in, kubelet's Node Ready, total. */
  readonly timings: { containerdMs: number; pauseMs: number; nodeReadyMs: number; totalMs: number };
  /** A pod bound to this node (no scheduler runs), no ServiceAccount token mounted. */
  pod(o: PodSpecOptions): V1Pod;
  /**
   * Waits until the pod's first container is Running or waits with one of the image
   * reasons (ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName, ...).
   */
  waitOutcome(namespace: string, name: string, timeoutMs?: number): Promise<PodOutcome>;
  /**
   * Creates the pod, waits for its outcome, deletes it (waiting until the kubelet removed it).
   * `ImagePullBackOff` is reported as `ErrImagePull` (the same failure, seen later).
   */
  runPod(namespace: string, o: PodSpecOptions, timeoutMs?: number): Promise<PodOutcome>;
  /** Deletes a pod and waits until the kubelet has removed it (containers stopped). */
  deletePod(namespace: string, name: string, timeoutMs?: number): Promise<void>;
  /** `ctr -n k8s.io ...` against this containerd. */
  ctr(args: string[]): Promise<string>;
  /** Image references containerd holds (k8s.io namespace). */
  images(): Promise<string[]>;
  /** Removes images by reference from containerd (the kubelet then sees them absent). */
  removeImages(refs: string[]): Promise<void>;
  /** Stops the kubelet (containerd keeps running) and starts it again with these options. */
  restart(opts?: KubeletOptions): Promise<void>;
}

export interface StartKubeletOptions extends KubeletOptions {
  dir: string;
  cluster: Cluster;
  registry: Registry;
  signal?: AbortSignal;
  binDir?: string;
}

// ---------------------------------------------------------------------------------------------
// binaries and doctor

/** The directory kubelet/build.sh caches into (keyed like kube-apiserver's, by the same tools module). */
export function cachedKubeletDir(): string {
  return toolsCacheDir('kubelet', join(here, 'build.sh'));
}

/** containerd, ctr, the CNI plugins and the cached kubelet build. */
export async function checkKubelet(): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const apt = (pkg: string) => `apt-get update && apt-get install -y ${pkg}`;
  checks.push(
    await commandCheck(
      'containerd',
      'containerd',
      ['--version'],
      'containerd not found (the kubelet harness runs its own private containerd)',
      apt('containerd'),
    ),
  );
  const missingCni = CNI_PLUGINS.filter((p) => !existsSync(join(CNI_BIN_DIR, p)));
  checks.push(
    missingCni.length === 0
      ? { name: 'cni-plugins', ok: true, detail: `${CNI_PLUGINS.join(', ')} in ${CNI_BIN_DIR}` }
      : {
          name: 'cni-plugins',
          ok: false,
          detail: `missing in ${CNI_BIN_DIR}: ${missingCni.join(', ')} (pod networking for the kubelet harness)`,
          fix: apt('containernetworking-plugins'),
        },
  );
  const kubelet = join(cachedKubeletDir(), 'bin', 'kubelet');
  checks.push(
    existsSync(kubelet)
      ? { name: 'kubelet', ok: true, detail: `cached in ${kubelet}` }
      : {
          name: 'kubelet',
          ok: false,
          detail: `not built yet (expected in ${kubelet}); the build takes ${BUILD_MINUTES} minutes, once`,
          fix: 'bash test/harness/kubelet/build.sh',
        },
  );
  return checks;
}

// ---------------------------------------------------------------------------------------------
// config files

function containerdToml(d: {
  root: string;
  state: string;
  socket: string;
  runcRoot: string;
  cniConfDir: string;
  opt: string;
}): string {
  const q = JSON.stringify; // TOML basic strings accept JSON's escapes for these paths
  return `version = 2
root = ${q(d.root)}
state = ${q(d.state)}
[grpc]
  address = ${q(d.socket)}
[ttrpc]
  address = ${q(`${d.socket}.ttrpc`)}
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = ${q(d.opt)}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(PAUSE_IMAGE)}
  # runc cannot lower /proc/self/oom_score_adj to the sandbox's -998 on these VMs
  # ("nsexec: failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        Root = ${q(d.runcRoot)}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${q(CNI_BIN_DIR)}
    conf_dir = ${q(d.cniConfDir)}
    max_conf_num = 1
`;
}

function cniConflist(bridge: string, subnet: string, dataDir: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: `pullkeeper-${bridge}`,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir },
        },
        // loopback is configured by containerd itself for every sandbox.
      ],
    },
    null,
    2,
  );
}

// ---------------------------------------------------------------------------------------------
// start

async function usedThirdOctets(): Promise<Set<number>> {
  const r = await run('ip', ['-4', '-o', 'addr', 'show'], { allowFail: true });
  const used = new Set<number>();
  for (const m of r.stdout.matchAll(/inet 10\.214\.(\d+)\./g)) used.add(Number(m[1]));
  // CNI config files of other live kubelet harnesses (the bridge appears only with the first pod).
  return used;
}

export async function startKubelet(opts: StartKubeletOptions): Promise<Kubelet> {
  const t0 = performance.now();
  const binDir = opts.binDir ?? cachedKubeletDir();
  const kubeletBin = join(binDir, 'bin', 'kubelet');
  if (!existsSync(kubeletBin)) {
    throw new HarnessError(
      `kubelet not found in ${binDir}/bin. Build it once (${BUILD_MINUTES} minutes): bash test/harness/kubelet/build.sh`,
    );
  }
  const dir = resolve(opts.dir);
  const id = randomBytes(3).toString('hex');
  if (opts.identity === 'node' && !opts.cluster.info.node)
    throw new HarnessError(
      "kubelet identity 'node' needs a cluster started with nodeIdentity (startHarness does this for kubelet: { identity: 'node' })",
    );
  const nodeName = opts.identity === 'node' ? opts.cluster.info.node!.name : `pk-kubelet-${id}`;
  const bridge = `${KUBELET_BRIDGE_PREFIX}${id}`;
  const used = await usedThirdOctets();
  const free = Array.from({ length: 256 }, (_, i) => i).filter((i) => !used.has(i));
  const podSubnet = `10.214.${free[randomInt(free.length)]}.0/24`;
  const paths = {
    root: join(dir, 'containerd', 'root'),
    state: join(dir, 'containerd', 'state'),
    socket: join(dir, 'containerd.sock'),
    runcRoot: join(dir, 'containerd', 'runc'),
    cniConfDir: join(dir, 'cni', 'net.d'),
    cniData: join(dir, 'cni', 'ipam'),
    opt: join(dir, 'containerd', 'opt'),
    cwd: join(dir, 'cwd'),
    home: join(dir, 'home'),
    podLogs: join(dir, 'pod-logs'),
    certDir: join(dir, 'pki'),
  };
  const rootDir = resolve(opts.rootDir ?? join(dir, 'root'));
  for (const p of [
    paths.root,
    paths.state,
    paths.runcRoot,
    paths.cniConfDir,
    paths.cniData,
    paths.opt,
    paths.cwd,
    paths.home,
    paths.podLogs,
    paths.certDir,
    rootDir,
  ]) {
    await mkdir(p, { recursive: true });
  }
  const logFiles = { containerd: join(dir, 'containerd.log'), kubelet: join(dir, 'kubelet.log') };
  const owner = join(OWNER_DIR, `${id}.json`);
  await mkdir(OWNER_DIR, { recursive: true });
  await writeFile(owner, JSON.stringify({ pid: process.pid, dir, bridge }));
  const configPath = join(dir, 'containerd.toml');
  await writeFile(configPath, containerdToml(paths));
  await writeFile(
    join(paths.cniConfDir, '10-pullkeeper.conflist'),
    cniConflist(bridge, podSubnet, paths.cniData),
  );

  const ctrRaw = (args: string[], timeoutMs = 120_000) =>
    run('ctr', ['--address', paths.socket, '--namespace', 'k8s.io', ...args], { timeoutMs });

  const containerd = await startService({
    name: 'containerd',
    command: 'containerd',
    args: ['--config', configPath],
    logFile: logFiles.containerd,
    signal: opts.signal,
    readyTimeoutMs: 60_000,
    ready: async () => {
      const r = await run('ctr', ['--address', paths.socket, 'version'], {
        allowFail: true,
        timeoutMs: 5_000,
      });
      return r.code === 0;
    },
  }).catch(async (err) => {
    await sweep(dir, bridge);
    await rm(owner, { force: true });
    throw err;
  });
  const containerdMs = performance.now() - t0;
  let kubelet: Service | undefined;
  let current: KubeletOptions = opts;
  let credentialProviderConfig: string | undefined;
  const info: KubeletInfo = {
    nodeName,
    rootDir,
    dir,
    containerdSocket: paths.socket,
    cwd: paths.cwd,
    home: paths.home,
    logFiles,
    pauseImage: PAUSE_IMAGE,
    podSubnet,
    bridge,
  };

  const cleanup = async () => {
    await kubelet?.stop(5_000);
    await killContainers(paths.runcRoot);
    await containerd.stop(10_000);
    await sweep(dir, bridge);
    await rm(owner, { force: true });
  };

  try {
    // The sandbox image: a busybox that sleeps, from the harness registry (no internet here).
    const pauseUser = `harness-pause-${id}`;
    const pausePass = randomBytes(18).toString('base64url');
    await opts.registry.allow(pauseUser, pausePass);
    const img = await buildImage({
      layers: [{ busybox: true }],
      config: { Entrypoint: ['/bin/sleep', '2147483647'] },
    });
    const pushed = await pushImage(opts.registry, 'harness/pause', '3.10', img, {
      username: pauseUser,
      password: pausePass,
    });
    // A throw-away credential, revoked below; kept out of any error message all the same.
    await ctrRaw([
      'images',
      'pull',
      '--plain-http',
      '--user',
      `${pauseUser}:${pausePass}`,
      pushed.reference,
    ]).catch((err: Error) => {
      throw new HarnessError(
        `kubelet harness: ctr could not pull the sandbox image ${pushed.reference}: ${err.message.split(pausePass).join('***')}`,
      );
    });
    await ctrRaw(['images', 'tag', '--force', pushed.reference, PAUSE_IMAGE]);
    await ctrRaw(['images', 'rm', pushed.reference]);
    await opts.registry.revoke(pauseUser);
    const pauseMs = performance.now() - t0;

    const kubeconfig = join(dir, 'kubelet.kubeconfig');
    await writeFile(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'harness',
            cluster: {
              server: opts.cluster.info.server,
              'certificate-authority-data': opts.cluster.info.caData,
            },
          },
        ],
        users: [
          {
            name: 'kubelet',
            user: {
              token: opts.identity === 'node' ? opts.cluster.info.node!.token : opts.cluster.info.adminToken,
            },
          },
        ],
        contexts: [{ name: 'harness', context: { cluster: 'harness', user: 'kubelet' } }],
        'current-context': 'harness',
      }),
      { mode: 0o600 },
    );

    if (opts.identity === 'node') {
      // What RBAC gives a kubelet without the Node authorizer: the built-in ClusterRole system:node,
      // bound to this node's user only. In 1.34 it includes create on serviceaccounts/token and,
      // with the KubeletServiceAccountTokenForCredentialProviders gate (beta, on), get on
      // serviceaccounts (the kubelet reads the pod's ServiceAccount before it requests a token).
      await opts.cluster.admin.rbac.createClusterRoleBinding({
        body: {
          metadata: { name: `pullkeeper-harness-${nodeName}` },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node' },
          subjects: [
            { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `system:node:${nodeName}` },
          ],
        },
      });
    }

    const launch = async (o: KubeletOptions) => {
      const [port, healthzPort] = [await freePort(), await freePort()];
      const config = {
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: '127.0.0.1',
        port,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort,
        authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        cgroupDriver: 'cgroupfs',
        cgroupsPerQOS: false,
        enforceNodeAllocatable: [],
        failSwapOn: false,
        containerRuntimeEndpoint: `unix://${paths.socket}`,
        podLogsDir: paths.podLogs,
        oomScoreAdj: 0,
        // Nothing is evicted or garbage-collected behind a test's back.
        evictionHard: {},
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        nodeStatusReportFrequency: '10s',
        maxPods: 50,
        ...o.config,
      };
      const configFile = join(dir, 'kubelet-config.yaml');
      await writeFile(configFile, stringify(config));
      const args = [
        `--config=${configFile}`,
        `--kubeconfig=${kubeconfig}`,
        `--root-dir=${rootDir}`,
        `--cert-dir=${paths.certDir}`,
        `--hostname-override=${nodeName}`,
        '--v=2',
      ];
      credentialProviderConfig = undefined;
      if (o.credentialProviders) {
        credentialProviderConfig = join(dir, 'credential-provider-config.yaml');
        await writeFile(
          credentialProviderConfig,
          stringify({
            apiVersion: 'kubelet.config.k8s.io/v1',
            kind: 'CredentialProviderConfig',
            providers: o.credentialProviders.providers.map((p) => ({
              name: p.name,
              apiVersion: p.apiVersion ?? 'credentialprovider.kubelet.k8s.io/v1',
              matchImages: p.matchImages ?? [opts.registry.info.host],
              defaultCacheDuration: p.defaultCacheDuration ?? '1m',
              ...(p.args ? { args: p.args } : {}),
              ...(p.env ? { env: p.env } : {}),
              ...(p.tokenAttributes ? { tokenAttributes: p.tokenAttributes } : {}),
            })),
          }),
        );
        args.push(
          `--image-credential-provider-config=${credentialProviderConfig}`,
          `--image-credential-provider-bin-dir=${o.credentialProviders.binDir}`,
        );
      }
      info.credentialProviderConfig = credentialProviderConfig;
      const healthz = `http://127.0.0.1:${healthzPort}/healthz`;
      const svc = await startService({
        name: 'kubelet',
        command: kubeletBin,
        args,
        cwd: paths.cwd,
        // An empty HOME: the kubelet's config.json search (root dir, cwd, $HOME/.docker, /.docker)
        // must not find the machine's own docker config.
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: paths.home },
        logFile: logFiles.kubelet,
        signal: opts.signal,
        readyTimeoutMs: 120_000,
        ready: async (signal) => {
          const r = await fetch(healthz, { signal }).catch(() => undefined);
          await r?.arrayBuffer();
          if (r?.status !== 200) return false;
          return nodeReady(opts.cluster, nodeName);
        },
      });
      return svc;
    };
    kubelet = await launch(current);
    const nodeReadyMs = performance.now() - t0;
    const timings = {
      containerdMs: Math.round(containerdMs),
      pauseMs: Math.round(pauseMs - containerdMs),
      nodeReadyMs: Math.round(nodeReadyMs - pauseMs),
      totalMs: Math.round(nodeReadyMs),
    };

    const core = opts.cluster.admin.core;
    let stopping: Promise<void> | undefined;
    const ctr = async (args: string[]) => (await ctrRaw(args)).stdout;
    const self: Kubelet = {
      info,
      timings,
      get pids() {
        return { containerd: containerd.pid, kubelet: kubelet!.pid };
      },
      pod: (o) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: o.name },
        spec: {
          nodeName,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 1,
          restartPolicy: 'Always',
          ...(o.hostNetwork ? { hostNetwork: true } : {}),
          ...(o.imagePullSecrets ? { imagePullSecrets: o.imagePullSecrets.map((name) => ({ name })) } : {}),
          containers: [
            {
              name: 'c',
              image: o.image,
              ...(o.imagePullPolicy ? { imagePullPolicy: o.imagePullPolicy } : {}),
              command: o.command ?? ['/bin/sleep', '3600'],
            },
          ],
        },
      }),
      async waitOutcome(namespace, name, timeoutMs = 180_000) {
        const deadline = Date.now() + timeoutMs;
        let last = 'no status yet';
        for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
          const pod = await core.readNamespacedPod({ namespace, name });
          const st = pod.status?.containerStatuses?.[0]?.state;
          if (st?.running) return 'Running';
          const reason = st?.waiting?.reason;
          if (reason && reason !== 'ContainerCreating' && reason !== 'PodInitializing') return reason;
          if (st?.terminated) return `Terminated:${st.terminated.reason ?? ''}`;
          last = JSON.stringify(pod.status?.conditions ?? pod.status?.phase ?? last);
          if (Date.now() > deadline) {
            throw new HarnessError(
              `pod ${namespace}/${name} reached no outcome within ${timeoutMs} ms (last: ${last}). kubelet log: ${logFiles.kubelet}`,
            );
          }
          await sleep(delay);
        }
      },
      async runPod(namespace, o, timeoutMs = 300_000) {
        await core.createNamespacedPod({ namespace, body: self.pod(o) });
        const outcome = await self.waitOutcome(namespace, o.name, timeoutMs);
        await self.deletePod(namespace, o.name, timeoutMs);
        return outcome === 'ImagePullBackOff' ? 'ErrImagePull' : outcome;
      },
      async deletePod(namespace, name, timeoutMs = 120_000) {
        await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 1 }).catch(() => undefined);
        const deadline = Date.now() + timeoutMs;
        for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
          const gone = await core.readNamespacedPod({ namespace, name }).then(
            () => false,
            () => true,
          );
          if (gone) return;
          if (Date.now() > deadline) {
            throw new HarnessError(`pod ${namespace}/${name} still there ${timeoutMs} ms after delete`);
          }
          await sleep(delay);
        }
      },
      ctr,
      async images() {
        const out = await ctr(['images', 'ls', '-q']);
        return out.split('\n').filter(Boolean);
      },
      async removeImages(refs) {
        if (refs.length) await ctrRaw(['images', 'rm', ...refs]);
      },
      async restart(o) {
        await kubelet?.stop(5_000);
        current = o ?? current;
        kubelet = await launch(current);
      },
      stop() {
        stopping ??= (async () => {
          await deleteNodePods(opts.cluster, nodeName).catch(() => undefined);
          await cleanup();
          await opts.cluster.admin.core.deleteNode({ name: nodeName }).catch(() => undefined);
        })();
        return stopping;
      },
    };
    return self;
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

async function nodeReady(cluster: Cluster, nodeName: string): Promise<boolean> {
  try {
    const node = await cluster.admin.core.readNode({ name: nodeName });
    return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  } catch {
    return false;
  }
}

/** Deletes every pod bound to the node and waits (bounded) until the kubelet has stopped them. */
async function deleteNodePods(cluster: Cluster, nodeName: string): Promise<void> {
  const core = cluster.admin.core;
  const list = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` });
  await Promise.all(
    list.items.map((p) =>
      core
        .deleteNamespacedPod({
          namespace: p.metadata!.namespace!,
          name: p.metadata!.name!,
          gracePeriodSeconds: 1,
        })
        .catch(() => undefined),
    ),
  );
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const left = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` });
    if (left.items.length === 0) return;
    await sleep(500);
  }
}

/**
 * What is left of one kubelet harness after its processes stopped or its test process died:
 * its kubelet and containerd (args naming its dir), its containers (its own runc root), their
 * shims (args naming its containerd socket), mounts under its dir, and its bridge.
 */
async function sweep(dir: string, bridge: string): Promise<void> {
  const ours = async (match: (cmd: string, args: string) => boolean) => {
    const ps = await run('ps', ['-eo', 'pid=,args='], { allowFail: true }).catch(() => undefined);
    for (const line of (ps?.stdout ?? '').split('\n')) {
      const m = /^\s*(\d+)\s+(\S+)(.*)$/.exec(line);
      if (!m || Number(m[1]) === process.pid || !match(m[2]!.split('/').pop()!, m[3]!)) continue;
      try {
        process.kill(Number(m[1]), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  await ours((cmd, args) => (cmd === 'kubelet' || cmd === 'containerd') && args.includes(`${dir}/`));
  await killContainers(join(dir, 'containerd', 'runc'));
  const socket = join(dir, 'containerd.sock');
  await ours((cmd, args) => cmd.startsWith('containerd-shim') && args.split(/\s+/).includes(socket));
  await unmountUnder(dir);
  // Pod network namespaces whose CNI teardown never ran (containerd was killed): the peers of
  // the veths on our bridge. Deleting the netns name frees it (its processes are gone).
  const veths = await run('ip', ['-o', 'link', 'show', 'master', bridge], { allowFail: true }).catch(
    () => undefined,
  );
  const netns = [...(veths?.stdout ?? '').matchAll(/link-netns (cni-[0-9a-f-]+)/g)].map((m) => m[1]!);
  for (const ns of new Set(netns)) await run('ip', ['netns', 'del', ns], { allowFail: true });
  await run('ip', ['link', 'del', bridge], { allowFail: true }).catch(() => undefined);
}

/**
 * For `harness down`: the kubelet harnesses whose test process is gone (a crashed run): their
 * containers, shims, mounts, bridge and directory. Returns what it cleaned, by bridge name.
 */
export async function removeKubeletLeftovers(): Promise<string[]> {
  const names = await readdir(OWNER_DIR).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const file = join(OWNER_DIR, name);
    let rec: { pid: number; dir: string; bridge: string };
    try {
      rec = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      continue;
    }
    let alive = true;
    try {
      process.kill(rec.pid, 0);
    } catch {
      alive = false;
    }
    if (alive || !rec.dir?.startsWith('/') || !rec.bridge?.startsWith(KUBELET_BRIDGE_PREFIX)) continue;
    await sweep(rec.dir, rec.bridge);
    await rm(rec.dir, { recursive: true, force: true });
    await rm(file, { force: true });
    removed.push(rec.bridge);
  }
  return removed;
}

/** Kills and deletes every container in our own runc root (nothing else is touched). */
async function killContainers(runcRoot: string): Promise<void> {
  const roots = [runcRoot, join(runcRoot, 'k8s.io')];
  for (const root of roots) {
    if (!existsSync(root)) continue;
    const r = await run('runc', ['--root', root, 'list', '-q'], { allowFail: true }).catch(() => undefined);
    for (const cid of (r?.stdout ?? '').split('\n').filter(Boolean)) {
      await run('runc', ['--root', root, 'delete', '--force', cid], { allowFail: true }).catch(
        () => undefined,
      );
    }
  }
}

/** Unmounts (lazily, deepest first) whatever is still mounted under dir: rootfs and shm mounts of killed tasks. */
async function unmountUnder(dir: string): Promise<void> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = text
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) await run('umount', ['-l', p], { allowFail: true }).catch(() => undefined);
}
