/**
 * `pullkeeper-node` pod commands: run, stop, describe, ps, logs (and daemon).
 * The image store is injected ({@link makeRunCommands}); `runCommands` is the
 * map the main `pullkeeper-node` CLI dispatches to.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { PullkeeperError } from '../core/errors.js';
import { describeEvents, humanDuration, table } from '../runner/events.js';
import type { ImageSource } from '../runner/image-source.js';
import { loadNodeConfig } from '../runner/node-config.js';
import { mergeObjects, parseManifest } from '../runner/pod.js';
import { PodDir } from '../runner/pod-state.js';
import { listPods, runPod, serveDaemon, stopPod } from '../runner/pods.js';
import { PULLKEEPER_NODE, PULLKEEPER_NODE_CLI, usageErrorMessage } from './help.js';
import type { CliIO } from './io.js';

export type RunCommand = (argv: string[], io: CliIO) => Promise<number>;

/** The pod commands need an image store; until one is wired in, `run` says so. */
export class ImageStoreMissingError extends PullkeeperError {}

const missingStore: ImageSource = {
  ensure: () => {
    throw new ImageStoreMissingError(
      'no image store is wired into this pullkeeper-node build; build it with the image store (pullkeeper-node pull)',
    );
  },
};

/** The node config; with `io`, its warnings (deprecated keys) are printed (the commands that pull). */
async function nodeConfig(values: { 'state-dir'?: string; 'node-config'?: string }, io?: CliIO) {
  const node = await loadNodeConfig(
    values['node-config'],
    values['state-dir'] ? { stateDir: values['state-dir'] } : {},
  );
  for (const w of node.warnings ?? []) io?.err(`pullkeeper-node: warning: ${w}`);
  return node;
}

function guard(name: string, fn: RunCommand): RunCommand {
  return async (argv, io) => {
    try {
      return await fn(argv, io);
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        io.err(usageErrorMessage(PULLKEEPER_NODE_CLI, name, err as Error));
        return 2;
      }
      if (err instanceof PullkeeperError) {
        io.err(`pullkeeper-node ${name}: ${(err as Error).message}`);
        return 1;
      }
      throw err;
    }
  };
}

function oneRef(positionals: string[], cmd: string, io: CliIO): string | undefined {
  if (positionals.length !== 1) {
    io.err(
      `pullkeeper-node ${cmd}: give exactly one pod, NAME or NAMESPACE/NAME, e.g. \`pullkeeper-node ${cmd} default/web\`; \`pullkeeper-node ps\` lists the pods`,
    );
    return undefined;
  }
  return positionals[0];
}

