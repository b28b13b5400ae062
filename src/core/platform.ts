/**
 * Multi-arch selection as containerd does it: normalize platforms, build the
 * host's preference vector (`platforms.Only`), keep the index entries that
 * match, stable-sort them by preference and take the first.
 *
 * Sources: containerd/platforms v1.0.0-rc.2 (the version containerd 2.2
 * ships) `database.go` (normalization), `compare.go`
 * (preference vector, ordering), `platforms.go` (matcher); containerd
 * `core/images/image.go` `Manifest` (index handling, error text).
 *
 * Not modelled: Windows OS-version matching and `os.features` tie-breaks,
 * which only matter on Windows hosts.
 */
import { PullkeeperError } from './errors.js';

/** An OCI platform. An empty or absent `variant` means "none". */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** No entry of an image index suits the host. */
export class NoMatchingPlatformError extends PullkeeperError {
  readonly digest: string | undefined;
  readonly host: Platform;

  constructor(digest: string | undefined, host: Platform) {
    const where = digest ? ` ${digest}` : '';
    super(`no match for platform in manifest${where}: not found`);
    this.digest = digest;
    this.host = host;
  }
}

function withVariant(os: string, architecture: string, variant: string): Platform {
  return variant === '' ? { os, architecture } : { os, architecture, variant };
}

function normalizeOS(os: string): string {
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

function normalizeArch(arch: string, variant: string): [architecture: string, variant: string] {
  const a = arch.toLowerCase();
  const v = variant.toLowerCase();
  switch (a) {
    case 'i386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', v === 'v1' ? '' : v];
    case 'aarch64':
    case 'arm64':
      if (v === '8' || v === 'v8' || v === 'v8.0') return ['arm64', ''];
      if (v === '9' || v === '9.0' || v === 'v9.0') return ['arm64', 'v9'];
      return ['arm64', v];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      if (v === '' || v === '7') return ['arm', 'v7'];
      if (v === '5' || v === '6' || v === '8') return ['arm', `v${v}`];
      return ['arm', v];
    default:
      return [a, v];
  }
}

/**
 * Canonical form of a platform (containerd `Normalize`): OS and architecture
 * lowercased, aliases resolved, default variants dropped (amd64 v1, arm64 v8)
 * or filled in (arm v7).
 *
 *   normalizePlatform({ os: 'Linux', architecture: 'x86_64' })  // { os: 'linux', architecture: 'amd64' }
 *   normalizePlatform({ os: 'linux', architecture: 'aarch64', variant: 'v8' })
 *   // { os: 'linux', architecture: 'arm64' }
 *   normalizePlatform({ os: 'linux', architecture: 'armhf' })   // { os: 'linux', architecture: 'arm', variant: 'v7' }
 *   normalizePlatform({ os: 'macos', architecture: 'arm64' })   // { os: 'darwin', architecture: 'arm64' }
 *
 * containerd replaces an empty OS with the OS it runs on; being pure, this
 * function uses `defaultOS` for that (and keeps `''` without it).
 */
export function normalizePlatform(p: Platform, defaultOS = ''): Platform {
  const os = p.os === '' ? normalizeOS(defaultOS) : normalizeOS(p.os);
  const [architecture, variant] = normalizeArch(p.architecture, p.variant ?? '');
  return withVariant(os, architecture, variant);
}

/** Largest variant number we expand fallbacks for (upstream has no bound). */
const MAX_VARIANT_NUMBER = 1000;

/** Go `strconv.Atoi`, bounded; undefined where it fails. */
function atoi(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number.parseInt(s, 10);
  return Math.abs(n) > MAX_VARIANT_NUMBER ? undefined : n;
}

/** Go `strconv.Atoi(strings.TrimPrefix(s, "v"))`. */
function versionNumber(s: string): number | undefined {
  return atoi(s.startsWith('v') ? s.slice(1) : s);
}

