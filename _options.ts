import { describe } from "./_log.ts";

/** The longest delay a timer can hold: 2³¹ − 1 ms (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Validates a duration option in milliseconds: a number from 0 to
 * {@linkcode MAX_TIMER_MS} (a longer timer would fire at once). Returns
 * `fallback` when the value is `undefined`.
 */
export function duration(
  name: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !(value >= 0 && value <= MAX_TIMER_MS)
  ) {
    throw new TypeError(
      `${name}: expected a number of milliseconds from 0 to ${MAX_TIMER_MS}, got ${
        describe(value)
      }`,
    );
  }
  return value;
}

/**
 * Validates a byte count: a whole number from 0 to `Number.MAX_SAFE_INTEGER`.
 * Returns `fallback` when the value is `undefined`.
 */
export function bytes(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < 0
  ) {
    throw new TypeError(
      `${name}: expected a whole number of bytes ≥ 0, got ${describe(value)}`,
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
  bodyBufferLimit: number;
}

/** Default for `bodyBufferLimit`: 128 MiB. */
export const BODY_BUFFER_LIMIT = 128 * 1024 * 1024;

/**
 * Validates the drain options of `serve()` (and `signal`); throws a
 * `TypeError` naming the first bad option and its value.
 */
export function drainOptions(options: {
  drainTimeout?: unknown;
  drainDelay?: unknown;
  healthPath?: unknown;
  endStreamsAtDeadline?: unknown;
  bodyBufferLimit?: unknown;
  signal?: unknown;
}): DrainOptions {
  const drainTimeout = duration("drainTimeout", options.drainTimeout, 10_000);
  const drainDelay = duration("drainDelay", options.drainDelay, 0);
  const bodyBufferLimit = bytes(
    "bodyBufferLimit",
    options.bodyBufferLimit,
    BODY_BUFFER_LIMIT,
  );
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
  return { drainTimeout, drainDelay, healthPath, endStreams, bodyBufferLimit };
}