/** The command map, with the image store to pull through. */
export function makeRunCommands(deps: { imageSource?: ImageSource } = {}): Record<string, RunCommand> {
  const images = deps.imageSource ?? missingStore;
  return {
    run: guard('run', async (argv, io) => {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: PULLKEEPER_NODE.run.flags,
      });
      if (positionals.length !== 1) {
        io.err(
          'pullkeeper-node run: give exactly one Pod manifest file, e.g. `pullkeeper-node run pod.yaml` (`pullkeeper-node help run`)',
        );
        return 2;
      }
      const file = positionals[0]!;
      const manifest = parseManifest(await readFile(file, 'utf8'), file);
      if (values.kubeconfig && manifest.pod) {
        // Cluster objects first; objects given in files win by name.
        const { KubeConfig } = await import('@kubernetes/client-node');
        const { fetchPodObjects } = await import('../runner/cluster-objects.js');
        const kc = new KubeConfig();
        kc.loadFromFile(values.kubeconfig);
        const fromCluster = await fetchPodObjects(kc, manifest.pod);
        mergeObjects(fromCluster, manifest.objects);
        manifest.objects = fromCluster;
      }
      for (const extra of values.objects ?? []) {
        const more = parseManifest(await readFile(extra, 'utf8'), extra);
        if (more.pod)
          throw new PodRunArgsError(`${extra}: --objects files hold no Pod; put the Pod in the run argument`);
        mergeObjects(manifest.objects, more.objects);
      }
      const node = await nodeConfig(values, io);
      let source = images;
      const pc = node.podCredentials;
      if (pc && manifest.pod) {
        if (!values.kubeconfig)
          throw new PodRunArgsError(
            'the node config has podCredentials: pass --kubeconfig (the pod token is requested from the cluster)',
          );
        const { KubeConfig } = await import('@kubernetes/client-node');
        const { withPodCredentials } = await import('../runner/pod-broker.js');
        const kc = new KubeConfig();
        kc.loadFromFile(values.kubeconfig);
        const ca = pc.caFile ? await readFile(pc.caFile, 'utf8') : undefined;
        source = withPodCredentials(images, kc, manifest.pod, {
          audience: pc.audience,
          broker: { url: pc.broker, ca, timeoutMs: pc.timeoutSeconds * 1000 },
        });
      }
      const res = await runPod({ manifest, node, images: source });
      for (const w of res.warnings) io.err(`pullkeeper-node run: warning: ${w}`);
      const pod = manifest.pod!;
      if (values.json) {
        io.out(
          JSON.stringify(
            {
              name: pod.metadata.name,
              namespace: pod.metadata.namespace,
              uid: res.plan?.uid,
              phase: res.status.phase,
              podIP: res.plan ? res.status.podIP : undefined,
              runtimeHandler: res.plan?.runtime.handler,
              runtimeClassName: pod.spec.runtimeClassName,
              message: res.status.message,
              containers: res.status.containers,
              events: res.events,
            },
            null,
            2,
          ),
        );
      } else {
        const where = res.plan ? ` ip ${res.status.podIP}, runtime ${res.plan.runtime.handler}` : '';
        io.out(`pod/${pod.metadata.name} ${res.status.phase}${where}`);
        for (const e of res.events.filter((x) => x.type === 'Warning')) io.out(`  ${e.reason}: ${e.message}`);
        if (res.status.phase === 'Failed' && res.status.message)
          io.err(`pullkeeper-node run: ${res.status.message}`);
      }
      return res.status.phase === 'Failed' ? 1 : 0;
    }),

    stop: guard('stop', async (argv, io) => {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: PULLKEEPER_NODE.stop.flags,
      });
      const ref = oneRef(positionals, 'stop', io);
      if (!ref) return 2;
      const node = await nodeConfig(values);
      const status = await stopPod(node.stateRoot, ref);
      if (values.json) io.out(JSON.stringify({ pod: ref, phase: status?.phase ?? 'Unknown' }, null, 2));
      else io.out(`pod/${ref} stopped (${status?.phase ?? 'Unknown'})`);
      return 0;
    }),

    describe: guard('describe', async (argv, io) => {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: PULLKEEPER_NODE.describe.flags,
      });
      const ref = oneRef(positionals, 'describe', io);
      if (!ref) return 2;
      const node = await nodeConfig(values);
      if (values.json) io.out(JSON.stringify(await describePodJson(node.stateRoot, ref), null, 2));
      else for (const line of await describePod(node.stateRoot, ref, Date.now())) io.out(line);
      return 0;
    }),

    ps: guard('ps', async (argv, io) => {
      const { values } = parseArgs({ args: argv, options: PULLKEEPER_NODE.ps.flags });
      const node = await nodeConfig(values);
      const pods = await listPods(node.stateRoot);
      if (values.json) {
        io.out(JSON.stringify(pods, null, 2));
        return 0;
      }
      const now = Date.now();
      const rows = [['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'RUNTIME']];
      for (const p of pods) {
        rows.push([
          p.namespace,
          p.name,
          p.ready,
          p.phase,
          String(p.restarts),
          p.createdAt ? humanDuration(now - Date.parse(p.createdAt)) : '<unknown>',
          p.podIP ?? '<none>',
          p.runtimeHandler ?? '<none>',
        ]);
      }
      for (const line of table(rows)) io.out(line);
      return 0;
    }),

    logs: guard('logs', async (argv, io) => {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: PULLKEEPER_NODE.logs.flags,
      });
      const ref = oneRef(positionals, 'logs', io);
      if (!ref) return 2;
      const node = await nodeConfig(values);
      const dir = PodDir.of(node.stateRoot, ref);
      const pod = await dir.readManifest();
      const names = pod.spec.containers.map((c) => c.name);
      let name = values.container;
      if (!name) {
        if (names.length !== 1) {
          io.err(
            `pullkeeper-node logs: a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(' ')}]`,
          );
          return 1;
        }
        name = names[0]!;
      } else if (!names.includes(name)) {
        io.err(`pullkeeper-node logs: container ${name} is not valid for pod ${pod.metadata.name}`);
        return 1;
      }
      let text = '';
      for (const f of [`${dir.logFile(name)}.1`, dir.logFile(name)]) {
        text += await readFile(f, 'utf8').catch(() => '');
      }
      const lines = text.split('\n');
      if (lines.at(-1) === '') lines.pop();
      if (values.json) io.out(JSON.stringify({ pod: ref, container: name, lines }, null, 2));
      else for (const l of lines) io.out(l);
      return 0;
    }),

    daemon: guard('daemon', async (argv, io) => {
      const { values } = parseArgs({ args: argv, options: PULLKEEPER_NODE.daemon.flags });
      const node = await nodeConfig(values, io);
      const ac = new AbortController();
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => ac.abort());
      io.out(`pullkeeper-node daemon: serving ${node.stateRoot}/daemon.sock`);
      await serveDaemon(node.stateRoot, ac.signal, (w) => io.err(`pullkeeper-node daemon: warning: ${w}`));
      return 0;
    }),
  };
}

