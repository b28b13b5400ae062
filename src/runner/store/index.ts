/** The image store's public surface (for the runner and the CLI). */

export type { ImageRecord } from './image-index.js';
export {
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_MAX_IMAGE_INODES,
  DEFAULT_MAX_PAX_HEADER_BYTES,
  ImageTooLargeError,
  LayerTooLargeError,
  LIMIT_FLAGS,
  type StoreLimits,
  TooManyInodesError,
  UnpackLimitError,
} from './limits.js';
export {
  DEFAULT_STATE_DIR,
  hostPlatform,
  ImageNeverPullError,
  ImagePullError,
  ImageStore,
  type ImageStoreOptions,
  type PullProgress,
  type StoredImage,
} from './store.js';
export { PaxHeaderTooLargeError } from './tar-guard.js';
export { checkAcrossLayers, UnsafeLayerError } from './unpack.js';
