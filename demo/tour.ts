/**
 * The demo's use cases, on the running stack: CI refreshes through the API,
 * tenant A's pod runs on a node with the rotated credentials and a PostStart
 * hook, tenant B cannot use tenant A's cached image, and a replaced registry
 * password is rotated everywhere by the next refresh. Each step prints what a
 * user would check, and throws a DemoError when the product misbehaves.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import type { NodeShell, PodRunResult } from './node-shell.js';
import type { Stack } from './stack.js';

export class DemoError extends Error {}

interface RefreshBody {
  registries: Array<{ name: string; status: string; verified?: boolean; error?: string }>;
  tenants: Array<{
    name: string;
    fresh?: boolean;
    namespaces: Array<{ name: string; secret: string; serviceAccounts: string; reason?: string }>;
  }>;
  nodes?: Array<{ name: string; status: string; reason?: string }>;
  writes: number;
}

export interface TourOptions {
  stack: Stack;
  /** One per stack node, in order. */
  nodes: NodeShell[];
  out: (line: string) => void;
  signal?: AbortSignal;
}

export interface Tour {
  /** The status page: URL and where its password is. */
  statusPage: { url: string; passwordFile: string };
}

/** Fails the demo when a secret shows up in anything it prints. */
function assertNoSecret(s: Stack, text: string, where: string) {
  for (const v of s.secretValues())
    if (text.includes(v)) throw new DemoError(`a secret value appeared in ${where}; this is a bug`);
}

async function refreshViaApi(s: Stack, body: Record<string, unknown>, out: (l: string) => void) {
  const token = await s.ciToken();
  const t0 = performance.now();
  const res = await fetch(`${s.base}/v1/refresh`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  assertNoSecret(s, text, 'the refresh response');
  if (res.status !== 200)
    throw new DemoError(`POST /v1/refresh answered ${res.status}: ${text.slice(0, 500)}`);
  const r = JSON.parse(text) as RefreshBody;
  out(`  POST /v1/refresh ${JSON.stringify(body)}: 200 in ${Math.round(performance.now() - t0)} ms`);
  for (const reg of r.registries)
    out(
      `  report: registry ${reg.name}: ${reg.status}${reg.verified ? ', login verified' : ''}${reg.error ? ` (${reg.error})` : ''}`,
    );
  for (const t of r.tenants) {
    if (t.fresh) {
      out(`  report: tenant ${t.name}: fresh, nothing to do`);
      continue;
    }
    for (const n of t.namespaces)
      out(
        `  report: tenant ${t.name} namespace ${n.name}: secret ${n.secret}, serviceAccounts ${n.serviceAccounts}${n.reason ? ` (${n.reason})` : ''}`,
      );
  }
  for (const n of r.nodes ?? [])
    out(`  report: node ${n.name}: ${n.status}${n.reason ? ` (${n.reason})` : ''}`);
  out(`  report: ${r.writes} write(s) to the API server`);
  return r;
}

/** The pull Secrets the ServiceAccount admission plugin would copy into a pod of this namespace. */
async function pullSecretsOf(s: Stack, namespace: string): Promise<string[]> {
  const sa = await s.harness.cluster!.admin.core.readNamespacedServiceAccount({ namespace, name: 'default' });
  return (sa.imagePullSecrets ?? []).map((x) => x.name!).filter(Boolean);
}

function podYaml(o: {
  name: string;
  namespace: string;
  pullSecrets: string[];
  containers: Array<Record<string, unknown>>;
}): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      terminationGracePeriodSeconds: 2,
      imagePullSecrets: o.pullSecrets.map((name) => ({ name })),
      containers: o.containers,
    },
  });
}

/** The start of a long runner message. */
const short = (m: string) => (m.length > 180 ? `${m.slice(0, 180)}…` : m);
/** The registry's answer inside a pull failure (`the token server refused credential "…" (HTTP 401)`), else its start. */
const registryAnswer = (m: string) =>
  /(?:the token server refused|pull access denied)[^;\]]*?\(HTTP \d+\)/.exec(m)?.[0] ?? short(m);

const keepRunning = (line: string) => `trap "exit 0" TERM; ${line}; sleep 100000 & wait`;

function eventsLine(r: PodRunResult | undefined): string {
  return (r?.events ?? [])
    .filter((e) => e.type === 'Warning')
    .map((e) => `${e.reason}: ${e.message}`)
    .join('; ');
}

async function waitForLog(node: NodeShell, pod: string, container: string, re: RegExp): Promise<string> {
  const until = Date.now() + 20_000;
  let last = '';
  while (Date.now() < until) {
    const r = await node.exec(['logs', pod, '-c', container, '--state-dir', node.stateDir]);
    last = r.stdout;
    const line = last.split('\n').find((l) => re.test(l));
    if (line) return line;
    await sleep(250);
  }
  throw new DemoError(`${pod} (${container}) did not log ${re} within 20 s; its log: ${last.slice(-500)}`);
}

