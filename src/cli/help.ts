/**
 * The one table both CLIs are described by: per command its flags (the same
 * objects the command passes to parseArgs, so help and parsing cannot drift),
 * a description, examples, exit codes and its --json shape. Help text,
 * docs/cli.md and the shell completion scripts are all rendered from it.
 */
import { DEFAULT_KUBELET_ROOT_DIR, IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES } from '../core/index.js';
import { suggest } from '../core/suggest.js';
import { VERSION } from '../version.js';
import type { CliIO } from './io.js';

export interface FlagHelp {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  default?: string | boolean;
  /** The value's placeholder in help (string flags): FILE, NAME, N... */
  arg?: string;
  /** Shown without brackets in the synopsis (it may still come from the environment). */
  required?: boolean;
  /** The values completion offers. */
  values?: readonly string[];
  help: string;
}

export interface CommandHelp {
  /** Positional arguments as shown in the synopsis, e.g. `NAMESPACE`, `[FILE]`. */
  args?: string;
  /** One line for the overview. */
  summary: string;
  description: string;
  flags: Readonly<Record<string, FlagHelp>>;
  /** Complete command lines a user can paste. */
  examples: readonly string[];
  /** Exit code -> meaning for this command. */
  exit: Readonly<Record<number, string>>;
  /** What --json prints (omitted for commands without a result to print). */
  json?: { shape: string; example: unknown };
  /** What completion offers for the first positional: a fixed list, or files. */
  complete?: readonly string[] | 'files';
}

export interface CliHelp {
  name: string;
  tagline: string;
  commands: Readonly<Record<string, CommandHelp>>;
  /** Lines after the command list in the overview. */
  footer?: readonly string[];
}

/** The exit codes of both CLIs, in a few words (the overview line). */
export const EXIT_SHORT: Readonly<Record<number, string>> = {
  0: 'ok',
  1: 'failed or problems found',
  2: 'usage or bad config',
  3: 'ErrImageNeverPull',
  4: 'InvalidImageName',
};

/** The exit codes of both CLIs. Every command's `exit` uses these numbers only. */
export const EXIT_CODES: Readonly<Record<number, string>> = {
  0: 'ok: the command did what it was asked (or found no problems)',
  1: 'something failed or problems were found (a registry, a namespace, a node, a pull, a check); the output says which',
  2: 'usage error or bad configuration: an unknown command or flag, a missing argument, a config file that is missing or invalid',
  3: 'pullkeeper-node pull only: ErrImageNeverPull (not present, and the pull policy is Never)',
  4: 'pullkeeper-node pull only: InvalidImageName',
};

/** The node store's default (runner/store DEFAULT_STATE_DIR; a test keeps them equal, without importing the store here). */
export const DEFAULT_STATE_DIR = '/var/lib/pullkeeper';
/** The pod runner's default state root (runner/pod-state DEFAULT_STATE_ROOT; a test keeps them equal). */
export const DEFAULT_POD_STATE_ROOT = '/run/pullkeeper-node';

const json = { type: 'boolean', help: 'print the result as JSON on stdout (see "JSON output")' } as const;
const config = {
  type: 'string',
  arg: 'FILE',
  required: true,
  help: 'the pullkeeper.yaml (or .json) to use; default: $PULLKEEPER_CONFIG',
} as const;
const stateDir = {
  type: 'string',
  arg: 'DIR',
  help: `the image store directory (default: $PULLKEEPER_NODE_STATE_DIR, else ${DEFAULT_STATE_DIR})`,
} as const;
const nodeStateDir = {
  type: 'string',
  arg: 'DIR',
  help: `pod state directory (default: the node config's stateDir, else $PULLKEEPER_NODE_STATE, else ${DEFAULT_POD_STATE_ROOT})`,
} as const;
const nodeConfig = {
  type: 'string',
  arg: 'FILE',
  help: 'the node config (runtimes, network, DNS); see docs/node-runner.md',
} as const;
const SHELLS = ['bash', 'zsh', 'fish'] as const;

const USAGE_EXIT = { 0: 'ok', 2: 'usage error' } as const;

const REGISTRY_ENTRY = {
  name: 'quay',
  kind: 'static',
  hosts: ['quay.io'],
  status: 'minted',
  expiresAt: null,
  verified: true,
};

