/**
 * `pullkeeper-node` for one of the stack's nodes: it reads the node's own
 * /var/lib/kubelet (the private tmpfs where `pullkeeper push` wrote
 * config.json over SSH, through /proc/HOLDER/root) and keeps its own image
 * store and pod state. Its pods run on this host's runc (the nodes' mount
 * namespaces have no cgroup mount, as `ip netns exec` remounts /sys).
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT, type Stack } from './stack.js';

export interface NodeResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class NodeShell {
  readonly stateDir: string;
  readonly imagesDir: string;
  readonly nodeConfig: string;
  readonly bridge: string;

  constructor(
    private readonly stack: Stack,
    readonly name: string,
    private readonly index: number,
  ) {
    const d = join(stack.dir, 'node-state', name);
    this.stateDir = join(d, 'pods');
    this.imagesDir = join(d, 'images');
    this.nodeConfig = join(d, 'node.yaml');
    this.bridge = `pkr-demo${index}`;
  }

  async init(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true });
    await mkdir(this.imagesDir, { recursive: true });
    const node = this.stack.harness.nodes!.info.nodes.find((n) => n.name === this.name)!;
    await writeFile(
      this.nodeConfig,
      stringify({
        nodeName: this.name,
        hostIP: node.address,
        runtimeHandlers: { runc: { binary: 'runc' } },
        bridge: { name: this.bridge, subnet: `10.217.${this.index}.0/24` },
        // KEP-2535 needs no key: kubelet 1.35's default (NeverVerifyPreloadedImages) already checks a
        // cached image pulled with another pod's Secret against the registry with this pod's credentials.
      }),
    );
  }

  /** `pullkeeper-node ARGS` for this node. Never throws on a non-zero exit. */
  exec(args: string[], signal?: AbortSignal): Promise<NodeResult> {
    // Undefined once the harness stopped the node: stopping pods still works then.
    const holder = this.stack.harness.nodes!.pids(this.name).holder;
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        ['bin/pullkeeper-node.js', ...args],
        {
          cwd: REPO_ROOT,
          env: {
            ...process.env,
            PULLKEEPER_NODE_STATE_DIR: this.imagesDir,
            // The node's own /var/lib/kubelet (its private tmpfs, written over SSH), seen through its mount namespace.
            ...(holder ? { PULLKEEPER_KUBELET_ROOT_DIR: `/proc/${holder}/root/var/lib/kubelet` } : {}),
          },
          timeout: 180_000,
          maxBuffer: 16 * 1024 * 1024,
          ...(signal ? { signal } : {}),
        },
        (err, stdout, stderr) =>
          resolve({
            code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
            stdout: String(stdout),
            stderr: String(stderr),
          }),
      );
    });
  }

  /** Runs a pod manifest (written to a file) and returns the runner's JSON result. */
  async run(
    podYaml: string,
    file: string,
    signal?: AbortSignal,
  ): Promise<{ code: number; result: PodRunResult | undefined; stderr: string }> {
    const path = join(this.stack.dir, 'node-state', this.name, file);
    await writeFile(path, podYaml);
    const r = await this.exec(
      [
        'run',
        path,
        '--kubeconfig',
        this.stack.harness.cluster!.info.kubeconfigPath,
        '--node-config',
        this.nodeConfig,
        '--state-dir',
        this.stateDir,
        '--json',
      ],
      signal,
    );
    let result: PodRunResult | undefined;
    try {
      result = JSON.parse(r.stdout) as PodRunResult;
    } catch {}
    return { code: r.code, result, stderr: r.stderr };
  }

  /** Stops every pod in this node's state (PreStop, TERM, KILL after the grace period), then removes the pod bridge. */
  async cleanup(): Promise<void> {
    const ps = await this.exec(['ps', '--json', '--state-dir', this.stateDir]);
    let pods: Array<{ name: string; namespace: string }> = [];
    try {
      pods = JSON.parse(ps.stdout);
    } catch {}
    const failed: string[] = [];
    for (const p of pods) {
      const r = await this.exec([
        'stop',
        `${p.namespace}/${p.name}`,
        '--state-dir',
        this.stateDir,
        '--node-config',
        this.nodeConfig,
      ]);
      if (r.code !== 0) failed.push(`${p.namespace}/${p.name}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    await new Promise<void>((resolve) => execFile('ip', ['link', 'del', this.bridge], () => resolve()));
    if (failed.length) throw new Error(`${this.name}: could not stop ${failed.join('; ')}`);
  }
}

export interface PodRunResult {
  name: string;
  namespace: string;
  uid?: string;
  phase: string;
  podIP?: string;
  runtimeHandler?: string;
  message?: string;
  events: Array<{ type: string; reason: string; message: string }>;
}
