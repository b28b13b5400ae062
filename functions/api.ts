import { handle } from 'hono/aws-lambda';
import { apiDeps } from '../src/app/compose.js';
import { createApp } from '../src/http/app.js';

export const handler = handle(createApp(apiDeps()));
