/** `pullkeeper serve`: the HTTP API on this machine (@hono/node-server), with Prometheus /metrics. */
import { parseArgs } from 'node:util';
import { apiDeps } from '../app/compose.js';
import { ExtraCaError, trustExtraCaCertificates } from '../app/extra-ca.js';
import { loadConfigFile } from '../config/load.js';
import { createApp } from '../http/app.js';
import { PULLKEEPER } from './help.js';
import type { CliIO } from './io.js';
import { EXIT, loadConfigArg } from './mint-command.js';

export async function serveCommand(
  args: string[],
  io: CliIO,
  o: { signal?: AbortSignal; onListen?: (port: number) => void } = {},
): Promise<number> {
  const { values } = parseArgs({ args, options: PULLKEEPER.serve.flags });
  // Fail fast on a broken config, with the same message as `config check`.
  const loaded = await loadConfigArg(values.config, io, 'serve');
  if (!loaded) return EXIT.usage;
  const { file, config } = loaded;
  const port = Number(values.port ?? 3700);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.err('pullkeeper serve: --port takes a port number 0-65535, e.g. --port 3700 (0 picks a free one)');
    return EXIT.usage;
  }
  const host = values.host ?? '127.0.0.1';
  const loopbackOnly = isLoopbackHost(host);
  if (config.api?.metrics.public && !loopbackOnly) {
    io.err(
      `pullkeeper serve: api.metrics.public serves /metrics without auth, so it is allowed only on a loopback address; --host ${host} is not one. Listen on 127.0.0.1 (or ::1), or remove api.metrics.public and scrape /metrics with a bearer token granted every tenant`,
    );
    return EXIT.usage;
  }
  try {
    trustExtraCaCertificates();
  } catch (err) {
    if (!(err instanceof ExtraCaError)) throw err;
    io.err(`pullkeeper serve: ${err.message}`);
    return EXIT.usage;
  }
  const { serve } = await import('@hono/node-server');
  const app = createApp(apiDeps({ exposeMetrics: true, loopbackOnly, config: () => loadConfigFile(file) }));
  const server = serve({ fetch: app.fetch, port, hostname: host }, (info) => {
    io.err(
      `pullkeeper API on http://${host}:${info.port} (GET / status page, /healthz, /v1/status, /metrics; POST /v1/refresh); Ctrl-C stops it`,
    );
    if (values.json) io.out(JSON.stringify({ url: `http://${host}:${info.port}`, port: info.port }));
    o.onListen?.(info.port);
  });
  return new Promise<number>((resolve) => {
    const stop = () => server.close(() => resolve(EXIT.ok));
    o.signal?.addEventListener('abort', stop, { once: true });
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    server.once('error', (err: NodeJS.ErrnoException) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.err(
        err.code === 'EADDRINUSE'
          ? `pullkeeper serve: ${host}:${port} is in use; pick another with --port (0 picks a free one)`
          : `pullkeeper serve: cannot listen on ${host}:${port} (${err.code ?? err.name}); check --host and --port`,
      );
      resolve(EXIT.failed);
    });
  });
}

/** 127.0.0.0/8, ::1 and localhost: nothing off this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}