/** `pullkeeper` commands, in overview order. */
export const PULLKEEPER = {
  image: {
    args: 'REF',
    summary: 'how kubelet reads an image reference (name, tag, digest, pull policy)',
    description:
      'Parses REF the way kubelet does: the fully qualified name, registry domain, path, tag and digest, the reference the container runtime is asked for, and the pull policy the API server defaults to when a Pod does not set one. The output is always JSON.',
    flags: { json: { ...json, help: 'accepted for symmetry: the output is always JSON' } },
    examples: ['pullkeeper image nginx', 'pullkeeper image quay.io/coreos/etcd:v3.5.0'],
    exit: { 0: 'ok', 1: 'REF is not a valid image reference (the message says why)', 2: 'usage error' },
    json: {
      shape: '{ name, domain, path, tag|null, digest|null, criImage, defaultPullPolicy }',
      example: {
        name: 'docker.io/library/nginx',
        domain: 'docker.io',
        path: 'library/nginx',
        tag: null,
        digest: null,
        criImage: 'nginx:latest',
        defaultPullPolicy: 'Always',
      },
    },
  },
  creds: {
    args: 'IMAGE',
    summary: 'which credentials kubelet would try for IMAGE, in order (passwords are never printed)',
    description:
      "Builds kubelet's keyring from a pod's pull secrets (in imagePullSecrets order) and the node's config file, and lists the credentials kubelet would try for IMAGE, most specific key first. FILE is a docker config.json, a .dockercfg, or a Secret manifest (kubernetes.io/dockerconfigjson or dockercfg). No match means kubelet pulls anonymously.",
    flags: {
      secret: {
        type: 'string',
        multiple: true,
        arg: 'FILE',
        help: "a pod pull secret; repeat in the pod's imagePullSecrets order",
      },
      'node-config': {
        type: 'string',
        arg: 'FILE',
        help: "the node's config.json (/var/lib/kubelet/config.json)",
      },
      json,
    },
    examples: [
      'pullkeeper creds quay.io/coreos/etcd:v3 --secret regcred.yaml',
      'pullkeeper creds nginx --secret regcred.yaml --node-config /var/lib/kubelet/config.json',
      'pullkeeper creds ghcr.io/acme/app --secret a.json --secret b.json --json',
    ],
    exit: {
      0: 'ok (also when nothing matches)',
      1: 'a file is unreadable or not a pull secret',
      2: 'usage error',
    },
    json: {
      shape:
        '{ image, name, anonymous, credentials: [{ key, username, password: "<redacted>"|"" }] } (passwords are never printed)',
      example: {
        image: 'quay.io/coreos/etcd:v3',
        name: 'quay.io/coreos/etcd',
        anonymous: false,
        credentials: [{ key: 'quay.io/coreos', username: 'coreos', password: '<redacted>' }],
      },
    },
  },
  mint: {
    summary: "mint and verify each registry's credential; one line per registry (secrets never printed)",
    description:
      'Mints (or reuses, while fresh) the credential of every registry in the config, or only those named with --registry, and verifies each by logging in to the registry when the config asks for it. Prints a table; tokens and passwords are never printed.',
    flags: {
      config,
      registry: { type: 'string', multiple: true, arg: 'NAME', help: 'only this registry' },
      json,
      force: { type: 'boolean', help: 'mint even when a cached credential is still fresh' },
      timeout: { type: 'string', arg: 'SECONDS', help: 'give up after this long (default 120)' },
    },
    examples: [
      'pullkeeper mint --config pullkeeper.yaml',
      'pullkeeper mint --config pullkeeper.yaml --registry ecr-prod --force',
      'pullkeeper mint --config pullkeeper.yaml --json',
    ],
    exit: {
      0: 'every registry minted (and verified)',
      1: 'a registry failed',
      2: 'usage error or bad config',
    },
    json: {
      shape:
        '{ registries: [{ name, kind, hosts, status: minted|cached|failed, expiresAt, verified, error?, notes? }], mintCalls }',
      example: { registries: [REGISTRY_ENTRY], mintCalls: 0 },
    },
  },
  'config check': {
    args: 'FILE',
    summary: 'validate a pullkeeper.yaml; every problem names its path',
    description:
      'Reads and validates a config file without contacting anything, and summarizes it: registries, tenants, clusters and nodes. Every problem names the path in the file (registries[0].region) and what is expected there. FILE may also come from --config or $PULLKEEPER_CONFIG.',
    flags: {
      config: { ...config, required: false, help: 'the file, instead of the FILE argument' },
      json,
    },
    examples: ['pullkeeper config check pullkeeper.yaml', 'pullkeeper config check pullkeeper.yaml --json'],
    exit: { 0: 'the file is valid', 2: 'usage error, or the file is missing or invalid' },
    json: {
      shape:
        '{ file, valid: true, clusters, registries: [{ name, kind }], tenants, nodes: "kubernetes"|N|null } or { file, valid: false, issues: [{ path, message }] }',
      example: {
        file: 'pullkeeper.yaml',
        valid: true,
        clusters: ['prod'],
        registries: [{ name: 'quay', kind: 'static' }],
        tenants: ['team-a'],
        nodes: null,
      },
    },
    complete: 'files',
  },
  refresh: {
    summary:
      "mint what is due, write each tenant namespace's pull Secret and ServiceAccounts (only what changed)",
    description:
      "The scheduled job. Mints the credentials that are due, then for each tenant writes the pull Secret into every selected namespace and adds it to the ServiceAccounts' imagePullSecrets, sending only what changed; with a nodes section, pushes node config too. --dry-run prints the plan as a diff and writes nothing. On a terminal, progress goes to stderr.",
    flags: {
      config,
      tenant: { type: 'string', multiple: true, arg: 'NAME', help: 'only this tenant' },
      'dry-run': { type: 'boolean', help: 'print the changes as a diff; write nothing' },
      json,
      force: { type: 'boolean', help: 'mint and write even when the Secrets are fresh' },
    },
    examples: [
      'pullkeeper refresh --config pullkeeper.yaml --dry-run',
      'pullkeeper refresh --config pullkeeper.yaml --tenant team-a',
      'PULLKEEPER_CONFIG=pullkeeper.yaml pullkeeper refresh --json',
    ],
    exit: {
      0: 'everything written (or already fresh)',
      1: 'a registry, cluster, namespace or node failed (the report says which)',
      2: 'usage error, bad config or an unknown tenant',
    },
    json: {
      shape:
        '{ dryRun, registries: [mint entry], mintCalls, tenants: [{ name, cluster, fresh?, namespaces: [{ name, secret, serviceAccounts, reason? }] }], writes, requests, connections, nodes?, plan? }',
      example: {
        dryRun: false,
        registries: [REGISTRY_ENTRY],
        mintCalls: 0,
        tenants: [
          {
            name: 'team-a',
            cluster: 'prod',
            namespaces: [{ name: 'team-a-prod', secret: 'created', serviceAccounts: 'patched' }],
          },
        ],
        writes: 2,
        requests: 5,
        connections: 1,
      },
    },
  },
  ensure: {
    args: 'NAMESPACE',
    summary: 'make one namespace ready now (the CI pre-deploy call)',
    description:
      'Finds the tenants whose selection includes NAMESPACE, writes their pull Secret and ServiceAccounts there now, and says whether the namespace is ready to pull. Run it in CI before a deploy to a new namespace instead of waiting for the next refresh.',
    flags: {
      config,
      json,
      timeout: { type: 'string', arg: 'SECONDS', help: 'give up after this long (default 60)' },
    },
    examples: [
      'pullkeeper ensure team-a-prod --config pullkeeper.yaml',
      'pullkeeper ensure team-a-prod --config pullkeeper.yaml --json --timeout 30',
    ],
    exit: {
      0: 'the namespace is ready',
      1: 'not ready (the reasons are printed)',
      2: 'usage error or bad config',
    },
    json: {
      shape: '{ namespace, tenants, ready, reasons, refresh: <refresh report> }',
      example: {
        namespace: 'team-a-prod',
        tenants: ['team-a'],
        ready: true,
        reasons: [],
        refresh: {
          dryRun: false,
          registries: [],
          mintCalls: 0,
          tenants: [],
          writes: 0,
          requests: 2,
          connections: 1,
        },
      },
    },
  },
  doctor: {
    summary: 'check secrets, registries, cluster RBAC and node SSH; each problem with its fix',
    description:
      'Checks every piece a user can get wrong: the secrets the config refers to, each registry (mint and log in), the RBAC pullkeeper needs in every tenant namespace, and node SSH access and host keys. Each finding says ok or FAIL, and each failure says how to fix it. On a terminal, progress goes to stderr.',
    flags: { config, json },
    examples: [
      'pullkeeper doctor --config pullkeeper.yaml',
      'pullkeeper doctor --config pullkeeper.yaml --json',
    ],
    exit: { 0: 'no problems found', 1: 'problems found (or the config is invalid)', 2: 'usage error' },
    json: {
      shape:
        '{ ok, findings: [{ area, subject, ok, detail, fix?, warning? }] } (warning: ok but more permission than needed; does not fail)',
      example: {
        ok: false,
        findings: [
          { area: 'registry', subject: 'quay', ok: true, detail: 'minted and logged in' },
          {
            area: 'secret',
            subject: 'registries[1].password: fromEnv QUAY_TOKEN',
            ok: false,
            detail: 'not set',
            fix: 'fromEnv: export the variable',
          },
        ],
      },
    },
  },
  rbac: {
    summary: 'print the least-privilege RBAC and admission policy one cluster needs for this config',
    description:
      "Prints, as YAML documents, everything one cluster needs for this config and nothing more: Secrets get/list/watch/patch limited to the tenants' Secret names, create on Secrets, ServiceAccounts by name (unrestricted only in the namespaces of tenants with serviceAccounts: '*'), namespace and node reads as the config uses them, Events create, the status ConfigMap, and a ValidatingAdmissionPolicy that denies the identity any Secret write that is not kubernetes.io/dockerconfigjson, lacks the managed-by label or uses another name. Pipe it to kubectl apply -f -. With --per-namespace the namespaced rules are bound with a RoleBinding in each tenant namespace named in the config (label-selected tenants: what to do is printed as a comment and on stderr). docs/rotation.md explains each permission.",
    flags: {
      config,
      cluster: {
        type: 'string',
        arg: 'NAME',
        help: 'the cluster to generate for (default: the first in the config)',
      },
      'service-account': {
        type: 'string',
        arg: 'NAMESPACE/NAME',
        help: 'the ServiceAccount pullkeeper runs as (default pullkeeper-system/pullkeeper); its Namespace and ServiceAccount are included',
      },
      user: {
        type: 'string',
        arg: 'NAME',
        help: 'bind a user instead (an EKS/AKS/GKE identity as the API server names it)',
      },
      'per-namespace': {
        type: 'boolean',
        help: 'RoleBindings in each tenant namespace instead of cluster-wide bindings',
      },
      'guard-tenant-labels': {
        type: 'boolean',
        help: `also a policy letting only system:masters and the group pullkeeper:tenant-admins set or change the labels tenants select namespaces by`,
      },
      json: { ...json, help: 'print { cluster, username, objects, notes } as JSON instead of YAML' },
    },
    examples: [
      'pullkeeper rbac --config pullkeeper.yaml | kubectl apply -f -',
      'pullkeeper rbac --config pullkeeper.yaml --cluster prod --user arn:aws:iam::123456789012:role/pullkeeper',
      'pullkeeper rbac --config pullkeeper.yaml --per-namespace --guard-tenant-labels',
    ],
    exit: { 0: 'printed', 1: 'the config names no such cluster', 2: 'usage error or bad config' },
    json: {
      shape: '{ cluster, username, objects: [{ comment?, object }], notes: [string] }',
      example: {
        cluster: 'lab',
        username: 'system:serviceaccount:pullkeeper-system:pullkeeper',
        objects: [
          {
            comment: 'The identity pullkeeper runs as in this cluster.',
            object: {
              apiVersion: 'v1',
              kind: 'ServiceAccount',
              metadata: { name: 'pullkeeper', namespace: 'pullkeeper-system' },
            },
          },
        ],
        notes: [],
      },
    },
  },
  serve: {
    summary: 'the HTTP API locally, with Prometheus metrics at /metrics',
    description:
      'Serves the pullkeeper HTTP API and status page on this machine (GET /, /healthz, /v1/status, /metrics; POST /v1/refresh) until Ctrl-C or SIGTERM. The config is checked at start and re-read per request. /metrics takes the bearer auth of the API (a caller granted every tenant) unless api.metrics.public is set, which is refused unless --host is a loopback address. PULLKEEPER_EXTRA_CA_CERTS names a PEM file of extra CAs to trust for outgoing TLS.',
    flags: {
      config,
      port: { type: 'string', arg: 'PORT', help: 'port to listen on (default 3700; 0 picks a free one)' },
      host: { type: 'string', arg: 'HOST', help: 'address to listen on (default 127.0.0.1)' },
      json: { ...json, help: 'print { url, port } on stdout once listening' },
    },
    examples: [
      'pullkeeper serve --config pullkeeper.yaml',
      'pullkeeper serve --config pullkeeper.yaml --port 8080 --host 0.0.0.0',
    ],
    exit: {
      0: 'stopped by a signal',
      1: 'cannot listen (port in use...)',
      2: 'usage error or bad config (api.metrics.public on a non-loopback --host)',
    },
    json: { shape: '{ url, port } once listening', example: { url: 'http://127.0.0.1:3700', port: 3700 } },
  },
  push: {
    args: '[IMAGE...]',
    summary: "merge the nodes' registry credentials into each node's config.json over SSH",
    description:
      "Merges the registry credentials of the config's nodes section into each node's kubelet config.json over SSH, keeping the entries pullkeeper does not own. --check reports drift and writes nothing. --pre-pull then pulls IMAGE on each node (more images may follow as arguments). On a terminal, progress goes to stderr.",
    flags: {
      config,
      node: { type: 'string', multiple: true, arg: 'NAME', help: 'only this node' },
      check: { type: 'boolean', help: 'report drift; write nothing' },
      json,
      'pre-pull': {
        type: 'string',
        multiple: true,
        arg: 'IMAGE',
        help: 'after writing, pull IMAGE on each node',
      },
    },
    examples: [
      'pullkeeper push --config pullkeeper.yaml --check',
      'pullkeeper push --config pullkeeper.yaml --node node-1 --node node-2',
      'pullkeeper push --config pullkeeper.yaml --pre-pull quay.io/acme/app:v2',
    ],
    exit: {
      0: 'every node ok',
      1: 'a node failed (or the canary rule stopped the run)',
      2: 'usage error or bad config',
    },
    json: {
      shape:
        '{ registries: [mint entry], nodes: [{ name, address, status: written|unchanged|drift|failed, reason?, ms, notes?, afterWrite?, pulls? }], halted?, hostKeyRecordError? }',
      example: {
        registries: [REGISTRY_ENTRY],
        nodes: [{ name: 'node-1', address: '10.0.0.11', status: 'written', ms: 412 }],
      },
    },
  },
  demo: {
    summary: 'run the embedded local example',
    description:
      'Runs a self-contained example: a node config and two pod pull secrets with fake credentials, and which credential kubelet would use for four images. Needs nothing else. Human-readable output only. The whole product on a local stack of real components is `make demo` (README).',
    flags: {},
    examples: ['pullkeeper demo'],
    exit: { 0: 'ok' },
  },
  status: {
    summary: 'what this build can do',
    description: 'Prints the version and the capabilities of this build. The output is always JSON.',
    flags: { json: { ...json, help: 'accepted for symmetry: the output is always JSON' } },
    examples: ['pullkeeper status'],
    exit: USAGE_EXIT,
    json: {
      shape: '{ version, capabilities: { NAME: true|false } }',
      example: { version: VERSION, capabilities: { core: true, mintCredentials: true } },
    },
  },
  version: {
    summary: 'print the version',
    description: 'Prints the version of pullkeeper.',
    flags: { json },
    examples: ['pullkeeper version', 'pullkeeper version --json'],
    exit: USAGE_EXIT,
    json: { shape: '{ version }', example: { version: VERSION } },
  },
  help: {
    args: '[COMMAND]',
    summary: "the command list, or one command's flags, examples and exit codes",
    description:
      'Without COMMAND, lists every command. With one, prints its synopsis, flags, examples, exit codes and --json shape. `pullkeeper COMMAND --help` (or -h) prints the same.',
    flags: {},
    examples: ['pullkeeper help', 'pullkeeper help refresh', 'pullkeeper push --help'],
    exit: { 0: 'ok', 2: 'unknown command' },
  },
  completion: {
    args: 'bash|zsh|fish',
    summary: 'print a shell completion script',
    description:
      "Prints a completion script for commands, subcommands and each command's flags. Load it in the current shell with `source <(pullkeeper completion bash)` (zsh: `source <(pullkeeper completion zsh)`; fish: `pullkeeper completion fish | source`), or install it as docs/cli.md shows.",
    flags: {},
    examples: [
      'source <(pullkeeper completion bash)',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, not a template
      'pullkeeper completion zsh > "${fpath[1]}/_pullkeeper"',
      'pullkeeper completion fish > ~/.config/fish/completions/pullkeeper.fish',
    ],
    exit: { 0: 'ok', 2: 'unknown shell' },
    complete: SHELLS,
  },
} as const satisfies Record<string, CommandHelp>;

