/**
 * Docker image references, parsed the way the kubelet parses them.
 *
 * The rules are those of distribution/reference `ParseNormalizedNamed` (the
 * grammar, the Docker Hub domain split, the error texts) with go-digest's
 * digest validation, plus the two kubelet helpers built on top of it:
 * `ParseImageName` (a missing tag means `latest`, unless a digest is given)
 * and `applyDefaultImageTag` (the string the kubelet hands to the CRI).
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path
 *   domain    := host [ ":" port ]          host: DNS-ish name, IPv4, or [IPv6]
 *   path      := component { "/" component } component: [a-z0-9]+ joined by . _ __ or -+
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := algorithm ":" hex          sha256 (64), sha384 (96), sha512 (128)
 */
import { PullkeeperError } from './errors.js';

/** The tag a reference without tag or digest stands for. */
export const DEFAULT_IMAGE_TAG = 'latest';

/** The domain that unqualified names belong to. */
export const DOCKER_HUB_DOMAIN = 'docker.io';

/** Upper bound on the path (the name without the domain), in characters. */
export const MAX_REPOSITORY_PATH_LENGTH = 255;

/**
 * A parsed image reference.
 *
 * `name` is fully qualified except in one upstream corner case: when the
 * first element was taken as a domain (it holds `.` or `:`) but is not a valid
 * host while the whole name is a valid path (`a_b.c/d`), `domain` is `''` and
 * `name` equals `path`, exactly as distribution/reference returns it.
 */
export interface ImageRef {
  /** `docker.io/library/nginx`, `myreg.azurecr.io/a/b`, `[::1]:5000/foo` */
  name: string;
  /** `docker.io`, `localhost:5000`, `MyHost` (domains keep their case) */
  domain: string;
  /** `library/nginx`, `a/b` */
  path: string;
  /** Present only when written; never defaulted here (see `imageTagOrDefault`). */
  tag?: string;
  /** `sha256:<64 hex>` etc., present only when written. */
  digest?: string;
}

/**
 * The reference could not be parsed. `message` is upstream's text, so it can
 * go into kubelet-style events unchanged; `reference` is the input.
 */
export class InvalidImageRefError extends PullkeeperError {
  readonly reference: string;

  constructor(reference: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reference = reference;
  }
}

// --- grammar (regexp.go) ---------------------------------------------------

const ALPHANUMERIC = '[a-z0-9]+';
// One period, one or two underscores, or any number of dashes.
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*`;
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const DOMAIN_NAME_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_NAME_COMPONENT}(?:\\.${DOMAIN_NAME_COMPONENT})*`;
// Compressed or full IPv6 in brackets; zone ids (`%eth0`) and IPv4-mapped forms are excluded.
const IPV6_ADDRESS = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_AND_PORT = `(?:${DOMAIN_NAME}|${IPV6_ADDRESS})(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}';
const NAME = `(?:${DOMAIN_AND_PORT}/)?${REMOTE_NAME}`;

const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_NAME_RE = new RegExp(`^(?:(${DOMAIN_AND_PORT})/)?(${REMOTE_NAME})$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;

// --- digests (go-digest) -----------------------------------------------------

// Algorithms a kubelet binary has registered (crypto/sha256 and crypto/sha512,
// which also provides sha384), with the hex length of their digests.
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };
const GO_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const LOWER_HEX_RE = /^[a-f0-9]+$/;

/** go-digest `Digest.Validate`: returns upstream's error text, or undefined when valid. */
function digestError(digest: string): string | undefined {
  const sep = digest.indexOf(':');
  if (sep <= 0 || sep + 1 === digest.length) return 'invalid checksum digest format';
  const algorithm = digest.slice(0, sep);
  const encoded = digest.slice(sep + 1);
  const hexLength = Object.hasOwn(DIGEST_HEX_LENGTH, algorithm) ? DIGEST_HEX_LENGTH[algorithm] : undefined;
  if (hexLength === undefined) {
    return GO_DIGEST_RE.test(digest) ? 'unsupported digest algorithm' : 'invalid checksum digest format';
  }
  if (encoded.length !== hexLength) return 'invalid checksum digest length';
  if (!LOWER_HEX_RE.test(encoded)) return 'invalid checksum digest format';
  return undefined;
}

// --- parsing -----------------------------------------------------------------

/**
 * splitDockerDomain: decide whether the first `/` element is a registry host.
 *
 *   splitDockerDomain('ubuntu')             // ['docker.io', 'library/ubuntu']
 *   splitDockerDomain('foo/bar')            // ['docker.io', 'foo/bar']
 *   splitDockerDomain('localhost/foo')      // ['localhost', 'foo']
 *   splitDockerDomain('index.docker.io/x')  // ['docker.io', 'library/x']
 *   splitDockerDomain('MyHost/foo')         // ['MyHost', 'foo']
 */
function splitDockerDomain(name: string): [domain: string, remainder: string] {
  const slash = name.indexOf('/');
  if (slash < 0) return [DOCKER_HUB_DOMAIN, `library/${name}`];
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (first === 'localhost') {
    [domain, remainder] = [first, rest];
  } else if (first === 'index.docker.io') {
    [domain, remainder] = [DOCKER_HUB_DOMAIN, rest];
  } else if (first.includes('.') || first.includes(':') || first.toLowerCase() !== first) {
    [domain, remainder] = [first, rest];
  } else {
    [domain, remainder] = [DOCKER_HUB_DOMAIN, name];
  }
  if (domain === DOCKER_HUB_DOMAIN && !remainder.includes('/')) remainder = `library/${remainder}`;
  return [domain, remainder];
}

