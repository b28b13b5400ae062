/**
 * From a Pod manifest to a plan the supervisor can run: RuntimeClass and
 * handler, images (through an ImageSource), the environment (the core's
 * pod-env rules), the pod's hostname and IP, and one OCI spec per container.
 * Everything that can fail before a container starts fails here.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { PullkeeperError } from '../core/errors.js';
import {
  buildContainerEnv,
  type CredentialSource,
  compileAllowlist,
  containerProcessEnv,
  DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY,
  defaultPullPolicy,
  expandCommandAndArgs,
  type ImagePullCredentialsVerificationPolicy,
  type PullPolicy,
  parseDockerConfig,
  podHostname,
  type SourcedDockerConfig,
  selectServicesForPod,
  serviceEnvVars,
} from '../core/index.js';
import { type OciSeccomp, runtimeDefaultSeccomp } from '../core/seccomp-default.js';
import { type ContainerSecurity, decideContainerSecurity } from '../core/security-context.js';
import { buildOciSpec, containerArgv } from './bundle.js';
import { containerFieldPath, Events, type PodEvent, podFullName } from './events.js';
import type { ImageLimits, ImageSource } from './image-source.js';
import { allocatePodIP, releasePodIP } from './ipam.js';
import type { ContainerSpec, LifecycleHandler, PodManifest, PodObjects } from './pod.js';
import { type NodeRuntimeConfig, probeRuntime, resolveRuntimeHandler } from './runtime-class.js';

/** The pod cannot start; an event with the reason was recorded. */
export class PodStartError extends PullkeeperError {
  /** The container that could not be created and its waiting reason, as kubelet reports it. */
  waiting?: {
    container: string;
    reason: 'ErrImagePull' | 'ErrImageNeverPull' | 'CreateContainerConfigError';
  };
}

function containerStartError(
  container: string,
  reason: NonNullable<PodStartError['waiting']>['reason'],
  message: string,
  cause: unknown,
): PodStartError {
  const err = new PodStartError(message, { cause });
  err.waiting = { container, reason };
  return err;
}

export interface NodeConfig {
  stateRoot: string;
  runtimes: NodeRuntimeConfig;
  nodeName: string;
  hostIP: string;
  /** The pod bridge and its /24: the bridge gets `.1`, pods `.2`-`.254`. */
  bridge: { name: string; subnet: string };
  clusterDomain: string;
  /** Per-container log size cap before rotation (kubelet containerLogMaxSize: 10 MiB). */
  logMaxBytes: number;
  alwaysPullImages?: boolean;
  /** KEP-2535: when a pod may use an image already on the node (default NeverVerifyPreloadedImages). */
  imagePullCredentialsVerificationPolicy?: ImagePullCredentialsVerificationPolicy;
  /** Images exempt from verification under NeverVerifyAllowlistedImages (already validated). */
  preloadedImagesVerificationAllowlist?: string[];
  /** What the config loader wants said (deprecated keys). */
  warnings?: string[];
  /** `privileged: true` containers run only when this is true (default false). */
  allowPrivileged?: boolean;
  /** Where `seccompProfile: Localhost` profiles live (kubelet: `<root-dir>/seccomp`). */
  seccompProfileRoot?: string;
  /** Bounds on what a pull may unpack (node config `imageLimits`). */
  imageLimits?: ImageLimits;
  /** Pull through the credential broker with the pod's ServiceAccount token (`run --kubeconfig`; docs/pod-credentials.md). */
  podCredentials?: { broker: string; audience: string; caFile?: string; timeoutSeconds: number };
}

/** Kubelet's default `--root-dir` + `seccomp`: where Localhost seccomp profiles are read from. */
export const DEFAULT_SECCOMP_PROFILE_ROOT = '/var/lib/kubelet/seccomp';

export interface PlannedContainer {
  name: string;
  id: string;
  image: string;
  imageRef: string;
  imageDigest: string;
  layers: string[];
  ociSpec: Record<string, unknown>;
  ports: Array<{ name?: string; containerPort: number }>;
  lifecycle?: { postStart?: LifecycleHandler; preStop?: LifecycleHandler };
}