const POD = 'POD is NAME (namespace default) or NAMESPACE/NAME.';

/** `pullkeeper-node` commands, in overview order. */
export const PULLKEEPER_NODE = {
  pull: {
    args: 'IMAGE',
    summary: 'pull IMAGE into the node store, choosing credentials exactly as kubelet does',
    description:
      "Pulls IMAGE into the node's image store with kubelet's credential choice: the pod's pull secrets (each --secret, in imagePullSecrets order), then the node's credentials in kubelet's search order under --root-dir. Events (Pulling, Pulled, Failed) go to stderr like kubelet's; on a terminal a layer progress line too. FILE is a Secret manifest, a config.json or a .dockercfg. An image already in the store is handed out as kubelet 1.35 does (KEP-2535): if a pull secret pulled it, other credentials are first checked against the registry (one HEAD per credential) and refused with ErrImagePull if the registry refuses them.",
    flags: {
      secret: {
        type: 'string',
        multiple: true,
        arg: 'FILE',
        help: "a pod pull secret; repeat in the pod's imagePullSecrets order",
      },
      policy: {
        type: 'string',
        arg: 'POLICY',
        values: ['Always', 'IfNotPresent', 'Never'],
        help: 'Always | IfNotPresent | Never (default: what the API server would set for IMAGE)',
      },
      'state-dir': stateDir,
      'root-dir': {
        type: 'string',
        arg: 'DIR',
        help: `kubelet's root dir, where node credentials are looked up (default: $PULLKEEPER_KUBELET_ROOT_DIR, else ${DEFAULT_KUBELET_ROOT_DIR})`,
      },
      json: { ...json, default: false },
      'always-pull-images': {
        type: 'boolean',
        default: false,
        help: 'act as the AlwaysPullImages admission plugin (policy Always)',
      },
      'image-pull-credentials-verification-policy': {
        type: 'string',
        arg: 'POLICY',
        values: IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES,
        help: "KEP-2535: when an image already present needs the registry to accept these credentials (default NeverVerifyPreloadedImages, kubelet 1.35's)",
      },
      'preloaded-images-verification-allowlist': {
        type: 'string',
        multiple: true,
        arg: 'IMAGE',
        help: 'with NeverVerifyAllowlistedImages: an image name, or a prefix ending in /*, that is never verified',
      },
      'verify-cached-credentials': {
        type: 'boolean',
        default: false,
        help: 'deprecated alias of --image-pull-credentials-verification-policy AlwaysVerify',
      },
      'insecure-registry': {
        type: 'string',
        multiple: true,
        arg: 'HOST',
        help: 'talk plain HTTP to this registry; credentials may go to it (and its token server on the same host) over plain HTTP',
      },
      concurrency: { type: 'string', arg: 'N', help: 'layers downloaded and unpacked at once (default 3)' },
      'max-image-bytes': {
        type: 'string',
        arg: 'N',
        help: 'refuse images whose layers together unpack to more than N file bytes, counted while they stream (default 16 GiB)',
      },
      'max-layer-bytes': {
        type: 'string',
        arg: 'N',
        help: 'refuse a layer that unpacks to more than N file bytes (default: the --max-image-bytes value)',
      },
      'max-image-inodes': {
        type: 'string',
        arg: 'N',
        help: 'refuse images whose layers together hold more than N entries (files, dirs, links, whiteouts; default 1000000)',
      },
      'max-pax-header-bytes': {
        type: 'string',
        arg: 'N',
        help: 'refuse a layer with a PAX or GNU long-name header over N bytes (default 1 MiB, as Go archive/tar)',
      },
      'keep-setuid': { type: 'boolean', default: false, help: 'keep setuid/setgid bits when unpacking' },
    },
    examples: [
      'pullkeeper-node pull busybox:1.36',
      'pullkeeper-node pull quay.io/acme/app:v2 --secret regcred.yaml --policy IfNotPresent',
      'pullkeeper-node pull registry.local:5000/app:v1 --insecure-registry registry.local:5000 --json',
      'pullkeeper-node pull quay.io/acme/app:v2 --secret regcred.yaml --image-pull-credentials-verification-policy AlwaysVerify',
    ],
    exit: {
      0: 'pulled (or already present)',
      1: 'ErrImagePull: auth failed (also for a cached image these credentials may not read), digest mismatch, unsafe layer, registry unreachable, bad pull secret',
      2: 'usage error',
      3: 'ErrImageNeverPull: not present and the policy is Never',
      4: 'InvalidImageName',
    },
    json: {
      shape:
        '{ image, ref, digest, pulled, layers: [the unpacked layer directories (overlayfs lowerdirs), base first] } or, on failure, { image, error: { reason: ErrImagePull|ErrImageNeverPull|InvalidImageName|InvalidPullSecret, message } }',
      example: {
        image: 'busybox:1.36',
        ref: 'docker.io/library/busybox:1.36',
        digest: 'sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79',
        pulled: true,
        layers: [
          `${DEFAULT_STATE_DIR}/layers/sha256/65014c70e84b6817fa42ab4ea6f3ea9ae5a1c5d2aa8c8b7e0b3e5f9d1b1b1c1d/rootfs`,
        ],
      },
    },
  },
  images: {
    summary: 'the images in the node store',
    description:
      'Lists the images in the node store: reference, digest, compressed size, when it was pulled, and (KEP-2535) who pulled it: node credentials or anonymous (any pod), the pull Secrets recorded, or preloaded (no record).',
    flags: { 'state-dir': stateDir, json: { ...json, default: false } },
    examples: ['pullkeeper-node images', 'pullkeeper-node images --state-dir /tmp/pk-state --json'],
    exit: USAGE_EXIT,
    json: {
      shape:
        '[{ ref, name, tag?, digest, indexDigest?, config, layers, size, pulledAt, credentials?: { nodeAccessible, secrets: [{ kind, name, uid? }] } }] (no credentials: preloaded)',
      example: [
        {
          ref: 'docker.io/library/busybox:1.36',
          name: 'docker.io/library/busybox',
          tag: '1.36',
          digest: 'sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79',
          config: 'sha256:6fd955f66c231c1a946653170d096a7f6e4fdc6a79a2ee8c1a5e5bd2b1d7b1e6',
          layers: ['sha256:65014c70e84b6817fa42ab4ea6f3ea9ae5a1c5d2aa8c8b7e0b3e5f9d1b1b1c1d'],
          size: 2155259,
          pulledAt: '2025-01-01T00:00:00.000Z',
        },
      ],
    },
  },
  gc: {
    summary: 'drop image references, then delete unreferenced layers and blobs',
    description:
      'Drops each --image reference from the store, then deletes the layers and blobs no image references, and leftovers of interrupted pulls. Without --image it only collects what is already unreferenced.',
    flags: {
      'state-dir': stateDir,
      image: {
        type: 'string',
        multiple: true,
        arg: 'REF',
        help: 'drop this image reference first',
      },
      json: { ...json, default: false },
    },
    examples: ['pullkeeper-node gc', 'pullkeeper-node gc --image busybox:1.36 --json'],
    exit: USAGE_EXIT,
    json: {
      shape: '{ removedImages, removedLayers, removedBlobs }',
      example: { removedImages: ['docker.io/library/busybox:1.36'], removedLayers: 1, removedBlobs: 3 },
    },
  },
  'credential-provider': {
    summary: 'kubelet credential provider plugin (credentialprovider.kubelet.k8s.io/v1, stdin -> stdout)',
    description:
      "The kubelet credential provider plugin: reads a CredentialProviderRequest on stdin and answers with a CredentialProviderResponse. With --broker and a request that carries the pod's serviceAccountToken (the kubelet's tokenAttributes, KEP-4412), it asks pullkeeper's broker (POST /v1/credentials) for the pod's tenant's credentials; a broker that cannot be reached or refuses gives an empty auth cached for 10s and the reason on stderr. Otherwise it answers from the credentials file pullkeeper keeps on the node; a missing file answers with no credentials (and says so on stderr). The output is always JSON. docs/pod-credentials.md",
    flags: {
      credentials: {
        type: 'string',
        arg: 'FILE',
        default: `${DEFAULT_STATE_DIR}/credentials.json`,
        help: 'the credentials file to answer from (requests without a serviceAccountToken)',
      },
      broker: {
        type: 'string',
        arg: 'URL',
        help: "pullkeeper's API (https://HOST): requests with a serviceAccountToken ask its broker",
      },
      'ca-file': {
        type: 'string',
        arg: 'FILE',
        help: "PEM CA that signed the broker's certificate (default: the system's CAs)",
      },
      timeout: {
        type: 'string',
        arg: 'S',
        default: '5',
        help: 'seconds to wait for the broker (then: no credentials, reason on stderr)',
      },
    },
    examples: [
      `echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"quay.io/acme/app"}' | pullkeeper-node credential-provider`,
      'pullkeeper-node credential-provider --broker https://pullkeeper.example.com --ca-file /etc/pullkeeper/ca.pem --timeout 5',
    ],
    exit: {
      0: 'answered (also with no credentials when the broker is down)',
      1: 'the request or the credentials file is malformed',
      2: 'usage error',
    },
    json: {
      shape:
        'a CredentialProviderResponse: { apiVersion, kind, cacheKeyType, cacheDuration?, auth: { KEY: { username, password } } }',
      example: {
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        kind: 'CredentialProviderResponse',
        cacheKeyType: 'Registry',
        auth: {},
      },
    },
  },
  run: {
    args: 'POD.yaml',
    summary: 'run a Pod (YAML or JSON) on this node',
    description:
      "Runs the Pod in POD.yaml on this node with runc, pulling its images through the node store. ConfigMaps, Secrets, Services and RuntimeClasses may follow the Pod in the same file, come in --objects files, or be read from the cluster of --kubeconfig (files win by name). With podCredentials in the node config (and --kubeconfig), the pod's ServiceAccount token (bound to the pod, which must exist in the cluster) is exchanged at pullkeeper's broker, and its answer is tried after the pod's Secrets and the node file (docs/pod-credentials.md).",
    flags: {
      'state-dir': nodeStateDir,
      'node-config': nodeConfig,
      objects: {
        type: 'string',
        multiple: true,
        arg: 'FILE',
        help: 'ConfigMaps, Secrets, Services, RuntimeClasses the Pod uses',
      },
      kubeconfig: { type: 'string', arg: 'FILE', help: "read the Pod's objects from this cluster" },
      json,
    },
    examples: [
      'pullkeeper-node run pod.yaml',
      'pullkeeper-node run pod.yaml --objects configmaps.yaml --json',
      'pullkeeper-node run pod.yaml --kubeconfig ~/.kube/config',
    ],
    exit: {
      0: 'the pod is running (or succeeded)',
      1: 'the pod failed (the message says why)',
      2: 'usage error',
    },
    json: {
      shape:
        '{ name, namespace, uid, phase, podIP, runtimeHandler, runtimeClassName, message, containers, events }',
      example: {
        name: 'web',
        namespace: 'default',
        uid: '6f1c1f8e-0000-4000-8000-000000000001',
        phase: 'Running',
        podIP: '10.88.0.2',
        runtimeHandler: 'runc',
        containers: [{ name: 'web', state: 'running', ready: true, restartCount: 0 }],
        events: [],
      },
    },
    complete: 'files',
  },
  stop: {
    args: 'POD',
    summary: 'stop a pod: PreStop, TERM, KILL after the grace period; releases the sandbox',
    description: `Stops a pod this node runs: PreStop hooks, SIGTERM, SIGKILL after the grace period, then releases its sandbox. ${POD}`,
    flags: { 'state-dir': nodeStateDir, 'node-config': nodeConfig, json },
    examples: ['pullkeeper-node stop web', 'pullkeeper-node stop team-a/web --json'],
    exit: { 0: 'stopped', 1: 'no such pod, or stopping failed', 2: 'usage error' },
    json: { shape: '{ pod, phase }', example: { pod: 'team-a/web', phase: 'Succeeded' } },
  },
  describe: {
    args: 'POD',
    summary: 'like kubectl describe pod (events last)',
    description: `Prints a pod's spec, state, containers and events like kubectl describe pod. ${POD}`,
    flags: { 'state-dir': nodeStateDir, 'node-config': nodeConfig, json },
    examples: ['pullkeeper-node describe web', 'pullkeeper-node describe team-a/web --json'],
    exit: { 0: 'ok', 1: 'no such pod', 2: 'usage error' },
    json: {
      shape:
        '{ name, namespace, runtimeClassName, runtimeHandler, startTime, labels, phase, podIP, message, containers: [{ name, image, imageID, containerID, state, reason, exitCode, startedAt, finishedAt, ready, restartCount }], events }',
      example: {
        name: 'web',
        namespace: 'default',
        runtimeClassName: null,
        runtimeHandler: 'runc',
        startTime: '2025-01-01T00:00:00Z',
        labels: { app: 'web' },
        phase: 'Running',
        podIP: '10.88.0.2',
        message: null,
        containers: [
          {
            name: 'web',
            image: 'nginx:1.27',
            imageID: 'docker.io/library/nginx:1.27@sha256:…',
            containerID: 'runc://…',
            state: 'running',
            reason: null,
            exitCode: null,
            startedAt: '2025-01-01T00:00:01Z',
            finishedAt: null,
            ready: true,
            restartCount: 0,
          },
        ],
        events: [{ type: 'Normal', reason: 'Started', message: 'Started container web' }],
      },
    },
  },
  ps: {
    summary: 'the pods of this node',
    description:
      'Lists the pods of this node like kubectl get pods: ready containers, status, restarts, age, IP and runtime.',
    flags: { 'state-dir': nodeStateDir, 'node-config': nodeConfig, json },
    examples: ['pullkeeper-node ps', 'pullkeeper-node ps --json'],
    exit: { 0: 'ok', 1: 'the state directory is unreadable', 2: 'usage error' },
    json: {
      shape: '[{ name, namespace, phase, ready, restarts, podIP?, runtimeHandler?, createdAt? }]',
      example: [
        {
          name: 'web',
          namespace: 'default',
          phase: 'Running',
          ready: '1/1',
          restarts: 0,
          podIP: '10.88.0.2',
          runtimeHandler: 'runc',
          createdAt: '2025-01-01T00:00:00Z',
        },
      ],
    },
  },
  logs: {
    args: 'POD',
    summary: "a container's log (the rotated file, then the current one)",
    description: `Prints a container's log. With one container -c may be left out. ${POD}`,
    flags: {
      'state-dir': nodeStateDir,
      'node-config': nodeConfig,
      container: {
        type: 'string',
        short: 'c',
        arg: 'CONTAINER',
        help: 'the container (needed when the pod has several)',
      },
      json,
    },
    examples: [
      'pullkeeper-node logs web',
      'pullkeeper-node logs team-a/web -c sidecar',
      'pullkeeper-node logs web --json',
    ],
    exit: { 0: 'ok', 1: 'no such pod or container', 2: 'usage error' },
    json: {
      shape: '{ pod, container, lines }',
      example: { pod: 'web', container: 'web', lines: ['listening on :8080'] },
    },
  },
  daemon: {
    summary: 'host pod supervisors in one long-lived process (systemd unit)',
    description:
      'Hosts the pod supervisors in one long-lived process listening on STATE/daemon.sock, for a systemd unit. Runs until SIGTERM or SIGINT.',
    flags: { 'state-dir': nodeStateDir, 'node-config': nodeConfig },
    examples: ['pullkeeper-node daemon', 'pullkeeper-node daemon --node-config /etc/pullkeeper/node.yaml'],
    exit: { 0: 'stopped by a signal', 1: 'the node config or state directory is unusable', 2: 'usage error' },
  },
  version: {
    summary: 'print the version',
    description: 'Prints the version of pullkeeper-node.',
    flags: { json },
    examples: ['pullkeeper-node version', 'pullkeeper-node version --json'],
    exit: USAGE_EXIT,
    json: { shape: '{ version }', example: { version: VERSION } },
  },
  help: {
    args: '[COMMAND]',
    summary: "the command list, or one command's flags, examples and exit codes",
    description:
      'Without COMMAND, lists every command. With one, prints its synopsis, flags, examples, exit codes and --json shape. `pullkeeper-node COMMAND --help` (or -h) prints the same.',
    flags: {},
    examples: ['pullkeeper-node help', 'pullkeeper-node help pull', 'pullkeeper-node run --help'],
    exit: { 0: 'ok', 2: 'unknown command' },
  },
  completion: {
    args: 'bash|zsh|fish',
    summary: 'print a shell completion script',
    description:
      "Prints a completion script for commands and each command's flags. Load it with `source <(pullkeeper-node completion bash)`, or install it as docs/cli.md shows.",
    flags: {},
    examples: [
      'source <(pullkeeper-node completion bash)',
      'pullkeeper-node completion fish > ~/.config/fish/completions/pullkeeper-node.fish',
    ],
    exit: { 0: 'ok', 2: 'unknown shell' },
    complete: SHELLS,
  },
} as const satisfies Record<string, CommandHelp>;

