import { Hono } from 'hono';
import { CAPABILITIES, refreshNotYetAvailable } from '../app/status.js';
import { VERSION } from '../version.js';

/**
 * The HTTP API, free of any Lambda import: functions/api.ts adapts it to API
 * Gateway, tests call `app.request()` directly, and `serverless offline` serves it.
 */
export function createApp(): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok', version: VERSION }));
  app.get('/v1/capabilities', (c) => c.json({ version: VERSION, capabilities: CAPABILITIES }));
  app.post('/v1/refresh', (c) => c.json(refreshNotYetAvailable(), 501));
  app.notFound((c) =>
    c.json(
      { error: 'not_found', message: `no route for ${c.req.method} ${c.req.path}; see GET /v1/capabilities` },
      404,
    ),
  );
  app.onError((err, c) => {
    // Never echo the error's details: they may carry request data.
    console.error(JSON.stringify({ level: 'error', msg: 'unhandled', name: err.name }));
    return c.json({ error: 'internal', message: 'internal error; see the function logs' }, 500);
  });
  return app;
}
