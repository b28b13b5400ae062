/** Exit codes shared by the operator commands (`pullkeeper`). */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
