/** `pullkeeper serve`: the HTTP API on this machine (@hono/node-server), with Prometheus /metrics. */
import { parseArgs } from 'node:util';
import { apiDeps } from '../app/compose.js';
import { loadConfigFile } from '../config/load.js';
import { createApp } from '../http/app.js';
import type { CliIO } from './io.js';
import { EXIT, loadConfigArg } from './mint-command.js';

export async function serveCommand(
  args: string[],
  io: CliIO,
  o: { signal?: AbortSignal; onListen?: (port: number) => void } = {},
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } },
  });
  // Fail fast on a broken config, with the same message as `config check`.
  const loaded = await loadConfigArg(values.config, io, 'serve');
  if (!loaded) return EXIT.usage;
  const { file } = loaded;
  const port = Number(values.port ?? 3700);
  const host = values.host ?? '127.0.0.1';
  const { serve } = await import('@hono/node-server');
  const app = createApp(apiDeps({ exposeMetrics: true, config: () => loadConfigFile(file) }));
  const server = serve({ fetch: app.fetch, port, hostname: host }, (info) => {
    io.err(
      `pullkeeper API on http://${host}:${info.port} (GET / status page, /healthz, /v1/status, /metrics; POST /v1/refresh); Ctrl-C stops it`,
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
