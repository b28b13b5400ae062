/**
 * A container's securityContext, decided as kubelet (v1.35) and containerd's
 * CRI plugin (v2) decide it. Pure: the runner turns the result into OCI spec
 * fields (process.user, process.capabilities, noNewPrivileges, root.readonly,
 * linux.seccomp).
 *
 * - Pod and container level merge field by field, the container's value
 *   winning (kubelet `securitycontext.DetermineEffectiveSecurityContext`);
 *   `supplementalGroups` exists at pod level only.
 * - `runAsNonRoot` is kubelet's `verifyRunAsNonRoot`, with its messages.
 * - Capabilities start from containerd's default set (`oci.defaultUnixCaps`
 *   in containerd's pkg/oci/spec.go); `add`/`drop` follow containerd's CRI
 *   `WithCapabilities`: ALL in add, then ALL in drop, then each added name,
 *   then each dropped name (so a name both added and dropped ends dropped).
 */

/** containerd's default capability set for a container (`defaultUnixCaps`, containerd pkg/oci/spec.go). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Every Linux capability (linux/capability.h, 0 to 40), in number order. */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

export interface SeccompProfileSpec {
  type: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostProfile?: string;
}

/** `v1.PodSecurityContext`, the fields the runner applies. */
export interface PodSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  supplementalGroups?: number[];
  seccompProfile?: SeccompProfileSpec;
}

/** `v1.SecurityContext` (container level), the fields the runner applies. */
export interface ContainerSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  seccompProfile?: SeccompProfileSpec;
}

export type EffectiveSecurityContext = ContainerSecurityContext & { supplementalGroups?: number[] };

/**
 * Pod level under container level, field by field (kubelet's DetermineEffectiveSecurityContext).
 *
 * @example
 * effectiveSecurityContext({ runAsUser: 1000, runAsNonRoot: true }, { runAsUser: 2000 });
 * // { runAsUser: 2000, runAsNonRoot: true }
 */
