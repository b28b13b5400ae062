/**
 * docs/cli.md, rendered from the help table (help.ts). A unit test keeps the
 * file equal to this output; regenerate with `node --import tsx scripts/cli-docs.ts`.
 */
import { type CliHelp, EXIT_CODES, PULLKEEPER_CLI, PULLKEEPER_NODE_CLI, synopsis } from './help.js';

const cell = (s: string) => s.replace(/\|/g, '\\|');

function commandSection(cli: CliHelp, key: string): string[] {
  const c = cli.commands[key]!;
  const out = [`### \`${cli.name} ${key}\``, '', '```', synopsis(cli, key), '```', '', c.description, ''];
  const flags = Object.entries(c.flags);
  if (flags.length) {
    out.push('| Flag | Meaning |', '| --- | --- |');
    for (const [n, f] of flags) {
      const label = `${f.short ? `-${f.short}, ` : ''}--${n}${f.type === 'string' ? ` ${f.arg ?? 'VALUE'}` : ''}`;
      const notes = [
        f.multiple ? 'repeatable' : '',
        f.default !== undefined && f.type === 'string' ? `default \`${f.default}\`` : '',
      ]
        .filter(Boolean)
        .join('; ');
      out.push(
        `| \`${label}\` | ${cell(f.help)}${notes && !f.help.includes('default') ? ` (${notes})` : ''} |`,
      );
    }
    out.push('');
  }
  out.push('Examples:', '', '```sh', ...c.examples, '```', '');
  out.push('Exit codes:', '', ...Object.entries(c.exit).map(([code, why]) => `- \`${code}\` ${why}`), '');
  if (c.json) {
    out.push(
      `JSON (\`--json\`): \`${c.json.shape}\``,
      '',
      '```json',
      JSON.stringify(c.json.example, null, 2),
      '```',
      '',
    );
  }
  return out;
}

function cliSection(cli: CliHelp): string[] {
  const out = [
    `## \`${cli.name}\``,
    '',
    `${cli.name}: ${cli.tagline}.`,
    '',
    '| Command | What it does |',
    '| --- | --- |',
  ];
  for (const [key, c] of Object.entries(cli.commands))
    out.push(`| [\`${key}\`](#${`${cli.name}-${key}`.replace(/ /g, '-')}) | ${cell(c.summary)} |`);
  out.push('', ...(cli.footer ?? []), '');
  for (const key of Object.keys(cli.commands)) out.push(...commandSection(cli, key));
  return out;
}

export function cliMarkdown(): string {
  const lines = [
    '# Command line reference',
    '',
    '<!-- Generated from src/cli/help.ts by `node --import tsx scripts/cli-docs.ts`; a unit test',
    '     (src/cli/help.test.ts) fails when this file and the code differ. Edit help.ts, then regenerate. -->',
    '',
    'Two commands: `pullkeeper` (the operator side: mint credentials, write pull Secrets, push node',
    'config, check everything) and `pullkeeper-node` (the node side: pull images as kubelet would,',
    'run pods). Every command prints its own help with examples: `pullkeeper help COMMAND`,',
    '`pullkeeper COMMAND --help` or `-h` (the same for `pullkeeper-node`).',
    '',
    '## Exit codes',
    '',
    'The same table for both commands; each command below lists the codes it uses.',
    '',
    '| Code | Meaning |',
    '| --- | --- |',
    ...Object.entries(EXIT_CODES).map(([code, why]) => `| ${code} | ${cell(why)} |`),
    '',
    '## JSON output',
    '',
    'Every command that prints a result takes `--json` (for `image`, `status` and',
    '`credential-provider` the output is always JSON). With `--json`:',
    '',
    '- stdout holds exactly one JSON document, whatever the exit code; nothing else goes to stdout',
    '  (`serve --json` prints one line once listening);',
    '- a result that reports failures is still the result: `config check` prints',
    '  `{ "valid": false, "issues": [...] }`, `doctor` `{ "ok": false, ... }`, `pullkeeper-node pull`',
    '  `{ "image", "error": { "reason", "message" } }`, with exit code 1 (2, 3 or 4 where listed);',
    '- when a command fails before it has a result (a usage error, a missing or invalid config, an',
    '  unexpected failure), its message goes to stderr as without `--json`, and stdout gets',
    '  `{ "error": { "message": "...", "exitCode": 2 } }`;',
    '- progress lines and pull events are never printed with `--json`. Secrets are never printed.',
    '',
    "The shape of each command's result, with an example, is under the command below.",
    '',
    '## Progress',
    '',
    'On a terminal, the long commands (`refresh`, `push`, `mint`, `doctor`, `pullkeeper-node pull`)',
    'show one progress line on stderr (`[3/12] team-a: 2 namespace(s): secrets 1 created, 1 unchanged`),',
    'cleared before the result is printed. When stderr is not a terminal, or with `--json`, there is',
    'no progress output, so scripts see the same output as before.',
    '',
    '## Shell completion',
    '',
    '`pullkeeper completion bash|zsh|fish` (and `pullkeeper-node completion ...`) prints a completion',
    "script for the commands, subcommands (`config check`), each command's flags and the values some",
    'flags take (`--policy`, file names). Load it in the current shell, or install it:',
    '',
    '```sh',
    '# bash: now, or for every shell',
    'source <(pullkeeper completion bash)',
    'pullkeeper completion bash > ~/.local/share/bash-completion/completions/pullkeeper',
    '# zsh: now, or in a directory of $fpath (then restart zsh)',
    'source <(pullkeeper completion zsh)',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, not a template
    'pullkeeper completion zsh > "${fpath[1]}/_pullkeeper"',
    '# fish',
    'pullkeeper completion fish > ~/.config/fish/completions/pullkeeper.fish',
    '```',
    '',
    'Replace `pullkeeper` with `pullkeeper-node` for the node command.',
    '',
    ...cliSection(PULLKEEPER_CLI),
    ...cliSection(PULLKEEPER_NODE_CLI),
  ];
  return `${lines.join('\n').trimEnd()}\n`;
}
