import { describe } from "./_log.ts";

/**
 * Validates a duration option in milliseconds: a finite number ≥ 0.
 * Returns `fallback` when the value is `undefined`.
 */
export function duration(
  name: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new TypeError(
      `${name}: expected a number of milliseconds ≥ 0, got ${describe(value)}`,
    );
  }
  return value;
}

/** Validates an optional URL path option: a string starting with `/`. */
export function path(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw new TypeError(
      `${name}: expected a path starting with "/", got ${describe(value)}`,
    );
  }
  return value;
}

/** The drain settings of `serve()`, validated, with their defaults. */
export interface DrainOptions {
  drainTimeout: number;
  drainDelay: number;
  healthPath: string | undefined;
  endStreams: boolean;
}

/**
 * Validates the drain options of `serve()` (and `signal`); throws a
 * `TypeError` naming the first bad option and its value.
 */
export function drainOptions(options: {
  drainTimeout?: unknown;
  drainDelay?: unknown;
  healthPath?: unknown;
  endStreamsAtDeadline?: unknown;
  signal?: unknown;
}): DrainOptions {
  const drainTimeout = duration("drainTimeout", options.drainTimeout, 10_000);
  const drainDelay = duration("drainDelay", options.drainDelay, 0);
  if (drainDelay > drainTimeout) {
    throw new TypeError(
      `drainDelay: ${drainDelay} ms is longer than drainTimeout (${drainTimeout} ms)`,
    );
  }
  const healthPath = path("healthPath", options.healthPath);
  const endStreams = options.endStreamsAtDeadline ?? true;
  if (typeof endStreams !== "boolean") {
    throw new TypeError(
      `endStreamsAtDeadline: expected true or false, got ${
        describe(endStreams)
      }`,
    );
  }
  if (
    options.signal !== undefined && !(options.signal instanceof AbortSignal)
  ) {
    throw new TypeError(
      `signal: expected an AbortSignal, got ${describe(options.signal)}`,
    );
  }
  return { drainTimeout, drainDelay, healthPath, endStreams };
}
