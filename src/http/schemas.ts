/** Request bodies of the HTTP API (zod at the boundary; strict: unknown fields are errors). */
import * as z from 'zod';

const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lowercase letters, digits, "-")');

export const RefreshRequestSchema = z.strictObject({
  /** Only these tenants; default all the caller may refresh. */
  tenants: z.array(dnsLabel).max(1000).optional(),
  /** Only these registries. */
  registries: z.array(dnsLabel).max(1000).optional(),
  /** Plan only: report what would change, write nothing. */
  dryRun: z.boolean().default(false),
  /** Also push node config (default true when nodes are configured). */
  nodes: z.boolean().optional(),
  /** Re-read and re-mint every credential and rewrite every Secret, even ones not yet due (after a password was rotated). */
  force: z.boolean().default(false),
});
export type RefreshRequest = z.infer<typeof RefreshRequestSchema>;

export const NamespaceParamSchema = dnsLabel;

export const EnsureRequestSchema = z.strictObject({
  /** Give up after this many seconds (the API answers within API Gateway's 30 s). */
  timeoutSeconds: z.number().int().min(1).max(25).default(20),
});
export type EnsureRequest = z.infer<typeof EnsureRequestSchema>;

/** POST /v1/credentials (the pod credential broker): the image the kubelet is about to pull. */
export const CredentialsRequestSchema = z.strictObject({
  image: z.string().min(1).max(4096),
});
export type CredentialsRequest = z.infer<typeof CredentialsRequestSchema>;

/** A zod error as the API's 400 body: every problem with its field path and what was expected. */
export function validationErrors(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((i) => ({
    path: i.path.length
      ? i.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .replace(/^\./, '')
      : '(body)',
    message:
      i.code === 'unrecognized_keys'
        ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}`
        : i.message,
  }));
}
