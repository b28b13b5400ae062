/**
 * Digest checks on streams: every byte a registry sends is hashed as it
 * passes and compared with the digest we asked for when the stream ends.
 * Nothing is buffered beyond the stream's own high-water mark.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, RegistryUnavailableError, UnsupportedMediaTypeError } from './errors.js';

const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** Throws unless `digest` is a sha256 digest (the only algorithm registries serve in practice). */
export function assertSha256(digest: string, what: string): void {
  if (!SHA256.test(digest)) {
    throw new UnsupportedMediaTypeError(
      `${what}: digest ${JSON.stringify(digest.slice(0, 80))} is not sha256:<64 hex>; only sha256 content is supported`,
    );
  }
}

export function sha256Of(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * A pass-through that hashes what flows and fails at the end (or as soon as
 * more than `size` bytes arrived) when the content is not `digest`.
 * `idleTimeoutMs` fails the stream when no byte arrives for that long.
 */
export class VerifyingStream extends Transform {
  readonly #hash = createHash('sha256');
  readonly #expected: string;
  readonly #size: number | undefined;
  readonly #what: string;
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #idleMs: number;

  constructor(opts: { digest: string; size?: number; what: string; idleTimeoutMs?: number }) {
    super();
    assertSha256(opts.digest, opts.what);
    this.#expected = opts.digest;
    this.#size = opts.size;
    this.#what = opts.what;
    this.#idleMs = opts.idleTimeoutMs ?? 0;
    this.#arm();
  }

  get bytes(): number {
    return this.#bytes;
  }

  #arm(): void {
    if (this.#idleMs <= 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.destroy(
        new RegistryUnavailableError(
          `${this.#what}: no data for ${this.#idleMs} ms; the registry stalled, try again`,
        ),
      );
    }, this.#idleMs);
    this.#timer.unref();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#size !== undefined && this.#bytes > this.#size) {
      cb(new DigestMismatchError(this.#what, this.#expected, `more than the ${this.#size} bytes declared`));
      return;
    }
    this.#hash.update(chunk);
    this.#arm();
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    clearTimeout(this.#timer);
    const actual = `sha256:${this.#hash.digest('hex')}`;
    if (actual !== this.#expected) {
      cb(new DigestMismatchError(this.#what, this.#expected, actual));
      return;
    }
    if (this.#size !== undefined && this.#bytes !== this.#size) {
      cb(
        new DigestMismatchError(this.#what, this.#expected, `${this.#bytes} bytes instead of ${this.#size}`),
      );
      return;
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    clearTimeout(this.#timer);
    cb(err);
  }
}
