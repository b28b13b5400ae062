/**
 * Structured JSON logs (one object a line, CloudWatch-friendly) with redaction:
 * fields whose name says secret are replaced, and any value registered as a
 * secret is cut out of every string. A logger carries context (request id,
 * function name) into every line.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Field names never logged as they are. `authorization`, `password`, `token`, `secret`, `privateKey`... */
export const SECRET_FIELD =
  /pass(word)?|secret|token|authorization|private.?key|credential|^auth$|cookie|assertion/i;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  /** Values cut out of every later line of this logger and its children. */
  addSecrets(...values: string[]): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  sink?: (line: string) => void;
  now?: () => Date;
}

export function redactValue(value: unknown, secrets: ReadonlySet<string>, depth = 0): unknown {
  if (typeof value === 'string') {
    let out = value;
    for (const s of secrets) if (s.length >= 6 && out.includes(s)) out = out.split(s).join('<redacted>');
    return out;
  }
  if (value instanceof Error) return { name: value.name, message: redactValue(value.message, secrets) };
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_FIELD.test(k) && v !== null && v !== undefined && typeof v !== 'boolean'
        ? '<redacted>'
        : redactValue(v, secrets, depth + 1);
  }
  return out;
}

export function createLogger(
  opts: LoggerOptions = {},
  context: Record<string, unknown> = {},
  secrets = new Set<string>(),
): Logger {
  const min =
    LEVELS[opts.level ?? (process.env.PULLKEEPER_LOG_LEVEL as LogLevel | undefined) ?? 'info'] ?? 20;
  const sink = opts.sink ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = opts.now ?? (() => new Date());
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < min) return;
    const entry = redactValue({ time: now().toISOString(), level, msg, ...context, ...fields }, secrets);
    sink(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger(opts, { ...context, ...fields }, secrets),
    addSecrets: (...values) => {
      for (const v of values) if (v) secrets.add(v);
    },
  };
}
