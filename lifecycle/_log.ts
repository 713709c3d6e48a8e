import { stderr } from "./_stderr.ts";

/**
 * Where progress lines go. Any object with `info`, `warn` and `error`
 * methods taking a string works, so `console` itself is a valid logger.
 */
export interface Logger {
  /** Normal progress: drain started, drain finished, hooks done. */
  info(message: string): void;
  /** Something was cut or skipped, but the process keeps its plan. */
  warn(message: string): void;
  /** A handler or hook failed, or the process is forced to exit. */
  error(message: string): void;
}

/**
 * A logger writing one line per event to stderr, behind `[prefix]`, through
 * the non-blocking queue of `_stderr.ts`: a stalled pipe drops lines, never
 * the drain.
 */
export function stderrLoggerWith(prefix: string): Logger {
  const write = (message: string) => stderr.write(`[${prefix}] ${message}\n`);
  return { info: write, warn: write, error: write };
}

/** The default logger: one line per event on stderr, prefixed `[graceful]`. */
export const stderrLogger: Logger = stderrLoggerWith("graceful");

const nothing = () => {};
/** A logger that drops everything (`logger: false`). */
export const silentLogger: Logger = {
  info: nothing,
  warn: nothing,
  error: nothing,
};

/** Resolves the `logger` option: `undefined` → stderr, `false` → silent. */
export function resolveLogger(logger: Logger | false | undefined): Logger {
  if (logger === undefined) return stderrLogger;
  if (logger === false) return silentLogger;
  for (const method of ["info", "warn", "error"] as const) {
    if (typeof logger?.[method] !== "function") {
      throw badOption(
        "logger",
        "false or an object with info(), warn() and error() methods",
        logger,
      );
    }
  }
  return logger;
}

/** An address for log lines: `host:port`, or the path of a Unix socket. */
export function describeAddr(addr: Deno.Addr): string {
  if ("path" in addr) return addr.path;
  if ("cid" in addr) return `vsock:${addr.cid}:${addr.port}`;
  return `${addr.hostname}:${addr.port}`;
}

/** A short, readable rendering of a bad option value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "bigint") {
    return String(value);
  }
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return `an array (${JSON.stringify(value)})`;
  return typeof value === "object" ? "an object" : String(value);
}

/** The `TypeError` for a bad option: "`name`: expected `what`, got …". */
export function badOption(
  name: string,
  what: string,
  value: unknown,
): TypeError {
  return new TypeError(`${name}: expected ${what}, got ${describe(value)}`);
}

/** Milliseconds since `start`, rounded for log lines. */
export function since(start: number): number {
  return Math.round(performance.now() - start);
}
