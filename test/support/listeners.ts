/**
 * For unit tests of code that waits on a caller's AbortSignal: runs `work`
 * (many waits on `signal`) and checks that it left no abort listener on it and
 * raised no MaxListenersExceededWarning.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';

export async function assertNoListenerLeak(signal: AbortSignal, work: () => Promise<unknown>): Promise<void> {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    await work();
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));
    assert.equal(getEventListeners(signal, 'abort').length, 0, 'abort listeners left on the signal');
    assert.deepEqual(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
      [],
    );
  } finally {
    process.off('warning', onWarning);
  }
}
