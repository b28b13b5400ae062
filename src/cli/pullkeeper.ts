import { parseArgs } from 'node:util';
import { ExtraCaError, trustExtraCaCertificates } from '../app/extra-ca.js';
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
import { suggest } from '../core/suggest.js';
import { VERSION } from '../version.js';
import { printCompletion } from './completion.js';
import { EXIT } from './exit.js';
import {
  PULLKEEPER,
  PULLKEEPER_CLI,
  printHelp,
  renderOverview,
  resolveCommand,
  unknownCommandMessage,
  usageErrorMessage,
} from './help.js';
import { type CliIO, processIO, unexpectedFailureMessage, withJsonErrors } from './io.js';

type Handler = (args: string[], io: CliIO) => Promise<number> | number;

// Each command's module is imported when that command runs: `--version`, `--help` and
// `image` do not load zod, yaml, ssh2 or hono (start-up time; `npm run bench -- startup`).
/** What `pullkeeper COMMAND` runs; every key has an entry in the help table (help.ts). */
export const COMMANDS: Readonly<Record<string, Handler>> = {
  image: imageCommand,
  creds: credsCommand,
  mint: async (args, io) => (await import('./mint-command.js')).mintCommand(args, io),
  config: configCommand,
  refresh: async (args, io) => (await import('./refresh-command.js')).refreshCommand(args, io),
  ensure: async (args, io) => (await import('./refresh-command.js')).ensureCommand(args, io),
  doctor: async (args, io) => (await import('./doctor-command.js')).doctorCommand(args, io),
  rbac: async (args, io) => (await import('./rbac-command.js')).rbacCommand(args, io),
  serve: async (args, io) => (await import('./serve-command.js')).serveCommand(args, io),
  push: async (args, io) => (await import('./push-command.js')).pushCommand(args, io),
  demo: async (args, io) => {
    // No flags: an unknown one (--json included) is a usage error, not ignored.
    parseArgs({ args, options: PULLKEEPER.demo.flags });
    return (await import('./demo.js')).runDemo(io);
  },
  status: statusCommand,
  version: versionCommand,
  help: helpCommand,
  completion: completionCommand,
};

const isHelpFlag = (a: string) => a === '--help' || a === '-h';

/** The operator CLI. Returns the exit code; has no side effects on import. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || isHelpFlag(command)) {
    io.out(renderOverview(PULLKEEPER_CLI));
    return EXIT.ok;
  }
  if (command === '--version') return versionCommand(rest, io);
  if (!Object.hasOwn(COMMANDS, command)) {
    io.err(unknownCommandMessage(PULLKEEPER_CLI, command));
    return EXIT.usage;
  }
  // `pullkeeper COMMAND --help`: that command's help (`config --help` is `config check`'s).
  const beforeDashes = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (beforeDashes.some(isHelpFlag))
    return helpCommand([command, ...beforeDashes.filter((a) => !a.startsWith('-'))], io);
  const helpKey = resolveCommand(PULLKEEPER_CLI, [command, ...rest]) ?? command;
  return withJsonErrors(argv, io, async (io) => {
    try {
      // A private CA for outgoing TLS, as the functions and `serve` trust it (docs/deploy.md).
      trustExtraCaCertificates();
    } catch (err) {
      if (!(err instanceof ExtraCaError)) throw err;
      io.err(`pullkeeper ${command}: ${err.message}`);
      return EXIT.usage;
    }
    try {
      return await COMMANDS[command]!(rest, io);
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        io.err(usageErrorMessage(PULLKEEPER_CLI, helpKey, err as Error));
        return EXIT.usage;
      }
      if (err instanceof PullkeeperError) {
        io.err(`pullkeeper: ${err.message}`);
        return EXIT.failed;
      }
      io.err(`pullkeeper ${command}: ${unexpectedFailureMessage(err)}`);
      return EXIT.failed;
    }
  });
}

async function configCommand(args: string[], io: CliIO): Promise<number> {
  if (args[0] === 'check') return (await import('./mint-command.js')).configCheckCommand(args.slice(1), io);
  const near = args[0] && !args[0].startsWith('-') ? suggest(args[0], ['check']) : undefined;
  io.err(
    `pullkeeper config: ${args[0] ? `unknown subcommand "${args[0]}"${near ? '; did you mean check?' : ''}; ` : ''}the subcommand is \`check\`, e.g. \`pullkeeper config check pullkeeper.yaml\``,
  );
  return EXIT.usage;
}

function statusCommand(args: string[], io: CliIO): number {
  parseArgs({ args, options: PULLKEEPER.status.flags });
  io.out(JSON.stringify({ version: VERSION, capabilities: CAPABILITIES }, null, 2));
  return EXIT.ok;
}

function versionCommand(args: string[], io: CliIO): number {
  const { values } = parseArgs({ args, options: PULLKEEPER.version.flags });
  io.out(values.json ? JSON.stringify({ version: VERSION }) : VERSION);
  return EXIT.ok;
}

/** `pullkeeper help [COMMAND]`. */
export function helpCommand(args: string[], io: CliIO): number {
  return printHelp(PULLKEEPER_CLI, args, io);
}

/** `pullkeeper completion bash|zsh|fish`. */
function completionCommand(args: string[], io: CliIO): number {
  return printCompletion(PULLKEEPER_CLI, args, io);
}

function imageCommand(args: string[], io: CliIO): number {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: PULLKEEPER.image.flags });
  if (positionals.length !== 1) {
    io.err(
      'pullkeeper image: give exactly one image reference, e.g. `pullkeeper image nginx:1.25` (`pullkeeper help image`)',
    );
    return EXIT.usage;
  }
  const ref = positionals[0]!;
  const parsed = parseImageRef(ref);
  // Always JSON (--json is accepted for symmetry with the other commands).
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
  return EXIT.ok;
}

async function credsCommand(args: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: PULLKEEPER.creds.flags,
  });
  if (positionals.length !== 1) {
    io.err(
      'pullkeeper creds: give exactly one image, e.g. `pullkeeper creds nginx --secret regcred.yaml` (`pullkeeper help creds`)',
    );
    return EXIT.usage;
  }
  const image = positionals[0]!;
  const { readCredentialFile } = await import('./pull-secret-file.js');
  const secretConfigs = await Promise.all((values.secret ?? []).map(readCredentialFile));
  const node = values['node-config'] ? [buildKeyring(await readCredentialFile(values['node-config']))] : [];
  // kubelet: ONE keyring for all pod secrets (in pod order, same keys kept side by side), then the node's files.
  const keyring: Keyring = unionKeyrings(buildKeyring(...secretConfigs), ...node);
  const found = keyring.lookup(image);
  const name = parseImageRef(image).name;
  if (values.json) {
    io.out(
      JSON.stringify(
        {
          image,
          name,
          anonymous: found.length === 0,
          credentials: found.map((c) => ({
            key: c.key,
            username: c.username,
            password: c.password ? '<redacted>' : '',
          })),
        },
        null,
        2,
      ),
    );
    return EXIT.ok;
  }
  if (found.length === 0) {
    io.out(`${name}: no credentials match; kubelet pulls anonymously`);
    return EXIT.ok;
  }
  io.out(`${name}: kubelet tries ${found.length} credential(s) in this order:`);
  found.forEach((c, i) => {
    io.out(
      `  ${i + 1}. key ${c.key}  username ${c.username || '(empty)'}  password ${c.password ? '<redacted>' : '(empty)'}`,
    );
  });
  return EXIT.ok;
}
