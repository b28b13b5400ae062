/**
 * Bounded fan-out with a canary batch.
 *
 * With a canary `{ count: K, maxFailureFraction: F }`: the first K items run
 * first (at most `concurrency` at once); if more than F of them failed, the run
 * halts and the rest are not attempted. After the canary batch, the run also
 * stops starting new items as soon as more than F of the items finished so far
 * failed. Without a canary, every item runs. The workers are the shared pool
 * (src/util/concurrency.ts).
 */
import { pool } from '../util/concurrency.js';

export interface CanaryPolicy {
  count: number;
  maxFailureFraction: number;
}

/** The halting rule (pure): feed it results, ask whether to go on. */
export class CanaryGate {
  private done = 0;
  private failed = 0;
  constructor(private readonly policy: CanaryPolicy | undefined) {}

  record(ok: boolean): void {
    this.done++;
    if (!ok) this.failed++;
  }

  /** Why the run must stop, or undefined to continue. Checked only once `done` >= the canary size. */
  haltReason(): string | undefined {
    const p = this.policy;
    if (!p || this.done === 0 || this.done < p.count) return undefined;
    if (this.failed / this.done > p.maxFailureFraction)
      return `halted: ${this.failed} of the first ${this.done} nodes failed (more than nodes.canary.maxFailureFraction ${p.maxFailureFraction})`;
    return undefined;
  }
}

export interface FanoutResult<R> {
  /** One per item, in item order; undefined for items not attempted. */
  results: Array<R | undefined>;
  /** Set when the run halted. */
  halted?: string;
}

/**
 * Runs `fn` over `items`: canary batch first (when configured), then the rest,
 * never more than `concurrency` at once. `ok(result)` says whether an item failed.
 */
export async function fanout<T, R>(
  items: readonly T[],
  opts: { concurrency: number; canary?: CanaryPolicy; signal?: AbortSignal },
  fn: (item: T, i: number) => Promise<R>,
  ok: (r: R) => boolean,
): Promise<FanoutResult<R>> {
  const results: Array<R | undefined> = Array.from({ length: items.length }, () => undefined);
  const gate = new CanaryGate(opts.canary);
  let halted: string | undefined;
  const runRange = async (from: number, to: number) => {
    const slice = await pool(
      items.slice(from, to),
      { concurrency: opts.concurrency, signal: opts.signal, stop: () => halted !== undefined },
      async (item, j) => {
        const r = await fn(item, from + j);
        gate.record(ok(r));
        halted ??= gate.haltReason();
        return r;
      },
    );
    slice.forEach((r, j) => {
      results[from + j] = r;
    });
  };
  const k = Math.min(opts.canary?.count ?? 0, items.length);
  if (k > 0) {
    await runRange(0, k);
    // The canary batch is judged as a whole.
    halted ??= gate.haltReason();
  }
  if (!halted) await runRange(k, items.length);
  return { results, ...(halted ? { halted } : {}) };
}
