import { CAPABILITIES } from '../app/status.js';
import {
  buildKeyring,
  defaultPullPolicy,
  parseDockerConfig,
  parseImageRef,
  unionKeyrings,
} from '../core/index.js';
import { type CliIO, processIO } from './io.js';

/**
 * The embedded local default: a node's /var/lib/kubelet/config.json and a
 * pod's two pull secrets, with made-up, clearly fake credentials.
 */
const NODE_CONFIG = JSON.stringify({
  auths: {
    '*.dkr.ecr.us-west-2.amazonaws.com': { username: 'AWS', password: 'demo-not-a-real-token' },
    'https://index.docker.io/v1/': { auth: Buffer.from('demo-hub-user:demo-pat').toString('base64') },
  },
});
const POD_SECRETS = [
  JSON.stringify({ auths: { 'quay.io': { username: 'demo-robot', password: 'demo-robot-token' } } }),
  JSON.stringify({ auths: { 'quay.io/coreos': { username: 'demo-coreos', password: 'demo-coreos-token' } } }),
];
const IMAGES = [
  'nginx',
  'quay.io/coreos/etcd:v3.5.0',
  '123456789012.dkr.ecr.us-west-2.amazonaws.com/app:v1',
  'myreg.azurecr.io/team/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
];

/** Runs what exists of pullkeeper on the embedded example, and says what does not exist yet. */
export function runDemo(io: CliIO = processIO): number {
  const keyring = unionKeyrings(
    buildKeyring(...POD_SECRETS.map((s) => parseDockerConfig(s, 'config.json'))),
    buildKeyring(parseDockerConfig(NODE_CONFIG, 'config.json')),
  );
  io.out('pullkeeper demo: how kubelet resolves pull credentials for a pod (embedded example)');
  io.out('  node file: /var/lib/kubelet/config.json (ECR wildcard, Docker Hub)');
  io.out('  pod imagePullSecrets: [quay.io robot, quay.io/coreos robot]\n');
  for (const image of IMAGES) {
    const creds = keyring.lookup(image);
    io.out(`${image}`);
    io.out(`  name ${parseImageRef(image).name}, default pull policy ${defaultPullPolicy(image)}`);
    io.out(
      creds.length === 0
        ? '  credentials: none match, pulled anonymously'
        : `  credentials, in the order kubelet tries them: ${creds.map((c) => `${c.username}@${c.key}`).join(', ')}`,
    );
  }
  const built = Object.entries(CAPABILITIES)
    .filter(([, on]) => on)
    .map(([name]) => name);
  io.out(`\nThis build can: ${built.join(', ')}.`);
  io.out(
    'The whole product on a local stack (registry, cluster, SSH nodes, the API under serverless offline, ' +
      'pods on runc): `make demo` (README).',
  );
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = runDemo();
}
