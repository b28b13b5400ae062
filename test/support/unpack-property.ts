/**
 * The unpacker's property: whatever a layer tar says, in whatever order,
 * nothing outside the layer directory is created, changed (content, mode,
 * owner, times, xattrs, links) or removed, a refusal is a clear
 * PullkeeperError, and every run ends.
 *
 * Sequences mix dirs, files, symlinks (absolute targets into the test's own
 * tree, relative targets that climb out, loops), hardlinks (inside, outside,
 * through symlinks), whiteouts, opaque markers, devices and `..` names, over a
 * few names so they collide. The layer dir sits four levels below a temp root
 * holding canaries named like most entries (`a`, `b`, `c`; `d` is new), so an
 * escape lands on something watched or in a watched directory; no target leaves
 * that root. Used by src/runner/store/unpack-property.test.ts (fixed seed, a few
 * hundred runs) and scripts/unpack-property.ts (any seed and count).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { PullkeeperError } from '../../src/core/errors.js';
import { unpackLayer } from '../../src/runner/store/unpack.js';
import { buildTar, type FileEntry } from '../harness/registry/images.js';

const run = promisify(execFile);
const NAMES = ['a', 'b', 'c', 'd'] as const;
/** How far up a relative target may climb: from the layer root, exactly to the temp root. */
const MAX_CLIMB = 4;

export interface Sandbox {
  root: string;
  /** The layer dir's parent (root/p1/p2/sandbox); only layer dirs appear in it. */
  sandbox: string;
  /** The parent of the sandbox, holding canaries named like entries. */
  near: string;
}

/** Builds the watched tree: canaries at every level above the layer dir. */
export async function makeSandbox(): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), 'pk-unpack-prop-'));
  const near = join(root, 'p1', 'p2');
  const s = { root, near, sandbox: join(near, 'sandbox') };
  await fillSandbox(s);
  return s;
}

async function fillSandbox(s: Sandbox): Promise<void> {
  await mkdir(s.sandbox, { recursive: true });
  for (const dir of [s.root, join(s.root, 'p1'), s.near]) {
    await mkdir(join(dir, 'a'));
    await writeFile(join(dir, 'a', 'inner'), 'canary inner\n');
    await writeFile(join(dir, 'b'), 'canary b\n', { mode: 0o640 });
    await symlink('a', join(dir, 'c'));
  }
}

/** After a violation: the same tree again at the same paths (targets name them), so shrinking sees a clean one. */
async function rebuildSandbox(s: Sandbox): Promise<void> {
  for (const name of await readdir(s.root)) await rm(join(s.root, name), { recursive: true, force: true });
  await fillSandbox(s);
}

/** Everything under the root except inside layer dirs: type, mode, owner, times, links, content. */
export async function snapshot(s: Sandbox): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    const st = await lstat(p);
    const meta = `${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} m${st.mtimeMs} c${st.ctimeMs}`;
    if (st.isSymbolicLink()) out.set(p, `l ${meta} -> ${await readlink(p)}`);
    else if (st.isFile()) {
      const hash = createHash('sha256')
        .update(await readFile(p))
        .digest('hex');
      out.set(p, `f ${meta} ${hash}`);
    } else if (st.isDirectory()) {
      const names = (await readdir(p)).sort();
      if (p === s.sandbox) {
        // The test makes and removes layer dirs here: only its listing is watched.
        out.set(p, `d sandbox [${names.filter((n) => !n.startsWith('layer-')).join(',')}]`);
        return;
      }
      out.set(p, `d ${meta} [${names.join(',')}]`);
      for (const n of names) await walk(join(p, n));
    } else out.set(p, `other ${meta}`);
  };
  await walk(s.root);
  return out;
}

/** Extended attributes of every watched path (one getfattr for the whole tree, layer dirs left out). */
export async function xattrs(s: Sandbox): Promise<string> {
  const { stdout } = await run('getfattr', ['-R', '-h', '-d', '-m', '-', '--absolute-names', s.root]);
  return stdout
    .split('\n\n')
    .filter((block) => !block.includes(`${s.sandbox}/layer-`))
    .join('\n\n')
    .trim();
}

const name = fc.constantFrom(...NAMES);
/** Short paths are likelier, so names collide often. */
const relPath = fc.oneof(
  { weight: 4, arbitrary: name },
  { weight: 2, arbitrary: fc.tuple(name, name).map((p) => p.join('/')) },
  { weight: 1, arbitrary: fc.tuple(name, name, name).map((p) => p.join('/')) },
);
const dirPath = fc.oneof(fc.constant(''), relPath);
const under = (dir: string, n: string) => (dir === '' ? n : `${dir}/${n}`);

/** Targets that stay inside the test's root whatever directory the link ends up in. */
function linkTarget(s: Sandbox): fc.Arbitrary<string> {
  return fc.oneof(
    // absolute, into the watched tree
    fc.constantFrom(s.root, s.near, s.sandbox, join(s.near, 'a'), join(s.near, 'b'), join(s.root, 'c')),
    // relative, climbing out (at most to the root from the layer root)
    fc
      .tuple(fc.integer({ min: 1, max: MAX_CLIMB }), fc.constantFrom('', ...NAMES))
      .map(([n, rest]) => [...Array.from({ length: n }, () => '..'), ...(rest ? [rest] : [])].join('/')),
    // inside the layer, and loops (a link to itself or to another link)
    relPath,
    fc.constantFrom('.', 'a/../b'),
  );
}

