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