export function effectiveSecurityContext(
  pod: PodSecurityContext | undefined,
  container: ContainerSecurityContext | undefined,
): EffectiveSecurityContext {
  const out: EffectiveSecurityContext = {};
  for (const k of ['runAsUser', 'runAsGroup', 'runAsNonRoot', 'seccompProfile'] as const) {
    const v = container?.[k] ?? pod?.[k];
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  for (const k of [
    'capabilities',
    'privileged',
    'readOnlyRootFilesystem',
    'allowPrivilegeEscalation',
  ] as const) {
    const v = container?.[k];
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  if (pod?.supplementalGroups?.length) out.supplementalGroups = pod.supplementalGroups;
  return out;
}

/** The image's `User` split as kubelet's `getImageUser` does: a numeric uid, or a name. */
export interface ImageUser {
  uid?: number;
  username?: string;
  gid?: number;
  groupname?: string;
}

/**
 * @example
 * parseImageUserField('1000:50'); // { uid: 1000, gid: 50 }
 * parseImageUserField('app');     // { username: 'app' }
 * parseImageUserField('');        // { uid: 0 }
 */
export function parseImageUserField(user: string | undefined): ImageUser {
  if (!user) return { uid: 0 };
  const [u = '', g] = user.split(':', 2);
  const num = /^\d+$/;
  const out: ImageUser = num.test(u) ? { uid: Number(u) } : u === '' ? { uid: 0 } : { username: u };
  if (g !== undefined && g !== '') {
    if (num.test(g)) out.gid = Number(g);
    else out.groupname = g;
  }
  return out;
}

/**
 * kubelet's `verifyRunAsNonRoot`: the error message, or undefined when the container may run.
 * `podName` is kubelet's `format.Pod`: `name_namespace(uid)`.
 */
export function verifyRunAsNonRoot(
  sc: EffectiveSecurityContext,
  image: ImageUser,
  who: { pod: string; container: string },
): string | undefined {
  if (sc.runAsNonRoot !== true) return undefined;
  const tail = `(pod: ${JSON.stringify(who.pod)}, container: ${who.container})`;
  if (sc.runAsUser !== undefined) {
    return sc.runAsUser === 0 ? `container's runAsUser breaks non-root policy ${tail}` : undefined;
  }
  // `root` is a name to kubelet too: it cannot be verified.
  if (image.uid === 0) return `container has runAsNonRoot and image will run as root ${tail}`;
  if (image.uid === undefined && image.username) {
    return `container has runAsNonRoot and image has non-numeric user (${image.username}), cannot verify user is non-root ${tail}`;
  }
  return undefined;
}

/** A capability name as the pod gives it (`NET_ADMIN`) -> the OCI name (`CAP_NET_ADMIN`); undefined if unknown. */
export function ociCapability(name: string): string | undefined {
  const up = `CAP_${name.toUpperCase()}`;
  return ALL_CAPABILITIES.includes(up) ? up : undefined;
}

/**
 * The capability set of a container: containerd's default, or all of them for
 * a privileged container, then `add` and `drop` in containerd's order.
 * Throws a message naming an unknown capability.
 *
 * @example
 * capabilitySet({ drop: ['ALL'], add: ['NET_BIND_SERVICE'] }, false); // ['CAP_NET_BIND_SERVICE']
 */
export function capabilitySet(
  caps: { add?: string[]; drop?: string[] } | undefined,
  privileged: boolean,
): string[] {
  if (privileged) return [...ALL_CAPABILITIES];
  let set = new Set(DEFAULT_CAPABILITIES);
  const add = caps?.add ?? [];
  const drop = caps?.drop ?? [];
  const isAll = (c: string) => c.toUpperCase() === 'ALL';
  if (add.some(isAll)) set = new Set(ALL_CAPABILITIES);
  if (drop.some(isAll)) set = new Set();
  const resolve = (c: string, field: string): string => {
    const oci = ociCapability(c);
    if (!oci) {
      throw new Error(
        `securityContext.capabilities.${field}: unknown capability "${c}"; use the name without CAP_ (e.g. NET_ADMIN) or ALL`,
      );
    }
    return oci;
  };
  for (const c of add) if (!isAll(c)) set.add(resolve(c, 'add'));
  for (const c of drop) if (!isAll(c)) set.delete(resolve(c, 'drop'));
  return ALL_CAPABILITIES.filter((c) => set.has(c));
}

/** What the runner writes into the container's OCI spec. */
export interface ContainerSecurity {
  uid: number;
  gid: number;
  additionalGids: number[];
  capabilities: string[];
  noNewPrivileges: boolean;
  readonlyRootfs: boolean;
  privileged: boolean;
  seccomp: SeccompProfileSpec;
}

export type SecurityDecision = { ok: true; value: ContainerSecurity } | { ok: false; message: string };

/**
 * Every securityContext decision for one container, in kubelet's order:
 * privileged allowed by the node, the API server's own checks on
 * allowPrivilegeEscalation, the user (image USER under runAsUser/runAsGroup),
 * runAsNonRoot, capabilities, seccomp (kubelet's default `seccompDefault:
 * false` means Unconfined when the pod names no profile).
 */
export function decideContainerSecurity(input: {
  pod?: PodSecurityContext;
  container?: ContainerSecurityContext;
  imageUser: string | undefined;
  who: { pod: string; container: string };
  allowPrivileged: boolean;
}): SecurityDecision {
  const sc = effectiveSecurityContext(input.pod, input.container);
  const privileged = sc.privileged === true;
  if (privileged && !input.allowPrivileged) {
    return {
      ok: false,
      message: `container ${input.who.container} asks for privileged: true, which this node does not allow; set allowPrivileged: true in the node config to allow privileged containers`,
    };
  }
  if (sc.allowPrivilegeEscalation === false) {
    if (privileged)
      return {
        ok: false,
        message: 'cannot set `allowPrivilegeEscalation` to false and `privileged` to true',
      };
    if ((sc.capabilities?.add ?? []).some((c) => ['SYS_ADMIN', 'CAP_SYS_ADMIN'].includes(c.toUpperCase())))
      return {
        ok: false,
        message: 'cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN',
      };
  }
  const image = parseImageUserField(input.imageUser);
  const nonRoot = verifyRunAsNonRoot(sc, image, input.who);
  if (nonRoot) return { ok: false, message: nonRoot };
  const uid = sc.runAsUser ?? image.uid;
  if (uid === undefined) {
    return {
      ok: false,
      message: `image USER "${input.imageUser}" is not numeric and pullkeeper-node does not read the image's /etc/passwd; set securityContext.runAsUser or rebuild the image with USER <uid>[:<gid>]`,
    };
  }
  let gid = sc.runAsGroup ?? image.gid;
  if (gid === undefined && image.groupname !== undefined && sc.runAsUser === undefined) {
    return {
      ok: false,
      message: `image USER "${input.imageUser}" names a group and pullkeeper-node does not read the image's /etc/group; set securityContext.runAsGroup or rebuild the image with USER <uid>:<gid>`,
    };
  }
  gid ??= 0;
  let capabilities: string[];
  try {
    capabilities = capabilitySet(sc.capabilities, privileged);
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  const seccomp: SeccompProfileSpec = sc.seccompProfile ?? { type: 'Unconfined' };
  if (seccomp.type === 'Localhost') {
    const p = seccomp.localhostProfile ?? '';
    if (p === '' || p.startsWith('/') || p.split('/').includes('..')) {
      return {
        ok: false,
        message: `seccompProfile.localhostProfile "${p}" must be a relative path inside the node's seccomp profile directory, without ".."`,
      };
    }
  }
  return {
    ok: true,
    value: {
      uid,
      gid,
      additionalGids: [...new Set(sc.supplementalGroups ?? [])].filter((g) => g !== gid),
      capabilities,
      noNewPrivileges: sc.allowPrivilegeEscalation === false,
      readonlyRootfs: sc.readOnlyRootFilesystem === true,
      privileged,
      seccomp: privileged ? { type: 'Unconfined' } : seccomp,
    },
  };
}
