import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { VERSION } from '../version.js';
import { PULLKEEPER_NODE } from './help.js';
import { bufferIO } from './io.js';
import { commands, EXIT, main, type NodeCliIO } from './pullkeeper-node.js';

async function run(args: string[], stdin?: string) {
  const io: NodeCliIO & { stdout: string[]; stderr: string[] } = bufferIO();
  if (stdin !== undefined) io.readStdin = async () => stdin;
  const code = await main(args, io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

describe('pullkeeper-node CLI (no registry needed)', () => {
  it('has a plain command table', () => {
    for (const name of ['pull', 'images', 'gc', 'credential-provider', 'help', 'version']) {
      assert.equal(typeof commands[name], 'function', name);
    }
  });
  it('help and unknown commands', async () => {
    assert.match((await run(['--help'])).out, /pullkeeper-node pull IMAGE/);
    const bad = await run(['frobnicate']);
    assert.equal(bad.code, EXIT.usage);
    assert.match(bad.err, /unknown command "frobnicate"/);
    assert.equal((await run(['toString'])).code, EXIT.usage, 'no prototype lookups');
  });
  it('usage errors exit 2', async () => {
    assert.equal((await run(['pull'])).code, EXIT.usage);
    assert.equal((await run(['pull', 'busybox', '--policy', 'Sometimes'])).code, EXIT.usage);
    assert.equal((await run(['pull', 'busybox', '--no-such-flag'])).code, EXIT.usage);
  });
  it('KEP-2535 flags: bad policy, the deprecated flag with the policy, an allowlist without its policy or with a bad entry', async () => {
    const policy = '--image-pull-credentials-verification-policy';
    const list = '--preloaded-images-verification-allowlist';
    const cases: Array<[string[], RegExp]> = [
      [[policy, 'Sometimes'], /must be one of NeverVerify, NeverVerifyPreloadedImages/],
      [[policy, 'AlwaysVerify', '--verify-cached-credentials'], /deprecated spelling/],
      [
        [list, 'reg.example/*'],
        /only used with --image-pull-credentials-verification-policy NeverVerifyAllowlistedImages/,
      ],
      [[policy, 'NeverVerifyAllowlistedImages', list, 'busybox'], /not fully qualified/],
      [[policy, 'NeverVerifyAllowlistedImages', list, 'reg.example/a*'], /only a trailing '\/\*'/],
    ];
    for (const [flags, re] of cases) {
      const r = await run(['pull', 'busybox:1.36', ...flags]);
      assert.equal(r.code, EXIT.usage, flags.join(' '));
      assert.match(r.err, re);
    }
  });
  it("an invalid image name exits 4 with kubelet's reason", async () => {
    const state = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    const r = await run(['pull', 'Busybox', '--state-dir', state, '--json']);
    assert.equal(r.code, EXIT.invalidImage);
    const j = JSON.parse(r.out);
    assert.equal(j.error.reason, 'InvalidImageName');
    assert.match(j.error.message, /must be lowercase/);
  });
  it('Never on an empty store exits 3 without touching the network', async () => {
    const state = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    const r = await run([
      'pull',
      'registry.invalid/app:v1',
      '--policy',
      'Never',
      '--state-dir',
      state,
      '--json',
    ]);
    assert.equal(r.code, EXIT.neverPull);
    assert.equal(
      JSON.parse(r.out).error.message,
      'Container image "registry.invalid/app:v1" is not present with pull policy of Never',
    );
  });
  it('credential-provider answers from the file named by --credentials', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    const missing = await run(
      ['credential-provider', '--credentials', join(dir, 'absent.json')],
      JSON.stringify({
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        kind: 'CredentialProviderRequest',
        image: 'quay.io/a/b',
      }),
    );
    assert.equal(missing.code, 0);
    assert.deepEqual(JSON.parse(missing.out).auth, {});
    assert.match(missing.err, /does not exist/);
  });
  it('images, gc, ps, version --json: parse, with the documented fields', async () => {
    const state = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    const images = await run(['images', '--state-dir', state, '--json']);
    assert.equal(images.code, 0, images.err);
    assert.deepEqual(JSON.parse(images.out), []);
    const gc = await run(['gc', '--state-dir', state, '--json']);
    assert.equal(gc.code, 0, gc.err);
    assert.deepEqual(
      Object.keys(JSON.parse(gc.out)).sort(),
      Object.keys(PULLKEEPER_NODE.gc.json.example).sort(),
    );
    const ps = await run(['ps', '--state-dir', state, '--json']);
    assert.equal(ps.code, 0, ps.err);
    assert.deepEqual(JSON.parse(ps.out), []);
    assert.deepEqual(JSON.parse((await run(['version', '--json'])).out), { version: VERSION });
  });
  it('describe, stop, logs --json on a missing pod: exit 1, the message on stderr and as { error }', async () => {
    const state = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    for (const c of ['describe', 'stop', 'logs']) {
      const r = await run([c, 'team-a/web', '--state-dir', state, '--json']);
      assert.equal(r.code, EXIT.failed, c);
      assert.match(r.err, /pod team-a\/web not found in .*; `pullkeeper-node ps` lists the pods/, c);
      const j = JSON.parse(r.out);
      assert.equal(j.error.exitCode, 1);
      assert.match(j.error.message, /not found/);
    }
  });
  it('pull --json failures keep their shape and also say it on stderr', async () => {
    const state = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    const r = await run(['pull', 'Busybox', '--state-dir', state, '--json']);
    assert.equal(r.code, EXIT.invalidImage);
    assert.deepEqual(Object.keys(JSON.parse(r.out)), ['image', 'error']);
    assert.match(r.err, /must be lowercase/);
  });
  it('a bad flag on a pod command is a usage error (2) that points at its help', async () => {
    const r = await run(['ps', '--bogus']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /pullkeeper-node ps: Unknown option '--bogus'/);
    assert.match(r.err, /pullkeeper-node help ps/);
  });
  it('pull progress goes to the terminal only', async () => {
    // Never on an empty store fails before any layer: the line is only cleared.
    const state = await mkdtemp(join(tmpdir(), 'pk-node-cli-'));
    const lines: string[] = [];
    const io = Object.assign(bufferIO(), { isTTY: true, progress: (l: string) => lines.push(l) });
    assert.equal(
      await main(['pull', 'registry.invalid/a:v1', '--policy', 'Never', '--state-dir', state], io),
      3,
    );
    assert.deepEqual(lines, ['']);
    lines.length = 0;
    await main(['pull', 'registry.invalid/a:v1', '--policy', 'Never', '--state-dir', state, '--json'], io);
    assert.deepEqual(lines, []);
  });
});
