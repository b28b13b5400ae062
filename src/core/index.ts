/**
 * The pure core of pullkeeper: kubelet's rules for image references, pull
 * policy, docker config files, the credential keyring, container environment
 * and platform selection. No I/O and no clock; every function is a table of cases.
 */
export * from './countdown.js';
export * from './credential-transport.js';
export * from './credentials.js';
export * from './docker-config.js';
export * from './errors.js';
export * from './expiry.js';
export * from './go-json.js';
export * from './image-pull-verification.js';
export * from './image-ref.js';
export * from './keyring.js';
export * from './platform.js';
export * from './pod-credentials.js';
export * from './pod-env.js';
export * from './provider-response.js';
export * from './pull-policy.js';
export * from './rotation-plan.js';
export * from './seccomp-default.js';
export * from './security-context.js';