export const PULLKEEPER_CLI: CliHelp = {
  name: 'pullkeeper',
  tagline: 'keeps private container images pullable',
  commands: PULLKEEPER,
  footer: ['Most commands read --config FILE, or $PULLKEEPER_CONFIG when the flag is not given.'],
};

export const PULLKEEPER_NODE_CLI: CliHelp = {
  name: 'pullkeeper-node',
  tagline: 'pulls images exactly as kubelet chooses credentials, and runs pods',
  commands: PULLKEEPER_NODE,
  footer: [
    'Pod commands read images from the same store (PULLKEEPER_NODE_STATE_DIR, PULLKEEPER_KUBELET_ROOT_DIR).',
    `Defaults: --state-dir ${DEFAULT_STATE_DIR} (pod commands: $PULLKEEPER_NODE_STATE, else ${DEFAULT_POD_STATE_ROOT}), --root-dir ${DEFAULT_KUBELET_ROOT_DIR}.`,
  ],
};

/** `--flag ARG` / `-c, --container CONTAINER`, as in a flag list. */
function flagLabel(name: string, f: FlagHelp): string {
  const short = f.short ? `-${f.short}, ` : '';
  return `${short}--${name}${f.type === 'string' ? ` ${f.arg ?? 'VALUE'}` : ''}`;
}

