/**
 * `pullkeeper push --config FILE [--node NAME]... [--check] [--json] [--pre-pull IMAGE...]`
 * Exit codes: 0 every node ok, 1 any node failed (or the run failed), 2 bad config or usage.
 */

import { parseArgs } from 'node:util';
import { type PushResult, pushNodes } from '../app/push.js';
import { saveStatus } from '../app/status-store.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { NodeReportEntry } from '../nodes/push-node.js';
import { PULLKEEPER, PULLKEEPER_CLI, usageErrorMessage } from './help.js';
import { type CliIO, processIO, progressOf } from './io.js';

const HELP = 'Run `pullkeeper help push` for its flags and examples.';

export interface PushCommandOptions {
  /** Progress line on stderr (default: when stderr is a terminal and not --json). */
  progress?: boolean;
  signal?: AbortSignal;
}

export async function pushCommand(args: string[], io: CliIO, opts: PushCommandOptions = {}): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    if (!(err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw err;
    io.err(usageErrorMessage(PULLKEEPER_CLI, 'push', err as Error));
    return 2;
  }
  const { values, positionals } = parsed;
  const configPath = values.config ?? process.env.PULLKEEPER_CONFIG;
  const prePull = [...(values['pre-pull'] ?? []), ...(values['pre-pull']?.length ? positionals : [])];
  if (!configPath || (positionals.length && !values['pre-pull']?.length)) {
    io.err(
      `pullkeeper push: ${configPath ? `unexpected argument "${positionals[0]}" (images to pull go after --pre-pull)` : 'give --config FILE (or set PULLKEEPER_CONFIG), e.g. `pullkeeper push --config pullkeeper.yaml --check`'}\n${HELP}`,
    );
    return 2;
  }
  if (values.check && prePull.length) {
    io.err('pullkeeper push: --check writes nothing and pulls nothing; drop --pre-pull or --check');
    return 2;
  }
  let config: Awaited<ReturnType<typeof loadConfigFile>>;
  try {
    config = await loadConfigFile(configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`pullkeeper push: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (!config.nodes) {
    io.err(`pullkeeper push: ${configPath} has no "nodes" section; add one (docs/nodes.md shows how)`);
    return 2;
  }
  const progress =
    opts.progress === false
      ? undefined
      : opts.progress === true
        ? (io.progress ?? processIO.progress)
        : progressOf(io, values.json);
  const counts = { written: 0, unchanged: 0, drift: 0, failed: 0 };
  let result: PushResult;
  try {
    result = await pushNodes(config, {
      ...(values.node?.length ? { nodes: values.node } : {}),
      check: values.check ?? false,
      ...(prePull.length ? { prePull } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onNode: progress
        ? (e, done, total) => {
            counts[e.status]++;
            progress(
              `[${done}/${total}] ${e.name}: ${e.status} (${counts.written} written, ${counts.unchanged} unchanged, ${counts.drift} drift, ${counts.failed} failed)`,
            );
          }
        : undefined,
    });
  } finally {
    progress?.('');
  }
  const failed = result.nodes.some((n) => n.status === 'failed');
  if (!values.check) {
    // The status page and GET /v1/status show the last push of each node, whoever ran it.
    const saved = await saveStatus(config, { registries: result.registries, nodes: result.nodes });
    if (saved.error) io.err(`pullkeeper push: warning: ${saved.error}`);
  }
  if (result.hostKeyRecordError) io.err(`pullkeeper push: warning: ${result.hostKeyRecordError}`);
  if (values.json) {
    io.out(JSON.stringify(result, null, 2));
  } else {
    for (const r of result.registries.filter((x) => x.status === 'failed'))
      io.out(`registry ${r.name}: failed: ${r.error ?? ''}`);
    for (const n of result.nodes) io.out(formatNode(n));
    if (result.halted) io.out(result.halted);
    const c = { written: 0, unchanged: 0, drift: 0, failed: 0 };
    for (const n of result.nodes) c[n.status]++;
    io.out(
      `${result.nodes.length} nodes: ${c.written} written, ${c.unchanged} unchanged${values.check ? `, ${c.drift} drift` : ''}, ${c.failed} failed`,
    );
  }
  return failed ? 1 : 0;
}

function formatNode(n: NodeReportEntry): string {
  const lines = [
    `${n.name.padEnd(20)} ${n.address.padEnd(16)} ${n.status.padEnd(9)} ${String(n.ms).padStart(5)} ms${n.reason ? `  ${n.reason}` : ''}`,
  ];
  for (const note of n.notes ?? []) lines.push(`  note: ${note}`);
  for (const p of n.pulls ?? [])
    lines.push(
      `  pull ${p.image}: ${p.status}${p.digest ? ` ${p.digest}` : ''}${p.reason ? ` (${p.reason})` : ''}`,
    );
  return lines.join('\n');
}

function parse(args: string[]) {
  return parseArgs({ args, allowPositionals: true, options: PULLKEEPER.push.flags });
}
