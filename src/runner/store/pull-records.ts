/**
 * KEP-2535 pull records: the store remembers which credential pulled each
 * image as a keyed hash, never the secret. The key is 32 random bytes in
 * `<state>/pull-records.key` (0600, made on first use), so a copy of
 * `images.json` alone cannot be used to test guessed passwords offline; both
 * files are root-only anyway. Losing the key only costs one registry check
 * per pod credential (the hashes stop matching, the check records them again).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildKeyring,
  type CredentialSource,
  type KeyringCredential,
  type RecordedCredential,
  type SourcedDockerConfig,
} from '../../core/index.js';

export const PULL_RECORDS_KEY_FILE = 'pull-records.key';
const KEY_BYTES = 32;

/** The store's hash key: read, or made (0600) when missing or malformed; a wider mode is tightened. */
export async function loadRecordKey(stateDir: string): Promise<Buffer> {
  const path = join(stateDir, PULL_RECORDS_KEY_FILE);
  const existing = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing && existing.length === KEY_BYTES) {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) await chmod(path, 0o600);
    return existing;
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, key, { mode: 0o600, flag: 'wx' });
  await rename(tmp, path);
  // Two processes may race to make it: whichever rename came last wins, and both use that one.
  const final = await readFile(path);
  return final.length === KEY_BYTES ? final : key;
}

/** HMAC-SHA256 of one credential (user name and password) under the store's key. */
export function credentialHash(key: Buffer, cred: Pick<KeyringCredential, 'username' | 'password'>): string {
  return `hmac-sha256:${createHmac('sha256', key)
    .update(JSON.stringify([cred.username, cred.password]))
    .digest('hex')}`;
}

/**
 * Gives every pod pull secret a source (the caller's, else its position:
 * `imagePullSecrets[1]`) so each of its credentials can be recorded and named.
 */
export function sourcedPodSecrets(podSecrets: readonly SourcedDockerConfig[]): SourcedDockerConfig[] {
  return podSecrets.map((s, i) =>
    s.source
      ? s
      : { ...s, source: { kind: 'secret', name: `imagePullSecrets[${i}]` } satisfies CredentialSource },
  );
}

/** The pod's own pull Secret credentials for an image, in keyring order, hashed for the record check. */
export function podCredentialHashes(
  key: Buffer,
  image: string,
  podSecrets: readonly SourcedDockerConfig[],
): RecordedCredential[] {
  return buildKeyring(...sourcedPodSecrets(podSecrets))
    .lookup(image)
    .map((c) => ({ source: c.source!, hash: credentialHash(key, c) }));
}
