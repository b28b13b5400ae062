import { trustExtraCaCertificates } from '../src/app/extra-ca.js';
import type { SqsBatchResponse, SqsEvent } from '../src/app/fanout.js';
import { fanoutWorker } from '../src/app/scheduled.js';

trustExtraCaCertificates();

/** SQS fan-out worker: one tenant or node batch per message; partial batch failures. */
export const handler = (event: SqsEvent): Promise<SqsBatchResponse> => fanoutWorker(event);
