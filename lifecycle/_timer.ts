/**
 * Timers as promises that can be cancelled, and the longest delay a timer
 * holds, with the validation of every duration option against it.
 */
import { badOption } from "./_log.ts";

/** A timer as a promise that can be cancelled. */
export interface Timer<T> {
  /** Resolves with the timer's value once the time is up. */
  readonly promise: Promise<T>;
  /** Cancels the timer; the promise then never resolves. */
  clear(): void;
}

// Deno loads its timers on the first setTimeout of a process: 8–14 ms
// measured on 2.9.6. Paid at start (when the stop's signal listeners are
// installed), not at the signal, where it would keep the listener open that
// much longer; a supervised worker holds it until it has reported ready,
// since its restart waits for that report.
let warm = false;
let held = false;

/** Pays Deno's one-time timer set-up now, unless held. Idempotent. */
export function warmTimers(): void {
  if (warm || held) return;
  warm = true;
  clearTimeout(setTimeout(() => {}, 0));
}

/** Holds the set-up until the returned function is called. */
export function holdTimerWarmUp(): () => void {
  held = true;
  return () => {
    held = false;
    warmTimers();
  };
}

/** Resolves with `value` after `ms` milliseconds, unless cleared first. */
export function timer<T>(ms: number, value: T): Timer<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<T>((resolve) => {
    id = setTimeout(() => resolve(value), ms);
  });
  return { promise, clear: () => clearTimeout(id) };
}

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
    throw badOption(
      name,
      `a number of milliseconds from 0 to ${MAX_TIMER_MS}`,
      value,
    );
  }
  return value;
}
