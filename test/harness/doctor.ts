/**
 * `harness doctor`: what the harness needs, what is installed, what is
 * missing, and the exact command that fixes each missing piece.
 */
import { checkCloud } from './cloud/index.js';
import { checkCluster } from './cluster/index.js';
import { checkKubelet } from './kubelet/index.js';
import { checkNodes } from './nodes/index.js';
import { run } from './proc.js';
import { checkRegistry } from './registry/index.js';
import type { DoctorCheck } from './types.js';

async function checkBase(): Promise<DoctorCheck[]> {
  const [major = 0] = process.versions.node.split('.').map(Number);
  const checks: DoctorCheck[] = [
    {
      name: 'node',
      ok: major >= 24,
      detail: `Node.js ${process.versions.node} (need 24 or newer)`,
      fix: 'export PATH="$(bash scripts/node24.sh):$PATH"',
    },
    {
      name: 'root',
      ok: process.getuid?.() === 0,
      detail:
        process.getuid?.() === 0 ? 'running as root' : 'not root: network namespaces and sshd need root',
      fix: 'run the tests as root (sudo -E npm test)',
    },
  ];
  const runc = await run('runc', ['--version'], { allowFail: true }).catch(() => undefined);
  checks.push({
    name: 'runc',
    ok: runc?.code === 0,
    detail:
      runc?.code === 0
        ? (runc.stdout.split('\n')[0] ?? 'runc')
        : 'runc not found (OCI runtime for pullkeeper-node)',
    fix: 'apt-get update && apt-get install -y runc',
  });
  const chromium = await run('/usr/bin/chromium', ['--version'], { allowFail: true }).catch(() => undefined);
  checks.push({
    name: 'chromium',
    ok: chromium?.code === 0,
    detail:
      chromium?.code === 0
        ? chromium.stdout.trim()
        : '/usr/bin/chromium not found (the status page test drives headless Chromium)',
    fix: 'apt-get update && apt-get install -y chromium',
  });
  return checks;
}

export async function doctor(): Promise<DoctorCheck[]> {
  const groups = await Promise.all([
    checkBase(),
    checkCluster(),
    checkRegistry(),
    checkNodes(),
    checkCloud(),
    checkKubelet(),
  ]);
  return groups.flat();
}

export function formatDoctor(checks: DoctorCheck[]): string {
  const lines = checks.map((c) =>
    c.ok
      ? `  ok      ${c.name}: ${c.detail}`
      : `  MISSING ${c.name}: ${c.detail}\n          fix: ${c.fix ?? '(see docs)'}`,
  );
  const missing = checks.filter((c) => !c.ok);
  lines.push(
    missing.length === 0
      ? 'harness doctor: everything the tests need is here.'
      : `harness doctor: ${missing.length} missing. Fix them with the commands above, or run \`bash scripts/setup.sh test\` (as root) to install everything.`,
  );
  return lines.join('\n');
}