class PodRunArgsError extends PullkeeperError {}

/** The map `pullkeeper-node` dispatches to (the image store is wired in by the main CLI). */
export const runCommands: Record<string, RunCommand> = makeRunCommands();

/** What `describe --json` prints: the same facts as the text, as one object. */
export async function describePodJson(root: string, ref: string): Promise<Record<string, unknown>> {
  const dir = PodDir.of(root, ref);
  const pod = await dir.readManifest();
  const status = await dir.readStatus();
  let plan: Awaited<ReturnType<PodDir['readPlan']>> | undefined;
  try {
    plan = await dir.readPlan();
  } catch {}
  return {
    name: pod.metadata.name,
    namespace: pod.metadata.namespace,
    runtimeClassName: pod.spec.runtimeClassName ?? null,
    runtimeHandler: plan?.runtime.handler ?? null,
    startTime: status?.startTime ?? null,
    labels: pod.metadata.labels ?? {},
    phase: status?.phase ?? 'Unknown',
    podIP: plan ? (status?.podIP ?? null) : null,
    message: status?.message ?? null,
    containers: pod.spec.containers.map((c) => {
      const s = status?.containers.find((x) => x.name === c.name);
      const pc = plan?.containers.find((x) => x.name === c.name);
      return {
        name: c.name,
        image: c.image,
        imageID: pc ? `${pc.imageRef}@${pc.imageDigest}` : null,
        containerID: pc ? `${plan!.runtime.handler}://${pc.id}` : null,
        state: s?.state ?? 'waiting',
        reason: s?.reason ?? null,
        exitCode: s?.exitCode ?? null,
        startedAt: s?.startedAt ?? null,
        finishedAt: s?.finishedAt ?? null,
        ready: s?.ready ?? false,
        restartCount: s?.restartCount ?? 0,
      };
    }),
    events: await dir.readEvents(),
  };
}

/** `kubectl describe pod`-like text, events last. */
export async function describePod(root: string, ref: string, now: number): Promise<string[]> {
  const dir = PodDir.of(root, ref);
  const pod = await dir.readManifest();
  const status = await dir.readStatus();
  let plan: Awaited<ReturnType<PodDir['readPlan']>> | undefined;
  try {
    plan = await dir.readPlan();
  } catch {}
  const kv = (rows: Array<[string, string]>, indent = ''): string[] =>
    table(
      rows.map(([k, v]) => [`${k}:`, v]),
      indent,
    );
  const labels = Object.entries(pod.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  const lines = kv([
    ['Name', pod.metadata.name],
    ['Namespace', pod.metadata.namespace],
    ['Runtime Class Name', pod.spec.runtimeClassName ?? '<none>'],
    ['Runtime Handler', plan?.runtime.handler ?? '<none>'],
    ['Start Time', status?.startTime ?? '<none>'],
    ['Labels', labels.length ? labels.join(',') : '<none>'],
    ['Status', status?.phase ?? 'Unknown'],
    ['IP', plan ? (status?.podIP ?? '<none>') : '<none>'],
  ]);
  if (status?.message) lines.push(...kv([['Message', status.message]]));
  lines.push('Containers:');
  for (const c of pod.spec.containers) {
    const s = status?.containers.find((x) => x.name === c.name);
    const pc = plan?.containers.find((x) => x.name === c.name);
    lines.push(`  ${c.name}:`);
    const state = s?.state === 'running' ? 'Running' : s?.state === 'terminated' ? 'Terminated' : 'Waiting';
    const rows: Array<[string, string]> = [
      ['Container ID', pc ? `${plan!.runtime.handler}://${pc.id}` : '<none>'],
      ['Image', c.image],
      ['Image ID', pc ? `${pc.imageRef}@${pc.imageDigest}` : '<none>'],
      ['State', state],
    ];
    lines.push(...kv(rows, '    '));
    const detail: Array<[string, string]> = [];
    if (s?.reason) detail.push(['Reason', s.reason]);
    if (s?.exitCode !== undefined) detail.push(['Exit Code', String(s.exitCode)]);
    if (s?.startedAt) detail.push(['Started', s.startedAt]);
    if (s?.finishedAt) detail.push(['Finished', s.finishedAt]);
    lines.push(...kv(detail, '      '));
    lines.push(
      ...kv(
        [
          ['Ready', s?.ready ? 'True' : 'False'],
          ['Restart Count', String(s?.restartCount ?? 0)],
        ],
        '    ',
      ),
    );
    const hooks = [c.lifecycle?.postStart ? 'PostStart' : '', c.lifecycle?.preStop ? 'PreStop' : ''].filter(
      Boolean,
    );
    if (hooks.length) lines.push(...kv([['Lifecycle Hooks', hooks.join(', ')]], '    '));
  }
  lines.push(...describeEvents(await dir.readEvents(), now));
  return lines;
}
