/**
 * Where the built launchers (scripts/build.mjs) keep Node's compile
 * cache. pullkeeper-node runs as root, and Node loads V8 code from the cache
 * directory trusting its entries (they are only checksummed) and never checks
 * who owns it; its default, `<os.tmpdir()>/node-compile-cache`, is writable by
 * every user, who could plant code the next root run executes.
 *
 * So the cache lives in `<state>/compile-cache` (`$PULLKEEPER_NODE_STATE` or
 * /run/pullkeeper-node), created 0700, and is used only when that directory
 * and every directory above it can be changed by no one but root or us
 * (owned by root or us, not group/other-writable unless sticky; the directory
 * itself ours and writable by us alone; we create it 0700). Otherwise the
 * cache is off. This module imports only
 * Node built-ins: the launcher loads it before anything else.
 */
import { chmodSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { DEFAULT_STATE_ROOT } from './defaults.js';

/** Why `dir` may not hold a root process's compile cache, or undefined when it may. */
export function unsafeCacheDirReason(dir: string, uid: number): string | undefined {
  let real: string;
  try {
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) return `${dir} is a symbolic link`;
    if (!st.isDirectory()) return `${dir} is not a directory`;
    real = realpathSync(dir);
  } catch (err) {
    return `${dir}: ${(err as Error).message}`;
  }
  const parts = real.split(sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = sep + parts.slice(0, i).join(sep);
    const st = lstatSync(p);
    const last = i === parts.length;
    if (st.uid !== 0 && st.uid !== uid) return `${p} belongs to uid ${st.uid}`;
    if (last) {
      if (st.uid !== uid) return `${p} belongs to uid ${st.uid}, not ${uid}`;
      if ((st.mode & 0o022) !== 0)
        return `${p} is writable by other users (mode ${(st.mode & 0o777).toString(8)})`;
    } else if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      return `${p} is writable by other users`;
    }
  }
  return undefined;
}

/**
 * Creates `dir` (0700) if needed and answers it when it is safe for the
 * compile cache, else undefined. A directory of ours with wider modes is made 0700 first.
 */
export function safeCompileCacheDir(dir: string, uid = process.getuid?.() ?? 0): string | undefined {
  try {
    const first = mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (first !== undefined) {
      for (let d = dir; ; d = dirname(d)) {
        chmodSync(d, 0o700);
        if (d === first || dirname(d) === d) break;
      }
    }
    const st = lstatSync(dir);
    if (st.isDirectory() && st.uid === uid && (st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch {
    return undefined;
  }
  return unsafeCacheDirReason(dir, uid) === undefined ? dir : undefined;
}

/** The launcher's compile cache directory, or undefined for none (`NODE_DISABLE_COMPILE_CACHE` also turns it off). */
export function compileCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  return safeCompileCacheDir(join(env.PULLKEEPER_NODE_STATE || DEFAULT_STATE_ROOT, 'compile-cache'));
}
