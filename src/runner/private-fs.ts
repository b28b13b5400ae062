/**
 * Root-only files and directories for the runner's state (pod data: resolved
 * env with Secret values, bundles, status, events, logs).
 *
 * Modes are set at creation and never wider: a directory is made with 0700
 * and a file opened with 0600 (the umask can only take bits away), then the
 * exact mode is set on the new object (fchmod on the open descriptor), so the
 * result does not depend on the process umask and there is no moment at which
 * another user could open it.
 */
import { chmodSync, constants, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PullkeeperError } from '../core/errors.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** The state dir is not a directory, or could not be made private. */
export class StateDirError extends PullkeeperError {}

/**
 * `mkdir -p` whose every created directory is 0700. Existing directories are
 * left as they are (see {@link prepareStateRoot} for the root).
 */
export async function mkdirPrivate(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  // mkdir returns the first directory it created: fix the exact mode on each one it made.
  for (let d = dir; ; d = dirname(d)) {
    await chmod(d, PRIVATE_DIR_MODE);
    if (d === first || dirname(d) === d) break;
  }
}

/** Synchronous {@link mkdirPrivate}. */
export function mkdirPrivateSync(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    chmodSync(d, PRIVATE_DIR_MODE);
    if (d === first || dirname(d) === d) break;
  }
}

/** Opens (creating 0600 if needed) for appending; the descriptor's file is 0600 whatever the umask. */
export function openPrivateAppendSync(path: string): number {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
    PRIVATE_FILE_MODE,
  );
  fchmodSync(fd, PRIVATE_FILE_MODE);
  return fd;
}

/** Opens with `flags` (plus O_CREAT, O_NOFOLLOW), sets 0600 on the descriptor, writes `data`. */
async function writeOwnerOnly(path: string, flags: number, data: string): Promise<void> {
  const fh = await open(path, flags | constants.O_CREAT | constants.O_NOFOLLOW, PRIVATE_FILE_MODE);
  try {
    await fh.chmod(PRIVATE_FILE_MODE);
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** Writes a new file (it must not exist: temp names are unique) with mode 0600. */
export function writePrivateFile(path: string, data: string): Promise<void> {
  return writeOwnerOnly(path, constants.O_WRONLY | constants.O_EXCL, data);
}

/** Appends to a file, creating it 0600. */
export function appendPrivateFile(path: string, data: string): Promise<void> {
  return writeOwnerOnly(path, constants.O_WRONLY | constants.O_APPEND, data);
}

/** Files and directories of an older state layout that hold pod data, relative to a pod dir. */
const POD_ENTRIES = ['pod.json', 'plan.json', 'status.json', 'events.jsonl', 'supervisor.log', 'logs'];

/**
 * Makes the state root private before the runner writes into it: created 0700
 * if missing; an existing one that is not ours or is open to group/others is
 * tightened (owner, 0700), as are the pod data files an older version left
 * readable under it. Returns one warning per tightening, for the caller to show.
 * Container rootfs mounts are never entered.
 */
export async function prepareStateRoot(root: string): Promise<string[]> {
  const warnings: string[] = [];
  await mkdirPrivate(root);
  const st = await lstat(root);
  if (!st.isDirectory()) {
    throw new StateDirError(
      `the state dir ${root} is not a directory; remove it or pick another --state-dir`,
    );
  }
  const uid = process.getuid?.() ?? st.uid;
  const gid = process.getgid?.() ?? st.gid;
  if (st.uid !== uid) {
    await chown(root, uid, gid);
    warnings.push(`the state dir ${root} was owned by uid ${st.uid}; it now belongs to uid ${uid}`);
  }
  if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) {
    await chmod(root, PRIVATE_DIR_MODE);
    warnings.push(
      `the state dir ${root} had mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it is now 0700 (pod data is root-only)`,
    );
  }
  if (warnings.length > 0) {
    const fixed = await tightenTree(root);
    if (fixed > 0) warnings.push(`${fixed} files and directories under ${root} were made root-only too`);
  }
  return warnings;
}

/** Tightens the known pod-data entries under an existing state root; returns how many changed. */
async function tightenTree(root: string): Promise<number> {
  let fixed = 0;
  const tighten = async (p: string): Promise<void> => {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(p);
    } catch {
      return;
    }
    if (st.isSymbolicLink()) return;
    const want = st.isDirectory() ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
    if ((st.mode & 0o077) !== 0) {
      await chmod(p, want);
      fixed++;
    }
    if (st.isDirectory() && p.endsWith('/logs')) {
      for (const n of await readdir(p).catch(() => [])) await tighten(join(p, n));
    }
  };
  for (const top of ['pods', 'runtime', 'ipam', 'handlers.json']) await tighten(join(root, top));
  for (const key of await readdir(join(root, 'pods')).catch(() => [] as string[])) {
    const podDir = join(root, 'pods', key);
    await tighten(podDir);
    for (const e of POD_ENTRIES) await tighten(join(podDir, e));
    for (const c of await readdir(join(podDir, 'containers')).catch(() => [] as string[])) {
      await tighten(join(podDir, 'containers'));
      await tighten(join(podDir, 'containers', c));
      await tighten(join(podDir, 'containers', c, 'bundle'));
      await tighten(join(podDir, 'containers', c, 'bundle', 'config.json'));
    }
  }
  return fixed;
}
