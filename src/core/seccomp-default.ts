/**
 * The seccomp profile behind `seccompProfile: RuntimeDefault`, written here
 * following the rules of moby's default profile (moby profiles/seccomp/
 * default.json, the profile containerd's CRI plugin also ships as its
 * RuntimeDefault): the same syscall groups are refused, and each group is
 * lifted by the capability moby lifts it with (CAP_SYS_ADMIN lifts mount,
 * namespaces and the new mount API; CAP_SYS_TIME the clock; ...).
 *
 * One difference, on purpose: moby's profile is an allowlist (any syscall it
 * does not list fails with EPERM); this one is a denylist (defaultAction
 * ALLOW, the refused groups fail with EPERM). A syscall added to the kernel
 * after this list is allowed here. Refused: keyrings, kernel modules, kexec
 * and reboot, the clock, mount and the mount API, unshare/setns and clone
 * with namespace flags (clone3 answers ENOSYS so libc falls back to clone),
 * BPF, perf, quotactl, swap, NUMA policy, raw I/O ports, accounting, syslog,
 * io_uring, userfaultfd, AF_VSOCK sockets and long-obsolete syscalls. Pure.
 */

const EPERM = 1;
const ENOSYS = 38;

/** Syscalls refused unless the container holds `unlessCap`. */
const GROUPS: ReadonlyArray<{ names: string[]; unlessCap?: string }> = [
  { names: ['add_key', 'keyctl', 'request_key'] },
  {
    names: [
      'create_module',
      'delete_module',
      'finit_module',
      'get_kernel_syms',
      'init_module',
      'query_module',
    ],
    unlessCap: 'CAP_SYS_MODULE',
  },
  { names: ['kexec_file_load', 'kexec_load', 'reboot'], unlessCap: 'CAP_SYS_BOOT' },
  { names: ['clock_adjtime', 'clock_settime', 'settimeofday', 'stime'], unlessCap: 'CAP_SYS_TIME' },
  {
    names: [
      'mount',
      'umount',
      'umount2',
      'pivot_root',
      'unshare',
      'setns',
      'fsopen',
      'fsconfig',
      'fsmount',
      'fspick',
      'move_mount',
      'open_tree',
      'mount_setattr',
      'quotactl',
      'quotactl_fd',
      'swapon',
      'swapoff',
      'lookup_dcookie',
      'fanotify_init',
      'name_to_handle_at',
      'setdomainname',
      'sethostname',
    ],
    unlessCap: 'CAP_SYS_ADMIN',
  },
  { names: ['bpf'], unlessCap: 'CAP_BPF' },
  { names: ['perf_event_open'], unlessCap: 'CAP_PERFMON' },
  { names: ['open_by_handle_at'], unlessCap: 'CAP_DAC_READ_SEARCH' },
  { names: ['ioperm', 'iopl'], unlessCap: 'CAP_SYS_RAWIO' },
  { names: ['get_mempolicy', 'set_mempolicy', 'mbind', 'move_pages'], unlessCap: 'CAP_SYS_NICE' },
  { names: ['acct'], unlessCap: 'CAP_SYS_PACCT' },
  { names: ['syslog'], unlessCap: 'CAP_SYSLOG' },
  { names: ['vhangup'], unlessCap: 'CAP_SYS_TTY_CONFIG' },
  { names: ['userfaultfd'], unlessCap: 'CAP_SYS_PTRACE' },
  { names: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'] },
  { names: ['nfsservctl', 'sysfs', '_sysctl', 'uselib', 'ustat', 'vm86', 'vm86old'] },
];

/** clone flags that make namespaces (moby refuses clone with any of them without CAP_SYS_ADMIN). */
const CLONE_NAMESPACE_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];
const AF_VSOCK = 40;

/** seccomp architectures per Node `process.arch` (the native one and its compat ABIs). */
const ARCHES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  ia32: ['SCMP_ARCH_X86'],
  arm: ['SCMP_ARCH_ARM'],
  ppc64: ['SCMP_ARCH_PPC64LE'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
};

export interface OciSeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
}
export interface OciSeccomp {
  defaultAction: string;
  architectures: string[];
  syscalls: OciSeccompRule[];
}

/**
 * The RuntimeDefault profile (OCI `linux.seccomp`) for a container holding `capabilities`.
 *
 * @example
 * runtimeDefaultSeccomp(['CAP_CHOWN'], 'x64').defaultAction; // 'SCMP_ACT_ALLOW'
 */
export function runtimeDefaultSeccomp(capabilities: readonly string[], arch: string): OciSeccomp {
  const has = new Set(capabilities);
  const denied = GROUPS.filter((g) => !g.unlessCap || !has.has(g.unlessCap)).flatMap((g) => g.names);
  const syscalls: OciSeccompRule[] = [{ names: denied, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }];
  if (!has.has('CAP_SYS_ADMIN')) {
    for (const flag of CLONE_NAMESPACE_FLAGS) {
      syscalls.push({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: arch === 's390x' ? 1 : 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      });
    }
    // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc use clone.
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  syscalls.push({
    names: ['socket'],
    action: 'SCMP_ACT_ERRNO',
    errnoRet: EPERM,
    args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_EQ' }],
  });
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: ARCHES[arch] ?? [], syscalls };
}
