/**
 * `pullkeeper-node`: the node side. Commands are a plain table of
 * name -> handler so more (run, stop, describe, ps, logs) slot in beside.
 * Returns the exit code; no side effects on import.
 *
 * Exit codes: 0 ok; 1 the operation failed (ErrImagePull, digest mismatch,
 * unsafe layer, registry unreachable); 2 usage error; 3 ErrImageNeverPull
 * (absent with policy Never); 4 InvalidImageName. Help, flags and the shell
 * completion come from the table in help.ts (PULLKEEPER_NODE).
 */

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ExtraCaError, trustExtraCaCertificates } from '../app/extra-ca.js';
import { PullkeeperError } from '../core/errors.js';
import {
  AllowlistPatternError,
  compileAllowlist,
  DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY,
  DEFAULT_KUBELET_ROOT_DIR,
  defaultPullPolicy,
  IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES,
  type ImagePullCredentialsVerificationPolicy,
  InvalidImageRefError,
  type PullPolicy,
  type SourcedDockerConfig,
  type VerificationAllowlist,
} from '../core/index.js';
import type { ImageEvent, ImageSource } from '../runner/image-source.js';
import type { PullProgress } from '../runner/store/store.js';
import { VERSION } from '../version.js';
import { printCompletion } from './completion.js';
import {
  PULLKEEPER_NODE,
  PULLKEEPER_NODE_CLI,
  printHelp,
  renderOverview,
  unknownCommandMessage,
  usageErrorMessage,
} from './help.js';
import { type CliIO, processIO, progressOf, unexpectedFailureMessage, withJsonErrors } from './io.js';

// Modules are imported by the commands that use them: `--version`, `--help` and
// `credential-provider` (which kubelet runs per image pull) load neither the image
// store nor the pod runner (start-up time; `npm run bench -- startup`).
const loadStore = () => import('../runner/store/store.js');

/** CliIO (with its terminal progress line) plus stdin. */
export interface NodeCliIO extends CliIO {
  /** The whole of stdin (credential-provider). */
  readStdin?: () => Promise<string>;
}

export const EXIT = { ok: 0, failed: 1, usage: 2, neverPull: 3, invalidImage: 4 } as const;

