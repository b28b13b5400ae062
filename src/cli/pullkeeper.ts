import { parseArgs } from 'node:util';
import { CAPABILITIES } from '../app/status.js';
import { PullkeeperError } from '../core/errors.js';
import {
  applyDefaultImageTag,
  buildKeyring,
  defaultPullPolicy,
  type Keyring,
  parseImageRef,
  unionKeyrings,
} from '../core/index.js';
import { VERSION } from '../version.js';
import { runDemo } from './demo.js';
import { doctorCommand } from './doctor-command.js';
import { type CliIO, processIO } from './io.js';
import { configCheckCommand, mintCommand } from './mint-command.js';
import { readCredentialFile } from './pull-secret-file.js';
import { PUSH_USAGE, pushCommand } from './push-command.js';
import { ensureCommand, refreshCommand } from './refresh-command.js';
import { serveCommand } from './serve-command.js';

const USAGE = `pullkeeper ${VERSION}: keeps private container images pullable

Usage:
  pullkeeper image REF                    how kubelet reads an image reference (name, tag, digest, pull policy)
  pullkeeper creds IMAGE [--secret FILE]... [--node-config FILE]
                                          which credentials kubelet would try for IMAGE, in order
                                          (FILE: a docker config.json, a .dockercfg, or a Secret manifest;
                                          passwords are never printed)
  pullkeeper mint --config FILE [--registry NAME]... [--json] [--force]
                                          mint and verify each registry's credential; one line per registry
                                          (exit 0 all good, 1 any failed, 2 bad config; secrets never printed)
  pullkeeper config check FILE [--json]   validate a pullkeeper.yaml; every problem names its path
  pullkeeper refresh --config FILE [--tenant NAME]... [--dry-run] [--json] [--force]
                                          mint what is due, write each tenant namespace's pull Secret and
                                          ServiceAccounts (only what changed); exit 1 if anything failed
  pullkeeper ensure NAMESPACE --config FILE [--json]
                                          make one namespace ready now (the CI pre-deploy call)
  pullkeeper doctor --config FILE [--json]
                                          check secrets, registries (mint + login), cluster RBAC per tenant
                                          namespace, node SSH and host keys; each problem with its fix (exit 1)
  pullkeeper serve --config FILE [--port 3700] [--host 127.0.0.1]
                                          the HTTP API locally, with Prometheus metrics at /metrics
${PUSH_USAGE}
  pullkeeper demo                         run the embedded local example
  pullkeeper status                       what this build can do
  pullkeeper version | help`;

/** The operator CLI. Returns the exit code; has no side effects on import. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [command, ...rest] = argv;
  // `pullkeeper COMMAND --help`: the usage, whatever the command.
  if (command && rest.some((a) => a === '--help' || a === '-h')) {
    io.out(USAGE);
    return 0;
  }
  try {
    switch (command) {
      case 'image':
        return imageCommand(rest, io);
      case 'creds':
        return await credsCommand(rest, io);
      case 'mint':
        return await mintCommand(rest, io);
      case 'config':
        if (rest[0] === 'check') return await configCheckCommand(rest.slice(1), io);
        io.err(
          'pullkeeper config: the subcommand is `check`, e.g. `pullkeeper config check pullkeeper.yaml`',
        );
        return 2;
      case 'refresh':
        return await refreshCommand(rest, io);
      case 'ensure':
        return await ensureCommand(rest, io);
      case 'doctor':
        return await doctorCommand(rest, io);
      case 'serve':
        return await serveCommand(rest, io);
      case 'push':
        return await pushCommand(rest, io);
      case 'demo':
        return runDemo(io);
      case 'status':
        io.out(JSON.stringify({ version: VERSION, capabilities: CAPABILITIES }, null, 2));
        return 0;
      case 'version':
      case '--version':
        io.out(VERSION);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return 0;
      default:
        io.err(`pullkeeper: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof PullkeeperError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`pullkeeper: ${(err as Error).message}`);
      return (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
    }
    throw err;
  }
}

function imageCommand(args: string[], io: CliIO): number {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length !== 1) {
    io.err('pullkeeper image: give exactly one image reference, e.g. `pullkeeper image nginx:1.25`');
    return 2;
  }
  const ref = positionals[0]!;
  const parsed = parseImageRef(ref);
  io.out(
    JSON.stringify(
      {
        name: parsed.name,
        domain: parsed.domain,
        path: parsed.path,
        tag: parsed.tag ?? null,
        digest: parsed.digest ?? null,
        criImage: applyDefaultImageTag(ref),
        defaultPullPolicy: defaultPullPolicy(ref),
      },
      null,
      2,
    ),
  );
  return 0;
}

async function credsCommand(args: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { secret: { type: 'string', multiple: true }, 'node-config': { type: 'string' } },
  });
  if (positionals.length !== 1) {
    io.err('pullkeeper creds: give exactly one image, e.g. `pullkeeper creds nginx --secret regcred.yaml`');
    return 2;
  }
  const image = positionals[0]!;
  const secretConfigs = await Promise.all((values.secret ?? []).map(readCredentialFile));
  const node = values['node-config'] ? [buildKeyring(await readCredentialFile(values['node-config']))] : [];
  // kubelet: ONE keyring for all pod secrets (in pod order, same keys kept side by side), then the node's files.
  const keyring: Keyring = unionKeyrings(buildKeyring(...secretConfigs), ...node);
  const found = keyring.lookup(image);
  if (found.length === 0) {
    io.out(`${parseImageRef(image).name}: no credentials match; kubelet pulls anonymously`);
    return 0;
  }
  io.out(`${parseImageRef(image).name}: kubelet tries ${found.length} credential(s) in this order:`);
  found.forEach((c, i) => {
    io.out(
      `  ${i + 1}. key ${c.key}  username ${c.username || '(empty)'}  password ${c.password ? '<redacted>' : '(empty)'}`,
    );
  });
  return 0;
}