/** One tar entry at a path from `relPath` (markers in a dir from `dirPath`). */
function entry(
  s: Sandbox,
  relPath: fc.Arbitrary<string>,
  dirPath: fc.Arbitrary<string>,
): fc.Arbitrary<FileEntry> {
  return fc.oneof(
    { weight: 6, arbitrary: relPath.map((path): FileEntry => ({ path, type: 'dir', mode: 0o755 })) },
    {
      weight: 6,
      arbitrary: fc
        .tuple(relPath, fc.constantFrom(0o644, 0o755, 0o4755, 0o600))
        .map(([path, mode]): FileEntry => ({ path, content: `escaped ${path}\n`, mode })),
    },
    {
      weight: 6,
      arbitrary: fc
        .tuple(relPath, linkTarget(s))
        .map(([path, linkname]): FileEntry => ({ path, type: 'symlink', linkname })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          relPath,
          fc.oneof(
            { weight: 3, arbitrary: relPath },
            {
              weight: 1,
              arbitrary: fc.constantFrom('../b', '../../../../b', 'c/inner', join(s.near, 'b'), 'a/../b'),
            },
          ),
        )
        .map(([path, linkname]): FileEntry => ({ path, type: 'hardlink', linkname })),
    },
    {
      weight: 6,
      arbitrary: fc
        .tuple(
          dirPath,
          fc.oneof(
            { weight: 8, arbitrary: fc.constantFrom(...NAMES, 'inner') },
            { weight: 1, arbitrary: fc.constantFrom('..', '.') },
          ),
        )
        .map(([dir, n]): FileEntry => ({ path: under(dir, `.wh.${n}`) })),
    },
    { weight: 6, arbitrary: dirPath.map((dir): FileEntry => ({ path: under(dir, '.wh..wh..opq') })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(relPath, fc.constantFrom('char', 'fifo') as fc.Arbitrary<'char' | 'fifo'>)
        .map(([path, type]): FileEntry => ({ path, type, devmajor: 1, devminor: 3 })),
    },
    {
      // names that climb out or are absolute (always refused); rare, or they would hide the rest
      weight: 1,
      arbitrary: fc
        .constantFrom('../b', '../../a/x', 'a/../../b', '/b', `${s.near}/b`)
        .map((path): FileEntry => ({ path, content: 'escaped\n' })),
    },
  );
}

/**
 * Entries about one path X, in any order: X itself or under it, whatever their
 * types (a directory, markers under it, then X as a symlink or a file, ...).
 */
function aboutOnePath(s: Sandbox): fc.Arbitrary<FileEntry[]> {
  return relPath.chain((x) => {
    const here = fc.oneof(
      fc.constant(x),
      name.map((n) => `${x}/${n}`),
    );
    return fc.array(entry(s, here, fc.constant(x)), { minLength: 2, maxLength: 4 });
  });
}

/** A layer: 1-12 entries, single ones and groups about one path, names repeated. */
export function sequences(s: Sandbox): fc.Arbitrary<FileEntry[]> {
  const group = fc.oneof(
    entry(s, relPath, dirPath).map((e) => [e]),
    aboutOnePath(s),
  );
  return fc.array(group, { minLength: 1, maxLength: 4 }).map((gs) => gs.flat().slice(0, 12));
}

export interface PropertyRun {
  seed: number;
  runs: number;
  /** Per sequence; a run over it fails the property ("the run ends"). */
  timeoutMs?: number;
  onRun?: (n: number, outcome: 'unpacked' | 'refused') => void;
}

/**
 * Checks the property over `runs` generated sequences; throws fast-check's
 * report (seed, path, shrunk counterexample). Changes outside are seen per run
 * through ctime (chmod, chown, utimes, setxattr, link and unlink all move it)
 * and content; xattrs are also compared once at the end.
 */
export async function checkUnpackProperty(s: Sandbox, o: PropertyRun): Promise<void> {
  let before = await snapshot(s);
  const xattrsBefore = await xattrs(s);
  let n = 0;
  await fc.assert(
    fc.asyncProperty(sequences(s), async (entries) => {
      const layer = join(s.sandbox, `layer-${n++}`);
      await mkdir(layer);
      try {
        const tar = await buildTar(entries, true);
        const timeoutMs = o.timeoutMs ?? 20_000;
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          unpackLayer(Readable.from([tar]), { dest: layer }).then(
            () => 'unpacked' as const,
            (err: unknown) => {
              if (!(err instanceof PullkeeperError)) {
                throw new Error(`the unpacker failed with an unclear error: ${String(err)}`, { cause: err });
              }
              return 'refused' as const;
            },
          ),
          new Promise<never>((_, fail) => {
            timer = setTimeout(
              () => fail(new Error(`the unpack did not end within ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ]).finally(() => clearTimeout(timer));
        o.onRun?.(n, outcome);
        const after = await snapshot(s);
        const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
          (k) => before.get(k) !== after.get(k),
        );
        if (changed.length > 0) {
          const what = changed.map(
            (k) => `${k}: ${before.get(k) ?? '(absent)'} -> ${after.get(k) ?? '(absent)'}`,
          );
          await rebuildSandbox(s);
          before = await snapshot(s);
          throw new Error(`outside the layer dir: ${what.join('; ')}`);
        }
      } finally {
        await rm(layer, { recursive: true, force: true });
      }
    }),
    { seed: o.seed, numRuns: o.runs },
  );
  const x = await xattrs(s);
  if (x !== xattrsBefore) throw new Error(`seed ${o.seed}: xattrs changed outside the layer dirs:\n${x}`);
}
