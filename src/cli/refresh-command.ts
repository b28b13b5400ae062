/** `pullkeeper refresh` and `pullkeeper ensure`. */
import { parseArgs } from 'node:util';
import { ensureNamespace } from '../app/ensure.js';
import { RefreshError, type RefreshReport, refresh, refreshFailed } from '../app/refresh.js';
import type { CliIO } from './io.js';
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

export async function refreshCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      tenant: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      force: { type: 'boolean' },
    },
  });
  const cfg = (await loadConfigArg(values.config, io, 'refresh'))?.config;
  if (!cfg) return EXIT.usage;
  const tty = !values.json && process.stderr.isTTY;
  let r: RefreshReport;
  try {
    r = await refresh(cfg, {
      tenants: values.tenant,
      dryRun: values['dry-run'],
      force: values.force,
      onProgress: tty ? (d, n, t) => process.stderr.write(`\rtenant ${d}/${n} (${t})…   `) : undefined,
    });
  } catch (err) {
    if (err instanceof RefreshError) {
      io.err(`pullkeeper refresh: ${err.message}`);
      return EXIT.usage;
    }
    throw err;
  }
  if (tty) process.stderr.write('\n');
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
    options: { config: { type: 'string' }, json: { type: 'boolean' }, timeout: { type: 'string' } },
  });
  if (positionals.length !== 1) {
    io.err(
      'pullkeeper ensure: give one namespace, e.g. `pullkeeper ensure team-a-prod --config pullkeeper.yaml`',
    );
    return EXIT.usage;
  }
  const cfg = (await loadConfigArg(values.config, io, 'ensure'))?.config;
  if (!cfg) return EXIT.usage;
  try {
    const r = await ensureNamespace(cfg, positionals[0]!, {
      timeoutMs: values.timeout ? Number(values.timeout) * 1000 : 60_000,
    });
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