/** The synopsis: `pullkeeper refresh --config FILE [--tenant NAME]... [--dry-run] [--json] [--force]`. */
export function synopsis(cli: CliHelp, command: string): string {
  const c = cli.commands[command]!;
  const parts = [`${cli.name} ${command}`];
  if (c.args) parts.push(c.args);
  for (const [name, f] of Object.entries(c.flags)) {
    const core = `--${name}${f.type === 'string' ? ` ${f.arg ?? 'VALUE'}` : ''}`;
    parts.push(`${f.required ? core : `[${core}]`}${f.multiple ? '...' : ''}`);
  }
  return parts.join(' ');
}

/** Wraps words to `width` columns, continuation lines indented. */
function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent + word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** The overview: every command with one line, and where to read more. */
export function renderOverview(cli: CliHelp): string {
  const rows = Object.entries(cli.commands).map(([name, c]) => [
    [
      `${cli.name} ${name}`,
      ...(c.args ? [c.args] : []),
      ...Object.entries(c.flags)
        .filter(([, f]) => f.required)
        .map(([n, f]) => `--${n} ${f.arg ?? 'VALUE'}`),
    ].join(' '),
    c.summary,
  ]);
  const w = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  return [
    `${cli.name} ${VERSION}: ${cli.tagline}`,
    '',
    'Usage:',
    ...rows.map(([a, b]) => `  ${a!.padEnd(w)}${b}`),
    '',
    ...(cli.footer ?? []),
    `Exit codes: ${Object.keys(EXIT_CODES)
      .filter((code) => Object.values(cli.commands).some((c) => Object.hasOwn(c.exit, code)))
      .map((code) => `${code} ${EXIT_SHORT[Number(code)]}`)
      .join(', ')}.`,
    `Run \`${cli.name} help COMMAND\` for its flags, examples and exit codes.`,
  ].join('\n');
}

