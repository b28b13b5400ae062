/**
 * Base class of every error pullkeeper throws on purpose. Subclasses name the
 * failure; the message says what went wrong and what to do next; `cause`
 * carries the underlying error. Messages never include secret values.
 */
export class PullkeeperError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
