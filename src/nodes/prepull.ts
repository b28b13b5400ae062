/**
 * Pre-pull plumbing: `pullkeeper-node pull IMAGE --json` on a node over an SSH
 * exec channel, its JSON `{ image, digest, pulled }` parsed with zod.
 */
import type { Client } from 'ssh2';
import * as z from 'zod';
import { execRemote } from './ssh.js';

export interface PullReport {
  image: string;
  status: 'pulled' | 'present' | 'failed';
  digest?: string;
  reason?: string;
}

const PullOutputSchema = z.object({ image: z.string(), digest: z.string(), pulled: z.boolean() });

/** POSIX shell single-quoting. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function prePullCommand(command: string, image: string): string {
  return `${command} pull ${shellQuote(image)} --json`;
}

/** Reads the node command's output: the last non-empty stdout line is the JSON result. */
export function parsePullOutput(
  image: string,
  out: { code: number | null; stdout: string; stderr: string },
): PullReport {
  const last = out.stdout.trim().split('\n').pop()?.trim() ?? '';
  if (out.code !== 0) {
    const why = (out.stderr.trim().split('\n').pop() ?? '').slice(0, 300);
    return {
      image,
      status: 'failed',
      reason: `${out.code === 127 ? 'pullkeeper-node not found on the node (set nodes.prePull.command); ' : ''}exit ${out.code}${why ? `: ${why}` : ''}`,
    };
  }
  let parsed: z.infer<typeof PullOutputSchema>;
  try {
    parsed = PullOutputSchema.parse(JSON.parse(last));
  } catch {
    return {
      image,
      status: 'failed',
      reason: 'pullkeeper-node printed no JSON result { image, digest, pulled }',
    };
  }
  return { image, status: parsed.pulled ? 'pulled' : 'present', digest: parsed.digest };
}

export async function prePullImages(
  client: Client,
  images: readonly string[],
  opts: { command: string; timeoutMs: number; signal: AbortSignal },
): Promise<PullReport[]> {
  const out: PullReport[] = [];
  for (const image of images) {
    const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]);
    try {
      const r = await execRemote(client, prePullCommand(opts.command, image), { limit: 64 * 1024, signal });
      out.push(parsePullOutput(image, r));
    } catch (err) {
      out.push({ image, status: 'failed', reason: (err as Error).message });
    }
  }
  return out;
}