/** One command's help: synopsis, description, flags, examples, exit codes, JSON shape. */
export function renderCommand(cli: CliHelp, command: string): string {
  const c = cli.commands[command]!;
  const flags = Object.entries(c.flags);
  const w = Math.max(0, ...flags.map(([n, f]) => flagLabel(n, f).length)) + 2;
  const out = ['Usage:', ...wrap(synopsis(cli, command), 100, '      ').map((l) => `  ${l}`), ''];
  out.push(...wrap(c.description, 100, ''), '');
  if (flags.length) {
    out.push('Flags:');
    for (const [n, f] of flags) {
      const extra = [
        f.multiple ? 'repeatable' : '',
        f.default !== undefined && f.type === 'string' ? `default ${f.default}` : '',
      ]
        .filter(Boolean)
        .join('; ');
      out.push(
        `  ${flagLabel(n, f).padEnd(w)}${f.help}${extra && !f.help.includes('default') ? ` (${extra})` : ''}`,
      );
    }
    out.push(`  ${'-h, --help'.padEnd(w)}this help`, '');
  }
  out.push('Examples:', ...c.examples.map((e) => `  ${e}`), '');
  out.push('Exit codes:', ...Object.entries(c.exit).map(([code, why]) => `  ${code}  ${why}`));
  if (c.json) out.push('', `JSON (--json): ${c.json.shape}`);
  return out.join('\n');
}

