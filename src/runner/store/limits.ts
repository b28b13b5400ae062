/**
 * The store's bounds on what one image may unpack to, enforced while the
 * layers stream (docs/node-runner.md, "Unpack safety"). Each error names the
 * limit and the flag that raises it.
 */
import { PullkeeperError } from '../../core/errors.js';

export const DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 ** 3;
/** Tar entries plus implicit directories over all layers: an upper bound on the inodes an image creates. */
export const DEFAULT_MAX_IMAGE_INODES = 1_000_000;
/** Go's archive/tar (containerd, docker) refuses PAX and GNU long headers over 1 MiB (`maxSpecialFileSize`). */
export const DEFAULT_MAX_PAX_HEADER_BYTES = 1024 * 1024;

export interface StoreLimits {
  /** Uncompressed file bytes of the whole image (all its layers, shared ones included). */
  maxImageBytes: number;
  /** Uncompressed file bytes of one layer (default: maxImageBytes). */
  maxLayerBytes: number;
  /** Tar entries plus implicit directories over all layers. */
  maxImageInodes: number;
  /** Size of one PAX or GNU long-name header. */
  maxPaxHeaderBytes: number;
}

/** The flag of `pullkeeper-node pull` that raises each bound. */
export const LIMIT_FLAGS: Record<keyof StoreLimits, string> = {
  maxImageBytes: '--max-image-bytes',
  maxLayerBytes: '--max-layer-bytes',
  maxImageInodes: '--max-image-inodes',
  maxPaxHeaderBytes: '--max-pax-header-bytes',
};

/** How a message says to raise a bound: the pull flag, or the node config key for pods. */
export function raiseHint(key: keyof StoreLimits): string {
  return `raise ${LIMIT_FLAGS[key]} (pullkeeper-node pull) or imageLimits.${key} (node config)`;
}

export function storeLimits(opts: Partial<StoreLimits> = {}): StoreLimits {
  const maxImageBytes = opts.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  return {
    maxImageBytes,
    maxLayerBytes: opts.maxLayerBytes ?? maxImageBytes,
    maxImageInodes: opts.maxImageInodes ?? DEFAULT_MAX_IMAGE_INODES,
    maxPaxHeaderBytes: opts.maxPaxHeaderBytes ?? DEFAULT_MAX_PAX_HEADER_BYTES,
  };
}

/** An image or layer went over one of the store's bounds; nothing of it is kept. */
export class UnpackLimitError extends PullkeeperError {
  /** The flag that raises the bound (e.g. `--max-image-bytes`). */
  readonly limit: string;
  readonly max: number;
  constructor(message: string, o: { limit: string; max: number; cause?: unknown }) {
    super(message, o.cause !== undefined ? { cause: o.cause } : undefined);
    this.limit = o.limit;
    this.max = o.max;
  }
}

/** One layer unpacks to more bytes than allowed. */
export class LayerTooLargeError extends UnpackLimitError {}
/** The image's layers together unpack to more bytes than allowed. */
export class ImageTooLargeError extends UnpackLimitError {}
/** The image's layers together create more entries than allowed. */
export class TooManyInodesError extends UnpackLimitError {}

const at = (name: string) => JSON.stringify(name.slice(0, 200));

/**
 * What the layers of one image have used so far, shared by the layers that
 * unpack concurrently; layers already in the store count from the start.
 */
export class ImageBudget {
  readonly limits: StoreLimits;
  bytes: number;
  inodes: number;

  constructor(limits: StoreLimits, used: { bytes: number; inodes: number } = { bytes: 0, inodes: 0 }) {
    this.limits = limits;
    this.bytes = used.bytes;
    this.inodes = used.inodes;
  }

  /** Counts `bytes` and `inodes` about to be written for entry `name`; throws past a bound (before the write). */
  take(bytes: number, inodes: number, name: string): void {
    this.bytes += bytes;
    this.inodes += inodes;
    const l = this.limits;
    if (this.bytes > l.maxImageBytes) {
      throw new ImageTooLargeError(
        `the image unpacks to more than ${l.maxImageBytes} bytes (at ${at(name)}, with the layers already ` +
          `in the store); ${raiseHint('maxImageBytes')} if it is legitimately this large`,
        { limit: LIMIT_FLAGS.maxImageBytes, max: l.maxImageBytes },
      );
    }
    if (this.inodes > l.maxImageInodes) {
      throw new TooManyInodesError(
        `the image creates more than ${l.maxImageInodes} files, directories and links (at ${at(name)}); ` +
          `${raiseHint('maxImageInodes')} if it is legitimately this large`,
        { limit: LIMIT_FLAGS.maxImageInodes, max: l.maxImageInodes },
      );
    }
  }

  /** Per-layer byte check (the layer's own running total). */
  checkLayer(layerBytes: number, name: string): void {
    const max = this.limits.maxLayerBytes;
    if (layerBytes > max) {
      throw new LayerTooLargeError(
        `the layer unpacks to more than ${max} bytes (at ${at(name)}); ${raiseHint('maxLayerBytes')} ` +
          'if it is legitimately this large',
        { limit: LIMIT_FLAGS.maxLayerBytes, max },
      );
    }
  }
}
