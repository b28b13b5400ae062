import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_STATE_ROOT as POD_STATE_ROOT } from '../runner/pod-state.js';
import { DEFAULT_STATE_DIR as STORE_STATE_DIR } from '../runner/store/store.js';
import { bashScript, fishScript, zshScript } from './completion.js';
import { cliMarkdown } from './docs.js';
import {
  type CliHelp,
  DEFAULT_POD_STATE_ROOT,
  DEFAULT_STATE_DIR,
  EXIT_CODES,
  PULLKEEPER_CLI,
  PULLKEEPER_NODE_CLI,
  renderCommand,
  synopsis,
  topLevelWords,
} from './help.js';
import { bufferIO } from './io.js';
import { COMMANDS, main } from './pullkeeper.js';
import { commands as NODE_COMMANDS, main as nodeMain } from './pullkeeper-node.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLIS: Array<{ cli: CliHelp; dispatched: string[]; run: typeof main }> = [
  { cli: PULLKEEPER_CLI, dispatched: Object.keys(COMMANDS), run: main },
  { cli: PULLKEEPER_NODE_CLI, dispatched: Object.keys(NODE_COMMANDS), run: nodeMain },
];

async function call(run: typeof main, ...argv: string[]) {
  const io = bufferIO();
  const code = await run(argv, io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

for (const { cli, dispatched, run } of CLIS) {
  describe(`${cli.name} help table`, () => {
    it('every command main() dispatches has a help entry, and every entry is dispatched', () => {
      assert.deepEqual([...dispatched].sort(), [...topLevelWords(cli)].sort());
    });
    for (const [key, c] of Object.entries(cli.commands)) {
      it(`${key}: examples, exit codes, flags in its help and synopsis`, () => {
        assert.ok(c.examples.length >= 1, 'no example');
        for (const e of c.examples)
          assert.ok(e.includes(key === 'help' ? `${cli.name} ` : `${cli.name} ${key.split(' ')[0]}`), e);
        assert.ok(Object.hasOwn(c.exit, 0), 'exit 0 undocumented');
        for (const code of Object.keys(c.exit)) assert.ok(Object.hasOwn(EXIT_CODES, code), `exit ${code}`);
        const help = renderCommand(cli, key);
        const syn = synopsis(cli, key);
        for (const [flag, f] of Object.entries(c.flags)) {
          assert.match(help, new RegExp(`--${flag}\\b`), `--${flag} missing from help`);
          assert.ok(syn.includes(`--${flag}`), `--${flag} missing from the synopsis`);
          assert.ok(f.help.length > 5, `--${flag} has no meaning`);
        }
        if (c.json) {
          assert.ok('json' in c.flags || key === 'credential-provider', 'a JSON shape but no --json flag');
          assert.doesNotThrow(() => JSON.parse(JSON.stringify(c.json!.example)));
        }
      });
    }
    it('help COMMAND, COMMAND --help and COMMAND -h print that command, not the overview', async () => {
      for (const key of Object.keys(cli.commands)) {
        const words = key.split(' ');
        for (const argv of [
          ['help', ...words],
          [...words, '--help'],
          [...words, '-h'],
        ]) {
          const r = await call(run, ...argv);
          assert.equal(r.code, 0, argv.join(' '));
          assert.equal(r.out, renderCommand(cli, key), argv.join(' '));
        }
      }
    });
    it('help, --help and no arguments print the overview with every command and the pointer', async () => {
      for (const argv of [['help'], ['--help'], ['-h'], []]) {
        const r = await call(run, ...argv);
        assert.equal(r.code, 0);
        for (const key of Object.keys(cli.commands)) assert.ok(r.out.includes(`${cli.name} ${key}`), key);
        assert.ok(r.out.includes(`Run \`${cli.name} help COMMAND\``));
      }
    });
    it('an unknown command is exit 2 with a suggestion and the pointer to help', async () => {
      const r = await call(run, 'versoin');
      assert.equal(r.code, 2);
      assert.ok(r.err.includes(`${cli.name}: unknown command "versoin"; did you mean version?`), r.err);
      assert.ok(r.err.includes(`Run \`${cli.name} help\``));
      const far = await call(run, 'frobnicate');
      assert.equal(far.code, 2);
      assert.doesNotMatch(far.err, /did you mean/);
      const h = await call(run, 'help', 'frobnicate');
      assert.equal(h.code, 2);
    });
    it('an unknown flag is exit 2 with a suggestion from that command and its help', async () => {
      const [cmd, flag, typo] =
        cli === PULLKEEPER_CLI ? ['refresh', 'dry-run', '--dryrun'] : ['pull', 'policy', '--polcy'];
      const r = await call(run, cmd, typo);
      assert.equal(r.code, 2);
      assert.ok(r.err.includes(`did you mean --${flag}?`), r.err);
      assert.ok(r.err.includes(`${cli.name} help ${cmd}`), r.err);
    });
  });
}

describe('flags come from the help table', () => {
  it('every parseArgs call in src/cli takes its options from PULLKEEPER or PULLKEEPER_NODE', () => {
    const dir = join(ROOT, 'src', 'cli');
    let calls = 0;
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts') && !n.endsWith('.test.ts'))) {
      const text = readFileSync(join(dir, f), 'utf8');
      for (const m of text.matchAll(/parseArgs\(\{([^}]*)\}\)/g)) {
        calls++;
        assert.match(m[1]!, /options: PULLKEEPER(_NODE)?(\.[\w]+|\['[\w -]+'\])\.flags/, `${f}: ${m[0]}`);
      }
      // A parseArgs call this regex cannot see would escape the check.
      assert.equal(
        (text.match(/parseArgs\(/g) ?? []).length,
        [...text.matchAll(/parseArgs\(\{([^}]*)\}\)/g)].length,
        `${f}: a parseArgs call the check cannot read`,
      );
    }
    assert.ok(calls >= 20, `only ${calls} parseArgs calls found`);
  });
  it("the node store's default state dir is the store's", () => {
    assert.equal(DEFAULT_STATE_DIR, STORE_STATE_DIR);
  });
  it("the pod commands' default state dir is the pod runner's", () => {
    assert.equal(DEFAULT_POD_STATE_ROOT, POD_STATE_ROOT);
  });
});