export const nodeProcessIO: NodeCliIO = {
  ...processIO,
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

export type NodeCommand = (args: string[], io: NodeCliIO) => Promise<number>;

const POLICIES: readonly PullPolicy[] = ['Always', 'IfNotPresent', 'Never'];

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

const pull: NodeCommand = async (args, io) => {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: PULLKEEPER_NODE.pull.flags,
  });
  if (positionals.length !== 1) {
    io.err(
      'pullkeeper-node pull: give exactly one image, e.g. `pullkeeper-node pull busybox:1.36` (`pullkeeper-node help pull`)',
    );
    return EXIT.usage;
  }
  const image = positionals[0]!;
  if (values.policy !== undefined && !POLICIES.includes(values.policy as PullPolicy)) {
    io.err(`pullkeeper-node pull: --policy must be one of ${POLICIES.join(', ')}`);
    return EXIT.usage;
  }
  // kubelet never sees an empty policy: the API server defaults it; AlwaysPullImages overrides it.
  let policy: PullPolicy = (values.policy as PullPolicy | undefined) ?? defaultPullPolicy(image);
  if (values['always-pull-images']) policy = 'Always';
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer`);
    return n;
  };
  const json = values.json;
  const fail = (code: number, reason: string, message: string) => {
    if (json) io.out(JSON.stringify({ image, error: { reason, message } }));
    io.err(`pullkeeper-node: ${message}`);
    return code;
  };
  const { ImageStore, ImageNeverPullError } = await loadStore();
  const { readCredentialFile } = await import('./pull-secret-file.js');
  const verification = pullVerification(values);
  if (values['verify-cached-credentials']) {
    io.err(
      'pullkeeper-node: warning: --verify-cached-credentials is deprecated; it means --image-pull-credentials-verification-policy AlwaysVerify',
    );
  }
  let podSecrets: SourcedDockerConfig[];
  try {
    podSecrets = [];
    // Each file stands in for one pod pull Secret: KEP-2535 records and names it by its path.
    for (const f of values.secret ?? []) {
      podSecrets.push({ ...(await readCredentialFile(f)), source: { kind: 'file', name: resolve(f) } });
    }
  } catch (err) {
    if (err instanceof PullkeeperError) return fail(EXIT.failed, 'InvalidPullSecret', err.message);
    throw err;
  }
  let lastProgress = 0;
  const progress = progressOf(io, json);
  const store = new ImageStore({
    stateDir: await nodeStateDir(values['state-dir']),
    nodeCredentials: { rootDir: kubeletRootDir(values['root-dir']) },
    concurrency: num('concurrency', values.concurrency),
    maxImageBytes: num('max-image-bytes', values['max-image-bytes']),
    maxLayerBytes: num('max-layer-bytes', values['max-layer-bytes']),
    maxImageInodes: num('max-image-inodes', values['max-image-inodes']),
    maxPaxHeaderBytes: num('max-pax-header-bytes', values['max-pax-header-bytes']),
    keepSetuid: values['keep-setuid'],
    insecureRegistries: values['insecure-registry'] ?? [],
    onProgress: progress
      ? (p: PullProgress) => {
          const now = Date.now();
          if (now - lastProgress < 100 && p.layersDone < p.layersTotal) return;
          lastProgress = now;
          progress(`[${p.layersDone}/${p.layersTotal}] layers  ${mb(p.bytesDone)} / ${mb(p.bytesTotal)}`);
        }
      : undefined,
  });
  const onEvent = (e: ImageEvent) => {
    if (!json) io.err(`${e.type} ${e.reason}: ${e.message}`);
  };
  try {
    const r = await store.ensure({
      image,
      policy,
      podSecrets,
      ...verification,
      onEvent,
    });
    progress?.('');
    if (json) {
      io.out(JSON.stringify({ image, ref: r.ref, digest: r.digest, pulled: r.pulled, layers: r.layers }));
    } else {
      io.out(`${r.ref}@${r.digest} ${r.pulled ? 'pulled' : 'present'}`);
      for (const l of r.layers) io.out(`  ${l}`);
    }
    return EXIT.ok;
  } catch (err) {
    progress?.('');
    if (err instanceof ImageNeverPullError) return fail(EXIT.neverPull, 'ErrImageNeverPull', err.message);
    if (err instanceof InvalidImageRefError) return fail(EXIT.invalidImage, 'InvalidImageName', err.message);
    if (err instanceof PullkeeperError) return fail(EXIT.failed, 'ErrImagePull', err.message);
    throw err;
  }
};

/**
 * KEP-2535 flags of `pull`: the policy (kubelet's default when unset), the
 * deprecated boolean as AlwaysVerify, the allowlist checked as kubelet does.
 */
function pullVerification(values: {
  'image-pull-credentials-verification-policy'?: string | undefined;
  'preloaded-images-verification-allowlist'?: string[] | undefined;
  'verify-cached-credentials'?: boolean | undefined;
}): {
  verificationPolicy: ImagePullCredentialsVerificationPolicy;
  verificationAllowlist?: VerificationAllowlist;
} {
  const set = values['image-pull-credentials-verification-policy'];
  if (
    set !== undefined &&
    !(IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES as readonly string[]).includes(set)
  ) {
    throw new UsageError(
      `--image-pull-credentials-verification-policy must be one of ${IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICIES.join(', ')}`,
    );
  }
  if (set !== undefined && values['verify-cached-credentials']) {
    throw new UsageError(
      '--verify-cached-credentials is the deprecated spelling of --image-pull-credentials-verification-policy AlwaysVerify; give one of them',
    );
  }
  const policy = values['verify-cached-credentials']
    ? 'AlwaysVerify'
    : ((set as ImagePullCredentialsVerificationPolicy | undefined) ??
      DEFAULT_IMAGE_PULL_CREDENTIALS_VERIFICATION_POLICY);
  const list = values['preloaded-images-verification-allowlist'] ?? [];
  if (list.length === 0) return { verificationPolicy: policy };
  if (policy !== 'NeverVerifyAllowlistedImages') {
    throw new UsageError(
      '--preloaded-images-verification-allowlist is only used with --image-pull-credentials-verification-policy NeverVerifyAllowlistedImages',
    );
  }
  try {
    return { verificationPolicy: policy, verificationAllowlist: compileAllowlist(list) };
  } catch (err) {
    if (err instanceof AllowlistPatternError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

const images: NodeCommand = async (args, io) => {
  const { values } = parseArgs({ args, options: PULLKEEPER_NODE.images.flags });
  const { ImageStore } = await loadStore();
  const list = await new ImageStore({ stateDir: await nodeStateDir(values['state-dir']) }).list();
  if (values.json) {
    // Who pulled each image, by source only: the credential hashes stay in the store.
    const shown = list.map(({ credentials, ...r }) =>
      credentials
        ? {
            ...r,
            credentials: {
              nodeAccessible: credentials.nodeAccessible,
              secrets: credentials.secrets.map((s) => s.source),
            },
          }
        : r,
    );
    io.out(JSON.stringify(shown));
    return EXIT.ok;
  }
  io.out(`${'IMAGE'.padEnd(60)} ${'DIGEST'.padEnd(19)} ${'SIZE'.padStart(10)} PULLED`);
  for (const i of list) {
    io.out(`${i.ref.padEnd(60)} ${i.digest.slice(0, 19)} ${mb(i.size).padStart(10)} ${i.pulledAt}`);
  }
  return EXIT.ok;
};

const gc: NodeCommand = async (args, io) => {
  const { values } = parseArgs({ args, options: PULLKEEPER_NODE.gc.flags });
  const { ImageStore } = await loadStore();
  const r = await new ImageStore({ stateDir: await nodeStateDir(values['state-dir']) }).gc(
    values.image ?? [],
  );
  if (values.json) io.out(JSON.stringify(r));
  else {
    io.out(
      `removed ${r.removedImages.length} image reference(s), ${r.removedLayers} layer(s), ${r.removedBlobs} blob(s)`,
    );
  }
  return EXIT.ok;
};

const credentialProvider: NodeCommand = async (args, io) => {
  const { values } = parseArgs({ args, options: PULLKEEPER_NODE['credential-provider'].flags });
  if (!io.readStdin) throw new UsageError('credential-provider needs stdin');
  const { answerProviderRequest, askBroker, parseProviderCredentials, parseProviderRequest } = await import(
    '../runner/credential-provider.js'
  );
  const req = parseProviderRequest(await io.readStdin());
  // A pod's token (KEP-4412 tokenAttributes): ask the broker, which knows the pod's tenant.
  if (values.broker && req.serviceAccountToken) {
    const timeout = Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 60)
      throw new UsageError(`--timeout must be a number of seconds between 0 and 60, not ${values.timeout}`);
    let ca: string | undefined;
    if (values['ca-file']) {
      try {
        ca = await readFile(values['ca-file'], 'utf8');
      } catch (err) {
        throw new UsageError(
          `--ca-file ${values['ca-file']} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): pass the PEM CA of the broker's certificate`,
        );
      }
    }
    const r = await askBroker(req, { url: values.broker, ca, timeoutMs: timeout * 1000 });
    if (r.problem)
      io.err(
        `pullkeeper-node credential-provider: ${r.problem}; answering with no credentials for ${r.response.cacheDuration} (the kubelet tries its other sources)`,
      );
    io.out(JSON.stringify(r.response));
    return EXIT.ok;
  }
  let text: string | undefined;
  try {
    text = await readFile(values.credentials, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    io.err(
      `pullkeeper-node credential-provider: ${values.credentials} does not exist; answering with no credentials (pullkeeper writes it on \`pullkeeper push\`; or pass --credentials FILE)`,
    );
  }
  const creds =
    text === undefined ? { config: { auths: {} }, expiry: new Map() } : parseProviderCredentials(text);
  io.out(JSON.stringify(answerProviderRequest(req, creds, Date.now())));
  return EXIT.ok;
};

