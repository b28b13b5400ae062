/** `pullkeeper mint` and `pullkeeper config check`. */
import { parseArgs } from 'node:util';
import { type MintReportEntry, mintCredentials } from '../app/mint.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { PullkeeperConfig } from '../config/schema.js';
import { EXIT } from './exit.js';
import { PULLKEEPER } from './help.js';
import { type CliIO, progressOf } from './io.js';

export { EXIT };

function configPath(value: string | undefined): string | undefined {
  return value ?? process.env.PULLKEEPER_CONFIG;
}

/**
 * `--config FILE` (or PULLKEEPER_CONFIG), loaded and validated; on a missing flag
 * or a broken file it prints what to do and returns undefined (the caller exits 2).
 */
export async function loadConfigArg(
  value: string | undefined,
  io: CliIO,
  command: string,
): Promise<{ file: string; config: PullkeeperConfig } | undefined> {
  const file = configPath(value);
  if (!file) {
    io.err(
      `pullkeeper ${command}: give --config FILE (or set PULLKEEPER_CONFIG), e.g. \`pullkeeper ${command} --config pullkeeper.yaml\`; \`pullkeeper help ${command}\` has examples`,
    );
    return undefined;
  }
  try {
    return { file, config: await loadConfigFile(file) };
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return undefined;
    }
    throw err;
  }
}

export async function configCheckCommand(args: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: PULLKEEPER['config check'].flags,
  });
  const file = positionals[0] ?? configPath(values.config);
  if (!file) {
    io.err('pullkeeper config check: give the file, e.g. `pullkeeper config check pullkeeper.yaml`');
    return EXIT.usage;
  }
  try {
    const cfg = await loadConfigFile(file);
    const summary = {
      file,
      valid: true,
      clusters: cfg.clusters.map((c) => c.name),
      registries: cfg.registries.map((r) => ({ name: r.name, kind: r.kind })),
      tenants: cfg.tenants.map((t) => t.name),
      nodes: cfg.nodes
        ? cfg.nodes.inventory === 'kubernetes'
          ? 'kubernetes'
          : cfg.nodes.inventory.length
        : null,
    };
    if (values.json) io.out(JSON.stringify(summary, null, 2));
    else
      io.out(
        `${file}: valid — ${summary.registries.length} registr${summary.registries.length === 1 ? 'y' : 'ies'} (${summary.registries.map((r) => `${r.name}:${r.kind}`).join(', ')}), ${summary.tenants.length} tenant(s), ${summary.clusters.length} cluster(s), nodes: ${summary.nodes ?? 'none'}`,
      );
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ConfigError) {
      if (values.json) io.out(JSON.stringify({ file, valid: false, issues: err.issues }, null, 2));
      else io.err(err.message);
      return EXIT.usage;
    }
    throw err;
  }
}

export async function mintCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, allowPositionals: false, options: PULLKEEPER.mint.flags });
  const loaded = await loadConfigArg(values.config, io, 'mint');
  if (!loaded) return EXIT.usage;
  const { file, config: cfg } = loaded;
  const unknown = (values.registry ?? []).filter((n) => !cfg.registries.some((r) => r.name === n));
  if (unknown.length) {
    io.err(
      `pullkeeper mint: unknown registry ${unknown.map((n) => `"${n}"`).join(', ')}; ${file} defines ${cfg.registries.map((r) => r.name).join(', ')}: pass one of those to --registry`,
    );
    return EXIT.usage;
  }
  const timeoutMs = values.timeout ? Number(values.timeout) * 1000 : 120_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    io.err('pullkeeper mint: --timeout takes seconds, e.g. --timeout 60');
    return EXIT.usage;
  }
  const signal = AbortSignal.timeout(timeoutMs);
  const progress = progressOf(io, values.json);
  progress?.(`minting ${values.registry?.length ?? cfg.registries.length} registr(ies)…`);
  const res = await mintCredentials(cfg, {
    registries: values.registry,
    signal,
    force: values.force,
    onProgress: progress && ((e, done, total) => progress(`[${done}/${total}] ${e.name}: ${e.status}`)),
  });
  progress?.('');
  if (values.json) io.out(JSON.stringify({ registries: res.registries, mintCalls: res.mintCalls }, null, 2));
  else printTable(res.registries, io);
  return res.registries.some((r) => r.status === 'failed') ? EXIT.failed : EXIT.ok;
}

function printTable(rows: MintReportEntry[], io: CliIO): void {
  const head = ['REGISTRY', 'KIND', 'STATUS', 'VERIFIED', 'EXPIRES', 'HOSTS'];
  const body = rows.map((r) => [
    r.name,
    r.kind,
    r.status,
    r.verified === null ? '-' : r.verified ? 'yes' : 'no',
    r.expiresAt ?? (r.status === 'failed' ? '-' : 'never'),
    r.hosts.join(',') || '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  io.out(line(head));
  for (const b of body) io.out(line(b));
  for (const r of rows) {
    if (r.error) io.out(`${r.name}: ${r.error}`);
    for (const n of r.notes ?? []) io.out(`${r.name}: note: ${n}`);
  }
}
