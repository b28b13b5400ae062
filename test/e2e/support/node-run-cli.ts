/**
 * TEST HELPERS for the pod runner's e2e tests: the `pullkeeper-node` pod
 * commands called in-process with a test's state dir and node config
 * (clean-up: node-cleanup.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferIO } from '../../../src/cli/io.js';
import type { RunCommand } from '../../../src/cli/pullkeeper-node-run.js';
import type { PodStatus } from '../../../src/runner/pod-state.js';

/** What `run --json` prints. */
export interface RunJson {
  name: string;
  uid: string;
  phase: string;
  podIP?: string;
  runtimeHandler?: string;
  message?: string;
  containers: PodStatus['containers'];
  events: Array<{ type: string; reason: string; message: string; fieldPath?: string }>;
}

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/**
 * `cli(name, args)` runs one pod command with `flags()` appended (the test's
 * --state-dir and --node-config); `run(manifest)` writes the manifest under
 * `dir()` and runs it with --json.
 */
export function nodeRunCli(opts: {
  cmds: () => Record<string, RunCommand>;
  flags: () => string[];
  dir: () => string;
}): {
  cli: (name: string, args: string[]) => Promise<CliResult>;
  run: (manifest: string, extra?: string[]) => Promise<CliResult & { res: RunJson }>;
} {
  const cli = async (name: string, args: string[]): Promise<CliResult> => {
    const io = bufferIO();
    const code = await opts.cmds()[name]!([...args, ...opts.flags()], io);
    return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
  };
  const run = async (manifest: string, extra: string[] = []) => {
    const file = join(opts.dir(), `pod-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, manifest);
    const r = await cli('run', [file, '--json', ...extra]);
    return { ...r, res: JSON.parse(r.out) as RunJson };
  };
  return { cli, run };
}
