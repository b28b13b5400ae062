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
  podCredentialBroker: true,
} as const;

export type Capability = keyof typeof CAPABILITIES;