/** distribution/reference `Parse` on an already domain-qualified string. */
function parseQualified(input: string, s: string): ImageRef {
  const m = REFERENCE_RE.exec(s);
  if (m === null) {
    const lower = s.toLowerCase();
    if (lower !== s && REFERENCE_RE.test(lower)) {
      throw new InvalidImageRefError(input, 'repository name must be lowercase');
    }
    throw new InvalidImageRefError(input, 'invalid reference format');
  }
  const nameMatch = ANCHORED_NAME_RE.exec(m[1] ?? '');
  const domain = nameMatch?.[1] ?? '';
  const path = nameMatch?.[2] ?? m[1] ?? '';
  if (path.length > MAX_REPOSITORY_PATH_LENGTH) {
    throw new InvalidImageRefError(
      input,
      `repository name must not be more than ${MAX_REPOSITORY_PATH_LENGTH} characters`,
    );
  }
  const ref: ImageRef = { name: domain === '' ? path : `${domain}/${path}`, domain, path };
  const tag = m[2];
  if (tag !== undefined) ref.tag = tag;
  const digest = m[3];
  if (digest !== undefined) {
    const problem = digestError(digest);
    if (problem !== undefined) throw new InvalidImageRefError(input, problem);
    ref.digest = digest;
  }
  return ref;
}

/**
 * Parses an image reference as distribution/reference `ParseNormalizedNamed`
 * does: familiar Docker Hub names gain `docker.io` and `library/`, everything
 * else keeps its domain. The tag is left absent when not written.
 *
 *   parseImageRef('nginx')
 *   // { name: 'docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx' }
 *   parseImageRef('myregistry:5000/foo:v1')
 *   // { name: 'myregistry:5000/foo', domain: 'myregistry:5000', path: 'foo', tag: 'v1' }
 *   parseImageRef('nginx@sha256:<64 hex>')   // { ..., digest: 'sha256:<64 hex>' }
 *   parseImageRef('Nginx')
 *   // throws InvalidImageRefError:
 *   //   invalid reference format: repository name (library/Nginx) must be lowercase
 *
 * @throws InvalidImageRefError with upstream's message.
 */
export function parseImageRef(ref: string): ImageRef {
  if (IDENTIFIER_RE.test(ref)) {
    throw new InvalidImageRefError(
      ref,
      `invalid repository name (${ref}), cannot specify 64-byte hexadecimal strings`,
    );
  }
  const [domain, remainder] = splitDockerDomain(ref);
  const colon = remainder.indexOf(':');
  const remote = colon < 0 ? remainder : remainder.slice(0, colon);
  if (remote.toLowerCase() !== remote) {
    throw new InvalidImageRefError(
      ref,
      `invalid reference format: repository name (${remote}) must be lowercase`,
    );
  }
  return parseQualified(ref, `${domain}/${remainder}`);
}

/**
 * The tag kubelet's `ParseImageName` reports: the written tag, else `latest`
 * when there is no digest either, else `''`.
 *
 *   imageTagOrDefault(parseImageRef('nginx'))               // 'latest'
 *   imageTagOrDefault(parseImageRef('nginx:1.25'))          // '1.25'
 *   imageTagOrDefault(parseImageRef('nginx@sha256:<hex>'))  // ''
 */
export function imageTagOrDefault(ref: ImageRef): string {
  if (ref.tag !== undefined) return ref.tag;
  return ref.digest === undefined ? DEFAULT_IMAGE_TAG : '';
}

/**
 * The canonical string of a parsed reference: `name[:tag][@digest]`.
 *
 *   formatImageRef(parseImageRef('busybox:1.36'))  // 'docker.io/library/busybox:1.36'
 */
export function formatImageRef(ref: ImageRef): string {
  let out = ref.name;
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

/**
 * The image string the kubelet sends to the CRI (`applyDefaultImageTag`):
 * `:latest` is appended when the reference has neither tag nor digest. The
 * string is otherwise untouched, in particular not domain-qualified.
 *
 *   applyDefaultImageTag('busybox')                // 'busybox:latest'
 *   applyDefaultImageTag('busybox:1.36')           // 'busybox:1.36'
 *   applyDefaultImageTag('busybox@sha256:<hex>')   // unchanged
 *   applyDefaultImageTag('Busybox')
 *   // throws InvalidImageRefError: couldn't parse image name "Busybox": invalid
 *   //   reference format: repository name (library/Busybox) must be lowercase
 *
 * The kubelet turns that error into the event `InspectFailed`,
 * `Failed to apply default image tag "<img>": <message>`, and the waiting
 * reason `InvalidImageName`.
 */
export function applyDefaultImageTag(image: string): string {
  let ref: ImageRef;
  try {
    ref = parseImageRef(image);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new InvalidImageRefError(image, `couldn't parse image name ${goQuote(image)}: ${detail}`, {
      cause: err,
    });
  }
  if (ref.tag === undefined && ref.digest === undefined) return `${image}:${DEFAULT_IMAGE_TAG}`;
  return image;
}

const GO_ESCAPES: Readonly<Record<string, string>> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '"': '\\"',
  '\\': '\\\\',
};
const GO_PRINTABLE_RE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/**
 * Quotes a string as Go's `%q` (strconv.Quote) does, so messages that embed
 * user input read exactly like the kubelet's.
 *
 *   goQuote('nginx')     // '"nginx"'
 *   goQuote('a"b\n')     // '"a\\"b\\n"'
 *   goQuote('\x00')      // '"\\x00"'
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    const named = GO_ESCAPES[ch];
    if (named !== undefined) out += named;
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp < 0x80) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp >= 0xd800 && cp <= 0xdfff)
      out += '\ufffd'; // a lone surrogate reaches Go as U+FFFD
    else if (GO_PRINTABLE_RE.test(ch)) out += ch;
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += `\\U${cp.toString(16).padStart(8, '0')}`;
  }
  return `${out}"`;
}
