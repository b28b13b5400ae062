/**
 * The cloud side of the harness: moto (ECR), a fake Entra ID + ACR login
 * server, and a fake Google token endpoint, started in parallel.
 */

import { run } from '../proc.js';
import type { Component, DoctorCheck } from '../types.js';
import type { MintListener, MintRecord } from './common.js';
import { type EntraAcrFake, type EntraAcrInfo, type EntraAcrOptions, startEntraAcr } from './entra-acr.js';
import { type GoogleFake, type GoogleInfo, type GoogleOptions, startGoogle } from './google.js';
import { checkMoto, type MotoComponent, type MotoInfo, startMoto } from './moto.js';

export type { FailOptions, FailureKind, MintListener, MintRecord, RequestLogEntry } from './common.js';
export * from './entra-acr.js';
export * from './google.js';
export * from './moto.js';

export interface CloudInfo {
  /** Absent when started with `moto: false`. */
  moto?: MotoInfo;
  acr: EntraAcrInfo;
  google: GoogleInfo;
}

export interface Cloud extends Component<CloudInfo> {
  readonly acr: EntraAcrFake;
  readonly google: GoogleFake;
  readonly moto?: MotoComponent;
  /** Every docker credential minted by the ACR and Google fakes, oldest first. */
  minted(): MintRecord[];
  onMint(cb: MintListener): () => void;
  /** The unexpired minted credential matching exactly (what a test registry should accept). */
  accepts(username: string, password: string): MintRecord | undefined;
}

export interface CloudOptions {
  dir: string;
  signal?: AbortSignal;
  /** Start moto (default true). */
  moto?: boolean;
  acr?: Omit<EntraAcrOptions, 'dir' | 'signal'>;
  google?: Omit<GoogleOptions, 'dir' | 'signal'>;
}

export async function startCloud(opts: CloudOptions): Promise<Cloud> {
  const [moto, acr, google] = await Promise.allSettled([
    opts.moto === false ? Promise.resolve(undefined) : startMoto({ dir: opts.dir, signal: opts.signal }),
    startEntraAcr({ ...opts.acr, dir: opts.dir, signal: opts.signal }),
    startGoogle({ ...opts.google, dir: opts.dir, signal: opts.signal }),
  ]);
  const all = [moto, acr, google];
  if (all.some((r) => r.status === 'rejected')) {
    await Promise.allSettled(all.map((r) => (r.status === 'fulfilled' ? r.value?.stop() : undefined)));
    const reasons = all
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => r.reason);
    throw reasons.length === 1 ? reasons[0] : new AggregateError(reasons, 'cloud fakes failed to start');
  }
  const m = (moto as PromiseFulfilledResult<MotoComponent | undefined>).value;
  const a = (acr as PromiseFulfilledResult<EntraAcrFake>).value;
  const g = (google as PromiseFulfilledResult<GoogleFake>).value;
  let stopped: Promise<void> | undefined;
  return {
    info: { ...(m ? { moto: m.info } : {}), acr: a.info, google: g.info },
    acr: a,
    google: g,
    moto: m,
    minted: () => [...a.minted(), ...g.minted()].sort((x, y) => x.issuedAt.getTime() - y.issuedAt.getTime()),
    onMint(cb) {
      const offs = [a.onMint(cb), g.onMint(cb)];
      return () => {
        for (const off of offs) off();
      };
    },
    accepts: (u, p) => a.accepts(u, p) ?? g.accepts(u, p),
    stop() {
      stopped ??= Promise.allSettled([m?.stop(), a.stop(), g.stop()]).then(() => undefined);
      return stopped;
    },
  };
}

/** Doctor checks for the cloud fakes: moto, and openssl (only for the optional TLS mode). */
export async function checkCloud(): Promise<DoctorCheck[]> {
  const checks = await checkMoto();
  try {
    const r = await run('openssl', ['version'], { timeoutMs: 10_000 });
    checks.push({ name: 'openssl', ok: true, detail: r.stdout.trim() });
  } catch {
    // Optional: reported, but not a failure.
    checks.push({
      name: 'openssl',
      ok: true,
      detail: 'not found; needed only for the https mode of the cloud fakes (tls: true, for @azure/identity)',
      fix: 'apt-get install -y openssl',
    });
  }
  return checks;
}
