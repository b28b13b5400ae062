/**
 * The store's small index of images: `images.json` under the state dir,
 * keyed by reference (`name:tag` or `name@digest`), written atomically
 * (temp + rename) under a lock file so concurrent pulls do not lose entries.
 */
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import { PullkeeperError } from '../../core/errors.js';

const credentialSourceSchema = z.object({
  kind: z.enum(['secret', 'file', 'node', 'serviceaccount']),
  name: z.string(),
  uid: z.string().optional(),
});

/**
 * KEP-2535: which credentials pulled (or were verified for) an image. Absent on
 * a record: a preloaded image (in the store before pullkeeper recorded pulls).
 * Hashes are HMAC-SHA256 under the store's own key (`pull-records.key`), never
 * the secret.
 */
export const pullCredentialsSchema = z.object({
  /** Pulled with node credentials or anonymously: every pod on the node may use it. */
  nodeAccessible: z.boolean(),
  secrets: z.array(z.object({ source: credentialSourceSchema, hash: z.string() })),
});

export const imageRecordSchema = z.object({
  /** Fully qualified name, e.g. `docker.io/library/busybox`. */
  name: z.string(),
  tag: z.string().optional(),
  /** The platform manifest's digest. */
  digest: z.string(),
  /** The index (manifest list) digest when the reference resolved to one. */
  indexDigest: z.string().optional(),
  config: z.string(),
  /** diff_ids, base first. */
  layers: z.array(z.string()),
  /** Sum of the compressed layer sizes (what a pull downloads). */
  size: z.number(),
  pulledAt: z.string(),
  credentials: pullCredentialsSchema.optional(),
});
export type ImageRecord = z.infer<typeof imageRecordSchema>;

const indexSchema = z.object({ version: z.literal(1), images: z.record(z.string(), imageRecordSchema) });
export type ImageIndexFile = z.infer<typeof indexSchema>;

export class ImageIndexError extends PullkeeperError {}

export function recordKey(r: {
  name: string;
  tag?: string | undefined;
  digest?: string | undefined;
}): string {
  return r.tag !== undefined ? `${r.name}:${r.tag}` : `${r.name}@${r.digest}`;
}

export async function readIndex(stateDir: string): Promise<ImageIndexFile> {
  let text: string;
  try {
    text = await readFile(join(stateDir, 'images.json'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, images: {} };
    throw err;
  }
  const r = indexSchema.safeParse(JSON.parse(text));
  if (!r.success) {
    throw new ImageIndexError(
      `${join(stateDir, 'images.json')} is not a pullkeeper image index; move it away (the images will be pulled again)`,
    );
  }
  return r.data;
}

/** Runs `fn` holding `<stateDir>/images.lock` (stale after 60 s), then writes what it returns. */
export async function updateIndex(
  stateDir: string,
  fn: (index: ImageIndexFile) => ImageIndexFile | Promise<ImageIndexFile>,
  signal?: AbortSignal,
): Promise<ImageIndexFile> {
  const lock = join(stateDir, 'images.lock');
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const h = await open(lock, 'wx', 0o600);
      await h.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 60_000) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new ImageIndexError(
          `${lock} is held by another pullkeeper-node process; try again, or remove it if none runs`,
        );
      }
      await sleep(20, undefined, { signal });
    }
  }
  try {
    const next = await fn(await readIndex(stateDir));
    const path = join(stateDir, 'images.json');
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(next, null, 1)}\n`, { mode: 0o600 });
    await rename(tmp, path);
    return next;
  } finally {
    await rm(lock, { force: true });
  }
}
