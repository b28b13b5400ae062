import { scheduledRefresh } from '../src/app/scheduled.js';

/** Scheduled refresh: expiry-driven, so most runs mint and write nothing. */
export const handler = () => scheduledRefresh();
