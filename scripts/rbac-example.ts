/**
 * Writes infra/kubernetes/rbac.yaml: what `pullkeeper rbac` prints for
 * infra/examples/plain.yaml (`node --import tsx scripts/rbac-example.ts`; a test keeps them equal).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRbac, renderRbacYaml } from '../src/app/rbac.js';
import { parseConfigText } from '../src/config/load.js';

const root = join(import.meta.dirname, '..');
const example = join(root, 'infra', 'examples', 'plain.yaml');
const file = join(root, 'infra', 'kubernetes', 'rbac.yaml');
const header = [
  'EXAMPLE: the RBAC for infra/examples/plain.yaml (tenant "lab", Secret pullkeeper-lab).',
  'Generate your own from your config; Secret names, ServiceAccounts and namespaces differ:',
  '',
  '  pullkeeper rbac --config pullkeeper.yaml [--cluster NAME] | kubectl apply -f -',
  '',
  'docs/rotation.md ("RBAC") explains each permission. The test harness',
  "(test/harness/cluster, createIdentity({rbac: 'pullkeeper'})) applies this file, or the same",
  "generated for a test's own config, to a real kube-apiserver.",
  '',
];
writeFileSync(
  file,
  renderRbacYaml(generateRbac(parseConfigText(readFileSync(example, 'utf8'), example)), header),
);
console.log(`wrote ${file}`);
