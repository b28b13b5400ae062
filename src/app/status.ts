import { VERSION } from '../version.js';

/**
 * What this build can do today. Callers (HTTP API, CLI, scheduled function)
 * report it instead of pretending: capabilities arrive issue by issue.
 */
export const CAPABILITIES = {
  core: true,
  mintCredentials: true,
  writePullSecrets: true,
  pushNodeConfig: true,
  nodeRunner: true,
} as const;

export type Capability = keyof typeof CAPABILITIES;

export interface RefreshReport {
  status: 'not-implemented';
  version: string;
  message: string;
  changed: number;
}

/**
 * The refresh use case. Minting, secret writing and node push are not built
 * yet, so it changes nothing and says so; it never claims success.
 */
export function refreshNotYetAvailable(): RefreshReport {
  return {
    status: 'not-implemented',
    version: VERSION,
    changed: 0,
    message:
      'refresh is not available in this build: credential minting, pull-secret writing and node push ' +
      'are not implemented yet. Nothing was read or changed.',
  };
}
