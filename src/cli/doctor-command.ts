/** `pullkeeper doctor --config FILE [--json]`: every piece a user can get wrong, with how to fix it. */
import { parseArgs } from 'node:util';
import { ALL_CHECKS, runDoctor } from '../app/doctor.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { PULLKEEPER } from './help.js';
import { type CliIO, progressOf } from './io.js';
import { EXIT } from './mint-command.js';

export async function doctorCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: PULLKEEPER.doctor.flags });
  const file = values.config ?? process.env.PULLKEEPER_CONFIG;
  if (!file) {
    io.err(
      'pullkeeper doctor: give --config FILE (or set PULLKEEPER_CONFIG), e.g. `pullkeeper doctor --config pullkeeper.yaml`; `pullkeeper help doctor` has examples',
    );
    return EXIT.usage;
  }
  let cfg: Awaited<ReturnType<typeof loadConfigFile>>;
  try {
    cfg = await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      if (values.json)
        io.out(
          JSON.stringify(
            {
              ok: false,
              findings: err.issues.map((i) => ({
                area: 'config',
                subject: i.path,
                ok: false,
                detail: i.message,
              })),
            },
            null,
            2,
          ),
        );
      else io.err(err.message);
      return EXIT.failed;
    }
    throw err;
  }
  const progress = progressOf(io, values.json);
  progress?.(`checking ${file}…`);
  const findings = await runDoctor(cfg, ALL_CHECKS, AbortSignal.timeout(120_000), (f, done, total) => {
    const failed = f.filter((x) => !x.ok).length;
    progress?.(
      `[${done}/${total}] ${f[0]?.area ?? 'check'}: ${f.length - failed} ok${failed ? `, ${failed} FAIL` : ''}`,
    );
  });
  progress?.('');
  const ok = findings.every((f) => f.ok);
  if (values.json) io.out(JSON.stringify({ ok, findings }, null, 2));
  else {
    for (const f of findings) {
      io.out(`${f.warning ? 'WARN' : f.ok ? 'ok  ' : 'FAIL'} ${f.area.padEnd(8)} ${f.subject}: ${f.detail}`);
      if ((!f.ok || f.warning) && f.fix) io.out(`     fix: ${f.fix}`);
    }
    io.out(ok ? 'no problems found' : `${findings.filter((f) => !f.ok).length} problem(s)`);
  }
  return ok ? EXIT.ok : EXIT.failed;
}