export interface PlannedPod {
  version: 1;
  name: string;
  namespace: string;
  uid: string;
  hostname: string;
  createdAt: string;
  podIP: string;
  gateway: string;
  netns: string;
  vethHost: string;
  bridge: string;
  runtime: { handler: string; binary: string; globalArgs: string[]; root: string; className?: string };
  terminationGracePeriodSeconds: number;
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  logMaxBytes: number;
  containers: PlannedContainer[];
  /**
   * Secret values the pod's env uses (4 characters or more): the supervisor
   * replaces them in events and its log. plan.json is root-only (0600), like
   * the env it already holds.
   */
  redact?: string[];
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/** Names of the kernel objects of a pod (all `pkr-` prefixed, ≤ 15 characters for links). */
export function sandboxNames(namespace: string, name: string, uid: string): { netns: string; veth: string } {
  const h = shortHash(`${namespace}/${name}/${uid}`);
  return { netns: `pkr-pod-${h}`, veth: `pkr-${h}` };
}

/** The runc container id of one container of a pod. */
export function containerId(namespace: string, name: string, uid: string, container: string): string {
  return `pkr-${shortHash(`${namespace}/${name}/${uid}`)}-${container}`;
}

function pullSecrets(
  pod: PodManifest,
  objects: PodObjects,
  emit: (e: Omit<PodEvent, 'time'>) => void,
): SourcedDockerConfig[] {
  const out: SourcedDockerConfig[] = [];
  const missing: string[] = [];
  for (const ref of pod.spec.imagePullSecrets ?? []) {
    const s = objects.secrets[ref.name];
    if (!s) {
      missing.push(ref.name);
      continue;
    }
    // KEP-2535: the store records and names credentials by their Secret (namespace/name, uid).
    const source: CredentialSource = {
      kind: 'secret',
      name: `${pod.metadata.namespace}/${ref.name}`,
      ...(s.uid ? { uid: s.uid } : {}),
    };
    if (s.type === 'kubernetes.io/dockerconfigjson' && s.data['.dockerconfigjson']) {
      out.push({ ...parseDockerConfig(s.data['.dockerconfigjson'], 'config.json'), source });
    } else if (s.type === 'kubernetes.io/dockercfg' && s.data['.dockercfg']) {
      out.push({ ...parseDockerConfig(s.data['.dockercfg'], 'dockercfg'), source });
    }
  }
  if (missing.length > 0) {
    emit({
      type: 'Warning',
      reason: 'FailedToRetrieveImagePullSecret',
      message: `Unable to retrieve some image pull secrets (${missing.join(', ')}); attempting to pull the image may not succeed.`,
    });
  }
  return out;
}

function secretValues(objects: PodObjects): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [k, v] of Object.entries(objects.secrets)) out[k] = v.data;
  return out;
}

/** The values of the Secret keys the pod's containers put in their env (env and envFrom). */
export function secretValuesUsed(pod: PodManifest, objects: PodObjects): string[] {
  const out = new Set<string>();
  for (const c of pod.spec.containers) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      const v = ref ? objects.secrets[ref.name]?.data[ref.key] : undefined;
      if (v !== undefined) out.add(v);
    }
    for (const f of c.envFrom ?? []) {
      if (f.secretRef)
        for (const v of Object.values(objects.secrets[f.secretRef.name]?.data ?? {})) out.add(v);
    }
  }
  return [...out].filter((v) => v.length >= 4).sort((a, b) => b.length - a.length);
}

const localhostSeccompSchema = z.looseObject({
  defaultAction: z.string(),
  architectures: z.array(z.string()).optional(),
  syscalls: z
    .array(
      z.looseObject({
        names: z.array(z.string()),
        action: z.string(),
      }),
    )
    .optional(),
});

/** The seccomp profile to load for a decided securityContext (undefined: Unconfined). */
async function seccompFor(security: ContainerSecurity, node: NodeConfig): Promise<OciSeccomp | undefined> {
  const p = security.seccomp;
  if (p.type === 'Unconfined') return undefined;
  if (p.type === 'RuntimeDefault') return runtimeDefaultSeccomp(security.capabilities, process.arch);
  const file = join(node.seccompProfileRoot ?? DEFAULT_SECCOMP_PROFILE_ROOT, p.localhostProfile ?? '');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new PodStartError(
      `cannot load seccomp profile ${JSON.stringify(file)}: ${(err as Error).message}; put the profile there (an OCI linux.seccomp object) or set seccompProfileRoot in the node config`,
      { cause: err },
    );
  }
  const r = localhostSeccompSchema.safeParse(raw);
  if (!r.success) {
    throw new PodStartError(
      `seccomp profile ${file} is not an OCI linux.seccomp object (defaultAction, architectures, syscalls): ${r.error.issues[0]?.message}`,
    );
  }
  return r.data as unknown as OciSeccomp;
}

