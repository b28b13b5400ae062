/** `pullkeeper refresh` and `pullkeeper ensure`. */

import { parseArgs } from 'node:util';
import { ensureNamespace } from '../app/ensure.js';
import {
  RefreshError,
  type RefreshReport,
  refresh,
  refreshFailed,
  type TenantReport,
} from '../app/refresh.js';
import { saveStatus } from '../app/status-store.js';
import { PULLKEEPER } from './help.js';
import { type CliIO, progressOf } from './io.js';
import { EXIT, loadConfigArg } from './mint-command.js';

function printReport(r: RefreshReport, io: CliIO): void {
  for (const reg of r.registries)
    io.out(`registry ${reg.name}: ${reg.status}${reg.error ? ` — ${reg.error}` : ''}`);
  for (const t of r.tenants) {
    io.out(`tenant ${t.name} (cluster ${t.cluster})${t.fresh ? ': fresh, nothing to do' : ''}`);
    if (t.fresh) continue;
    for (const n of t.namespaces)
      io.out(
        `  ${n.name.padEnd(30)} secret ${n.secret.padEnd(9)} serviceAccounts ${n.serviceAccounts}${n.reason ? `  (${n.reason})` : ''}`,
      );
  }
  for (const n of r.nodes ?? []) io.out(`node ${n.name}: ${n.status}${n.reason ? ` (${n.reason})` : ''}`);
  io.out(
    `${r.writes} write(s), ${r.requests} request(s) over ${r.connections} connection(s); ${r.mintCalls} mint call(s)`,
  );
}

/** `2 namespaces: 1 secret created, 1 unchanged` (the progress line of one tenant). */
export function tenantProgress(tr: TenantReport): string {
  if (tr.fresh) return 'fresh, nothing to do';
  const counts = new Map<string, number>();
  for (const n of tr.namespaces) counts.set(n.secret, (counts.get(n.secret) ?? 0) + 1);
  const parts = [...counts].map(([k, v]) => `${v} ${k}`);
  return `${tr.namespaces.length} namespace(s): secrets ${parts.join(', ') || 'none'}`;
}

export async function refreshCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: PULLKEEPER.refresh.flags });
  const cfg = (await loadConfigArg(values.config, io, 'refresh'))?.config;
  if (!cfg) return EXIT.usage;
  const progress = progressOf(io, values.json);
  let r: RefreshReport;
  try {
    r = await refresh(cfg, {
      tenants: values.tenant,
      dryRun: values['dry-run'],
      force: values.force,
      onProgress: progress && ((d, n, t, tr) => progress(`[${d}/${n}] ${t}: ${tenantProgress(tr)}`)),
    });
  } catch (err) {
    if (err instanceof RefreshError) {
      io.err(`pullkeeper refresh: ${err.message}`);
      return EXIT.usage;
    }
    throw err;
  } finally {
    progress?.('');
  }
  if (!r.dryRun) {
    // The status page and GET /v1/status show the last mint and push, whoever ran it.
    const saved = await saveStatus(cfg, { registries: r.registries, nodes: r.nodes ?? [] });
    if (saved.error) io.err(`pullkeeper refresh: warning: ${saved.error}`);
  }
  if (values.json) io.out(JSON.stringify(r, null, 2));
  else if (r.dryRun) {
    for (const l of r.plan ?? []) io.out(l);
    io.out(
      r.plan?.length
        ? `${r.plan.length} change(s) planned; nothing written (--dry-run)`
        : 'nothing to change',
    );
  } else printReport(r, io);
  return refreshFailed(r) ? EXIT.failed : EXIT.ok;
}

export async function ensureCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: PULLKEEPER.ensure.flags,
  });
  if (positionals.length !== 1) {
    io.err(
      'pullkeeper ensure: give one namespace, e.g. `pullkeeper ensure team-a-prod --config pullkeeper.yaml`',
    );
    return EXIT.usage;
  }
  const cfg = (await loadConfigArg(values.config, io, 'ensure'))?.config;
  if (!cfg) return EXIT.usage;
  const timeoutMs = values.timeout ? Number(values.timeout) * 1000 : 60_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    io.err('pullkeeper ensure: --timeout takes seconds, e.g. --timeout 60');
    return EXIT.usage;
  }
  try {
    const r = await ensureNamespace(cfg, positionals[0]!, { timeoutMs });
    if (values.json) io.out(JSON.stringify(r, null, 2));
    else {
      io.out(`namespace ${r.namespace} (tenant ${r.tenants.join(', ')}): ${r.ready ? 'ready' : 'NOT ready'}`);
      for (const why of r.reasons) io.out(`  ${why}`);
    }
    return r.ready ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (err instanceof Error && err.name === 'EnsureError') {
      io.err(`pullkeeper ensure: ${err.message}`);
      return EXIT.failed;
    }
    throw err;
  }
}