export async function runTour({ stack: s, nodes, out, signal }: TourOptions): Promise<Tour> {
  const host = s.registryHost;
  const tour: Tour = {
    statusPage: { url: `${s.base}/`, passwordFile: join(s.dir, 'secrets', 'operator-token') },
  };
  await writeFile(tour.statusPage.passwordFile, s.operatorToken, { mode: 0o600 });
  for (const n of nodes) await n.init();
  const [node1, node2] = [nodes[0]!, nodes[1]!];

  out('\n== CI triggers a refresh through the HTTP API (GitHub Actions-style OIDC token) ==');
  const first = await refreshViaApi(s, {}, out);
  const written = first.tenants.flatMap((t) => t.namespaces).filter((n) => n.secret === 'created');
  if (written.length !== 3 || (first.nodes ?? []).some((n) => n.status !== 'written'))
    throw new DemoError('the first refresh should create 3 Secrets and write config.json on every node');
  const nodeFile = await s.harness.nodes!.readFile(node1.name, '/var/lib/kubelet/config.json');
  if (!nodeFile?.includes(host))
    throw new DemoError(`${node1.name}: no config.json for ${host} after the push`);
  out(`  ${node1.name}:/var/lib/kubelet/config.json now holds the platform credential for ${host}`);

  out(`\n== Use case 1: tenant A's pod runs on ${node1.name} with pullkeeper-node ==`);
  const useCase1Start = Date.now();
  const aSecrets = await pullSecretsOf(s, 'team-a-prod');
  out(
    `  ServiceAccount team-a-prod/default has imagePullSecrets [${aSecrets.join(', ')}] (patched by pullkeeper)`,
  );
  const a = await node1.run(
    podYaml({
      name: 'app',
      namespace: 'team-a-prod',
      pullSecrets: aSecrets,
      containers: [
        {
          name: 'app',
          image: `${host}/team-a/app:v1`,
          command: [
            'sh',
            '-c',
            keepRunning(
              'while [ ! -f /tmp/started ]; do sleep 0.1; done; echo "team-a app up: image of $(cat /etc/app-owner), PostStart hook ran at $(cat /tmp/started)"',
            ),
          ],
          lifecycle: { postStart: { exec: { command: ['sh', '-c', 'date -u +%H:%M:%S > /tmp/started'] } } },
        },
        {
          name: 'agent',
          image: `${host}/platform/agent:v1`,
          command: ['sh', '-c', keepRunning('echo "platform agent up: image of $(cat /etc/app-owner)"')],
        },
      ],
    }),
    'team-a-app.yaml',
    signal,
  );
  if (a.result?.phase !== 'Running')
    throw new DemoError(
      `tenant A's pod did not run: ${a.result?.message ?? a.stderr} ${eventsLine(a.result)}`,
    );
  const pulled = a.result.events.filter((e) => e.reason === 'Pulled').map((e) => e.message);
  for (const m of pulled) out(`  event Pulled: ${m}`);
  const appLine = await waitForLog(node1, 'team-a-prod/app', 'app', /PostStart hook ran/);
  out(`  log app: ${appLine}`);
  out(`  log agent: ${await waitForLog(node1, 'team-a-prod/app', 'agent', /platform agent up/)}`);
  // Which credential read which image: the registry's token log (each robot may read only its repositories).
  const readBy = (repo: string) =>
    [
      ...new Set(
        s.harness
          .registry!.tokenRequests()
          .filter(
            (r) =>
              r.at >= useCase1Start && r.user && r.granted?.some((g) => g.startsWith(`repository:${repo}:`)),
          )
          .map((r) => r.user!),
      ),
    ].join(', ');
  const [appReader, agentReader] = [readBy('team-a/app'), readBy('platform/agent')];
  out(`  registry token log: team-a/app read by ${appReader}; platform/agent read by ${agentReader}`);
  if (appReader !== s.robots['team-a'].username || agentReader !== s.robots.platform.username)
    throw new DemoError('the images were not read with the tenant Secret and the node config.json');
  out(
    `use case 1 ok: pod team-a-prod/app Running on ${node1.name} (ip ${a.result.podIP}, runtime ${a.result.runtimeHandler}); ` +
      `team-a/app pulled with the tenant Secret (${appReader}), platform/agent with the node config.json (${agentReader}), PostStart hook ran`,
  );

  out(`\n== Use case 2: tenant B's pod names tenant A's image, which is cached on ${node1.name} ==`);
  const images = await node1.exec(['images', '--state-dir', node1.imagesDir]);
  const cachedLine = images.stdout.split('\n').find((l) => l.includes('team-a/app'));
  if (!cachedLine) throw new DemoError(`team-a/app is not in ${node1.name}'s image store: ${images.stdout}`);
  out(`  ${node1.name} image store: ${cachedLine.trim()}`);
  const bSecrets = await pullSecretsOf(s, 'team-b-prod');
  const b = await node1.run(
    podYaml({
      name: 'borrow',
      namespace: 'team-b-prod',
      pullSecrets: bSecrets,
      containers: [
        { name: 'app', image: `${host}/team-a/app:v1`, command: ['sh', '-c', keepRunning('true')] },
      ],
    }),
    'team-b-borrow.yaml',
    signal,
  );
  if (b.result?.phase !== 'Failed')
    throw new DemoError(`tenant B's pod should have been refused tenant A's image; it is ${b.result?.phase}`);
  const refusal = b.result.events.find(
    (e) => e.reason === 'Failed' && e.message.startsWith('Failed to pull image'),
  );
  const answer = registryAnswer(refusal?.message ?? '');
  if (!/HTTP 40[13]/.test(answer))
    throw new DemoError(
      `tenant B's pod failed, but not because the registry refused it: ${short(refusal?.message ?? '')}`,
    );
  out(`  event Failed: ${answer}`);
  out(
    `use case 2 ok: pod team-b-prod/borrow refused on ${node1.name} (${answer}); ` +
      "tenant B's credentials cannot read team-a/app, so the cached copy is not handed out (KEP-2535, on by default)",
  );
  assertNoSecret(s, JSON.stringify([a, b]), 'the runner output');

  out('\n== Use case 3: the registry password of team A is revoked and replaced ==');
  const robot = s.robots['team-a'];
  robot.password = `${robot.password.slice(0, 4)}${Math.random().toString(36).slice(2)}`;
  await s.harness.registry!.allow(robot.username, robot.password); // the old password stops working now
  await writeFile(robot.passwordFile, robot.password, { mode: 0o600 });
  out(`  registry: ${robot.username} has a new password; the old one is refused from now on`);
  out(`  the secret store (${robot.passwordFile}) holds the new one`);
  /** A pod of tenant A on node-2 whose image is pulled again whatever is cached (imagePullPolicy Always). */
  const pullAgain = (name: string, line: string) =>
    node2.run(
      podYaml({
        name,
        namespace: 'team-a-prod',
        pullSecrets: aSecrets,
        containers: [
          {
            name: 'app',
            image: `${host}/team-a/app:v1`,
            imagePullPolicy: 'Always',
            command: ['sh', '-c', keepRunning(line)],
          },
        ],
      }),
      `${name}.yaml`,
      signal,
    );
  const before = await pullAgain('before-refresh', 'true');
  if (before.result?.phase !== 'Failed')
    throw new DemoError('a pull with the revoked password should fail before the refresh');
  out(
    `  before the refresh, a pull on ${node2.name} fails: ${registryAnswer(before.result.message ?? eventsLine(before.result))}`,
  );
  const second = await refreshViaApi(s, { force: true }, out);
  const rotated = second.tenants
    .find((t) => t.name === 'team-a')
    ?.namespaces.filter((n) => n.secret === 'updated')
    .map((n) => n.name);
  if (rotated?.length !== 2) throw new DemoError("the refresh should rewrite both of team A's Secrets");
  const afterStart = Date.now();
  const after = await pullAgain('after-refresh', 'echo "pulled again with the new password"');
  if (after.result?.phase !== 'Running')
    throw new DemoError(`after the refresh the pull should work: ${after.result?.message ?? after.stderr}`);
  const repulled = s.harness
    .registry!.tokenRequests()
    .some(
      (r) =>
        r.at >= afterStart &&
        r.status === 200 &&
        r.user === robot.username &&
        r.granted?.some((g) => g.startsWith('repository:team-a/app:')),
    );
  if (!repulled) throw new DemoError('the registry saw no pull of team-a/app with the new password');
  out(
    `use case 3 ok: Secrets rotated in ${rotated.join(', ')}; pod team-a-prod/after-refresh Running on ${node2.name} ` +
      '(imagePullPolicy Always, pulled with the new password)',
  );

  out('\n== Status page ==');
  const page = await fetch(tour.statusPage.url, {
    headers: { authorization: `Basic ${Buffer.from(`operator:${s.operatorToken}`).toString('base64')}` },
    signal: AbortSignal.timeout(30_000),
  });
  const html = await page.text();
  assertNoSecret(s, html, 'the status page');
  if (page.status !== 200) throw new DemoError(`the status page answered ${page.status}`);
  const absent = [
    ...Object.values(s.namespaces).flat(),
    ...nodes.map((n) => n.name),
    'team-a-registry',
    'platform-registry',
  ].filter((x) => !html.includes(x));
  if (absent.length) throw new DemoError(`the status page does not list ${absent.join(', ')}`);
  out(`status page ok: ${tour.statusPage.url} (200, ${html.length} bytes, every tenant and node listed)`);
  return tour;
}
