/**
 * A failed call to a cluster, told by its real cause: the API server could
 * not be reached (refused, unreachable, timeout, untrusted certificate), it
 * refused the identity (401), or it refused the verb (403, RBAC). Only a 403
 * points at RBAC; nothing else does.
 */
import { PullkeeperError } from '../core/errors.js';
import { type NetFailureKind, netFailure, netFailureText } from '../core/net-failure.js';
import { KubeApiError } from './client.js';

export type ClusterFailureKind = NetFailureKind | 'unauthorized' | 'forbidden' | 'api' | 'access' | 'other';

export interface ClusterFailure {
  kind: ClusterFailureKind;
  /** What happened and what to do, without the cluster's name. */
  text: string;
}

/**
 * @param rbac what to grant when the answer is 403, e.g.
 *   `apply the output of "pullkeeper rbac --config FILE" (ClusterRole pullkeeper-inventory: "list" on nodes)`
 */
export function clusterFailure(err: unknown, rbac: string): ClusterFailure {
  if (err instanceof KubeApiError) {
    const detail = err.apiMessage || err.reason;
    if (err.status === 403) return { kind: 'forbidden', text: `forbidden (403): ${detail}; ${rbac}` };
    if (err.status === 401)
      return {
        kind: 'unauthorized',
        text: `the API server did not accept the identity (401 ${detail}): the credentials or token of the cluster entry are wrong or expired; check them (\`pullkeeper doctor\`)`,
      };
    return { kind: 'api', text: err.message };
  }
  const net = netFailure(err);
  if (net)
    return {
      kind: net.kind,
      text:
        net.kind === 'tls'
          ? `the API server's ${netFailureText(net)}; set the cluster's CA (caData, or the kubeconfig's certificate-authority)`
          : `the API server is ${net.kind === 'refused' ? 'not accepting connections' : 'not reachable from here'}: ${netFailureText(net)}; check the cluster's server address (or kubeconfig) and the network route from this machine (VPC, firewall, proxy)`,
    };
  // Token and kubeconfig failures (ClusterAccessError) already say what to fix.
  if (err instanceof PullkeeperError) return { kind: 'access', text: err.message };
  return { kind: 'other', text: (err as Error)?.message ?? String(err) };
}

/** `cluster NAME: <what happened>`; messages that already name the cluster are kept as they are. */
export function clusterFailureMessage(cluster: string, err: unknown, rbac: string): string {
  const f = clusterFailure(err, rbac);
  return f.kind === 'access' && f.text.startsWith(`cluster ${cluster}:`)
    ? f.text
    : `cluster ${cluster}: ${f.text}`;
}