describe('docs/cli.md', () => {
  it('is what the help table renders (regenerate: node --import tsx scripts/cli-docs.ts)', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'cli.md'), 'utf8');
    assert.equal(doc, cliMarkdown());
    for (const { cli } of CLIS)
      for (const key of Object.keys(cli.commands)) assert.ok(doc.includes(synopsis(cli, key)), key);
  });
});

/** Runs the generated bash script in a real bash and returns what it offers for `words`. */
function bashComplete(cli: CliHelp, words: string[]): string[] {
  const fn = `_${cli.name.replace(/-/g, '_')}`;
  const script = `${bashScript(cli)}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
${fn}
printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8', cwd: ROOT })
    .split('\n')
    .filter(Boolean);
}

describe('shell completion', () => {
  it('bash: commands, subcommands, flags and flag values, in a real bash', () => {
    assert.deepEqual(bashComplete(PULLKEEPER_CLI, ['pullkeeper', 're']), ['refresh']);
    assert.ok(bashComplete(PULLKEEPER_CLI, ['pullkeeper', '']).includes('config'));
    assert.deepEqual(bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'config', '']), ['check']);
    const refreshFlags = bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'refresh', '--']);
    for (const f of ['--config', '--tenant', '--dry-run', '--json', '--force', '--help'])
      assert.ok(refreshFlags.includes(f), `${f} not offered: ${refreshFlags}`);
    assert.ok(!refreshFlags.includes('--registry'), 'a flag of another command');
    assert.deepEqual(bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'refresh', '--d']), ['--dry-run']);
    assert.deepEqual(bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'config', 'check', '--j']), ['--json']);
    assert.deepEqual(bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'completion', 'z']), ['zsh']);
    assert.deepEqual(bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'help', 'doc']), ['doctor']);
    // --config takes a file: file names are offered.
    assert.ok(
      bashComplete(PULLKEEPER_CLI, ['pullkeeper', 'mint', '--config', 'package.j']).includes('package.json'),
    );
    assert.deepEqual(bashComplete(PULLKEEPER_NODE_CLI, ['pullkeeper-node', 'pull', 'x', '--policy', 'I']), [
      'IfNotPresent',
    ]);
    assert.deepEqual(bashComplete(PULLKEEPER_NODE_CLI, ['pullkeeper-node', 'cred']), ['credential-provider']);
    assert.ok(bashComplete(PULLKEEPER_NODE_CLI, ['pullkeeper-node', 'logs', 'web', '-']).includes('-c'));
  });
  it('bash: the script the bin prints is the one tested', () => {
    const out = execFileSync(process.execPath, [join(ROOT, 'bin', 'pullkeeper.js'), 'completion', 'bash'], {
      encoding: 'utf8',
    });
    assert.equal(out, bashScript(PULLKEEPER_CLI));
    const offered = execFileSync(
      'bash',
      [
        '--norc',
        '-c',
        `source <(node ${join(ROOT, 'bin', 'pullkeeper.js')} completion bash); COMP_WORDS=(pullkeeper refresh --); COMP_CWORD=2; _pullkeeper; echo "\${COMPREPLY[@]}"`,
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${process.execPath.replace(/\/node$/, '')}:${process.env.PATH}` },
      },
    );
    assert.match(offered, /--dry-run/);
  });
  it('an unknown shell is exit 2 and names the shells', async () => {
    const r = await call(main, 'completion', 'tcsh');
    assert.equal(r.code, 2);
    assert.match(r.err, /bash, zsh, fish/);
  });
  for (const [shell, render, check] of [
    ['zsh', zshScript, ['-n']],
    ['fish', fishScript, ['--no-execute']],
  ] as const) {
    const installed = (() => {
      try {
        execFileSync('sh', ['-c', `command -v ${shell}`]);
        return true;
      } catch {
        return false;
      }
    })();
    it(`${shell}: every command and flag is in the script, and it parses`, () => {
      assert.ok(
        installed,
        `${shell} is not installed; run \`bash scripts/setup.sh test\` (it installs ${shell})`,
      );
      for (const cli of [PULLKEEPER_CLI, PULLKEEPER_NODE_CLI]) {
        const script = render(cli);
        for (const [key, c] of Object.entries(cli.commands)) {
          for (const w of key.split(' ')) assert.ok(script.includes(w), `${key} missing`);
          for (const f of Object.keys(c.flags)) assert.ok(script.includes(f), `${key} --${f} missing`);
        }
        execFileSync(shell, [...check, '-c', script]);
      }
    });
  }
  it('fish: what `complete -C` offers', () => {
    const offer = (cli: CliHelp, line: string) =>
      execFileSync('fish', ['--no-config', '-c', `${fishScript(cli)}\ncomplete -C"${line}"`], {
        encoding: 'utf8',
      })
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0]);
    assert.deepEqual(offer(PULLKEEPER_CLI, 'pullkeeper ref'), ['refresh']);
    assert.deepEqual(offer(PULLKEEPER_CLI, 'pullkeeper config '), ['check']);
    assert.ok(offer(PULLKEEPER_CLI, 'pullkeeper refresh --').includes('--dry-run'));
    assert.deepEqual(offer(PULLKEEPER_NODE_CLI, 'pullkeeper-node pull x --policy I'), ['IfNotPresent']);
  });
});
