/**
 * Node push against harness nodes (netns + real sshd): merge, atomic write,
 * read-back, sidecar ownership, rerun writes nothing, faults in one run
 * (sshd stopped, disk full, host key changed), malformed files, drift check,
 * canary halt, after-write command, TOFU, the CLI.
 *
 * No credential value is printed: assertions compare hashes and booleans,
 * and every report is checked for the passwords before anything else.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type PushResult, pushNode, pushNodes } from '../../src/app/push.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfig, PullkeeperConfigInput } from '../../src/config/schema.js';
import { parseDockerConfig } from '../../src/core/docker-config.js';
import { type Harness, startHarness } from '../harness/index.js';

const CONFIG = '/var/lib/kubelet/config.json';
const SIDECAR = '/var/lib/kubelet/.pullkeeper-managed.json';
const secrets: string[] = [];
const secret = () => {
  const s = randomBytes(12).toString('hex');
  secrets.push(s);
  return s;
};
const noSecrets = (text: string) => {
  for (const s of secrets) assert.ok(!text.includes(s), 'a password reached the output');
};
const sha = (b: Buffer | undefined) => (b ? createHash('sha256').update(b).digest('hex') : 'absent');
const b64 = (s: string) => Buffer.from(s).toString('base64');

let h: Harness;
let knownHostsPath = '';
const PASS_A = secret();
const PASS_B = secret();
const FOREIGN_PASS = secret();

function makeConfig(over: {
  registries?: string[];
  passA?: string;
  nodes?: Record<string, unknown>;
  knownHosts?: string | null;
}): PullkeeperConfig {
  const info = h.nodes!.info;
  const input: PullkeeperConfigInput = {
    registries: [
      {
        name: 'reg-a',
        kind: 'static',
        server: 'reg-a.example',
        aliases: ['https://reg-a.example/v1/'],
        username: { value: 'user-a' },
        password: { value: over.passA ?? PASS_A },
        verify: false,
      },
      {
        name: 'reg-b',
        kind: 'static',
        server: 'reg-b.example:5000',
        username: { value: 'user-b' },
        password: { value: PASS_B },
        verify: false,
      },
      {
        name: 'reg-broken',
        kind: 'static',
        server: 'broken.example',
        username: { value: 'u' },
        password: { fromEnv: 'PULLKEEPER_TEST_UNSET_VARIABLE' },
        verify: false,
      },
    ],
    nodes: {
      inventory: info.nodes.map((n) => ({ name: n.name, address: n.address })),
      registries: over.registries ?? ['reg-a'],
      ssh: {
        privateKey: { fromFile: info.clientKey.privateKeyPath },
        ...(over.knownHosts === null ? {} : { knownHosts: { fromFile: over.knownHosts ?? knownHostsPath } }),
        concurrency: 10,
        timeoutMs: 15_000,
      },
      ...over.nodes,
    },
  };
  return parseConfig(input);
}

async function push(
  config: PullkeeperConfig,
  opts: Parameters<typeof pushNodes>[1] = {},
): Promise<PushResult> {
  const r = await pushNodes(config, opts);
  noSecrets(JSON.stringify(r));
  return r;
}
const byName = (r: PushResult) => new Map(r.nodes.map((n) => [n.name, n]));
const statusOf = (r: PushResult) => Object.fromEntries(r.nodes.map((n) => [n.name, n.status]));
const names = () => h.nodes!.info.nodes.map((n) => n.name);
const read = (node: string, path = CONFIG) => h.nodes!.readFile(node, path);
const inode = async (node: string) => (await h.nodes!.exec(node, `stat -c %i ${CONFIG}`)).stdout.trim();
const listing = async (node: string) =>
  (await h.nodes!.exec(node, 'ls -A /var/lib/kubelet')).stdout.trim().split('\n');
/** Entries (username and whether the password is the expected one), never the values. */
async function entries(node: string): Promise<Record<string, string>> {
  const text = (await read(node))?.toString() ?? '';
  const cfg = parseDockerConfig(text, 'config.json');
  const out: Record<string, string> = {};
  const known = new Map([
    [PASS_A, 'A'],
    [PASS_B, 'B'],
    [FOREIGN_PASS, 'F'],
  ]);
  for (const [k, e] of Object.entries(cfg.auths))
    out[k] = `${e.username}/${known.get(e.password) ?? 'other'}`;
  return out;
}
async function resetNodes() {
  for (const n of names()) await h.nodes!.exec(n, 'rm -rf /var/lib/kubelet/* /var/lib/kubelet/.[!.]*');
}