class UsageError extends PullkeeperError {}

/** The command table. Add commands here; keep handlers small and in their own modules when they grow. */
/**
 * The image store the pod runner pulls through: the same store as `pull`, under
 * PULLKEEPER_NODE_STATE_DIR (default /var/lib/pullkeeper) with kubelet's root dir
 * PULLKEEPER_KUBELET_ROOT_DIR (default /var/lib/kubelet) for node credentials.
 */
const storeForRunner: ImageSource = {
  ensure: async (req) =>
    new (await loadStore()).ImageStore({
      stateDir: await nodeStateDir(undefined),
      nodeCredentials: { rootDir: kubeletRootDir(undefined) },
    }).ensure(req),
};

/** The image store's directory: the flag, else $PULLKEEPER_NODE_STATE_DIR, else the default (pull, images, gc and pods agree). */
async function nodeStateDir(flag: string | undefined): Promise<string> {
  return flag || process.env.PULLKEEPER_NODE_STATE_DIR || (await loadStore()).DEFAULT_STATE_DIR;
}

/** kubelet's root dir for node credentials: the flag, else $PULLKEEPER_KUBELET_ROOT_DIR, else /var/lib/kubelet. */
function kubeletRootDir(flag: string | undefined): string {
  return flag || process.env.PULLKEEPER_KUBELET_ROOT_DIR || DEFAULT_KUBELET_ROOT_DIR;
}

