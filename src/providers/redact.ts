/** Removes secret values from text that may have picked them up (error bodies, URLs). */
import type { RegistryCredential } from './types.js';

/** Replaces every occurrence of each secret (and its base64 forms) with `<redacted>`. */
export function redactSecrets(
  text: string,
  ...sources: Array<Pick<RegistryCredential, 'password'> | string>
): string {
  let out = text;
  for (const s of sources) {
    const secret = typeof s === 'string' ? s : s.password;
    if (!secret || secret.length < 4) continue;
    for (const form of [secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret)]) {
      out = out.split(form).join('<redacted>');
    }
  }
  return out;
}
