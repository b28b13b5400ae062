/**
 * `pullkeeper push --pre-pull`: after the push, each node runs the real
 * `pullkeeper-node pull IMAGE --json` over SSH, with the credentials the push
 * just wrote to its /var/lib/kubelet/config.json (kubelet's search path), into
 * its own image store. The registry runs on this host's loopback; on each
 * node, 127.0.0.1:PORT is forwarded to it through the node's bridge (a
 * forwarder in the node's network namespace, and one on the bridge address in
 * this process), so image references and config.json keys are the same on the
 * host and on the nodes.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pushNodes } from '../../src/app/push.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { parseConfig } from '../../src/config/load.js';
import { type Harness, startHarness } from '../harness/index.js';
import { type Service, startService } from '../harness/proc.js';
import { buildImage, pushImage } from '../harness/registry/images.js';

const REPO = join(import.meta.dirname, '../..');
const STORE = '/var/lib/kubelet/pk-images';
const PULLER = { username: 'node-puller', password: 'prepull-pass-4e9a1c' };
let h: Harness;
let hostSide: Server;
const forwarders: Service[] = [];
let image = '';
let digest = '';
let configFile = '';

function pipeTo(port: number, host: string) {
  return (c: import('node:net').Socket) => {
    const u = netConnect(port, host);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  };
}

/** Node side of the forward: 127.0.0.1:PORT in the node's network namespace -> the bridge address. */
const FORWARDER = `
const net = require('node:net');
const [port, host, to] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(Number(to), host);
  c.pipe(u).pipe(c);
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(Number(port), '127.0.0.1', () => console.log('listening'));
`;

function config(o: { command?: string } = {}) {
  const info = h.nodes!.info;
  return {
    registries: [
      {
        name: 'reg',
        kind: 'static',
        server: h.registry!.info.host,
        username: { value: PULLER.username },
        password: { value: PULLER.password },
      },
    ],
    nodes: {
      inventory: info.nodes.map((n) => ({ name: n.name, address: n.address })),
      registries: ['reg'],
      ssh: {
        privateKey: { fromFile: info.clientKey.privateKeyPath },
        knownHosts: { fromFile: join(h.dir, 'known_hosts') },
        timeoutMs: 60_000,
      },
      prePull: {
        // The runner from this checkout, on Node 24, with its image store on the node's own tmpfs.
        command:
          o.command ??
          `PULLKEEPER_NODE_STATE_DIR=${STORE} ${process.execPath} ${join(REPO, 'bin/pullkeeper-node.js')}`,
        timeoutMs: 60_000,
      },
    },
  };
}

before(async () => {
  h = await startHarness({ registry: { auth: 'htpasswd' }, nodes: 2 });
  const reg = h.registry!;
  await reg.allow(PULLER.username, PULLER.password);
  const pushed = await pushImage(
    reg,
    'team/app',
    'v1',
    await buildImage({
      layers: [{ busybox: true }, { files: [{ path: 'etc/app.txt', content: 'app v1\n' }] }],
      config: { Cmd: ['/bin/cat', '/etc/app.txt'] },
    }),
    PULLER,
  );
  image = pushed.reference;
  digest = pushed.digest;
  await writeFile(
    join(h.dir, 'known_hosts'),
    `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`,
  );
  configFile = join(h.dir, 'pk-prepull.json');
  await writeFile(configFile, JSON.stringify(config()));

  // Host side: the bridge address (the nodes' gateway) -> the registry on loopback.
  const bridgeIp = h.nodes!.info.subnet.replace(/\.0\/\d+$/, '.1');
  const regPort = Number(reg.info.host.split(':')[1]);
  hostSide = createServer(pipeTo(regPort, '127.0.0.1'));
  hostSide.listen(0, bridgeIp);
  await once(hostSide, 'listening');
  const hostPort = (hostSide.address() as import('node:net').AddressInfo).port;
  for (const n of h.nodes!.info.nodes) {
    const holder = h.nodes!.pids(n.name).holder;
    assert.ok(holder, `${n.name} has no namespace holder`);
    const logFile = join(h.dir, `forward-${n.name}.log`);
    forwarders.push(
      await startService({
        name: `registry forward on ${n.name}`,
        command: 'nsenter',
        args: [
          `--net=/proc/${holder}/ns/net`,
          '--',
          process.execPath,
          '-e',
          FORWARDER,
          String(regPort),
          bridgeIp,
          String(hostPort),
        ],
        logFile,
        ready: async () => (await readFile(logFile, 'utf8')).includes('listening'),
      }),
    );
  }
});

after(async () => {
  for (const f of forwarders) await f.stop();
  hostSide?.close();
  await h?.stop();
});

test('push --pre-pull: each node pulls with the config.json just pushed, into its own store', {
  timeout: 240_000,
}, async () => {
  const io = bufferIO();
  const code = await main(['push', '--config', configFile, '--pre-pull', image, '--json'], io);
  const out = io.stdout.join('\n');
  assert.ok(!(out + io.stderr.join('\n')).includes(PULLER.password), 'no secret in the output');
  assert.equal(code, 0, `${out}\n${io.stderr.join('\n')}`);
  const r = JSON.parse(out) as {
    nodes: Array<{
      name: string;
      status: string;
      pulls?: Array<{ image: string; status: string; digest?: string }>;
    }>;
  };
  for (const n of r.nodes) {
    assert.equal(n.status, 'written', n.name);
    assert.deepEqual(n.pulls, [{ image, status: 'pulled', digest }], n.name);
    // The node's own store holds the image; the host's default store was not touched.
    const listed = await h.nodes!.exec(
      n.name,
      `PULLKEEPER_NODE_STATE_DIR=${STORE} ${process.execPath} ${join(REPO, 'bin/pullkeeper-node.js')} images --json`,
    );
    assert.equal(listed.code, 0, listed.stderr);
    const images = JSON.parse(listed.stdout) as Array<{ ref: string; digest: string }>;
    assert.deepEqual(
      images.map((i) => i.digest),
      [digest],
      n.name,
    );
  }

  // Again: the file is unchanged and the image is already there.
  const again = await pushNodes(parseConfig(config()), { prePull: [image] });
  for (const n of again.nodes) {
    assert.equal(n.status, 'unchanged', n.name);
    assert.deepEqual(n.pulls, [{ image, status: 'present', digest }], n.name);
  }
});

test('pre-pull failures are reported per image and node: a missing image, and no runner on the node', {
  timeout: 240_000,
}, async () => {
  const missing = `${h.registry!.info.host}/team/nope:v1`;
  const r = await pushNodes(parseConfig(config()), { prePull: [missing, image] });
  for (const n of r.nodes) {
    assert.equal(n.status, 'failed', n.name);
    assert.match(n.reason ?? '', /pre-pull failed: .*team\/nope:v1/);
    assert.equal(n.pulls?.[0]?.status, 'failed');
    assert.match(n.pulls?.[0]?.reason ?? '', /exit 1/);
    assert.equal(n.pulls?.[1]?.status, 'present', 'the next image is still pulled');
  }
  const none = await pushNodes(parseConfig(config({ command: '/nonexistent/pullkeeper-node' })), {
    prePull: [image],
  });
  for (const n of none.nodes) {
    assert.equal(n.status, 'failed');
    assert.match(
      n.pulls?.[0]?.reason ?? '',
      /pullkeeper-node not found on the node \(set nodes\.prePull\.command\)/,
    );
  }
  assert.ok(!JSON.stringify([r, none]).includes(PULLER.password));
});
