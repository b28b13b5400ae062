/** Shared shapes of the test harness components. */

/** One line of `harness doctor`: what is there, what is missing, and how to fix it. */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** What was found (a version, a path) or what is wrong. */
  detail: string;
  /** The exact command that fixes a failed check. */
  fix?: string;
}

/** A started component: its connection details and how to stop it. */
export interface Component<Info> {
  /** Plain, JSON-serialisable connection details (no secrets beyond test-only ones). */
  readonly info: Info;
  /** Stops every process this component started, by PID, and removes what it set up. Idempotent. */
  stop(): Promise<void>;
}