before(async () => {
  h = await startHarness({ nodes: { count: 5, tmpfsSize: '2m' } });
  knownHostsPath = join(h.dir, 'known_hosts');
  await writeFile(knownHostsPath, `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
});
after(() => h?.stop());

describe('node push, 5 harness nodes', { timeout: 180_000 }, () => {
  beforeEach(resetNodes);

  test('every node ends with the same merged content; a foreign entry survives; a rerun writes nothing', async () => {
    const foreign = {
      auths: { 'foreign.example': { auth: b64(`someone:${FOREIGN_PASS}`) } },
      credsStore: 'desktop',
    };
    await h.nodes!.writeFile('node-2', CONFIG, JSON.stringify(foreign), 0o644);
    const r1 = await push(makeConfig({}));
    assert.deepEqual(statusOf(r1), Object.fromEntries(names().map((n) => [n, 'written'])));
    const ours = { 'reg-a.example': 'user-a/A', 'https://reg-a.example/v1/': 'user-a/A' };
    const files = new Map<string, Buffer>();
    for (const n of names()) {
      files.set(n, (await read(n))!);
      assert.deepEqual(
        await entries(n),
        n === 'node-2' ? { 'foreign.example': 'someone/F', ...ours } : ours,
        n,
      );
      assert.equal((await h.nodes!.exec(n, `stat -c %a ${CONFIG}`)).stdout.trim(), '600', `${n} mode`);
      const side = JSON.parse(String(await read(n, SIDECAR)));
      assert.deepEqual(side.managedKeys, ['https://reg-a.example/v1/', 'reg-a.example']);
      assert.equal(side.sha256, sha(files.get(n)));
      assert.ok(!(await listing(n)).some((f) => f.includes('tmp')), `${n}: temp file left`);
    }
    // The nodes without a file before all hold the same bytes; node-2 kept its other top-level field.
    const others = names().filter((n) => n !== 'node-2');
    assert.equal(new Set(others.map((n) => sha(files.get(n)))).size, 1);
    assert.equal(JSON.parse(String(files.get('node-2'))).credsStore, 'desktop');

    const inodes = await Promise.all(names().map(inode));
    const r2 = await push(makeConfig({}));
    assert.deepEqual(statusOf(r2), Object.fromEntries(names().map((n) => [n, 'unchanged'])));
    assert.deepEqual(await Promise.all(names().map(inode)), inodes, 'a rerun replaced a file');
    for (const n of names()) assert.equal(sha(await read(n)), sha(files.get(n)));

    // Registries change: reg-a is no longer configured, reg-b is. reg-a's keys go, the foreign entry stays.
    const r3 = await push(makeConfig({ registries: ['reg-b'] }));
    assert.ok(r3.nodes.every((n) => n.status === 'written'));
    assert.deepEqual(await entries('node-2'), {
      'foreign.example': 'someone/F',
      'reg-b.example:5000': 'user-b/B',
    });
    assert.deepEqual(await entries('node-1'), { 'reg-b.example:5000': 'user-b/B' });
  });

  test('drift check: reports which nodes differ and writes nothing', async () => {
    await push(makeConfig({}));
    await h.nodes!.exec('node-4', `rm ${CONFIG}`);
    const before = await Promise.all(names().map(async (n) => sha(await read(n))));
    const rotated = secret();
    const r = await push(makeConfig({ passA: rotated }), { check: true });
    const m = byName(r);
    for (const n of ['node-1', 'node-2', 'node-3', 'node-5']) {
      assert.equal(m.get(n)!.status, 'drift', n);
      assert.match(m.get(n)!.reason!, /outdated .*reg-a\.example/);
    }
    assert.equal(m.get('node-4')!.status, 'drift');
    assert.equal(m.get('node-4')!.reason, 'file missing');
    assert.deepEqual(await Promise.all(names().map(async (n) => sha(await read(n)))), before);
    const same = await push(makeConfig({}), { check: true, nodes: ['node-1', 'node-2'] });
    assert.deepEqual(statusOf(same), { 'node-1': 'unchanged', 'node-2': 'unchanged' });
  });

  test('faults in one run: sshd stopped, disk full, host key changed; each reported, old files intact, others written', async () => {
    await push(makeConfig({}));
    const before = new Map(await Promise.all(names().map(async (n) => [n, sha(await read(n))] as const)));
    await h.nodes!.stopSshd('node-3');
    const fill = await h.nodes!.fillDisk('node-4');
    await h.nodes!.rotateHostKey('node-5');
    try {
      const rotated = secret();
      const r = await push(makeConfig({ passA: rotated }));
      const m = byName(r);
      assert.equal(m.get('node-1')!.status, 'written');
      assert.equal(m.get('node-2')!.status, 'written');
      assert.equal(m.get('node-3')!.status, 'failed');
      assert.match(m.get('node-3')!.reason!, /connection refused .*is sshd running/);
      assert.equal(m.get('node-4')!.status, 'failed');
      assert.match(m.get('node-4')!.reason!, /^disk full: \/var\/lib\/kubelet .*bytes free/);
      assert.equal(m.get('node-5')!.status, 'failed');
      assert.match(m.get('node-5')!.reason!, /host key mismatch .*SHA256:.*update the pin: ssh-keygen -R/);
      for (const n of ['node-3', 'node-4', 'node-5'])
        assert.equal(sha(await read(n)), before.get(n), `${n} changed`);
      for (const n of ['node-1', 'node-2']) assert.notEqual(sha(await read(n)), before.get(n));
      assert.ok(!(await listing('node-4')).some((f) => f.includes('tmp')), 'temp file left on the full disk');
      const exit = await main(
        ['push', '--config', await configFile(makeConfigInputFor({ passA: rotated }))],
        bufferIO(),
      );
      assert.equal(exit, 1, 'the CLI exits 1 when a node failed');
    } finally {
      await h.nodes!.startSshd('node-3');
      await h.nodes!.exec('node-4', `rm -f ${fill}`);
    }
    // Fixed: the freed disk and restarted sshd are written; node-5 still needs its pin updated.
    const again = await push(makeConfig({ passA: PASS_A }), { nodes: ['node-3', 'node-4'] });
    assert.deepEqual(statusOf(again), { 'node-3': 'unchanged', 'node-4': 'unchanged' });
    await writeFile(knownHostsPath, `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
    const fixed = await push(makeConfig({ passA: secret() }), { nodes: ['node-5'] });
    assert.equal(fixed.nodes[0]!.status, 'written');
  });

  test('per-host timeout: a node whose sshd hangs is reported after nodes.ssh.timeoutMs; the others are written', async () => {
    const pid = h.nodes!.pids('node-2').sshd!;
    process.kill(pid, 'SIGSTOP');
    try {
      const r = await push(timeoutConfig(1500));
      const e = byName(r).get('node-2')!;
      assert.equal(e.status, 'failed');
      assert.match(e.reason!, /timed out after 1500 ms \(nodes.ssh.timeoutMs\)/);
      for (const n of ['node-1', 'node-3', 'node-4', 'node-5'])
        assert.equal(byName(r).get(n)!.status, 'written');
      assert.equal(await read('node-2'), undefined);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  test('a malformed file is backed up and reported, never replaced unless configured; the drift check writes nothing', async () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"auths":{}}')]);
    const badAuth = Buffer.from(JSON.stringify({ auths: { 'x.example': { auth: b64('nocolon') } } }));
    await h.nodes!.writeFile('node-1', CONFIG, bom, 0o600);
    await h.nodes!.writeFile('node-2', CONFIG, badAuth, 0o600);

    const check = await push(makeConfig({}), { check: true, nodes: ['node-1', 'node-2'] });
    assert.deepEqual(statusOf(check), { 'node-1': 'drift', 'node-2': 'drift' });
    assert.match(byName(check).get('node-1')!.reason!, /byte order mark/);
    assert.deepEqual(await listing('node-1'), ['config.json'], 'the drift check wrote something');

    const r = await push(makeConfig({}), { nodes: ['node-1', 'node-2'] });
    for (const [n, bytes] of [
      ['node-1', bom],
      ['node-2', badAuth],
    ] as const) {
      const e = byName(r).get(n)!;
      assert.equal(e.status, 'failed');
      assert.match(
        e.reason!,
        /malformed .*backed up to \/var\/lib\/kubelet\/config\.json\.pullkeeper-malformed-[0-9a-f]{12}; not replaced/,
      );
      const bak = /backed up to (\S+);/.exec(e.reason!)![1]!;
      assert.equal(sha(await read(n, bak)), sha(bytes), 'backup differs');
      assert.equal(sha(await read(n)), sha(bytes), 'the malformed file was changed');
    }
    assert.match(byName(r).get('node-2')!.reason!, /unable to parse auth field/);

    const replaced = await push(makeConfig({ nodes: { replaceMalformed: true } }), { nodes: ['node-1'] });
    assert.equal(replaced.nodes[0]!.status, 'written');
    assert.match(replaced.nodes[0]!.notes!.join(' '), /malformed .*backed up to .* and replaced/);
    assert.deepEqual(Object.keys(await entries('node-1')).sort(), [
      'https://reg-a.example/v1/',
      'reg-a.example',
    ]);
  });

  test('canary: the first K go first and the run halts when more than the fraction fail', async () => {
    await h.nodes!.stopSshd('node-1');
    await h.nodes!.stopSshd('node-2');
    try {
      const r = await push(makeConfig({ nodes: { canary: { count: 2, maxFailureFraction: 0.5 } } }));
      assert.match(r.halted!, /2 of the first 2 nodes failed/);
      for (const n of ['node-3', 'node-4', 'node-5']) {
        const e = byName(r).get(n)!;
        assert.equal(e.status, 'failed');
        assert.match(e.reason!, /^not attempted: halted/);
        assert.equal(await read(n), undefined, `${n} was written after the halt`);
      }
    } finally {
      await h.nodes!.startSshd('node-1');
      await h.nodes!.startSshd('node-2');
    }
    // One canary failure out of two is not more than half: the run goes on.
    await h.nodes!.stopSshd('node-1');
    try {
      const r = await push(makeConfig({ nodes: { canary: { count: 2, maxFailureFraction: 0.5 } } }));
      assert.equal(r.halted, undefined);
      assert.deepEqual(
        r.nodes.map((n) => n.status),
        ['failed', 'written', 'written', 'written', 'written'],
      );
    } finally {
      await h.nodes!.startSshd('node-1');
    }
  });

  test('a registry that fails to mint: nothing is pushed, every node reported with the reason', async () => {
    await push(makeConfig({}));
    const before = await Promise.all(names().map(async (n) => sha(await read(n))));
    const r = await push(makeConfig({ registries: ['reg-a', 'reg-broken'] }));
    for (const e of r.nodes) {
      assert.equal(e.status, 'failed');
      assert.match(
        e.reason!,
        /not pushed: no good credential for reg-broken .*PULLKEEPER_TEST_UNSET_VARIABLE/,
      );
    }
    assert.deepEqual(await Promise.all(names().map(async (n) => sha(await read(n)))), before);
  });

  test('an expiring credential minted anew (a cold start) leaves the nodes alone until the one on them is due', async () => {
    const T = Date.parse('2026-11-29T00:00:00.000Z');
    const [TOKEN1, TOKEN2] = [secret(), secret()];
    const at = (h: number) => new Date(T + h * 3600_000);
    /** What an ECR mint returns: AWS, a token, a 12 h lifetime. */
    const ecr = (password: string, issuedH: number) =>
      new Map([
        [
          'reg-a',
          {
            registry: 'reg-a',
            kind: 'ecr' as const,
            hosts: ['reg-a.example'],
            username: 'AWS',
            password,
            issuedAt: at(issuedH),
            expiresAt: at(issuedH + 12),
            source: 'ecr GetAuthorizationToken',
            notes: [],
          },
        ],
      ]);
    const tokenOn = async (n: string) => {
      const p = parseDockerConfig(String(await read(n)), 'config.json').auths['reg-a.example']?.password;
      return p === TOKEN1 ? 'token 1' : p === TOKEN2 ? 'token 2' : 'other';
    };
    const all = (v: string) => Object.fromEntries(names().map((n) => [n, v]));

    const r1 = await push(makeConfig({}), { credentials: ecr(TOKEN1, 0), now: at(0) });
    assert.deepEqual(statusOf(r1), all('written'));
    const side = JSON.parse(String(await read('node-1', SIDECAR)));
    assert.equal(side.expiring['reg-a.example'].refreshAt, at(6).toISOString(), 'due at half the lifetime');
    const inodes = await Promise.all(names().map(inode));

    // A cold start an hour later mints token 2: the nodes keep token 1, which is good for 5 more hours.
    const r2 = await push(makeConfig({}), { credentials: ecr(TOKEN2, 1), now: at(1) });
    assert.deepEqual(statusOf(r2), all('unchanged'));
    assert.deepEqual(await Promise.all(names().map(inode)), inodes, 'no file was rewritten');
    assert.deepEqual(
      Object.fromEntries(await Promise.all(names().map(async (n) => [n, await tokenOn(n)]))),
      all('token 1'),
    );
    // The drift check agrees.
    assert.deepEqual(
      statusOf(await push(makeConfig({}), { credentials: ecr(TOKEN2, 1), now: at(1), check: true })),
      all('unchanged'),
    );

    // Once token 1 is due, token 2 goes out.
    const r3 = await push(makeConfig({}), { credentials: ecr(TOKEN2, 1), now: at(6) });
    assert.deepEqual(statusOf(r3), all('written'));
    assert.equal(await tokenOn('node-3'), 'token 2');
    assert.equal(
      JSON.parse(String(await read('node-3', SIDECAR))).expiring['reg-a.example'].refreshAt,
      at(7).toISOString(),
    );

    // A changed registry config replaces the entry at once, fresh or not.
    const r4 = await push(makeConfig({ passA: secret() }), { credentials: ecr(TOKEN1, 2), now: at(2) });
    assert.deepEqual(statusOf(r4), all('written'));
    assert.equal(await tokenOn('node-1'), 'token 1');
  });

  test('afterWrite runs after a write only, output captured and size-limited', async () => {
    const cfg = makeConfig({
      nodes: {
        afterWrite: 'touch /var/lib/kubelet/reloaded; echo reloaded; head -c 20000 /dev/zero | tr "\\0" x',
      },
    });
    const r = await push(cfg, { nodes: ['node-1'] });
    const e = r.nodes[0]!;
    assert.equal(e.status, 'written');
    assert.equal(e.afterWrite!.code, 0);
    assert.ok(e.afterWrite!.output.startsWith('reloaded\nxxx'));
    assert.equal(e.afterWrite!.truncated, true);
    assert.equal(e.afterWrite!.output.length, 4096);
    assert.ok(await read('node-1', '/var/lib/kubelet/reloaded'));
    await h.nodes!.exec('node-1', 'rm /var/lib/kubelet/reloaded');
    const r2 = await push(cfg, { nodes: ['node-1'] });
    assert.equal(r2.nodes[0]!.status, 'unchanged');
    assert.equal(r2.nodes[0]!.afterWrite, undefined);
    assert.equal(
      await read('node-1', '/var/lib/kubelet/reloaded'),
      undefined,
      'afterWrite ran without a write',
    );
    const failing = await push(
      makeConfig({ passA: secret(), nodes: { afterWrite: 'echo nope >&2; exit 3' } }),
      {
        nodes: ['node-1'],
      },
    );
    assert.equal(failing.nodes[0]!.status, 'written');
    assert.match(failing.nodes[0]!.reason!, /afterWrite exited 3/);
    assert.equal(failing.nodes[0]!.afterWrite!.output, 'nope\n');
  });

  test('no pin: refused; trustOnFirstUse needs a status store to record keys in (node-push-tofu.test.ts)', async () => {
    const refused = await push(makeConfig({ knownHosts: null }), { nodes: ['node-1'] });
    assert.equal(refused.nodes[0]!.status, 'failed');
    assert.match(refused.nodes[0]!.reason!, /no pinned host key .*ssh-keyscan.*trustOnFirstUse/);
    assert.equal(await read('node-1'), undefined);
    // This config has no cluster: nowhere to record the key, so nothing is trusted on first use.
    assert.throws(
      () => parseConfig({ ...makeConfig({ knownHosts: null }), nodes: { ...tofuConfig().nodes } }),
      /nodes\.ssh\.trustOnFirstUse.*recorded in the status ConfigMap/s,
    );
    const tofu = await push(tofuConfig(), { nodes: ['node-1'] });
    assert.equal(tofu.nodes[0]!.status, 'failed');
    assert.match(
      tofu.nodes[0]!.reason!,
      /no pinned host key .*nowhere to record host keys trusted on first use/,
    );
    assert.match(tofu.hostKeyRecordError!, /nowhere to record/);
    assert.equal(await read('node-1'), undefined);
  });

  test('pushNode makes one node ready; unknown node names are refused', async () => {
    const e = await pushNode(makeConfig({}), 'node-3');
    assert.equal(e.status, 'written');
    assert.equal(await read('node-2'), undefined);
    await assert.rejects(
      pushNodes(makeConfig({}), { nodes: ['node-9'] }),
      /unknown node "node-9"; the inventory has node-1/,
    );
  });

  test('CLI: push --json, --check, --node; exit codes', async () => {
    const file = await configFile(makeConfigInputFor({}));
    let io = bufferIO();
    assert.equal(
      await main(['push', '--config', file, '--node', 'node-1', '--node', 'node-2', '--json'], io),
      0,
    );
    noSecrets(io.stdout.join('\n') + io.stderr.join('\n'));
    const out = JSON.parse(io.stdout.join('\n')) as PushResult;
    assert.deepEqual(
      out.nodes.map((n) => [n.name, n.status]),
      [
        ['node-1', 'written'],
        ['node-2', 'written'],
      ],
    );
    for (const n of out.nodes) assert.ok(typeof n.ms === 'number' && n.address.length > 0);
    assert.equal(out.registries[0]!.name, 'reg-a');
    io = bufferIO();
    assert.equal(await main(['push', '--config', file, '--check'], io), 0);
    assert.match(io.stdout.join('\n'), /5 nodes: 0 written, 2 unchanged, 3 drift, 0 failed/);
    io = bufferIO();
    assert.equal(await main(['push', '--config', file], io), 0);
    assert.match(io.stdout.at(-1)!, /5 nodes: 3 written, 2 unchanged, 0 failed/);
    noSecrets(io.stdout.join('\n'));
    io = bufferIO();
    assert.equal(await main(['push'], io), 2);
    assert.match(io.stderr.join('\n'), /give --config FILE/);
    io = bufferIO();
    assert.equal(await main(['push', '--config', file, '--bogus'], io), 2);
    const bad = join(h.dir, 'bad.yaml');
    await writeFile(bad, 'registries: []\n');
    io = bufferIO();
    assert.equal(await main(['push', '--config', bad], io), 2);
  });
});

function makeConfigInputFor(over: { passA?: string }): unknown {
  // The same config as makeConfig, as a file for the CLI (values inline: test-only).
  const cfg = makeConfig(over);
  return cfg;
}
function timeoutConfig(ms: number): PullkeeperConfig {
  const cfg = makeConfig({});
  cfg.nodes!.ssh.timeoutMs = ms;
  return cfg;
}
function tofuConfig(): PullkeeperConfig {
  const cfg = makeConfig({ knownHosts: null });
  cfg.nodes!.ssh.trustOnFirstUse = true;
  return cfg;
}
async function configFile(cfg: unknown): Promise<string> {
  const p = join(h.dir, `pullkeeper-${randomBytes(3).toString('hex')}.json`);
  await writeFile(p, JSON.stringify(cfg), { mode: 0o600 });
  return p;
}