/**
 * containerd/platforms v1.0.0-rc.2 (as containerd 2.2 ships it) `arm64variantToVersion`:
 * for each arm64 variant, the [major, highest minor] pairs it runs, best
 * first. v9.x also runs v8.(x+5), capped at v8.9.
 */
type VersionPairs = ReadonlyArray<readonly [major: number, highestMinor: number]>;
const ARM64_VARIANT_VERSIONS: ReadonlyMap<string, VersionPairs> = new Map<string, VersionPairs>([
  ['v8', [[8, 0]]],
  ['v8.0', [[8, 0]]],
  ['v8.1', [[8, 1]]],
  ['v8.2', [[8, 2]]],
  ['v8.3', [[8, 3]]],
  ['v8.4', [[8, 4]]],
  ['v8.5', [[8, 5]]],
  ['v8.6', [[8, 6]]],
  ['v8.7', [[8, 7]]],
  ['v8.8', [[8, 8]]],
  ['v8.9', [[8, 9]]],
  [
    'v9',
    [
      [9, 0],
      [8, 5],
    ],
  ],
  [
    'v9.0',
    [
      [9, 0],
      [8, 5],
    ],
  ],
  [
    'v9.1',
    [
      [9, 1],
      [8, 6],
    ],
  ],
  [
    'v9.2',
    [
      [9, 2],
      [8, 7],
    ],
  ],
  [
    'v9.3',
    [
      [9, 3],
      [8, 8],
    ],
  ],
  [
    'v9.4',
    [
      [9, 4],
      [8, 9],
    ],
  ],
  [
    'v9.5',
    [
      [9, 5],
      [8, 9],
    ],
  ],
  [
    'v9.6',
    [
      [9, 6],
      [8, 9],
    ],
  ],
  [
    'v9.7',
    [
      [9, 7],
      [8, 9],
    ],
  ],
]);

/** containerd `platformVector`; entries are normalized when compared, not here. */
function preferenceVector(p: Platform): Platform[] {
  const { os, architecture } = p;
  const variant = p.variant ?? '';
  const vector: Platform[] = [withVariant(os, architecture, variant)];
  switch (architecture) {
    case 'amd64': {
      const level = versionNumber(variant);
      if (level !== undefined && level > 1) {
        for (let l = level - 1; l >= 1; l--) vector.push({ os, architecture, variant: `v${l}` });
      }
      vector.push({ os, architecture: '386' });
      break;
    }
    case 'arm': {
      const level = versionNumber(variant);
      if (level !== undefined && level > 5) {
        for (let l = level - 1; l >= 5; l--) vector.push({ os, architecture, variant: `v${l}` });
      }
      break;
    }
    case 'arm64': {
      // rc.2: the variant is looked up in a table; one outside it (v10, v8.10,
      // v8.01, v1) gets an empty vector and so matches nothing, not even itself.
      const versions = ARM64_VARIANT_VERSIONS.get(variant === '' ? 'v8' : variant);
      vector.length = 0;
      if (versions === undefined) break;
      for (const [major, topMinor] of versions) {
        for (let minor = topMinor; minor >= 0; minor--) {
          vector.push({ os, architecture, variant: minor === 0 ? `v${major}` : `v${major}.${minor}` });
        }
      }
      // Every arm64 (all table variants start with v8 or v9) also runs 32-bit arm, from arm/v8 down.
      vector.push(...preferenceVector({ os, architecture: 'arm', variant: 'v8' }));
      break;
    }
  }
  return vector;
}

function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/**
 * The platforms a host runs, most preferred first (containerd
 * `platforms.Only`): the normalized host, then its fallbacks.
 *
 *   platformPreference({ os: 'linux', architecture: 'amd64', variant: 'v3' })
 *   // linux/amd64/v3, linux/amd64/v2, linux/amd64, linux/386
 *   platformPreference({ os: 'linux', architecture: 'arm64' })
 *   // linux/arm64, linux/arm/v8, linux/arm/v7, linux/arm/v6, linux/arm/v5
 *   platformPreference({ os: 'linux', architecture: 'arm', variant: 'v7' })
 *   // linux/arm/v7, linux/arm/v6, linux/arm/v5
 */