/**
 * The command a help request names (`config` alone means `config check`), or
 * undefined. `words` are the words after `help`, or the command words before `--help`.
 */
export function resolveCommand(cli: CliHelp, words: readonly string[]): string | undefined {
  const two = words.slice(0, 2).join(' ');
  if (Object.hasOwn(cli.commands, two)) return two;
  const one = words[0];
  if (one === undefined) return undefined;
  if (Object.hasOwn(cli.commands, one)) return one;
  return Object.keys(cli.commands).find((k) => k.startsWith(`${one} `));
}

/** The words a user can type as a command: `config` for `config check`. */
export function topLevelWords(cli: CliHelp): string[] {
  return [...new Set(Object.keys(cli.commands).map((k) => k.split(' ')[0]!))];
}

/** `unknown command "refesh"; did you mean refresh?` plus the pointer to help. */
export function unknownCommandMessage(cli: CliHelp, word: string): string {
  const near = suggest(word, topLevelWords(cli));
  return `${cli.name}: unknown command "${word}"${near ? `; did you mean ${near}?` : ''}\nRun \`${cli.name} help\` for the list of commands.`;
}

/**
 * parseArgs errors made helpful: an unknown flag gets a suggestion from the
 * command's flags and the pointer to its help.
 */
export function usageErrorMessage(cli: CliHelp, command: string, err: Error): string {
  const c = cli.commands[command];
  let msg = err.message;
  const m = /Unknown option '(-{1,2})([^']+)'/.exec(msg);
  if (m && c) {
    const near = suggest(m[2]!, Object.keys(c.flags));
    msg = `Unknown option '${m[1]}${m[2]}'${near ? `; did you mean --${near}?` : ''}`;
  }
  return `${cli.name} ${command}: ${msg}\nRun \`${cli.name} help ${command}\` for its flags and examples.`;
}

/** `CLI help [COMMAND]`: the overview, or one command's help; an unknown command is exit 2. */
export function printHelp(cli: CliHelp, words: readonly string[], io: CliIO): number {
  if (!words.length) {
    io.out(renderOverview(cli));
    return 0;
  }
  const key = resolveCommand(cli, words);
  if (!key) {
    io.err(unknownCommandMessage(cli, words[0]!));
    return 2;
  }
  io.out(renderCommand(cli, key));
  return 0;
}
