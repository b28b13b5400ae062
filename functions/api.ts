import { handle } from 'hono/aws-lambda';
import { apiDeps } from '../src/app/compose.js';
import { trustExtraCaCertificates } from '../src/app/extra-ca.js';
import { createApp } from '../src/http/app.js';

trustExtraCaCertificates();
export const handler = handle(createApp(apiDeps()));