export function platformPreference(host: Platform): Platform[] {
  const normalizedHost = normalizePlatform(host);
  return preferenceVector(normalizedHost).map((p) => normalizePlatform(p, normalizedHost.os));
}

/**
 * Where `candidate` ranks in the host's preference (0 = the host itself), or
 * -1 when the host cannot run it. A candidate with an empty OS takes the
 * host's OS, as containerd running on that host would.
 */
export function platformRank(host: Platform, candidate: Platform): number {
  const preference = platformPreference(host);
  return rankIn(preference, normalizePlatform(candidate, preference[0]?.os ?? ''));
}

function rankIn(preference: readonly Platform[], normalizedCandidate: Platform): number {
  return preference.findIndex((p) => samePlatform(p, normalizedCandidate));
}

/**
 * Whether the host can run `candidate`. Also the check for an index entry
 * without a platform, against its image config's platform.
 *
 *   platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: '386' })  // true
 *   platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'unknown', architecture: 'unknown' })  // false
 */
export function platformMatches(host: Platform, candidate: Platform): boolean {
  return platformRank(host, candidate) >= 0;
}

/**
 * The entries of an image index the host can use, best first: entries whose
 * platform matches, stable-sorted by preference, then entries without a
 * platform (their config decides; see `platformMatches`), in index order.
 */
export function matchingManifests<T extends { platform?: Platform | null }>(
  manifests: readonly T[],
  host: Platform,
): T[] {
  const preference = platformPreference(host);
  const hostOS = preference[0]?.os ?? '';
  const ranked: Array<{ entry: T; rank: number }> = [];
  for (const entry of manifests) {
    const platform = entry.platform;
    if (platform === undefined || platform === null) {
      ranked.push({ entry, rank: Number.POSITIVE_INFINITY });
      continue;
    }
    const rank = rankIn(preference, normalizePlatform(platform, hostOS));
    if (rank >= 0) ranked.push({ entry, rank });
  }
  // Array.prototype.sort is stable, like sort.SliceStable.
  ranked.sort((a, b) => (a.rank === b.rank ? 0 : a.rank < b.rank ? -1 : 1));
  return ranked.map((r) => r.entry);
}

/**
 * Picks the manifest of an image index for the host, as containerd does.
 *
 *   selectPlatform(
 *     { digest: 'sha256:…', manifests: [
 *       { platform: { os: 'linux', architecture: 'arm64' } },
 *       { platform: { os: 'linux', architecture: 'amd64' } } ] },
 *     { os: 'linux', architecture: 'amd64' })
 *   // the linux/amd64 entry
 *
 * An entry without a platform is returned only when nothing else matches;
 * the caller must then check its config's platform with `platformMatches`.
 * Attestation entries (`unknown/unknown`) never match.
 *
 * @throws NoMatchingPlatformError `no match for platform in manifest <digest>: not found`
 */
export function selectPlatform<T extends { platform?: Platform | null }>(
  index: { manifests: readonly T[]; digest?: string },
  host: Platform,
): T {
  const [best] = matchingManifests(index.manifests, host);
  if (best === undefined) throw new NoMatchingPlatformError(index.digest, host);
  return best;
}

/**
 * `os/architecture[/variant]`, as containerd formats platforms.
 *
 *   formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })  // 'linux/arm/v7'
 *   formatPlatform({ os: '', architecture: 'amd64' })                    // 'unknown'
 */
export function formatPlatform(p: Platform): string {
  if (p.os === '') return 'unknown';
  return [p.os, p.architecture, p.variant ?? ''].filter((s) => s !== '').join('/');
}