export interface PlanInput {
  pod: PodManifest;
  unsupported: string[];
  objects: PodObjects;
  node: NodeConfig;
  images: ImageSource;
  emit: (e: Omit<PodEvent, 'time'>) => void;
  signal?: AbortSignal;
}

/**
 * Builds the plan. On a failure that kubelet reports as an event
 * (FailedCreatePodSandBox, Failed, FailedToRetrieveImagePullSecret...), the
 * event is emitted and {@link PodStartError} thrown: nothing has been started.
 */
export async function planPod(input: PlanInput): Promise<PlannedPod> {
  const { pod, objects, node, emit } = input;
  const meta = pod.metadata;
  const uid = meta.uid ?? randomUUID();
  if (input.unsupported.length > 0) emit(Events.unsupportedFields(input.unsupported));

  // RuntimeClass -> handler (a lookup failure ends the pod before anything starts).
  const probes = new Map<string, Awaited<ReturnType<typeof probeRuntime>>>();
  for (const [name, cfg] of Object.entries(node.runtimes.handlers)) {
    const wanted = pod.spec.runtimeClassName
      ? objects.runtimeClasses[pod.spec.runtimeClassName]?.handler
      : node.runtimes.defaultHandler;
    if (name === wanted) probes.set(name, await probeRuntime(cfg, node.stateRoot, input.signal));
  }
  const resolved = resolveRuntimeHandler(
    pod.spec.runtimeClassName,
    objects.runtimeClasses,
    node.runtimes,
    (h) => probes.get(h) ?? { ok: false, reason: 'not probed' },
  );
  if (!resolved.ok) {
    emit(Events.failedCreatePodSandBox(resolved.message));
    throw new PodStartError(resolved.message);
  }

  let hostname: string;
  try {
    hostname = podHostname(
      {
        name: meta.name,
        namespace: meta.namespace,
        ...(pod.spec.hostname ? { hostname: pod.spec.hostname } : {}),
        ...(pod.spec.subdomain ? { subdomain: pod.spec.subdomain } : {}),
        ...(pod.spec.setHostnameAsFQDN ? { setHostnameAsFQDN: true } : {}),
      },
      node.clusterDomain,
    ).hostname;
  } catch (err) {
    const message = `Failed to create pod sandbox: ${(err as Error).message}`;
    emit(Events.failedCreatePodSandBox(message));
    throw new PodStartError(message, { cause: err });
  }

  const secrets = pullSecrets(pod, objects, emit);
  const key = `${meta.namespace}_${meta.name}`;
  const podIP = await allocatePodIP(node.stateRoot, node.bridge.subnet, key);
  try {
    const gateway = `${node.bridge.subnet.split('/')[0]!.split('.').slice(0, 3).join('.')}.1`;
    const names = sandboxNames(meta.namespace, meta.name, uid);
    const services = selectServicesForPod({
      podNamespace: meta.namespace,
      enableServiceLinks: pod.spec.enableServiceLinks,
      services: objects.services,
    });
    const serviceEnv = serviceEnvVars(services);
    const containers: PlannedContainer[] = [];
    for (const c of pod.spec.containers) {
      containers.push(
        await planContainer(c, {
          pod,
          uid,
          hostname,
          podIP,
          node,
          objects,
          serviceEnv,
          secrets,
          images: input.images,
          emit: (e) => emit({ ...e, fieldPath: containerFieldPath(c.name) }),
          ...(input.signal ? { signal: input.signal } : {}),
          netnsPath: `/var/run/netns/${names.netns}`,
        }),
      );
    }
    return {
      version: 1,
      name: meta.name,
      namespace: meta.namespace,
      uid,
      hostname,
      createdAt: new Date().toISOString(),
      podIP,
      gateway,
      netns: names.netns,
      vethHost: names.veth,
      bridge: node.bridge.name,
      runtime: {
        handler: resolved.handler,
        binary: resolved.runtime.binary,
        globalArgs: resolved.runtime.globalArgs ?? [],
        root: join(node.stateRoot, 'runtime', resolved.handler),
        ...(resolved.className ? { className: resolved.className } : {}),
      },
      terminationGracePeriodSeconds: pod.spec.terminationGracePeriodSeconds,
      restartPolicy: pod.spec.restartPolicy,
      logMaxBytes: node.logMaxBytes,
      containers,
      redact: secretValuesUsed(pod, objects),
    };
  } catch (err) {
    await releasePodIP(node.stateRoot, podIP, key);
    throw err;
  }
}

