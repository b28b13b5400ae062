/** `pullkeeper serve`: the HTTP API on this machine (@hono/node-server), with Prometheus /metrics. */
import { parseArgs } from 'node:util';
import { apiDeps } from '../app/compose.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { createApp } from '../http/app.js';
import type { CliIO } from './io.js';
import { EXIT } from './mint-command.js';

export async function serveCommand(
  args: string[],
  io: CliIO,
  o: { signal?: AbortSignal; onListen?: (port: number) => void } = {},
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } },
  });
  const file = values.config ?? process.env.PULLKEEPER_CONFIG;
  if (!file) {
    io.err('pullkeeper serve: give --config FILE (or set PULLKEEPER_CONFIG)');
    return EXIT.usage;
  }
  // Fail fast on a broken config, with the same message as `config check`.
  try {
    await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return EXIT.usage;
    }
    throw err;
  }
  const port = Number(values.port ?? 3700);
  const host = values.host ?? '127.0.0.1';
  const { serve } = await import('@hono/node-server');
  const app = createApp(apiDeps({ exposeMetrics: true, config: () => loadConfigFile(file) }));
  const server = serve({ fetch: app.fetch, port, hostname: host }, (info) => {
    io.err(
      `pullkeeper API on http://${host}:${info.port} (GET /healthz, /v1/status, /metrics; POST /v1/refresh); Ctrl-C stops it`,
    );
    o.onListen?.(info.port);
  });
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    o.signal?.addEventListener('abort', stop, { once: true });
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return EXIT.ok;
}
