/** `pullkeeper rbac --config FILE [...]`: the least-privilege RBAC for one cluster, as YAML (src/app/rbac.ts). */
import { parseArgs } from 'node:util';
import { generateRbac, parseServiceAccount, type RbacSubject, renderRbacYaml } from '../app/rbac.js';
import { PULLKEEPER } from './help.js';
import type { CliIO } from './io.js';
import { EXIT, loadConfigArg } from './mint-command.js';

export async function rbacCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: PULLKEEPER.rbac.flags });
  if (values['service-account'] && values.user) {
    io.err('pullkeeper rbac: give --service-account or --user, not both');
    return EXIT.usage;
  }
  const loaded = await loadConfigArg(values.config, io, 'rbac');
  if (!loaded) return EXIT.usage;
  const subject: RbacSubject | undefined = values.user
    ? { kind: 'User', name: values.user }
    : values['service-account']
      ? parseServiceAccount(values['service-account'])
      : undefined;
  const out = generateRbac(loaded.config, {
    cluster: values.cluster,
    subject,
    perNamespace: values['per-namespace'],
    guardTenantLabels: values['guard-tenant-labels'],
  });
  if (values.json) io.out(JSON.stringify(out, null, 2));
  else {
    io.out(renderRbacYaml(out).trimEnd());
    for (const n of out.notes) io.err(`note: ${n}`);
  }
  return EXIT.ok;
}