async function planContainer(
  c: ContainerSpec,
  ctx: {
    pod: PodManifest;
    uid: string;
    hostname: string;
    podIP: string;
    node: NodeConfig;
    objects: PodObjects;
    serviceEnv: Record<string, string>;
    secrets: SourcedDockerConfig[];
    images: ImageSource;
    emit: (e: Omit<PodEvent, 'time'>) => void;
    signal?: AbortSignal;
    netnsPath: string;
  },
): Promise<PlannedContainer> {
  const policy: PullPolicy = ctx.node.alwaysPullImages
    ? 'Always'
    : (c.imagePullPolicy ?? defaultPullPolicy(c.image));
  let image: Awaited<ReturnType<ImageSource['ensure']>>;
  try {
    image = await ctx.images.ensure({
      image: c.image,
      policy,
      podSecrets: ctx.secrets,
      verificationPolicy:
        ctx.node.imagePullCredentialsVerificationPolicy ?? DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY,
      ...(ctx.node.preloadedImagesVerificationAllowlist?.length
        ? { verificationAllowlist: compileAllowlist(ctx.node.preloadedImagesVerificationAllowlist) }
        : {}),
      ...(ctx.node.imageLimits ? { limits: ctx.node.imageLimits } : {}),
      onEvent: (e) => ctx.emit(e),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
  } catch (err) {
    const reason = policy === 'Never' ? 'ErrImageNeverPull' : 'ErrImagePull';
    ctx.emit(Events.failed(reason));
    throw containerStartError(c.name, reason, `container ${c.name}: ${(err as Error).message}`, err);
  }
  const meta = ctx.pod.metadata;
  try {
    const { env, warnings } = buildContainerEnv({
      env: (c.env ?? []) as Parameters<typeof buildContainerEnv>[0]['env'],
      envFrom: c.envFrom ?? [],
      configMaps: ctx.objects.configMaps,
      secrets: secretValues(ctx.objects),
      pod: {
        name: meta.name,
        namespace: meta.namespace,
        uid: ctx.uid,
        nodeName: ctx.pod.spec.nodeName ?? ctx.node.nodeName,
        serviceAccountName: ctx.pod.spec.serviceAccountName ?? 'default',
        hostIP: ctx.node.hostIP,
        podIP: ctx.podIP,
        podIPs: [ctx.podIP],
        ...(meta.labels ? { labels: meta.labels } : {}),
        ...(meta.annotations ? { annotations: meta.annotations } : {}),
      },
      serviceEnv: ctx.serviceEnv,
    });
    for (const w of warnings) ctx.emit({ type: 'Warning', ...w });
    const expanded = expandCommandAndArgs(c.command, c.args, env);
    const args = containerArgv(expanded, image.config);
    if (args.length === 0) throw new PodStartError('no command specified');
    const decision = decideContainerSecurity({
      ...(ctx.pod.spec.securityContext ? { pod: ctx.pod.spec.securityContext } : {}),
      ...(c.securityContext ? { container: c.securityContext } : {}),
      imageUser: image.config.User,
      who: {
        pod: podFullName({ name: meta.name, namespace: meta.namespace, uid: ctx.uid }),
        container: c.name,
      },
      allowPrivileged: ctx.node.allowPrivileged ?? false,
    });
    if (!decision.ok) throw new PodStartError(decision.message);
    const seccomp = await seccompFor(decision.value, ctx.node);
    return {
      name: c.name,
      id: containerId(meta.namespace, meta.name, ctx.uid, c.name),
      image: c.image,
      imageRef: image.ref,
      imageDigest: image.digest,
      layers: image.layers,
      ociSpec: buildOciSpec({
        args,
        env: containerProcessEnv(image.config.Env ?? [], env, ctx.hostname),
        cwd: c.workingDir || image.config.WorkingDir || '/',
        security: decision.value,
        ...(seccomp ? { seccomp } : {}),
        hostname: ctx.hostname,
        netnsPath: ctx.netnsPath,
        rootfs: 'rootfs',
      }),
      ports: c.ports ?? [],
      ...(c.lifecycle ? { lifecycle: c.lifecycle } : {}),
    };
  } catch (err) {
    // kubelet: Warning Failed "Error: <err>" with CreateContainerConfigError.
    ctx.emit(Events.failed((err as Error).message));
    throw containerStartError(
      c.name,
      'CreateContainerConfigError',
      `container ${c.name}: CreateContainerConfigError: ${(err as Error).message}`,
      err,
    );
  }
}
