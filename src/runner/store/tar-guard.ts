/**
 * A pass-through that follows the tar framing ahead of the extractor and
 * refuses a PAX or GNU long-name header larger than `maxBytes` before any of
 * it is buffered (the extractor must hold such a header whole before it can
 * emit the entry it describes).
 *
 * It reads framing the way tar-stream 3 does (checksum, octal or base-256
 * size, a local PAX `size` overriding the next entry's, no data skipped after
 * a directory header). If a block where it expects a header fails the
 * checksum, it stops guarding and passes the rest through: the extractor
 * refuses such an archive itself (and caps long headers at 4 MiB).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { UnpackLimitError } from './limits.js';

/** tar typeflags (minus '0') of headers whose data describes the next entry. */
const LONG_HEADERS = new Set([
  72, // 'x' PAX header
  55, // 'g' PAX global header
  27, // 'K' GNU long link name
  28, // 'L' GNU long name
  30, // 'N' old GNU long name
]);
const PAX = 72;
const PAX_GLOBAL = 55;

/** A PAX or GNU long-name header larger than allowed. */
export class PaxHeaderTooLargeError extends UnpackLimitError {}

const padding = (size: number) => (512 - (size % 512)) % 512;

/** tar-stream's numeric field rule: base-256 when the high bit is set, else octal after spaces and NULs. */
function numberField(b: Buffer, off: number, len: number): number | undefined {
  const v = b.subarray(off, off + len);
  if (v[0]! & 0x80) {
    if (v[0] !== 0x80) return undefined; // negative
    let n = 0;
    for (let i = 1; i < v.length; i++) n = n * 256 + v[i]!;
    return n;
  }
  let i = 0;
  while (i < v.length && v[i] === 32) i++;
  let end = v.indexOf(32, i);
  if (end === -1) end = v.length;
  while (i < end && v[i] === 0) i++;
  if (i === end) return 0;
  const n = Number.parseInt(v.subarray(i, end).toString('latin1'), 8);
  return Number.isNaN(n) ? undefined : n;
}

function checksumOk(b: Buffer): 'ok' | 'null' | 'bad' {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += b[i]!;
  for (let i = 156; i < 512; i++) sum += b[i]!;
  if (sum === 8 * 32) return 'null';
  return sum === numberField(b, 148, 8) ? 'ok' : 'bad';
}

/** The `size` record of PAX data, if any (records are `LEN key=value\n`). */
function paxSize(data: Buffer): string | undefined {
  let size: string | undefined;
  let rest = data;
  while (rest.length > 0) {
    const sp = rest.indexOf(32);
    const len = Number.parseInt(rest.subarray(0, sp === -1 ? rest.length : sp).toString('latin1'), 10);
    if (!len || sp === -1) break;
    const rec = rest.subarray(sp + 1, len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq === -1) break;
    if (rec.slice(0, eq) === 'size') size = rec.slice(eq + 1);
    rest = rest.subarray(len);
  }
  return size;
}

export interface TarGuardOptions {
  maxHeaderBytes: number;
  /** The flag that raises the bound (the error's `limit`). */
  flag: string;
  /** How the error says to raise it. */
  hint: string;
}

/** The guard stream; pipe the tar through it into the extractor. */
export function tarHeaderGuard(opts: TarGuardOptions): Transform {
  let off = false;
  let skip = 0;
  const header = Buffer.alloc(512);
  let have = 0;
  /** The long header being read: its type, data collected (PAX only), bytes still to pass. */
  let long: { type: number; size: number; parts: Buffer[]; got: number; left: number } | undefined;
  let localPax: { size?: string } | undefined;
  let globalSize: string | undefined;

  const onHeader = () => {
    const state = checksumOk(header);
    if (state === 'null') return;
    if (state === 'bad') {
      off = true;
      return;
    }
    const flag = header[156] === 0 ? 0 : header[156]! - 48;
    const size = numberField(header, 124, 12);
    if (size === undefined) {
      off = true;
      return;
    }
    if (LONG_HEADERS.has(flag)) {
      if (size > opts.maxHeaderBytes) {
        throw new PaxHeaderTooLargeError(
          `a tar ${flag === PAX || flag === PAX_GLOBAL ? 'PAX' : 'GNU long-name'} header of ${size} bytes is ` +
            `larger than the ${opts.maxHeaderBytes} allowed; ${opts.hint} if the image is legitimate`,
          { limit: opts.flag, max: opts.maxHeaderBytes },
        );
      }
      long = { type: flag, size, parts: [], got: 0, left: size + padding(size) };
      if (long.left === 0) {
        endLong(long);
        long = undefined;
      }
      return;
    }
    let dataSize = size;
    if (localPax !== undefined) {
      const s = localPax.size ?? globalSize;
      if (s !== undefined && s !== '') dataSize = Number.parseInt(s, 10);
      localPax = undefined;
    }
    if (!(dataSize >= 0)) {
      off = true;
      return;
    }
    const nameEnd = header.subarray(0, 100).indexOf(0);
    const last = header[(nameEnd === -1 ? 100 : nameEnd) - 1];
    const isDir = flag === 5 || (flag === 0 && last === 0x2f);
    skip = isDir ? 0 : dataSize + padding(dataSize);
  };

  const endLong = (l: NonNullable<typeof long>) => {
    if (l.type === PAX || l.type === PAX_GLOBAL) {
      const size = paxSize(Buffer.concat(l.parts).subarray(0, l.size));
      if (l.type === PAX_GLOBAL) globalSize = size;
      else localPax = size !== undefined ? { size } : {};
    }
  };

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        let i = 0;
        while (!off && i < chunk.length) {
          if (skip > 0) {
            const n = Math.min(skip, chunk.length - i);
            skip -= n;
            i += n;
          } else if (long !== undefined) {
            const n = Math.min(long.left, chunk.length - i);
            if ((long.type === PAX || long.type === PAX_GLOBAL) && long.got < long.size) {
              const take = Math.min(n, long.size - long.got);
              long.parts.push(Buffer.from(chunk.subarray(i, i + take)));
              long.got += take;
            }
            long.left -= n;
            i += n;
            if (long.left === 0) {
              endLong(long);
              long = undefined;
            }
          } else {
            const n = Math.min(512 - have, chunk.length - i);
            chunk.copy(header, have, i, i + n);
            have += n;
            i += n;
            if (have === 512) {
              have = 0;
              onHeader();
            }
          }
        }
        cb(null, chunk);
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
