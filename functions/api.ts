import { handle } from 'hono/aws-lambda';
import { createApp } from '../src/http/app.js';

export const handler = handle(createApp());