/** The pod runner's commands (pullkeeper-node-run.ts), loaded when one of them runs. */
const RUN_COMMANDS = ['run', 'stop', 'describe', 'ps', 'logs', 'daemon'] as const;
const runCommand =
  (name: (typeof RUN_COMMANDS)[number]): NodeCommand =>
  async (args, io) =>
    (await import('./pullkeeper-node-run.js')).makeRunCommands({ imageSource: storeForRunner })[name]!(
      args,
      io,
    );

export const commands: Record<string, NodeCommand> = {
  ...Object.fromEntries(RUN_COMMANDS.map((name) => [name, runCommand(name)])),
  pull,
  images,
  gc,
  'credential-provider': credentialProvider,
  version: async (args, io) => {
    const { values } = parseArgs({ args, options: PULLKEEPER_NODE.version.flags });
    io.out(values.json ? JSON.stringify({ version: VERSION }) : VERSION);
    return EXIT.ok;
  },
  help: async (args, io) => printHelp(PULLKEEPER_NODE_CLI, args, io),
  completion: async (args, io) => printCompletion(PULLKEEPER_NODE_CLI, args, io),
};

const isHelpFlag = (a: string) => a === '--help' || a === '-h';

export async function main(argv: string[], io: NodeCliIO = nodeProcessIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || isHelpFlag(name)) {
    io.out(renderOverview(PULLKEEPER_NODE_CLI));
    return EXIT.ok;
  }
  const key = name === '--version' ? 'version' : name;
  const command = Object.hasOwn(commands, key) ? commands[key] : undefined;
  if (!command) {
    io.err(unknownCommandMessage(PULLKEEPER_NODE_CLI, name));
    return EXIT.usage;
  }
  // `pullkeeper-node COMMAND --help`: that command's help.
  const beforeDashes = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (beforeDashes.some(isHelpFlag)) return printHelp(PULLKEEPER_NODE_CLI, [key], io);
  return withJsonErrors(argv, io, async (jio) => {
    try {
      // A private CA for the registries, as the operator CLI and the functions trust it.
      trustExtraCaCertificates();
    } catch (err) {
      if (!(err instanceof ExtraCaError)) throw err;
      jio.err(`pullkeeper-node ${key}: ${err.message}`);
      return EXIT.usage;
    }
    try {
      return await command(rest, jio);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code?.startsWith('ERR_PARSE_ARGS')) {
        jio.err(usageErrorMessage(PULLKEEPER_NODE_CLI, key, err as Error));
        return EXIT.usage;
      }
      if (err instanceof UsageError) {
        jio.err(
          `pullkeeper-node ${key}: ${err.message}\nRun \`pullkeeper-node help ${key}\` for its flags and examples.`,
        );
        return EXIT.usage;
      }
      if (err instanceof PullkeeperError) {
        jio.err(`pullkeeper-node ${key}: ${err.message}`);
        return EXIT.failed;
      }
      jio.err(`pullkeeper-node ${key}: ${unexpectedFailureMessage(err)}`);
      return EXIT.failed;
    }
  });
}
