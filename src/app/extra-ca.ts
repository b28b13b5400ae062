/**
 * PULLKEEPER_EXTRA_CA_CERTS: a PEM file of extra CA certificates that the
 * functions and `pullkeeper serve` trust for their outgoing TLS (a private
 * registry or token endpoint, a TLS-inspecting proxy), added to Node's default
 * trust at start. Unlike NODE_EXTRA_CA_CERTS, it is read by pullkeeper's own
 * code, so `serverless offline` can pass it to a function without changing the
 * trust of the whole process (npm, which serverless-esbuild runs, included).
 */
import { readFileSync } from 'node:fs';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { PullkeeperError } from '../core/errors.js';

export class ExtraCaError extends PullkeeperError {}

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
let trusted: string | undefined;

/** Adds the certificates of PULLKEEPER_EXTRA_CA_CERTS once; returns how many were added (0 when unset). */
export function trustExtraCaCertificates(env: NodeJS.ProcessEnv = process.env): number {
  const path = env.PULLKEEPER_EXTRA_CA_CERTS?.trim();
  if (!path || path === trusted) return 0;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ExtraCaError(
      `PULLKEEPER_EXTRA_CA_CERTS: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); point it at a PEM file of CA certificates, or unset it`,
      { cause: err },
    );
  }
  const certs = text.match(PEM) ?? [];
  if (certs.length === 0)
    throw new ExtraCaError(
      `PULLKEEPER_EXTRA_CA_CERTS: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  try {
    setDefaultCACertificates([...getCACertificates('default'), ...certs]);
  } catch (err) {
    throw new ExtraCaError(`PULLKEEPER_EXTRA_CA_CERTS: ${path} holds a certificate Node cannot use`, {
      cause: err,
    });
  }
  trusted = path;
  return certs.length;
}
