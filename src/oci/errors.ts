/**
 * Errors of the distribution client. Messages name the registry, repository,
 * reference and (for credentials) the keyring key, never a secret, and say
 * what to do next.
 */
import { PullkeeperError } from '../core/errors.js';

/** The registry refused the credential (or anonymous access): HTTP 401 / 403, or the token server said no. */
export class RegistryAuthError extends PullkeeperError {
  readonly status: number;
  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

/** A credential would have crossed plain http to a host that is neither loopback nor listed as insecure: not sent. */
export class InsecureCredentialTransportError extends PullkeeperError {}

/** The manifest or blob does not exist (HTTP 404). */
export class RegistryNotFoundError extends PullkeeperError {}

/** The registry answered, but not usefully: 5xx after retries, network failure, timeout, malformed data. */
export class RegistryUnavailableError extends PullkeeperError {}

/** A manifest, config or layer media type we do not (or will not) handle, e.g. Docker schema1. */
export class UnsupportedMediaTypeError extends PullkeeperError {}

/** Bytes served for a digest do not hash to it (or exceed the descriptor's size). Nothing of them is kept. */
export class DigestMismatchError extends PullkeeperError {
  readonly expected: string;
  readonly actual: string;
  constructor(what: string, expected: string, actual: string) {
    super(
      `${what}: content does not match its digest (expected ${expected}, got ${actual}); the registry served ` +
        'wrong bytes, nothing was stored. Check the registry storage or the proxy in between, then pull again',
    );
    this.expected = expected;
    this.actual = actual;
  }
}
