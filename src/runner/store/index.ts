/** The image store's public surface (for the runner and the CLI). */

export type { ImageRecord } from './image-index.js';
export {
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_STATE_DIR,
  hostPlatform,
  ImageNeverPullError,
  ImagePullError,
  ImageStore,
  type ImageStoreOptions,
  type PullProgress,
  type StoredImage,
} from './store.js';
export { checkAcrossLayers, LayerTooLargeError, UnsafeLayerError } from './unpack.js';
