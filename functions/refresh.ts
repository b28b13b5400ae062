import { trustExtraCaCertificates } from '../src/app/extra-ca.js';
import { scheduledRefresh } from '../src/app/scheduled.js';

trustExtraCaCertificates();

/** Scheduled refresh: expiry-driven, so most runs mint and write nothing. */
export const handler = () => scheduledRefresh();
